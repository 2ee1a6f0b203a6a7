"""A mode's `repeat` (the workload sent that many times over) multiplies its request count in
the claims and in `lab validate`."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab import claims as claims_mod
from lab import cli
from lab.document import RunResult

ROOT = Path(__file__).resolve().parents[2]


def load_analysis(keepalive_conns: int = 200) -> dict:
    """load-ci's shape: one resource; 200 keep-alive connections share 4,000 requests, and
    2,000 HTTP/1.0 connections each carry one."""
    return {
        "scenario": {
            "workload": {"resources": [{"name": "load.bin", "size": 1024}]},
            "modes": [
                {"name": "persistent-200x20", "persistent": True, "parallel": 200, "repeat": 4000},
                {"name": "sequential-2000", "persistent": False, "repeat": 2000},
                {"name": "once", "persistent": False},
            ],
        },
        "modes": [
            {
                "name": "persistent-200x20",
                "persistent": True,
                "connections": keepalive_conns,
                "handshake_packets": 3 * keepalive_conns,
                "teardowns": {"3-packet": keepalive_conns},
            },
            {
                "name": "sequential-2000",
                "persistent": False,
                "connections": 2000,
                "handshake_packets": 6000,
                "teardown_packets": 6000,
                "teardowns": {"3-packet": 2000},
            },
            {
                "name": "once",
                "persistent": False,
                "connections": 1,
                "handshake_packets": 3,
                "teardown_packets": 4,
            },
        ],
    }


def check_claims(doc: dict) -> list[dict]:
    return [c.to_dict() for c in claims_mod.check_claims(RunResult.from_dict(doc))]


def request_count(doc: dict, mode_name: str) -> int | None:
    run = RunResult.from_dict(doc)
    return claims_mod.request_count(run, run.modes[mode_name])


def claim(claims: list[dict], cid: str, mode: str) -> dict:
    (found,) = [c for c in claims if c["id"] == cid and c["mode"] == mode]
    return found


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        pytest.param("persistent-200x20", 4000, id="keepalive-repeat-4000"),
        pytest.param("sequential-2000", 2000, id="closing-repeat-2000"),
        pytest.param("once", 1, id="no-repeat"),
    ],
)
def test_request_count_multiplies_by_repeat(mode, expected):
    a = load_analysis()
    assert request_count(a, mode) == expected


def test_repeat_in_the_analysis_mode_row_counts_too():
    a = load_analysis()
    a["scenario"]["modes"][1].pop("repeat")
    a["modes"][1]["repeat"] = 2000
    assert request_count(a, "sequential-2000") == 2000


def test_closing_mode_claims_count_every_repeated_request():
    claims = check_claims(load_analysis())
    c = claim(claims, "connections", "sequential-2000")
    assert (c["claim"], c["holds"], c["expected"]) == (
        "2000 requests need 2000 connections",
        True,
        2000,
    )
    assert claim(claims, "handshakes", "sequential-2000")["expected"] == 6000
    assert claim(claims, "teardowns", "sequential-2000")["expected"] == 8000
    assert claim(claims, "connections", "once")["claim"] == "1 resources need 1 connections"


def test_keepalive_claim_spreads_the_repeated_requests_over_its_connections():
    c = claim(check_claims(load_analysis()), "keepalive", "persistent-200x20")
    assert c["holds"] is True
    assert "4000 requests on 200 connection(s)" in c["why"]
    assert "about 20.0 requests each" in c["why"]
    assert "1 requests" not in c["why"]


def test_keepalive_that_reconnected_says_so_with_the_repeated_count():
    c = claim(check_claims(load_analysis(keepalive_conns=260)), "keepalive", "persistent-200x20")
    assert c["holds"] is False
    assert c["why"].startswith("4000 requests on 260 connection(s): the connection was not kept")


def test_validate_prints_the_repeated_request_count(capsys):
    assert cli.main(["validate", str(ROOT / "scenarios" / "load-ci.yaml")]) == 0
    out, _ = capsys.readouterr()
    assert "ok: load-ci (http), 1 request, 1 KiB" in out
    assert "mode persistent-200x20: persistent, 200 at a time, 4,000 requests (1 x 4,000)" in out
    assert "mode sequential-2000: non-persistent, 1 at a time, 2,000 requests (1 x 2,000)" in out
