"""The Python API without Docker: bad input raises before anything starts, and analyze_pcap is
what `lab analyze --json` prints. (tests/integration/test_api.py runs a scenario.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import lab
from lab import cli

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"


@pytest.mark.parametrize(
    "pcap", ["http10-ipv4.pcap", "keepalive-ipv6-sll2.pcapng", "port-reuse-sll.pcap"]
)
def test_analyze_pcap_agrees_with_analyze_json(pcap, capsys):
    assert cli.main(["analyze", "--json", str(DATA / pcap)]) == 0
    printed = json.loads(capsys.readouterr().out)
    typed = lab.analyze_pcap(DATA / pcap)
    assert isinstance(typed, lab.CaptureAnalysis)
    assert len(typed.connections) == printed["connections"] > 0
    for key in ("packets", "syn", "fin", "rst", "retransmissions", "bytes"):
        assert getattr(typed, key) == printed[key], key
    assert json.loads(json.dumps(typed.to_dict())) == {
        k: v
        for k, v in printed.items()
        if k not in ("file", "format", "link_types", "skipped_frames")
    }


def test_bad_scenario_raises_scenario_error_and_starts_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nprotocol: gopher\n")
    with pytest.raises(lab.ScenarioError) as info:
        lab.run(bad)
    assert "\n" not in str(info.value)
    with pytest.raises(lab.ScenarioError, match="nope"):
        lab.run(ROOT / "scenarios" / "page10.yaml", modes=["nope"])
    assert list(tmp_path.iterdir()) == [bad]  # no runs/ folder


def test_import_lab_loads_no_heavy_dependency():
    """The capture container has the standard library and dpkt only: `import lab` and the
    analysis must not pull in docker, yaml, rich or matplotlib."""
    code = (
        "import sys, lab, lab.analysis, lab.capture, lab.document, lab.compose_demo\n"
        "heavy = {'docker', 'yaml', 'rich', 'matplotlib', 'requests'} & set(sys.modules)\n"
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
