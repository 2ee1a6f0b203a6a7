"""The one place the lab opens a Docker Engine client.

Every call has a timeout, and an engine that cannot be reached becomes a one-line `RunError`
that says what to check, instead of a traceback from deep inside requests. `lab.engine.Engine`
wraps the client for runs and `lab clean`; image builds use the client directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lab.errors import RunError

if TYPE_CHECKING:
    import docker

# Most API calls answer in milliseconds; image builds stream for minutes and get their own.
DEFAULT_TIMEOUT = 30
BUILD_TIMEOUT = 900


def client(timeout: float = DEFAULT_TIMEOUT) -> docker.DockerClient:
    """A connected client (pinged), or RunError naming what is missing."""
    try:
        # Imported here so that a broken install gets the one-line error below, not a traceback
        import docker
    except ImportError as exc:
        raise RunError("the Python package 'docker' is not installed (pip install docker)") from exc
    try:
        c = docker.from_env(timeout=timeout)
        c.ping()
    except Exception as exc:  # any failure here means the same thing to the user
        raise RunError(
            "Docker Engine not reachable: is it installed and running, and may this user use "
            f"it (docker group, DOCKER_HOST)? ({type(exc).__name__}: {_first_line(exc)})"
        ) from exc
    return c


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no details"
