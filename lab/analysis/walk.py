"""The per-packet walk over one connection: the analysis' hot path (see `walk`).

Sequence numbers are judged as Wireshark 4.0 judges them (`tcp_analyze_sequence_number` in
its packet-tcp.c), in serial arithmetic modulo 2**32, so "retransmissions" means what
`tcp.analysis.retransmission` means and the look-alikes are counted apart under Wireshark's
names: out-of-order segments, spurious retransmissions, keep-alives, zero-window probes. Per
side, the walk keeps Wireshark's state: the next expected sequence number (the highest
seq + length seen, SYN and FIN counting one) and when it last moved, the last ACK field and
window sent, and how many duplicate ACKs in a row. Then, for a segment with data, SYN or FIN:

- a zero-window probe: 1 byte at the next expected seq while the peer's window is 0 (it does
  not move the next expected seq);
- a keep-alive: 0 or 1 byte at one below the next expected seq (never a retransmission);
- a spurious retransmission: data the peer has already acknowledged (Wireshark 4.0 also sets
  `tcp.analysis.retransmission` on these; we count them only here);
- then, for a segment that starts behind the next expected seq: a fast retransmission (also
  a retransmission) when it is at the seq the peer has acknowledged in two or more duplicate
  ACKs, within 20 ms of its last ACK; out of order when it came within the handshake's RTT
  (3 ms without one) of the moment the next expected seq last moved and does not end exactly
  there; else a retransmission.

Wireshark's names depend on timing: behind the next expected seq within the handshake's RTT is
"out of order", later is a retransmission. On a sub-millisecond path the sender's resends come
within that RTT of its newest data, so most of them are named out of order (a lab run with 5%
loss once showed 0 retransmissions and 13 out-of-order segments, tshark agreeing). So the walk
also counts, per side, the data segments that are **resent**: they carry a byte this capture has
already shown, whatever Wireshark calls them. It keeps the holes below the next expected seq
(bytes never shown; a segment that lands only in holes is filling a gap, not a resend); only
segments off the expected seq touch them, so the common path pays nothing.

One quirk is kept: when a side acknowledges data the capture never showed ("ACKed unseen
segment"), Wireshark sets the other side's duplicate-ACK count to an unsigned -1, so that side's
next segment behind the expected seq at the acknowledged seq is a fast retransmission.
"""

from __future__ import annotations

from bisect import bisect_right
from operator import itemgetter
from typing import NamedTuple

from lab.tcp import ACK, ETHERNET_MSS, FIN, RST, SEQ_MASK, SYN

HANDSHAKE, DATA, PURE_ACK, TEARDOWN, OTHER = "handshake", "data", "pure ACK", "teardown", "other"

_HALF = 0x80000000  # lab.tcp.SEQ_HALF: serial arithmetic's "behind"
_KEEP_ALIVE, _ZERO_WINDOW_PROBE = 1, 2  # what the last segment of a side was
_RETRANSMISSION, _OUT_OF_ORDER, _SPURIOUS = 1, 2, 3  # a segment behind the expected seq
_CONTROL, _SYN_FIN = SYN | FIN | RST, SYN | FIN
_FAST_RETRANSMISSION_S = 0.020  # Wireshark's window after the last duplicate ACK
_OUT_OF_ORDER_S = 0.003  # Wireshark's out-of-order window without a handshake RTT


class Walk(NamedTuple):
    """What the walk over one connection's packets found, in this order. Pairs are indexed by
    sender (0 client, 1 server). `walk` returns a plain tuple in this order and the caller
    unpacks it at once: building the NamedTuple itself cost 5-8% of `analyze_connection` on
    the benchmark's short connections."""

    fin_end: list  # the seq that acknowledges the side's FIN (None: no FIN)
    fin_acked: list
    fin_acked_alone: list  # acknowledged by a pure ACK, not by the peer's FIN
    fin_acks_peer: list  # the side's FIN also acknowledged the peer's FIN
    data_segments: list
    pure_acks: list
    payload: list
    retrans: list  # Wireshark's tcp.analysis.retransmission (fast retransmissions included)
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
    fast_retrans: list
    out_of_order: list
    spurious: list
    keep_alives: list
    zero_window_probes: list
    resent: list  # data segments carrying a byte the capture had shown before


