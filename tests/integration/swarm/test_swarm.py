"""page10 with the server on one Docker engine and the client on another, joined by a Swarm
overlay network: the textbook's counts, the path (MTU, MSS, base RTT), the images pushed
without a registry, and nothing left on either engine after a run or a Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import docker
import pytest

from lab import hosts, image_sync, runner
from lab import scenario as sc
from lab.engine import Engine, open_placement
from lab.results import plans
from tests.integration import test_faults

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
PAGE10 = REPO / "scenarios" / "page10.yaml"
IP_TCP_HEADERS = 40


def lab_argv(nodes) -> list[str]:
    server, client = nodes
    return [
        sys.executable, "-m", "lab", "run", str(PAGE10),
        "--engine", f"server={server.url}", "--engine", f"client={client.url}",
    ]  # fmt: skip


def leftovers(nodes, settle_s: float = 0.0) -> list[str]:
    """Every object labelled tcplab.project=1 on either node (after up to `settle_s` seconds:
    a worker lists an overlay network the manager removed for a moment)."""
    deadline = time.monotonic() + settle_s
    while True:
        found = []
        for node in nodes:
            api = node.client(timeout=30).api
            label = {"label": "tcplab.project=1"}
            found += [
                f"{node.url} {c['Names'][0]}" for c in api.containers(all=True, filters=label)
            ]
            found += [f"{node.url} {n['Name']}" for n in api.networks(filters=label)]
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_page10_across_two_engines(swarm_nodes, tmp_path):
    """page10 as it is, but captured on both ends: the clocks' offset and one-way delays."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "120"}
    scenario = tmp_path / "page10-both-ends.yaml"
    text = PAGE10.read_text()
    assert "\ncapture: {" in text
    scenario.write_text(text.replace("\ncapture: {", "\ncapture: {sides: [server, client], "))
    argv = lab_argv(swarm_nodes)
    argv[argv.index(str(PAGE10))] = str(scenario)
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    analysis = json.loads((run_dir / "analysis.json").read_text())
    modes = {m["name"]: m for m in analysis["modes"]}
    assert (modes["http1.0"]["connections"], modes["http1.0"]["handshake_packets"]) == (10, 30)
    assert (modes["keepalive"]["connections"], modes["keepalive"]["handshake_packets"]) == (1, 3)

    manifest = json.loads((run_dir / "manifest.json").read_text())
    server, client = swarm_nodes
    assert manifest["engines"]["server"]["url"] == server.url
    assert manifest["engines"]["client"]["url"] == client.url
    assert manifest["engines"]["server"]["manager"] is True
    path = manifest["path"]
    assert path["network_driver"] == "overlay" and path["mtu"] == hosts.OVERLAY_MTU
    # The SYNs announce what fits the overlay's MTU (IPv4 and TCP headers: 40 bytes; with
    # timestamps a segment carries 12 bytes less), and the analysis' segment size agrees. A
    # bridge's 1500-byte MTU would announce 1460.
    assert path["syn_mss"] == hosts.OVERLAY_MTU - IP_TCP_HEADERS
    segments = {c["mss"] for m in modes.values() for c in m["per_connection"]}
    assert max(segments) <= hosts.OVERLAY_MTU - IP_TCP_HEADERS
    assert path["base_rtt_ms"] is not None and 0 < path["base_rtt_ms"] < 20
    # Fresh nodes: the images went to both, each side what its containers start.
    pushed = {t["engine"]: t for t in manifest["image_transfers"]}
    assert set(pushed) == {server.url, client.url}
    assert all(t["bytes"] > 10_000_000 for t in pushed.values())
    assert any(r.startswith("tcplab/client:") for r in pushed[client.url]["images"])
    assert any(r.startswith("tcplab/capture:") for r in pushed[client.url]["images"])
    # Two captures: the nodes share this machine's kernel clock, so the true offset is 0 and
    # must lie within the estimate's bound; the bound is a fraction of the base RTT.
    for name, mode in modes.items():
        c = mode["clock"]
        print(f"{name}: offset {c['offset_ms']} ms +- {c['bound_ms']} ({c['matched']} packets)")
        assert abs(c["offset_ms"]) <= c["bound_ms"] <= path["base_rtt_ms"], name
        for way in c["one_way"].values():
            assert 0 <= way["min_ms"] <= way["median_ms"] < 20, name
    assert abs(path["clock_offset_ms"]) <= path["clock_bound_ms"]
    assert "clocks:" in done.stdout and "one-way delays, keepalive:" in done.stdout
    assert leftovers(swarm_nodes) == []


