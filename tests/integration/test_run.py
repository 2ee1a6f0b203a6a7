"""`lab run` end to end on real containers: page10's counts, least privilege, interruption."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from lab import docker_util, hosts, runner
from lab import scenario as sc
from lab.engine import Engine
from lab.placement import Placement
from lab.results import analyze_mode_folder, plans

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PAGE10 = REPO / "scenarios" / "page10.yaml"


@pytest.fixture(scope="module")
def docker_client(needs_docker):
    client = docker_util.client()
    yield client
    client.close()


@pytest.fixture(scope="module")
def image_refs(docker_client, lab_images):
    return lab_images


def lab_run(cwd: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "120"}
    return subprocess.run(
        [sys.executable, "-m", "lab", "run", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def leftovers(docker_client, run_id: str | None = None) -> list[str]:
    label = "tcplab.project=1" if run_id is None else f"tcplab.run={run_id}"
    api = docker_client.api
    names = [c["Names"][0] for c in api.containers(all=True, filters={"label": label})]
    names += [n["Name"] for n in api.networks(filters={"label": label})]
    return names


def test_page10_counts_match_the_textbook(image_refs, docker_client, tmp_path):
    done = lab_run(tmp_path, str(PAGE10))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    analysis = json.loads((run_dir / "analysis.json").read_text())
    modes = {m["name"]: m for m in analysis["modes"]}
    required = {"name", "persistent", "connections", "syn", "handshake_packets",
                "teardown_packets", "packets", "bytes", "retransmissions", "page_time_s",
                "rtt_ms", "predicted_page_time_s"}  # fmt: skip
    for m in modes.values():
        assert required <= set(m), required - set(m)
    assert modes["http1.0"]["connections"] == 10
    assert modes["http1.0"]["syn"] == 10
    assert modes["http1.0"]["handshake_packets"] == 30
    assert modes["keepalive"]["connections"] == 1
    assert modes["keepalive"]["handshake_packets"] == 3
    assert modes["keepalive-6"]["connections"] == 6
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    for mode in modes:
        folder = run_dir / mode
        assert (folder / "capture.pcap").stat().st_size > 0
        assert (folder / "client.jsonl").stat().st_size > 0
        assert (folder / "server.log").stat().st_size > 0
    assert (run_dir / "report.html").exists() and (run_dir / "report.md").exists()
    assert leftovers(docker_client, manifest["run_id"]) == []


class InspectingModeRunner(runner.ModeRunner):
    """Inspects every container of the mode just before the teardown removes it."""

    inspected: list[dict]

    def teardown(self) -> None:
        self.inspected = [engine.inspect(c) for engine, c in self.started]
        super().teardown()


def test_every_container_runs_with_least_privilege(image_refs, docker_client, tmp_path):
    scenario = sc.parse_scenario(
        "name: priv\nprotocol: echo\nworkload: {messages: [a, b]}\n"
        "modes: [{name: np, persistent: false}]\nnetwork: {rtt: 2}\n"
        "capture: [server, client]\n"
    )
    (plan,) = plans(scenario, scenario.modes, tmp_path)
    placement = Placement.single(Engine(docker_client))
    run_id = f"privtest-{uuid.uuid4().hex[:8]}"  # engineers may share one engine
    mode_runner = InspectingModeRunner(placement, image_refs, run_id, progress=print)
    result = mode_runner.run(plan)
    assert result.client_exit == 0, result.client_error
    roles = {}
    for info in mode_runner.inspected:
        labels = info["Config"]["Labels"]
        role = labels["tcplab.role"]
        roles[role] = info
        assert labels["tcplab.project"] == "1" and labels["tcplab.run"] == run_id, role
        host = info["HostConfig"]
        assert host["Privileged"] is False, role
        assert "no-new-privileges" in (host["SecurityOpt"] or []), role
        assert host["CapDrop"] == ["ALL"], role
        assert not host.get("PortBindings"), role
        assert not host.get("PublishAllPorts"), role
        assert host["Memory"] > 0 and host["PidsLimit"] > 0, role
    assert set(roles) == {
        "server", "capture", "netns", "client", "shaper-server", "shaper-client", "capture-client",
    }  # fmt: skip
    for role in ("server", "client", "netns"):
        assert roles[role]["Config"]["User"] == hosts.LAB_UID
        assert roles[role]["HostConfig"]["ReadonlyRootfs"] is True
        assert not roles[role]["HostConfig"]["CapAdd"]
    for capture in ("capture", "capture-client"):
        assert sorted(roles[capture]["HostConfig"]["CapAdd"]) == ["NET_RAW", "SETGID", "SETUID"]
    # The client's capture sits in the client's namespace and saw the same connections: on one
    # engine the two clocks are one, so the offset is 0 within the estimate's bound.
    ns = roles["netns"]["Id"]
    assert roles["capture-client"]["HostConfig"]["NetworkMode"] == f"container:{ns}"
    row = analyze_mode_folder(plan.folder, (scenario.port_of(scenario.modes[0]),))
    assert row.clock is not None and row.clock.matched >= 2 * 2 * 3  # 2 connections, 3+ each way
    assert abs(row.clock.offset_ms) <= row.clock.bound_ms < 1.0
    for side in ("shaper-server", "shaper-client"):
        assert roles[side]["HostConfig"]["CapAdd"] == ["NET_ADMIN"]
    assert leftovers(docker_client, run_id) == []


def test_two_engines_each_start_their_own_side(image_refs, docker_client, tmp_path):
    """The placement seam with two Engine objects (two clients of this one daemon): each side's
    containers start through its own engine, the client side joins the server side's network by
    name, a fault disconnects and reconnects the client through the client side's engine, and
    the teardown clears both."""
    scenario = sc.parse_scenario(
        "name: split\nprotocol: echo\nworkload: {messages: [a, b, c]}\n"
        # 600 round trips of 5 ms: the client is still running when the fault is undone
        "modes: [{name: p, persistent: true, repeat: 200}]\nnetwork: {rtt: 5}\n"
        "faults: [{action: disconnect_client, at: {request: 1}, duration: 0.2}]\n"
    )
    (plan,) = plans(scenario, scenario.modes, tmp_path)
    server_side = Engine(docker_util.client(), name="server-side")
    client_side = Engine(docker_util.client(), name="client-side")
    placement = Placement(server=server_side, client=client_side)
    run_id = f"splittest-{uuid.uuid4().hex[:8]}"

    class Recording(runner.ModeRunner):
        def teardown(self) -> None:
            self.where = {engine.inspect(c)["Config"]["Labels"]["tcplab.role"]: engine.name
                          for engine, c in self.started}  # fmt: skip
            super().teardown()

    try:
        mode_runner = Recording(placement, image_refs, run_id, progress=print)
        result = mode_runner.run(plan)
    finally:
        server_side.close()
        client_side.close()
    assert mode_runner.where == {
        "server": "server-side", "capture": "server-side", "shaper-server": "server-side",
        "netns": "client-side", "shaper-client": "client-side", "client": "client-side",
    }  # fmt: skip
    (fault,) = result.faults
    assert fault["fired"] is True and "undo_error" not in fault, fault
    assert fault.get("undone_at_s") is not None, fault  # reconnected by the client side's engine
    assert (plan.folder / "capture.pcap").stat().st_size > 0
    assert leftovers(docker_client, run_id) == []


@pytest.mark.parametrize(
    ("sig", "after_s"),
    [
        pytest.param(signal.SIGINT, 1.0, id="sigint-early"),
        pytest.param(signal.SIGINT, "traffic", id="sigint-traffic"),
        pytest.param(signal.SIGTERM, "traffic", id="sigterm-traffic"),
        pytest.param(signal.SIGTERM, 4.0, id="sigterm-later"),
    ],
)
def test_interrupted_run_leaves_nothing(image_refs, docker_client, tmp_path, sig, after_s):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lab", "run", str(PAGE10)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        if after_s == "traffic":  # wait until a client container exists: traffic is flowing
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                # the low-level call: listing with the SDK's models inspects each container,
                # and a container removed in between makes that fail
                running = docker_client.api.containers(
                    all=True, filters={"label": ["tcplab.project=1", "tcplab.role=client"]}
                )
                if running:
                    break
                time.sleep(0.05)
        else:
            time.sleep(after_s)
        interrupted_at = time.monotonic()
        proc.send_signal(sig)
        proc.wait(timeout=10)
        assert time.monotonic() - interrupted_at < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = proc.stderr.read().decode()
    assert "Traceback" not in stderr, stderr
    runs = list((tmp_path / "runs").glob("*"))
    for run_dir in runs:  # complete, or marked incomplete: never silently half-written
        manifest = json.loads((run_dir / "manifest.json").read_text())
        assert manifest["status"] in {"complete", "incomplete"}
        if manifest["status"] == "incomplete":
            assert proc.returncode == 130
    assert leftovers(docker_client) == []
