"""A run folder's reports: `report.md` and one self-contained `report.html` (charts inline as SVG,
PNGs beside them in `charts/`).

`build_reports(run_dir)` reads what the run saved: `analysis.json` for every number (nothing that
is in it is recomputed), `manifest.json` for the run's facts, and each mode's `capture.pcap` for
what analysis.json does not hold: the packets of the ladder, the per-request timings of the
waterfall and the sequence numbers of the slow-start graph. Rendering (`render_markdown`,
`render_html`) is pure: a `ReportData` in, text out.

A load run has 10,000 connections per mode, so the work is bounded: each pcap is read once,
`Stream` objects are made only for the first WATERFALL_ROWS streams (the waterfall's rows) and
the ladder's and Stevens graph's picks (chosen from analysis.json's `per_connection`).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.claims import check_claims, mode_parallel, scenario_mode, verdict

WATERFALL_ROWS = 40  # streams drawn per mode: the first ones, in tcp.stream order
CHART_FILES = {
    "waterfall": "waterfall.png",
    "categories": "packets-per-category.png",
    "ladder": "ladder.png",
    "stevens": "slow-start-stevens.png",
}
CHART_CAPTIONS = {
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


# --- packets out of a pcap (only what the charts need) ----------------------------------------


@dataclass(frozen=True)
class Pkt:
    ts: float
    src: tuple[str, int]
    dst: tuple[str, int]
    flags: int
    seq: int
    ack: int
    length: int


FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def load_streams(path: Path) -> list[Stream]:
    """A capture's connections, read and numbered by lab.capture / lab.analysis (Wireshark's
    tcp.stream numbers), as the report's `Stream`s."""
    return read_streams(path)[0]


def read_streams(path: Path, wanted: Collection[int] | None = None) -> tuple[list[Stream], int]:
    """Read a capture once; `Stream`s only for the stream numbers in `wanted` (all if None),
    and how many streams the capture holds. Packets of other streams stay plain tuples."""
    from lab.analysis import split_streams
    from lab.capture import read_capture, without_gc

    streams = []
    with without_gc():
        groups = split_streams(read_capture(path).packets)
        for index, packets in enumerate(groups):
            if wanted is not None and index not in wanted:
                continue
            pkts = [
                Pkt(p.ts, (p.src, p.sport), (p.dst, p.dport), p.flags, p.seq, p.ack, p.payload_len)
                for p in packets
            ]
            client, server = _roles(pkts)
            streams.append(Stream(index, client, server, pkts))
    return streams, len(groups)


def _roles(pkts: Sequence[Pkt]) -> tuple[tuple[str, int], tuple[str, int]]:
    """The SYN's sender is the client; without a SYN, the server has the lower port."""
    for p in pkts:
        if p.flags & SYN:
            return (p.dst, p.src) if p.flags & ACK else (p.src, p.dst)
    p = pkts[0]
    return (p.src, p.dst) if p.src[1] > p.dst[1] else (p.dst, p.src)


@dataclass
class Exchange:
    """One request and its response on a connection, from the packets."""

    request: float
    data: list[Pkt] = field(default_factory=list)  # the server's payload packets

    @property
    def first_byte(self) -> float | None:
        return self.data[0].ts if self.data else None

    @property
    def last_byte(self) -> float | None:
        return self.data[-1].ts if self.data else None

    @property
    def nbytes(self) -> int:
        return sum(p.length for p in self.data)


@dataclass
class Stream:
    """One TCP connection numbered as Wireshark's tcp.stream (a new SYN starts a new stream)."""

    index: int
    client: tuple[str, int]
    server: tuple[str, int]
    packets: list[Pkt] = field(default_factory=list)

    def from_client(self, p: Pkt) -> bool:
        return p.src == self.client

    @property
    def syn(self) -> float:
        return self.packets[0].ts

    @property
    def established(self) -> float | None:
        seen_synack = False
        for p in self.packets:
            if p.flags & SYN and p.flags & ACK:
                seen_synack = True
            elif seen_synack and self.from_client(p) and p.flags & ACK:
                return p.ts
        return None

    @property
    def fin(self) -> float | None:
        return next((p.ts for p in self.packets if p.flags & (FIN | RST)), None)

    @property
    def end(self) -> float | None:
        return self.packets[-1].ts if self.fin is not None else None

    def exchanges(self) -> list[Exchange]:
        out: list[Exchange] = []
        for p in self.packets:
            if not p.length or p.flags & SYN:
                continue
            if self.from_client(p):
                if not out or out[-1].data:  # more request bytes before a response: same request
                    out.append(Exchange(p.ts))
            elif out:
                out[-1].data.append(p)
        return out

    def isn(self, client: bool) -> int:
        for p in self.packets:
            if p.flags & SYN and self.from_client(p) == client:
                return p.seq
        first = next((p for p in self.packets if self.from_client(p) == client), None)
        return first.seq if first else 0


