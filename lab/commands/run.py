"""`python -m lab run SCENARIO`: validate, build images if missing, run every mode, analyse, report.

The run folder is `<out>/<UTC timestamp>-<scenario name>/`. `manifest.json` is written last and
atomically: a folder whose manifest is missing or says `"status": "incomplete"` was cut short.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from lab import __version__
from lab.errors import LabError, RunError


def _raise_interrupt(signum, frame):  # SIGTERM gets the same orderly teardown as Ctrl-C
    raise KeyboardInterrupt


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def run(args) -> int:
    from lab import scenario as scenario_mod

    # Bad input stops here, before anything is built or started.
    scenario = scenario_mod.load_scenario(args.scenario)
    modes = scenario_mod.select_modes(scenario, args.mode)
    out_parent = scenario_mod.resolve_out_dir(args.out)

    from rich.console import Console

    from lab import images, results, runner
    from lab.engine import Engine
    from lab.placement import Placement

    console = Console(stderr=False)
    engine = Engine.from_env()
    placement = Placement.single(engine)  # server side and client side on the one engine
    # matplotlib takes a second or two to import; the main thread spends the run waiting on the
    # Docker API, so import it beside the run instead of after it (the import lock makes the
    # report's own import wait for this one if it is not finished).
    threading.Thread(target=importlib.import_module, args=("lab.charts",), daemon=True).start()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)

    started = datetime.now(UTC)
    run_id = f"{started:%Y%m%dT%H%M%SZ}-{scenario.name}"
    run_dir = out_parent / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    (run_dir / "scenario.yaml").write_text(scenario_mod.dump_yaml(scenario))
    manifest = {
        "lab_version": __version__,
        "run_id": run_id,
        "status": "incomplete",
        "command": " ".join([Path(sys.executable).name, "-m", "lab", *sys.argv[1:]]),
        "scenario": scenario.name,
        "started": started.isoformat(),
        "host": {"kernel": platform.release(), "machine": platform.machine()},
    }
    timings: dict[str, float] = {}
    mode_runs = []
    try:
        with console.status("building images", spinner="dots") as status:
            t = time.monotonic()
            refs = images.ensure_images(progress=lambda msg, detail=False: status.update(msg))
            timings["images"] = time.monotonic() - t
            manifest["images"] = {
                role: {"ref": ref, "id": engine.image_id(ref)} for role, ref in refs.items()
            }
            manifest["docker"] = engine.facts()
            for plan in results.plans(scenario, modes, run_dir):
                mode_runner = runner.ModeRunner(
                    placement, refs, run_id, progress=lambda msg: status.update(msg)
                )
                mode_run = mode_runner.run(plan)
                mode_runs.append(mode_run)
                label = f"{plan.mode}" + (f" (repeat {plan.repeat})" if plan.repeats > 1 else "")
                outcome = "ok" if mode_run.client_exit == 0 else f"FAILED: {mode_run.client_error}"
                console.print(f"  {label}: {mode_run.timings['total']:.1f} s, {outcome}")
            status.update("analysing the captures")
            t = time.monotonic()
            analysis = results.analyze_run(scenario, mode_runs, run_dir)
            timings["analysis"] = time.monotonic() - t
            status.update("writing the reports")
            t = time.monotonic()
            write_json_atomic(run_dir / "analysis.json", analysis)
            results.write_reports(run_dir, analysis)
            timings["reports"] = time.monotonic() - t
        results.print_summary(analysis, console, timings=_phase_totals(mode_runs, timings))
        failures = [m for m in mode_runs if m.client_exit != 0]
        verdict = results.verify(analysis)
        manifest["status"] = "complete"
        manifest["failures"] = [f"{m.mode}: {m.client_error}" for m in failures] + verdict
        console.print(f"run folder: {run_dir}")
        if failures or verdict:
            for line in manifest["failures"]:
                console.print(f"[red]failed:[/red] {line}")
            return 1
        return 0
    except KeyboardInterrupt:
        manifest["status"] = "incomplete"
        manifest["reason"] = "interrupted (Ctrl-C or SIGTERM)"
        print(f"interrupted: containers removed; partial results in {run_dir}", file=sys.stderr)
        return 130
    except LabError as exc:
        manifest["status"] = "incomplete"
        manifest["reason"] = str(exc)
        raise RunError(f"{exc} (partial results in {run_dir})") from exc
    finally:
        # A second Ctrl-C must not cut the teardown short: it takes a second or two.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            runner.remove_leftovers(placement, run_id)
        finally:
            manifest["ended"] = datetime.now(UTC).isoformat()
            manifest["timings_s"] = _phase_totals(mode_runs, timings)
            manifest["modes"] = [
                {"mode": m.mode, "repeat": m.repeat, "client_exit": m.client_exit,
                 "error": m.client_error, "shaping": m.shaping,
                 "capture_drops": m.capture_drops, "timings_s": m.timings,
                 "faults": m.faults, "incomplete": m.incomplete}
                for m in mode_runs
            ]  # fmt: skip
            manifest["faults"] = [
                {"mode": m.mode, "repeat": m.repeat, **f} for m in mode_runs for f in m.faults
            ]
            write_json_atomic(run_dir / "manifest.json", manifest)
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_int)


def _phase_totals(mode_runs, timings: dict[str, float]) -> dict[str, float]:
    totals = dict(timings)
    for m in mode_runs:
        for phase in ("containers", "traffic", "drain", "teardown"):
            totals[phase] = totals.get(phase, 0.0) + m.timings.get(phase, 0.0)
    return {k: round(v, 3) for k, v in totals.items()}
