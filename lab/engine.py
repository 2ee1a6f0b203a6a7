"""The Docker engine a role runs on: every container and network of a run goes through one.

An `Engine` wraps one Docker SDK client (opened by `lab.docker_util.client`, so every call has
a timeout) and is the only way the lab starts containers, always with the lab's labels. It also
creates and removes networks, reads logs and files out of containers, states the engine's
versions for the manifest, and removes what a run left behind, by label.

Today a run has one engine, from `DOCKER_HOST` / the environment (`Engine.from_env`);
`lab.placement` says which side of a run uses which engine. Everything is collected through the
API (logs, `get_archive`), so a remote engine works as well as the local one.
"""

from __future__ import annotations

import contextlib
import io
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from lab import LABELS, PROJECT_LABEL, RUN_LABEL, docker_util
from lab.errors import RunError

try:  # docker is a declared dependency: a broken install still gets one line, not a traceback
    import docker
    import requests
except ImportError as exc:  # pragma: no cover - only in a broken install
    raise RunError("the Python package 'docker' is not installed (pip install docker)") from exc

# The SDK's errors that `lab clean` tells apart: already gone, or refused by the engine.
NotFound = docker.errors.NotFound
APIError = docker.errors.APIError

PROJECT_FILTER = {"label": f"{PROJECT_LABEL}={LABELS[PROJECT_LABEL]}"}


@dataclass(frozen=True)
class ContainerState:
    status: str  # Docker's: created, running, paused, exited, dead, ...
    exit_code: int | None

    @property
    def ended(self) -> bool:
        return self.status in {"exited", "dead"}


class Engine:
    """One Docker engine, and the lab's operations on it."""

    def __init__(self, client: docker.DockerClient, name: str = "local") -> None:
        self.client = client
        self.name = name  # for messages and the placement's tests; not sent to Docker

    @classmethod
    def from_env(cls, timeout: float = docker_util.DEFAULT_TIMEOUT) -> Engine:
        """The engine of `DOCKER_HOST` (or the local socket), pinged; RunError if unreachable."""
        return cls(docker_util.client(timeout=timeout))

    def __repr__(self) -> str:
        return f"Engine({self.name!r})"

    def close(self) -> None:
        self.client.close()

    # --- Facts --------------------------------------------------------------------------------

    def facts(self) -> dict[str, str | None]:
        """The engine's version, API version and kernel, as the run manifest records them."""
        version = self.client.version()
        return {
            "engine": version.get("Version"),
            "api": version.get("ApiVersion"),
            "kernel": version.get("KernelVersion"),
        }

    def image_id(self, ref: str) -> str:
        return self.client.images.get(ref).id

    @staticmethod
    def describe_error(exc: BaseException) -> str | None:
        """One line for an error of the engine or of the connection to it; None for any other."""
        if not isinstance(exc, docker.errors.DockerException | requests.RequestException):
            return None
        text = getattr(exc, "explanation", None) or str(exc) or type(exc).__name__
        return str(text).strip().splitlines()[0]

    # --- Containers ---------------------------------------------------------------------------

    def start(self, spec: dict):
        """Start a container from a `lab.hosts` spec, always carrying the lab's labels."""
        return self.client.containers.run(
            **{**spec, "labels": {**LABELS, **spec.get("labels", {})}}
        )

    def state(self, container) -> ContainerState:
        container.reload()
        return ContainerState(container.status, container.attrs.get("State", {}).get("ExitCode"))

    def wait(self, container, timeout: float) -> int | None:
        """The container's exit code, or None if it is still running after `timeout` s."""
        try:
            return container.wait(timeout=timeout).get("StatusCode")
        except requests.RequestException:  # the SDK's read timeout: the container outlived it
            return None

    def inspect(self, container) -> dict:
        return self.client.api.inspect_container(container.id)

    def logs(self, container, *, stdout: bool = True, stderr: bool = True) -> bytes:
        return container.logs(stdout=stdout, stderr=stderr)

    def log_text(self, container, *, stdout: bool = True, stderr: bool = True) -> str:
        return self.logs(container, stdout=stdout, stderr=stderr).decode("utf-8", "replace")

    def wait_for_log(self, container, needle: str, timeout: float, what: str) -> None:
        """Poll a container's logs until `needle` appears; fail clearly if it exits or times out."""
        deadline = time.monotonic() + timeout
        while True:
            logs = self.log_text(container)
            if needle in logs:
                return
            if self.state(container).ended:
                last = logs.strip().splitlines()[-1:] or ["(no output)"]
                raise RunError(f"{what} exited before it was ready: {last[0]}")
            if time.monotonic() > deadline:
                raise RunError(f"{what} was not ready within {timeout:g} s")
            time.sleep(0.05)

    def read_file(self, container, path: str) -> bytes:
        """A file out of a (possibly stopped) container, through the API."""
        stream, _ = container.get_archive(path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.next()
            if member is None or not member.isfile():
                raise RunError(f"{path} is not a file in {container.name}")
            extracted = tar.extractfile(member)
            return extracted.read() if extracted else b""

    def exec(self, container, argv: list[str], user: str) -> tuple[int, bytes]:
        code, out = container.exec_run(argv, user=user)
        return code, out

    def remove_containers(self, containers: list) -> None:
        """Force-remove containers in parallel (each is a kill and a wait in the engine).

        Never raises, so a teardown cannot mask the error that caused it: a container already
        gone, or an engine that went away, leaves the rest to `lab clean`.
        """

        def remove(container) -> None:
            with contextlib.suppress(Exception):
                container.remove(force=True)

        if containers:
            with ThreadPoolExecutor(max_workers=len(containers)) as pool:
                list(pool.map(remove, containers))

    # --- Networks -----------------------------------------------------------------------------

    def create_network(self, spec: dict):
        """Create a network from `lab.hosts.network_spec`, always carrying the lab's labels."""
        kwargs = {k: v for k, v in spec.items() if k != "name"}
        return self.client.networks.create(
            spec["name"], **{**kwargs, "labels": {**LABELS, **spec.get("labels", {})}}
        )

    def network(self, name: str):
        """This engine's handle on a network (one another engine may have created)."""
        return self.client.networks.get(name)

    def remove_network(self, network) -> None:
        """Remove a network; never raises (see `remove_containers`)."""
        with contextlib.suppress(Exception):
            network.remove()

    # --- What the lab left behind -------------------------------------------------------------

    def project_containers(self) -> list:
        return self.client.containers.list(all=True, filters=PROJECT_FILTER)

    def project_networks(self) -> list:
        return self.client.networks.list(filters=PROJECT_FILTER)

    def project_images(self) -> list:
        return self.client.images.list(filters=PROJECT_FILTER)

    def remove_image(self, image_id: str) -> None:
        self.client.images.remove(image_id, force=True)

    def remove_leftovers(self, run_id: str | None = None) -> dict[str, int]:
        """Remove containers, then networks, by label (one run's, or all the lab's)."""
        label = f"{PROJECT_LABEL}=1" if run_id is None else f"{RUN_LABEL}={run_id}"
        removed = {"containers": 0, "networks": 0}
        for container in self.client.containers.list(all=True, filters={"label": label}):
            try:
                container.remove(force=True)
                removed["containers"] += 1
            except Exception:  # gone already, or refused: `lab clean` reports what stays
                pass
        for network in self.client.networks.list(filters={"label": label}):
            try:
                network.remove()
                removed["networks"] += 1
            except Exception:
                pass
        return removed
