"""The programs' costs measured from hand-made client logs and connections (lab.costs), and the
shell that feeds them to the model (lab.results._predict). Every figure is checkable by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab import costs, results, summary
from lab.document import ConnectionResult, ModeResult, ProgramCostsResult
from lab.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
MS = 0.001


def conn(port: int, syn: float, first_request: float, last_byte: float) -> ConnectionResult:
    """A connection as the capture read it: times on the server's interface, in seconds."""
    return ConnectionResult(
        client_port=port, t_syn=syn, t_first_client_byte=first_request, t_last_server_byte=last_byte
    )


def request(request_id: int, conn_id: int, sent: float, done: float, ok: bool = True) -> dict:
    """One line of client.jsonl (the fields lab.costs reads)."""
    return {
        "event": "request",
        "conn": conn_id,
        "local_port": 40000 + conn_id,
        "request_id": request_id,
        "t_sent": sent,
        "t_done": done,
        "ok": ok,
    }


def test_non_persistent_setup_reconnect_and_service() -> None:
    connections = [
        conn(40001, syn=10.0, first_request=10.0 + 0.4 * MS, last_byte=10.0 + 2.0 * MS),
        conn(40002, syn=10.0 + 3.5 * MS, first_request=10.0 + 4.1 * MS, last_byte=10.005),
    ]
    records = [request(1, 1, 100.0, 100.0 + 1.2 * MS), request(2, 2, 200.0, 200.0 + 0.8 * MS)]
    m = costs.measure(
        records,
        connections,
        persistent=False,
        model_rtt_s=0.1 * MS,
        model_handshake_s=0.1 * MS,
        model_latency_s={0: 0.2 * MS, 1: 0.2 * MS},
    )
    # SYN to request less the model's handshake: 0.3 ms for the first connection (the opening,
    # below), 0.5 ms for the second (setup)
    assert m.costs.setup_s == pytest.approx(0.5 * MS)
    # reconnect: the first response's last byte out to the next SYN in, less the path (0.1 ms)
    assert m.costs.reconnect_s == pytest.approx(1.4 * MS)
    # service, one request per connection, on the capture's clock: request in to last byte
    # out, less the model's time on the wire after the first byte (latency - rtt = 0.1 ms):
    # 1.6 - 0.1 and 0.9 - 0.1 ms (the client log's 1.2 and 0.8 ms are not used)
    assert m.costs.service_s == pytest.approx(1.15 * MS)
    assert m.service_range_s == pytest.approx((0.8 * MS, 1.5 * MS))
    assert m.costs.turnaround_s == m.costs.stagger_s == 0.0
    assert m.samples == {
        "setup": 1, "service": 2, "turnaround": 0, "reconnect": 1, "stagger": 0, "opening": 1
    }  # fmt: skip
    assert m.costs.opening_s == pytest.approx(0.3 * MS)  # the first connection's setup


def test_on_a_shaped_path_the_servers_hold_stays_inside_the_server() -> None:
    # rtt 50.3 ms, the server's end holds 25: between a last byte out and the next SYN in the
    # path outside the server's end is 25.3 ms, and 2 ms more is the client's
    connections = [conn(1, 0.0, 0.0504, 0.200), conn(2, 0.2273, 0.2777, 0.400)]
    m = costs.measure(
        [],
        connections,
        persistent=False,
        model_rtt_s=0.0503,
        model_handshake_s=0.0503,
        server_hold_s=0.025,
    )
    assert m.costs.reconnect_s == pytest.approx(0.002)
    assert m.costs.setup_s == pytest.approx(0.0001)  # 50.4 ms SYN to request, 50.3 handshake
    assert m.samples["service"] == 0  # no model latencies given: not measured


def test_keepalive_turnaround_between_requests_of_a_connection() -> None:
    records = [  # out of order, as threads write them
        request(3, 1, 1.010, 1.011),
        request(1, 1, 1.000, 1.002),
        request(2, 1, 1.005, 1.006),
        request(4, 2, 1.000, 1.001, ok=False),  # failed requests are left out
    ]
    m = costs.measure(
        records, [], persistent=True, model_rtt_s=0.0, model_handshake_s=0.0, model_latency_s={}
    )
    assert m.costs.turnaround_s == pytest.approx(0.0035)  # 1.005 - 1.002 and 1.010 - 1.006
    assert m.samples["turnaround"] == 2
    # the capture saw the first request 1 ms before the client's clock said it left: the
    # client was descheduled after send(); the request's service counts from the capture's
    seen = [conn(40001, syn=0.998, first_request=0.999, last_byte=1.011)]
    late = costs.measure(
        records, seen, persistent=True, model_rtt_s=0.0, model_handshake_s=0.0,
        model_latency_s=dict.fromkeys(range(3), 0.0),
    )  # fmt: skip
    assert late.costs.service_s == pytest.approx((0.003 + 0.001 + 0.001) / 3)
    assert m.samples["service"] == 0  # no model latency for these request ids
    pipelined = costs.measure(
        records, [], persistent=True, pipeline=True, model_rtt_s=0.0, model_handshake_s=0.0
    )
    assert pipelined.samples["turnaround"] == 0  # a pipelined batch has no turnaround


