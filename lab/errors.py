"""The two kinds of failure, each a one-line message: bad input and a failed experiment.

The command line turns them into exit codes (docs/architecture.md): 2 for `UsageError` (its API
name is `ScenarioError`: nothing was started), 1 for `RunError`.
"""

from __future__ import annotations

from typing import Any


class LabError(Exception):
    """Base class: the message is a complete one-line explanation for the user."""

    exit_code = 1


class UsageError(LabError):
    """Bad input (scenario, arguments, files): exit 2, and nothing was started."""

    exit_code = 2


class RunError(LabError):
    """The experiment failed (a container, the network, a timeout): exit 1.

    `result` is the run's `lab.document.RunResult` when the run folder was written (a client
    error, a network condition that did not take effect), else None.
    """

    exit_code = 1
    result: Any = None


# The Python API's name for bad input: a scenario, an argument or a file the lab cannot use.
ScenarioError = UsageError
