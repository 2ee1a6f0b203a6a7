"""`python -m lab report RUN_DIR`: rebuild report.md, report.html and the charts of a run folder.

Reads the folder's analysis.json (and manifest.json, the pcaps for the charts); when the folder
has no analysis.json but has its captures, `lab.results.analyze_folder` writes it first.
"""

from __future__ import annotations

import json
from pathlib import Path

from lab.errors import UsageError


def run(args) -> int:
    from rich.console import Console

    from lab.report import build_reports, read_analysis
    from lab.summary import print_summary

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: not a folder (give a run folder, e.g. runs/<id>)")
    analysis_path = run_dir / "analysis.json"
    if not analysis_path.exists():
        _reanalyse(run_dir)
    analysis = read_analysis(run_dir)
    written = build_reports(run_dir, analysis)
    console = Console()
    print_summary(analysis, console)
    for path in written[:2]:
        console.print(f"wrote {path}")
    console.print(f"wrote {len(written) - 2} chart(s) in {run_dir / 'charts'}")
    return 0


def _reanalyse(run_dir: Path) -> None:
    """A folder cut short before analysis.json: rebuild it from the captures if we can."""
    if not any(run_dir.glob("*/capture.pcap")) and not any(run_dir.glob("*/*/capture.pcap")):
        raise UsageError(f"{run_dir}: no analysis.json and no captures: not a run folder")
    try:
        from lab.results import analyze_folder
    except ImportError as exc:
        raise UsageError(f"{run_dir}: no analysis.json, and this lab cannot re-analyse") from exc
    analysis = analyze_folder(run_dir)
    tmp = run_dir / "analysis.json.tmp"
    tmp.write_text(json.dumps(analysis, indent=2) + "\n")
    tmp.replace(run_dir / "analysis.json")
