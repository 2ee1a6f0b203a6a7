"""The page-time model against cases computed by hand (see lab/model.py's docstring)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.model import (
    FRAME_OVERHEAD,
    INIT_CWND,
    MSS,
    ProgramCosts,
    error_percent,
    pipelined,
    predict_page_time,
    predict_scenario,
    response_sizes,
    server_hold_s,
)
from lab.scenario import load_scenario
from wire import http, protocols

ROOT = Path(__file__).resolve().parents[2]
RTT = 0.05
WINDOW = INIT_CWND * MSS  # 14480 bytes: what the first flight carries
SMALL = [1000] * 10


@pytest.mark.parametrize(
    ("kwargs", "expected_s", "connections"),
    [
        pytest.param(dict(persistent=False), 10 * 2 * RTT, 10, id="non-persistent-sequential"),
        pytest.param(dict(persistent=True), RTT + 10 * RTT, 1, id="keepalive-one-connection"),
        pytest.param(dict(persistent=True, pipeline=True), 2 * RTT, 1, id="pipelined"),
        pytest.param(dict(persistent=False, parallel=5), 2 * 2 * RTT, 10, id="non-persistent-5"),
        pytest.param(dict(persistent=False, parallel=10), 2 * RTT, 10, id="non-persistent-10"),
        # round-robin: connections 0-3 carry two requests, 4-5 one
        pytest.param(dict(persistent=True, parallel=6), RTT + 2 * RTT, 6, id="keepalive-6"),
    ],
)
def test_small_resources_cost_round_trips(kwargs, expected_s: float, connections: int) -> None:
    p = predict_page_time(SMALL, rtt_s=RTT, **kwargs)
    assert p.total_s == pytest.approx(expected_s)
    assert p.connections == p.handshakes == connections


def test_slow_start_doubles_per_round_trip() -> None:
    # 3 windows = 10 + 20 segments: two flights, so one extra rtt on a fresh connection
    p = predict_page_time([3 * WINDOW], persistent=False, rtt_s=0.1)
    assert p.total_s == pytest.approx(0.1 + 0.1 + 0.1)
    assert p.requests[0].flights == 2
    # one byte more needs a third flight
    p = predict_page_time([3 * WINDOW + 1], persistent=False, rtt_s=0.1)
    assert p.total_s == pytest.approx(0.4)
    assert p.requests[0].flights == 3


def test_keepalive_keeps_its_window_and_non_persistent_restarts() -> None:
    sizes = [3 * WINDOW, 3 * WINDOW]
    warm = predict_page_time(sizes, persistent=True, rtt_s=0.1)
    # first: handshake + 2 flights; second: window now 30 segments, one flight
    assert [r.flights for r in warm.requests] == [2, 1]
    assert warm.total_s == pytest.approx(0.1 + 0.2 + 0.1)
    cold = predict_page_time(sizes, persistent=False, rtt_s=0.1)
    assert [r.flights for r in cold.requests] == [2, 2]
    assert cold.total_s == pytest.approx(2 * 0.3)


def test_small_flights_do_not_grow_the_window() -> None:
    # a 1-segment response uses a tenth of the window: Linux does not grow it (not cwnd-limited)
    p = predict_page_time([MSS] * 5 + [3 * WINDOW], persistent=True, rtt_s=0.1)
    assert p.requests[-1].flights == 2


FRAME_S = (MSS + FRAME_OVERHEAD) * 8 / 8e6  # 1.514 ms: one full frame at 8 Mbit/s


def test_rate_bounds_a_bulk_transfer() -> None:
    size, rate = 10_000_000, 20e6
    p = predict_page_time([size], persistent=True, rtt_s=RTT, rate_bps=rate)
    ideal = 2 * RTT + size * 8 / rate  # handshake + request rtt + serialisation
    assert ideal < p.total_s < ideal + 6 * RTT  # slow start costs a few rtt before the pipe fills


@pytest.mark.parametrize(
    ("burst", "expected_s"),
    [
        # the bucket starts full with one frame: the first leaves at once, nine follow
        pytest.param(0, 9 * FRAME_S, id="one-frame-bucket"),
        # three frames' worth leave at once, then seven at the rate
        pytest.param(3 * (MSS + FRAME_OVERHEAD), 7 * FRAME_S, id="three-frame-burst"),
    ],
)
def test_without_delay_the_rate_and_the_frames_decide(burst: int, expected_s: float) -> None:
    # 10 full segments of 1448 bytes: tbf counts 1514 bytes each (66 of headers)
    p = predict_page_time([WINDOW], persistent=True, rtt_s=0.0, rate_bps=8e6, burst_bytes=burst)
    assert p.total_s == pytest.approx(expected_s)


def test_parallel_connections_take_turns_on_the_link() -> None:
    # Two connections of 10 segments each at time 0: conn 0's first frame leaves at once and
    # its second is next in line when conn 1's segments join; then they alternate. So conn 0's
    # frames go out at slots 0, 1, 3, 5, ..., 17 and conn 1's at 2, 4, ..., 18, 19.
    p = predict_page_time([WINDOW] * 2, persistent=True, parallel=2, rtt_s=0.0, rate_bps=8e6)
    assert [r.done_s for r in p.requests] == pytest.approx([17 * FRAME_S, 19 * FRAME_S])
    # A one-segment response is not queued behind a 100-segment one (TSQ: the link is shared
    # per connection, not first come first served): its frame is the third to leave.
    p = predict_page_time([100 * MSS, MSS], persistent=True, parallel=2, rtt_s=0, rate_bps=8e6)
    assert p.requests[1].done_s == pytest.approx(2 * FRAME_S)


def test_slow_start_waits_for_acks_then_the_link_is_the_limit() -> None:
    # 30 segments on a fresh connection, rtt 100 ms, 8 Mbit/s. Handshake 0.1 s, request at
    # the server at 0.15 s: 10 frames leave at 0.15 + k x 1.514 ms. The first one's ACK is back
    # at 0.25 s (the bucket has refilled one frame meanwhile); each ACK adds one segment and
    # releases two, faster than the link drains them, so the 20 frames of round 2 leave back to
    # back from 0.25 s: the last at 0.25 + 19 x 1.514 ms, at the client 50 ms later.
    p = predict_page_time([3 * WINDOW], persistent=False, rtt_s=0.1, rate_bps=8e6)
    assert p.total_s == pytest.approx(0.25 + 19 * FRAME_S + 0.05)
    assert p.requests[0].flights == 2


def test_a_window_idle_longer_than_the_rto_restarts() -> None:
    # Linux's tcp_slow_start_after_idle: only after an idle RTO (rtt + 200 ms) does the window
    # fall back; back-to-back requests (idle one rtt) keep it, so the second takes one flight.
    p = predict_page_time([3 * WINDOW] * 2, persistent=True, rtt_s=0.1)
    assert [r.flights for r in p.requests] == [2, 1]
    # 30 segments then 30 more: with rtt 1 s the RTO is 1.2 s and the idle one rtt, so still kept
    p = predict_page_time([3 * WINDOW] * 2, persistent=True, rtt_s=1.0)
    assert [r.flights for r in p.requests] == [2, 1]


def test_zero_byte_response_costs_one_round_trip() -> None:
    assert predict_page_time([0], persistent=True, rtt_s=RTT).total_s == pytest.approx(2 * RTT)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param(dict(persistent=False, pipeline=True), id="pipeline-non-persistent"),
        pytest.param(dict(persistent=True, parallel=0), id="parallel-0"),
        pytest.param(dict(persistent=True, rtt_s=-1), id="negative-rtt"),
        pytest.param(dict(persistent=True, rate_bps=0), id="zero-rate"),
    ],
)
def test_bad_arguments(kwargs) -> None:
    with pytest.raises(ValueError):
        predict_page_time([1], **kwargs)


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 300_000), min_size=1, max_size=12),
    parallel=st.integers(1, 8),
    rtt=st.one_of(st.just(0.0), st.floats(1e-6, 0.3)),  # a denormal rtt / 2 underflows to 0
    rate=st.one_of(st.none(), st.floats(1e6, 1e9)),
)
def test_invariants(sizes, parallel, rtt, rate) -> None:
    non = predict_page_time(sizes, False, parallel, rtt_s=rtt, rate_bps=rate)
    keep = predict_page_time(sizes, True, parallel, rtt_s=rtt, rate_bps=rate)
    assert len(non.requests) == len(keep.requests) == len(sizes)
    assert non.connections == len(sizes)
    assert keep.connections == min(parallel, len(sizes))
    # nothing beats one round trip for the handshake and one for the request, nor the link
    # rate for every frame but the one the full bucket lets go at once
    frames = sum(-(-s // MSS) for s in sizes)
    wire = sum(sizes) + FRAME_OVERHEAD * frames - (MSS + FRAME_OVERHEAD)
    floor = 2 * rtt + (max(0, wire) * 8 / rate if rate else 0.0)
    for p in (non, keep):
        assert p.total_s >= floor * (1 - 1e-9)
        assert all(r.done_s >= r.start_s for r in p.requests)
    if parallel == 1:  # one connection at a time: keep-alive never loses to a new connection each
        assert keep.total_s <= non.total_s + 1e-9


def test_page10_wan_predictions_rank_the_modes() -> None:
    s = load_scenario(ROOT / "scenarios" / "page10-wan.yaml")
    p = predict_scenario(s, base_rtt_s=0.0002)
    assert set(p) == {"http1.0", "keepalive", "keepalive-6"}
    assert p["keepalive-6"].total_s < p["keepalive"].total_s < p["http1.0"].total_s
    assert p["http1.0"].connections == 10 and p["keepalive"].connections == 1
    # http1.0 pays at least 10 handshakes and 10 request round trips
    assert p["http1.0"].total_s >= 20 * 0.0502
    assert p["http1.0"].rtt_s == pytest.approx(0.0502)
    assert p["http1.0"].rate_bps == 20_000_000


def test_http_sizes_include_the_response_head() -> None:
    s = load_scenario(ROOT / "scenarios" / "page10.yaml")
    no_net = predict_scenario(s)["keepalive"]
    assert no_net.total_s == 0.0  # no delay, no rate: the model has nothing to charge
    mode = s.mode("keepalive")
    head = protocols.get("http").head_bytes
    assert response_sizes(s, mode) == [r.size + head for r in s.workload.resources]
    # The registry's figure is about what the server's head adds (bodies of 100 B to 1 MB).
    for size in (100, 14_000, 1_000_000):
        real = len(http.response_head(200, size, keep_alive=True))
        assert abs(real - head) <= 15, (size, real)  # 150 is 7-11 B short today


def test_echo_sizes_are_the_messages() -> None:
    s = load_scenario(ROOT / "scenarios" / "article.yaml")
    mode = s.modes[0]
    assert response_sizes(s, mode) == list(s.workload_of(mode).byte_sizes())


def test_a_protocol_handshake_costs_each_new_connection_a_round_trip() -> None:
    plain = predict_page_time(SMALL, persistent=False, rtt_s=RTT)
    tls_like = predict_page_time(SMALL, persistent=False, rtt_s=RTT, handshake_rtts=2)
    assert tls_like.total_s == pytest.approx(plain.total_s + len(SMALL) * RTT)
    kept = predict_page_time(SMALL, persistent=True, rtt_s=RTT, handshake_rtts=2)
    assert kept.total_s == pytest.approx(predict_page_time(SMALL, True, rtt_s=RTT).total_s + RTT)


def test_error_percent() -> None:
    assert error_percent(1.0, 1.1) == pytest.approx(10.0)
    assert error_percent(2.0, 1.0) == pytest.approx(-50.0)
    assert error_percent(0.0, 1.0) is None


# --- the programs' measured costs (lab.costs measures them; here they are given) -------------

COSTS = ProgramCosts(
    setup_s=0.001, opening_s=0.001, service_s=0.002, turnaround_s=0.004, reconnect_s=0.003
)


def test_non_persistent_pays_setup_service_and_reconnect() -> None:
    # each request: handshake rtt + setup + request rtt + service; between them a reconnect
    p = predict_page_time(SMALL, persistent=False, rtt_s=RTT, costs=COSTS)
    assert p.total_s == pytest.approx(10 * (2 * RTT + 0.001 + 0.002) + 9 * 0.003)
    assert p.costs == COSTS
    assert p.as_dict()["costs"]["reconnect_s"] == 0.003


def test_keepalive_pays_setup_once_and_a_turnaround_between_requests() -> None:
    p = predict_page_time(SMALL, persistent=True, rtt_s=RTT, costs=COSTS)
    assert p.total_s == pytest.approx(RTT + 0.001 + 10 * (RTT + 0.002) + 9 * 0.004)


def test_on_a_bridge_the_page_time_is_the_programs() -> None:
    # rtt 0, no rate: the network costs nothing and the costs add up as they are
    non = predict_page_time(SMALL, persistent=False, costs=COSTS)
    assert non.total_s == pytest.approx(10 * 0.003 + 9 * 0.003)
    keep = predict_page_time(SMALL, persistent=True, costs=COSTS)
    assert keep.total_s == pytest.approx(0.001 + 10 * 0.002 + 9 * 0.004)


def test_connections_opened_at_once_are_staggered() -> None:
    # 10 requests on 6 connections (0-3 carry two, 4-5 one); connection c starts c x 5 ms late:
    # connection 3 ends at 15 + rtt + 2 (rtt + service) + turnaround + setup = 174 ms,
    # connection 5 at 25 + rtt + (rtt + service) + setup = 128 ms
    costs = ProgramCosts(opening_s=0.001, service_s=0.002, turnaround_s=0.004, stagger_s=0.005)
    p = predict_page_time(SMALL, persistent=True, parallel=6, rtt_s=RTT, costs=costs)
    done = {r.index: r.done_s for r in p.requests}
    assert done[9] == pytest.approx(0.015 + RTT + 0.001 + 2 * (RTT + 0.002) + 0.004)
    assert done[5] == pytest.approx(0.025 + RTT + 0.001 + RTT + 0.002)
    assert p.total_s == pytest.approx(done[9])


def test_a_pipelined_batch_is_served_one_request_after_another() -> None:
    costs = ProgramCosts(service_s=0.002)
    p = predict_page_time([1000] * 3, persistent=True, pipeline=True, rtt_s=RTT, costs=costs)
    assert [r.done_s for r in p.requests] == pytest.approx([2 * RTT + k * 0.002 for k in (1, 2, 3)])


def test_the_capture_sees_the_page_a_round_trip_short_of_the_servers_hold() -> None:
    # SYN in on the server's interface, last byte out: a round trip less what the server's end
    # holds (half the configured delay with the lab's shapers)
    p = predict_page_time(SMALL, persistent=False, rtt_s=RTT, server_hold_s=0.025)
    assert p.total_s == pytest.approx(1.0)
    assert p.at_server_s == pytest.approx(1.0 - RTT + 0.025)
    bridge = predict_page_time(SMALL, persistent=True, rtt_s=0.0001)
    assert bridge.at_server_s == pytest.approx(bridge.total_s - 0.0001)


def test_costs_are_times() -> None:
    with pytest.raises(ValueError):
        ProgramCosts(service_s=-0.001)
    with pytest.raises(ValueError):
        predict_page_time([1], persistent=True, rtt_s=RTT, server_hold_s=2 * RTT)


def test_predict_scenario_takes_costs_per_mode_and_the_shapers_hold() -> None:
    s = load_scenario(ROOT / "scenarios" / "page10-wan.yaml")
    plain = predict_scenario(s, base_rtt_s=0.0002)
    costly = predict_scenario(s, base_rtt_s=0.0002, costs={"http1.0": COSTS})
    assert server_hold_s(s) == pytest.approx(0.025)
    assert plain["http1.0"].at_server_s == pytest.approx(plain["http1.0"].total_s - 0.0252)
    assert costly["keepalive"] == plain["keepalive"]  # a mode without costs: the network alone
    assert costly["http1.0"].total_s > plain["http1.0"].total_s + 10 * 0.003


def test_each_connection_pays_its_own_service() -> None:
    # two connections at once on a bridge (rtt 0): the measured service already holds any wait
    # for the other connection's, so both responses are written 2 ms after their requests
    p = predict_page_time([1000] * 2, True, parallel=2, costs=ProgramCosts(service_s=0.002))
    assert [r.done_s for r in p.requests] == pytest.approx([0.002, 0.002])


def test_the_first_connections_open_and_the_later_ones_set_up() -> None:
    # non-persistent, 2 workers: the first two connections pay the opening (5 ms), the later
    # ones the setup (1 ms); on a bridge (rtt 0) with no other cost, 4 requests take 5 + 1 ms
    costs = ProgramCosts(opening_s=0.005, setup_s=0.001)
    p = predict_page_time([1000] * 4, False, parallel=2, costs=costs)
    assert [r.done_s for r in p.requests] == pytest.approx([0.005, 0.005, 0.006, 0.006])


def test_the_articles_raw_persistent_echo_is_pipelined() -> None:
    # the client writes every message, half-closes and reads until EOF: all at once
    s = load_scenario(ROOT / "scenarios" / "article.yaml")
    kinds = {m.name: pipelined(s, m) for m in s.modes}
    assert kinds == {"non-persistent": False, "persistent-raw": True}
    p = predict_scenario(s, base_rtt_s=0.05)["persistent-raw"]
    assert p.total_s == pytest.approx(2 * 0.05)  # the handshake, then one round trip for all
