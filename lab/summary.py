"""The terminal view of a run: the modes side by side, the article's claims, where the time went.

`print_summary(result, console)` after `lab run` and `lab report`; `print_comparison(a, b,
console)` for `lab compare`. Both only read the run document (`lab.document.RunResult`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rich.table import Table

from lab.claims import check_claims
from lab.document import Claim, Manifest, ModeResult, NetworkCheck, RunResult

VERDICT_STYLE = {"holds": "bold green", "differs": "bold red", "can't tell": "bold yellow"}
VERDICT_MARK = {"holds": "✓ holds", "differs": "✗ differs", "can't tell": "? can't tell"}


def fmt(v: Any, digits: int = 1) -> str:
    """A value as the terminal and the report show it: – for none, thousands separated."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, Mapping):
        return ", ".join(f"{k.replace('_', ' ')} {fmt(x, digits)}" for k, x in v.items())
    return str(v)


def ms(seconds: Any) -> float | None:
    return seconds * 1000 if isinstance(seconds, (int, float)) else None


def error_pct(m: ModeResult) -> float | None:
    """The model's error on this mode, in percent of the prediction."""
    if m.prediction_error_pct is not None:
        return m.prediction_error_pct
    measured, predicted = m.page_time_s, m.predicted_page_time_s
    if measured is None or not predicted:
        return None
    return (measured - predicted) / predicted * 100


def error_cell(m: ModeResult) -> float | str | None:
    """The model's error, or words when the mode is outside the model's band (the note says
    why: lab.costs.explain; inside it, a note is a caution and the percentage stays)."""
    error = error_pct(m)
    band = m.prediction_band_pct
    if m.prediction_note and band is not None and (error is None or abs(error) > band):
        return f"outside ±{band:.0f}%"
    return error


def _error(v: float | str | None) -> str:
    return v if isinstance(v, str) else _pct(v, signed=True)


def _pct(v: float | None, signed: bool = False) -> str:
    if v is None:
        return "–"
    return f"{v:+.1f}%" if signed else f"{v:.0%}"


def _repeats(values: Any) -> str:
    if not values:
        return "–"
    return " ".join("–" if v is None else f"{v * 1000:.0f}" for v in values)


# (row label, value getter, formatter); value getters take (run, mode)
METRICS: list[tuple[str, Callable[[RunResult, ModeResult], Any], Callable[[Any], str]]] = [
    ("persistent", lambda r, m: m.persistent, fmt),
    ("parallel connections", lambda r, m: r.parallel(m), fmt),
    ("TCP connections", lambda r, m: m.connections, fmt),
    ("SYNs", lambda r, m: m.syn, fmt),
    ("handshake packets", lambda r, m: m.handshake_packets, fmt),
    ("teardown packets", lambda r, m: m.teardown_packets, fmt),
    ("all packets", lambda r, m: m.packets, fmt),
    ("overhead share (no data)", lambda r, m: m.overhead_share, _pct),
    ("first FIN sent by", lambda r, m: m.closed_first or None, fmt),
    ("bytes on the wire", lambda r, m: m.bytes, fmt),
    # what the sender sent again, whatever Wireshark names it (older files: Wireshark's count)
    ("data segments resent", lambda r, m: m.data_resends, fmt),
    ("handshake RTT (ms, median)", lambda r, m: m.rtt_ms, lambda v: fmt(v, 2)),
    ("waiting on handshakes (ms)", lambda r, m: ms(m.handshake_wait_wall_s), fmt),
    ("request latency p50 (ms)", lambda r, m: m.latency_p50_ms, fmt),
    ("request latency p95 (ms)", lambda r, m: m.latency_p95_ms, fmt),
    ("page time (ms)", lambda r, m: ms(m.page_time_s), fmt),
    ("page time, every repeat (ms)", lambda r, m: m.repeats or None, _repeats),
    # a browser's own figure: its load event (Navigation Timing), before any favicon
    (
        "browser's load event (ms from navigation)",
        lambda r, m: (m.browser or {}).get("load_event_ms"),
        fmt,
    ),
    ("predicted, network alone (ms)", lambda r, m: ms(m.predicted_network_only_s), fmt),
    ("predicted (ms)", lambda r, m: ms(m.predicted_page_time_s), fmt),
    ("error vs model", lambda r, m: error_cell(m), _error),
]


def modes_table(run: RunResult, title: str = "The modes side by side") -> Table:
    modes = list(run.modes.values())
    table = Table(title=title, title_justify="left", title_style="bold")
    table.add_column("")
    for m in modes:
        table.add_column(m.name, justify="right", style="cyan" if m.persistent else "")
    for label, get, show in METRICS:
        values = [get(run, m) for m in modes]
        if all(v is None for v in values):
            continue
        table.add_row(label, *(show(v) for v in values))
    return table


