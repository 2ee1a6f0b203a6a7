"""The Docker engine a role runs on: every container and network of a run goes through one.

An `Engine` wraps one Docker SDK client (opened by `lab.docker_util.client`, so every call has
a timeout) and is the only way the lab starts containers, always with the lab's labels. It also
creates and removes networks, reads logs and files out of containers, states the engine's
versions for the manifest, and removes what a run left behind, by label.

A run has the engine of `DOCKER_HOST` (`Engine.from_env`), and for a side named by URL (the
scenario's `hosts:`, `lab run --engine`) that one (`Engine.from_url`); `open_placement` opens
them and checks that two engines share a Swarm (`lab.preflight`), and `lab.placement` says which
side of a run uses which engine. Everything is collected through the
API (logs, `get_archive`), so a remote engine works as well as the local one.
"""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from lab import LABELS, PROJECT_LABEL, RUN_LABEL, docker_util
from lab.errors import RunError, UsageError
from lab.placement import SIDES, Placement, Side
from lab.preflight import PING_TIMEOUT_S, network_side, same_engine, swarm_of, swarm_problem

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
        return cls(
            docker_util.client(timeout=timeout), name=os.environ.get("DOCKER_HOST") or "local"
        )

    @classmethod
    def from_url(
        cls,
        url: str,
        role: str | None = None,
        *,
        ping_timeout: float = 5.0,
        timeout: float = docker_util.DEFAULT_TIMEOUT,
    ) -> Engine:
        """The engine at `url`, which must answer a ping within `ping_timeout` seconds;
        RunError naming the role (the side it runs, when it runs one) and the URL if not."""
        try:
            client = docker_util.client_for_url(url, timeout=ping_timeout)
            client.ping()
        except Exception as exc:  # unreachable, refused, TLS, ssh: the same to the user
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            whose = f"the {role}'s Docker engine" if role else "the Docker engine"
            raise RunError(
                f"{whose} {url} did not answer within {ping_timeout:g} s "
                f"({type(exc).__name__}: {first[:200]})"
            ) from exc
        client.api.timeout = timeout  # every later call gets the usual, longer timeout
        return cls(client, name=url)

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

    def info(self) -> dict:
        """`docker info`: the engine's ID and its Swarm section (lab.preflight reads them)."""
        return self.client.info()

    def image_id(self, ref: str) -> str:
        return self.client.images.get(ref).id

    def image_ids(self, refs: list[str]) -> dict[str, str | None]:
        """ref -> image ID on this engine, None for a ref it does not have."""
        out: dict[str, str | None] = {}
        for ref in refs:
            try:
                out[ref] = self.client.api.inspect_image(ref)["Id"]
            except NotFound:
                out[ref] = None
        return out

    @staticmethod
    def describe_error(exc: BaseException) -> str | None:
        """One line for an error of the engine or of the connection to it; None for any other."""
        if not isinstance(exc, docker.errors.DockerException | requests.RequestException):
            return None
        text = getattr(exc, "explanation", None) or str(exc) or type(exc).__name__
        return str(text).strip().splitlines()[0]

    def save_images(self, refs: list[str], chunk_size: int = 2 << 20) -> Iterator[bytes]:
        """`docker save REF...` as a stream of chunks: one archive, shared layers once.

        The SDK saves one image at a time (`images.get(ref).save()`); the API's /images/get
        takes several names, so this calls it through the SDK's low-level helpers.
        """
        api = self.client.api
        response = api._get(api._url("/images/get"), params={"names": refs}, stream=True)
        api._raise_for_status(response)
        return response.iter_content(chunk_size=chunk_size)

    def load_images(self, chunks: Iterable[bytes], timeout: float) -> None:
        """`docker load` from a stream of chunks (sent as they come, never held whole)."""
        api = self.client.api
        saved, api.timeout = api.timeout, timeout
        try:
            self.client.images.load(chunks)
        finally:
            api.timeout = saved

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

    def remove_network(self, network, drain_s: float = 0.0) -> None:
        """Remove a network; never raises (see `remove_containers`). An overlay network still
        has the endpoints of containers just removed on other engines for a moment: retry for
        up to `drain_s` seconds while the engine says it is in use."""
        deadline = time.monotonic() + drain_s
        while True:
            try:
                network.remove()
                return
            except NotFound:
                return
            except Exception as exc:
                in_use = "in use" in str(exc) or "active endpoints" in str(exc)
                if not in_use or time.monotonic() > deadline:
                    return
            time.sleep(0.2)

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
        return {
            "containers": self.remove_leftover_containers(run_id),
            "networks": self.remove_leftover_networks(run_id),
        }

    def remove_leftover_containers(self, run_id: str | None = None) -> int:
        removed = 0
        for container in self.client.containers.list(all=True, filters=_label(run_id)):
            try:
                container.remove(force=True)
                removed += 1
            except Exception:  # gone already, or refused: `lab clean` reports what stays
                pass
        return removed

    def remove_leftover_networks(self, run_id: str | None = None, drain_s: float = 0.0) -> int:
        removed = 0
        for network in self.client.networks.list(filters=_label(run_id)):
            self.remove_network(network, drain_s=drain_s)
            try:
                self.client.networks.get(network.id)
            except NotFound:
                removed += 1
            except Exception:
                pass
        return removed

    def wait_networks_gone(self, run_id: str | None, within_s: float) -> bool:
        """Whether this engine lists none of the run's networks (any more) within `within_s`."""
        deadline = time.monotonic() + within_s
        while self.client.networks.list(filters=_label(run_id)):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True


def _label(run_id: str | None) -> dict:
    """The filter for one run's objects, or for all the lab's."""
    return {"label": f"{PROJECT_LABEL}=1" if run_id is None else f"{RUN_LABEL}={run_id}"}


def open_placement(local: Engine, urls: Mapping[str, str]) -> Placement[Engine]:
    """Each side's engine: the one named by URL (pinged within a few seconds), else `local`
    (DOCKER_HOST's). Two engines must be in one Swarm (lab.preflight): RunError for an engine
    that does not answer, UsageError for engines a run cannot span. Nothing is started."""
    opened: dict[str, Engine] = {}
    by_side: dict[str, Engine] = {}
    try:
        for side in SIDES:
            url = urls.get(side)
            if url is None:
                by_side[side] = local
            else:
                if url not in opened:
                    opened[url] = Engine.from_url(url, side, ping_timeout=PING_TIMEOUT_S)
                by_side[side] = opened[url]
        server, client = by_side["server"], by_side["client"]
        if server is client:
            return Placement.single(server)
        server_facts, client_facts = swarm_of(server.info()), swarm_of(client.info())
        if same_engine(server_facts, client_facts):
            return Placement.single(server)  # two URLs of one engine
        problem = swarm_problem(server_facts, client_facts, server.name, client.name)
        if problem:
            raise UsageError(problem)
        side = Side(network_side(server_facts, client_facts))
        return Placement(server=server, client=client, network_side=side, overlay=True)
    except BaseException:
        for engine in opened.values():
            engine.close()
        raise
