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

from lab import analysis, capture
from lab.analysis import ConnectionDetail
from lab.claims import check_claims
from lab.document import Claim, Manifest, ModeResult, RunResult
from lab.errors import LabError

WATERFALL_ROWS = 40  # streams drawn per mode: the first ones, in tcp.stream order


def read_details(
    path: Path, wanted: Collection[int] | None = None
) -> tuple[list[ConnectionDetail], int]:
    """Read a capture once: lab.analysis' detail of the streams in `wanted` (all if None),
    and how many streams the capture holds."""
    return analysis.details(capture.read_capture(path).packets, wanted)


@dataclass
class ReportData:
    """Everything the renderers need; built by `load_report_data` from a run folder."""

    run_dir: Path
    analysis: RunResult
    manifest: Manifest | None
    claims: list[Claim]
    pcaps: dict[str, str]  # mode name -> path relative to the run folder
    # lab.analysis' detail of the streams drawn (see `wanted_streams`): all of a small run's,
    # the first WATERFALL_ROWS and two more of a big one
    streams: dict[str, list[ConnectionDetail]] = field(default_factory=dict)
    stream_totals: dict[str, int] = field(default_factory=dict)  # streams in each capture
    request_names: dict[str, dict[tuple[int, int], str]] = field(default_factory=dict)

    @property
    def title(self) -> str:
        name = self.analysis.scenario.get("name") or (self.manifest and self.manifest.scenario)
        return f"TCP Connection Lab: {name or 'run'}"


def _mode_folder(run_dir: Path, mode: ModeResult) -> Path:
    if mode.folder:
        p = Path(mode.folder)
        return p if p.is_absolute() else run_dir / p
    base = run_dir / mode.name
    repeats = sorted(base.glob("repeat-*"))
    return repeats[0] if repeats and not (base / "capture.pcap").exists() else base


def load_report_data(run_dir: Path, result: RunResult | None = None) -> ReportData:
    """The run folder's data; `result` when the caller has already read the run document."""
    run_dir = Path(run_dir)
    if result is None:
        result = RunResult.read(run_dir)
    manifest = result.manifest
    if manifest is None and (run_dir / "manifest.json").exists():
        manifest = Manifest.read(run_dir / "manifest.json")
    # a document with no claims (made by hand, or by a lab before claims) gets them checked
    data = ReportData(run_dir, result, manifest, result.claims or check_claims(result), {})
    for mode in result.modes.values():
        folder = _mode_folder(run_dir, mode)
        pcap = folder / "capture.pcap"
        if not pcap.exists():
            continue
        data.pcaps[mode.name] = pcap.relative_to(run_dir).as_posix()
        try:
            streams, total = read_details(pcap, wanted_streams(mode))
        except LabError:  # not a capture after all: the tables still render without charts
            streams, total = [], 0
        data.streams[mode.name], data.stream_totals[mode.name] = streams, total
        data.request_names[mode.name] = _names_from_analysis(mode, streams) or _request_names(
            folder / "client.jsonl", {s.client_port for s in streams}
        )
    return data


def wanted_streams(mode: ModeResult) -> set[int]:
    """The streams a mode's charts can use: the waterfall's first WATERFALL_ROWS, and the
    ladder's and the Stevens graph's picks, found from analysis.json's `per_connection` (the
    same rules as `pick_ladder_stream` and `largest_exchange`, on the analysis's figures).
    Without per-connection detail the picks come from the first streams alone."""
    wanted = set(range(WATERFALL_ROWS))
    conns = mode.per_connection
    complete = [
        c
        for c in conns
        if c.syn_packets and (c.t_first_fin is not None or c.rst) and c.data_segments.client
    ]
    if complete:
        wanted.add(min(complete, key=lambda c: (c.packets, c.stream)).stream)
    responses = []  # (bytes, -stream, later on its connection, stream)
    for c in conns:
        per_burst: dict[int, int] = {}
        for f in c.flights:
            per_burst[f.burst] = per_burst.get(f.burst, 0) + f.bytes
        responses += [(n, -c.stream, b > 0, c.stream) for b, n in per_burst.items()]
    for warm in (False, True):
        pool = [r for r in responses if r[2]] if warm else responses
        if pool:
            wanted.add(max(pool)[3])
    return wanted


def _names_from_analysis(
    mode: ModeResult, streams: Sequence[ConnectionDetail]
) -> dict[tuple[int, int], str]:
    """(client port, order on the connection) -> request name, from the per-connection
    requests lab.analysis joined (in the order they were sent)."""
    by_stream = {c.stream: c for c in mode.per_connection}
    out = {}
    for s in streams:
        conn = by_stream.get(s.stream)
        for i, r in enumerate(conn.requests if conn else []):
            if r.request is not None:
                out[(s.client_port, i)] = str(r.request)
    return out


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
