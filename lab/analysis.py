"""What a capture says about TCP connections: pure functions, packet records in, values out.

Packets come from `lab.capture` (any sequence of `Packet` records in capture order).

- `split_streams` numbers connections exactly as Wireshark's `tcp.stream` does, so "Follow TCP
  Stream N" in Wireshark shows our connection N. The rule, checked against tshark 4.0: streams
  are numbered in order of first appearance of their address/port pair; a SYN without ACK
  starts a new stream on the same pair only if its sequence number differs from the base
  sequence number of that direction (the SYN's seq, or one less than the first seq seen
  without a SYN). A SYN repeating the ISN is a retransmission, even after FIN or RST.
- `analyze_connection` reads one stream: who is client (the SYN sender), the handshake and
  its RTT (SYN to the handshake's final ACK: one full round trip wherever the capture sits),
  the teardown (who sent the first FIN and so holds TIME_WAIT; FIN/ACK, FIN/ACK, ACK is a
  3-packet teardown, FIN, ACK, FIN, ACK a 4-packet one), RSTs, data and pure ACKs each way,
  retransmissions, and the server's flights (slow start, from the ACK clock).
- `analyze` does the whole capture, `summarize_mode` reduces it to the `analysis.json` keys of
  DESIGN.md and joins the client's request log to the connections.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lab.capture import Capture, Packet, without_gc

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
MASK = 0xFFFFFFFF
INITIAL_WINDOW = 10  # Linux's initial congestion window, in segments (RFC 6928)
# per_connection carries the server's segment series for the first connections only: all of a
# 10,000-connection load run's add about 12 MB to analysis.json, and the report reads the pcap
SERIES_CONNECTIONS = 40
CLIENT, SERVER = 0, 1
SIDES = ("client", "server")


def split_streams(packets: Iterable[Packet]) -> list[list[Packet]]:
    """Group packets into connections, numbered like Wireshark's tcp.stream (see module doc)."""
    streams: list[list[Packet]] = []
    current: dict[tuple, list] = {}  # directed 4-tuple -> [packets, {direction: base seq}]
    for p in packets:
        _ts, src, dst, sport, dport, flags, seq, _ack, _len, _wire, _win, _frame, _mss = p
        key = (src, sport, dst, dport)
        state = current.get(key)
        if state is None:
            state = [[], {}]
            current[key] = current[(dst, dport, src, sport)] = state
            streams.append(state[0])
        bases = state[1]
        if flags & SYN:
            if not flags & ACK:
                base = bases.get(key)
                if base is not None and base != seq:  # a new ISN: the pair is reused
                    state = [[], {}]
                    current[key] = current[(dst, dport, src, sport)] = state
                    streams.append(state[0])
                    bases = state[1]
            if key not in bases:
                bases[key] = seq
        elif len(bases) < 2 and key not in bases:
            bases[key] = (seq - 1) & MASK
        state[0].append(p)
    return streams


@dataclass(slots=True)
class Flight:
    """What the server sent in one round trip: from one ACK of the previous round to the next.

    `burst` counts the responses (a burst starts when the client has sent data since the
    server's last segment), `round` the round trips within it. `cwnd_segments` is the most
    data the server had unacknowledged during the round, in MSS-sized segments: the lower
    bound of its congestion window.
    """

    burst: int
    round: int
    start: float
    end: float
    segments: int
    bytes: int
    in_flight_max: int
    cwnd_segments: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "burst": self.burst,
            "round": self.round,
            "start": self.start,
            "end": self.end,
            "segments": self.segments,
            "bytes": self.bytes,
            "in_flight_max": self.in_flight_max,
            "cwnd_segments": self.cwnd_segments,
        }


