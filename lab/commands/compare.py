"""`python -m lab compare RUN_A RUN_B`: two runs' modes side by side, and claims whose verdict
changed (for example page10 against page10-wan, or a run before and after a kernel change)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from lab.document import Manifest, RunResult, read_json
from lab.errors import UsageError
from lab.summary import print_comparison


def load_analysis(arg: str) -> tuple[str, RunResult]:
    """A run folder or an analysis.json path -> (short name, the run's document)."""
    path = Path(arg)
    if path.is_dir():
        path = path / "analysis.json"
    if not path.exists():
        raise UsageError(f"{arg}: no analysis.json there (give a run folder or its analysis.json)")
    run = RunResult.from_dict(read_json(path), str(path))
    manifest = path.parent / "manifest.json"
    if manifest.exists():  # where each run ran: one engine, or two across a Swarm
        run.manifest = Manifest.read(manifest)
    return path.parent.name, run


def run(args) -> int:
    name_a, a = load_analysis(args.run_a)
    name_b, b = load_analysis(args.run_b)
    if name_a == name_b:
        name_a, name_b = f"A: {name_a}", f"B: {name_b}"
    console = Console()
    console.print(f"A = {args.run_a}\nB = {args.run_b}")
    print_comparison(a, b, console, names=(name_a, name_b))
    return 0
