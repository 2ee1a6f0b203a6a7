"""Runs one mode of a scenario on real containers: the thin shell between a plan and the engines.

For each mode and repeat, on fresh containers, one phase after another (`ModeRunner.run`):

    create network      labelled, internal: a bridge, or across two engines an overlay made
                        on the Swarm manager's engine
    start server side   server -> capture sidecar in its namespace -> [server-side shaper]
    start client side   [netns holder -> client's capture -> client-side shaper] (two
                        engines: at the same time as the server side)
    wait ready          each says so in its log (never a sleep) -> [the path's own RTT, MTU]
    run                 the client (one shot), with the fault injector beside it
    collect client      its log, at once, so that a later failure still leaves it
    drain               0.2 s plus two RTTs -> stop the capture -> stop the server
    collect             pcap, capture log, server log [the client's pcap and capture log]
    tear down           every container, on every engine, then the network

`lab.placement` says which engine each container starts on (both sides on the one engine of
`DOCKER_HOST` unless a scenario's `hosts:` or `lab run --engine` names others). Everything is
collected through the Docker API, so a remote engine works too. Teardown always runs: on
success, error, timeout and Ctrl-C/SIGTERM (`lab run` turns SIGTERM into KeyboardInterrupt).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lab import browser, faults, hosts, tls
from lab.errors import RunError
from lab.placement import Placement

if TYPE_CHECKING:
    # For annotations only: lab.results imports this module for ModePlan, and `lab report`
    # re-reads a run folder without the Docker SDK.
    from lab.engine import ContainerState, Engine

Progress = Callable[[str], None]
# How long an overlay network may keep the endpoints of containers just removed on the other
# engine (the Swarm's gossip takes a moment) before its removal is given up to `lab clean`.
NETWORK_DRAIN_S = 15.0
CLIENT_CAPTURE = "capture-client.pcap"  # beside capture.pcap, when a run captures on both ends
TLS_KEYLOG = "tls-keys.log"  # beside capture.pcap, in a TLS mode: the run's SSLKEYLOGFILE


def _json_lines(data: bytes) -> list[dict]:
    """The JSON objects of a client log (lines that are not one are left out)."""
    out = []
    for line in data.decode("utf-8", "replace").splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


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
    path: dict | None = None  # two engines: the probed base RTT and the client's MTU


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
    client: str = "lab"  # or "browser": headless Chromium (tcplab/browser) in the client's place
    capture_client: bool = False  # a second tcpdump in the client's namespace
    # a TLS mode: the server's certificate and key, the client's CA (lab.tlsca), as PEM text
    server_env: dict[str, str] = field(default_factory=dict, repr=False)
    client_env: dict[str, str] = field(default_factory=dict, repr=False)
    tls: bool = False  # write the client's key log as tls-keys.log beside the capture

    @property
    def tag(self) -> str:
        """The mode's name in container and network names, with the repeat if there are more."""
        return f"{self.mode}-r{self.repeat}" if self.repeats > 1 else self.mode


# --- Pure parts -----------------------------------------------------------------------------


def ended_early(capture: ContainerState, server: ContainerState) -> list[str]:
    """Why the capture cannot cover the whole run: its sidecar or the server already ended."""
    reasons = [
        f"{what} ended during the run (exit {state.exit_code})"
        for state, what in ((capture, "the capture (tcpdump)"), (server, "the server"))
        if state.ended
    ]
    if len(reasons) == 1 and reasons[0].startswith("the server"):
        reasons.append("the capture saw nothing after the server's namespace went away")
    return reasons


def capture_drops(tcpdump_log: str) -> int | None:
    """tcpdump's own count of packets the kernel dropped before it could read them."""
    match = re.search(r"(\d+) packets? dropped by kernel", tcpdump_log)
    return int(match.group(1)) if match else None


