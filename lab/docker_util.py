"""The one place the lab opens a Docker Engine client, and the label queries built on it.

Every call has a timeout, and an engine that cannot be reached becomes a one-line `RunError`
that says what to check, instead of a traceback from deep inside requests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lab import LABELS, PROJECT_LABEL
from lab.errors import RunError

if TYPE_CHECKING:
    import docker

# Most API calls answer in milliseconds; image builds stream for minutes and get their own.
DEFAULT_TIMEOUT = 30
BUILD_TIMEOUT = 900

PROJECT_FILTER = {"label": f"{PROJECT_LABEL}={LABELS[PROJECT_LABEL]}"}


def client(timeout: float = DEFAULT_TIMEOUT) -> docker.DockerClient:
    """A connected client (pinged), or RunError naming what is missing."""
    try:
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


def project_containers(c: docker.DockerClient) -> list:
    return c.containers.list(all=True, filters=PROJECT_FILTER)


def project_networks(c: docker.DockerClient) -> list:
    return c.networks.list(filters=PROJECT_FILTER)


def project_images(c: docker.DockerClient) -> list:
    return c.images.list(filters=PROJECT_FILTER)


def leftovers(c: docker.DockerClient) -> dict[str, list[str]]:
    """Names of the project's containers and networks still present (images are kept)."""
    return {
        "containers": [x.name for x in project_containers(c)],
        "networks": [x.name for x in project_networks(c)],
    }


class StatsSampler:
    """Peak memory and task (thread) count of one container, from the engine's stats, sampled
    in a thread until `stop()`. Used by the load tests and the load benchmark."""

    def __init__(self, api, container_id: str, every: float = 0.5) -> None:
        import threading

        self.api, self.id, self.every = api, container_id, every
        self.memory_peak = 0
        self.pids_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                s = self.api.stats(self.id, stream=False, one_shot=True)
            except Exception:  # the container is stopping: the last sample stands
                return
            mem = s.get("memory_stats") or {}
            # cgroup v1 keeps the peak itself (max_usage); v2 has only the current usage
            self.memory_peak = max(self.memory_peak, mem.get("max_usage", 0), mem.get("usage", 0))
            self.pids_peak = max(self.pids_peak, (s.get("pids_stats") or {}).get("current", 0))
            self._stop.wait(self.every)

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join(10)
        return {"memory_peak": self.memory_peak, "pids_peak": self.pids_peak}
