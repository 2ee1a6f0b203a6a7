"""TCP's constants and sequence-number arithmetic: the one home for them (standard library only).

Flag bits are named as RFC 9293 names the control bits (dpkt calls them TH_FIN, TH_SYN, ...;
the values are the same). `flag_names` spells a segment's flags the way Wireshark's Info column
does: "SYN, ACK", "FIN, PSH, ACK".

Sequence numbers live modulo 2**32, so the lab keeps them relative to each side's base (its
ISN, as Wireshark's "relative sequence numbers" do) and compares the relative values.
"""

from __future__ import annotations

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
NS = 0x100  # the ECN nonce bit: lab.capture moves it from the data-offset byte to bit 8

SEQ_MOD = 2**32
SEQ_MASK = SEQ_MOD - 1
SEQ_HALF = SEQ_MOD // 2  # a relative value at or above this is "behind", not far ahead

INITIAL_WINDOW = 10  # Linux's initial congestion window, in segments (RFC 6928)
DEFAULT_MSS = 1448  # Ethernet's 1460-byte MSS less 12 bytes of TCP timestamp option
ETHERNET_MSS = 1460  # the largest segment an Ethernet MTU carries without options

# Wireshark's order in the Info column
_NAMED = ((SYN, "SYN"), (FIN, "FIN"), (RST, "RST"), (PSH, "PSH"), (URG, "URG"), (ACK, "ACK"))
_NAMED += ((ECE, "ECE"), (CWR, "CWR"), (NS, "NS"))


def flag_names(flags: int) -> str:
    """'SYN, ACK', 'FIN, PSH, ACK', ...; 'none' for a segment without flags."""
    return ", ".join(name for bit, name in _NAMED if flags & bit) or "none"


def is_syn(flags: int) -> bool:
    """A connection's opening SYN (not the SYN-ACK)."""
    return flags & (SYN | ACK) == SYN


def base_seq(flags: int, seq: int) -> int:
    """The base a side's relative sequence numbers count from, given its first segment: the
    ISN of a SYN, else one less than the first seq seen (Wireshark's rule without a SYN)."""
    return seq if flags & SYN else (seq - 1) & SEQ_MASK


def seq_diff(seq: int, base: int) -> int:
    """`seq` relative to `base`, modulo 2**32 (0 <= result < 2**32)."""
    return (seq - base) & SEQ_MASK


def seq_add(seq: int, n: int) -> int:
    """`seq` advanced by `n` bytes (or sequence numbers), wrapping at 2**32."""
    return (seq + n) & SEQ_MASK


def seq_after(a: int, b: int) -> bool:
    """True if `a` comes after `b` in sequence space (RFC 9293's SEQ_GT, serial arithmetic)."""
    return 0 < (a - b) & SEQ_MASK < SEQ_HALF