def shaper_method(shaper_log: str) -> str:
    """How a shaper made the conditions (`method=` on its ready line): netem or nfqueue."""
    for line in shaper_log.splitlines():
        if "shaper ready" in line:
            for word in line.split():
                if word.startswith("method="):
                    return word.partition("=")[2]
    return "unknown"


# The path's own round trip, measured from the client's namespace on a port the shapers leave
# alone: a connect to a closed port is one SYN out and one RST back. The best of five refusals
# (only a refusal is a round trip: a name not resolved yet, as on an overlay network a moment
# after the client joined, fails without one), and the interface's MTU.
_PROBE = f"""
import json, socket, sys, time
best, tries, deadline = None, 0, time.monotonic() + float(sys.argv[1])
while tries < 5 and time.monotonic() < deadline:
    s = socket.socket(); s.settimeout(1.0); t = time.perf_counter()
    try:
        s.connect(("server", {hosts.PROBE_PORT}))
    except ConnectionRefusedError:
        dt = (time.perf_counter() - t) * 1000.0
        best = dt if best is None else min(best, dt)
        tries += 1
    except OSError:
        time.sleep(0.05)
    finally:
        s.close()
mtu = int(open("/sys/class/net/eth0/mtu").read())
print(json.dumps({{"base_rtt_ms": best, "mtu": mtu}}))
"""


def probe_path(engine: Engine, container, within_s: float = 5.0) -> dict:
    """The unshaped RTT to the server in ms and the client's MTU (None where the probe failed:
    no refusal came back within `within_s` seconds)."""
    argv = ["python3", "-c", _PROBE, f"{within_s:g}"]
    try:
        code, out = engine.exec(container, argv, user=hosts.LAB_UID)
        if code == 0:
            return json.loads(out.decode().strip().splitlines()[-1])
    except Exception:  # a missing figure is reported as such; the run goes on
        pass
    return {"base_rtt_ms": None, "mtu": None}


# --- The phases -----------------------------------------------------------------------------


