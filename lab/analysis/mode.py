"""Per mode: the `analysis.json` figures of one mode's connections, and the client's requests
joined to them (the keys are documented in docs/architecture.md)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from lab.analysis.connection import Connection
from lab.analysis.total import Analysis

# per_connection carries the server's segment series for the first connections only: all of a
# 10,000-connection load run's add about 12 MB to analysis.json, and the report reads the pcap
SERIES_CONNECTIONS = 40


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100.0
    lo = math.floor(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def _union_length(intervals: Iterable[tuple[float, float]]) -> float:
    total = 0.0
    end = -math.inf
    for lo, hi in sorted(intervals):
        if hi <= end:
            continue
        total += hi - max(lo, end)
        end = hi
    return total


def join_requests(
    connections: Sequence[Connection], client_records: Iterable[dict], slack: float = 1.0
) -> dict[int, list[dict]]:
    """Requests per stream, joined through the client's local port and the time.

    A port can carry several streams in one capture (reuse), so among the connections on the
    request's port we take the latest one that started before the request did.
    """
    by_port: dict[int, list[Connection]] = {}
    for c in connections:
        by_port.setdefault(c.client_port, []).append(c)
    joined: dict[int, list[dict]] = {}
    for record in client_records:
        if record.get("event", "request") != "request" or record.get("local_port") is None:
            continue
        candidates = by_port.get(record["local_port"], [])
        # t_connected, not t_connect_start: the latter includes the client's name lookup, which
        # took over a second under load, while the SYN always precedes t_connected.
        began = _first_time(record, "t_connected", "t_sent", "t_connect_start", "t_done")
        chosen = None
        for c in candidates:
            fits = began is None or c.start <= began + slack
            if fits and (chosen is None or c.start > chosen.start):
                chosen = c
        if chosen is not None:
            joined.setdefault(chosen.stream, []).append(record)
    return joined


def _first_time(record: dict, *keys: str) -> float | None:
    for key in keys:
        value = record.get(key)
        if isinstance(value, int | float):
            return float(value)
    return None


def request_latencies(client_records: Iterable[dict]) -> list[float]:
    """Seconds each request took from the user's view, in log order.

    A request that opened its connection is timed from the connect (it paid the handshake);
    a later request on the same connection from when it was sent.
    """
    records = [
        r for r in client_records if r.get("event", "request") == "request" and r.get("t_done")
    ]
    opened: set = set()
    latencies = []
    for r in sorted(records, key=lambda r: _first_time(r, "t_sent", "t_done") or 0.0):
        conn = (r.get("conn"), r.get("local_port"))
        start = _first_time(r, "t_sent", "t_connect_start")
        if conn not in opened:
            opened.add(conn)
            start = _first_time(r, "t_connect_start", "t_sent")
        if start is not None:
            latencies.append(float(r["t_done"]) - start)
    return latencies


def summarize_mode(
    analysis: Analysis,
    client_records: Iterable[dict] | None = None,
    server_ports: Iterable[int] | None = None,
) -> dict[str, Any]:
    """One mode's entry of analysis.json (the keys of docs/architecture.md; `name` and
    `persistent` are the caller's to fill in)."""
    ports = frozenset(server_ports or ())
    conns = [c for c in analysis.connections if not ports or c.server_port in ports]
    records = list(client_records or ())
    packets = sum(c.packets for c in conns)
    overhead = sum(c.overhead_packets for c in conns)
    syn_times = [c.t_first_syn for c in conns if c.t_first_syn is not None]
    last_bytes = [c.t_last_server_byte for c in conns if c.t_last_server_byte is not None]
    starts = syn_times or [c.start for c in conns]
    page_time = max(last_bytes) - min(starts) if starts and last_bytes else None
    rtts = [c.handshake_rtt for c in conns if c.handshake_rtt is not None]
    rtt = percentile(rtts, 50)
    handshakes = [(c.t_syn, c.t_established) for c in conns if c.handshake_rtt is not None]
    latencies = request_latencies(records)
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    joined = join_requests(conns, records)
    return {
        "name": None,
        "persistent": None,
        "connections": len(conns),
        "syn": sum(c.syn_packets for c in conns),
        "handshake_packets": sum(c.handshake_packets for c in conns),
        "teardown_packets": sum(c.teardown_packets for c in conns),
        "packets": packets,
        "bytes": sum(c.bytes for c in conns),
        "retransmissions": sum(sum(c.retransmissions) for c in conns),
        "page_time_s": page_time,
        "rtt_ms": None if rtt is None else rtt * 1000.0,
        "predicted_page_time_s": None,
        "synack": sum(c.synack_packets for c in conns),
        "fin": sum(c.fin_packets for c in conns),
        "rst": sum(c.rst for c in conns),
        # connection attempts whose SYN (and its retransmissions) got no SYN-ACK and no RST
        "unanswered_syn": sum(
            1 for c in conns if c.syn_packets and not c.synack_packets and not c.rst
        ),
        "data_segments": sum(sum(c.data_segments) for c in conns),
        "pure_acks": sum(sum(c.pure_acks) for c in conns),
        "overhead_packets": overhead,
        "overhead_share": overhead / packets if packets else None,
        "payload_bytes": sum(sum(c.payload_bytes) for c in conns),
        "resent_segments": sum(sum(c.resent) for c in conns),
        "requests": len(latencies),
        "latency_p50_ms": None if p50 is None else p50 * 1000.0,
        "latency_p95_ms": None if p95 is None else p95 * 1000.0,
        "handshake_wait_s": sum(hi - lo for lo, hi in handshakes),
        "handshake_wait_wall_s": _union_length(handshakes),
        "teardowns": _count(c.teardown for c in conns),
        "closed_first": _count(c.closed_first for c in conns if c.closed_first),
        "slow_start_restarts": sum(c.slow_start_restarts for c in conns),
        "truncated": analysis.truncated,
        "per_connection": [
            _connection_summary(c, joined.get(c.stream, []), i < SERIES_CONNECTIONS)
            for i, c in enumerate(conns)
        ],
    }


def _count(values: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def _connection_summary(c: Connection, requests: list[dict], series: bool) -> dict[str, Any]:
    out = c.to_dict(series=series)
    out["requests"] = [
        {
            "request": r.get("request"),
            "t_connect_start": r.get("t_connect_start"),
            "t_sent": r.get("t_sent"),
            "t_first_byte": r.get("t_first_byte"),
            "t_done": r.get("t_done"),
            "ok": r.get("ok"),
        }
        for r in sorted(requests, key=lambda r: _first_time(r, "t_sent", "t_done") or 0.0)
    ]
    return out
