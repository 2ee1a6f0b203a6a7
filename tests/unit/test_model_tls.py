"""The model's TLS and HTTP/2 against cases computed by hand (lab/model.py's docstring)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lab.model import (
    FRAME_OVERHEAD,
    MSS,
    TLS_FLIGHT_BYTES,
    TlsCost,
    multiplexed,
    predict_page_time,
    tls_cost,
)

RTT = 0.05
SMALL = [1000] * 10


@pytest.mark.parametrize(
    ("tls", "per_request_rtts", "full", "resumed"),
    [
        pytest.param(None, 2, 0, 0, id="plain"),
        pytest.param(TlsCost("1.2"), 4, 10, 0, id="tls12"),  # TCP 1 + TLS 2 + request 1
        pytest.param(TlsCost("1.3"), 3, 10, 0, id="tls13"),
        pytest.param(TlsCost("1.3", resume=True), 3, 1, 9, id="tls13-resume"),
    ],
)
def test_each_new_connection_pays_the_tls_round_trips(tls, per_request_rtts, full, resumed):
    p = predict_page_time(SMALL, persistent=False, rtt_s=RTT, tls=tls)
    assert p.total_s == pytest.approx(10 * per_request_rtts * RTT)
    assert (p.tls_full, p.tls_resumed) == (full, resumed)


def test_tls12_resumption_saves_a_round_trip_on_every_later_connection():
    p = predict_page_time(SMALL, persistent=False, rtt_s=RTT, tls=TlsCost("1.2", resume=True))
    assert p.total_s == pytest.approx((4 + 9 * 3) * RTT)
    assert (p.tls_full, p.tls_resumed) == (1, 9)
    assert p.as_dict()["tls_resumed"] == 9


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_keep_alive_pays_the_handshake_once(version):
    tls = TlsCost(version)
    p = predict_page_time(SMALL, persistent=True, rtt_s=RTT, tls=tls)
    assert p.total_s == pytest.approx((1 + tls.round_trips(False) + 10) * RTT)
    assert (p.tls_full, p.tls_resumed) == (1, 0)


def test_connections_opened_at_once_have_no_session_to_resume():
    p = predict_page_time(SMALL, persistent=False, parallel=6, rtt_s=RTT, tls=TlsCost("1.3", True))
    assert (p.tls_full, p.tls_resumed) == (6, 4)


def test_resuming_keep_alive_connections_open_after_the_first_response():
    p = predict_page_time(
        SMALL, persistent=True, parallel=6, rtt_s=RTT, tls=TlsCost("1.3", resume=True)
    )
    assert (p.tls_full, p.tls_resumed) == (1, 5)
    # the first response at 3 RTT; then the others' TCP + TLS + two requests: 4 RTT more
    assert p.total_s == pytest.approx((3 + 4) * RTT)


@pytest.mark.parametrize("persistent", [False, True])
@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_without_a_rate_tls_is_round_trips_only(version, persistent):
    tls = TlsCost(version)
    with_tls = predict_page_time(SMALL, persistent=persistent, rtt_s=RTT, tls=tls)
    as_rtts = predict_page_time(
        SMALL, persistent=persistent, rtt_s=RTT, handshake_rtts=1 + tls.round_trips(False)
    )
    assert with_tls.total_s == pytest.approx(as_rtts.total_s)
    assert [r.done_s for r in with_tls.requests] == pytest.approx(
        [r.done_s for r in as_rtts.requests]
    )


def test_at_a_rate_the_certificate_bytes_take_their_time():
    rate = 1e6

    def page(flight: int) -> float:
        tls = TlsCost("1.3", flight_bytes={("1.3", False): flight})
        return predict_page_time([1000], True, rtt_s=RTT, rate_bps=rate, tls=tls).total_s

    # the bucket holds one frame: the first of the flight goes at once, the other 9 one frame
    # time apart, and the request leaves when the last is in
    assert page(10 * MSS) - page(MSS) == pytest.approx(9 * (MSS + FRAME_OVERHEAD) * 8 / rate)


def test_the_default_flights_are_the_recorded_ones():
    assert TlsCost("1.2").flight(False) == TLS_FLIGHT_BYTES[("1.2", False)] == 1298
    assert TlsCost("1.3").flight(True) < TlsCost("1.3").flight(False)
    with pytest.raises(ValueError, match="unknown TLS version"):
        TlsCost("1.1")


def test_http2_is_one_connection_with_every_request_at_once():
    h2 = predict_page_time(SMALL, persistent=False, parallel=6, rtt_s=RTT, multiplexed=True)
    piped = predict_page_time(SMALL, persistent=True, pipeline=True, rtt_s=RTT)
    assert h2.connections == 1 and h2.total_s == pytest.approx(piped.total_s) == 2 * RTT
    over_tls = predict_page_time(SMALL, False, rtt_s=RTT, multiplexed=True, tls=TlsCost("1.3"))
    assert over_tls.total_s == pytest.approx(3 * RTT) and over_tls.tls_full == 1


def test_a_mode_says_its_tls_and_protocol_else_the_scenario_does():
    scenario = SimpleNamespace(tls="1.2", resume=False, protocol="http")
    assert tls_cost(scenario, SimpleNamespace()) == TlsCost("1.2", False)
    assert tls_cost(scenario, SimpleNamespace(tls="1.3", resume=True)) == TlsCost("1.3", True)
    assert tls_cost(SimpleNamespace(protocol="http"), SimpleNamespace()) is None
    assert multiplexed(scenario, SimpleNamespace(protocol="h2"))
    assert not multiplexed(scenario, SimpleNamespace())
