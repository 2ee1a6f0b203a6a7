"""`lab analyze --json` writes the same text as encoding the whole object at once."""

from __future__ import annotations

import importlib
import io
import json
import os
import sys
from pathlib import Path

import pytest

from lab.analysis import analyze
from lab.capture import parse_capture, read_capture
from lab.commands import analyze as command
from tests.unit.packets import pcap_bytes, sample_http10, sample_port_reuse


@pytest.mark.parametrize("per_write", [1, 2, 2000])
@pytest.mark.parametrize("name", ["x.pcap", 'odd "streams":[] name.pcap'])
def test_streamed_json_equals_the_whole_object_encoded(per_write, name, monkeypatch):
    capture = parse_capture(pcap_bytes(sample_http10() + sample_port_reuse()), name)
    analysis = analyze(capture)
    assert len(analysis.connections) > 2
    monkeypatch.setattr(command, "STREAMS_PER_WRITE", per_write)
    out = io.StringIO()
    command.write_json(capture, analysis, out)
    expected = json.dumps(command.to_json(capture, analysis), separators=(",", ":"))
    assert out.getvalue() == expected
    assert json.loads(out.getvalue())["file"] == name


@pytest.mark.parametrize("child_fails", [False, True])
def test_json_made_by_two_processes_is_the_same_text(child_fails, monkeypatch):
    capture = parse_capture(pcap_bytes(sample_http10() + sample_port_reuse()), "x.pcap")
    expected = json.dumps(command.to_json(capture, analyze(capture)), separators=(",", ":"))
    monkeypatch.setattr(command, "PARALLEL_FROM", 2)
    monkeypatch.setattr(command, "STREAMS_PER_WRITE", 2)
    parent, encode = os.getpid(), command.connection_json
    here = []  # the streams this process encoded (the child's appends stay in its memory)

    def connection_json(c):
        if os.getpid() != parent:  # the forked child does the second half
            if child_fails:
                raise RuntimeError("the child breaks")
        else:
            here.append(c.stream)
        return encode(c)

    monkeypatch.setattr(command, "connection_json", connection_json)
    forks = []
    real_fork = os.fork
    monkeypatch.setattr(os, "fork", lambda: forks.append(1) or real_fork())
    out = io.StringIO()
    command.write_capture_json(capture, out, workers=2)
    assert out.getvalue() == expected
    streams = list(range(json.loads(expected)["connections"]))
    assert forks == [1]
    # the first half here, the second by the child, or here too when the child failed
    assert sorted(here) == (streams if child_fails else streams[: len(streams) // 2])


def test_one_worker_or_few_streams_fork_nothing(monkeypatch):
    capture = parse_capture(pcap_bytes(sample_http10() + sample_port_reuse()), "x.pcap")
    monkeypatch.setattr(os, "fork", lambda: pytest.fail("forked"))
    for workers in (1, 2):  # 2 workers, but fewer streams than PARALLEL_FROM
        out = io.StringIO()
        command.write_capture_json(capture, out, workers=workers)
        assert out.getvalue() == json.dumps(
            command.to_json(capture, analyze(capture)), separators=(",", ":")
        )


def test_streamed_json_of_a_capture_without_connections():
    capture = parse_capture(pcap_bytes([]), "empty.pcap")
    out = io.StringIO()
    command.write_json(capture, analyze(capture), out)
    assert json.loads(out.getvalue())["streams"] == []
    assert out.getvalue() == json.dumps(
        command.to_json(capture, analyze(capture)), separators=(",", ":")
    )


def test_table_columns_line_up():
    capture = parse_capture(pcap_bytes(sample_http10() + sample_port_reuse()), "x.pcap")
    out = io.StringIO()
    command.print_table(capture, analyze(capture), out=out)
    lines = out.getvalue().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("stream"))
    rule, rows = lines[header + 1], lines[header + 2 : header + 2 + 5]
    # every column ends (numbers, right-aligned) or starts (text) where its rule does
    ends = [i + 1 for i, ch in enumerate(rule) if ch == "─" and rule[i + 1 : i + 2] != "─"]
    for row in rows:
        assert row[ends[2] - 1] != " " and row[ends[2] : ends[2] + 2] == "  "  # pkts
    assert lines[header].index("pkts") + 4 == ends[2]
    assert "c/s: sent by the client" in out.getvalue()


CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"


@pytest.mark.parametrize(
    "path", sorted(CORPUS.glob("*.pcap*")) + sorted((CORPUS.parent).glob("*.pcap*")),
    ids=lambda p: p.name,
)  # fmt: skip
def test_connection_json_is_json_dumps_of_to_dict(path):
    encode = json.JSONEncoder(separators=(",", ":")).encode
    for c in analyze(read_capture(path)).connections:
        assert command.connection_json(c) == encode(c.to_dict())


def test_streamed_json_of_the_benchmark_capture_equals_json_dumps(tmp_path, monkeypatch):
    # The benchmark's synthetic capture (short connections, lost segments, resets, reused
    # ports): the hand-written encoder must keep writing json.dumps' bytes on it too.
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "benchmarks"))
    analyze_bench = importlib.import_module("analyze_bench")
    path = tmp_path / "synthetic.pcap"
    analyze_bench.synthesize(str(path), 30_000)
    capture = read_capture(path)
    analysis = analyze(capture)
    assert len(analysis.connections) > 2500
    expected = json.dumps(command.to_json(capture, analysis), separators=(",", ":"))
    out = io.StringIO()
    command.write_json(capture, analysis, out)
    assert out.getvalue() == expected
    monkeypatch.setattr(command, "PARALLEL_FROM", 1000)
    out = io.StringIO()
    command.write_capture_json(capture, out, workers=2)  # two processes, halves and totals
    assert out.getvalue() == expected
    sys.modules.pop("analyze_bench", None)
