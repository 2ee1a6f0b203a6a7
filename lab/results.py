"""From a scenario to run plans, and from a run folder's artifacts to `analysis.json`.

`plans()` decides every mode's command lines and limits before anything starts; `analyze_run()`
reads what the modes left (pcap, client log) and joins them with the model's prediction.
Both are used by `lab run`; `lab report` re-reads a finished folder with `analyze_folder()`.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

from lab import analysis, browser, capture, claims, clock, costs, faults, hosts, model, report
from lab import tls as tls_reading
from lab.argv import client_argv, server_argv
from lab.document import (
    Manifest,
    ModeRecord,
    ModeResult,
    NetworkCheck,
    RttCheck,
    RunResult,
    TlsConnectionResult,
    TlsModeResult,
)
from lab.runner import CLIENT_CAPTURE, TLS_KEYLOG, ModePlan, ModeRun
from lab.scenario import load_scenario
from lab.tcp import ETHERNET_MSS
from shaper.placement import sidecar_args


def plans(scenario, modes, run_dir: Path, authority=None) -> list[ModePlan]:
    """`authority`: the run's lab.tlsca.Authority when a mode speaks TLS (its PEMs go to the
    server and client containers by environment)."""
    out = []
    for mode in modes:
        tls = bool(scenario.tls_of(mode))
        if tls and authority is None:
            raise ValueError(f"mode {mode.name} speaks TLS: plans() needs the run's authority")
        pin = authority.server_spki_pin() if tls and mode.client == "browser" else None
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
                    server_argv=server_argv(scenario, mode),
                    client_argv=(
                        browser.driver_argv(
                            browser.page_url(
                                "server", scenario.port_of(mode), _page(scenario, mode), tls
                            ),
                            scenario.timeouts.run,
                            spki_pin=pin,
                        )
                        if mode.client == "browser"
                        else client_argv(scenario, mode, "server")
                    ),
                    client=mode.client,
                    shaper_argv=shaper_argv(scenario) if scenario.network.shaped else None,
                    limits=hosts.Limits(scenario.limits.memory, scenario.limits.pids),
                    snaplen=scenario.capture.snaplen or 262144,
                    ready_timeout=scenario.timeouts.ready,
                    run_timeout=scenario.timeouts.run,
                    # the teardown's last ACK is at most one round trip behind the client's exit
                    drain_s=scenario.capture.drain + 2 * rtt_s,
                    faults=faults.for_mode(scenario.faults, mode.name),
                    capture_client=scenario.capture.on_client,
                    tls=tls,
                    server_env=authority.server_environment() if tls else {},
                    # the browser trusts the server by its key's pin (in its argv)
                    client_env=authority.client_environment()
                    if tls and mode.client != "browser"
                    else {},
                )
            )
    return out


def _page(scenario, mode) -> str:
    """The browser's page: the first resource of the mode's workload (the HTML)."""
    return scenario.workload_of(mode).resources[0].name


def browser_row(row: ModeResult, folder: Path, origin: str) -> None:
    """A browser mode's account (lab.browser): its net-log joined to the capture's connections.
    Its requests count is the browser's, not the workload's (the page decides what it loads)."""
    netlog_path = folder / browser.NETLOG_FILE
    row.client = "browser"
    log_path = folder / browser.LOG_FILE
    summary = (
        browser.driver_summary(log_path.read_text(errors="replace")) if log_path.exists() else {}
    )
    try:
        netlog = browser.parse_netlog(netlog_path.read_text(errors="replace"))
    except (OSError, ValueError) as exc:
        row.browser = {"error": f"{browser.NETLOG_FILE}: {exc}", "title": summary.get("title")}
        return
    account = browser.join(netlog, row.per_connection, summary, origin=origin)
    row.browser = account.as_dict()
    row.requests = account.requests
    row.client_ok = account.loaded
    row.client_failed = account.requests - account.loaded


def shaper_argv(scenario) -> dict[str, list[str]]:
    """The shaper sidecars' arguments, one per end (see shaper.placement for why half each)."""
    net = scenario.network
    ports = [scenario.port_of(m) for m in scenario.modes]
    return sidecar_args(
        rtt_ms=net.rtt or 0.0,
        jitter_ms=net.jitter or 0.0,
        loss_pct=net.loss or 0.0,
        rate=f"{net.rate}bit" if net.rate else None,
        ports=f"{min(ports)}-{max(ports)}",
    )


