"""The model's segment size from the path: the MSS the handshakes announced, less timestamps."""

from __future__ import annotations

import pytest

from lab import model, results
from lab.document import ConnectionResult, ModeResult
from lab.scenario import parse_scenario


def mode_with(*announced: int) -> ModeResult:
    return ModeResult(per_connection=[ConnectionResult(syn_mss=m) for m in announced])


@pytest.mark.parametrize(
    ("announced", "expected"),
    [
        pytest.param((1460, 1460), None, id="ethernet: the model's default"),
        pytest.param((1410, 1410, 1410), 1398, id="swarm overlay, MTU 1450"),
        pytest.param((1410, 1460, 1410), 1398, id="median of the handshakes"),
        pytest.param((), None, id="no handshake seen"),
        pytest.param((0,), None, id="no MSS option"),
    ],
)
def test_segment_size_of_the_path(announced, expected):
    assert results.path_segment_size([mode_with(*announced)]) == expected


def test_a_smaller_segment_costs_more_flights_in_the_model():
    scenario = parse_scenario(
        "name: m\nprotocol: http\nworkload: {resources: [{name: a, kind: js, size: 440000}]}\n"
        "modes: [{name: k, persistent: true}]\nnetwork: {rtt: 50}\n"
    )
    ethernet = model.predict_scenario(scenario)["k"]
    overlay = model.predict_scenario(scenario, mss=1398)["k"]
    assert (ethernet.mss, overlay.mss) == (1448, 1398)
    # 440,000 bytes are 304 segments of 1448: five flights (10+20+40+80+154 <= 310); and 315
    # of 1398: a sixth flight, one more round trip of 50 ms
    assert overlay.total_s - ethernet.total_s == pytest.approx(0.050, abs=0.002)
    assert overlay.as_dict()["mss"] == 1398


def test_where_it_ran_names_each_side_and_the_path():
    from lab.document import EngineRecord, Manifest, PathRecord
    from lab.summary import where_it_ran

    two = Manifest(
        engines={
            "server": EngineRecord(url="tcp://10.0.0.11:2375", engine="20.10", manager=True),
            "client": EngineRecord(url="tcp://10.0.0.12:2375", kernel="6.18"),
        },
        path=PathRecord(network_driver="overlay", mtu=1450, syn_mss=1410, base_rtt_ms=0.28),
    )
    assert where_it_ran(two) == [
        ("server side ran on", "tcp://10.0.0.11:2375 (Swarm manager): Docker 20.10"),
        ("client side ran on", "tcp://10.0.0.12:2375: 6.18"),
        ("path", "overlay, MTU 1450, MSS 1410 announced, base RTT 0.28 ms before shaping"),
    ]
    assert where_it_ran(Manifest()) == []