class ModeRunner:
    """Runs one mode once, phase by phase. Every container is tracked with the engine it was
    started on, and the network with its engine, so the teardown cannot miss one."""

    def __init__(
        self, placement: Placement[Engine], images: dict[str, str], run_id: str, progress: Progress
    ) -> None:
        self.placement = placement
        self.images = images
        self.run_id = run_id
        self.progress = progress
        self.started: list[tuple[Engine, object]] = []
        self.network = None
        # What one phase hands to the next.
        self.server = self.capture = self.netns = self.client = None
        self.client_capture = None
        self.shapers: dict[str, object] = {}  # side -> shaper container

    def run(self, plan: ModePlan) -> ModeRun:
        result = ModeRun(plan.mode, plan.repeat, plan.folder)
        plan.folder.mkdir(parents=True, exist_ok=True)
        t = time.monotonic()
        try:
            self._phases(plan, result)
        except RunError:
            raise
        except Exception as exc:
            reason = self.placement.server.describe_error(exc)  # every engine knows the SDK's
            if reason is None:
                raise
            raise RunError(f"{plan.mode}: Docker Engine: {reason}") from exc
        finally:
            t_teardown = time.monotonic()
            self.teardown()
            result.timings["teardown"] = time.monotonic() - t_teardown
            result.timings["total"] = time.monotonic() - t
        return result

    def _phases(self, plan: ModePlan, result: ModeRun) -> None:
        t = time.monotonic()
        self.progress(f"{plan.tag}: starting containers")
        self.create_network(plan)
        # The client side starts before the server side is ready (it needs only the network),
        # so the two sides' start-ups overlap. On two engines they start at the same time: the
        # first container on each engine sets the overlay network up there (about 1.5 s here).
        if self.placement.split:
            with ThreadPoolExecutor(max_workers=1) as pool:  # joined before any teardown
                client_side = pool.submit(self.start_client_side, plan)
                self.start_server_side(plan)
                client_side.result()
        else:
            self.start_server_side(plan)
            self.start_client_side(plan)
        self.wait_ready(plan, result)
        result.timings["containers"] = time.monotonic() - t

        t = time.monotonic()
        self.progress(f"{plan.tag}: traffic")
        self.run_client(plan, result)
        self.collect_client(plan, result)
        result.timings["traffic"] = time.monotonic() - t

        # Drain: the last ACKs of the teardown are still in flight when the client exits.
        t = time.monotonic()
        self.progress(f"{plan.tag}: draining the capture")
        self.drain(plan, result)
        self.collect(plan, result)
        result.timings["drain"] = time.monotonic() - t

    def _start(self, spec: dict):
        """Start a container on the engine its role is placed on, and track it."""
        engine = self.placement.engine_for_spec(spec)
        container = engine.start(spec)
        self.started.append((engine, container))
        return container

    def _common(self, plan: ModePlan) -> dict:
        return {"run_id": self.run_id, "mode": plan.tag, "limits": plan.limits}

    def create_network(self, plan: ModePlan) -> None:
        spec = hosts.network_spec(run_id=self.run_id, mode=plan.tag, overlay=self.placement.overlay)
        self.network = self.placement.network_engine.create_network(spec)

    def start_server_side(self, plan: ModePlan) -> None:
        common = self._common(plan)
        self.server = self._start(
            hosts.server_spec(
                image=self.images["server"], network=self.network.name,
                command=plan.server_argv, environment=plan.server_env, **common,
            )
        )  # fmt: skip
        self.capture = self._start(
            hosts.capture_spec(
                image=self.images["capture"], server_id=self.server.id, snaplen=plan.snaplen,
                **common,
            )
        )  # fmt: skip
        if plan.shaper_argv:
            self.shapers["server"] = self._start(
                hosts.shaper_spec(
                    image=self.images["shaper"], side="server", target_id=self.server.id,
                    command=plan.shaper_argv["server"], **common,
                )
            )  # fmt: skip

    def start_client_side(self, plan: ModePlan) -> None:
        """In a shaped run, on two engines, or captured on both ends, the holder of the client's
        namespace (the base RTT is probed from it); the client's capture; in a shaped run, its
        shaper. (The client itself starts when the traffic does; otherwise it is the whole
        client side.)"""
        if not (plan.shaper_argv or self.placement.overlay or plan.capture_client):
            return
        common = self._common(plan)
        self.netns = self._start(
            hosts.netns_spec(image=self.images["client"], network=self.network.name, **common)
        )
        if plan.capture_client:
            self.client_capture = self._start(
                hosts.capture_spec(
                    image=self.images["capture"], server_id=self.netns.id, snaplen=plan.snaplen,
                    role="capture-client", **common,
                )
            )  # fmt: skip
        if not plan.shaper_argv:
            return
        self.shapers["client"] = self._start(
            hosts.shaper_spec(
                image=self.images["shaper"], side="client", target_id=self.netns.id,
                command=plan.shaper_argv["client"], **common,
            )
        )  # fmt: skip

    def wait_ready(self, plan: ModePlan, result: ModeRun) -> None:
        """Until every container has said it is ready; then the path's own RTT probed from the
        client's namespace (in a shaped run, on a port the shapers leave alone), and in a
        shaped run the shaping method."""
        server_side, client_side = self.placement.server, self.placement.client
        timeout = plan.ready_timeout
        server_side.wait_for_log(self.server, '"event": "listening"', timeout, "the server")
        server_side.wait_for_log(self.capture, "listening on", timeout, "the capture (tcpdump)")
        if self.client_capture is not None:
            client_side.wait_for_log(
                self.client_capture, "listening on", timeout, "the client's capture (tcpdump)"
            )
        if self.shapers:
            server_side.wait_for_log(self.shapers["server"], "shaper ready", timeout, "the shaper")
            client_side.wait_for_log(self.shapers["client"], "shaper ready", timeout, "the shaper")
        if self.netns is None:
            return
        path = probe_path(client_side, self.netns, within_s=timeout)
        if self.placement.overlay:
            result.path = path
            if path["base_rtt_ms"] is None:
                raise RunError(
                    f"the client's engine could not reach the server over the overlay network "
                    f"within {timeout:g} s: are 7946/tcp, 7946/udp and 4789/udp open between "
                    "the two hosts (and 2377/tcp to the manager)?"
                )
        if self.shapers:
            result.shaping = {
                "method": shaper_method(server_side.log_text(self.shapers["server"])),
                "base_rtt_ms": path["base_rtt_ms"],
            }

    def run_client(self, plan: ModePlan, result: ModeRun) -> None:
        """The client, until it exits or the run times out, with the scenario's faults."""
        t = time.monotonic()
        if plan.client == "browser":
            spec = hosts.browser_spec(
                image=self.images["browser"], command=plan.client_argv,
                network=self.network.name, netns_of=self.netns.id if self.netns else None,
                **self._common(plan),
            )  # fmt: skip
        else:
            spec = hosts.client_spec(
                image=self.images["client"], command=plan.client_argv,
                network=self.network.name, netns_of=self.netns.id if self.netns else None,
                environment=plan.client_env, **self._common(plan),
            )  # fmt: skip
        self.client = self._start(spec)
        injector = None
        if plan.faults:
            injector = faults.Injector(
                plan.faults, server=self.server, capture=self.capture,
                client=self.netns or self.client,
                network=self._network_on(self.placement.client),
                progress=lambda msg: self.progress(f"{plan.tag}: {msg}"),
            )  # fmt: skip
        try:
            result.client_exit = self.placement.client.wait(self.client, plan.run_timeout)
        finally:
            if injector is not None:
                result.faults = injector.stop(client_s=time.monotonic() - t)
        if result.client_exit is None:
            result.client_error = f"the client did not finish within {plan.run_timeout:g} s"

    def _network_on(self, engine: Engine):
        """The run's network as `engine` sees it: only a container's engine can disconnect it."""
        if engine is self.placement.network_engine:
            return self.network
        return engine.network(self.network.name)

    def collect_client(self, plan: ModePlan, result: ModeRun) -> None:
        engine = self.placement.client
        if plan.client == "browser":
            self.collect_browser(plan, result)
            return
        log = engine.logs(self.client, stderr=False)
        (plan.folder / "client.jsonl").write_bytes(log)
        if plan.tls:  # the SSLKEYLOGFILE Wireshark and tshark decrypt the capture with
            (plan.folder / TLS_KEYLOG).write_text(tls.keylog_text(_json_lines(log)))
        client_stderr = engine.log_text(self.client, stdout=False).strip()
        if client_stderr:
            (plan.folder / "client.stderr").write_text(client_stderr + "\n")
        if result.client_exit not in (0, None) and not result.client_error:
            lines = client_stderr.splitlines()
            result.client_error = lines[-1] if lines else f"client exit {result.client_exit}"

    def collect_browser(self, plan: ModePlan, result: ModeRun) -> None:
        """The browser's net-log (its stdout) and its log (Chromium's stderr, then the driver's
        JSON line), beside the capture (lab.browser reads them)."""
        engine = self.placement.client
        (plan.folder / browser.NETLOG_FILE).write_bytes(engine.logs(self.client, stderr=False))
        log = engine.log_text(self.client, stdout=False)
        (plan.folder / browser.LOG_FILE).write_text(log)
        if plan.tls:  # Chromium's own key log, carried in the driver's last line
            keylog = browser.driver_summary(log).get("keylog")
            if keylog:
                (plan.folder / TLS_KEYLOG).write_text(keylog)
        if result.client_exit not in (0, None) and not result.client_error:
            errors = [ln for ln in log.splitlines() if ln.startswith("error:")]
            result.client_error = errors[-1] if errors else f"browser exit {result.client_exit}"

    def drain(self, plan: ModePlan, result: ModeRun) -> None:
        """Let the last packets reach the capture, then stop it (and the client's), then the
        server."""
        engine = self.placement.server
        time.sleep(plan.drain_s)
        if self.client_capture is not None:
            _stop_capture(self.placement.client, self.client_capture, "the client's capture")
        capture = engine.state(self.capture)
        result.incomplete = ended_early(capture, engine.state(self.server))
        # the capture first: stopping the server ends eth0
        _stop_capture(engine, self.capture, "the capture", capture)
        self.server.stop(timeout=5)

    def collect(self, plan: ModePlan, result: ModeRun) -> None:
        """What the server side left: the pcap, tcpdump's account, the server's log (and the
        client's pcap and account when it captured too)."""
        engine = self.placement.server
        result.capture_drops = _collect_capture(engine, self.capture, plan.folder / "capture")
        (plan.folder / "server.log").write_bytes(engine.logs(self.server))
        if self.client_capture is not None:
            stem = plan.folder / Path(CLIENT_CAPTURE).stem
            dropped = _collect_capture(self.placement.client, self.client_capture, stem)
            if dropped is not None:  # either capture losing packets is a lost capture
                result.capture_drops = (result.capture_drops or 0) + dropped

    def teardown(self) -> None:
        """Remove this mode's containers, every engine at once, then the network. Never raises,
        so it cannot mask the error that ended the run."""
        engines = self.placement.engines()
        with ThreadPoolExecutor(max_workers=len(engines)) as pool:
            list(pool.map(self._remove_containers_on, engines))
        self.started.clear()
        if self.network is not None:
            drain_s = NETWORK_DRAIN_S if self.placement.overlay else 0.0
            self.placement.network_engine.remove_network(self.network, drain_s=drain_s)
            self.network = None

    def _remove_containers_on(self, engine: Engine) -> None:
        engine.remove_containers([c for e, c in self.started if e is engine])