# --- chart inputs, from streams (pure) ---------------------------------------------------------


def conn_phases(stream: Stream):
    from lab.charts import ConnPhases

    exchanges = [(e.request, e.first_byte, e.last_byte) for e in stream.exchanges()]
    return ConnPhases(
        label=f"#{stream.index} :{stream.client[1]}",
        syn=stream.syn,
        established=stream.established,
        exchanges=exchanges,
        fin=stream.fin,
        end=stream.end,
    )


def flag_names(flags: int) -> str:
    names = [
        n
        for bit, n in ((SYN, "SYN"), (FIN, "FIN"), (RST, "RST"), (PSH, "PSH"), (ACK, "ACK"))
        if flags & bit
    ]
    return ", ".join(names) or "none"


def ladder_packets(stream: Stream):
    from lab.charts import LadderPacket

    isn_c, isn_s = stream.isn(client=True), stream.isn(client=False)
    t0 = stream.syn
    out = []
    for p in stream.packets:
        mine, theirs = (isn_c, isn_s) if stream.from_client(p) else (isn_s, isn_c)
        ack = (p.ack - theirs) % 2**32 if p.flags & ACK else None
        seq = (p.seq - mine) % 2**32
        out.append(
            LadderPacket(p.ts - t0, stream.from_client(p), flag_names(p.flags), seq, ack, p.length)
        )
    return out


def pick_ladder_stream(streams: Sequence[Stream]) -> Stream | None:
    """The shortest connection that has a handshake, a request and a teardown: the article's
    diagrams, with as few data packets as possible in between."""
    complete = [s for s in streams if s.packets[0].flags & SYN and s.fin and s.exchanges()]
    pool = complete or list(streams)
    return min(pool, key=lambda s: (len(s.packets), s.index)) if pool else None


def response_series(exchange: Exchange, server_isn: int) -> list[tuple[float, int]]:
    if not exchange.data:
        return []
    start = exchange.data[0].seq
    points, top = [], 0
    for p in exchange.data:
        top = max(top, (p.seq - start) % 2**32 + p.length)
        points.append(((p.ts - exchange.request) * 1000, top))
    return points


def largest_exchange(streams: Sequence[Stream], warm: bool) -> tuple[Stream, int, Exchange] | None:
    """The biggest response of a mode; with warm=True prefer one that was not first on its
    connection (so the connection had already been through slow start)."""
    found = [(s, i, e) for s in streams for i, e in enumerate(s.exchanges()) if e.data]
    if warm and any(i > 0 for _, i, _ in found):
        found = [f for f in found if f[1] > 0]
    return max(found, key=lambda f: (f[2].nbytes, -f[0].index)) if found else None


# --- reading a run folder ---------------------------------------------------------------------


@dataclass
class ReportData:
    """Everything the renderers need; built by `load_report_data` from a run folder."""

    run_dir: Path
    analysis: dict
    manifest: dict
    claims: list[dict]
    pcaps: dict[str, str]  # mode name -> path relative to the run folder
    streams: dict[str, list[Stream]] = field(default_factory=dict)  # the ones drawn (see
    # `wanted_streams`): all of a small run's, the first WATERFALL_ROWS and two more of a big one
    stream_totals: dict[str, int] = field(default_factory=dict)  # streams in each capture
    request_names: dict[str, dict[tuple[int, int], str]] = field(default_factory=dict)

    @property
    def title(self) -> str:
        sc = self.analysis.get("scenario") or {}
        return f"TCP Connection Lab: {sc.get('name') or self.manifest.get('scenario') or 'run'}"


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}


