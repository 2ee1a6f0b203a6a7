"""`lab run --out DIR`: any folder the user can write to; a one-line error for what cannot work.

Real temporary folders throughout. The unwritable places work as root too: a path under a
regular file, and /proc (no new entries there, whoever asks).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.errors import UsageError
from lab.scenario import resolve_out_dir

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    return work


def _entries(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


@pytest.mark.parametrize(
    ("out", "expected"),
    [
        pytest.param("runs", "work/runs", id="default"),
        pytest.param(".", "work", id="cwd-itself"),
        pytest.param("a/b/../c", "work/a/c", id="dotdot-inside"),
        pytest.param("..", ".", id="parent"),
        pytest.param("../elsewhere/deep", "elsewhere/deep", id="sibling-not-yet-there"),
        pytest.param("link-out/runs", "runs", id="symlink-resolved"),
    ],
)
def test_relative_paths_start_at_the_working_directory(
    tmp_path: Path, cwd: Path, out: str, expected: str
):
    (cwd / "link-out").symlink_to(tmp_path)
    before = _entries(tmp_path)
    assert resolve_out_dir(out, cwd=cwd) == (tmp_path / expected).resolve()
    assert _entries(tmp_path) == before, "nothing created or left behind (the run creates it)"


def test_an_absolute_folder_outside_the_working_directory_is_the_users_choice(
    tmp_path: Path, cwd: Path
):
    outside = tmp_path / "x" / "y"
    assert resolve_out_dir(str(outside), cwd=cwd) == outside.resolve()
    assert not (tmp_path / "x").exists()
    (tmp_path / "x").mkdir()
    assert resolve_out_dir(str(tmp_path / "x"), cwd=cwd) == (tmp_path / "x").resolve()
    assert _entries(tmp_path / "x") == set(), "the write test leaves nothing"


def test_home_is_expanded(monkeypatch, tmp_path: Path, cwd: Path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_out_dir("~/lab-runs", cwd=cwd) == (tmp_path / "lab-runs").resolve()


def test_an_existing_file_is_refused(cwd: Path):
    (cwd / "runs").write_text("")
    with pytest.raises(UsageError, match=r"^--out runs: exists and is not a directory$"):
        resolve_out_dir("runs", cwd=cwd)


def test_a_path_under_a_file_is_refused(tmp_path: Path, cwd: Path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("")
    out = f"{blocker}/runs/today"
    with pytest.raises(UsageError, match=rf"^--out {out}: is under {blocker}, which is not a dir"):
        resolve_out_dir(out, cwd=cwd)


def test_a_place_that_takes_no_new_folder_is_refused(cwd: Path):
    with pytest.raises(
        UsageError, match=r"^--out /proc/tcplab-runs: cannot create a folder in /proc"
    ):
        resolve_out_dir("/proc/tcplab-runs", cwd=cwd)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permission bits")
def test_a_read_only_folder_is_refused(tmp_path: Path, cwd: Path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    with pytest.raises(UsageError, match=r"cannot create a folder in .*locked \(Permission"):
        resolve_out_dir(str(locked / "runs"), cwd=cwd)


def test_lab_run_refuses_before_anything_starts(tmp_path: Path):
    """Exit 2 with one line on stderr, and no Docker contact: the engine address is bogus."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {**os.environ, "DOCKER_HOST": "tcp://127.0.0.1:9", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "lab", "run", "scenarios/article.yaml", "--out", str(blocker)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [f"error: --out {blocker}: exists and is not a directory"]
    assert blocker.read_text() == ""
