"""The two kinds of failure the CLI reports, each as one line and an exit code (see DESIGN.md)."""


class LabError(Exception):
    """Base class: the message is a complete one-line explanation for the user."""

    exit_code = 1


class UsageError(LabError):
    """Bad input (scenario, arguments, files): exit 2, and nothing was started."""

    exit_code = 2


class RunError(LabError):
    """The experiment failed (a container, the network, a timeout): exit 1."""

    exit_code = 1
