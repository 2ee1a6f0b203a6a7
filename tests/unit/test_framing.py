"""Framing: bytes split anywhere, limits enforced at the header, truncation detected."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wire import framing
from wire.framing import LengthDecoder, MessageTooLarge, TruncatedMessage

MESSAGES = [b"Luffy", b"Zoro", b"", b"Sanji"]
STREAM = b"".join(framing.encode_length(m) for m in MESSAGES)


@pytest.mark.parametrize(
    "cut", [pytest.param(i, id=f"split-at-{i}") for i in range(len(STREAM) + 1)]
)
def test_split_anywhere_yields_the_same_messages(cut: int) -> None:
    decoder = LengthDecoder()
    got = decoder.feed(STREAM[:cut]) + decoder.feed(STREAM[cut:])
    assert got == MESSAGES
    assert decoder.pending == 0
    decoder.eof()  # at a boundary: no error


def test_byte_at_a_time() -> None:
    decoder = LengthDecoder()
    got = [m for i in range(len(STREAM)) for m in decoder.feed(STREAM[i : i + 1])]
    assert got == MESSAGES


@settings(max_examples=200, deadline=None)
@given(
    messages=st.lists(st.binary(max_size=300), max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=10),
)
def test_round_trip_with_random_splits(messages: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(framing.encode("length", m) for m in messages)
    bounds = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    decoder = framing.decoder("length")
    got = []
    for start, end in itertools.pairwise(bounds):
        got += decoder.feed(stream[start:end])
    assert got == messages
    decoder.eof()


def test_oversize_is_refused_at_the_header_before_buffering() -> None:
    decoder = LengthDecoder(max_message=10)
    with pytest.raises(MessageTooLarge) as info:
        decoder.feed(b"\x00\x00\x00\x0b")  # only the header: 11 > 10
    assert info.value.length == 11
    assert info.value.limit == 10


def test_garbage_prefix_is_a_protocol_error() -> None:
    with pytest.raises(MessageTooLarge):
        LengthDecoder().feed(b"\xff\xff\xff\xffGET / HTTP/1.1")


def test_exactly_the_limit_is_accepted() -> None:
    decoder = LengthDecoder(max_message=10)
    assert decoder.feed(framing.encode_length(b"x" * 10, 10)) == [b"x" * 10]


def test_encoder_refuses_oversize() -> None:
    with pytest.raises(MessageTooLarge):
        framing.encode_length(b"x" * 11, max_message=10)


@pytest.mark.parametrize(
    "stream",
    [
        pytest.param(b"\x00\x00", id="mid-header"),
        pytest.param(b"\x00\x00\x00\x05Luf", id="mid-payload"),
        pytest.param(framing.encode_length(b"Luffy") + b"\x00", id="after-a-whole-message"),
    ],
)
def test_truncated_at_eof_is_detected(stream: bytes) -> None:
    decoder = LengthDecoder()
    decoder.feed(stream)
    assert decoder.pending > 0
    with pytest.raises(TruncatedMessage):
        decoder.eof()


def test_raw_passes_chunks_through_without_boundaries() -> None:
    decoder = framing.decoder("raw")
    assert decoder.feed(b"LuffyZoroSanji") == [b"LuffyZoroSanji"]
    assert decoder.feed(b"") == []
    assert framing.encode("raw", b"Luffy") == b"Luffy"
    decoder.eof()


def test_unknown_framing_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown framing"):
        framing.decoder("lines")


# --- Raw framing: per read (persistent) or until the peer's FIN (non-persistent) -------------


def test_raw_per_read_passes_each_read_through_and_refuses_one_over_the_limit() -> None:
    decoder = framing.decoder("raw", max_message=5)
    assert decoder.feed(b"Luf") == [b"Luf"]
    assert decoder.feed(b"fy") == [b"fy"]
    assert decoder.pending == 0
    with pytest.raises(MessageTooLarge) as info:
        decoder.feed(b"LuffyZ")
    assert (info.value.length, info.value.limit) == (6, 5)
    assert decoder.eof() == []


def test_raw_until_fin_is_one_message_however_it_was_split() -> None:
    decoder = framing.decoder("raw", max_message=5, until_fin=True)
    assert decoder.feed(b"Luf") == []
    assert decoder.pending == 3
    assert decoder.feed(b"fy") == []
    assert decoder.eof() == [b"Luffy"]
    assert decoder.pending == 0
    assert framing.decoder("raw", until_fin=True).eof() == []  # FIN without bytes: no message


def test_raw_until_fin_refuses_as_soon_as_the_limit_is_passed() -> None:
    decoder = framing.decoder("raw", max_message=5, until_fin=True)
    decoder.feed(b"Luff")
    with pytest.raises(framing.RawMessageTooLarge) as info:
        decoder.feed(b"yZ")
    assert str(info.value) == "raw message of at least 6 bytes exceeds the limit of 5 bytes"
    assert isinstance(info.value, MessageTooLarge)  # callers catching the old error still do


def test_length_eof_at_a_boundary_returns_no_messages() -> None:
    decoder = LengthDecoder()
    decoder.feed(framing.encode_length(b"Luffy"))
    assert decoder.eof() == []


@settings(max_examples=300, deadline=None)
@given(
    messages=st.lists(st.binary(max_size=40), max_size=5),
    cut=st.integers(min_value=0, max_value=300),
    pending=st.booleans(),
)
def test_whole_counts_exactly_whole_messages_and_echoes_them_unchanged(
    messages: list[bytes], cut: int, pending: bool
) -> None:
    """`whole(data)` is the number of messages `feed` would return with nothing left over,
    and then their re-framed echo is `data` itself; otherwise 0 and the decoder is untouched."""
    stream = b"".join(framing.encode_length(m) for m in messages)
    data = stream[: min(cut, len(stream))]
    decoder = LengthDecoder(max_message=30)
    if pending:
        decoder.feed(b"\0\0")  # half a header waits
    count = decoder.whole(data)
    try:
        fed = LengthDecoder(max_message=30).feed(data)
        leftover = LengthDecoder(max_message=30)
        leftover.feed(data)
        exact = leftover.pending == 0
    except MessageTooLarge:
        fed, exact = [], False
    if count:
        assert not pending and exact and len(fed) == count
        assert b"".join(framing.encode_length(m) for m in fed) == data
    else:
        assert pending or not data or not exact
    assert decoder.pending == (2 if pending else 0)  # nothing taken either way


def test_whole_leaves_an_oversize_header_to_feed() -> None:
    decoder = LengthDecoder(max_message=4)
    data = framing.encode_length(b"12345", max_message=5)
    assert decoder.whole(data) == 0
    with pytest.raises(MessageTooLarge):
        decoder.feed(data)
