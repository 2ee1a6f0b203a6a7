"""The article's claims checked against hand-made analysis documents (analysis.json's dicts)."""

from __future__ import annotations

import pytest

from lab import claims as claims_mod
from lab.document import RunResult


def check_claims(doc: dict) -> list[dict]:
    """The claims of a document given as analysis.json's dict, as the dicts it would store."""
    return [c.to_dict() for c in claims_mod.check_claims(RunResult.from_dict(doc))]


def request_count(doc: dict) -> int | None:
    return claims_mod.request_count(RunResult.from_dict(doc))


def conn(stream, teardown=3, handshake=3, requests=("r",), flights=None, rst=0, restarts=0):
    return {
        "stream": stream,
        "handshake_packets": handshake,
        "teardown_packets": teardown,
        "teardown": "reset" if rst else f"{teardown}-packet",
        "requests": [{"request": r} for r in requests],
        "flights": flights or [],
        "rst": rst,
        "slow_start_restarts": restarts,
    }


def closing_mode(n=10, teardown=3, **over):
    mode = {
        "name": "non-persistent",
        "persistent": False,
        "connections": n,
        "syn": n,
        "handshake_packets": 3 * n,
        "teardown_packets": teardown * n,
        "per_connection": [conn(i, teardown=teardown, requests=[f"r{i}"]) for i in range(n)],
    }
    mode.update(over)
    return mode


def keepalive_mode(name="keep-alive", conns=1, n=10, flights=None):
    per = n // conns
    return {
        "name": name,
        "persistent": True,
        "connections": conns,
        "syn": conns,
        "handshake_packets": 3 * conns,
        "teardown_packets": 3 * conns,
        "per_connection": [
            conn(i, requests=[f"r{j}" for j in range(per)], flights=flights) for i in range(conns)
        ],
    }


def analysis(*modes, n=10, parallel=None):
    sc_modes = [{"name": m["name"], "parallel": (parallel or {}).get(m["name"], 1)} for m in modes]
    return {
        "scenario": {
            "workload": {"resources": [{"name": f"r{i}"} for i in range(n)]},
            "modes": sc_modes,
        },
        "modes": list(modes),
    }


def by_id(claims, cid, mode=None):
    found = [c for c in claims if c["id"] == cid and (mode is None or c["mode"] == mode)]
    assert len(found) == 1, (cid, mode, claims)
    return found[0]


def test_textbook_counts_hold_except_the_3_packet_teardown():
    claims = check_claims(analysis(closing_mode(), keepalive_mode()))
    assert by_id(claims, "connections")["claim"] == "10 resources need 10 connections"
    assert by_id(claims, "connections")["holds"] is True
    hs = by_id(claims, "handshakes")
    assert (hs["claim"], hs["holds"], hs["observed"], hs["expected"]) == (
        "10 handshakes = 30 packets",
        True,
        30,
        30,
    )
    td = by_id(claims, "teardowns")
    assert (td["claim"], td["holds"], td["observed"], td["expected"]) == (
        "10 teardowns = 40 packets",
        False,
        30,
        40,
    )
    assert "in 10 of 10 connections" in td["why"] and "3 packets, not 4" in td["why"]
    ka = by_id(claims, "keepalive")
    assert ka["claim"] == "persistent: one handshake, one teardown"
    assert ka["holds"] is True
    assert ka["observed"] == ka["expected"] == "1 handshake, 1 teardown"


def test_claims_generalise_to_the_request_count():
    claims = check_claims(analysis(closing_mode(n=5, teardown=4), n=5))
    assert by_id(claims, "connections")["claim"] == "5 resources need 5 connections"
    td = by_id(claims, "teardowns")
    assert (td["claim"], td["holds"], td["observed"]) == ("5 teardowns = 20 packets", True, 20)


@pytest.mark.parametrize(
    ("mode", "needle"),
    [
        pytest.param(
            closing_mode(connections=11, syn=11), "more connection(s) than requests", id="extra"
        ),
        pytest.param(closing_mode(connections=7), "holds 7 of 10 connections", id="capture-cut"),
    ],
)
def test_connection_count_differs_with_a_reason(mode, needle):
    claim = by_id(check_claims(analysis(mode)), "connections")
    assert claim["holds"] is False
    assert needle in claim["why"]


def test_retransmitted_syn_explains_the_handshake_count():
    mode = closing_mode(handshake_packets=31)
    mode["per_connection"][0]["handshake_packets"] = 4
    claim = by_id(check_claims(analysis(mode)), "handshakes")
    assert claim["holds"] is False
    assert "1 handshake(s) took 4 packets" in claim["why"]


def test_rst_teardowns_are_named():
    mode = closing_mode(teardown_packets=27)
    mode["per_connection"][0].update(teardown_packets=0, rst=1, teardown="reset")
    claim = by_id(check_claims(analysis(mode)), "teardowns")
    assert "1 ended with a RST" in claim["why"]
    assert "in 9 of 10 connections" in claim["why"]