def test_shaped_run_across_engines_measures_the_shaped_rtt_plus_the_base(swarm_nodes, tmp_path):
    """page10-wan's conditions with each shaper on its side's engine: the handshakes take the
    configured RTT plus the overlay's own, probed before the traffic. Six connections, so the
    verdict is a median of six handshakes: with one (the keepalive mode), one late wake-up of
    a shaper on a busy machine decided it once in CI (56.2 ms against 50.3 +- 5.0)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "120"}
    argv = [*lab_argv(swarm_nodes), "--mode", "keepalive-6"]
    argv[argv.index(str(PAGE10))] = str(REPO / "scenarios" / "page10-wan.yaml")
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    analysis = json.loads((run_dir / "analysis.json").read_text())
    check = analysis["network"]["rtt_check"]
    base = json.loads((run_dir / "manifest.json").read_text())["path"]["base_rtt_ms"]
    expected = analysis["network"]["rtt_ms"] + base  # the path's probe, rounded to 1 us
    assert check["ok"] and check["expected_ms"] == pytest.approx(expected, abs=0.01)
    assert leftovers(swarm_nodes) == []


class Inspecting(runner.ModeRunner):
    """Records `docker inspect` of every container it started, on its engine, before teardown."""

    def teardown(self) -> None:
        self.inspected = [(engine.name, engine.inspect(c)) for engine, c in self.started]
        super().teardown()


def test_the_nodes_broad_settings_never_reach_the_lab_containers(swarm_nodes, lab_images, tmp_path):
    """The nodes run with nearly every privilege; the lab's containers inside them (a shaped
    run: every role) keep exactly their least-privilege specs, each on its side's engine."""
    scenario = sc.parse_scenario(
        "name: priv\nprotocol: echo\nworkload: {messages: [a, b]}\n"
        "modes: [{name: np, persistent: false}]\nnetwork: {rtt: 2}\n"
    )
    (plan,) = plans(scenario, scenario.modes, tmp_path)
    server, client = swarm_nodes
    local = Engine.from_env()
    placement = open_placement(local, {"server": server.url, "client": client.url})
    try:
        assert placement.overlay
        every_image = set(lab_images.values())
        image_sync.sync_images(
            local, {placement.server: every_image, placement.client: every_image}, print
        )
        mode_runner = Inspecting(placement, lab_images, f"privtest-{uuid.uuid4().hex[:8]}", print)
        result = mode_runner.run(plan)
    finally:
        for engine in {local, placement.server, placement.client}:
            engine.close()
    assert result.client_exit == 0, result.client_error
    where = {}
    for engine, info in mode_runner.inspected:
        role = info["Config"]["Labels"]["tcplab.role"]
        where[role] = engine
        host = info["HostConfig"]
        assert host["Privileged"] is False, role
        assert host["CapDrop"] == ["ALL"], role
        assert set(host["CapAdd"] or []) <= {"NET_RAW", "SETUID", "SETGID", "NET_ADMIN"}, role
        assert host["SecurityOpt"] == ["no-new-privileges"], role  # no "unconfined" anything
        assert not host.get("Devices") and not host.get("DeviceCgroupRules"), role
        assert not host.get("Binds") and not host.get("PortBindings"), role
    assert where == {
        "server": server.url, "capture": server.url, "shaper-server": server.url,
        "netns": client.url, "shaper-client": client.url, "client": client.url,
    }  # fmt: skip
    # One mode's teardown (not a whole run's, which waits for the worker): a moment to settle.
    assert leftovers(swarm_nodes, settle_s=5.0) == []


