"""One connection's packets read as TCP: roles, handshake, teardown, data, flights.

`analyze_connection` is the reading (see lab.analysis' doc for what it measures);
lab.analysis.total applies it to every stream of a capture.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from lab.capture import Packet
from lab.tcp import ACK, DEFAULT_MSS, ETHERNET_MSS, FIN, INITIAL_WINDOW, RST, SEQ_MASK, SYN

CLIENT, SERVER = 0, 1
SIDES = ("client", "server")


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


HANDSHAKE, DATA, PURE_ACK, TEARDOWN, OTHER = "handshake", "data", "pure ACK", "teardown", "other"
CATEGORIES = (HANDSHAKE, DATA, PURE_ACK, TEARDOWN, OTHER)


def analyze_connection(
    stream: int,
    packets: Sequence[Packet],
    server_ports: Iterable[int] = (),
    mss: int | None = None,
    marks: dict[int, str] | None = None,
) -> Connection:
    """Everything one connection's packets say. `packets` must be one stream, in capture order.

    With `marks` (a dict), the packets that are not plain data or pure ACKs get their category
    there, keyed by `id(packet)`: HANDSHAKE, TEARDOWN or OTHER (a RST), as the counts see them
    (see `packet_categories`)."""
    (caddr, cport), (saddr, sport_), roles_from = _roles(packets, frozenset(server_ports))
    c = Connection(stream, caddr, cport, saddr, sport_, roles_from, packets[0].ts, packets[-1].ts)
    _finish(c, _walk(packets, caddr, cport, c.server_series, marks), len(packets), mss)
    return c


class _Walk(NamedTuple):
    """What the walk over one connection's packets found, in this order. Pairs are indexed by
    sender (0 client, 1 server); sequence numbers are relative to each side's base (its ISN).
    `_walk` returns a plain tuple in this order and `_finish` unpacks it at once: building the
    NamedTuple itself cost 5-8% of `analyze_connection` on the benchmark's short connections."""

    fin_end: list  # relative seq that acknowledges the side's FIN (None: no FIN)
    fin_acked: list
    fin_acked_alone: list  # acknowledged by a pure ACK, not by the peer's FIN
    fin_acks_peer: list  # the side's FIN also acknowledged the peer's FIN
    data_segments: list
    pure_acks: list
    payload: list
    retrans: list
    biggest: list  # largest payload no bigger than an Ethernet MSS
    top: list  # largest payload (GSO captures on the sender show segments above the MSS)
    syn_mss: list  # the MSS option each side announced
    flights: list  # [burst, round, start, end, segments, bytes, in_flight_max]
    handshake: int
    teardown: int
    wire: int
    syns: int
    synacks: int
    syn_retrans: int
    fins: int
    rsts: int
    t_syn: float | None
    t_first_syn: float | None
    t_established: float | None
    t_first_fin: float | None
    t_teardown_end: float | None
    t_rst: float | None
    t_last_server_byte: float | None
    t_first_client_byte: float | None
    first_fin_side: int | None
    rst_side: int | None


