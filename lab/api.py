"""The lab as a Python library: `lab.run`, `lab.load_run`, `lab.analyze_pcap`.

    import lab
    result = lab.run("scenarios/page10.yaml")          # RunResult
    result.modes["keepalive"].connections               # 1
    lab.load_run(result.run_dir) == result              # True: the run folder says it all
    lab.analyze_pcap("capture.pcap").connections        # what `lab analyze --json` prints

Errors are exceptions, never exits: `lab.ScenarioError` for bad input (nothing was started, no
folder was made), `lab.RunError` for an experiment that failed (its `result` is the run's
RunResult when the run folder was written, else None). The command line (`python -m lab run`)
is a thin shell over `run()`: it shows `status` messages in a spinner, prints `say` lines and
maps the exceptions to exit codes 2 and 1.
"""

from __future__ import annotations

import importlib
import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from lab import __version__, images, netpath, results, runner
from lab.analysis import Analysis as CaptureAnalysis
from lab.analysis import analyze
from lab.capture import read_capture
from lab.document import Manifest, ModeRecord, RunResult
from lab.errors import LabError, RunError, UsageError
from lab.placement import Side, check_engines, choose_engines
from lab.scenario import Scenario, dump_yaml, load_scenario, resolve_out_dir, select_modes

Say = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


def load_run(run_dir: str | os.PathLike[str]) -> RunResult:
    """A finished (or cut short) run folder's analysis.json and manifest.json, typed."""
    return RunResult.read(Path(run_dir))


def analyze_pcap(path: str | os.PathLike[str]) -> CaptureAnalysis:
    """Any TCP capture (pcap or pcapng), read the way Wireshark numbers its streams."""
    return analyze(read_capture(path))


def run(
    scenario: str | os.PathLike[str] | Scenario,
    *,
    out: str | os.PathLike[str] | None = None,
    modes: Iterable[str] | None = None,
    status: Say = _quiet,
    say: Say = _quiet,
    engines: Mapping[str, str] | None = None,
) -> RunResult:
    """Run every mode (or those named) of a scenario on fresh containers, analyse, report.

    `scenario` is a path to a YAML file or a loaded `lab.scenario.Scenario`; `out` the parent
    of the run folder (default `runs`); `engines` each side's Docker engine by URL
    ({"server": "tcp://10.0.0.11:2375", "client": "ssh://lab@10.0.0.12"}), over the scenario's
    `hosts:` side by side; a side in neither runs on DOCKER_HOST's engine. Two engines must be
    in one Swarm. Returns the run as `lab.load_run` reads it back. Raises ScenarioError before
    anything starts (also for engines not in one Swarm), RunError when the experiment failed
    (also for an engine that does not answer), and KeyboardInterrupt (after removing every
    container) when interrupted.
    """
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    chosen = select_modes(scenario, list(modes or ()))
    try:
        given = check_engines(engines or {})
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    urls = choose_engines(scenario.hosts.engines() if scenario.hosts else {}, given)
    out_parent = resolve_out_dir(str(out) if out is not None else "runs")
    return _Run(scenario, chosen, out_parent, status, say, urls).execute()