def test_ctrl_c_mid_run_leaves_nothing_on_either_engine(swarm_nodes, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        lab_argv(swarm_nodes), cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    client_api = swarm_nodes[1].client(timeout=30).api
    try:
        deadline = time.monotonic() + 240  # the images may still be on their way
        while time.monotonic() < deadline and proc.poll() is None:
            # the client side's first container: both sides are starting or running
            if client_api.containers(all=True, filters={"label": "tcplab.project=1"}):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        interrupted_at = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        assert time.monotonic() - interrupted_at < 30
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = proc.stderr.read().decode()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr, stderr
    assert leftovers(swarm_nodes) == []


def test_a_blocked_overlay_port_is_named(swarm_nodes, tmp_path):
    """VXLAN (4789/udp) dropped on the client's node: the run stops at the ready timeout and
    names the ports to open, instead of a client that cannot connect."""
    scenario = tmp_path / "page10-quick.yaml"
    text = PAGE10.read_text()
    assert "\ntimeouts: {" in text
    scenario.write_text(text.replace("\ntimeouts: {", "\ntimeouts: {ready: 3, "))
    argv = [*lab_argv(swarm_nodes), "--mode", "keepalive"]
    argv[argv.index(str(PAGE10))] = str(scenario)
    rule = ["iptables", "INPUT", "-p", "udp", "--dport", "4789", "-j", "DROP"]
    node = swarm_nodes[1].container
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    assert node.exec_run([rule[0], "-I", *rule[1:]]).exit_code == 0
    try:
        done = subprocess.run(
            argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
    finally:
        node.exec_run([rule[0], "-D", *rule[1:]])
    assert done.returncode == 1, done.stderr
    assert "4789/udp" in done.stderr and "could not reach the server" in done.stderr
    assert leftovers(swarm_nodes) == []


def test_engines_in_no_common_swarm_are_refused_before_anything_starts(swarm_nodes, tmp_path):
    """The host's own engine is in no Swarm: exit 2, one line with the fix, no run folder."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [
        sys.executable,
        "-m",
        "lab",
        "run",
        str(PAGE10),
        "--engine",
        f"client={swarm_nodes[1].url}",
    ]
    host = docker.from_env(timeout=10)
    in_swarm = host.info()["Swarm"].get("LocalNodeState") == "active"
    host.close()
    if in_swarm:
        pytest.skip("this machine's engine is in a Swarm")
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "docker swarm init" in done.stderr
    assert not (tmp_path / "runs").exists()


def test_an_engine_that_does_not_answer_is_named(needs_docker, tmp_path):
    """A node address with nothing listening: exit 1 within seconds, naming the role and URL."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    url = "tcp://127.0.0.1:9"  # the discard port: refused at once
    argv = [sys.executable, "-m", "lab", "run", str(PAGE10), "--engine", f"server={url}"]
    started = time.monotonic()
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert f"the server's Docker engine {url} did not answer" in done.stderr
    assert time.monotonic() - started < 30
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("action", "mode", "failure_kinds", "seen", "cut_short"),
    [c for c in test_faults.CASES if c.id in ("kill_server", "pause_server", "disconnect_client")],
)
def test_faults_act_on_the_engine_of_their_side(
    swarm_nodes, tmp_path, action, mode, failure_kinds, seen, cut_short
):
    """The fault scenarios across two engines: the server is killed or paused on its engine,
    the client's namespace leaves the overlay from its own, the trigger follows the client's
    log on the other engine; the run's account is the same as on one engine."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    argv = lab_argv(swarm_nodes)
    argv[argv.index(str(PAGE10))] = str(test_faults.fault_scenario(action))
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    (run_dir,) = (tmp_path / "runs").iterdir()
    # kill_server: the Swarm's DNS forgets a dead container's name at once, so the later
    # connections fail on the name ("name not resolved", also possible on one engine).
    test_faults.check_fault_run(done, run_dir, action, mode, failure_kinds, seen, cut_short)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["path"]["network_driver"] == "overlay"
    assert leftovers(swarm_nodes, settle_s=5.0) == []