def write_json_atomic(path: Path, data: dict) -> None:
    """A JSON file that is either whole or absent: written beside, then renamed."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def write_reports(run_dir: Path, result: RunResult) -> list[Path]:
    return report.build_reports(run_dir, result)


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


def analyze_mode_folder(
    folder: Path,
    server_ports: tuple[int, ...] = (),
    records: list[dict] | None = None,
    tls: bool = False,
) -> ModeResult:
    """One mode's figures from what it left: its capture and its client log (`records`, when
    the caller has read it already: a load run's has a hundred thousand lines). `tls`: the
    mode spoke TLS, so its handshakes are read from the payloads too (lab.tls)."""
    pcap = folder / "capture.pcap"
    if records is None:
        records = read_jsonl(folder / "client.jsonl")
    if not pcap.exists():
        return ModeResult(missing="capture.pcap", requests=len(records))
    server_capture = capture.read_capture(pcap)
    parsed = analysis.analyze(server_capture, server_ports=server_ports)
    row = ModeResult.from_dict(analysis.summarize_mode(parsed, records, server_ports=server_ports))
    client_pcap = folder / CLIENT_CAPTURE
    if client_pcap.exists():  # captured on both ends: the clocks' offset, the one-way delays
        client_packets = capture.read_capture(client_pcap).packets
        row.clock = clock.estimate(server_capture.packets, client_packets, server_ports)
    first_request = {c.stream: c.t_first_client_byte for c in parsed.connections}
    for conn in row.per_connection:  # when each connection's first request arrived (lab.costs)
        conn.t_first_client_byte = first_request.get(conn.stream)
    if tls:
        _tls_row(row, pcap, server_capture, server_ports)
    answered = [r for r in records if r.get("event") == "request"]
    row.client_ok = sum(1 for r in answered if r.get("ok"))
    row.client_failed = len(answered) - row.client_ok
    return row


def _tls_row(row: ModeResult, pcap: Path, server_capture, server_ports) -> None:
    """A TLS mode's handshakes from the capture's payloads: per connection and summed up. A
    TLS connection's first request is its first application data, not its ClientHello."""
    conns = tls_reading.read_tls(pcap, server_capture, server_ports)
    by_stream = {c.stream: c for c in conns}
    for conn in row.per_connection:
        found = by_stream.get(conn.stream)
        if found is None:
            continue
        conn.tls = TlsConnectionResult.from_dict(found.to_dict())
        conn.t_first_client_byte = found.first_data_ts["client"]
    row.tls = TlsModeResult.from_dict(tls_reading.summarize(conns))
    if (pcap.parent / TLS_KEYLOG).exists():
        row.tls.keylog = TLS_KEYLOG


def _mode_row(scenario, mode, m, run_dir: Path, records: list[dict]) -> ModeResult:
    """One repeat of one mode: the capture's figures and what the runner knew."""
    tls = bool(scenario.tls_of(mode))
    row = analyze_mode_folder(m.folder, (scenario.port_of(mode),), records, tls=tls)
    if row.tls is not None:
        row.tls.keylog = str(m.folder.relative_to(run_dir) / TLS_KEYLOG) if row.tls.keylog else None
    if mode.client == "browser":
        browser_row(row, m.folder, f"server:{scenario.port_of(mode)}")
    row.name = mode.name
    row.folder = str(m.folder.relative_to(run_dir))
    row.client_exit = m.client_exit
    row.error = m.client_error
    row.shaping = m.shaping
    row.capture_drops = m.capture_drops
    _fault_account(row, m, records)
    return row