def _shown_again(holes: list, start: int, stop: int) -> bool:
    """True when the bytes [start, stop) (relative seq) include one outside every hole, i.e.
    one the capture has shown before; the range leaves the holes, as it has been shown now.
    `holes` is sorted and disjoint (each opens at the side's highest seq so far), so a bisect
    finds the first that may overlap: a capture with many holes costs no scan of them all."""
    first = i = bisect_right(holes, start, key=itemgetter(1))  # by each hole's end
    covered = 0
    kept = []
    while i < len(holes) and holes[i][0] < stop:
        lo, hi = holes[i]
        a, b = max(lo, start), min(hi, stop)
        covered += b - a
        if lo < a:
            kept.append((lo, a))
        if b < hi:
            kept.append((b, hi))
        i += 1
    holes[first:i] = kept
    return covered < stop - start


def walk(packets, caddr: str, cport: int, series: list, marks) -> tuple:
    """The per-packet state machine, deliberately one function on local variables (see the
    comment above the loop). Per packet: Wireshark's sequence analysis (the module's doc);
    then SYN or RST; the ACK field (the handshake's final ACK, a FIN acknowledged); FIN;
    data; a pure ACK."""
    base: list[int | None] = [None, None]  # each side's ISN (relative numbers count from it)
    nxt = [0, 0]  # Wireshark's nextseq (0: none yet)
    nxt_rel = [0, 0]  # the same relative to the side's base, unwrapped: may pass 2**32
    nxt_t = [0.0, 0.0]  # when nextseq last moved
    last_ack, last_ack_t, dup_acks = [0, 0], [0.0, 0.0], [0, 0]
    to_ack = [0, 0]  # Wireshark's maxseqtobeacked: the end of the data seen without a hole
    window = [-1, -1]  # the last window each side advertised (-1: none yet)
    last_kind = [0, 0]  # _KEEP_ALIVE or _ZERO_WINDOW_PROBE: the side's last segment
    first_rtt = mru_syn = 0.0  # Wireshark's ts_first_rtt and ts_mru_syn (0: not yet)
    fin_end: list[int | None] = [None, None]
    fin_acked = [False, False]
    fin_acked_alone = [False, False]
    fin_acks_peer = [False, False]
    data_segments, pure_acks, payload, retrans = [0, 0], [0, 0], [0, 0], [0, 0]
    fast, ooo, spurious, keep_alives, probes = [0, 0], [0, 0], [0, 0], [0, 0], [0, 0]
    resent = [0, 0]
    # Each side's holes, relative and unwrapped: below its first byte (relative 1) nothing has
    # been shown; a segment landing ahead of the next expected seq opens another.
    holes: list[list] = [[(-SEQ_MASK - 1, 1)], [(-SEQ_MASK - 1, 1)]]
    biggest, top, syn_mss = [0, 0], [0, 0], [0, 0]
    flights: list[list] = []
    synack_seq = None
    waiting_ack = False  # SYN-ACK seen, handshake's final ACK not yet
    handshake = teardown = wire = syns = synacks = syn_retrans = fins = rsts = 0
    t_syn = t_first_syn = t_established = t_first_fin = t_teardown_end = t_rst = None
    t_last_server_byte = t_first_client_byte = None
    fin_watch = False  # a FIN waits for its ACK
    first_fin_side = rst_side = None
    high_ack = 0  # highest client ACK, relative to the server's base, unwrapped
    high_ack_seq = None  # the same as a sequence number
    flight: list = []
    flight_first = 0
    burst = -1
    client_sent = True

    # One function, not a call per packet with a state object per direction (issue 9 allows
    # this one exception): this loop is the analysis' hot path. Measured on Python 3.11, one
    # function call per packet alone adds 0.05 s per million packets, 5% of this loop's
    # 1.1 s, before any of its ~30 local variables becomes a slower attribute.
    for p in packets:
        ts, src, _dst, sport, _dport, flags, seq, ack, plen, wire_len, win, _frame, opt_mss = p
        wire += wire_len
        d = 1 if sport != cport or src != caddr else 0
        o = 1 - d
        b = base[d]
        if b is None:
            b = base[d] = seq if flags & SYN else (seq - 1) & SEQ_MASK

        # Wireshark's sequence analysis (the module's doc), on every segment
        expected = nxt[d]
        kind = retransmitted = 0
        if ack != last_ack[d]:
            dup_acks[d] = 0
        if flags & ACK and to_ack[o] and 0 < (ack - to_ack[o]) & SEQ_MASK < _HALF:
            # it acknowledges data the capture never showed ("ACKed unseen segment")
            if to_ack[o] > nxt[o]:  # Wireshark compares these without serial arithmetic
                to_ack[o] = nxt[o]
            else:
                dup_acks[o] = -1  # an unsigned -1 there: counts as many duplicate ACKs
        # The commonest segment first, read as the general path below would read it: no SYN,
        # FIN or RST, at the next expected seq, not a zero-window probe.
        if not flags & _CONTROL and seq == expected and expected and (plen != 1 or window[o]):
            if plen:
                rel = nxt_rel[d]
                peer_ack = last_ack[o]
                if peer_ack and not 0 < (seq + plen - peer_ack) & SEQ_MASK < _HALF:
                    spurious[d] += 1  # all of it acknowledged already
                    retransmitted = _SPURIOUS
                after = (seq + plen) & SEQ_MASK
                nxt[d], nxt_rel[d], nxt_t[d] = after, rel + plen, ts
                if seq == to_ack[d] or not to_ack[d]:
                    to_ack[d] = after
            else:
                if (
                    win
                    and win == window[d]
                    and ack == last_ack[d]
                    and not last_kind[o] & _KEEP_ALIVE  # that is a keep-alive's ACK
                ):
                    dup_acks[d] = 1 if dup_acks[d] < 0 else dup_acks[d] + 1
                if not to_ack[d]:
                    to_ack[d] = expected
        else:
            if plen == 1 and seq == expected and window[o] == 0:
                kind = _ZERO_WINDOW_PROBE
                probes[d] += 1
            elif not flags & _CONTROL:
                if plen <= 1 and seq == (expected - 1) & SEQ_MASK:
                    kind = _KEEP_ALIVE
                    keep_alives[d] += 1
                elif (
                    not plen
                    and win
                    and win == window[d]
                    and seq == expected
                    and ack == last_ack[d]
                    and not last_kind[o] & _KEEP_ALIVE  # that is a keep-alive's ACK
                ):
                    dup_acks[d] = 1 if dup_acks[d] < 0 else dup_acks[d] + 1
            if (plen or flags & _SYN_FIN) and kind != _KEEP_ALIVE:
                behind = expected and (seq - expected) & SEQ_MASK >= _HALF
                if behind and plen > 1 and (expected - 1) & SEQ_MASK == seq:
                    behind = False  # new data after a zero-window probe's byte
                if plen and last_ack[o] and not 0 < (seq + plen - last_ack[o]) & SEQ_MASK < _HALF:
                    spurious[d] += 1  # all of it acknowledged already
                    retransmitted = _SPURIOUS
                elif not behind:
                    pass
                elif (
                    (dup_acks[o] >= 2 or dup_acks[o] < 0)
                    and last_ack[o] == seq
                    and 0 <= ts - last_ack_t[o] < _FAST_RETRANSMISSION_S
                ):
                    fast[d] += 1
                    retrans[d] += 1
                    retransmitted = _RETRANSMISSION
                elif (
                    0 <= ts - nxt_t[d] < (first_rtt or _OUT_OF_ORDER_S)
                    and expected != (seq + plen + (1 if flags & _SYN_FIN else 0)) & SEQ_MASK
                ):
                    ooo[d] += 1
                    retransmitted = _OUT_OF_ORDER
                else:
                    retrans[d] += 1
                    retransmitted = _RETRANSMISSION
            if plen:  # where this segment starts, relative to the side's base and unwrapped
                rel = (
                    nxt_rel[d] + ((seq - expected + _HALF) & SEQ_MASK) - _HALF
                    if expected
                    else (seq - b) & SEQ_MASK
                )
                if kind != _KEEP_ALIVE and expected:
                    if rel < nxt_rel[d]:
                        if _shown_again(holes[d], rel, min(rel + plen, nxt_rel[d])):
                            resent[d] += 1
                    elif rel > nxt_rel[d]:
                        holes[d].append((nxt_rel[d], rel))
            elif expected and flags & _SYN_FIN and 0 < (seq - expected) & SEQ_MASK < _HALF:
                holes[d].append((nxt_rel[d], nxt_rel[d] + ((seq - expected) & SEQ_MASK)))
            if kind != _ZERO_WINDOW_PROBE:
                after = (seq + plen + (1 if flags & _SYN_FIN else 0)) & SEQ_MASK
                if not expected:
                    nxt[d], nxt_rel[d], nxt_t[d] = after, (after - b) & SEQ_MASK, ts
                elif 0 < (after - expected) & SEQ_MASK < _HALF:
                    nxt_rel[d] += (after - expected) & SEQ_MASK
                    nxt[d], nxt_t[d] = after, ts
                if seq == to_ack[d] or not to_ack[d]:
                    to_ack[d] = nxt[d]
        window[d], last_ack[d], last_ack_t[d], last_kind[d] = win, ack, ts, kind
        if flags & (SYN | ACK) == ACK and mru_syn and not first_rtt:
            first_rtt = ts - mru_syn

        if flags & (SYN | RST):
            if flags & RST:  # every flag counted, though the packet is a reset
                rsts += 1
                if marks is not None:
                    marks[id(p)] = OTHER
                if rst_side is None:
                    rst_side, t_rst = d, ts
            if flags & SYN:
                if not flags & RST:
                    handshake += 1
                    if marks is not None:
                        marks[id(p)] = HANDSHAKE
                if opt_mss:
                    syn_mss[d] = opt_mss
                if flags & ACK:
                    synacks += 1
                    if synack_seq is None:
                        synack_seq = seq
                        waiting_ack = True
                else:
                    syns += 1
                    mru_syn = ts
                    if t_first_syn is None:
                        t_first_syn = ts
                    if synack_seq is None:
                        t_syn = ts
                    if retransmitted == _RETRANSMISSION:
                        syn_retrans += 1
            if flags & FIN:
                fins += 1
            if plen:  # data on a SYN: TCP Fast Open
                data_segments[d] += 1
                payload[d] += plen
            continue

        acks_fin = False
        if flags & ACK:
            if d == 0:
                if high_ack_seq is None:
                    high_ack_seq = base[1]
                if high_ack_seq is not None and 0 < (ack - high_ack_seq) & SEQ_MASK < _HALF:
                    high_ack += (ack - high_ack_seq) & SEQ_MASK
                    high_ack_seq = ack
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
                end_o = fin_end[o]
                if end_o is not None and not fin_acked[o] and (ack - end_o) & SEQ_MASK < _HALF:
                    fin_acked[o] = acks_fin = True
                    if fin_acked[d]:
                        fin_watch = False
                        t_teardown_end = ts

        if flags & FIN:
            teardown += 1
            fins += 1
            if marks is not None:
                marks[id(p)] = TEARDOWN
            if fin_end[d] is None:
                fin_end[d] = (seq + plen + 1) & SEQ_MASK
                if first_fin_side is None:
                    first_fin_side, t_first_fin = d, ts
                elif fin_acked[o]:
                    fin_acks_peer[d] = True
                fin_watch = True
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
            if top[d] < plen:
                top[d] = plen
                if plen <= ETHERNET_MSS:
                    biggest[d] = plen
            if d:
                t_last_server_byte = ts
                series.append((ts, rel, plen))
                if not retransmitted and kind != _KEEP_ALIVE:
                    end = rel + plen
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
            fin_acked_alone[o] = True
            if marks is not None:
                marks[id(p)] = TEARDOWN
        else:
            pure_acks[d] += 1

    return ((
        fin_end, fin_acked, fin_acked_alone, fin_acks_peer, data_segments, pure_acks, payload,
        retrans, biggest, top, syn_mss, flights, handshake, teardown, wire, syns, synacks,
        syn_retrans, fins, rsts, t_syn, t_first_syn, t_established, t_first_fin, t_teardown_end,
        t_rst, t_last_server_byte, t_first_client_byte, first_fin_side, rst_side,
        fast, ooo, spurious, keep_alives, probes, resent,
    ))  # fmt: skip