@dataclass(slots=True)
class Connection:
    """One TCP connection (a Wireshark stream). Pairs are indexed [client, server]: sent by."""

    stream: int
    client_addr: str
    client_port: int
    server_addr: str
    server_port: int
    roles_from: str  # how the client was told: "syn", "syn-ack", "port", "guess"
    start: float
    end: float
    packets: int = 0
    bytes: int = 0  # on the wire: frame lengths
    syn_packets: int = 0  # SYN without ACK
    synack_packets: int = 0
    handshake_packets: int = 0
    handshake_complete: bool = False
    t_syn: float | None = None  # the SYN that got answered (the last one before the SYN-ACK)
    t_first_syn: float | None = None
    t_established: float | None = None  # the handshake's final ACK
    teardown: str = "none"  # 3-packet, 4-packet, simultaneous, reset, half-close, none
    teardown_complete: bool = False
    teardown_packets: int = 0
    closed_first: str | None = None  # "client" or "server": sent the first FIN
    time_wait: str | None = None  # who holds TIME_WAIT: "client", "server", "both"
    t_first_fin: float | None = None
    t_teardown_end: float | None = None
    fin_packets: int = 0
    rst: int = 0
    rst_by: str | None = None  # sender of the first RST
    t_rst: float | None = None
    data_segments: list[int] = field(default_factory=lambda: [0, 0])
    pure_acks: list[int] = field(default_factory=lambda: [0, 0])
    payload_bytes: list[int] = field(default_factory=lambda: [0, 0])
    retransmissions: list[int] = field(default_factory=lambda: [0, 0])
    syn_retransmissions: int = 0
    t_first_client_byte: float | None = None
    t_last_server_byte: float | None = None
    mss: int = 0
    server_series: list[tuple[float, int, int]] = field(default_factory=list)
    flights: list[Flight] = field(default_factory=list)

    @property
    def client(self) -> str:
        return _endpoint(self.client_addr, self.client_port)

    @property
    def server(self) -> str:
        return _endpoint(self.server_addr, self.server_port)

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def handshake_rtt(self) -> float | None:
        """Seconds from the answered SYN to the handshake's final ACK."""
        if self.t_syn is None or self.t_established is None:
            return None
        return self.t_established - self.t_syn

    @property
    def overhead_packets(self) -> int:
        return self.handshake_packets + self.teardown_packets + sum(self.pure_acks)

    @property
    def slow_start_restarts(self) -> int:
        return slow_start_restarts(self.flights)

    def to_dict(self, series: bool = False) -> dict[str, Any]:
        rtt = self.handshake_rtt
        out = {
            "stream": self.stream,
            "client": self.client,
            "server": self.server,
            "client_addr": self.client_addr,
            "client_port": self.client_port,
            "server_addr": self.server_addr,
            "server_port": self.server_port,
            "roles_from": self.roles_from,
            "start": self.start,
            "end": self.end,
            "duration_s": self.duration,
            "packets": self.packets,
            "bytes": self.bytes,
            "syn_packets": self.syn_packets,
            "syn_retransmissions": self.syn_retransmissions,
            "synack_packets": self.synack_packets,
            "handshake_packets": self.handshake_packets,
            "handshake_complete": self.handshake_complete,
            "handshake_rtt_ms": None if rtt is None else rtt * 1000.0,
            "t_syn": self.t_syn,
            "t_established": self.t_established,
            "teardown": self.teardown,
            "teardown_complete": self.teardown_complete,
            "teardown_packets": self.teardown_packets,
            "closed_first": self.closed_first,
            "time_wait": self.time_wait,
            "t_first_fin": self.t_first_fin,
            "t_teardown_end": self.t_teardown_end,
            "fin_packets": self.fin_packets,
            "rst": self.rst,
            "rst_by": self.rst_by,
            "data_segments": _pair(self.data_segments),
            "pure_acks": _pair(self.pure_acks),
            "payload_bytes": _pair(self.payload_bytes),
            "retransmissions": _pair(self.retransmissions),
            "overhead_packets": self.overhead_packets,
            "t_last_server_byte": self.t_last_server_byte,
            "mss": self.mss,
            "slow_start_restarts": self.slow_start_restarts,
            "flights": [f.to_dict() for f in self.flights],
        }
        if series:
            out["server_series"] = [list(point) for point in self.server_series]
        return out


def _pair(values: list[int]) -> dict[str, int]:
    return {"client": values[CLIENT], "server": values[SERVER]}


