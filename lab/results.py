"""From a scenario to run plans, and from a run folder's artifacts to `analysis.json`.

`plans()` decides every mode's command lines and limits before anything starts; `analyze_run()`
reads what the modes left (pcap, client log) and joins them with the model's prediction.
Both are used by `lab run`; `lab report` re-reads a finished folder with `analyze_folder()`.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from lab import faults, hosts
from lab.runner import ModePlan


def plans(scenario, modes, run_dir: Path) -> list[ModePlan]:
    from lab import argv as sc  # the command-line builders moved from lab.scenario

    out = []
    for mode in modes:
        for repeat in range(1, scenario.repeats + 1):
            folder = run_dir / mode.name
            if scenario.repeats > 1:
                folder = folder / f"repeat-{repeat}"
            rtt_s = (scenario.network.rtt or 0.0) / 1000.0
            out.append(
                ModePlan(
                    mode=mode.name,
                    repeat=repeat,
                    repeats=scenario.repeats,
                    folder=folder,
                    server_argv=sc.server_argv(scenario, mode),
                    client_argv=sc.client_argv(scenario, mode, "server"),
                    shaper_argv=shaper_argv(scenario) if scenario.network.shaped else None,
                    limits=hosts.Limits(scenario.limits.memory, scenario.limits.pids),
                    snaplen=scenario.capture.snaplen or 262144,
                    ready_timeout=scenario.timeouts.ready,
                    run_timeout=scenario.timeouts.run,
                    # the teardown's last ACK is at most one round trip behind the client's exit
                    drain_s=scenario.capture.drain + 2 * rtt_s,
                    faults=faults.for_mode(scenario.faults, mode.name),
                )
            )
    return out


def shaper_argv(scenario) -> dict[str, list[str]]:
    """The shaper sidecars' arguments, one per end (see shaper.placement for why half each)."""
    from shaper.placement import sidecar_args

    net = scenario.network
    ports = [scenario.port_of(m) for m in scenario.modes]
    return sidecar_args(
        rtt_ms=net.rtt or 0.0,
        jitter_ms=net.jitter or 0.0,
        loss_pct=net.loss or 0.0,
        rate=f"{net.rate}bit" if net.rate else None,
        ports=f"{min(ports)}-{max(ports)}",
    )


def read_jsonl(path: Path) -> list[dict]:
    """JSON lines, skipping lines that are not JSON objects (a human line, a cut last line)."""
    records = []
    if not path.exists():
        return records
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def analyze_mode_folder(folder: Path, server_ports: tuple[int, ...] = ()) -> dict:
    """One mode's figures from what it left: its capture and its client log."""
    from lab import analysis, capture

    pcap = folder / "capture.pcap"
    records = read_jsonl(folder / "client.jsonl")
    if not pcap.exists():
        return {"missing": "capture.pcap", "requests": len(records)}
    parsed = analysis.analyze(capture.read_capture(pcap), server_ports=server_ports)
    summary = analysis.summarize_mode(parsed, records, server_ports=server_ports)
    summary["client_ok"] = sum(1 for r in records if r.get("event") == "request" and r.get("ok"))
    summary["client_failed"] = sum(
        1 for r in records if r.get("event") == "request" and not r.get("ok")
    )
    return summary


