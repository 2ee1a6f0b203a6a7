"""The clock offset between two captures of the same traffic, and the one-way delays. Pure.

A run may capture on both ends (`capture: {sides: [server, client]}`): one tcpdump in the
server's namespace, one in the client's. On two machines their clocks differ, so a packet's
two timestamps cannot simply be subtracted. The same packet is recognised in both files by
what the network does not change: addresses, ports, flags, sequence and acknowledgement
numbers, payload length. A packet seen once in each capture (a retransmission or a segment
that offloading merged or split differently is left out) gives one crossing time:

    client -> server:  t_server - t_client = d_cs + theta
    server -> client:  t_client - t_server = d_sc - theta

where theta is the server's clock minus the client's and d_cs, d_sc >= 0 are the one-way
delays between the two capture points. With a = the smallest first difference and b = the
smallest second, theta lies in [-b, a]: the estimate is the middle, (a - b) / 2, and its error
bound half the width, (a + b) / 2. This is NTP's offset from its best exchange, taken over the
fastest packet each way: any exchange (a SYN and its SYN-ACK, a request and its answer) has a
round trip of at least a + b, so no single exchange gives a tighter bound.

With the offset removed, each matched packet's crossing time is its one-way delay between the
capture points. Both tcpdumps see a packet as it leaves its host and as it arrives, before the
shaper (which holds packets on INPUT, after the capture point) adds its delay: so these are the
network's own one-way delays, not the shaped ones, and on one machine they are a few tens of
microseconds.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence

from lab.document import ClockResult, OneWayResult
from lab.frames import Packet

CLIENT_TO_SERVER = "client_to_server"
SERVER_TO_CLIENT = "server_to_client"


def _key(p: Packet) -> tuple:
    return (p.src, p.sport, p.dst, p.dport, p.flags, p.seq, p.ack, p.payload_len)


def _once(packets: Iterable[Packet]) -> dict[tuple, float]:
    """Each packet that appears exactly once, by its key, with its timestamp."""
    packets = list(packets)
    counts = Counter(_key(p) for p in packets)
    return {k: p.ts for p in packets if counts[k := _key(p)] == 1}


def match(
    server_side: Sequence[Packet], client_side: Sequence[Packet], server_ports: Iterable[int]
) -> dict[str, list[float]]:
    """Per direction, each matched packet's raw crossing time in seconds (receiver's
    timestamp minus sender's, on their own clocks). A packet belongs to the server when its
    port is one of `server_ports` (the modes' listening ports)."""
    ports = set(server_ports)
    at_server, at_client = _once(server_side), _once(client_side)
    out: dict[str, list[float]] = {CLIENT_TO_SERVER: [], SERVER_TO_CLIENT: []}
    for key, t_server in at_server.items():
        t_client = at_client.get(key)
        if t_client is None:
            continue
        sport, dport = key[1], key[3]
        if dport in ports:
            out[CLIENT_TO_SERVER].append(t_server - t_client)
        elif sport in ports:
            out[SERVER_TO_CLIENT].append(t_client - t_server)
    return out


def _one_way(crossings_s: list[float], shift_s: float) -> OneWayResult:
    ms = sorted((c + shift_s) * 1000.0 for c in crossings_s)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return OneWayResult(
        packets=len(ms),
        min_ms=round(ms[0], 4),
        median_ms=round(statistics.median(ms), 4),
        p95_ms=round(p95, 4),
    )


def estimate(
    server_side: Sequence[Packet],
    client_side: Sequence[Packet],
    server_ports: Iterable[int],
    resolution_s: float = 1e-6,
) -> ClockResult | None:
    """The offset, its bound and the one-way delays; None without a matched packet each way
    (two captures of different traffic, or one that saw nothing). The bound includes the
    timestamps' resolution (tcpdump writes microseconds), so on one machine, where the true
    offset is 0, it still holds."""
    crossings = match(server_side, client_side, server_ports)
    up, down = crossings[CLIENT_TO_SERVER], crossings[SERVER_TO_CLIENT]
    if not up or not down:
        return None
    a, b = min(up), min(down)
    theta = (a - b) / 2.0
    return ClockResult(
        offset_ms=round(theta * 1000.0, 4),
        bound_ms=round(((a + b) / 2.0 + resolution_s) * 1000.0, 4),
        matched=len(up) + len(down),
        one_way={
            # d_cs = crossing - theta; d_sc = crossing + theta
            CLIENT_TO_SERVER: _one_way(up, -theta),
            SERVER_TO_CLIENT: _one_way(down, theta),
        },
    )
