"""The atheris harnesses in fuzz/ stay correct without atheris: each `TestOneInput` runs over its
seed corpus (fuzz/corpus/<name>/), the regressions fuzzing found, and a fixed set of seeded
mutations of those seeds. atheris itself is not a test dependency; this only keeps the harness
code honest so a long fuzzing run can be started at any time.
"""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
HARNESSES = ("framing", "http", "scenario")
MUTATIONS = 150  # per harness: a few seconds in all
SPLICES = [b"\r\n", b"\n", b": ", b"%", b"\xff\xff\xff\xff", b"&a ", b"[", b"*a"]


def _harness(name: str) -> ModuleType:
    path = ROOT / "fuzz" / f"{name}_fuzz.py"
    spec = importlib.util.spec_from_file_location(f"{name}_fuzz", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _seeds(name: str) -> list[bytes]:
    files = sorted((ROOT / "fuzz" / "corpus" / name).iterdir())
    return [f.read_bytes() for f in files if f.is_file()]


def _mutate(rng: random.Random, data: bytes) -> bytes:
    """A few libFuzzer-style edits: flip, insert, delete, duplicate a slice, splice bytes."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        at = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[min(at, len(buf) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 2:
            del buf[at : at + rng.randint(1, 16)]
        elif op == 3:
            buf[at:at] = buf[at : at + rng.randint(1, 64)]
        else:
            buf[at:at] = rng.choice(
                [b"\r\n", b"\n", b": ", b"%", b"\xff\xff\xff\xff", b"&a ", b"["]
            )
    return bytes(buf)


def test_loading_a_harness_does_not_need_atheris() -> None:
    sys.modules.pop("atheris", None)
    for name in HARNESSES:
        assert callable(_harness(name).TestOneInput)
    assert "atheris" not in sys.modules  # imported in main() only


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", [pytest.param(n, id=n) for n in HARNESSES])
def test_harness_runs_its_corpus_and_mutations(name: str) -> None:
    harness = _harness(name)
    seeds = _seeds(name)
    assert len(seeds) >= 5, f"fuzz/corpus/{name} needs seeds"
    rng = random.Random(f"tcplab-{name}")  # fixed: the same inputs on every run
    inputs = [b"", b"\x00", b"\xff" * 3, *seeds]
    inputs += [_mutate(rng, rng.choice(seeds)) for _ in range(MUTATIONS)]
    for data in inputs:
        harness.TestOneInput(data)  # an AssertionError or any unexpected exception fails


@pytest.mark.parametrize(
    ("name", "data"),
    [
        pytest.param(
            "http", b"\x05GET /a?size=%C2%B2 HTTP/1.1\r\nHost: a\r\n\r\n", id="http-superscript"
        ),
        pytest.param("http", b"\x04GET //[x HTTP/1.1\r\nHost: a\r\n\r\n", id="http-ipv6-authority"),
        pytest.param(
            "http", b"\x00GET /a?size=" + b"9" * 5000 + b" HTTP/1.1\r\n\r\n", id="http-5000-digits"
        ),
        pytest.param("scenario", bytes([22]) + b"9" * 400 + b"k", id="scenario-inf-bytes"),
        pytest.param("scenario", bytes([14]) + b"9" * 400 + b"mbit", id="scenario-inf-rate"),
    ],
)
def test_harness_regressions(name: str, data: bytes) -> None:
    """Inputs that escaped as ValueError/OverflowError before the fixes in wire.http and
    lab.scenario; the harness now sees them refused the documented way."""
    _harness(name).TestOneInput(data)


def test_a_harness_reports_a_broken_property(monkeypatch) -> None:
    """The harness is not vacuous: a decoder that loses a byte is caught."""
    harness = _harness("framing")
    seed = (ROOT / "fuzz" / "corpus" / "framing" / "round-trip").read_bytes()
    real = harness.LengthDecoder.feed

    def lossy(self, data: bytes) -> list[bytes]:
        return [m[:-1] for m in real(self, data)]

    monkeypatch.setattr(harness.framing, "decoder", lambda _, limit: _Lossy(limit, lossy))
    with pytest.raises(AssertionError):
        harness.TestOneInput(seed)


class _Lossy:
    def __init__(self, max_message: int, feed) -> None:
        from wire.framing import LengthDecoder

        self._inner = LengthDecoder(max_message)
        self._feed = feed

    def feed(self, data: bytes) -> list[bytes]:
        return self._feed(self._inner, data)

    def eof(self) -> None:
        self._inner.eof()
