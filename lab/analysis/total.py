"""A whole capture: every stream read by `analyze_connection`, and the totals (`Analysis`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lab.analysis.connection import Connection, analyze_connection
from lab.analysis.streams import split_streams
from lab.capture import Capture, Packet, without_gc


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
    # Wireshark's look-alikes of a retransmission, counted apart (lab.analysis.walk)
    fast_retransmission: int = 0
    out_of_order: int = 0
    spurious_retransmission: int = 0
    keep_alive: int = 0
    zero_window_probe: int = 0
    resent: int = 0  # data segments sent again, whatever Wireshark calls them (Connection.resent)
    warnings: list[str] = field(default_factory=list)  # frames not decoded, and why

    def to_dict(self, series: bool = False, streams: bool = True) -> dict[str, Any]:
        """The totals and (unless streams=False) every connection's dict under "streams"."""
        out = {
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
            "fast_retransmission": self.fast_retransmission,
            "out_of_order": self.out_of_order,
            "spurious_retransmission": self.spurious_retransmission,
            "keep_alive": self.keep_alive,
            "zero_window_probe": self.zero_window_probe,
            "resent": self.resent,
            "warnings": self.warnings,
        }
        if streams:
            out["streams"] = [c.to_dict(series) for c in self.connections]
        return out


def totals(conns: Iterable[Connection]) -> dict[str, int]:
    """The `Analysis` totals that are sums over connections (a per-side pair counts both
    sides): a capture's are the sums of its parts' totals."""
    conns = list(conns)
    return {
        "syn": sum(c.syn_packets for c in conns),
        "synack": sum(c.synack_packets for c in conns),
        "fin": sum(c.fin_packets for c in conns),
        "rst": sum(c.rst for c in conns),
        "retransmissions": sum(sum(c.retransmissions) for c in conns),
        "bytes": sum(c.bytes for c in conns),
        "payload_bytes": sum(sum(c.payload_bytes) for c in conns),
        "fast_retransmission": sum(sum(c.fast_retransmission) for c in conns),
        "out_of_order": sum(sum(c.out_of_order) for c in conns),
        "spurious_retransmission": sum(sum(c.spurious_retransmission) for c in conns),
        "keep_alive": sum(sum(c.keep_alive) for c in conns),
        "zero_window_probe": sum(sum(c.zero_window_probe) for c in conns),
        "resent": sum(sum(c.resent) for c in conns),
    }


def analyze(packets: Sequence[Packet] | Capture, server_ports: Iterable[int] = ()) -> Analysis:
    """Analyse a capture's packets (or a `Capture`, whose truncation is carried along)."""
    capture = packets if isinstance(packets, Capture) else None
    records = capture.packets if capture else packets
    ports = frozenset(server_ports)
    with without_gc():
        conns = analyze_streams(split_streams(records), ports)
    if ports:
        conns = [_orient(c, ports) for c in conns]
    return of_connections(conns, records, capture)


def analyze_streams(
    streams: Sequence[Sequence[Packet]], ports: frozenset[int] = frozenset(), first: int = 0
) -> list[Connection]:
    """Each stream's `Connection`, numbered from `first` (a part of a capture's streams)."""
    return [analyze_connection(i, s, ports) for i, s in enumerate(streams, first)]


def of_connections(
    conns: list[Connection],
    records: Sequence[Packet],
    capture: Capture | None,
    summed: dict[str, int] | None = None,
) -> Analysis:
    """The `Analysis` of a capture's connections (`summed`: their totals, if known)."""
    return Analysis(
        connections=conns,
        packets=len(records),
        frames=capture.frames if capture else len(records),
        truncated=capture.truncated if capture else False,
        problem=capture.problem if capture else None,
        warnings=capture.warnings if capture else [],
        **(summed if summed is not None else totals(conns)),
    )


def _orient(c: Connection, ports: frozenset[int]) -> Connection:
    """Trust the caller's server ports over a guess made without a SYN."""
    if c.roles_from == "guess" and c.client_port in ports and c.server_port not in ports:
        c.client_addr, c.server_addr = c.server_addr, c.client_addr
        c.client_port, c.server_port = c.server_port, c.client_port
        c.roles_from = "port"
    return c