def _walk(packets, caddr: str, cport: int, series: list, marks) -> tuple:
    """The per-packet state machine, deliberately one function on local variables (see the
    comment above the loop). The cases, in order: SYN or RST; the ACK field (the handshake's
    final ACK, a FIN acknowledged); FIN; data; a pure ACK."""
    # Per direction, indexed by sender (0 client, 1 server). Sequence numbers are kept relative
    # to each side's base (its ISN) so comparisons survive wrapping at 2**32.
    base: list[int | None] = [None, None]
    max_end = [0, 0]  # highest relative seq sent
    fin_end: list[int | None] = [None, None]
    fin_acked = [False, False]
    fin_acked_alone = [False, False]
    fin_acks_peer = [False, False]
    data_segments, pure_acks, payload, retrans = [0, 0], [0, 0], [0, 0], [0, 0]
    biggest, top, syn_mss = [0, 0], [0, 0], [0, 0]
    flights: list[list] = []
    synack_seq = None
    waiting_ack = False  # SYN-ACK seen, handshake's final ACK not yet
    handshake = teardown = wire = syns = synacks = syn_retrans = fins = rsts = 0
    t_syn = t_first_syn = t_established = t_first_fin = t_teardown_end = t_rst = None
    t_last_server_byte = t_first_client_byte = None
    fin_watch = False  # a FIN waits for its ACK
    first_fin_side = rst_side = None
    high_ack = 0  # highest client ACK, relative to the server's base
    flight: list = []
    flight_first = 0
    burst = -1
    client_sent = True

    # One function, not a call per packet with a state object per direction (issue 9 allows
    # this one exception): this loop is the analysis' hot path. Measured on Python 3.11, one
    # function call per packet alone adds 0.05 s per million packets, 5% of this loop's
    # 1.1 s, before any of its ~20 local variables becomes a slower attribute.
    for p in packets:
        ts, src, _dst, sport, _dport, flags, seq, ack, plen, wire_len, _win, _frame, opt_mss = p
        wire += wire_len
        d = 1 if sport != cport or src != caddr else 0
        b = base[d]
        if b is None:
            b = base[d] = seq if flags & SYN else (seq - 1) & SEQ_MASK

        if flags & (SYN | RST):
            if flags & RST:
                rsts += 1
                if marks is not None:
                    marks[id(p)] = OTHER
                if rst_side is None:
                    rst_side, t_rst = d, ts
                continue
            handshake += 1
            if marks is not None:
                marks[id(p)] = HANDSHAKE
            rel = (seq - b) & SEQ_MASK
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
                    rel_ack = (ack - base[1]) & SEQ_MASK
                    if high_ack < rel_ack < 0x80000000:
                        high_ack = rel_ack
                if waiting_ack and ack == (synack_seq + 1) & SEQ_MASK:
                    waiting_ack = False
                    t_established = ts
                    handshake += 1
                    if not plen and not flags & FIN:
                        if marks is not None:
                            marks[id(p)] = HANDSHAKE
                        continue
                    # The final ACK carried data (or a FIN): it counts below as well.
            if fin_watch:
                o = 1 - d
                end_o = fin_end[o]
                if end_o is not None and not fin_acked[o] and (ack - base[o]) & SEQ_MASK >= end_o:
                    fin_acked[o] = acks_fin = True
                    if fin_acked[d]:
                        fin_watch = False
                        t_teardown_end = ts

        if flags & FIN:
            teardown += 1
            fins += 1
            if marks is not None:
                marks[id(p)] = TEARDOWN
            rel = (seq - b) & SEQ_MASK
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
            rel = (seq - b) & SEQ_MASK
            if top[d] < plen:
                top[d] = plen
                if plen <= ETHERNET_MSS:
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
            if marks is not None:
                marks[id(p)] = TEARDOWN
        else:
            pure_acks[d] += 1

    return ((
        fin_end, fin_acked, fin_acked_alone, fin_acks_peer, data_segments, pure_acks, payload,
        retrans, biggest, top, syn_mss, flights, handshake, teardown, wire, syns, synacks,
        syn_retrans, fins, rsts, t_syn, t_first_syn, t_established, t_first_fin, t_teardown_end,
        t_rst, t_last_server_byte, t_first_client_byte, first_fin_side, rst_side,
    ))  # fmt: skip


def _finish(c: Connection, walk: tuple, packets: int, mss: int | None) -> None:
    """The connection's fields from the walk: counts, times, segment size, flights, teardown."""
    (
        fin_end,
        fin_acked,
        fin_acked_alone,
        fin_acks_peer,
        data_segments,
        pure_acks,
        payload,
        retrans,
        biggest,
        top,
        syn_mss,
        flights,
        handshake,
        teardown,
        wire,
        syns,
        synacks,
        syn_retrans,
        fins,
        rsts,
        t_syn,
        t_first_syn,
        t_established,
        t_first_fin,
        t_teardown_end,
        t_rst,
        t_last_server_byte,
        t_first_client_byte,
        first_fin_side,
        rst_side,
    ) = walk  # fmt: skip  (the fields of _Walk)
    c.packets = packets
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


def packet_categories(packets: Sequence[Packet], marks: dict[int, str]) -> list[str]:
    """Each packet's category, from the `marks` that `analyze_connection` left: a SYN, SYN-ACK
    or the handshake's final ACK without data is HANDSHAKE; a FIN, or the pure ACK of one,
    TEARDOWN; a RST OTHER; the rest DATA when it carries payload, else PURE_ACK. A FIN or a
    final ACK that carries data is counted twice by the analysis (teardown or handshake, and
    data): here it is TEARDOWN and DATA respectively, one category per packet."""
    return [marks.get(id(p)) or (DATA if p.payload_len else PURE_ACK) for p in packets]


def _segment_size(syn_mss: list[int], top: int, biggest: list[int]) -> int:
    """The server's segment size: the smaller MSS announced in the handshake, or the segments
    seen when they are that size less TCP options (timestamps take 12 bytes of it)."""
    negotiated = min((m for m in syn_mss if m), default=0)
    if negotiated:
        return top if negotiated - 40 <= top <= negotiated else negotiated
    return biggest[SERVER] or biggest[CLIENT] or DEFAULT_MSS


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
    if len(flights) < 2:  # a restart needs an earlier round that grew the window
        return 0
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
