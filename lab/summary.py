"""The terminal view of a run: the modes side by side, the article's claims, where the time went.

`print_summary(analysis, console)` after `lab run` and `lab report`; `print_comparison(a, b,
console)` for `lab compare`. Both only read the analysis dict (rich renders it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lab.claims import check_claims, mode_parallel, verdict

VERDICT_STYLE = {"holds": "bold green", "differs": "bold red", "can't tell": "bold yellow"}
VERDICT_MARK = {"holds": "✓ holds", "differs": "✗ differs", "can't tell": "? can't tell"}


def _num(v: Any, digits: int = 1) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, Mapping):
        return ", ".join(f"{k.replace('_', ' ')} {_num(x, digits)}" for k, x in v.items())
    return str(v)


def _ms(seconds: Any) -> float | None:
    return seconds * 1000 if isinstance(seconds, (int, float)) else None


def _overhead(m: Mapping) -> float | None:
    """Share of packets that carried no data: lab.analysis' figure, else handshake+teardown."""
    if isinstance(m.get("overhead_share"), (int, float)):
        return m["overhead_share"]
    packets = m.get("packets")
    if not packets:
        return None
    return ((m.get("handshake_packets") or 0) + (m.get("teardown_packets") or 0)) / packets


def error_pct(m: Mapping) -> float | None:
    if isinstance(m.get("prediction_error_pct"), (int, float)):
        return m["prediction_error_pct"]
    measured, predicted = m.get("page_time_s"), m.get("predicted_page_time_s")
    if not isinstance(measured, (int, float)) or not isinstance(predicted, (int, float)):
        return None
    return (measured - predicted) / predicted * 100 if predicted else None


def _pct(v: float | None, signed: bool = False) -> str:
    if v is None:
        return "–"
    return f"{v:+.1f}%" if signed else f"{v:.0%}"


def _repeats(values: Any) -> str:
    if not values:
        return "–"
    return " ".join("–" if v is None else f"{v * 1000:.0f}" for v in values)


# (row label, value getter, formatter); value getters take (analysis, mode)
METRICS: list[tuple[str, Callable[[dict, dict], Any], Callable[[Any], str]]] = [
    ("persistent", lambda a, m: m.get("persistent"), _num),
    ("parallel connections", lambda a, m: mode_parallel(a, m), _num),
    ("TCP connections", lambda a, m: m.get("connections"), _num),
    ("SYNs", lambda a, m: m.get("syn"), _num),
    ("handshake packets", lambda a, m: m.get("handshake_packets"), _num),
    ("teardown packets", lambda a, m: m.get("teardown_packets"), _num),
    ("all packets", lambda a, m: m.get("packets"), _num),
    ("overhead share (no data)", lambda a, m: _overhead(m), _pct),
    ("first FIN sent by", lambda a, m: m.get("closed_first") or None, _num),
    ("bytes on the wire", lambda a, m: m.get("bytes"), _num),
    ("retransmissions", lambda a, m: m.get("retransmissions"), _num),
    ("handshake RTT (ms, median)", lambda a, m: m.get("rtt_ms"), lambda v: _num(v, 2)),
    ("waiting on handshakes (ms)", lambda a, m: _ms(m.get("handshake_wait_wall_s")), _num),
    ("request latency p50 (ms)", lambda a, m: m.get("latency_p50_ms"), _num),
    ("request latency p95 (ms)", lambda a, m: m.get("latency_p95_ms"), _num),
    ("page time (ms)", lambda a, m: _ms(m.get("page_time_s")), _num),
    ("page time, every repeat (ms)", lambda a, m: m.get("repeats") or None, _repeats),
    ("predicted (ms)", lambda a, m: _ms(m.get("predicted_page_time_s")), _num),
    ("error vs model", lambda a, m: error_pct(m), lambda v: _pct(v, signed=True)),
]


def modes_table(analysis: dict, title: str = "The modes side by side"):
    from rich.table import Table

    modes = analysis.get("modes") or []
    table = Table(title=title, title_justify="left", title_style="bold")
    table.add_column("")
    for m in modes:
        table.add_column(m["name"], justify="right", style="cyan" if m.get("persistent") else "")
    for label, get, show in METRICS:
        values = [get(analysis, m) for m in modes]
        if all(v is None for v in values):
            continue
        table.add_row(label, *(show(v) for v in values))
    return table


def claims_table(claims: list[dict]):
    from rich.table import Table

    table = Table(title="The article's claims, checked", title_justify="left", title_style="bold")
    table.add_column("verdict", no_wrap=True)
    table.add_column("claim (mode)", ratio=2)
    table.add_column("observed / expected", ratio=2)
    table.add_column("why", ratio=4)
    for c in claims:
        v = verdict(c.get("holds"))
        table.add_row(
            f"[{VERDICT_STYLE[v]}]{VERDICT_MARK[v]}[/]",
            f"{c['claim']} [dim]({c.get('mode') or 'all'})[/]",
            f"{_num(c.get('observed'))} / {_num(c.get('expected'))}",
            c.get("why") or "",
        )
    return table


