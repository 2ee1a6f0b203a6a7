"""Fuzzing the echo framing decoder (issue 6, hostile input): whatever bytes arrive, split however
TCP likes, the decoder yields messages or raises `FramingError` and nothing else, never holds more
than one message plus its header, and gives back exactly what was encoded.

Bounded: 120 examples per property, no deadline (the machine is shared)."""

from __future__ import annotations

import itertools
import struct
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wire import framing
from wire.framing import HEADER_SIZE, FramingError, LengthDecoder, TruncatedMessage

FUZZ = settings(max_examples=120, deadline=None)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    """`data` cut at the given offsets (taken modulo its length, in order)."""
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


max_messages = st.integers(min_value=0, max_value=2048)
cut_lists = st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=40)


@FUZZ
@given(data=st.binary(max_size=8192), cuts=cut_lists, max_message=max_messages)
def test_any_bytes_give_messages_or_a_framing_error(
    data: bytes, cuts: list[int], max_message: int
) -> None:
    dec = LengthDecoder(max_message)
    got: list[bytes] = []
    try:
        for chunk in _split(data, cuts):
            got += dec.feed(chunk)
            # One partial message and its header at most: a hostile stream cannot grow the buffer.
            assert dec.pending < HEADER_SIZE + max_message
        dec.eof()
    except FramingError:
        return  # the documented way to refuse; anything else escapes and fails the test
    assert all(len(m) <= max_message for m in got)
    # A stream that decoded cleanly is exactly those messages, re-encoded.
    assert b"".join(framing.encode("length", m, max_message) for m in got) == data


@FUZZ
@given(
    messages=st.lists(st.binary(max_size=600), max_size=12),
    cuts=cut_lists,
    slack=st.integers(min_value=0, max_value=100),
)
def test_encode_then_decode_split_anywhere_round_trips(
    messages: list[bytes], cuts: list[int], slack: int
) -> None:
    max_message = max((len(m) for m in messages), default=0) + slack
    stream = b"".join(framing.encode("length", m, max_message) for m in messages)
    dec = framing.decoder("length", max_message)
    got: list[bytes] = []
    for chunk in _split(stream, cuts):
        got += dec.feed(chunk)
    dec.eof()
    assert got == messages
    assert dec.pending == 0


@FUZZ
@given(messages=st.lists(st.binary(max_size=300), min_size=1, max_size=8), data=st.data())
def test_a_stream_cut_short_is_a_truncated_message(messages: list[bytes], data) -> None:
    stream = b"".join(framing.encode("length", m) for m in messages)
    boundaries = set()
    at = 0
    for m in messages:
        at += HEADER_SIZE + len(m)
        boundaries.add(at)
    inside = [c for c in range(1, len(stream)) if c not in boundaries]
    cut = data.draw(st.sampled_from(inside))
    dec = LengthDecoder()
    got = dec.feed(stream[:cut])
    assert got == messages[: len(got)]
    with pytest.raises(TruncatedMessage):
        dec.eof()


@FUZZ
@given(chunks=st.lists(st.binary(max_size=200), max_size=20))
def test_raw_passes_every_byte_through_once(chunks: list[bytes]) -> None:
    dec = framing.decoder("raw")
    got = [m for c in chunks for m in dec.feed(c)]
    assert b"".join(got) == b"".join(chunks)
    assert all(got)  # no empty "messages"
    dec.eof()


@FUZZ
@given(length=st.integers(min_value=0, max_value=0xFFFFFFFF), max_message=max_messages)
def test_every_header_is_accepted_or_refused_before_its_payload(
    length: int, max_message: int
) -> None:
    dec = LengthDecoder(max_message)
    if length > max_message:
        with pytest.raises(framing.MessageTooLarge) as info:
            dec.feed(struct.pack(">I", length))
        assert (info.value.length, info.value.limit) == (length, max_message)
    else:
        assert dec.feed(struct.pack(">I", length)) == ([b""] if length == 0 else [])


@pytest.mark.parametrize(
    "chunk_size",
    [pytest.param(1, id="byte-at-a-time"), pytest.param(65536, id="64KiB-reads")],
)
def test_memory_stays_bounded_over_a_long_stream(chunk_size: int) -> None:
    """2 MiB of messages just under the limit: the peak is about one message, not the stream."""
    max_message = 16 * 1024
    message = bytes(range(256)) * (max_message // 256 - 1)
    stream = framing.encode("length", message, max_message) * (2 * 1024 * 1024 // max_message)
    if chunk_size == 1:
        stream = stream[: 3 * (HEADER_SIZE + len(message))]  # byte by byte is slow in Python
    dec = LengthDecoder(max_message)
    count = 0
    tracemalloc.start()
    try:
        for i in range(0, len(stream), chunk_size):
            count += len(dec.feed(stream[i : i + chunk_size]))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == len(stream) // (HEADER_SIZE + len(message))
    # one chunk + the partial message + the messages completed by one chunk, with slack
    assert peak < 4 * (chunk_size + max_message) + 64 * 1024, peak


def test_a_four_gib_header_costs_nothing() -> None:
    dec = LengthDecoder()
    tracemalloc.start()
    try:
        with pytest.raises(framing.MessageTooLarge):
            dec.feed(b"\xff\xff\xff\xff" + b"x" * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024, peak


@FUZZ
@given(payload=st.binary(max_size=3000), max_message=max_messages)
def test_encode_refuses_only_oversize(payload: bytes, max_message: int) -> None:
    # Both framings: the same limit, never a silent truncation.
    if len(payload) > max_message:
        for name in framing.FRAMINGS:
            with pytest.raises(framing.MessageTooLarge):
                framing.encode(name, payload, max_message)
    else:
        assert framing.encode("length", payload, max_message)[HEADER_SIZE:] == payload
        assert framing.encode("raw", payload, max_message) == payload
