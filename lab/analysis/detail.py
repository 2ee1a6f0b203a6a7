"""A few connections in full detail, for drawings: packet by packet, request by request.

`describe` reads one stream with `analyze_connection` and adds what only a chart needs: each
packet's category (as the analysis counts it), sequence and acknowledgement numbers relative
to each side's base (Wireshark's relative numbers: the ladder), the exchanges (a request and
its response, in order on the connection: the waterfall and the Stevens graph) and the
phases (SYN, established, exchanges, first FIN or RST, end). `details` does it for the chosen
streams of a capture only, so a load run's report stays bounded.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from lab.analysis.connection import Connection, analyze_connection, packet_categories
from lab.analysis.streams import split_streams
from lab.capture import Packet, without_gc
from lab.tcp import ACK, FIN, RST, SYN, base_seq, seq_diff


@dataclass(frozen=True, slots=True)
class LadderRow:
    """One packet of the ladder: seconds since the connection's first packet, who sent it,
    its flags (lab.tcp bits), relative seq, relative ack (None without ACK), payload bytes."""

    t: float
    from_client: bool
    flags: int
    seq: int
    ack: int | None
    length: int


@dataclass(slots=True)
class Exchange:
    """One request and its response on a connection: when the request's first byte passed,
    and the server's payload segments that followed it (ts, relative seq, length), before the
    client sent more. Retransmitted segments are in `data` too: they were on the wire."""

    request: float
    data: list[tuple[float, int, int]] = field(default_factory=list)

    @property
    def first_byte(self) -> float | None:
        return self.data[0][0] if self.data else None

    @property
    def last_byte(self) -> float | None:
        return self.data[-1][0] if self.data else None

    @property
    def nbytes(self) -> int:
        return sum(length for _ts, _seq, length in self.data)

    def series(self) -> list[tuple[float, int]]:
        """(ms since the request, highest response byte sent so far): the Stevens graph."""
        if not self.data:
            return []
        start = self.data[0][1]
        points, top = [], 0
        for ts, seq, length in self.data:
            top = max(top, seq_diff(seq, start) + length)
            points.append(((ts - self.request) * 1000, top))
        return points


@dataclass(frozen=True, slots=True)
class Phases:
    """A connection's phase boundaries, epoch seconds; None where the capture has no mark.
    `syn` is the connection's first packet, `end` its last once a FIN or RST was seen."""

    syn: float
    established: float | None
    exchanges: list[tuple[float, float | None, float | None]]  # request, first, last byte
    fin: float | None  # the first FIN or RST
    end: float | None


@dataclass(slots=True)
class ConnectionDetail:
    """One stream's `Connection` and its packets, each with a category and a ladder row."""

    connection: Connection
    packets: list[Packet]
    categories: list[str]
    ladder: list[LadderRow]
    exchanges: list[Exchange]
    phases: Phases

    @property
    def stream(self) -> int:
        return self.connection.stream

    @property
    def client_port(self) -> int:
        return self.connection.client_port

    @property
    def server_port(self) -> int:
        return self.connection.server_port

    @property
    def opened(self) -> bool:
        """The capture holds the connection's SYN as its first packet."""
        return bool(self.packets[0].flags & SYN)


def describe(
    stream: int, packets: Sequence[Packet], server_ports: Iterable[int] = ()
) -> ConnectionDetail:
    """One stream (its packets in capture order) in full detail."""
    marks: dict[int, str] = {}
    conn = analyze_connection(stream, packets, server_ports, marks=marks)
    caddr, cport = conn.client_addr, conn.client_port
    from_client = [p.sport == cport and p.src == caddr for p in packets]
    ladder = _ladder(packets, from_client)
    exchanges = _exchanges(packets, from_client, ladder)
    fin = next((p.ts for p in packets if p.flags & (FIN | RST)), None)
    phases = Phases(
        syn=packets[0].ts,
        established=conn.t_established,
        exchanges=[(e.request, e.first_byte, e.last_byte) for e in exchanges],
        fin=fin,
        end=packets[-1].ts if fin is not None else None,
    )
    categories = packet_categories(packets, marks)
    return ConnectionDetail(conn, list(packets), categories, ladder, exchanges, phases)


def _ladder(packets: Sequence[Packet], from_client: list[bool]) -> list[LadderRow]:
    """Relative seq and ack per packet; each side's base is its ISN (lab.tcp.base_seq)."""
    bases: list[int | None] = [None, None]  # [client, server]
    for p, mine in zip(packets, from_client, strict=True):  # the side's first SYN: its ISN
        side = 0 if mine else 1
        if p.flags & SYN and bases[side] is None:
            bases[side] = p.seq
    for p, mine in zip(packets, from_client, strict=True):
        side = 0 if mine else 1
        if bases[side] is None:
            bases[side] = base_seq(p.flags, p.seq)
    t0 = packets[0].ts
    rows = []
    for p, mine in zip(packets, from_client, strict=True):
        own, theirs = (bases[0], bases[1]) if mine else (bases[1], bases[0])
        ack = seq_diff(p.ack, theirs) if p.flags & ACK and theirs is not None else None
        rows.append(LadderRow(p.ts - t0, mine, p.flags, seq_diff(p.seq, own), ack, p.payload_len))
    return rows


def _exchanges(
    packets: Sequence[Packet], from_client: list[bool], ladder: list[LadderRow]
) -> list[Exchange]:
    """Request bytes open an exchange unless the last one has no response yet (a request in
    several segments); the server's payload segments after it are its response."""
    out: list[Exchange] = []
    for p, mine, row in zip(packets, from_client, ladder, strict=True):
        if not p.payload_len or p.flags & SYN:
            continue
        if mine:
            if not out or out[-1].data:
                out.append(Exchange(p.ts))
        elif out:
            out[-1].data.append((p.ts, row.seq, p.payload_len))
    return out


def details(
    packets: Sequence[Packet], wanted: Collection[int] | None = None
) -> tuple[list[ConnectionDetail], int]:
    """The capture's streams numbered as Wireshark does, in detail for the stream numbers in
    `wanted` only (all if None), and how many streams the capture holds."""
    with without_gc():
        groups = split_streams(packets)
        out = [
            describe(i, group) for i, group in enumerate(groups) if wanted is None or i in wanted
        ]
    return out, len(groups)
