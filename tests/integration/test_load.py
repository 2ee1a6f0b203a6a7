"""Load: the threaded server under many connections, nothing lost, duplicated or corrupted.

Runs `scenarios/load-ci.yaml` (200 keep-alive connections x 20 requests, 2,000 HTTP/1.0
connections one at a time and 2,000 with 200 at a time) on real containers, mode by mode as
`lab run` does, and checks from three independent records:

- the client log: every request id exactly once, every response ok, and every CRC-32 of a body
  equal to the CRC-32 of `wire.http.body(name, size)`;
- the server: `docker inspect` just before teardown (no restart, not OOM-killed, the memory and
  pids limits in force), its log (one `listening` line, no `refused`, no `error`, one
  `accepted` per client connection) and its peak memory and thread count from `docker stats`;
- the capture: as many streams and SYNs as the client opened connections, two FINs each, no
  RST but those TCP itself sends (recognised from the packets, see the capture test), and on
  every stream the payload bytes each way the client logged for that local port.

`TCPLAB_FULL_LOAD=1` runs `scenarios/load.yaml` instead (1,000 x 100, 10,000 and 10,000 at
200), about 5 minutes here. The figures of each mode are printed (`pytest -s` shows them).
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
import zlib
from pathlib import Path

import docker
import pytest

from lab import capture, docker_util, hosts, runner
from lab import scenario as sc
from lab.analysis.streams import split_streams
from lab.engine import Engine
from lab.placement import Placement
from lab.results import analyze_mode_folder, plans, read_jsonl
from tests.support import netstat
from tests.support.stats import StatsSampler
from tests.support.teardown import crossed_ack_reset
from wire import http

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
FULL = os.environ.get("TCPLAB_FULL_LOAD", "") == "1"
SCENARIO = REPO / "scenarios" / ("load.yaml" if FULL else "load-ci.yaml")


class WatchedModeRunner(runner.ModeRunner):
    """Samples the server's stats while the mode runs; reads the kernel's reset counters in
    the server's namespace once the capture has drained; inspects the server just before the
    teardown."""

    server_info: dict | None = None
    sampler: StatsSampler | None = None
    server_resets: dict[str, int] | None = None

    def start_server_side(self, plan) -> None:
        super().start_server_side(plan)
        self.sampler = StatsSampler(self.placement.server.client.api, self.server.id)

    def drain(self, plan, result) -> None:
        # The drain's wait first, so a reset sent during it is counted; the namespace goes
        # with the server, which the runner's drain stops.
        time.sleep(plan.drain_s)
        argv = ["cat", "/proc/net/netstat", "/proc/net/snmp"]
        try:
            code, out = self.placement.server.exec(self.server, argv, user=hosts.LAB_UID)
        except docker.errors.APIError:  # a server already gone: the figure stays None
            code, out = 1, b""
        if code == 0:
            self.server_resets = netstat.resets(out.decode())
        super().drain(dataclasses.replace(plan, drain_s=0.0), result)

    def teardown(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()
        if self.server is not None:
            self.server_info = self.placement.server.inspect(self.server)
        super().teardown()


@pytest.fixture(scope="module")
def docker_client(needs_docker):
    client = docker_util.client(timeout=120)
    yield client
    client.close()


@pytest.fixture(scope="module")
def load_run(docker_client, lab_images, tmp_path_factory) -> dict[str, dict]:
    """Every mode of the load scenario, run once; per mode what the assertions need."""
    scenario = sc.load_scenario(SCENARIO)
    run_dir = tmp_path_factory.mktemp("load")
    run_id = f"loadtest-{uuid.uuid4().hex[:8]}"
    out = {}
    for plan in plans(scenario, scenario.modes, run_dir):
        mode = scenario.mode(plan.mode)
        mode_runner = WatchedModeRunner(
            Placement.single(Engine(docker_client)), lab_images, run_id, progress=print
        )
        t0 = time.monotonic()
        result = mode_runner.run(plan)
        wall = time.monotonic() - t0
        t1 = time.monotonic()
        analysis = analyze_mode_folder(plan.folder, (scenario.port_of(mode),)).to_dict()
        out[plan.mode] = {
            "mode": mode,
            "scenario": scenario,
            "result": result,
            "server_info": mode_runner.server_info,
            "server_resets": mode_runner.server_resets,
            "folder": plan.folder,
            "resets": _reset_kinds(plan.folder / "capture.pcap", analysis),
            "memory_peak": mode_runner.sampler.memory_peak,
            "pids_peak": mode_runner.sampler.pids_peak,
            "analysis": analysis,
            "records": read_jsonl(plan.folder / "client.jsonl"),
            "server_log": read_jsonl(plan.folder / "server.log"),
            "wall_s": wall,
            "analysis_s": time.monotonic() - t1,
        }
        _print_figures(plan.mode, out[plan.mode])
    return out


def _reset_kinds(pcap: Path, analysis: dict) -> dict[int, str | None]:
    """Per stream with a reset: None when it is TCP's reset after a crossed ACK and FIN
    (tests.support.teardown), else why it is not."""
    streams = [c["stream"] for c in analysis["per_connection"] if c["rst"]]
    if not streams:
        return {}
    packets = split_streams(capture.read_capture(pcap).packets)  # indexed as tcp.stream
    return {stream: crossed_ack_reset(packets[stream]) for stream in streams}


def _print_figures(name: str, run: dict) -> None:
    a, summary = run["analysis"], run["records"][-1]
    print(
        f"\nload {name}: {summary.get('requests')} requests ({summary.get('ok')} ok) on "
        f"{summary.get('connections')} connections in {summary.get('elapsed_s', 0):.1f} s "
        f"({summary.get('requests', 0) / max(summary.get('elapsed_s', 1), 1e-9):.0f}/s); "
        f"latency p50 {a['latency_p50_ms']:.1f} ms p95 {a['latency_p95_ms']:.1f} ms; capture "
        f"{a['packets']} packets, {a['connections']} streams, {a['syn']} SYN, {a['fin']} FIN, "
        f"{a['rst']} RST, {a['retransmissions']} retransmissions; server peak "
        f"{run['memory_peak'] / 2**20:.1f} MiB, {run['pids_peak']} tasks; "
        f"server's namespace sent resets {run['server_resets']}; "
        f"mode {run['wall_s']:.1f} s, analysis {run['analysis_s']:.1f} s"
    )


def _modes() -> list:
    scenario = sc.load_scenario(SCENARIO)
    return [pytest.param(m.name, id=m.name) for m in scenario.modes]


def _expected(run: dict) -> tuple[int, int]:
    """(requests, connections) the mode must produce."""
    mode, scenario = run["mode"], run["scenario"]
    requests = len(scenario.workload_of(mode).byte_sizes()) * mode.repeat
    connections = min(mode.parallel, requests) if mode.persistent else requests
    return requests, connections


@pytest.mark.parametrize("name", _modes())
def test_every_response_arrives_once_and_intact(load_run, name):
    run = load_run[name]
    assert run["result"].client_exit == 0, run["result"].client_error
    requests, connections = _expected(run)
    records = [r for r in run["records"] if r.get("event") == "request"]
    summary = run["records"][-1]
    assert summary["event"] == "summary"
    # lost or duplicated: every request id from 1 to N exactly once
    ids = [r["request_id"] for r in records]
    assert len(ids) == requests
    assert sorted(ids) == list(range(1, requests + 1))
    assert all(r["ok"] for r in records), next(r["error"] for r in records if not r["ok"])
    # corrupted: the CRC-32 of every body as received against the deterministic body
    workload = run["scenario"].workload_of(run["mode"])
    sizes = {r.name: r.size for r in workload.resources}
    expected_crc = {n: zlib.crc32(http.body(n, s)) for n, s in sizes.items()}
    bad = [r for r in records if r["crc32"] != expected_crc[r["request"]]]
    assert not bad, bad[:3]
    assert summary["connections"] == connections
    assert len({r["conn"] for r in records}) == connections


@pytest.mark.parametrize("name", _modes())
def test_server_held_without_restart_or_refusal(load_run, name):
    run = load_run[name]
    info = run["server_info"]
    assert info is not None, "the server was not inspected before teardown"
    assert info["RestartCount"] == 0
    assert info["State"]["OOMKilled"] is False
    assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 0  # SIGTERM: 0
    assert info["HostConfig"]["Memory"] == run["scenario"].limits.memory
    assert info["HostConfig"]["PidsLimit"] == run["scenario"].limits.pids
    # bounded: under the limit (an OOM kill would have shown above) and a thread per connection
    assert 0 < run["memory_peak"] < run["scenario"].limits.memory
    _, connections = _expected(run)
    assert run["pids_peak"] <= min(connections, run["mode"].parallel) + 16
    events = [e.get("event") for e in run["server_log"]]
    assert events.count("listening") == 1  # one start: a restart would log it again
    assert events.count("refused") == 0
    assert events.count("error") == 0
    assert events.count("accepted") == connections


@pytest.mark.parametrize("name", _modes())
def test_capture_agrees_with_the_client(load_run, name):
    run = load_run[name]
    a = run["analysis"]
    _, connections = _expected(run)
    assert run["result"].capture_drops == 0
    assert a["truncated"] is False
    assert a["connections"] == connections  # Wireshark's tcp.stream numbering
    # a SYN dropped by a full accept queue is sent again: the same stream, one more SYN
    resent = sum(c["syn_retransmissions"] for c in a["per_connection"])
    assert a["syn"] == connections + resent
    assert a["synack"] >= connections
    assert a["fin"] == 2 * connections
    # No reset, but for two dances TCP itself does.
    # 1. An ACK and a FIN that cross (tests.support.teardown has the picture): the side that
    # closes second sends its FIN just as its delayed-ACK timer (~40 ms) sends a pure ACK, on
    # two CPUs, and they reach the other end in the other order; that end, in TIME_WAIT,
    # answers the late ACK with its final ACK again, and the side that closed second, whose
    # socket is gone by then, resets. Both FINs were sent and acknowledged before: nothing is
    # lost. Seen here in HTTP/1.0 at 200 at a time (the client's reset; 9 in 124,000
    # connections) and in keep-alive (the server's reset: 3 in 24,400 connections with two
    # busy-looping processes on the 2 cores, the server namespace's counters saying one RST
    # for a segment no socket owned and no abort); the keep-alive reset seen once in CI
    # "after all its answers" (issue 11 point 8) was this one, as far as its account goes.
    # 2. With reused ports: the server closes first, so it holds TIME_WAIT; a new SYN from a
    # reused client port that the TIME_WAIT socket cannot accept is answered with an ACK of the
    # old connection, the client resets that (killing the TIME_WAIT socket) and sends its SYN
    # again a second later (seen once in CI among 2,000 connections at 200 at a time).
    # Any other reset fails the test, with the server namespace's own counters of the resets it
    # sent and why (tests.support.netstat) and the capture's path.
    why = {
        "server's namespace sent resets": run["server_resets"],  # the kernel's reasons
        "capture": str(run["folder"] / "capture.pcap"),
    }
    seen_ports: set[int] = set()
    for c in sorted(a["per_connection"], key=lambda c: c["stream"]):
        not_crossed = run["resets"].get(c["stream"], "not checked")
        if c["rst"] and not_crossed is None:
            assert c["teardown_complete"], c  # the crossed ACK and FIN: after both FINs
        elif c["rst"]:
            assert not run["mode"].persistent, (c, not_crossed, why)
            assert c["rst_by"] == "client", (c, not_crossed, why)
            assert c["client_port"] in seen_ports, (c, not_crossed, why)
            assert c["syn_retransmissions"] >= 1, (c, not_crossed, why)
        seen_ports.add(c["client_port"])
    # who closed first: the server for HTTP/1.0, the client for keep-alive
    first = "server" if not run["mode"].persistent else "client"
    assert a["closed_first"] == {first: connections}
    # Port by port: the client reuses local ports (10,000 connections took about 7,700 ports
    # here), and Wireshark's rule must still give a stream per connection. So on every client
    # port, as many streams in the capture as connections in the client log, and the payload
    # bytes each way that the client logged sending and receiving from that port.
    summary = run["records"][-1]
    captured: dict[int, list[int]] = {}
    for c in a["per_connection"]:
        row = captured.setdefault(c["client_port"], [0, 0, 0])
        row[0] += 1
        row[1] += c["payload_bytes"]["client"]
        row[2] += c["payload_bytes"]["server"]
    logged: dict[int, list] = {}
    for r in run["records"]:
        if r.get("event") == "request":
            row = logged.setdefault(r["local_port"], [set(), 0, 0])
            row[0].add(r["conn"])
            row[1] += r["bytes_sent"]
            row[2] += r["bytes_received"]
    logged_counts = {port: [len(c), sent, got] for port, (c, sent, got) in logged.items()}
    assert set(captured) == set(logged_counts) == set(summary["local_ports"])
    differ = [(p, got, logged_counts[p]) for p, got in captured.items() if got != logged_counts[p]]
    assert not differ, differ[:3]
    reused = sum(1 for row in captured.values() if row[0] > 1)
    print(f"{name}: {len(captured)} client ports for {connections} connections ({reused} reused)")
