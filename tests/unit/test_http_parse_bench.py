"""The h11 benchmark measures what it says: both parsers answer every request of every cell,
and its conformance table's hand-written column is what the server does (h11 on the host only;
skipped without it)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("h11")

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "http_parse_bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("http_parse_bench", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_cell_answers_every_request_both_ways(bench) -> None:
    rows = bench.bench(n=300, repeat=1)  # _time asserts both answered all 300
    assert [(kind, how) for kind, how, _, _ in rows] == [
        (kind, how)
        for kind in bench.REQUESTS
        for how in ("pipelined", "keep-alive", "new connection")
    ]
    assert all(hand > 0 and h11_time > 0 for _, _, hand, h11_time in rows)


def test_the_hand_written_column_is_the_rfc_column(bench) -> None:
    answers = {name: (rfc, bench.hand_answer(data)) for name, data, rfc in bench.CASES}
    for name, (rfc, hand) in answers.items():
        if rfc[:3].isdigit() and rfc[:3] != "200":
            assert hand == rfc[:3], name
    assert answers["HEAD"][1] == "HEAD ok"
    assert answers["HTTP/1.2"][1] == "GET ok as 1.1"
    assert bench.h11_answer(bench.CASES[3][1]).startswith("400")  # h11 checks a missing Host
