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