def analyze_run(scenario, mode_runs, run_dir: Path) -> dict:
    """analysis.json: per mode, the capture's figures next to the model's prediction.

    With repeats, a mode's row is the repeat with the median page time, and `repeats` lists
    every repeat's page time so the spread is visible.
    """
    from lab import claims, model

    by_mode: dict[str, list] = {}
    for m in mode_runs:
        by_mode.setdefault(m.mode, []).append(m)
    modes_out = []
    base_rtts = []
    for name, runs in by_mode.items():
        mode = scenario.mode(name)
        rows = []
        for m in runs:
            row = analyze_mode_folder(m.folder, (scenario.port_of(mode),))
            row["folder"] = str(m.folder.relative_to(run_dir))
            row["client_exit"] = m.client_exit
            row["error"] = m.client_error
            row["shaping"] = m.shaping
            row["capture_drops"] = m.capture_drops
            _fault_account(row, m)
            rows.append(row)
        timed = [r for r in rows if r.get("page_time_s") is not None]
        chosen = (
            sorted(timed, key=lambda r: r["page_time_s"])[(len(timed) - 1) // 2]
            if timed
            else rows[0]
        )
        chosen = {"name": name, **{k: v for k, v in chosen.items() if k != "name"}}
        chosen["persistent"] = mode.persistent
        chosen["parallel"] = mode.parallel
        chosen["pipeline"] = mode.pipeline
        if len(rows) > 1:
            chosen["repeats"] = [r.get("page_time_s") for r in rows]
        if chosen.get("rtt_ms") is not None:
            base_rtts.append(chosen["rtt_ms"])
        modes_out.append(chosen)

    # The model's RTT is the configured delay plus the bridge's own round trip. Shaped runs probe
    # the latter on an unshaped port (runner.probe_base_rtt); unshaped runs measure it directly.
    configured = scenario.network.rtt or 0.0
    probes = [(m.shaping or {}).get("base_rtt_ms") for m in mode_runs]
    probes = [p for p in probes if p is not None]
    if configured:
        base_rtt_ms = statistics.median(probes) if probes else 0.0
    else:
        base_rtt_ms = statistics.median(base_rtts) if base_rtts else 0.0
    predictions = model.predict_scenario(scenario, base_rtt_s=base_rtt_ms / 1000.0)
    for row in modes_out:
        prediction = predictions.get(row["name"])
        if prediction is not None:
            row["predicted_page_time_s"] = prediction.total_s
            row["prediction"] = prediction.as_dict()
            if row.get("page_time_s"):
                row["prediction_error_pct"] = model.error_percent(
                    prediction.total_s, row["page_time_s"]
                )
    analysis_doc = {
        "scenario": scenario.to_dict(),
        "network": _network_check(scenario, modes_out, base_rtt_ms),
        "modes": modes_out,
    }
    analysis_doc["claims"] = claims.check_claims(analysis_doc)
    fired = [{"mode": m.mode, "repeat": m.repeat, **f} for m in mode_runs for f in m.faults]
    if fired:
        analysis_doc["faults"] = fired
    analysis_doc["complete"] = not any(r.get("incomplete") for r in modes_out)
    return analysis_doc


def _fault_account(row: dict, m) -> None:
    """A mode disturbed on purpose, or whose capture ended early, says so in its row."""
    reasons = list(getattr(m, "incomplete", None) or [])
    if row.get("truncated"):
        reasons.append("the capture file ends mid-record (tcpdump was killed while writing)")
    if row.get("missing"):
        reasons.append(f"no {row['missing']} was recorded")
    if reasons:
        row["incomplete"] = reasons
    if getattr(m, "faults", None):
        row["faults"] = m.faults
        row["fault_account"] = faults.account(m.faults, read_jsonl(m.folder / "client.jsonl"), row)
        row["fault_summary"] = faults.summary_line(m.mode, m.faults, row["fault_account"])


def _network_check(scenario, modes_out: list[dict], base_rtt_ms: float) -> dict | None:
    """Did the configured conditions take effect? The handshake RTT says (issue: 10% or 2 ms)."""
    net = scenario.network
    if not net.shaped:
        return None
    methods = sorted({(m.get("shaping") or {}).get("method", "unknown") for m in modes_out})
    out = {
        "rtt_ms": net.rtt,
        "jitter_ms": net.jitter,
        "loss_pct": net.loss,
        "rate_bps": net.rate,
        "method": ",".join(methods),
        "base_rtt_ms": base_rtt_ms,
    }
    if net.rtt:
        # The verdict is on the median of every handshake of the run: a mode with one connection
        # has one handshake, and one late wake-up of the shaper must not decide the run.
        expected = net.rtt + base_rtt_ms
        tolerance = max(0.1 * expected, 2.0)
        rtts = [
            c["handshake_rtt_ms"]
            for m in modes_out
            for c in m.get("per_connection", [])
            if c.get("handshake_rtt_ms") is not None
        ]
        measured = statistics.median(rtts) if rtts else None
        verdicts = [{"mode": m["name"], "measured_ms": m.get("rtt_ms")} for m in modes_out]
        for v in verdicts:
            v["ok"] = v["measured_ms"] is not None and abs(v["measured_ms"] - expected) <= tolerance
        out["rtt_check"] = {
            "expected_ms": expected,
            "tolerance_ms": tolerance,
            "measured_ms": measured,
            "handshakes": len(rtts),
            "modes": verdicts,
            "ok": measured is not None and abs(measured - expected) <= tolerance,
        }
    return out


def verify(analysis_doc: dict) -> list[str]:
    """Reasons the run must fail although every client succeeded (empty when all is well)."""
    problems = []
    check = (analysis_doc.get("network") or {}).get("rtt_check")
    if check and not check["ok"]:
        measured = "nothing" if check["measured_ms"] is None else f"{check['measured_ms']:.1f} ms"
        problems.append(
            f"the network condition did not take effect: median handshake RTT {measured} over "
            f"{check['handshakes']} handshakes, expected {check['expected_ms']:.1f} ± "
            f"{check['tolerance_ms']:.1f} ms"
        )
    for m in analysis_doc.get("modes", []):
        if m.get("capture_drops"):
            problems.append(
                f"{m['name']}: tcpdump lost {m['capture_drops']} packets (dropped by the kernel): "
                "the counts from this capture are incomplete; run again on a quieter machine"
            )
        if m.get("missing"):
            problems.append(f"{m['name']}: no {m['missing']} was recorded")
        if any(f.get("fired") for f in m.get("faults", [])):
            problems.append(m["fault_summary"])  # a disturbed run is never a clean measurement
    return problems


def write_reports(run_dir: Path, analysis_doc: dict | None = None) -> list[Path]:
    from lab import report

    return report.build_reports(run_dir, analysis_doc)


def print_summary(analysis_doc: dict, console, timings: dict | None = None) -> None:
    from lab import summary

    summary.print_summary(analysis_doc, console, timings=timings)


def analyze_folder(run_dir: Path) -> dict:
    """analysis.json for a run folder from its saved artifacts (a run cut short, or re-analysis).

    What the runner knew and the folder does not keep (exit codes, shaping, tcpdump's drop
    count) comes from manifest.json when it exists; a mode never run is left out.
    """
    from lab import scenario as sc
    from lab.runner import ModeRun

    scenario = sc.load_scenario(run_dir / "scenario.yaml")
    manifest_path = run_dir / "manifest.json"
    recorded = {}
    if manifest_path.exists():
        for m in json.loads(manifest_path.read_text()).get("modes", []):
            recorded[(m.get("mode"), m.get("repeat"))] = m
    mode_runs = []
    for mode in scenario.modes:
        for repeat in range(1, scenario.repeats + 1):
            folder = run_dir / mode.name
            if scenario.repeats > 1:
                folder = folder / f"repeat-{repeat}"
            if not (folder / "capture.pcap").exists():
                continue
            known = recorded.get((mode.name, repeat), {})
            mode_runs.append(
                ModeRun(
                    mode=mode.name,
                    repeat=repeat,
                    folder=folder,
                    client_exit=known.get("client_exit"),
                    client_error=known.get("error"),
                    shaping=known.get("shaping"),
                    capture_drops=known.get("capture_drops"),
                    faults=known.get("faults") or [],
                    incomplete=known.get("incomplete") or [],
                )
            )
    return analyze_run(scenario, mode_runs, run_dir)
