"""atheris harness for the echo framing decoder (`wire.framing`).

    python fuzz/framing_fuzz.py -atheris_runs=200000      # or -max_total_time=60
    mkdir -p /tmp/fz && python fuzz/framing_fuzz.py /tmp/fz fuzz/corpus/framing -max_total_time=60
    # (libFuzzer adds new inputs to the first folder: keep it out of the seeds)

The first bytes of an input choose the limit and how the rest is split into reads; then the rest
is either decoded as a hostile stream or cut into messages that must round-trip. A property
violation is an AssertionError; any exception other than `FramingError` is a finding.
`TestOneInput` needs no atheris: tests/unit/test_fuzz_harnesses.py runs it over a fixed corpus.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wire import framing
from wire.framing import HEADER_SIZE, FramingError, LengthDecoder, TruncatedMessage


def _chunks(data: bytes, seed: int) -> list[bytes]:
    """`data` cut into reads of varying sizes (1 to 97 bytes) chosen by `seed`."""
    out, at, i = [], 0, 0
    while at < len(data):
        size = 1 + (seed * (i + 7) + i * i) % 97
        out.append(data[at : at + size])
        at += size
        i += 1
    return out


def _hostile_stream(body: bytes, max_message: int, seed: int) -> None:
    dec = LengthDecoder(max_message)
    got: list[bytes] = []
    try:
        for chunk in _chunks(body, seed):
            got += dec.feed(chunk)
            assert dec.pending < HEADER_SIZE + max_message, (dec.pending, max_message)
        dec.eof()
    except FramingError:
        return
    assert all(len(m) <= max_message for m in got)
    assert b"".join(framing.encode("length", m, max_message) for m in got) == body


def _round_trip(body: bytes, seed: int) -> None:
    messages = body.split(b"\n")  # the input chooses where messages end
    max_message = max(len(m) for m in messages)
    stream = b"".join(framing.encode("length", m, max_message) for m in messages)
    dec = framing.decoder("length", max_message)
    got: list[bytes] = []
    for chunk in _chunks(stream, seed):
        got += dec.feed(chunk)
    dec.eof()
    assert got == messages
    if len(stream) > 1 and seed % 2:  # cut it short: a truncation, never a silent loss
        cut = seed % (len(stream) - 1) + 1
        dec = LengthDecoder(max_message)
        partial = dec.feed(stream[:cut])
        assert partial == messages[: len(partial)]
        if dec.pending:
            try:
                dec.eof()
            except TruncatedMessage:
                pass
            else:
                raise AssertionError("eof mid-message did not raise TruncatedMessage")


def _raw(body: bytes, seed: int) -> None:
    dec = framing.decoder("raw")
    got = [m for chunk in _chunks(body, seed) for m in dec.feed(chunk)]
    assert b"".join(got) == body
    assert all(got)


def TestOneInput(data: bytes) -> None:
    if len(data) < 3:
        return
    max_message, seed, kind, body = data[0] * 16, data[1], data[2] % 3, data[3:]
    if kind == 0:
        _hostile_stream(body, max_message, seed)
    elif kind == 1:
        _round_trip(body, seed)
    else:
        _raw(body, seed)


def main() -> None:
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
