"""The charts' inputs, from lab.analysis' detail of a few connections, and `make_charts`.

Nothing here reads packets: phases, exchanges, relative sequence numbers and categories come
from `lab.analysis.describe`; this module only picks which connection each chart shows and
hands `lab.charts` its plain data.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lab.analysis import ConnectionDetail, Exchange
from lab.document import ModeResult
from lab.report.data import WATERFALL_ROWS, ReportData
from lab.report.render import CHART_FILES
from lab.tcp import flag_names


def conn_phases(stream: ConnectionDetail, tls_done: float | None = None):
    """A waterfall row: the connection's phases as lab.analysis found them (and, over TLS,
    its handshake's end as lab.tls found it)."""
    from lab.charts import ConnPhases

    ph = stream.phases
    return ConnPhases(
        label=f"#{stream.stream} :{stream.client_port}",
        syn=ph.syn,
        established=ph.established,
        exchanges=ph.exchanges,
        fin=ph.fin,
        end=ph.end,
        tls_done=tls_done if ph.established is not None else None,
    )


def tls_ends(mode: ModeResult | None) -> dict[int, float]:
    """Each TLS connection's handshake end (capture clock), by stream."""
    if mode is None:
        return {}
    ends = {}
    for c in mode.per_connection:
        done = c.tls.times.get("handshake_done") if c.tls is not None else None
        if done is not None:
            ends[c.stream] = done
    return ends


def ladder_packets(stream: ConnectionDetail):
    """The ladder's rows: ms since the first packet, flags spelled as Wireshark does."""
    from lab.charts import LadderPacket

    return [
        LadderPacket(r.t, r.from_client, flag_names(r.flags), r.seq, r.ack, r.length)
        for r in stream.ladder
    ]


def pick_ladder_stream(streams: Sequence[ConnectionDetail]) -> ConnectionDetail | None:
    """The shortest connection that has a handshake, a request and a teardown: the article's
    diagrams, with as few data packets as possible in between."""
    complete = [s for s in streams if s.opened and s.phases.fin and s.exchanges]
    pool = complete or list(streams)
    return min(pool, key=lambda s: (len(s.packets), s.stream)) if pool else None


def largest_exchange(
    streams: Sequence[ConnectionDetail], warm: bool
) -> tuple[ConnectionDetail, int, Exchange] | None:
    """The biggest response of a mode; with warm=True prefer one that was not first on its
    connection (so the connection had already been through slow start)."""
    found = [(s, i, e) for s in streams for i, e in enumerate(s.exchanges) if e.data]
    if warm and any(i > 0 for _, i, _ in found):
        found = [f for f in found if f[1] > 0]
    return max(found, key=lambda f: (f[2].nbytes, -f[0].stream)) if found else None


def packet_counts(mode: ModeResult, streams: Sequence[ConnectionDetail]) -> dict[str, int]:
    """Packets per category: the analysis's numbers where it has them, else from the packets."""
    hs, td = mode.handshake_packets, mode.teardown_packets
    data_n, ack_n = mode.data_segments, mode.pure_acks
    if None in (hs, td, data_n, ack_n) and streams:
        counted = Counter(cat for s in streams for cat in s.categories)
        hs = counted["handshake"] if hs is None else hs
        td = counted["teardown"] if td is None else td
        data_n = counted["data"] if data_n is None else data_n
        ack_n = counted["pure ACK"] if ack_n is None else ack_n
    hs, td, data_n, ack_n = (v or 0 for v in (hs, td, data_n, ack_n))
    total = mode.packets
    if total is None:
        total = sum(len(s.packets) for s in streams) or hs + td + data_n + ack_n
    other = total - hs - td - data_n - ack_n
    if other < 0:  # the analysis counts a packet in two places (e.g. a FIN with data)
        ack_n = max(0, ack_n + other)
        other = max(0, total - hs - td - data_n - ack_n)
    return {"handshake": hs, "data": data_n, "pure ACK": ack_n, "teardown": td, "other": other}


def _all_streams(data: ReportData, name: str) -> list[ConnectionDetail]:
    """Every stream of the mode, or none if the report kept only some (a big capture)."""
    streams = data.streams.get(name) or []
    return streams if len(streams) == data.stream_totals.get(name, len(streams)) else []


def _median_rtt(modes: list[ModeResult]) -> float | None:
    rtts = sorted(m.rtt_ms for m in modes if m.rtt_ms is not None)
    return rtts[len(rtts) // 2] if rtts else None


def _scope_svg_ids(svg: str, prefix: str) -> str:
    """Several matplotlib SVGs in one page share id names (clip paths, markers): prefix them."""
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}-\1"', svg)
    svg = re.sub(r'href="#([^"]+)"', rf'href="#{prefix}-\1"', svg)
    return re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}-\1)", svg)


