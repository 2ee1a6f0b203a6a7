"""The one reset TCP sends after a complete teardown when an ACK and a FIN cross (pure).

Seen in tests/integration/test_load.py, in HTTP/1.0 at 200 at a time (the client resets) and
in keep-alive (the server resets): the keep-alive reset of issue 11 point 8. The side that
closes second gets the first FIN while its program is busy: the FIN makes its kernel wait to
ACK (delayed ACK, in case the program answers at once). When the program closes just as that
delayed-ACK timer fires, the timer's pure ACK and the program's FIN are made on two CPUs at
once and can reach the other end in the other order (the veth pairs and the bridge hand packets
on through per-CPU backlogs): the ACK, made first, carries the FIN's own sequence number.

    first closer                         second closer
    FIN  ------------------------------>               (ACK delayed: the program is slow)
                        <-- FIN (seq S, ack F+1)        the program closes ...
                        <-- ACK (seq S, ack F+1)        ... as the timer fires: they cross
    ACK of the FIN ------------------->                 second closer: socket gone
    (TIME_WAIT) the late ACK is below its window: ACK it again
    ACK (seq F+1, ack S+1) ----------->
                        <-- RST (seq S+1)               no socket owns it: reset

Nothing is lost: both FINs were sent and acknowledged before the reset, and the reset is the
kernel answering a segment for a connection that is already gone (RFC 9293 3.10.7.1).
"""

from __future__ import annotations

from collections.abc import Sequence

from lab.frames import Packet
from lab.tcp import ACK, FIN, PSH, RST, SYN

_MOD = 2**32


def crossed_ack_reset(packets: Sequence[Packet]) -> str | None:
    """None when the stream's reset is exactly the case above; else why it is not.

    `packets`: one stream's packets in capture order (either end's capture: the crossed ACK
    is seen leaving the second closer or arriving from it)."""
    resets = [p for p in packets if p.flags & RST]
    if len(resets) != 1 or packets[-1] is not resets[0]:
        return "not one reset as the stream's last packet"
    rst, before = packets[-1], packets[-2] if len(packets) > 1 else None
    fins: dict[tuple[str, int], Packet] = {}
    for p in packets:
        if p.flags & FIN:
            fins.setdefault((p.src, p.sport), p)
    if len(fins) != 2:
        return "not a FIN from each side"
    first, second = sorted(fins, key=lambda side: fins[side].frame)
    if (rst.src, rst.sport) != second:
        return "the reset does not come from the side that closed second"
    first_fin, second_fin = fins[first], fins[second]
    if second_fin.ack != (first_fin.seq + 1) % _MOD:
        return "the second FIN does not acknowledge the first"
    crossed = [
        p
        for p in packets
        if (p.src, p.sport) == second
        and p.flags & (SYN | FIN | RST | PSH | ACK) == ACK
        and not p.payload_len
        and p.seq == second_fin.seq
        and p.ack == second_fin.ack
    ]
    if not crossed:
        return "no pure ACK that the second FIN crossed (same seq and ack)"
    repeated = (first_fin.seq + 1) % _MOD, (second_fin.seq + 1) % _MOD
    if (
        before is None
        or (before.src, before.sport) != first
        or before.flags & (SYN | FIN | RST | PSH | ACK) != ACK
        or before.payload_len
        or (before.seq, before.ack) != repeated
    ):
        return "the reset does not follow the first closer's final ACK, repeated"
    if sum(1 for p in packets if (p.src, p.sport) == first and (p.seq, p.ack) == repeated) < 2:
        return "the first closer's final ACK was not repeated"
    if rst.seq != before.ack:
        return "the reset's sequence number is not the repeated ACK's"
    return None
