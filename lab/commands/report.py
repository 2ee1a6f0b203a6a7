"""`python -m lab report RUN_DIR`: rebuild report.md, report.html and the charts of a run folder.

Reads the folder's analysis.json (and manifest.json, the pcaps for the charts); when the folder
has no analysis.json but has its captures, `lab.results.analyze_folder` writes it first.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from lab.document import RunResult
from lab.errors import UsageError
from lab.results import analyze_folder, write_json_atomic, write_reports
from lab.summary import print_summary


def run(args) -> int:
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: not a folder (give a run folder, e.g. runs/<id>)")
    if not (run_dir / "analysis.json").exists():
        _reanalyse(run_dir)
    result = RunResult.read(run_dir)
    written = write_reports(run_dir, result)
    console = Console()
    print_summary(result, console)
    for path in written[:2]:
        console.print(f"wrote {path}")
    console.print(f"wrote {len(written) - 2} chart(s) in {run_dir / 'charts'}")
    return 0


def _reanalyse(run_dir: Path) -> None:
    """A folder cut short before analysis.json: rebuild it from the captures if we can."""
    if not any(run_dir.glob("*/capture.pcap")) and not any(run_dir.glob("*/*/capture.pcap")):
        raise UsageError(f"{run_dir}: no analysis.json and no captures: not a run folder")
    write_json_atomic(run_dir / "analysis.json", analyze_folder(run_dir).to_dict())
