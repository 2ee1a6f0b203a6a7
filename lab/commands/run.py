"""`python -m lab run SCENARIO`: a thin shell over `lab.api.run` (see there for the phases).

The run folder is `<out>/<UTC timestamp>-<scenario name>/`. `manifest.json` is written last and
atomically: a folder whose manifest is missing or says `"status": "incomplete"` was cut short.
"""

from __future__ import annotations

import sys

from rich.console import Console

from lab import api
from lab.errors import RunError, UsageError
from lab.placement import parse_engine_args
from lab.summary import print_summary


def run(args) -> int:
    try:
        engines = parse_engine_args(getattr(args, "engine", []))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    console = Console(stderr=False)
    with console.status("checking the scenario", spinner="dots") as spinner:
        try:
            result = api.run(
                args.scenario, out=args.out, modes=args.mode,
                status=spinner.update, say=console.print, engines=engines,
            )  # fmt: skip
        except RunError as exc:
            if exc.result is None:
                raise
            result = exc.result
        except KeyboardInterrupt as exc:
            where = "; ".join(getattr(exc, "__notes__", ["partial results in the run folder"]))
            print(f"interrupted: containers removed; {where}", file=sys.stderr)
            return 130
    print_summary(result, console)
    console.print(f"run folder: {result.run_dir}")
    failures = result.manifest.failures if result.manifest else []
    for line in failures:
        console.print(f"[red]failed:[/red] {line}")
    return 1 if failures else 0