def _mode_folder(run_dir: Path, mode: dict) -> Path:
    folder = mode.get("folder")
    if folder:
        p = Path(folder)
        return p if p.is_absolute() else run_dir / p
    base = run_dir / mode["name"]
    repeats = sorted(base.glob("repeat-*"))
    return repeats[0] if repeats and not (base / "capture.pcap").exists() else base


def load_report_data(run_dir: Path, analysis: dict | None = None) -> ReportData:
    """The run folder's data; `analysis` when the caller has already read analysis.json."""
    from lab.errors import LabError

    run_dir = Path(run_dir)
    if analysis is None:
        analysis = read_analysis(run_dir)
    claims = analysis.get("claims") or check_claims(analysis)
    data = ReportData(run_dir, analysis, _read_json(run_dir / "manifest.json"), claims, {})
    for mode in analysis.get("modes") or []:
        folder = _mode_folder(run_dir, mode)
        pcap = folder / "capture.pcap"
        if not pcap.exists():
            continue
        data.pcaps[mode["name"]] = pcap.relative_to(run_dir).as_posix()
        try:
            streams, total = read_streams(pcap, wanted_streams(mode))
        except LabError:  # not a capture after all: the tables still render without charts
            streams, total = [], 0
        data.streams[mode["name"]], data.stream_totals[mode["name"]] = streams, total
        data.request_names[mode["name"]] = _names_from_analysis(mode, streams) or _request_names(
            folder / "client.jsonl", {s.client[1] for s in streams}
        )
    return data


def wanted_streams(mode: dict) -> set[int]:
    """The streams a mode's charts can use: the waterfall's first WATERFALL_ROWS, and the
    ladder's and the Stevens graph's picks, found from analysis.json's `per_connection` (the
    same rules as `pick_ladder_stream` and `largest_exchange`, on the analysis's figures).
    Without per-connection detail the picks come from the first streams alone."""
    wanted = set(range(WATERFALL_ROWS))
    conns = [c for c in mode.get("per_connection") or [] if isinstance(c.get("stream"), int)]
    complete = [
        c
        for c in conns
        if c.get("syn_packets")
        and (c.get("t_first_fin") is not None or c.get("rst"))
        and (c.get("data_segments") or {}).get("client")
    ]
    if complete:
        wanted.add(min(complete, key=lambda c: (c.get("packets") or 0, c["stream"]))["stream"])
    responses = []  # (bytes, -stream, later on its connection, stream)
    for c in conns:
        per_burst: dict[int, int] = {}
        for f in c.get("flights") or []:
            burst = f.get("burst", 0)
            per_burst[burst] = per_burst.get(burst, 0) + (f.get("bytes") or 0)
        responses += [(n, -c["stream"], b > 0, c["stream"]) for b, n in per_burst.items()]
    for warm in (False, True):
        pool = [r for r in responses if r[2]] if warm else responses
        if pool:
            wanted.add(max(pool)[3])
    return wanted


def _names_from_analysis(mode: dict, streams: Sequence[Stream]) -> dict[tuple[int, int], str]:
    """(client port, order on the connection) -> request name, from the per-connection
    requests lab.analysis joined (in the order they were sent)."""
    by_stream = {c.get("stream"): c for c in mode.get("per_connection") or []}
    out = {}
    for s in streams:
        for i, r in enumerate((by_stream.get(s.index) or {}).get("requests") or []):
            if isinstance(r, dict) and r.get("request") is not None:
                out[(s.client[1], i)] = str(r["request"])
    return out


def read_analysis(run_dir: Path) -> dict:
    from lab.errors import UsageError

    analysis_path = Path(run_dir) / "analysis.json"
    if not analysis_path.exists():
        raise UsageError(f"{analysis_path}: no analysis.json (is this a run folder?)")
    try:
        return json.loads(analysis_path.read_text())
    except json.JSONDecodeError as exc:
        raise UsageError(f"{analysis_path}: line {exc.lineno}: not valid JSON") from exc


_LOCAL_PORT = re.compile(r'"local_port":\s*(\d+)')