def claims_table(claims: list[Claim]) -> Table:
    table = Table(title="The article's claims, checked", title_justify="left", title_style="bold")
    table.add_column("verdict", no_wrap=True)
    table.add_column("claim (mode)", ratio=2)
    table.add_column("observed / expected", ratio=2)
    table.add_column("why", ratio=4)
    for c in claims:
        v = c.verdict
        table.add_row(
            f"[{VERDICT_STYLE[v]}]{VERDICT_MARK[v]}[/]",
            f"{c.claim} [dim]({c.mode or 'all'})[/]",
            f"{fmt(c.observed)} / {fmt(c.expected)}",
            c.why,
        )
    return table


def print_summary(run: RunResult, console, *, timings: Mapping[str, float] | None = None) -> None:
    """Modes side by side, the claims, the network check and where the run's time went.

    `timings` (phase -> seconds) defaults to the manifest's `timings_s`.
    """
    console.print(modes_table(run))
    claims = run.claims or check_claims(run)  # a document made before (or without) claims
    if claims:
        console.print(claims_table(claims))
    for label, value in network_rows(run.network):
        style = "red" if "NOT" in value else ""
        console.print(f"[bold]{label}:[/] " + (f"[{style}]{value}[/]" if style else value))
    for m in run.modes.values():  # why the model is off, where it is outside its band
        if m.prediction_note:
            console.print(f"[bold]model, {m.name}:[/] {m.prediction_note}")
    for m in run.modes.values():  # lab.faults' one-line account; a capture cut short
        if m.fault_summary:
            console.print(f"[bold red]fault:[/] {m.fault_summary}")
        if m.incomplete:
            console.print(f"[bold red]incomplete:[/] {m.name}: {'; '.join(m.incomplete)}")
    if run.manifest is not None and run.manifest.path is not None:  # two engines or captures
        for label, value in where_it_ran(run.manifest) + one_way_delays(run):
            console.print(f"[bold]{label}:[/] {value}")
    timings = timings or (run.manifest.timings_s if run.manifest else None)
    if timings:
        console.print("[bold]Where the time went:[/] " + where_the_time_went(timings))


def network_rows(net: NetworkCheck | None) -> list[tuple[str, str]]:
    """The network conditions, how they were made and the capture's check that they took."""
    if net is None:
        return []
    conditions = []
    if net.rtt_ms:
        conditions.append(f"RTT +{net.rtt_ms:g} ms")
    if net.jitter_ms:
        conditions.append(f"jitter {net.jitter_ms:g} ms")
    if net.loss_pct:
        conditions.append(f"loss {net.loss_pct:g}%")
    if net.rate_bps:
        conditions.append(f"rate {net.rate_bps / 1e6:g} Mbit/s")
    rows = [("network conditions", ", ".join(conditions) or "none")]
    if net.method:
        rows.append(("shaping method", net.method))
    if net.base_rtt_ms is not None:
        rows.append(("the path's own RTT (unshaped)", f"{net.base_rtt_ms:.2f} ms"))
    check = net.rtt_check
    if check:
        verdicts = "; ".join(
            f"{v['mode']} {fmt(v.get('measured_ms'), 2)} ms "
            + ("✓" if v.get("ok") else "✗")
            # a browser mode beside the lab's client is shown, not judged (lab.results)
            + ("" if v.get("judged", True) else " (browser, not judged)")
            for v in check.modes
        )
        ok = "verified" if check.ok else "NOT verified"
        rows.append(
            (
                "handshake RTT check",
                f"{ok}: expected {check.expected_ms:.2f} ± {check.tolerance_ms:.2f} ms; "
                f"measured {verdicts}",
            )
        )
    return rows


def where_the_time_went(timings: Mapping[str, float]) -> str:
    phases = {k: v for k, v in timings.items() if isinstance(v, (int, float)) and k != "total"}
    total = timings.get("total") or sum(phases.values())
    parts = [f"{k} {v:.2f} s" for k, v in sorted(phases.items(), key=lambda kv: -kv[1])]
    return ", ".join(parts) + f" (total {total:.2f} s)"


# --- two runs side by side ----------------------------------------------------------------------


def comparison_rows(a: RunResult, b: RunResult) -> list[tuple[str, str, str, str, str]]:
    """(mode, metric, A, B, change) for every mode in either run and every numeric metric."""
    rows = []
    modes_a, modes_b = a.modes, b.modes
    names = list(modes_a) + [n for n in modes_b if n not in modes_a]
    for name in names:
        ma, mb = modes_a.get(name), modes_b.get(name)
        for label, get, show in METRICS:
            va = get(a, ma) if ma else None
            vb = get(b, mb) if mb else None
            if va is None and vb is None:
                continue
            change = ""
            both = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (va, vb))
            if label in ("first FIN sent by", "page time, every repeat (ms)"):
                both = False
            if both and va != vb and label not in ("error vs model", "overhead share (no data)"):
                change = _pct((vb - va) / va * 100, signed=True) if va else ""
            rows.append((name, label, show(va), show(vb), change))
    return rows