def analyze_run(scenario, mode_runs, run_dir: Path) -> RunResult:
    """analysis.json: per mode, the capture's figures next to the model's prediction.

    With repeats, a mode's row is the repeat with the median page time, and `repeats` lists
    every repeat's page time so the spread is visible.
    """
    by_mode: dict[str, list] = {}
    for m in mode_runs:
        by_mode.setdefault(m.mode, []).append(m)
    modes_out: dict[str, ModeResult] = {}
    records: dict[str, list[dict]] = {}  # client.jsonl of each row's folder, read once
    for name, runs in by_mode.items():
        mode = scenario.mode(name)
        rows = []
        for m in runs:
            logged = read_jsonl(m.folder / "client.jsonl")
            rows.append(_mode_row(scenario, mode, m, run_dir, logged))
            records[rows[-1].folder] = logged
        timed = sorted((r for r in rows if r.page_time_s is not None), key=_page_time)
        chosen = timed[(len(timed) - 1) // 2] if timed else rows[0]
        chosen.persistent = mode.persistent
        chosen.parallel = mode.parallel
        chosen.pipeline = mode.pipeline
        if len(rows) > 1:
            chosen.repeats = [r.page_time_s for r in rows]
        modes_out[name] = chosen

    base_rtt_ms = _base_rtt_ms(scenario, mode_runs, modes_out.values())
    _predict(scenario, modes_out, base_rtt_ms / 1000.0, records)
    result = RunResult(
        scenario=scenario.to_dict(),
        network=_network_check(scenario, list(modes_out.values()), base_rtt_ms),
        modes=modes_out,
        faults=[{"mode": m.mode, "repeat": m.repeat, **f} for m in mode_runs for f in m.faults],
        complete=not any(r.incomplete for r in modes_out.values()),
        run_dir=run_dir,
    )
    result.claims = claims.check_claims(result)
    return result


def path_segment_size(rows) -> int | None:
    """The payload of a full segment on this run's path, for the model, when it is smaller
    than the Ethernet default the model assumes; None keeps the default.

    From the MSS the handshakes announced (1460 on Ethernet, 1410 on a Swarm overlay's
    1450-byte MTU), less the 12 bytes of TCP timestamps every Linux segment carries: the model's
    1448 on Ethernet, 1398 on the overlay. (Not from the segments' sizes: a capture on the
    sending host sees GSO super-segments.)"""
    announced = [c.syn_mss for r in rows for c in r.per_connection if c.syn_mss]
    if not announced:
        return None
    size = int(statistics.median(announced)) - (ETHERNET_MSS - model.MSS)
    return size if 0 < size < model.MSS else None


def _predict(
    scenario, modes_out: dict[str, ModeResult], base_rtt_s: float, records: dict[str, list[dict]]
) -> None:
    """The model's figure for each mode, on the capture's clock (Prediction.at_server_s), with
    the round trip the run's handshakes measured: the network alone, then with the programs'
    costs measured on the same mode (lab.costs)."""
    # The median of every handshake of the run, as the RTT check takes it: a mode with one
    # connection has one handshake, and one late wake-up of the shaper must not decide it.
    handshakes = [
        c.handshake_rtt_ms / 1000.0
        for r in modes_out.values()
        for c in r.per_connection
        if c.handshake_rtt_ms is not None
    ]
    rtt = statistics.median(handshakes) if handshakes else None
    rtts = {name: rtt for name in modes_out} if rtt is not None else None
    mss = path_segment_size(modes_out.values())
    network_only = model.predict_scenario(scenario, base_rtt_s=base_rtt_s, rtts=rtts, mss=mss)
    measured = {}
    for row in modes_out.values():
        alone = network_only.get(row.name)
        if alone is None or row.folder is None or row.client == "browser":
            continue
        mode = scenario.mode(row.name)
        tls = model.tls_cost(scenario, mode)
        # TLS: the round trips before a new connection's request; resuming keep-alive
        # connections open one at first, the others after its first response (lab.model)
        tls_rtts = tls.round_trips(False) if tls else 0
        at_once = 1 if tls and tls.resume and mode.persistent else mode.parallel
        measured[row.name] = costs.measure(
            records[row.folder],
            row.per_connection,
            persistent=mode.persistent,
            parallel=at_once,
            pipeline=model.pipelined(scenario, mode),
            model_rtt_s=alone.rtt_s,
            model_handshake_s=alone.rtt_s
            * (model.handshake_round_trips(scenario, mode) + tls_rtts),
            server_hold_s=model.server_hold_s(scenario),
            model_latency_s={r.index: r.done_s - r.start_s for r in alone.requests},
        )
    predictions = model.predict_scenario(
        scenario, base_rtt_s, costs={n: m.costs for n, m in measured.items()}, rtts=rtts, mss=mss
    )
    for row in modes_out.values():
        prediction = predictions.get(row.name)
        if prediction is None or row.client == "browser":  # the model is of the lab's client
            continue
        row.predicted_page_time_s = prediction.at_server_s
        row.prediction = prediction.as_dict()
        row.predicted_network_only_s = network_only[row.name].at_server_s
        if row.name in measured:
            row.program_costs = costs.as_result(measured[row.name])
        if row.page_time_s:
            row.prediction_error_pct = model.error_percent(prediction.at_server_s, row.page_time_s)
        if row.prediction_error_pct is not None:
            band = costs.band_pct(prediction.at_server_s, row.predicted_network_only_s)
            row.prediction_band_pct = band
            parallel = scenario.mode(row.name).parallel
            row.prediction_note = costs.explain(row, list(modes_out.values()), parallel, band)


def _page_time(row: ModeResult) -> float:
    return row.page_time_s or 0.0


def _base_rtt_ms(scenario, mode_runs, rows) -> float:
    """The model's RTT is the configured delay plus the bridge's own round trip. Shaped runs
    probe the latter on an unshaped port (runner.probe_base_rtt); unshaped runs measure it."""
    if scenario.network.rtt:
        probes = [(m.shaping or {}).get("base_rtt_ms") for m in mode_runs]
        probes = [p for p in probes if p is not None]
        return statistics.median(probes) if probes else 0.0
    rtts = [r.rtt_ms for r in rows if r.rtt_ms is not None]
    return statistics.median(rtts) if rtts else 0.0


def _fault_account(row: ModeResult, m, records: list[dict]) -> None:
    """A mode disturbed on purpose, or whose capture ended early, says so in its row."""
    reasons = list(m.incomplete or [])
    if row.truncated:
        reasons.append("the capture file ends mid-record (tcpdump was killed while writing)")
    if row.missing:
        reasons.append(f"no {row.missing} was recorded")
    row.incomplete = reasons
    if m.faults:
        row.faults = m.faults
        figures = {k: getattr(row, k) for k in faults.CAPTURE_KEYS}
        row.fault_account = faults.account(m.faults, records, figures)
        row.fault_summary = faults.summary_line(m.mode, m.faults, row.fault_account)


def _network_check(
    scenario, modes_out: list[ModeResult], base_rtt_ms: float
) -> NetworkCheck | None:
    """Did the configured conditions take effect? The handshake RTT says (10% or 2 ms)."""
    net = scenario.network
    if not net.shaped:
        return None
    methods = sorted({(m.shaping or {}).get("method", "unknown") for m in modes_out})
    out = NetworkCheck(
        rtt_ms=net.rtt,
        jitter_ms=net.jitter,
        loss_pct=net.loss,
        rate_bps=net.rate,
        method=",".join(methods),
        base_rtt_ms=base_rtt_ms,
    )
    if net.rtt:
        # The verdict is on the median of every handshake of the run: a mode with one connection
        # has one handshake, and one late wake-up of the shaper must not decide the run.
        expected = net.rtt + base_rtt_ms
        tolerance = max(0.1 * expected, 2.0)
        # The lab client's handshakes when there are any: Chromium's start-up takes the CPU
        # from the client's userspace shaper on a small machine and its handshakes come late
        # (10-15 ms on 2 cores): the browser host's load, not the network condition.
        judged = [m for m in modes_out if m.client != "browser"] or modes_out
        rtts = [
            c.handshake_rtt_ms
            for m in judged
            for c in m.per_connection
            if c.handshake_rtt_ms is not None
        ]
        measured = statistics.median(rtts) if rtts else None

        def ok(ms: float | None) -> bool:
            return ms is not None and abs(ms - expected) <= tolerance

        out.rtt_check = RttCheck(
            expected_ms=expected,
            tolerance_ms=tolerance,
            measured_ms=measured,
            handshakes=len(rtts),
            modes=[
                {"mode": m.name, "measured_ms": m.rtt_ms, "ok": ok(m.rtt_ms)}
                | ({} if any(m is j for j in judged) else {"judged": False})
                for m in modes_out
            ],
            ok=ok(measured),
        )
    return out


def verify(result: RunResult) -> list[str]:
    """Reasons the run must fail although every client succeeded (empty when all is well)."""
    problems = []
    check = result.network.rtt_check if result.network else None
    if check and not check.ok:
        measured = "nothing" if check.measured_ms is None else f"{check.measured_ms:.1f} ms"
        problems.append(
            f"the network condition did not take effect: median handshake RTT {measured} over "
            f"{check.handshakes} handshakes, expected {check.expected_ms:.1f} ± "
            f"{check.tolerance_ms:.1f} ms"
        )
    for m in result.modes.values():
        if m.capture_drops:
            problems.append(
                f"{m.name}: tcpdump lost {m.capture_drops} packets (dropped by the kernel): "
                "the counts from this capture are incomplete; run again on a quieter machine"
            )
        if m.missing:
            problems.append(f"{m.name}: no {m.missing} was recorded")
        if any(f.get("fired") for f in m.faults) and m.fault_summary:
            problems.append(m.fault_summary)  # a disturbed run is never a clean measurement
    return problems


def analyze_folder(run_dir: Path) -> RunResult:
    """analysis.json for a run folder from its saved artifacts (a run cut short, or re-analysis).

    What the runner knew and the folder does not keep (exit codes, shaping, tcpdump's drop
    count) comes from manifest.json when it exists; a mode never run is left out.
    """
    scenario = load_scenario(run_dir / "scenario.yaml")
    manifest_path = run_dir / "manifest.json"
    manifest = Manifest.read(manifest_path) if manifest_path.exists() else None
    mode_runs = []
    for mode in scenario.modes:
        for repeat in range(1, scenario.repeats + 1):
            folder = run_dir / mode.name
            if scenario.repeats > 1:
                folder = folder / f"repeat-{repeat}"
            if not (folder / "capture.pcap").exists():
                continue
            known = (manifest.mode_record(mode.name, repeat) if manifest else None) or ModeRecord()
            mode_runs.append(
                ModeRun(
                    mode=mode.name,
                    repeat=repeat,
                    folder=folder,
                    client_exit=known.client_exit,
                    client_error=known.error,
                    shaping=known.shaping,
                    capture_drops=known.capture_drops,
                    faults=known.faults,
                    incomplete=known.incomplete,
                )
            )
    result = analyze_run(scenario, mode_runs, run_dir)
    result.manifest = manifest
    return result