def _request_names(path: Path, ports: Collection[int]) -> dict[tuple[int, int], str]:
    """(client port, order on that port) -> request name, from the client's JSON lines (only
    the lines of `ports`: a load run's log has a hundred thousand)."""
    if not path.exists():
        return {}
    records = []
    ports = set(ports)
    for line in path.read_text(errors="replace").splitlines():
        port = _LOCAL_PORT.search(line)
        if port is None or int(port.group(1)) not in ports:
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and rec.get("event") == "request" and rec.get("local_port"):
            records.append(rec)
    records.sort(key=lambda r: r.get("t_sent") or 0)
    order: dict[int, int] = {}
    out = {}
    for r in records:
        port = int(r["local_port"])
        out[(port, order.get(port, 0))] = str(r.get("request"))
        order[port] = order.get(port, 0) + 1
    return out


# --- charts for a run -------------------------------------------------------------------------


def make_charts(data: ReportData, chart_dir: Path) -> dict[str, str]:
    """Render every chart the run's artifacts allow: name -> inline SVG (PNG written beside)."""
    from lab import charts

    chart_dir.mkdir(parents=True, exist_ok=True)
    modes = data.analysis.get("modes") or []
    svgs: dict[str, str] = {}

    with_streams = [(m["name"], data.streams.get(m["name"])) for m in modes]
    with_streams = [(n, s) for n, s in with_streams if s]
    if with_streams:
        rows = [
            charts.WaterfallMode(
                name,
                [conn_phases(s) for s in streams if s.index < WATERFALL_ROWS],
                data.stream_totals.get(name, len(streams)),
            )
            for name, streams in with_streams
        ]
        svgs["waterfall"] = charts.render(
            charts.waterfall(rows), chart_dir / CHART_FILES["waterfall"]
        )

    if modes:
        counts = [(m["name"], packet_counts(m, _all_streams(data, m["name"]))) for m in modes]
        fig = charts.packet_categories(counts)
        svgs["categories"] = charts.render(fig, chart_dir / CHART_FILES["categories"])

    ladder_mode = next((n for n, _ in with_streams if not _is_persistent(modes, n)), None)
    ladder_mode = ladder_mode or (with_streams[0][0] if with_streams else None)
    if ladder_mode:
        stream = pick_ladder_stream(data.streams[ladder_mode])
        if stream:
            title = (
                f"Packet ladder: {ladder_mode}, TCP stream {stream.index} "
                f"(client port {stream.client[1]}, server port {stream.server[1]})"
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

    modes = data.analysis.get("modes") or []
    fresh = next(
        (m for m in modes if not m.get("persistent") and data.streams.get(m["name"])), None
    )
    keep = [m for m in modes if m.get("persistent") and data.streams.get(m["name"])]
    keep.sort(
        key=lambda m: (bool(_mode_flag(data, m, "pipeline")), mode_parallel(data.analysis, m))
    )
    out = []
    for mode, warm, color in (
        (fresh, False, "#d9534f"),
        (keep[0] if keep else None, True, "#2e7d32"),
    ):
        if mode is None:
            continue
        found = largest_exchange(data.streams[mode["name"]], warm)
        if not found:
            continue
        stream, i, exchange = found
        names = data.request_names.get(mode["name"], {})
        name = names.get((stream.client[1], i), f"largest response ({exchange.nbytes // 1024} KB)")
        kind = ("warm: request " + str(i + 1) + " on its connection") if i else "fresh connection"
        label = f"{mode['name']} ({kind}, stream {stream.index})"
        points = response_series(exchange, stream.isn(client=False))
        out.append((SeqSeries(label, points, color), f"{name}, {exchange.nbytes / 1024:.0f} KB"))
    return out


def packet_counts(mode: dict, streams: Sequence[Stream]) -> dict[str, int]:
    """Packets per category: the analysis's numbers where it has them, else from the packets."""
    hs = mode.get("handshake_packets")
    td = mode.get("teardown_packets")
    data_n = _first_int(mode, "data_packets", "data_segments")
    ack_n = _first_int(mode, "pure_acks", "pure_ack_packets", "ack_packets")
    if None in (hs, td, data_n, ack_n) and streams:
        counted = _classify(streams)
        hs = counted["handshake"] if hs is None else hs
        td = counted["teardown"] if td is None else td
        data_n = counted["data"] if data_n is None else data_n
        ack_n = counted["pure ACK"] if ack_n is None else ack_n
    hs, td, data_n, ack_n = (v or 0 for v in (hs, td, data_n, ack_n))
    total = mode.get("packets")
    if total is None:
        total = sum(len(s.packets) for s in streams) or hs + td + data_n + ack_n
    other = total - hs - td - data_n - ack_n
    if other < 0:  # the analysis counts a packet in two places (e.g. a FIN with data)
        ack_n = max(0, ack_n + other)
        other = max(0, total - hs - td - data_n - ack_n)
    return {"handshake": hs, "data": data_n, "pure ACK": ack_n, "teardown": td, "other": other}


def _classify(streams: Sequence[Stream]) -> dict[str, int]:
    c = {"handshake": 0, "data": 0, "pure ACK": 0, "teardown": 0, "other": 0}
    for s in streams:
        established = s.established
        fin_seen = False
        for p in s.packets:
            if p.flags & RST:
                c["other"] += 1
            elif p.flags & SYN or (p.ts == established and not p.length and s.from_client(p)):
                c["handshake"] += 1
            elif p.flags & FIN or (fin_seen and not p.length):
                fin_seen = True
                c["teardown"] += 1
            elif p.length:
                c["data"] += 1
            else:
                c["pure ACK"] += 1
    return c


def _all_streams(data: ReportData, name: str) -> list[Stream]:
    """Every stream of the mode, or none if the report kept only some (a big capture)."""
    streams = data.streams.get(name) or []
    return streams if len(streams) == data.stream_totals.get(name, len(streams)) else []


def _first_int(d: dict, *keys: str) -> int | None:
    for k in keys:
        if isinstance(d.get(k), int):
            return d[k]
    return None


def _is_persistent(modes: list[dict], name: str) -> bool:
    return any(m.get("persistent") for m in modes if m["name"] == name)


def _mode_flag(data: ReportData, mode: dict, key: str):
    return mode.get(key, scenario_mode(data.analysis, mode["name"]).get(key))


def _median_rtt(modes: list[dict]) -> float | None:
    rtts = sorted(m["rtt_ms"] for m in modes if isinstance(m.get("rtt_ms"), (int, float)))
    return rtts[len(rtts) // 2] if rtts else None


def _scope_svg_ids(svg: str, prefix: str) -> str:
    """Several matplotlib SVGs in one page share id names (clip paths, markers): prefix them."""
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}-\1"', svg)
    svg = re.sub(r'href="#([^"]+)"', rf'href="#{prefix}-\1"', svg)
    return re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}-\1)", svg)


