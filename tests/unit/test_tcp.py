"""lab.tcp: flag spelling and sequence arithmetic at the 2**32 wrap."""

from __future__ import annotations

from lab.tcp import (
    ACK,
    FIN,
    PSH,
    RST,
    SYN,
    base_seq,
    flag_names,
    is_syn,
    seq_add,
    seq_after,
    seq_diff,
)


def test_flag_names_in_wiresharks_order():
    assert flag_names(SYN | ACK) == "SYN, ACK"
    assert flag_names(ACK | PSH | FIN) == "FIN, PSH, ACK"
    assert flag_names(RST) == "RST"
    assert flag_names(0) == "none"


def test_is_syn_is_the_opening_syn_only():
    assert is_syn(SYN) and not is_syn(SYN | ACK) and not is_syn(ACK)


def test_sequence_arithmetic_wraps():
    assert seq_add(2**32 - 1, 2) == 1
    assert seq_diff(5, 2**32 - 5) == 10
    assert seq_after(5, 2**32 - 5) and not seq_after(2**32 - 5, 5)
    assert not seq_after(7, 7)
    assert base_seq(SYN, 100) == 100 and base_seq(ACK, 0) == 2**32 - 1
