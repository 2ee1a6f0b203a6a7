"""Faults injected by `lab run` (scenarios/faults-*.yaml), one test per action, on real containers.

Each run must: exit 1 within its timeout with a one-line account of the fault, name the failed
requests, keep the pcap and logs, mark the analysis incomplete when the capture ended early,
show what the capture saw (RSTs, retransmissions), and leave nothing labelled behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab import docker_util

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 240  # the scenarios' own timeouts are 30 s of traffic; reports take the rest


@pytest.fixture(scope="module")
def docker_client(needs_docker):
    client = docker_util.client()
    yield client
    client.close()


def lab_run(cwd: Path, scenario: Path) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    t = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "lab", "run", str(scenario)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT,
    )  # fmt: skip
    return done, time.monotonic() - t


def leftovers(docker_client, run_id: str) -> list[str]:
    api = docker_client.api
    label = f"tcplab.run={run_id}"
    names = [c["Names"][0] for c in api.containers(all=True, filters={"label": label})]
    return names + [n["Name"] for n in api.networks(filters={"label": label})]


CASES = [
    # action, mode, failures expected in the client log, capture figure that must be > 0,
    # whether the capture ends early (analysis incomplete)
    pytest.param(
        # The killed process's sockets close (FIN or RST) and its kernel refuses new SYNs with
        # RSTs until Docker tears the namespace down; then Docker's DNS forgets the name. Which
        # of these a client meets is a race: an answer still in the paced path when the kill
        # lands dies with the namespace, its client times out (1 s), and by its next connect
        # the name can be gone (seen in CI: no SYN met the dead namespace, no RST). So the
        # capture's figure checked is its connections before the kill.
        "kill_server", "non-persistent",
        ("connection refused", "connection reset", "short response", "timed out", "unreachable",
         "name not resolved"),
        "connections", True,
        id="kill_server",
    ),
    pytest.param(
        "pause_server", "persistent", ("timed out",), "connections", False, id="pause_server"
    ),
    pytest.param(
        "disconnect_client", "persistent", ("timed out",), "retransmissions", False,
        id="disconnect_client",
    ),
    pytest.param("kill_capture", "non-persistent", (), "connections", True, id="kill_capture"),
    pytest.param(
        "reset_connections", "persistent", ("connection reset", "broken pipe"), "rst", False,
        id="reset_connections",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("action", "mode", "failure_kinds", "seen", "cut_short"), CASES)
def test_fault(
    lab_images, docker_client, tmp_path, action, mode, failure_kinds, seen, cut_short
) -> None:
    done, took = lab_run(tmp_path, fault_scenario(action))
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert leftovers(docker_client, run_dir.name) == []
    check_fault_run(done, run_dir, action, mode, failure_kinds, seen, cut_short)
    # bounded: the scenario's 30 s of traffic plus start, drain, analysis and reports
    assert took < RUN_TIMEOUT


def fault_scenario(action: str) -> Path:
    return REPO / "scenarios" / f"faults-{action.replace('_', '-')}.yaml"


def check_fault_run(
    done: subprocess.CompletedProcess, run_dir: Path, action, mode, failure_kinds, seen, cut_short
) -> None:
    """What every fault run must show (the module's docstring), on one engine or two."""
    out = done.stdout + done.stderr
    assert done.returncode == 1, out[-3000:]

    # the one-line account, printed and in analysis.json
    analysis = json.loads((run_dir / "analysis.json").read_text())
    (row,) = analysis["modes"]
    assert row["name"] == mode
    summary = row["fault_summary"]
    assert "\n" not in summary and summary.startswith(f"{mode}: faults {action} at ")
    assert " ".join(summary.split()) in " ".join(out.split())

    # the fault is recorded where it fired, in the manifest and the analysis
    manifest = json.loads((run_dir / "manifest.json").read_text())
    (fired,) = manifest["faults"]
    assert fired["action"] == action and fired["fired"] is True, fired
    assert fired["answered_before"] >= 3 and fired["effect"]
    assert analysis["faults"] == manifest["faults"]
    assert manifest["status"] == "complete"  # the folder is whole; the experiment was disturbed

    # failed requests are named, with how they failed
    account = row["fault_account"]
    client_records = [
        json.loads(line)
        for line in (run_dir / mode / "client.jsonl").read_text().splitlines()
        if line.startswith("{")
    ]
    failed = [r for r in client_records if r.get("event") == "request" and not r["ok"]]
    assert [f["request"] for f in account["failed_requests"]] == [r["request"] for r in failed]
    if failure_kinds:
        assert failed, account
        assert set(account["failures_by_kind"]) <= set(failure_kinds), account
    else:
        assert not failed, account  # the capture died, the traffic did not

    # everything recorded so far is kept
    folder = run_dir / mode
    for name in ("capture.pcap", "capture.log", "client.jsonl", "server.log"):
        assert (folder / name).stat().st_size > 0, name
    assert account["capture"][seen] > 0, account
    assert (row.get("incomplete") is not None) == cut_short, row.get("incomplete")
    assert analysis["complete"] is not cut_short

    # what the capture shows, per action
    if action == "kill_capture":
        requests = [r for r in client_records if r.get("event") == "request"]
        assert row["connections"] < len(requests), "the pcap should stop at the kill"
    if action == "reset_connections":
        assert any(c["rst_by"] == "server" for c in row["per_connection"])
    if action == "pause_server":
        assert fired.get("undone_at_s") is not None  # unpaused so it could be stopped
