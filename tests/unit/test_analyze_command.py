"""`lab analyze --json` writes the same text as encoding the whole object at once."""

from __future__ import annotations

import io
import json

import pytest

from lab.analysis import analyze
from lab.capture import parse_capture
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


def test_streamed_json_of_a_capture_without_connections():
    capture = parse_capture(pcap_bytes([]), "empty.pcap")
    out = io.StringIO()
    command.write_json(capture, analyze(capture), out)
    assert json.loads(out.getvalue())["streams"] == []
    assert out.getvalue() == json.dumps(
        command.to_json(capture, analyze(capture)), separators=(",", ":")
    )
