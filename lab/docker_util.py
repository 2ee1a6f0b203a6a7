"""The one place the lab opens a Docker Engine client.

`client()` opens the engine of DOCKER_HOST, `client_for_url()` one named by URL. Every call has
a timeout, and an engine that cannot be reached becomes a one-line `RunError`
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


def client_for_url(url: str, timeout: float = DEFAULT_TIMEOUT) -> docker.DockerClient:
    """A client of the engine at `url` (unix://, tcp://, ssh://), not yet pinged.

    TLS for tcp:// comes from DOCKER_TLS_VERIFY and DOCKER_CERT_PATH, as the docker CLI reads
    them; ssh:// goes through the system's ssh client (its config and keys; the SDK's own
    paramiko transport is an optional dependency).
    """
    import os

    import docker
    from docker.utils import kwargs_from_env

    kwargs = kwargs_from_env(environment={**os.environ, "DOCKER_HOST": url})
    return docker.DockerClient(**kwargs, timeout=timeout, use_ssh_client=url.startswith("ssh://"))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no details"