def test_six_keepalive_connections_expect_six_handshakes():
    mode = keepalive_mode("six", conns=6, n=12)
    claims = check_claims(analysis(mode, n=12, parallel={"six": 6}))
    claim = by_id(claims, "keepalive")
    assert claim["claim"].endswith("per connection (6)")
    assert claim["holds"] is True


def test_keepalive_that_reconnects_differs():
    mode = keepalive_mode(conns=3)
    claim = by_id(check_claims(analysis(mode)), "keepalive")
    assert claim["holds"] is False
    assert "not kept" in claim["why"]


def analysis_flights(*bursts):
    """Flights as lab.analysis writes them: one dict per round, tagged with its burst."""
    return [
        {"burst": b, "round": r, "segments": seg, "cwnd_segments": seg}
        for b, rounds in enumerate(bursts)
        for r, seg in enumerate(rounds)
    ]


def response_flights(*first_segments, total=40):
    """Flights as lab.analysis writes them: each response (burst) starts with `first` segments
    in its first round and sends the rest in a second."""
    return analysis_flights(*([first, total - first] for first in first_segments))


@pytest.mark.parametrize(
    ("flights", "holds", "restarts"),
    [
        pytest.param(response_flights(10, 40, 40), True, 0, id="window-kept"),
        pytest.param(response_flights(10, 10, 40), False, 1, id="restarted-after-idle"),
        pytest.param(analysis_flights([10], [3]), None, 0, id="fits-initial-window"),
    ],
)
def test_slow_start_once_per_keepalive_connection(flights, holds, restarts):
    mode = keepalive_mode(flights=flights)
    mode["per_connection"][0]["slow_start_restarts"] = restarts  # lab.analysis counts them
    claim = by_id(check_claims(analysis(mode)), "slow_start", "keep-alive")
    assert claim["holds"] is holds
    assert claim["observed"] == 1 + restarts  # slow starts: one per connection plus restarts


def test_slow_start_without_flights_cannot_tell():
    claim = by_id(check_claims(analysis(closing_mode())), "slow_start")
    assert claim["holds"] is None
    assert "cannot tell" in claim["why"]


def test_request_count_from_messages_and_missing_scenario():
    assert (
        request_count({"scenario": {"workload": {"messages": ["a", "b", "c"]}}, "modes": []}) == 3
    )
    claims = check_claims({"modes": [closing_mode()]})
    assert by_id(claims, "connections")["holds"] is None


def test_slow_start_from_lab_analysis_flights_and_its_restart_count():
    mode = keepalive_mode(flights=analysis_flights([10, 20], [40, 10]))
    claim = by_id(check_claims(analysis(mode)), "slow_start")
    assert claim["holds"] is True and claim["observed"] == 1
    mode["per_connection"][0]["slow_start_restarts"] = 1
    claim = by_id(check_claims(analysis(mode)), "slow_start")
    assert claim["holds"] is False and "tcp_slow_start_after_idle" in claim["why"]


def test_slow_start_on_a_lan_cannot_be_seen():
    mode = closing_mode(rtt_ms=0.08)
    for c in mode["per_connection"]:
        c["flights"] = analysis_flights([10, 20])
    claim = by_id(check_claims(analysis(mode)), "slow_start")
    assert claim["holds"] is None and "0.08 ms RTT" in claim["why"]
    mode["rtt_ms"] = 40.0
    claim = by_id(check_claims(analysis(mode)), "slow_start")
    assert claim["holds"] is True and claim["observed"] == 10


def test_fresh_connection_above_the_initial_window_differs():
    mode = closing_mode(n=2, rtt_ms=40.0)
    for c in mode["per_connection"]:
        c["flights"] = analysis_flights([30])
    claim = by_id(check_claims(analysis(mode, n=2)), "slow_start")
    assert claim["holds"] is False and "more than 10 segments" in claim["why"]


def test_teardown_counts_from_lab_analysis():
    mode = closing_mode(teardowns={"3-packet": 8, "4-packet": 1, "reset": 1})
    claim = by_id(check_claims(analysis(mode)), "teardowns")
    assert "in 8 of 10 connections" in claim["why"]
    assert "1 took the textbook 4 packets" in claim["why"]
    assert "1 ended with a RST" in claim["why"]


def test_a_mode_with_its_own_workload_counts_its_own_requests():
    a = analysis(closing_mode(n=3), n=10)
    a["scenario"]["modes"][0]["workload"] = {"messages": ["Luffy", "Zoro", "Nami"]}
    claim = by_id(check_claims(a), "connections")
    assert (claim["claim"], claim["holds"]) == ("3 resources need 3 connections", True)