def test_parallel_workers_stagger_and_reconnect_after_the_first_free_one() -> None:
    connections = [
        conn(1, syn=0.000, first_request=0.0005, last_byte=0.010),
        conn(2, syn=0.001, first_request=0.0012, last_byte=0.004),
        conn(3, syn=0.006, first_request=0.0062, last_byte=0.008),  # follows conn 2 (free at 4)
        conn(4, syn=0.009, first_request=0.0091, last_byte=0.012),  # follows conn 3 (free at 8)
    ]
    m = costs.measure(
        [], connections, persistent=False, parallel=2, model_rtt_s=0.0, model_handshake_s=0.0
    )
    assert m.costs.stagger_s == pytest.approx(0.0007)  # first requests 0.5 and 1.2 ms
    assert m.costs.opening_s == pytest.approx(0.0005)  # first SYN to the first of them
    assert m.costs.reconnect_s == pytest.approx((0.002 + 0.001) / 2)


def test_a_mean_below_zero_counts_as_zero() -> None:
    # the network was faster than the model says (the RTT's noise): no negative cost
    records = [request(1, 1, 0.0, 0.001)]
    m = costs.measure(
        records,
        [],
        persistent=True,
        model_rtt_s=0.0,
        model_handshake_s=0.0,
        model_latency_s={0: 0.003},
    )
    assert m.costs.service_s == 0.0
    assert m.samples["service"] == 1


def test_as_result_is_the_documents_milliseconds() -> None:
    m = costs.Measured(
        costs.ProgramCosts(setup_s=0.0004, service_s=0.0008), {"setup": 2}, (0.0006, 0.001)
    )
    r = costs.as_result(m)
    assert (r.setup_ms, r.service_ms, r.reconnect_ms) == pytest.approx((0.4, 0.8, 0.0))
    assert (r.service_min_ms, r.service_max_ms) == pytest.approx((0.6, 1.0))
    assert ProgramCostsResult.from_dict(r.to_dict()) == r


def mode(name: str, error: float | None, service_ms: float, **kw) -> ModeResult:
    c = ProgramCostsResult(service_ms=service_ms, service_min_ms=0.1, service_max_ms=60.0)
    c.samples = {"service": 10}
    return ModeResult(name=name, prediction_error_pct=error, program_costs=c, **kw)


def test_band_is_narrow_where_the_network_dominates() -> None:
    assert costs.band_pct(predicted_s=1.8, network_only_s=1.7) == 5.0
    assert costs.band_pct(predicted_s=0.030, network_only_s=0.001) == 25.0


def test_a_mode_outside_its_band_says_why_in_words() -> None:
    calm = mode("keepalive", 2.0, 0.6)
    busy = mode("keepalive-6", 28.0, 18.3)
    note = costs.explain(busy, [calm, busy], parallel=6, band=25.0)
    assert note is not None
    assert note.startswith("28% slower than predicted (the model's band here is ±25%)")
    assert "6 connections at once wait for the slowest" in note
    assert "from 0.1 to 60.0 ms around the mean of 18.3 ms" in note
    assert "31x keepalive's 0.6 ms" in note  # 18.3 / 0.6
    assert costs.explain(calm, [calm, busy], parallel=1, band=25.0) is None  # inside its band
    lossy = mode("http1.0", -9.0, 1.0, retransmissions=1, resent_segments=4)
    note = costs.explain(lossy, [lossy], parallel=1, band=5.0)
    assert note == (
        "9% faster than predicted (the model's band here is ±5%): the model assumes no loss "
        "(data segments resent: 4)"
    )
    older = mode("http1.0", -9.0, 1.0, retransmissions=3)  # a file from before resent_segments
    assert "data segments resent: 3" in costs.explain(older, [older], parallel=1, band=5.0)
    odd = mode("http1.0", 30.0, 1.0)
    assert "varied within the mode" in costs.explain(odd, [odd], parallel=1, band=25.0)
    fast = mode("keepalive-6", -6.0, 0.5, page_time_s=0.378, predicted_network_only_s=0.384)
    note = costs.explain(fast, [fast], parallel=6, band=5.0)
    assert (
        "the network alone, as the model simulates it, already takes 384.0 ms, more than "
        "the 378.0 ms measured: its 6 connections share the path differently" in note
    )