def print_comparison(
    a: RunResult, b: RunResult, console, names: tuple[str, str] = ("A", "B")
) -> None:
    where = where_rows(a, b)
    if where:
        places = Table(title="Where each ran", title_justify="left", title_style="bold")
        for col in ("", names[0], names[1]):
            places.add_column(col, overflow="fold")
        for row in where:
            places.add_row(*row)
        console.print(places)
    table = Table(title="Two runs side by side", title_justify="left", title_style="bold")
    for col, justify in (("mode", "left"), ("metric", "left"), (names[0], "right"),
                         (names[1], "right"), ("B vs A", "right")):  # fmt: skip
        table.add_column(col, justify=justify, overflow="fold")
    last = None
    for mode, *rest in comparison_rows(a, b):
        if last is not None and mode != last:
            table.add_section()
        table.add_row(mode if mode != last else "", *rest)
        last = mode
    console.print(table)
    ca = {(c.id, c.mode): c for c in a.claims}
    cb = {(c.id, c.mode): c for c in b.claims}

    def shown(c: Claim | None) -> str:
        return c.verdict if c else "absent"

    changed = [
        (key, ca.get(key), cb.get(key))
        for key in list(ca) + [k for k in cb if k not in ca]
        if shown(ca.get(key)) != shown(cb.get(key))
    ]
    for (_, mode), ca_c, cb_c in changed:
        text = (ca_c or cb_c).claim
        va, vb = shown(ca_c), shown(cb_c)
        console.print(f"claim [bold]{text}[/] ({mode}): {va} in {names[0]}, {vb} in {names[1]}")
    if not changed:
        console.print("Every claim has the same verdict in both runs.")


def where_rows(a: RunResult, b: RunResult) -> list[tuple[str, str, str]]:
    """Where two runs ran, fact by fact (a one-engine run against a two-engine run of the same
    scenario, say); nothing when neither folder has its manifest."""
    if a.manifest is None and b.manifest is None:
        return []

    def facts(run: RunResult) -> dict[str, str]:
        if run.manifest is None:
            return {}
        found = dict(where_it_ran(run.manifest))
        if run.manifest.path is None and run.manifest.engines:
            found["path"] = "bridge (one engine)"
        return found

    fa, fb = facts(a), facts(b)
    labels = list(fa) + [k for k in fb if k not in fa]
    return [(label, fa.get(label, "-"), fb.get(label, "-")) for label in labels]


def one_way_delays(run: RunResult) -> list[tuple[str, str]]:
    """Each mode captured on both ends: the one-way delays between the two capture points
    (analysis.json's `clock`), medians with the fastest packet in brackets."""
    facts = []
    for name, m in run.modes.items():
        c = m.clock
        if c is None:
            continue
        parts = [
            f"{label} {w.median_ms:.3f} ms (fastest {w.min_ms:.3f}, {w.packets} packets)"
            for label, key in (
                ("client->server", "client_to_server"),
                ("server->client", "server_to_client"),
            )
            if (w := c.one_way.get(key)) is not None and w.median_ms is not None
        ]
        facts.append((f"one-way delays, {name}", "; ".join(parts)))
    return facts


def where_it_ran(m: Manifest) -> list[tuple[str, str]]:
    """Each side's engine, and on two engines the path between them (manifest.json's
    `engines` and `path`)."""
    facts = []
    for side, e in m.engines.items():
        what = ", ".join(x for x in (f"Docker {e.engine}" if e.engine else "", e.kernel or "") if x)
        swarm = " (Swarm manager)" if e.manager else ""
        facts.append((f"{side} side ran on", f"{e.url}{swarm}" + (f": {what}" if what else "")))
    p = m.path
    if p is not None:
        parts = [p.network_driver]
        if p.mtu:
            parts.append(f"MTU {p.mtu}")
        if p.syn_mss:
            parts.append(f"MSS {p.syn_mss} announced")
        if p.base_rtt_ms is not None:
            parts.append(f"base RTT {p.base_rtt_ms:.2f} ms before shaping")
        facts.append(("path", ", ".join(parts)))
        if p.clock_offset_ms is not None:
            facts.append((
                "clocks",
                f"the server's clock is {p.clock_offset_ms:+.3f} ms from the client's "
                f"(+-{p.clock_bound_ms:.3f} ms; captured on both ends)",
            ))  # fmt: skip
    return facts
