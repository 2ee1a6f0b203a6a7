"""Runs a scenario on real containers: the thin shell between the scenario and the Docker API.

For each mode and repeat, on fresh containers:

    network (labelled, internal) -> server -> capture sidecar in the server's namespace
    -> [netns holder + shaper sidecars, when the scenario sets network conditions]
    -> wait until all say they are ready (their log lines, never a sleep)
    -> client (one shot) -> drain -> stop capture -> stop server -> collect -> remove all

Everything is collected through the Docker API (logs, `get_archive` for the pcap), so a remote
`DOCKER_HOST` works too. Teardown always runs: on success, error, timeout and Ctrl-C/SIGTERM.
"""

from __future__ import annotations

import contextlib
import io
import re
import tarfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from lab import PROJECT_LABEL, faults, hosts
from lab.errors import RunError

Progress = Callable[[str], None]


@dataclass
class ModeRun:
    """What one mode (one repeat) left in its folder, and how long each phase took."""

    mode: str
    repeat: int
    folder: Path
    client_exit: int | None = None
    client_error: str | None = None
    shaping: dict | None = None
    capture_drops: int | None = None  # tcpdump's "packets dropped by kernel"; >0 = capture lost
    timings: dict[str, float] = field(default_factory=dict)
    faults: list[dict] = field(default_factory=list)  # lab.faults.Injector.stop()'s account
    incomplete: list[str] = field(default_factory=list)  # why the capture misses part of the run


def wait_for_log(container, needle: str, timeout: float, what: str) -> None:
    """Poll a container's logs until `needle` appears; fail clearly if it exits or times out."""
    deadline = time.monotonic() + timeout
    while True:
        logs = container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
        if needle in logs:
            return
        container.reload()
        if container.status in {"exited", "dead"}:
            last = logs.strip().splitlines()[-1:] or ["(no output)"]
            raise RunError(f"{what} exited before it was ready: {last[0]}")
        if time.monotonic() > deadline:
            raise RunError(f"{what} was not ready within {timeout:g} s")
        time.sleep(0.05)


def ended_early(server, capture) -> list[str]:
    """Why the capture cannot cover the whole run: its sidecar or the server already ended."""
    reasons = []
    for container, what in ((capture, "the capture (tcpdump)"), (server, "the server")):
        container.reload()
        if container.status in {"exited", "dead"}:
            code = container.attrs.get("State", {}).get("ExitCode")
            reasons.append(f"{what} ended during the run (exit {code})")
    if len(reasons) == 1 and reasons[0].startswith("the server"):
        reasons.append("the capture saw nothing after the server's namespace went away")
    return reasons


def capture_drops(tcpdump_log: str) -> int | None:
    """tcpdump's own count of packets the kernel dropped before it could read them."""
    match = re.search(r"(\d+) packets? dropped by kernel", tcpdump_log)
    return int(match.group(1)) if match else None