def print_summary(analysis: dict, console, *, timings: Mapping[str, float] | None = None) -> None:
    """Modes side by side, the claims, the network check and where the run's time went.

    `timings` (phase -> seconds) defaults to `analysis["timings_s"]` when present.
    """
    console.print(modes_table(analysis))
    claims = analysis.get("claims") or check_claims(analysis)
    if claims:
        console.print(claims_table(claims))
    for label, value in network_rows(analysis.get("network")):
        style = "red" if "NOT" in value else ""
        console.print(f"[bold]{label}:[/] " + (f"[{style}]{value}[/]" if style else value))
    for m in analysis.get("modes", []):  # lab.faults' one-line account; a capture cut short
        if m.get("fault_summary"):
            console.print(f"[bold red]fault:[/] {m['fault_summary']}")
        if m.get("incomplete"):
            console.print(f"[bold red]incomplete:[/] {m.get('name')}: {'; '.join(m['incomplete'])}")
    timings = timings or analysis.get("timings_s")
    if timings:
        console.print("[bold]Where the time went:[/] " + where_the_time_went(timings))


def network_rows(net: Mapping | None) -> list[tuple[str, str]]:
    """The network conditions, how they were made and the capture's check that they took."""
    if not net:
        return []
    conditions = []
    if net.get("rtt_ms"):
        conditions.append(f"RTT +{net['rtt_ms']:g} ms")
    if net.get("jitter_ms"):
        conditions.append(f"jitter {net['jitter_ms']:g} ms")
    if net.get("loss_pct"):
        conditions.append(f"loss {net['loss_pct']:g}%")
    if net.get("rate_bps"):
        conditions.append(f"rate {net['rate_bps'] / 1e6:g} Mbit/s")
    rows = [("network conditions", ", ".join(conditions) or "none")]
    if net.get("method"):
        rows.append(("shaping method", str(net["method"])))
    if isinstance(net.get("base_rtt_ms"), (int, float)):
        rows.append(("bridge's own RTT", f"{net['base_rtt_ms']:.2f} ms"))
    check = net.get("rtt_check")
    if check:
        verdicts = "; ".join(
            f"{v['mode']} {_num(v.get('measured_ms'), 2)} ms " + ("✓" if v.get("ok") else "✗")
            for v in check.get("modes") or []
        )
        ok = "verified" if check.get("ok") else "NOT verified"
        rows.append(
            (
                "handshake RTT check",
                f"{ok}: expected {check['expected_ms']:.2f} ± {check['tolerance_ms']:.2f} ms; "
                f"measured {verdicts}",
            )
        )
    known = {"rtt_ms", "jitter_ms", "loss_pct", "rate_bps", "method", "base_rtt_ms", "rtt_check"}
    rows += [(k.replace("_", " "), _num(v, 2)) for k, v in net.items() if k not in known]
    return rows


def where_the_time_went(timings: Mapping[str, float]) -> str:
    phases = {k: v for k, v in timings.items() if isinstance(v, (int, float)) and k != "total"}
    total = timings.get("total") or sum(phases.values())
    parts = [f"{k} {v:.2f} s" for k, v in sorted(phases.items(), key=lambda kv: -kv[1])]
    return ", ".join(parts) + f" (total {total:.2f} s)"


# --- two runs side by side ----------------------------------------------------------------------


def comparison_rows(a: dict, b: dict) -> list[tuple[str, str, str, str, str]]:
    """(mode, metric, A, B, change) for every mode in either run and every numeric metric."""
    rows = []
    modes_a = {m["name"]: m for m in a.get("modes") or []}
    modes_b = {m["name"]: m for m in b.get("modes") or []}
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


def print_comparison(a: dict, b: dict, console, names: tuple[str, str] = ("A", "B")) -> None:
    from rich.table import Table

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
    ca = {(c.get("id", c["claim"]), c.get("mode")): c for c in a.get("claims") or check_claims(a)}
    cb = {(c.get("id", c["claim"]), c.get("mode")): c for c in b.get("claims") or check_claims(b)}
    changed = [
        (key, ca.get(key), cb.get(key))
        for key in list(ca) + [k for k in cb if k not in ca]
        if verdict((ca.get(key) or {}).get("holds")) != verdict((cb.get(key) or {}).get("holds"))
    ]
    for (_, mode), ca_c, cb_c in changed:
        text = (ca_c or cb_c)["claim"]
        va = verdict(ca_c["holds"]) if ca_c else "absent"
        vb = verdict(cb_c["holds"]) if cb_c else "absent"
        console.print(f"claim [bold]{text}[/] ({mode}): {va} in {names[0]}, {vb} in {names[1]}")
    if not changed:
        console.print("Every claim has the same verdict in both runs.")
