"""One connection's packets read as TCP: roles, handshake, teardown, data, flights.

`analyze_connection` is the reading (see lab.analysis' doc for what it measures);
lab.analysis.total applies it to every stream of a capture.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lab.analysis.walk import DATA, HANDSHAKE, OTHER, PURE_ACK, TEARDOWN, walk
from lab.capture import Packet
from lab.tcp import ACK, DEFAULT_MSS, INITIAL_WINDOW, SYN

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
    retransmissions: list[int] = field(default_factory=lambda: [0, 0])  # fast ones included
    # the segments Wireshark tells apart from retransmissions, under its names
    # (tcp.analysis.*; lab.analysis.walk says how each is told)
    fast_retransmission: list[int] = field(default_factory=lambda: [0, 0])
    out_of_order: list[int] = field(default_factory=lambda: [0, 0])
    spurious_retransmission: list[int] = field(default_factory=lambda: [0, 0])
    keep_alive: list[int] = field(default_factory=lambda: [0, 0])
    zero_window_probe: list[int] = field(default_factory=lambda: [0, 0])
    # data segments carrying a byte this capture had already shown: what the sender sent again,
    # whatever name Wireshark gives it (on a fast path most resends are "out of order")
    resent: list[int] = field(default_factory=lambda: [0, 0])
    syn_retransmissions: int = 0
    t_first_client_byte: float | None = None
    t_last_server_byte: float | None = None
    mss: int = 0
    syn_mss: int = 0  # the smaller MSS option the handshake announced (0: none seen)
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
            "fast_retransmission": _pair(self.fast_retransmission),
            "out_of_order": _pair(self.out_of_order),
            "spurious_retransmission": _pair(self.spurious_retransmission),
            "keep_alive": _pair(self.keep_alive),
            "zero_window_probe": _pair(self.zero_window_probe),
            "resent": _pair(self.resent),
            "overhead_packets": self.overhead_packets,
            "t_last_server_byte": self.t_last_server_byte,
            "mss": self.mss,
            "syn_mss": self.syn_mss,
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
    _finish(c, walk(packets, caddr, cport, c.server_series, marks), len(packets), mss)
    return c


def _finish(c: Connection, found: tuple, packets: int, mss: int | None) -> None:
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
        fast_retrans,
        out_of_order,
        spurious,
        keep_alives,
        zero_window_probes,
        resent,
    ) = found  # fmt: skip  (the fields of lab.analysis.walk.Walk)
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
    c.fast_retransmission, c.out_of_order = fast_retrans, out_of_order
    c.spurious_retransmission, c.keep_alive = spurious, keep_alives
    c.zero_window_probe, c.resent = zero_window_probes, resent
    c.t_first_client_byte, c.t_last_server_byte = t_first_client_byte, t_last_server_byte
    c.mss = mss or _segment_size(syn_mss, top[SERVER], biggest)
    c_mss, s_mss = syn_mss  # the smaller option announced (0: none); min() over a generator
    c.syn_mss = min(c_mss, s_mss) if c_mss and s_mss else c_mss or s_mss  # took 1 µs of 6 here
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
    client_mss, server_mss = syn_mss  # a plain min over a generator cost 3% on short connections
    negotiated = (
        min(client_mss, server_mss) if client_mss and server_mss else client_mss or server_mss
    )
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