def resource_panels(modes: Sequence[ModeResult]):
    """The request waterfall's panels (only for a run with a browser mode): a browser mode's
    rows from its net-log (lab.browser's account), a lab client mode's from its log joined to
    the capture (per_connection[].requests); each on its own clock from its first request."""
    from lab.browser import ResourceRow
    from lab.charts import ResourceBars, ResourcePanel

    panels = []
    for m in modes:
        if m.client == "browser":
            account = m.browser or {}
            rows = [ResourceRow(**r) for r in account.get("resources") or []]
            bars = [ResourceBars(f"{r.name} ({_where(r)})", r.phases()) for r in rows]
            note = (
                f"Chromium, {account.get('connections')} connections, "
                f"{account.get('reused')} requests reused one"
            )
            panels.append(ResourcePanel(m.name, bars, note))
            continue
        requests = [(c.stream, i, r) for c in m.per_connection for i, r in enumerate(c.requests)]
        starts = [r.t_connect_start or r.t_sent for _, _, r in requests]
        starts = [t for t in starts if t is not None]
        if not starts:
            continue
        t0 = min(starts)

        def rel(t, t0=t0):
            return None if t is None else t - t0

        bars = []
        for stream, i, r in sorted(requests, key=lambda x: (x[2].t_sent or 0.0, x[0])):
            row = ResourceRow(
                name=str(r.request), status=None, body_bytes=0, local_port=None, stream=stream,
                reused=i > 0, start=0.0, socket=None, connect_start=rel(r.t_connect_start),
                connected=rel(r.t_sent), sent=rel(r.t_sent), first_byte=rel(r.t_first_byte),
                end=rel(r.t_done),
            )  # fmt: skip
            bars.append(ResourceBars(f"{row.name} ({_on(stream, i > 0)})", row.phases()))
        reused = sum(1 for _, i, _ in requests if i > 0)
        note = f"the lab's client, {m.connections} connections, {reused} requests reused one"
        panels.append(ResourcePanel(m.name, bars, note))
    return panels


def _where(row) -> str:
    return _on(row.stream, row.reused) if row.sent is not None else "not sent"


def _on(stream: int | None, reused: bool) -> str:
    where = "no stream" if stream is None else f"stream {stream}"
    return f"{where}, reused" if reused else where


def make_charts(data: ReportData, chart_dir: Path) -> dict[str, str]:
    """Render every chart the run's artifacts allow: name -> inline SVG (PNG written beside)."""
    from lab import charts

    chart_dir.mkdir(parents=True, exist_ok=True)
    modes = list(data.analysis.modes.values())
    svgs: dict[str, str] = {}

    with_streams = [(m.name, data.streams.get(m.name)) for m in modes]
    with_streams = [(n, s) for n, s in with_streams if s]
    if with_streams:
        rows = []
        for name, streams in with_streams:
            ends = tls_ends(data.analysis.modes.get(name))
            rows.append(
                charts.WaterfallMode(
                    name,
                    [
                        conn_phases(s, ends.get(s.stream))
                        for s in streams
                        if s.stream < WATERFALL_ROWS
                    ],
                    data.stream_totals.get(name, len(streams)),
                )
            )
        svgs["waterfall"] = charts.render(
            charts.waterfall(rows), chart_dir / CHART_FILES["waterfall"]
        )

    if any(m.client == "browser" for m in modes):
        panels = [p for p in resource_panels(modes) if p.rows]
        if panels:
            fig = charts.resource_waterfall(panels)
            svgs["requests"] = charts.render(fig, chart_dir / CHART_FILES["requests"])

    if modes:
        counts = [(m.name, packet_counts(m, _all_streams(data, m.name))) for m in modes]
        fig = charts.packet_categories(counts)
        svgs["categories"] = charts.render(fig, chart_dir / CHART_FILES["categories"])

    ladder_mode = next((n for n, _ in with_streams if not data.analysis.modes[n].persistent), None)
    ladder_mode = ladder_mode or (with_streams[0][0] if with_streams else None)
    if ladder_mode:
        stream = pick_ladder_stream(data.streams[ladder_mode])
        if stream:
            title = (
                f"Packet ladder: {ladder_mode}, TCP stream {stream.stream} "
                f"(client port {stream.client_port}, server port {stream.server_port})"
            )
            fig = charts.ladder(ladder_packets(stream), title)
            svgs["ladder"] = charts.render(fig, chart_dir / CHART_FILES["ladder"])

    series = stevens_series(data)
    if series:
        rtt = _median_rtt(modes)
        name = series[0][1]
        fig = charts.stevens([s for s, _ in series], f"Slow start: {name}, fresh vs warm", rtt)
        svgs["stevens"] = charts.render(fig, chart_dir / CHART_FILES["stevens"])
    return {k: _scope_svg_ids(v, k) for k, v in svgs.items()}


def stevens_series(data: ReportData) -> list[tuple[Any, str]]:
    """Fresh (first non-persistent mode) and warm (keep-alive, fewest connections) series."""
    from lab.charts import SeqSeries

    run = data.analysis
    modes = list(run.modes.values())
    fresh = next((m for m in modes if not m.persistent and data.streams.get(m.name)), None)
    keep = [m for m in modes if m.persistent and data.streams.get(m.name)]
    keep.sort(key=lambda m: (run.pipeline(m), run.parallel(m)))
    out = []
    for mode, warm, color in (
        (fresh, False, "#d9534f"),
        (keep[0] if keep else None, True, "#2e7d32"),
    ):
        if mode is None:
            continue
        found = largest_exchange(data.streams[mode.name], warm)
        if not found:
            continue
        stream, i, exchange = found
        names = data.request_names.get(mode.name, {})
        name = names.get(
            (stream.client_port, i), f"largest response ({exchange.nbytes // 1024} KB)"
        )
        kind = ("warm: request " + str(i + 1) + " on its connection") if i else "fresh connection"
        label = f"{mode.name} ({kind}, stream {stream.stream})"
        points = exchange.series()
        out.append((SeqSeries(label, points, color), f"{name}, {exchange.nbytes / 1024:.0f} KB"))
    return out
