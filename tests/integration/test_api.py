"""The Python API on real containers: `lab.run` returns the run as `lab.load_run` reads it back,
and the example under examples/ runs as a user would run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import lab

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_run_returns_what_load_run_reads(lab_images, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    said: list[str] = []
    result = lab.run(ROOT / "scenarios" / "page10.yaml", out=tmp_path / "runs", say=said.append)
    assert result.modes["keepalive"].connections == 1
    assert result.modes["keepalive"].handshake_packets == 3
    assert result.modes["http1.0"].connections == 10
    assert result.modes["http1.0"].handshake_packets == 30
    assert result.modes["http1.0"].page_time_s > 0
    assert result.modes["http1.0"].predicted_page_time_s > 0
    assert result.manifest.complete and result.manifest.schema_version == 2
    assert [line.split(":")[0].strip() for line in said] == ["http1.0", "keepalive", "keepalive-6"]
    again = lab.load_run(result.run_dir)
    assert again == result
    assert (result.run_dir / "report.html").stat().st_size > 10_000


def test_the_example_runs(lab_images, tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "compare_modes.py"), "--mode", "keepalive"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    row = next(line for line in done.stdout.splitlines() if line.startswith("keepalive "))
    assert row.split()[1:4] == ["1", "3", "3"] or row.split()[1:3] == ["1", "3"]