# --- tables (shared by both renderers) --------------------------------------------------------


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k.replace('_', ' ')} {fmt(v)}" for k, v in value.items())
    return str(value)


def ms(seconds: Any) -> float | None:
    return seconds * 1000 if isinstance(seconds, (int, float)) else None


def mode_rows(analysis: dict) -> tuple[list[str], list[list[str]]]:
    """Metrics as rows, modes as columns (the terminal table's layout and formatting)."""
    from lab.summary import METRICS

    modes = analysis.get("modes") or []
    rows = []
    for label, get, show in METRICS:
        values = [get(analysis, m) for m in modes]
        if any(v is not None for v in values):
            rows.append([label, *(show(v) for v in values)])
    return ["", *(m["name"] for m in modes)], rows


def prediction_rows(analysis: dict) -> tuple[list[str], list[list[str]]]:
    headers = ["mode", "measured (ms)", "predicted (ms)", "error"]
    rows = []
    from lab.summary import error_pct

    for m in analysis.get("modes") or []:
        err = error_pct(m)
        rows.append(
            [
                m["name"],
                fmt(ms(m.get("page_time_s"))),
                fmt(ms(m.get("predicted_page_time_s"))),
                f"{err:+.1f}%" if err is not None else "–",
            ]
        )
    return headers, rows


def claim_rows(claims: list[dict]) -> tuple[list[str], list[list[str]]]:
    headers = ["claim", "mode", "verdict", "observed", "expected", "why"]
    rows = [
        [
            c["claim"],
            c.get("mode") or "",
            verdict(c.get("holds")),
            fmt(c.get("observed")),
            fmt(c.get("expected")),
            c.get("why") or "",
        ]
        for c in claims
    ]
    return headers, rows


