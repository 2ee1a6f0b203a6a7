"""A run folder's data for the report: analysis.json, manifest.json, and from each mode's
capture the few connections the charts draw, in lab.analysis' detail.

A load run has 10,000 connections per mode, so the work is bounded: each pcap is read once,
and `lab.analysis.details` describes only the first WATERFALL_ROWS streams (the waterfall's
rows) and the ladder's and Stevens graph's picks (chosen from analysis.json's
`per_connection`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lab.analysis import ConnectionDetail
from lab.claims import check_claims

WATERFALL_ROWS = 40  # streams drawn per mode: the first ones, in tcp.stream order


def read_details(
    path: Path, wanted: Collection[int] | None = None
) -> tuple[list[ConnectionDetail], int]:
    """Read a capture once: lab.analysis' detail of the streams in `wanted` (all if None),
    and how many streams the capture holds."""
    from lab import analysis, capture

    return analysis.details(capture.read_capture(path).packets, wanted)


@dataclass
class ReportData:
    """Everything the renderers need; built by `load_report_data` from a run folder."""

    run_dir: Path
    analysis: dict
    manifest: dict
    claims: list[dict]
    pcaps: dict[str, str]  # mode name -> path relative to the run folder
    # lab.analysis' detail of the streams drawn (see `wanted_streams`): all of a small run's,
    # the first WATERFALL_ROWS and two more of a big one
    streams: dict[str, list[ConnectionDetail]] = field(default_factory=dict)
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
            streams, total = read_details(pcap, wanted_streams(mode))
        except LabError:  # not a capture after all: the tables still render without charts
            streams, total = [], 0
        data.streams[mode["name"]], data.stream_totals[mode["name"]] = streams, total
        data.request_names[mode["name"]] = _names_from_analysis(mode, streams) or _request_names(
            folder / "client.jsonl", {s.client_port for s in streams}
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


def _names_from_analysis(
    mode: dict, streams: Sequence[ConnectionDetail]
) -> dict[tuple[int, int], str]:
    """(client port, order on the connection) -> request name, from the per-connection
    requests lab.analysis joined (in the order they were sent)."""
    by_stream = {c.get("stream"): c for c in mode.get("per_connection") or []}
    out = {}
    for s in streams:
        for i, r in enumerate((by_stream.get(s.stream) or {}).get("requests") or []):
            if isinstance(r, dict) and r.get("request") is not None:
                out[(s.client_port, i)] = str(r["request"])
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
