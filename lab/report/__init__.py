"""A run folder's reports: `report.md` and one self-contained `report.html` (charts inline as SVG,
PNGs beside them in `charts/`).

`build_reports(run_dir)` reads what the run saved: `analysis.json` for every number (nothing that
is in it is recomputed), `manifest.json` for the run's facts, and each mode's `capture.pcap` for
what analysis.json does not hold: the packets of the ladder, the per-request timings of the
waterfall and the sequence numbers of the slow-start graph, all read by `lab.analysis` (this
package never parses or classifies packets itself).

- data.py: the run folder's data (`load_report_data`), bounded on load runs;
- chart_inputs.py: which connection each chart shows, and `make_charts`;
- render.py: the tables and the renderers (`render_markdown`, `render_html`), pure.
"""

from __future__ import annotations

from pathlib import Path

from lab.document import RunResult
from lab.report.chart_inputs import (
    conn_phases,
    ladder_packets,
    largest_exchange,
    make_charts,
    packet_counts,
    pick_ladder_stream,
    stevens_series,
)
from lab.report.data import (
    WATERFALL_ROWS,
    ReportData,
    load_report_data,
    read_details,
    wanted_streams,
)
from lab.report.render import (
    CHART_CAPTIONS,
    CHART_FILES,
    HOW_TO_READ,
    claim_rows,
    fault_rows,
    fmt,
    mode_rows,
    ms,
    network_rows,
    prediction_rows,
    render_html,
    render_markdown,
    timing_rows,
)

__all__ = [
    "CHART_CAPTIONS",
    "CHART_FILES",
    "HOW_TO_READ",
    "WATERFALL_ROWS",
    "ReportData",
    "build_reports",
    "claim_rows",
    "conn_phases",
    "fault_rows",
    "fmt",
    "ladder_packets",
    "largest_exchange",
    "load_report_data",
    "make_charts",
    "mode_rows",
    "ms",
    "network_rows",
    "packet_counts",
    "pick_ladder_stream",
    "prediction_rows",
    "read_details",
    "render_html",
    "render_markdown",
    "stevens_series",
    "timing_rows",
    "wanted_streams",
]


def build_reports(run_dir: Path, result: RunResult | None = None) -> list[Path]:
    """Write report.md, report.html and charts/*.png in `run_dir`; return the paths written.
    Pass `result` if the run document is already read (a load run's is tens of MB)."""
    run_dir = Path(run_dir)
    data = load_report_data(run_dir, result)
    chart_dir = run_dir / "charts"
    charts = make_charts(data, chart_dir)
    md = run_dir / "report.md"
    md.write_text(render_markdown(data, charts))
    page = run_dir / "report.html"
    page.write_text(render_html(data, charts))
    return [md, page, *(chart_dir / CHART_FILES[k] for k in charts)]