def read_file_from(container, path: str) -> bytes:
    """A file out of a (possibly stopped) container, through the API."""
    stream, _ = container.get_archive(path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = tar.next()
        if member is None or not member.isfile():
            raise RunError(f"{path} is not a file in {container.name}")
        extracted = tar.extractfile(member)
        return extracted.read() if extracted else b""


class ModeRunner:
    """Runs one mode once. `containers` and `network` are tracked so teardown cannot miss one."""

    def __init__(self, docker_client, images: dict[str, str], run_id: str, progress: Progress):
        self.docker = docker_client
        self.images = images
        self.run_id = run_id
        self.progress = progress
        self.containers: list = []
        self.network = None

    def _start(self, spec: dict):
        container = self.docker.containers.run(**spec)
        self.containers.append(container)
        return container

    def run(self, plan: ModePlan) -> ModeRun:
        result = ModeRun(plan.mode, plan.repeat, plan.folder)
        plan.folder.mkdir(parents=True, exist_ok=True)
        t = time.monotonic()
        try:
            self._run(plan, result)
        except RunError:
            raise
        except Exception as exc:
            import docker.errors
            import requests.exceptions

            engine_errors = docker.errors.DockerException | requests.exceptions.RequestException
            if isinstance(exc, engine_errors):
                raise RunError(f"{plan.mode}: Docker Engine: {_one_line(exc)}") from exc
            raise
        finally:
            t_teardown = time.monotonic()
            self.teardown()
            result.timings["teardown"] = time.monotonic() - t_teardown
            result.timings["total"] = time.monotonic() - t
        return result

    def _run(self, plan: ModePlan, result: ModeRun) -> None:
        tag = f"{plan.mode}-r{plan.repeat}" if plan.repeats > 1 else plan.mode
        limits = plan.limits
        t0 = time.monotonic()
        self.progress(f"{tag}: starting containers")
        self.network = self.docker.networks.create(
            f"tcplab-{self.run_id}-{tag}",
            driver="bridge",
            internal=True,  # the lab's hosts talk to each other and to nothing else
            labels=hosts.labels(self.run_id, "network", tag),
        )
        server = self._start(
            hosts.server_spec(
                image=self.images["server"], run_id=self.run_id, mode=tag,
                network=self.network.name, command=plan.server_argv, limits=limits,
            )
        )  # fmt: skip
        capture = self._start(
            hosts.capture_spec(
                image=self.images["capture"], run_id=self.run_id, mode=tag,
                server_id=server.id, snaplen=plan.snaplen, limits=limits,
            )
        )  # fmt: skip
        netns = None
        if plan.shaper_argv:
            netns = self._start(
                hosts.netns_spec(
                    image=self.images["client"], run_id=self.run_id, mode=tag,
                    network=self.network.name, limits=limits,
                )
            )  # fmt: skip
            shapers = [
                self._start(
                    hosts.shaper_spec(
                        image=self.images["shaper"],
                        run_id=self.run_id,
                        mode=tag,
                        side=side,
                        target_id=target.id,
                        command=argv,
                        limits=limits,
                    )
                )
                for side, target, argv in (
                    ("server", server, plan.shaper_argv["server"]),
                    ("client", netns, plan.shaper_argv["client"]),
                )
            ]
        wait_for_log(server, '"event": "listening"', plan.ready_timeout, "the server")
        wait_for_log(capture, "listening on", plan.ready_timeout, "the capture (tcpdump)")
        if netns is not None:
            for shaper in shapers:
                wait_for_log(shaper, "shaper ready", plan.ready_timeout, "the shaper")
            result.shaping = {
                "method": _shaper_method(shapers[0]),
                "base_rtt_ms": probe_base_rtt(netns),
            }
        result.timings["containers"] = time.monotonic() - t0

        t1 = time.monotonic()
        self.progress(f"{tag}: traffic")
        client = self._start(
            hosts.client_spec(
                image=self.images["client"], run_id=self.run_id, mode=tag,
                command=plan.client_argv, limits=limits,
                network=self.network.name, netns_of=netns.id if netns else None,
            )
        )  # fmt: skip
        injector = None
        if plan.faults:
            injector = faults.Injector(
                plan.faults, server=server, capture=capture, client=netns or client,
                network=self.network, progress=lambda msg: self.progress(f"{tag}: {msg}"),
            )  # fmt: skip
        try:
            status = client.wait(timeout=plan.run_timeout)
        except Exception as exc:  # requests' ReadTimeout: the client outlived the run timeout
            if isinstance(exc, KeyboardInterrupt):
                raise
            result.client_error = f"the client did not finish within {plan.run_timeout:g} s"
            status = {"StatusCode": None}
        finally:
            if injector is not None:
                result.faults = injector.stop(client_s=time.monotonic() - t1)
        result.client_exit = status.get("StatusCode")
        (plan.folder / "client.jsonl").write_bytes(client.logs(stdout=True, stderr=False))
        client_stderr = client.logs(stdout=False, stderr=True).decode("utf-8", "replace").strip()
        if client_stderr:
            (plan.folder / "client.stderr").write_text(client_stderr + "\n")
        if result.client_exit not in (0, None) and not result.client_error:
            lines = client_stderr.splitlines()
            result.client_error = lines[-1] if lines else f"client exit {result.client_exit}"
        result.timings["traffic"] = time.monotonic() - t1

        # Drain: the last ACKs of the teardown are still in flight when the client exits.
        t2 = time.monotonic()
        self.progress(f"{tag}: draining the capture")
        time.sleep(plan.drain_s)
        result.incomplete = ended_early(server, capture)
        if capture.status == "running":  # ended_early() reloaded it; a killed one stays so
            capture.kill(signal="SIGINT")  # the capture first: stopping the server tears down eth0
        capture.wait(timeout=10)
        (plan.folder / "capture.pcap").write_bytes(read_file_from(capture, hosts.CAPTURE_PATH))
        capture_log = capture.logs(stdout=True, stderr=True)
        (plan.folder / "capture.log").write_bytes(capture_log)
        result.capture_drops = capture_drops(capture_log.decode("utf-8", "replace"))
        server.stop(timeout=5)
        (plan.folder / "server.log").write_bytes(server.logs(stdout=True, stderr=True))
        result.timings["drain"] = time.monotonic() - t2

    def teardown(self) -> None:
        """Remove this mode's containers and network; never raises, so it cannot mask an error.

        Containers go in parallel (each removal is a kill and a wait in the engine), the network
        after them.
        """

        def remove(container) -> None:
            # already gone, or the engine is away: `lab clean` gets the rest
            with contextlib.suppress(Exception):
                container.remove(force=True)

        if self.containers:
            with ThreadPoolExecutor(max_workers=len(self.containers)) as pool:
                list(pool.map(remove, self.containers))
        self.containers.clear()
        if self.network is not None:
            with contextlib.suppress(Exception):
                self.network.remove()
            self.network = None


# The bridge's own round trip, measured from the client's namespace on a port the shapers leave
# alone: a connect to a closed port is one SYN out and one RST back. The best of a few tries.
_PROBE = f"""
import socket, time
best = None
for _ in range(5):
    s = socket.socket(); s.settimeout(1.0); t = time.perf_counter()
    try:
        s.connect(("server", {hosts.PROBE_PORT}))
    except OSError:
        pass
    dt = (time.perf_counter() - t) * 1000.0
    best = dt if best is None else min(best, dt)
    s.close()
print(best)
"""


def probe_base_rtt(container) -> float | None:
    """The unshaped RTT between the hosts in ms (None if the probe could not run)."""
    try:
        code, out = container.exec_run(["python3", "-c", _PROBE], user=hosts.LAB_UID)
        return float(out.decode().strip()) if code == 0 else None
    except Exception:  # a missing figure is reported as such; the run goes on
        return None


def _one_line(exc: BaseException) -> str:
    text = getattr(exc, "explanation", None) or str(exc) or type(exc).__name__
    return str(text).strip().splitlines()[0]


def _shaper_method(shaper) -> str:
    for line in shaper.logs().decode("utf-8", "replace").splitlines():
        if "shaper ready" in line:
            for word in line.split():
                if word.startswith("method="):
                    return word.partition("=")[2]
    return "unknown"


@dataclass(frozen=True)
class ModePlan:
    """Everything the runner needs for one mode and repeat, decided before anything starts."""

    mode: str
    repeat: int
    repeats: int
    folder: Path
    server_argv: list[str]
    client_argv: list[str]
    shaper_argv: dict[str, list[str]] | None
    limits: hosts.Limits
    snaplen: int
    ready_timeout: float
    run_timeout: float
    drain_s: float
    faults: tuple[faults.FaultPlan, ...] = ()


def remove_leftovers(docker_client, run_id: str | None = None) -> dict[str, int]:
    """Remove containers and networks by label (one run's, or all the lab's)."""
    label = f"{PROJECT_LABEL}=1" if run_id is None else f"tcplab.run={run_id}"
    removed = {"containers": 0, "networks": 0}
    for container in docker_client.containers.list(all=True, filters={"label": label}):
        try:
            container.remove(force=True)
            removed["containers"] += 1
        except Exception:
            pass
    for network in docker_client.networks.list(filters={"label": label}):
        try:
            network.remove()
            removed["networks"] += 1
        except Exception:
            pass
    return removed
