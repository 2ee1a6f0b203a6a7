"""Connections numbered as Wireshark's `tcp.stream` numbers them (see lab.analysis' doc)."""

from __future__ import annotations

from collections.abc import Iterable

from lab.capture import Packet
from lab.tcp import ACK, SEQ_MASK, SYN


def split_streams(packets: Iterable[Packet]) -> list[list[Packet]]:
    """Group packets into connections, numbered like Wireshark's tcp.stream (see the package
    doc). Packets keep their capture order within each stream."""
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
            bases[key] = (seq - 1) & SEQ_MASK  # lab.tcp.base_seq, inlined: once per packet
        state[0].append(p)
    return streams