def _stop_capture(engine: Engine, container, what: str, state: ContainerState | None = None):
    """SIGINT to a tcpdump still running (a killed one stays so), then wait for it to write
    its last packets and its account."""
    if (state or engine.state(container)).status == "running":
        container.kill(signal="SIGINT")
    if engine.wait(container, timeout=10) is None:
        raise RunError(f"{what} (tcpdump) did not stop within 10 s")


def _collect_capture(engine: Engine, container, stem: Path) -> int | None:
    """A capture's pcap and log as STEM.pcap and STEM.log; tcpdump's count of dropped packets."""
    stem.with_suffix(".pcap").write_bytes(engine.read_file(container, hosts.CAPTURE_PATH))
    log = engine.logs(container)
    stem.with_suffix(".log").write_bytes(log)
    return capture_drops(log.decode("utf-8", "replace"))


def remove_leftovers(placement: Placement[Engine], run_id: str | None = None) -> dict[str, int]:
    """Remove containers and networks by label (one run's, or all the lab's), on every engine:
    every engine's containers first, since an overlay network outlives none of its endpoints;
    then the networks, the network engine's first."""
    engines = placement.engines()
    network_first = sorted(engines, key=lambda e: e is not placement.network_engine)
    drain_s = NETWORK_DRAIN_S if placement.overlay else 0.0
    removed = {
        "containers": sum(e.remove_leftover_containers(run_id) for e in engines),
        "networks": sum(e.remove_leftover_networks(run_id, drain_s) for e in network_first),
    }
    if placement.overlay:
        # A worker still lists an overlay network the manager removed for a moment (0.3 s
        # here); Docker drops it by itself. Wait, so that the run ends with nothing listed.
        for engine in network_first[1:]:
            engine.wait_networks_gone(run_id, within_s=5.0)
    return removed