def test_a_lossy_mode_inside_its_band_is_cautioned_and_keeps_its_percentage() -> None:
    """Under loss the measured programs' times include the waits for resends (a SYN sent again
    after 1 s made page10's http1.0 2,302 ms, "predicted" to +0.0%): matched by construction."""
    syn_again = ConnectionResult(syn_retransmissions=1)
    lossy = mode(
        "http1.0", 0.0, 1.0, resent_segments=14, per_connection=[syn_again, ConnectionResult()],
        predicted_network_only_s=0.0095, prediction_band_pct=25.0,
    )  # fmt: skip
    note = costs.explain(lossy, [lossy], parallel=1, band=25.0)
    assert note == (
        "inside its band by construction (data segments resent: 14, SYNs sent again: 1): the "
        "model assumes no loss, but the programs' times it charges were measured on this mode, "
        "waits for the resends included; the network alone, as the model sees it, takes 9.5 ms"
    )
    lossy.prediction_note = note
    assert summary.error_cell(lossy) == 0.0  # a caution, not "outside ±25%"
    clean = mode("keepalive", 3.0, 1.0, resent_segments=0, per_connection=[ConnectionResult()])
    assert costs.explain(clean, [clean], parallel=1, band=25.0) is None
    outside = mode("keepalive", 30.0, 1.0, prediction_band_pct=25.0, prediction_note="why")
    assert summary.error_cell(outside) == "outside ±25%"


def test_the_shell_measures_each_mode_and_predicts_with_its_costs(tmp_path: Path) -> None:
    """page10's http1.0 on a bridge of RTT 0: 10 connections, each 0.5 ms from SYN to request,
    1 ms from request to last byte read, 2 ms from a last byte to the next SYN: the model says
    10 x (0.5 + 1) + 9 x 2 = 33 ms, and the capture measured 33 ms."""
    scenario = load_scenario(ROOT / "scenarios" / "page10.yaml")
    folder = tmp_path / "http1.0"
    folder.mkdir()
    connections, lines, t = [], [], 1000.0
    for i in range(10):
        connections.append(conn(40000 + i, t, t + 0.5 * MS, t + 1.5 * MS))
        lines.append(request(i + 1, i, t + 0.5 * MS, t + 1.5 * MS))
        t += 3.5 * MS
    (folder / "client.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    row = ModeResult(
        name="http1.0", folder="http1.0", per_connection=connections, page_time_s=0.033
    )
    logged = {"http1.0": results.read_jsonl(folder / "client.jsonl")}
    results._predict(scenario, {"http1.0": row}, 0.0, logged)
    assert row.program_costs is not None
    assert (row.program_costs.setup_ms, row.program_costs.service_ms) == pytest.approx((0.5, 1.0))
    assert row.program_costs.reconnect_ms == pytest.approx(2.0)
    assert row.predicted_network_only_s == 0.0
    assert row.predicted_page_time_s == pytest.approx(0.033)
    assert row.prediction_error_pct == pytest.approx(0.0, abs=1e-6)
    assert row.prediction_band_pct == 25.0 and row.prediction_note is None
    assert row.prediction["costs"]["reconnect_s"] == pytest.approx(0.002)


def test_overlapping_requests_keep_their_own_time() -> None:
    # three requests leave at once and finish 6, 12 and 18 ms later (served one after another),
    # a fourth alone later in 2 ms: each counts its whole time, waiting included
    records = [
        request(1, 1, 0.0, 0.006),
        request(2, 2, 0.0, 0.012),
        request(3, 3, 0.0, 0.018),
        request(4, 1, 0.030, 0.032),
    ]
    latency = dict.fromkeys(range(4), 0.0)
    m = costs.measure(
        records, [], persistent=True, model_rtt_s=0.0, model_handshake_s=0.0,
        model_latency_s=latency,
    )  # fmt: skip
    assert m.costs.service_s == pytest.approx((0.006 + 0.012 + 0.018 + 0.002) / 4)
    assert m.service_range_s == pytest.approx((0.002, 0.018))


def test_a_pipelined_batch_is_served_in_turn() -> None:
    # three requests sent together on one connection, done 2, 4 and 6 ms later: 2 ms each,
    # not 2, 4 and 6 (the model serves a batch's requests one service after another)
    records = [request(1, 1, 0.0, 0.002), request(2, 1, 0.0, 0.004), request(3, 1, 0.0, 0.006)]
    m = costs.measure(
        records, [], persistent=True, pipeline=True, model_rtt_s=0.0, model_handshake_s=0.0,
        model_latency_s=dict.fromkeys(range(3), 0.0),
    )  # fmt: skip
    assert m.costs.service_s == pytest.approx(0.002)