class _Run:
    """One `lab run`: the phases in order, the manifest always written last."""

    def __init__(self, scenario: Scenario, modes, out_parent: Path, status: Say, say: Say, urls):
        # here, not at the top: load_run and analyze_pcap work without the Docker SDK
        from lab.engine import Engine, open_placement

        self.scenario, self.modes, self.status, self.say = scenario, modes, status, say
        self.engine = Engine.from_env()  # builds the images
        # Each side's engine, checked before anything starts (one Swarm for two engines).
        self.placement = open_placement(self.engine, urls)
        started = datetime.now(UTC)
        self.run_id = f"{started:%Y%m%dT%H%M%SZ}-{scenario.name}"
        self.run_dir = out_parent / self.run_id
        self.manifest = Manifest(
            lab_version=__version__,
            run_id=self.run_id,
            command=" ".join([Path(sys.executable).name, "-m", "lab", *sys.argv[1:]]),
            scenario=scenario.name,
            started=started.isoformat(),
            host={"kernel": platform.release(), "machine": platform.machine()},
        )
        self.timings: dict[str, float] = {}
        self.mode_runs: list = []

    def execute(self) -> RunResult:
        # matplotlib takes a second or two to import; the run spends its time waiting on the
        # Docker API, so import the charts beside it (the import lock makes the report wait).
        threading.Thread(target=importlib.import_module, args=("lab.charts",), daemon=True).start()
        self.run_dir.mkdir(parents=True, exist_ok=False)
        (self.run_dir / "scenario.yaml").write_text(dump_yaml(self.scenario))
        with _sigterm_as_interrupt():
            try:
                self._phases()
            except KeyboardInterrupt as exc:
                self.manifest.reason = "interrupted (Ctrl-C or SIGTERM)"
                exc.add_note(f"partial results in {self.run_dir}")
                raise
            except LabError as exc:
                self.manifest.reason = str(exc)
                raise RunError(f"{exc} (partial results in {self.run_dir})") from exc
            finally:
                try:
                    self._finish()
                finally:
                    for engine in {self.engine, *self.placement.engines()}:
                        engine.close()  # API users may run many times in one process
            loaded = self._reports()
        if self.manifest.failures:
            error = RunError("; ".join(self.manifest.failures))
            error.result = loaded
            raise error
        return loaded

    def _phases(self) -> None:
        self.status("building images")
        t = time.monotonic()
        refs = images.ensure_images(
            progress=lambda msg, detail=False: self.status(msg),
            extra=["browser"] if any(m.client == "browser" for m in self.modes) else (),
        )
        self.timings["images"] = time.monotonic() - t
        self.manifest.images = {
            role: {"ref": ref, "id": self.engine.image_id(ref)} for role, ref in refs.items()
        }
        self.manifest.docker = self.engine.facts()
        self._where(refs)
        authority = None
        if any(self.scenario.tls_of(m) for m in self.modes):
            from lab import tlsca  # the cryptography package: only a TLS run needs it

            # One CA per run; its key stays in this process. The folder gets the certificates
            # only (curl --cacert, Wireshark), never a key.
            authority = tlsca.make_authority()
            authority.write_public(self.run_dir)
        for plan in results.plans(self.scenario, self.modes, self.run_dir, authority):
            mode_runner = runner.ModeRunner(self.placement, refs, self.run_id, self.status)
            mode_run = mode_runner.run(plan)
            self.mode_runs.append(mode_run)
            label = plan.mode + (f" (repeat {plan.repeat})" if plan.repeats > 1 else "")
            outcome = "ok" if mode_run.client_exit == 0 else f"FAILED: {mode_run.client_error}"
            self.say(f"  {label}: {mode_run.timings['total']:.1f} s, {outcome}")
        if self.placement.overlay:
            self.manifest.path = self._path()
        self.status("analysing the captures")
        t = time.monotonic()
        result = results.analyze_run(self.scenario, self.mode_runs, self.run_dir)
        self.timings["analysis"] = time.monotonic() - t
        self.manifest.path = netpath.with_clock(self.manifest.path, result.modes.values())
        results.write_json_atomic(self.run_dir / "analysis.json", result.to_dict())
        failed = [m for m in self.mode_runs if m.client_exit != 0]
        self.manifest.failures = [f"{m.mode}: {m.client_error}" for m in failed]
        self.manifest.failures += results.verify(result)
        self.manifest.status = "complete"

    def _reports(self) -> RunResult:
        """report.md, report.html and the charts, once the manifest is written: the report shows
        the run's facts and where its time went. Their own time is added to the manifest after.
        Cut short, the manifest says so, and `lab report RUN_DIR` writes them again."""
        self.status("writing the reports")
        t = time.monotonic()
        loaded = load_run(self.run_dir)
        try:
            results.write_reports(self.run_dir, loaded)
        except (KeyboardInterrupt, LabError) as exc:
            why = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc)
            self.manifest.status = "incomplete"
            self.manifest.reason = (
                f"the reports were not written ({why}): `python -m lab report {self.run_dir}`"
            )
            results.write_json_atomic(self.run_dir / "manifest.json", self.manifest.to_dict())
            if isinstance(exc, KeyboardInterrupt):
                exc.add_note(f"partial results in {self.run_dir}")
                raise
            raise RunError(f"writing the reports: {exc} (results in {self.run_dir})") from exc
        self.manifest.timings_s["reports"] = round(time.monotonic() - t, 3)
        manifest_path = self.run_dir / "manifest.json"
        results.write_json_atomic(manifest_path, self.manifest.to_dict())
        # analysis.json is read once; the manifest (small) again, as load_run would read it
        loaded.manifest = Manifest.read(manifest_path)
        return loaded

    def _where(self, refs: dict[str, str]) -> None:
        """Each side's engine in the manifest, and the images pushed to those that lack them."""
        from lab import image_sync, preflight

        shaped = self.scenario.network.shaped
        needs: dict = {}
        for side in Side:
            engine = self.placement.engine_for_side(side)
            wanted = needs.setdefault(engine, set())
            roles = image_sync.images_for_side(side, shaped, self.scenario.capture.on_client)
            wanted.update(refs[role] for role in roles)
            if side is Side.CLIENT and "browser" in refs:  # a browser mode's client
                wanted.add(refs["browser"])
            swarm = None
            if self.placement.overlay:
                facts = preflight.swarm_of(engine.info())
                swarm = {"node_id": facts.node_id, "manager": facts.manager}
            self.manifest.engines[side.value] = netpath.engine_record(
                engine.name, engine.facts(), swarm
            )
        if any(engine is not self.engine for engine in needs):
            self.status("images: comparing image IDs on every engine")
            t = time.monotonic()
            try:
                transfers = image_sync.sync_images(self.engine, needs, self.status)
            except Exception as exc:
                reason = self.engine.describe_error(exc) or f"{type(exc).__name__}: {exc}"
                raise RunError(f"pushing the lab's images to the run's engines: {reason}") from exc
            self.manifest.image_transfers = transfers
            self.timings["image_sync"] = time.monotonic() - t

    def _path(self):
        """The path between two engines: each mode's probe and the SYNs' MSS."""
        from lab import capture

        pcaps = [m.folder / "capture.pcap" for m in self.mode_runs]
        first = next((p for p in pcaps if p.exists()), None)
        mss = netpath.syn_mss(capture.read_capture(first).packets) if first else None
        return netpath.path_record("overlay", [m.path for m in self.mode_runs], mss)

    def _finish(self) -> None:
        """Remove every container, then write the manifest; a second Ctrl-C cannot stop it."""
        with _signals_ignored():
            try:
                runner.remove_leftovers(self.placement, self.run_id)
            finally:
                m = self.manifest
                m.ended = datetime.now(UTC).isoformat()
                m.timings_s = phase_totals(self.mode_runs, self.timings)
                m.modes = [
                    ModeRecord(
                        mode=r.mode, repeat=r.repeat, client_exit=r.client_exit,
                        error=r.client_error, shaping=r.shaping, capture_drops=r.capture_drops,
                        timings_s=r.timings, faults=r.faults, incomplete=r.incomplete,
                        path=r.path,
                    )
                    for r in self.mode_runs
                ]  # fmt: skip
                m.faults = [
                    {"mode": r.mode, "repeat": r.repeat, **f}
                    for r in self.mode_runs
                    for f in r.faults
                ]
                results.write_json_atomic(self.run_dir / "manifest.json", m.to_dict())


def phase_totals(mode_runs, timings: dict[str, float]) -> dict[str, float]:
    """Seconds per phase over the whole run: the controller's own and every mode's summed."""
    totals = dict(timings)
    for m in mode_runs:
        for phase in ("containers", "traffic", "drain", "teardown"):
            totals[phase] = totals.get(phase, 0.0) + m.timings.get(phase, 0.0)
    return {k: round(v, 3) for k, v in totals.items()}


class _sigterm_as_interrupt:
    """SIGTERM gets the same orderly teardown as Ctrl-C (only the main thread has signals)."""

    def __enter__(self):
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        return self

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


class _signals_ignored:
    """SIGINT and SIGTERM ignored for the teardown (it takes a second or two)."""

    def __enter__(self):
        self.saved = None
        if threading.current_thread() is threading.main_thread():
            self.saved = (
                signal.signal(signal.SIGINT, signal.SIG_IGN),
                signal.signal(signal.SIGTERM, signal.SIG_IGN),
            )
        return self

    def __exit__(self, *exc) -> None:
        if self.saved is not None:
            signal.signal(signal.SIGINT, self.saved[0])
            signal.signal(signal.SIGTERM, self.saved[1])


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt
