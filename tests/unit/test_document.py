"""The run document: typed, versioned, and the same JSON back out as went in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab import analysis, cli
from lab.capture import read_capture
from lab.document import (
    SCHEMA_VERSION,
    ConnectionResult,
    Manifest,
    ModeResult,
    RunResult,
    check_version,
)
from lab.errors import UsageError

DATA = Path(__file__).resolve().parents[1] / "data"


def summarized(pcap: str = "http10-ipv4.pcap") -> dict:
    """A mode's figures as lab.analysis writes them, from a capture the lab recorded."""
    parsed = analysis.analyze(read_capture(DATA / pcap))
    row = analysis.summarize_mode(parsed, [], server_ports=())
    row.update(name="http1.0", persistent=False)
    return json.loads(json.dumps(row))


def recorded_mode() -> dict:
    """A whole mode entry of analysis.json (every key lab.results writes) from that capture."""
    return ModeResult.from_dict(summarized()).to_dict()


def document(**over) -> dict:
    doc = {
        "schema_version": SCHEMA_VERSION,
        "scenario": {"name": "page10", "workload": {"resources": [{"name": "a", "size": 1}]}},
        "network": {
            "rtt_ms": 50.0, "jitter_ms": None, "loss_pct": None, "rate_bps": 20_000_000,
            "method": "nfqueue", "base_rtt_ms": 0.2,
            "rtt_check": {"expected_ms": 50.2, "tolerance_ms": 5.02, "measured_ms": 51.0,
                          "handshakes": 11, "modes": [{"mode": "http1.0", "measured_ms": 51.0,
                                                       "ok": True}], "ok": True},
        },
        "modes": [recorded_mode()],
        "claims": [{"id": "connections", "mode": "http1.0", "claim": "1 resources need 1",
                    "holds": None, "observed": 4, "expected": 1, "why": "because"}],
        "faults": [{"mode": "http1.0", "repeat": 1, "action": "kill_server", "fired": True}],
        "complete": False,
    }  # fmt: skip
    doc.update(over)
    return doc


def test_every_key_lab_analysis_writes_is_typed():
    mode = ModeResult.from_dict(summarized())
    assert mode.connections == len(mode.per_connection) > 0
    assert mode.extra == {}, "summarize_mode wrote keys lab.document does not type"
    for conn in mode.per_connection:
        assert isinstance(conn, ConnectionResult)
        assert conn.extra == {} and all(f.extra == {} for f in conn.flights)
    assert mode.handshake_packets == sum(c.handshake_packets for c in mode.per_connection)


def test_a_document_reads_back_to_the_same_json():
    doc = document()
    run = RunResult.from_dict(doc)
    assert run.modes["http1.0"].name == "http1.0"
    assert run.network.rtt_check.ok is True
    assert run.claims[0].verdict == "can't tell"
    assert run.to_dict() == doc
    assert RunResult.from_dict(json.loads(json.dumps(run.to_dict()))) == run


def test_keys_left_out_when_they_do_not_apply():
    mode = ModeResult.from_dict(recorded_mode()).to_dict()
    for key in ("faults", "fault_account", "fault_summary", "incomplete", "repeats", "missing"):
        assert key not in mode
    assert "faults" not in RunResult.from_dict(document(faults=[])).to_dict()


def test_unknown_keys_survive_a_round_trip():
    doc = document(future_key={"a": 1})
    doc["modes"][0]["future_mode_key"] = [1, 2]
    run = RunResult.from_dict(doc)
    assert run.extra == {"future_key": {"a": 1}}
    assert run.to_dict() == doc


def test_a_document_without_a_version_is_version_1():
    doc = document()
    del doc["schema_version"]
    run = RunResult.from_dict(doc)
    assert run.schema_version == 1
    assert run.modes["http1.0"].connections == doc["modes"][0]["connections"]


@pytest.mark.parametrize(
    ("version", "needle"),
    [
        pytest.param(SCHEMA_VERSION + 1, "written by a newer lab", id="newer"),
        pytest.param("2", "is not a version this lab knows", id="string"),
        pytest.param(0, "is not a version this lab knows", id="zero"),
        pytest.param(True, "is not a version this lab knows", id="bool"),
    ],
)
def test_versions_this_lab_cannot_read_are_one_line_errors(version, needle):
    with pytest.raises(UsageError, match=needle) as info:
        check_version({"schema_version": version}, "analysis.json")
    assert "\n" not in str(info.value)


def test_manifest_round_trip_and_status():
    data = {
        "schema_version": 2, "lab_version": "0.1.0", "run_id": "x", "status": "complete",
        "command": "python -m lab run s.yaml", "scenario": "s", "started": "t0", "ended": "t1",
        "host": {"kernel": "6", "machine": "x86_64"}, "images": {"server": {"ref": "r", "id": "i"}},
        "docker": {"engine": "20.10"}, "failures": [], "timings_s": {"traffic": 1.5},
        "modes": [{"mode": "m", "repeat": 1, "client_exit": 0, "error": None, "shaping": None,
                   "capture_drops": 0, "timings_s": {"total": 2.0}, "faults": [],
                   "incomplete": []}],
        "faults": [],
    }  # fmt: skip
    manifest = Manifest.from_dict(data)
    assert manifest.complete and manifest.mode_record("m", 1).client_exit == 0
    assert manifest.mode_record("m", 2) is None
    assert manifest.to_dict() == data


def test_run_folder_errors_are_one_line(tmp_path):
    with pytest.raises(UsageError, match=r"no analysis\.json"):
        RunResult.read(tmp_path)
    (tmp_path / "analysis.json").write_text("{\n  nope")
    with pytest.raises(UsageError, match="line 2: not valid JSON"):
        RunResult.read(tmp_path)
    (tmp_path / "analysis.json").write_text(json.dumps({"modes": "no"}))
    with pytest.raises(UsageError, match='no "modes" list'):
        RunResult.read(tmp_path)


def test_compare_refuses_a_newer_document_with_exit_2(tmp_path, capsys):
    for name, version in (("a", SCHEMA_VERSION), ("b", SCHEMA_VERSION + 5)):
        (tmp_path / name).mkdir()
        doc = document(schema_version=version)
        (tmp_path / name / "analysis.json").write_text(json.dumps(doc))
    assert cli.main(["compare", str(tmp_path / "a"), str(tmp_path / "a")]) == 0
    assert cli.main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "newer lab" in err and "Traceback" not in err