def network_rows(data: ReportData) -> tuple[list[str], list[list[str]]] | None:
    """The configured conditions, the shaping method and the RTT verified from the capture."""
    from lab.summary import network_rows as rows_of

    net = dict(data.analysis.get("network") or {})
    shaping = [m.get("shaping") for m in data.manifest.get("modes") or [] if m.get("shaping")]
    if "method" not in net and shaping:
        net["method"] = shaping[0].get("method")
    rows = rows_of(net)
    return (["", "value"], [list(r) for r in rows]) if rows else None


def fault_rows(analysis: dict) -> tuple[list[str], list[list[str]]] | None:
    """Each mode a fault disturbed (lab.faults' account), or whose capture ended early."""
    rows = [
        [m.get("name", "?"), m.get("fault_summary") or "–", "; ".join(m.get("incomplete") or [])]
        for m in analysis.get("modes", [])
        if m.get("faults") or m.get("incomplete")
    ]
    return (["mode", "what happened", "analysis incomplete because"], rows) if rows else None


def timing_rows(data: ReportData) -> tuple[list[str], list[list[str]]] | None:
    timings = data.analysis.get("timings_s") or data.manifest.get("timings_s")
    if not timings:
        return None
    rows = [[k, f"{v:.2f}"] for k, v in timings.items() if isinstance(v, (int, float))]
    return ["phase", "seconds"], rows


# --- renderers (pure) -------------------------------------------------------------------------


def _md_table(headers: list[str], rows: list[list[str]]) -> str:
    def cell(s: str) -> str:
        return str(s).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _run_facts(data: ReportData) -> list[tuple[str, str]]:
    m = data.manifest
    facts = [
        ("run", m.get("run_id") or data.run_dir.name),
        ("started", m.get("started")),
        ("ended", m.get("ended")),
        ("command", m.get("command")),
        ("lab version", m.get("lab_version")),
        ("status", m.get("status")),
    ]
    docker = m.get("docker") or {}
    if docker:
        facts.append(("docker", fmt(docker)))
    host = m.get("host") or {}
    if host:
        facts.append(("host", fmt(host)))
    return [(k, str(v)) for k, v in facts if v]


def render_markdown(data: ReportData, charts: dict[str, str]) -> str:
    a = data.analysis
    out = [f"# {data.title}", ""]
    desc = (a.get("scenario") or {}).get("description")
    if desc:
        out += [str(desc).strip(), ""]
    out += [f"- **{k}**: {v}" for k, v in _run_facts(data)] + [""]
    out += ["## How to read this report", "", HOW_TO_READ, ""]
    out += ["## The modes side by side", "", _md_table(*mode_rows(a)), ""]
    out += ["## The article's claims, checked", "", _md_table(*claim_rows(data.claims)), ""]
    out += ["## Predicted vs measured page time", "", _md_table(*prediction_rows(a)), ""]
    net = network_rows(data)
    if net:
        out += ["## Network conditions", "", _md_table(*net), ""]
    faults = fault_rows(a)
    if faults:
        out += ["## Faults injected", "", _md_table(*faults), ""]
    for key, title in (
        ("waterfall", "Waterfall"),
        ("categories", "Packets per category"),
        ("ladder", "One connection, packet by packet"),
        ("stevens", "Slow start: fresh vs warm connection"),
    ):
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
    desc = (a.get("scenario") or {}).get("description")
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
    net = network_rows(data)
    if net:
        parts.append("<h2>Network conditions</h2>" + _html_table(*net))
    faults = fault_rows(a)
    if faults:
        parts.append("<h2>Faults injected</h2>" + _html_table(*faults))
    for key, title in (
        ("waterfall", "Waterfall"),
        ("categories", "Packets per category"),
        ("ladder", "One connection, packet by packet"),
        ("stevens", "Slow start: fresh vs warm connection"),
    ):
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


def build_reports(run_dir: Path, analysis: dict | None = None) -> list[Path]:
    """Write report.md, report.html and charts/*.png in `run_dir`; return the paths written.
    Pass `analysis` if analysis.json is already read (a load run's is tens of MB)."""
    run_dir = Path(run_dir)
    data = load_report_data(run_dir, analysis)
    chart_dir = run_dir / "charts"
    charts = make_charts(data, chart_dir)
    md = run_dir / "report.md"
    md.write_text(render_markdown(data, charts))
    page = run_dir / "report.html"
    page.write_text(render_html(data, charts))
    return [md, page, *(chart_dir / CHART_FILES[k] for k in charts)]
