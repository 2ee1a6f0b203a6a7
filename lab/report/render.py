"""The report's text: tables shared by both renderers, `render_markdown` and `render_html`.

Pure: a `ReportData` (lab.report.data) and the charts' inline SVGs in, text out. Every number
comes from analysis.json (and manifest.json for the run's facts); nothing is recomputed.
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING

from lab.document import Claim, RunResult
from lab.summary import METRICS, error_cell, fmt, ms, one_way_delays, where_it_ran
from lab.summary import network_rows as summary_network_rows

if TYPE_CHECKING:
    from lab.report.data import ReportData

CHART_FILES = {
    "waterfall": "waterfall.png",
    "categories": "packets-per-category.png",
    "ladder": "ladder.png",
    "stevens": "slow-start-stevens.png",
    "requests": "requests-waterfall.png",
}
CHART_CAPTIONS = {
    "requests": "Every request of each mode, as a browser's network panel shows it: a browser "
    "mode's rows come from Chromium's own net-log, the lab client's from its log; each row "
    "says which TCP stream (Wireshark's tcp.stream) carried it and whether that connection had "
    "carried a request before. Queued is the wait for a connection (the browser's 6 per host "
    "are busy, or the lab's client fetches one at a time), connecting the handshake the "
    "request waited for.",
    "waterfall": "Connections per mode on one time axis, like a browser's network panel: each "
    "row is one TCP stream (Wireshark's tcp.stream number and the client port); orange is the "
    "handshake, grey is waiting for the first byte of a response, blue is receiving it, red is "
    "the teardown.",
    "categories": "Every captured packet of each mode, by what it was for. Handshake and "
    "teardown packets carry no data: they are the cost of opening and closing connections.",
    "ladder": "One real connection, packet by packet: the handshake at the top, the teardown at "
    "the bottom, as the article draws them, but taken from the capture.",
    "stevens": "Sequence number against time for the largest resource (tcptrace's and "
    "Wireshark's Stevens graph). A fresh connection starts in slow start: a few segments, then a "
    "round trip of silence, then twice as many. A warm keep-alive connection has already grown "
    "its window and sends more at once.",
}
HOW_TO_READ = (
    "Each mode of the scenario ran on fresh containers while tcpdump recorded every packet on "
    "the server. The first table puts the modes side by side: connections, SYNs, handshake and "
    "teardown packets, all packets, bytes on the wire, and the page time (first SYN to the last "
    "byte of the last response) against the model's prediction. The claims table checks the "
    "article's statements against those packets: *holds* means the capture shows exactly what "
    "the article says, *differs* gives the observed number and why, *can't tell* means the "
    "capture cannot decide. The charts read on their own; every number comes from the capture. "
    "To check any of it, open the mode's `capture.pcap` in Wireshark: stream numbers here are "
    "Wireshark's `tcp.stream`, so *Follow TCP Stream N* shows the same connection."
)


def mode_rows(run: RunResult) -> tuple[list[str], list[list[str]]]:
    """Metrics as rows, modes as columns (the terminal table's layout and formatting)."""
    modes = list(run.modes.values())
    rows = []
    for label, get, show in METRICS:
        values = [get(run, m) for m in modes]
        if any(v is not None for v in values):
            rows.append([label, *(show(v) for v in values)])
    return ["", *(m.name for m in modes)], rows


def prediction_rows(run: RunResult) -> tuple[list[str], list[list[str]]]:
    """Measured against predicted; a mode outside the model's band says why in words."""
    headers = ["mode", "measured (ms)", "network alone (ms)", "predicted (ms)", "error"]
    notes = any(m.prediction_note for m in run.modes.values())
    if notes:
        headers.append("why")
    rows = []
    for m in run.modes.values():
        err = error_cell(m)
        row = [
            m.name,
            fmt(ms(m.page_time_s)),
            fmt(ms(m.predicted_network_only_s)),
            fmt(ms(m.predicted_page_time_s)),
            err if isinstance(err, str) else f"{err:+.1f}%" if err is not None else "–",
        ]
        rows.append([*row, m.prediction_note or ""] if notes else row)
    return headers, rows


COSTS_INTRO = (
    "On a bridge whose round trip is a few hundredths of a millisecond the page time is the "
    "programs' own work, not the network's. The model adds these times, measured on each mode's "
    "capture and client log (lab/costs.py), to its simulation of the network: opening (first "
    "SYN to the first request of the connections opened at once, beyond the handshake) and "
    "stagger (between their first requests), setup per connection opened later, service per "
    "request (beyond the network's own time for it; the programs take one request at a time), "
    "turnaround per further request on a keep-alive connection, reconnect per further "
    "connection of a non-persistent mode (the previous response's end to the next SYN). A "
    "number after × is how many values the mean came from."
)


def cost_rows(run: RunResult) -> tuple[list[str], list[list[str]]] | None:
    """The programs' measured times per mode (means, ms), as the model used them."""
    measured = [m for m in run.modes.values() if m.program_costs is not None]
    if not measured:
        return None
    kinds = ("opening", "stagger", "setup", "service", "turnaround", "reconnect")
    headers = ["mode", *(f"{k} (ms)" for k in kinds)]
    rows = []
    for m in measured:
        c = m.program_costs
        assert c is not None
        cells = [
            fmt(getattr(c, f"{k}_ms"), 2) + (f" ×{c.samples[k]}" if c.samples.get(k) else "")
            if c.samples.get(k)
            else "–"
            for k in kinds
        ]
        rows.append([m.name, *cells])
    return headers, rows


def claim_rows(claims: list[Claim]) -> tuple[list[str], list[list[str]]]:
    headers = ["claim", "mode", "verdict", "observed", "expected", "why"]
    rows = [
        [c.claim, c.mode or "", c.verdict, fmt(c.observed), fmt(c.expected), c.why] for c in claims
    ]
    return headers, rows


def network_rows(data: ReportData) -> tuple[list[str], list[list[str]]] | None:
    """The configured conditions, the shaping method and the RTT verified from the capture."""
    rows = summary_network_rows(data.analysis.network)
    return (["", "value"], [list(r) for r in rows]) if rows else None


def fault_rows(run: RunResult) -> tuple[list[str], list[list[str]]] | None:
    """Each mode a fault disturbed (lab.faults' account), or whose capture ended early."""
    rows = [
        [m.name, m.fault_summary or "–", "; ".join(m.incomplete)]
        for m in run.modes.values()
        if m.faults or m.incomplete
    ]
    return (["mode", "what happened", "analysis incomplete because"], rows) if rows else None


def timing_rows(data: ReportData) -> tuple[list[str], list[list[str]]] | None:
    timings = data.manifest.timings_s if data.manifest else {}
    if not timings:
        return None
    rows = [[k, f"{v:.2f}"] for k, v in timings.items() if isinstance(v, int | float)]
    return ["phase", "seconds"], rows


# --- renderers (pure) -------------------------------------------------------------------------


CHART_SECTIONS = (
    ("waterfall", "Waterfall"),
    ("requests", "Requests: the browser next to the lab's client"),
    ("categories", "Packets per category"),
    ("ladder", "One connection, packet by packet"),
    ("stevens", "Slow start: fresh vs warm connection"),
)
BROWSER_INTRO = (
    "Headless Chromium loaded the page (the workload's first resource) and whatever it "
    "references. Its net-log says which socket (local port) each request went on; the capture "
    "has the connection with that port. Connections and handshakes are the capture's; requests "
    "and reuse are the browser's own account joined to them."
)


def browser_rows(run: RunResult) -> tuple[list[str], list[list[str]]] | None:
    """A column per browser mode: what the page was, what went on which connection."""
    modes = [m for m in run.modes.values() if m.client == "browser"]
    if not modes:
        return None

    def cell(m, key):
        value = (m.browser or {}).get(key)
        if isinstance(value, list):  # ports: listed, or "none" rather than "[]"
            return ", ".join(str(v) for v in value) or "none"
        return "–" if value is None else str(value)

    def most(m):
        per_host = (m.browser or {}).get("max_parallel_per_host") or {}
        return str(max(per_host.values())) if per_host else "–"

    lines = [
        ("page title (from the DOM)", lambda m: cell(m, "title")),
        ("load event (the page's Navigation Timing, ms)", lambda m: cell(m, "load_event_ms")),
        ("DOMContentLoaded (ms)", lambda m: cell(m, "dom_content_loaded_ms")),
        ("requests on the wire", lambda m: cell(m, "requests")),
        ("loaded (2xx)", lambda m: cell(m, "loaded")),
        ("TCP connections (capture)", lambda m: cell(m, "connections")),
        ("connections that carried no request", lambda m: cell(m, "unused_connections")),
        ("requests on a reused connection", lambda m: cell(m, "reused")),
        ("most connections open at once, per host", most),
        ("handshakes (capture, used connections)", lambda m: cell(m, "complete_handshakes_used")),
        ("net-log ports not in the capture", lambda m: cell(m, "unmatched_ports")),
        ("error", lambda m: cell(m, "error")),
    ]
    rows = [[label, *(get(m) for m in modes)] for label, get in lines]
    rows = [r for r in rows if any(c != "–" for c in r[1:])]
    return ["", *(m.name for m in modes)], rows


TLS_INTRO = (
    "Read from the packets (lab.tls): the TLS record headers are in clear in every version, so "
    "each connection's handshake, from the ClientHello to the client's Finished, its round trips "
    "after TCP's and whether it resumed a session show without decrypting anything. Time to "
    "first byte is split into TCP's handshake, TLS's, and the server's answer (medians). "
    "Certificates are counted apart from data where TLS 1.2 sends them in clear; TLS 1.3 "
    "encrypts them, so there the server's whole handshake flight is shown."
)


def tls_keylog_text(keylogs: list[str]) -> str:
    """How to decrypt the captures: where the key logs are, and the Wireshark / tshark way."""
    files = ", ".join(f"`{k}`" for k in keylogs)
    return (
        f"The TLS key log of each mode ({files}: the SSLKEYLOGFILE format, written by the "
        "client's TLS library: the lab client's OpenSSL, Chromium's BoringSSL) decrypts its "
        "capture: in Wireshark, Preferences > Protocols > TLS > "
        "(Pre)-Master-Secret log filename, then Decode As... TLS on the mode's port (the lab's "
        "ports are not 443); or `tshark -r capture.pcap -o tls.keylog_file:tls-keys.log "
        "-d tcp.port==PORT,tls -Y http`. The run's CA certificate is `tls-ca.pem` (`curl "
        "--cacert tls-ca.pem`); no private key is in the run folder."
    )


def tls_rows(run: RunResult) -> tuple[list[str], list[list[str]]] | None:
    """A column per TLS mode: its handshakes, their round trips and bytes, TTFB's parts."""
    modes = [m for m in run.modes.values() if m.tls is not None]
    if not modes:
        return None

    def ms(value: float | None) -> str:
        return "–" if value is None else f"{value * 1000:.1f} ms"

    def trips(values: list[int]) -> str:
        return ", ".join(str(v) for v in values) or "–"

    def flight(value: float | None) -> str:
        return "–" if value is None else f"{value:,.0f} B"

    lines = [
        ("TLS version", lambda t: ", ".join(t.versions) or "–"),
        ("full handshakes", lambda t: str(t.full_handshakes)),
        ("resumed handshakes", lambda t: str(t.resumed)),
        ("round trips after TCP's, full", lambda t: trips(t.round_trips_full)),
        ("round trips after TCP's, resumed", lambda t: trips(t.round_trips_resumed)),
        (
            "server's handshake bytes, full (median)",
            lambda t: flight(t.server_handshake_bytes_full),
        ),
        (
            "server's handshake bytes, resumed (median)",
            lambda t: flight(t.server_handshake_bytes_resumed),
        ),
        ("certificate bytes in clear (all connections)", lambda t: f"{t.certificate_bytes:,}"),
        ("time to first byte (median)", lambda t: ms(t.ttfb_median_s.get("total_s"))),
        ("  of which TCP handshake", lambda t: ms(t.ttfb_median_s.get("tcp_s"))),
        ("  of which TLS handshake", lambda t: ms(t.ttfb_median_s.get("tls_s"))),
        ("  of which the server's answer", lambda t: ms(t.ttfb_median_s.get("server_s"))),
        ("key log", lambda t: t.keylog or "–"),
        ("problems reading TLS", lambda t: "; ".join(t.problems) or "–"),
    ]
    rows = [[label, *(get(m.tls) for m in modes)] for label, get in lines]
    return ["", *(m.name for m in modes)], rows


def _tls_keylogs(run: RunResult) -> list[str]:
    return [m.tls.keylog for m in run.modes.values() if m.tls is not None and m.tls.keylog]


def _md_table(headers: list[str], rows: list[list[str]]) -> str:
    def cell(s: str) -> str:
        return str(s).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _run_facts(data: ReportData) -> list[tuple[str, str]]:
    m = data.manifest
    if m is None:
        return [("run", data.run_dir.name)]
    facts = [
        ("run", m.run_id or data.run_dir.name),
        ("started", m.started),
        ("ended", m.ended),
        ("command", m.command),
        ("lab version", m.lab_version),
        ("status", m.status),
    ]
    if m.docker:
        facts.append(("docker", fmt(m.docker)))
    if m.host:
        facts.append(("host", fmt(m.host)))
    facts += where_it_ran(m) + one_way_delays(data.analysis)
    return [(k, str(v)) for k, v in facts if v]


def render_markdown(data: ReportData, charts: dict[str, str]) -> str:
    a = data.analysis
    out = [f"# {data.title}", ""]
    desc = a.scenario.get("description")
    if desc:
        out += [str(desc).strip(), ""]
    out += [f"- **{k}**: {v}" for k, v in _run_facts(data)] + [""]
    out += ["## How to read this report", "", HOW_TO_READ, ""]
    out += ["## The modes side by side", "", _md_table(*mode_rows(a)), ""]
    out += ["## The article's claims, checked", "", _md_table(*claim_rows(data.claims)), ""]
    out += ["## Predicted vs measured page time", "", _md_table(*prediction_rows(a)), ""]
    costs = cost_rows(a)
    if costs:
        out += ["### The programs' costs the model used", "", COSTS_INTRO, "", _md_table(*costs)]
        out += [""]
    net = network_rows(data)
    if net:
        out += ["## Network conditions", "", _md_table(*net), ""]
    faults = fault_rows(a)
    if faults:
        out += ["## Faults injected", "", _md_table(*faults), ""]
    tls = tls_rows(a)
    if tls:
        out += ["## TLS handshakes", "", TLS_INTRO, "", _md_table(*tls), ""]
        if _tls_keylogs(a):
            out += [tls_keylog_text(_tls_keylogs(a)), ""]
    browser = browser_rows(a)
    if browser:
        out += ["## The browser", "", BROWSER_INTRO, "", _md_table(*browser), ""]
    for key, title in CHART_SECTIONS:
        if key in charts:
            out += [
                f"## {title}",
                "",
                f"![{title}](charts/{CHART_FILES[key]})",
                "",
                CHART_CAPTIONS[key],
                "",
            ]
    timing = timing_rows(data)
    if timing:
        out += ["## Where the time went", "", _md_table(*timing), ""]
    out += ["## Captures", "", "Each opens in Wireshark (or `python -m lab analyze FILE`):", ""]
    out += [f"- {name}: [{path}]({path})" for name, path in data.pcaps.items()]
    return "\n".join(out) + "\n"


CSS = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f4f5f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
.holds{color:#1b6e1b;font-weight:600}.differs{color:#b3261e;font-weight:600}
.cant{color:#7a6500;font-weight:600}.chart svg{max-width:100%;height:auto}
.caption{color:#555;font-size:.9em;max-width:900px}dl{display:grid;grid-template-columns:
max-content auto;gap:.1em 1em}dt{font-weight:600}dd{margin:0}code{background:#f4f5f7;
padding:0 .2em}
"""


def _html_table(headers: list[str], rows: list[list[str]], verdict_col: int | None = None) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = []
    for r in rows:
        cells = []
        for i, c in enumerate(r):
            cls = ""
            if i == verdict_col:
                cls = {"holds": "holds", "differs": "differs"}.get(c, "cant")
            elif c.startswith("NOT verified"):
                cls = "differs"
            elif re.fullmatch(r"[+\-–]?[\d,.]+%?|–", c):
                cls = "num"
            cells.append(f'<td class="{cls}">{e(c)}</td>' if cls else f"<td>{e(c)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_html(data: ReportData, charts: dict[str, str]) -> str:
    e = html.escape
    a = data.analysis
    parts = [
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{e(data.title)}'
        f"</title><style>{CSS}</style></head><body><h1>{e(data.title)}</h1>"
    ]
    desc = a.scenario.get("description")
    if desc:
        parts.append(f"<p>{e(str(desc).strip())}</p>")
    parts.append(
        "<dl>" + "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in _run_facts(data)) + "</dl>"
    )
    how = re.sub(r"\*([^*]+)\*", r"<em>\1</em>", e(HOW_TO_READ))
    how = re.sub(r"`([^`]+)`", r"<code>\1</code>", how)
    parts.append(f"<h2>How to read this report</h2><p>{how}</p>")
    parts.append("<h2>The modes side by side</h2>" + _html_table(*mode_rows(a)))
    parts.append(
        "<h2>The article's claims, checked</h2>"
        + _html_table(*claim_rows(data.claims), verdict_col=2)
    )
    parts.append("<h2>Predicted vs measured page time</h2>" + _html_table(*prediction_rows(a)))
    costs = cost_rows(a)
    if costs:
        parts.append(
            f"<h3>The programs' costs the model used</h3><p>{e(COSTS_INTRO)}</p>"
            + _html_table(*costs)
        )
    net = network_rows(data)
    if net:
        parts.append("<h2>Network conditions</h2>" + _html_table(*net))
    faults = fault_rows(a)
    if faults:
        parts.append("<h2>Faults injected</h2>" + _html_table(*faults))
    tls = tls_rows(a)
    if tls:
        parts.append(f"<h2>TLS handshakes</h2><p>{e(TLS_INTRO)}</p>" + _html_table(*tls))
        if _tls_keylogs(a):
            text = re.sub(r"`([^`]+)`", r"<code>\1</code>", e(tls_keylog_text(_tls_keylogs(a))))
            parts.append(f"<p>{text}</p>")
    browser = browser_rows(a)
    if browser:
        parts.append(f"<h2>The browser</h2><p>{e(BROWSER_INTRO)}</p>" + _html_table(*browser))
    for key, title in CHART_SECTIONS:
        if key in charts:
            parts.append(
                f'<h2>{e(title)}</h2><p class="caption">{e(CHART_CAPTIONS[key])}</p>'
                f'<div class="chart">{charts[key]}</div>'
            )
    timing = timing_rows(data)
    if timing:
        parts.append("<h2>Where the time went</h2>" + _html_table(*timing))
    links = "".join(f'<li>{e(n)}: <a href="{e(p)}">{e(p)}</a></li>' for n, p in data.pcaps.items())
    parts.append(
        "<h2>Captures</h2><p>Each file opens in Wireshark (File → Open), or run "
        "<code>python -m lab analyze FILE</code>. Stream numbers above are Wireshark's "
        f"<code>tcp.stream</code>.</p><ul>{links}</ul></body></html>"
    )
    return "\n".join(parts) + "\n"