def _endpoint(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def _roles(packets: Sequence[Packet], server_ports: frozenset[int]) -> tuple[tuple, tuple, str]:
    """(client, server, how we know): the SYN sender is the client."""
    for p in packets:
        if p.flags & SYN:
            if p.flags & ACK:
                return (p.dst, p.dport), (p.src, p.sport), "syn-ack"
            return (p.src, p.sport), (p.dst, p.dport), "syn"
    p = packets[0]
    a, b = (p.src, p.sport), (p.dst, p.dport)
    if p.dport in server_ports and p.sport not in server_ports:
        return a, b, "port"
    if p.sport in server_ports and p.dport not in server_ports:
        return b, a, "port"
    # No SYN seen (the capture began mid-connection): servers listen on the lower port.
    return (a, b, "guess") if p.sport > p.dport else (b, a, "guess")


def analyze_connection(
    stream: int,
    packets: Sequence[Packet],
    server_ports: Iterable[int] = (),
    mss: int | None = None,
) -> Connection:
    """Everything one connection's packets say. `packets` must be one stream, in capture order."""
    (caddr, cport), (saddr, sport_), roles_from = _roles(packets, frozenset(server_ports))
    c = Connection(stream, caddr, cport, saddr, sport_, roles_from, packets[0].ts, packets[-1].ts)
    # Per direction, indexed by sender (0 client, 1 server). Sequence numbers are kept relative
    # to each side's base (its ISN) so comparisons survive wrapping at 2**32.
    base: list[int | None] = [None, None]
    max_end = [0, 0]  # highest relative seq sent
    fin_end: list[int | None] = [None, None]  # relative seq that acknowledges the side's FIN
    fin_acked = [False, False]
    fin_acked_alone = [False, False]  # acknowledged by a pure ACK, not by the peer's FIN
    fin_acks_peer = [False, False]  # the side's FIN also acknowledged the peer's FIN
    data_segments = [0, 0]
    pure_acks = [0, 0]
    payload = [0, 0]
    retrans = [0, 0]
    biggest = [0, 0]  # largest payload no bigger than an Ethernet MSS
    top = [0, 0]  # largest payload (GSO captures on the sender show segments above the MSS)
    syn_mss = [0, 0]  # the MSS option each side announced
    series = c.server_series
    synack_seq = None
    waiting_ack = False  # SYN-ACK seen, handshake's final ACK not yet
    handshake = teardown = wire = syns = synacks = syn_retrans = fins = rsts = 0
    t_syn = t_first_syn = t_established = t_first_fin = t_teardown_end = t_rst = None
    t_last_server_byte = t_first_client_byte = None
    fin_watch = False  # a FIN waits for its ACK
    first_fin_side = rst_side = None
    high_ack = 0  # highest client ACK, relative to the server's base
    flights: list[list] = []  # [burst, round, start, end, segments, bytes, in_flight_max]
    flight: list = []
    flight_first = 0
    burst = -1
    client_sent = True

    for p in packets:
        ts, src, _dst, sport, _dport, flags, seq, ack, plen, wire_len, _win, _frame, opt_mss = p
        wire += wire_len
        d = 1 if sport != cport or src != caddr else 0
        b = base[d]
        if b is None:
            b = base[d] = seq if flags & SYN else (seq - 1) & MASK

        if flags & (SYN | RST):
            if flags & RST:
                rsts += 1
                if rst_side is None:
                    rst_side, t_rst = d, ts
                continue
            handshake += 1
            rel = (seq - b) & MASK
            if opt_mss:
                syn_mss[d] = opt_mss
            if flags & ACK:
                synacks += 1
                if synack_seq is None:
                    synack_seq = seq
                    waiting_ack = True
                elif rel < max_end[d]:
                    retrans[d] += 1
            else:
                syns += 1
                if t_first_syn is None:
                    t_first_syn = ts
                if synack_seq is None:
                    t_syn = ts
                if rel < max_end[d]:
                    retrans[d] += 1
                    syn_retrans += 1
            if max_end[d] < rel + 1:
                max_end[d] = rel + 1
            continue

        acks_fin = False
        if flags & ACK:
            if d == 0:
                if base[1] is not None:
                    rel_ack = (ack - base[1]) & MASK
                    if high_ack < rel_ack < 0x80000000:
                        high_ack = rel_ack
                if waiting_ack and ack == (synack_seq + 1) & MASK:
                    waiting_ack = False
                    t_established = ts
                    handshake += 1
                    if not plen and not flags & FIN:
                        continue
                    # The final ACK carried data (or a FIN): it counts below as well.
            if fin_watch:
                o = 1 - d
                end_o = fin_end[o]
                if end_o is not None and not fin_acked[o] and (ack - base[o]) & MASK >= end_o:
                    fin_acked[o] = acks_fin = True
                    if fin_acked[d]:
                        fin_watch = False
                        t_teardown_end = ts

        if flags & FIN:
            teardown += 1
            fins += 1
            rel = (seq - b) & MASK
            end = rel + plen + 1
            if fin_end[d] is None:
                fin_end[d] = end
                if first_fin_side is None:
                    first_fin_side, t_first_fin = d, ts
                elif fin_acked[1 - d]:
                    fin_acks_peer[d] = True
                fin_watch = True
            elif end <= fin_end[d]:
                retrans[d] += 1
            if max_end[d] < end:
                max_end[d] = end
            if plen:
                data_segments[d] += 1
                payload[d] += plen
                if d:
                    t_last_server_byte = ts
                    series.append((ts, rel, plen))
            continue

        if plen:
            data_segments[d] += 1
            payload[d] += plen
            rel = (seq - b) & MASK
            if top[d] < plen:
                top[d] = plen
                if plen <= 1460:
                    biggest[d] = plen
            end = rel + plen
            retransmitted = rel < max_end[d]
            if retransmitted:
                retrans[d] += 1
            else:
                max_end[d] = end
            if d:
                t_last_server_byte = ts
                series.append((ts, rel, plen))
                if not retransmitted:
                    if client_sent:
                        burst += 1
                        flight = [burst, 0, ts, ts, 0, 0, 0]
                        flights.append(flight)
                        flight_first = rel
                        client_sent = False
                    elif high_ack > flight_first:
                        flight = [burst, flight[1] + 1, ts, ts, 0, 0, 0]
                        flights.append(flight)
                        flight_first = rel
                    flight[3] = ts
                    flight[4] += 1
                    flight[5] += plen
                    if end - high_ack > flight[6]:
                        flight[6] = end - high_ack
            else:
                client_sent = True
                if t_first_client_byte is None:
                    t_first_client_byte = ts
        elif acks_fin:
            teardown += 1
            fin_acked_alone[1 - d] = True
        else:
            pure_acks[d] += 1

    c.packets = len(packets)
    c.bytes = wire
    c.syn_packets, c.synack_packets, c.syn_retransmissions = syns, synacks, syn_retrans
    c.handshake_packets = handshake
    c.handshake_complete = t_established is not None
    c.t_syn, c.t_first_syn, c.t_established = t_syn, t_first_syn, t_established
    c.teardown_packets, c.fin_packets = teardown, fins
    c.t_first_fin, c.t_teardown_end = t_first_fin, t_teardown_end
    c.rst, c.t_rst = rsts, t_rst
    c.data_segments, c.pure_acks, c.payload_bytes = data_segments, pure_acks, payload
    c.retransmissions = retrans
    c.t_first_client_byte, c.t_last_server_byte = t_first_client_byte, t_last_server_byte
    c.mss = mss or _segment_size(syn_mss, top[SERVER], biggest)
    size = c.mss
    c.flights = [
        Flight(b, r, t0, t1, n, nbytes, most, -(-most // size) if most > 0 else n)
        for b, r, t0, t1, n, nbytes, most in flights
    ]
    if rst_side is not None:
        c.rst_by = SIDES[rst_side]
    _classify_teardown(c, first_fin_side, fin_end, fin_acked, fin_acked_alone, fin_acks_peer)
    return c


def _segment_size(syn_mss: list[int], top: int, biggest: list[int]) -> int:
    """The server's segment size: the smaller MSS announced in the handshake, or the segments
    seen when they are that size less TCP options (timestamps take 12 bytes of it)."""
    negotiated = min((m for m in syn_mss if m), default=0)
    if negotiated:
        return top if negotiated - 40 <= top <= negotiated else negotiated
    return biggest[SERVER] or biggest[CLIENT] or 1448


def _classify_teardown(c, first, fin_end, fin_acked, acked_alone, acks_peer) -> None:
    if first is None:
        c.teardown = "reset" if c.rst else "none"
        return
    c.closed_first = SIDES[first]
    other = 1 - first
    c.teardown_complete = fin_acked[0] and fin_acked[1]
    if fin_end[other] is None:
        c.teardown = "reset" if c.rst else "half-close"
    elif not acks_peer[other]:
        c.teardown = "simultaneous"  # the FINs crossed: each acknowledged later, alone
    elif acked_alone[first]:
        c.teardown = "4-packet"
    else:
        c.teardown = "3-packet"
    if not c.teardown_complete:
        if c.rst:
            c.teardown = "reset"
        return
    c.time_wait = "both" if c.teardown == "simultaneous" else c.closed_first


def slow_start_restarts(flights: Sequence[Flight], initial_window: int = INITIAL_WINDOW) -> int:
    """Responses after the first that began again from the initial window (slow start again).

    A burst counts when its first round sent no more than the initial window although the
    burst had more to send (so the window, not the data, limited it) and an earlier burst had
    already grown the window past the initial one.
    """
    restarts = 0
    grown = 0
    by_burst: dict[int, list[Flight]] = {}
    for f in flights:
        by_burst.setdefault(f.burst, []).append(f)
    for burst in sorted(by_burst):
        rounds = by_burst[burst]
        first = rounds[0]
        window_limited = len(rounds) > 1
        if (
            burst > 0
            and grown > initial_window
            and window_limited
            and first.cwnd_segments <= initial_window
        ):
            restarts += 1
        grown = max(grown, *(f.cwnd_segments for f in rounds))
    return restarts


@dataclass
class Analysis:
    """A whole capture: totals and one `Connection` per Wireshark stream."""

    connections: list[Connection]
    packets: int
    syn: int
    synack: int
    fin: int
    rst: int
    retransmissions: int
    bytes: int
    payload_bytes: int
    frames: int = 0
    truncated: bool = False
    problem: str | None = None

    def to_dict(self, series: bool = False) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "packets": self.packets,
            "connections": len(self.connections),
            "syn": self.syn,
            "synack": self.synack,
            "fin": self.fin,
            "rst": self.rst,
            "retransmissions": self.retransmissions,
            "bytes": self.bytes,
            "payload_bytes": self.payload_bytes,
            "truncated": self.truncated,
            "problem": self.problem,
            "streams": [c.to_dict(series) for c in self.connections],
        }


def analyze(packets: Sequence[Packet] | Capture, server_ports: Iterable[int] = ()) -> Analysis:
    """Analyse a capture's packets (or a `Capture`, whose truncation is carried along)."""
    capture = packets if isinstance(packets, Capture) else None
    records = capture.packets if capture else packets
    ports = frozenset(server_ports)
    with without_gc():
        streams = split_streams(records)
        conns = [analyze_connection(i, s, ports) for i, s in enumerate(streams)]
    if ports:
        conns = [_orient(c, ports) for c in conns]
    return Analysis(
        connections=conns,
        packets=len(records),
        syn=sum(c.syn_packets for c in conns),
        synack=sum(c.synack_packets for c in conns),
        fin=sum(c.fin_packets for c in conns),
        rst=sum(c.rst for c in conns),
        retransmissions=sum(sum(c.retransmissions) for c in conns),
        bytes=sum(c.bytes for c in conns),
        payload_bytes=sum(sum(c.payload_bytes) for c in conns),
        frames=capture.frames if capture else len(records),
        truncated=capture.truncated if capture else False,
        problem=capture.problem if capture else None,
    )


def _orient(c: Connection, ports: frozenset[int]) -> Connection:
    """Trust the caller's server ports over a guess made without a SYN."""
    if c.roles_from == "guess" and c.client_port in ports and c.server_port not in ports:
        c.client_addr, c.server_addr = c.server_addr, c.client_addr
        c.client_port, c.server_port = c.server_port, c.client_port
        c.roles_from = "port"
    return c


# --- Per mode: the analysis.json figures -------------------------------------------------------


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
    """One mode's entry of analysis.json (DESIGN.md keys; name and persistent by the caller)."""
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
