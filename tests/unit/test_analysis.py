"""lab.analysis on hand-built conversations: what each connection and each mode cost."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lab.analysis import (
    analyze,
    analyze_connection,
    percentile,
    slow_start_restarts,
    split_streams,
    summarize_mode,
)
from lab.capture import parse_capture, read_capture
from tests.unit.packets import (
    ACK,
    FIN,
    PSH,
    RST,
    SYN,
    Flow,
    conversation,
    pcap_bytes,
    sample_http10,
    sample_port_reuse,
)

DATA = Path(__file__).resolve().parents[1] / "data"
DESIGN_KEYS = {
    "name", "persistent", "connections", "syn", "handshake_packets", "teardown_packets",
    "packets", "bytes", "retransmissions", "page_time_s", "rtt_ms", "predicted_page_time_s",
}  # fmt: skip


def one(packets, **kwargs):
    streams = split_streams(packets)
    assert len(streams) == 1
    return analyze_connection(0, streams[0], **kwargs)


# --- Teardowns -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "close,first,kind,packets",
    [
        pytest.param("close4", "server", "4-packet", 4, id="4-packet-server-first"),
        pytest.param("close4", "client", "4-packet", 4, id="4-packet-client-first"),
        pytest.param("close3", "server", "3-packet", 3, id="3-packet-server-first"),
        pytest.param("close3", "client", "3-packet", 3, id="3-packet-client-first"),
    ],
)
def test_teardowns(close, first, kind, packets):
    pk: list = []
    flow = Flow(pk)
    flow.handshake(0.0)
    flow.exchange(0.011, 100, 3000)
    getattr(flow, close)(0.05, first)
    c = one(pk)
    assert (c.teardown, c.teardown_packets, c.teardown_complete) == (kind, packets, True)
    assert c.closed_first == first and c.time_wait == first
    assert c.t_first_fin == 0.05 and c.t_teardown_end == pk[-1].ts
    assert c.fin_packets == 2 and c.rst == 0


def test_simultaneous_close_leaves_both_in_time_wait():
    pk: list = []
    flow = Flow(pk)
    flow.handshake(0.0)
    flow.send("client", 0.02, FIN | ACK)
    flow.send("server", 0.02, FIN | ACK, seq=flow.next["server"])
    pk[-1] = pk[-1]._replace(ack=pk[-2].seq)  # the server had not seen the client's FIN yet
    flow.send("client", 0.03, ACK)
    flow.send("server", 0.03, ACK)
    c = one(pk)
    assert c.teardown == "simultaneous" and c.time_wait == "both"
    assert c.teardown_packets == 4 and c.teardown_complete


def test_rst_instead_of_fin():
    pk: list = []
    flow = Flow(pk)
    flow.handshake(0.0)
    flow.exchange(0.011, 100, 500)
    flow.send("server", 0.04, RST | ACK)
    c = one(pk)
    assert (c.teardown, c.rst, c.rst_by, c.t_rst) == ("reset", 1, "server", 0.04)
    assert c.closed_first is None and c.time_wait is None and c.teardown_packets == 0


def test_fin_then_rst_is_a_reset():
    pk: list = []
    flow = Flow(pk)
    flow.handshake(0.0)
    flow.send("server", 0.02, FIN | ACK)
    flow.send("client", 0.03, RST)
    c = one(pk)
    assert c.teardown == "reset" and c.closed_first == "server" and c.time_wait is None


# --- Handshakes ------------------------------------------------------------------------------


def test_handshake_and_rtt_from_syn_to_the_final_ack():
    c = one(conversation(rtt=0.040))
    assert (c.syn_packets, c.synack_packets, c.handshake_packets) == (1, 1, 3)
    assert c.handshake_complete and c.handshake_rtt == pytest.approx(0.040)
    assert (c.client, c.server, c.roles_from) == ("10.0.0.2:40000", "10.0.0.3:80", "syn")


def test_retransmitted_syn_counts_and_rtt_from_the_answered_syn():
    pk: list = []
    flow = Flow(pk)
    flow.send("client", 0.0, SYN)
    flow.send("client", 1.0, SYN, seq=1000)
    flow.send("server", 1.005, SYN | ACK)
    flow.send("client", 1.010, ACK)
    c = one(pk)
    assert (c.syn_packets, c.syn_retransmissions, c.handshake_packets) == (2, 1, 4)
    assert c.handshake_rtt == pytest.approx(0.010) and c.t_first_syn == 0.0
    assert c.retransmissions == [1, 0]


def test_unanswered_syn():
    pk: list = []
    Flow(pk).send("client", 0.0, SYN).send("client", 1.0, SYN, seq=1000)
    c = one(pk)
    assert c.handshake_packets == 2 and not c.handshake_complete and c.handshake_rtt is None


# --- Streams as Wireshark numbers them ---------------------------------------------------------


def _reuse(client_isn: int, close: str = "close4") -> list:
    pk = conversation(0.0, close=close)
    conversation(1.0, packets=pk, client_isn=client_isn)
    return pk


def _reset_then_same_isn() -> list:
    pk: list = []
    Flow(pk).handshake(0.0).send("server", 0.02, RST | ACK)
    Flow(pk).handshake(1.0)
    return pk


def _midstream_then_syn(isn: int) -> list:
    pk: list = []
    Flow(pk).send("client", 0.0, PSH | ACK, 10, seq=1001)
    Flow(pk, client_isn=isn).handshake(1.0)
    return pk


STREAM_CASES = [
    pytest.param(_reuse(900_000), [12, 12], id="port-reuse-new-isn"),
    pytest.param(_reuse(1000), [24], id="same-isn-after-fin-is-not-new"),
    pytest.param(_reset_then_same_isn(), [7], id="same-isn-after-rst-is-not-new"),
    pytest.param(_midstream_then_syn(1000), [4], id="syn-isn-equals-base-from-data"),
    pytest.param(_midstream_then_syn(1001), [1, 3], id="syn-isn-differs-from-base"),
    pytest.param(sample_port_reuse(), [11, 9], id="syn-retransmit-then-reuse"),
]


@pytest.mark.parametrize("packets,sizes", STREAM_CASES)
def test_streams_split_like_wireshark(packets, sizes):
    assert [len(s) for s in split_streams(packets)] == sizes


@pytest.mark.parametrize("packets,sizes", STREAM_CASES)
def test_stream_numbers_match_tshark(packets, sizes, tmp_path, needs_tshark):
    path = tmp_path / "c.pcap"
    path.write_bytes(pcap_bytes(packets))
    out = subprocess.run(
        ["tshark", "-r", str(path), "-T", "fields", "-e", "frame.number", "-e", "tcp.stream"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    theirs = {
        int(f): int(s) for f, s in (line.split("\t") for line in out.stdout.split("\n") if line)
    }
    ours = {p.frame: i for i, s in enumerate(split_streams(read_capture(path).packets)) for p in s}
    assert ours == theirs


def test_interleaved_connections_numbered_by_first_appearance():
    pk: list = []
    a = Flow(pk, ("10.0.0.2", 40001))
    b = Flow(pk, ("10.0.0.2", 40002))
    a.send("client", 0.0, SYN)
    b.send("client", 0.001, SYN)
    b.send("server", 0.002, SYN | ACK)
    a.send("server", 0.003, SYN | ACK)
    analysis = analyze(pk)
    assert [c.client_port for c in analysis.connections] == [40001, 40002]


# --- Data, ACKs, retransmissions, a cut capture -----------------------------------------------


def test_data_segments_pure_acks_and_bytes_each_way():
    c = one(conversation(response=3000))
    assert c.data_segments == [1, 3] and c.payload_bytes == [100, 3000]
    assert c.pure_acks == [1, 0]  # the client's ACK of the response (the FIN ACKs are teardown)
    assert c.packets == 12 and c.bytes == 12 * 54 + 3100 + 2 * 4  # the SYNs carry an MSS option
    assert c.overhead_packets == 3 + 4 + 1
    assert c.t_last_server_byte == pytest.approx(1000.0162)


def test_data_retransmission_counted_once():
    pk: list = []
    flow = Flow(pk)
    flow.handshake(0.0)
    flow.send("client", 0.011, PSH | ACK, 100)
    flow.send("server", 0.015, ACK, 1000)
    flow.send("server", 0.016, PSH | ACK, 1000)
    flow.send("server", 0.300, ACK, 1000, seq=5001)  # the first segment again, after an RTO
    flow.send("client", 0.31, ACK)
    c = one(pk)
    assert c.retransmissions == [0, 1] and c.data_segments == [1, 3]
    assert analyze(pk).retransmissions == 1


def test_capture_cut_mid_connection():
    pk = conversation(response=5000)
    middle = pk[4:9]  # from the response's second segment, before any FIN
    c = one(middle)
    assert c.roles_from == "guess" and c.server_port == 80
    assert c.handshake_packets == 0 and c.handshake_rtt is None
    assert c.teardown == "none" and c.closed_first is None
    c = one(middle, server_ports=[80])
    assert c.roles_from == "port" and c.client_port == 40000


def test_server_ports_win_over_the_lower_port_guess():
    pk: list = []
    Flow(pk, ("10.0.0.2", 80), ("10.0.0.3", 9000)).send("server", 0.0, PSH | ACK, 10, seq=11)
    assert analyze(pk).connections[0].server_port == 80
    assert analyze(pk, server_ports=[9000]).connections[0].server_port == 9000


def test_truncated_capture_is_carried_into_the_analysis():
    data = pcap_bytes(conversation())
    capture = parse_capture(data[:-20])
    analysis = analyze(capture)
    assert analysis.truncated and "claims" in analysis.problem
    assert analysis.to_dict()["truncated"] is True
    assert summarize_mode(analysis)["truncated"] is True


# --- Sample captures -----------------------------------------------------------------------------


def test_sample_http10_totals():
    a = analyze(read_capture(DATA / "http10-ipv4.pcap"))
    assert (len(a.connections), a.syn, a.synack, a.fin, a.rst) == (3, 3, 3, 4, 1)
    assert [c.teardown for c in a.connections] == ["4-packet", "3-packet", "reset"]
    assert a.packets == len(sample_http10())


def test_sample_keepalive_over_ipv6_and_sll2():
    a = analyze(read_capture(DATA / "keepalive-ipv6-sll2.pcapng"))
    (c,) = a.connections
    assert c.client == "[fd00::2]:45000" and c.server == "[fd00::3]:8080"
    assert c.data_segments == [3, 5] and c.payload_bytes == [270, 4700]
    assert (c.teardown, c.closed_first, c.handshake_packets) == ("3-packet", "client", 3)
    assert [f.burst for f in c.flights] == [0, 1, 2]


# --- Flights and slow start ----------------------------------------------------------------------


def slow_start(*bursts, rtt=0.05):
    """A keep-alive connection: per burst (response), rounds of full segments, each ACKed."""
    pk: list = []
    flow = Flow(pk)
    flow.handshake(0.0, rtt)
    t = rtt
    for rounds in bursts:
        t += 0.5
        flow.send("client", t, PSH | ACK, 100)
        for n in rounds:
            t += rtt / 2
            for i in range(n):
                flow.send("server", t + i * 1e-5, ACK, 1448)
            t += rtt / 2
            flow.send("client", t, ACK)
    return one(pk)


def test_flights_follow_the_ack_clock():
    c = slow_start([10, 20, 40])
    assert [(f.burst, f.round, f.segments) for f in c.flights] == [
        (0, 0, 10),
        (0, 1, 20),
        (0, 2, 40),
    ]
    assert [f.cwnd_segments for f in c.flights] == [10, 20, 40]
    assert c.flights[1].bytes == 20 * 1448 and c.mss == 1448
    assert len(c.server_series) == 70 and c.server_series[0][1:] == (1, 1448)


@pytest.mark.parametrize(
    "bursts,restarts",
    [
        pytest.param(([10, 20], [30, 10]), 0, id="warm-window-kept"),
        pytest.param(([10, 20], [10, 20]), 1, id="restarted-after-idle"),
        pytest.param(([10, 20], [4]), 0, id="small-response-cannot-tell"),
        pytest.param(([4], [10, 20]), 0, id="never-grew"),
    ],
)
def test_slow_start_restarts(bursts, restarts):
    c = slow_start(*bursts)
    assert c.slow_start_restarts == restarts == slow_start_restarts(c.flights)
    assert c.to_dict()["slow_start_restarts"] == restarts


def test_flights_ignore_a_lost_segment_resent():
    pk: list = []
    flow = Flow(pk)
    flow.handshake(0.0)
    flow.send("client", 0.02, PSH | ACK, 100)
    for i in range(3):
        flow.send("server", 0.03 + i * 1e-4, ACK, 1448)
    flow.send("server", 0.3, ACK, 1448, seq=5001)
    c = one(pk)
    assert [f.segments for f in c.flights] == [3] and len(c.server_series) == 4


# --- Per mode ----------------------------------------------------------------------------------


def _client_log(t0: float, port: int, name: str, first_on_conn=True, conn=1, rtt=0.010):
    return {
        "event": "request",
        "conn": conn,
        "local_port": port,
        "request": name,
        "t_connect_start": t0,
        "t_connected": t0 + rtt,
        "t_sent": t0 + rtt + 0.001 if first_on_conn else t0,
        "t_first_byte": t0 + 0.02,
        "t_done": t0 + 0.025,
        "ok": True,
    }


def test_summarize_non_persistent_mode():
    pk: list = []
    for i in range(3):
        conversation(100.0 + i * 0.1, ("10.0.0.2", 41000 + i), packets=pk, response=2000)
    records = [_client_log(100.0 + i * 0.1, 41000 + i, f"r{i}", conn=i) for i in range(3)]
    records.append({"event": "summary", "requests": 3})
    m = summarize_mode(analyze(pk), records, server_ports=[80])
    assert m.keys() >= DESIGN_KEYS
    assert (m["connections"], m["syn"], m["handshake_packets"], m["teardown_packets"]) == (
        3,
        3,
        9,
        12,
    )
    assert m["packets"] == len(pk) and m["bytes"] == sum(p.wire_len for p in pk)
    assert m["rtt_ms"] == pytest.approx(10.0)
    assert m["page_time_s"] == pytest.approx(pk[-1].ts - 100.0 - 0.0171, abs=1e-3)
    assert m["handshake_wait_s"] == pytest.approx(0.030)
    assert m["handshake_wait_wall_s"] == pytest.approx(0.030)
    assert m["overhead_share"] == pytest.approx((9 + 12 + 3) / len(pk))
    assert m["latency_p50_ms"] == pytest.approx(25.0) and m["requests"] == 3
    assert m["teardowns"] == {"4-packet": 3} and m["closed_first"] == {"server": 3}
    assert [[r["request"] for r in c["requests"]] for c in m["per_connection"]] == [
        ["r0"],
        ["r1"],
        ["r2"],
    ]
    assert m["name"] is None and m["predicted_page_time_s"] is None


def test_requests_join_the_right_stream_when_a_port_is_reused():
    pk = conversation(10.0, ("10.0.0.2", 42000))
    conversation(20.0, ("10.0.0.2", 42000), packets=pk, client_isn=555_555)
    records = [_client_log(10.0, 42000, "first"), _client_log(20.0, 42000, "second")]
    m = summarize_mode(analyze(pk), records)
    assert [[r["request"] for r in c["requests"]] for c in m["per_connection"]] == [
        ["first"],
        ["second"],
    ]


def test_persistent_latency_counts_the_handshake_once():
    records = [
        _client_log(0.0, 43000, "a"),  # opened the connection: from the connect, 25 ms
        _client_log(0.1, 43000, "b", first_on_conn=False),  # reused it: from the send, 25 ms
        _client_log(0.2, 43000, "c", first_on_conn=False),
    ]
    records[1]["t_connect_start"] = records[2]["t_connect_start"] = 0.0
    m = summarize_mode(analyze(conversation(0.0, ("10.0.0.2", 43000))), records)
    assert m["latency_p50_ms"] == pytest.approx(25.0) and m["latency_p95_ms"] == pytest.approx(25.0)


def test_server_ports_filter_other_traffic():
    pk = conversation(0.0, server=("10.0.0.3", 80))
    conversation(0.5, ("10.0.0.2", 40001), ("10.0.0.3", 53), packets=pk)
    assert summarize_mode(analyze(pk), server_ports=[80])["connections"] == 1
    assert summarize_mode(analyze(pk))["connections"] == 2


def test_empty_capture_summary():
    m = summarize_mode(analyze([]))
    assert m["connections"] == 0 and m["page_time_s"] is None and m["rtt_ms"] is None
    assert m["overhead_share"] is None and m["latency_p50_ms"] is None


@pytest.mark.parametrize(
    "values,q,expected",
    [
        pytest.param([], 50, None, id="empty"),
        pytest.param([3.0], 95, 3.0, id="one"),
        pytest.param([1.0, 2.0, 3.0, 4.0], 50, 2.5, id="median-even"),
        pytest.param(list(range(1, 101)), 95, 95.05, id="p95"),
    ],
)
def test_percentile(values, q, expected):
    assert percentile(values, q) == (None if expected is None else pytest.approx(expected))


def test_json_shape_of_a_connection():
    d = analyze(conversation()).to_dict(series=True)
    for key in ("packets", "connections", "syn", "synack", "fin", "rst", "retransmissions"):
        assert isinstance(d[key], int)
    s = d["streams"][0]
    assert s["data_segments"] == {"client": 1, "server": 3}
    assert s["handshake_rtt_ms"] == pytest.approx(10.0)
    assert s["server_series"][0][1:] == [1, 1448]
    assert set(s["flights"][0]) == {
        "burst", "round", "start", "end", "segments", "bytes", "in_flight_max", "cwnd_segments",
    }  # fmt: skip


def test_segment_size_from_the_handshake_when_the_capture_shows_gso_segments():
    pk: list = []
    flow = Flow(pk)
    flow.handshake(0.0)
    flow.send("client", 0.02, PSH | ACK, 100)
    for i in range(5):  # 5 super-segments of 2 MSS each: 10 segments on the wire
        flow.send("server", 0.03 + i * 1e-4, ACK, 2920)
    c = one(pk)
    assert c.mss == 1460 and c.flights[0].cwnd_segments == 10


@pytest.mark.parametrize(
    "name", ["http10-ipv4.pcap", "keepalive-ipv6-sll2.pcapng", "port-reuse-sll.pcap"]
)
def test_sample_totals_match_tshark(name, needs_tshark):
    fields = ["frame.number", "tcp.stream", "tcp.flags.syn", "tcp.flags.ack", "tcp.flags.fin"]
    out = subprocess.run(
        ["tshark", "-r", str(DATA / name), "-T", "fields", *(f"-e{f}" for f in fields)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    rows = [[int(x, 0) for x in line.split("\t")] for line in out.stdout.splitlines() if line]
    capture = read_capture(DATA / name)
    ours = {p.frame: i for i, s in enumerate(split_streams(capture.packets)) for p in s}
    assert ours == {frame: stream for frame, stream, *_ in rows}
    a = analyze(capture)
    assert a.syn == sum(1 for *_, syn, ack, _fin in rows if syn and not ack)
    assert a.fin == sum(1 for *_, fin in rows if fin)
