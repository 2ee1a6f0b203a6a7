"""The report's charts (matplotlib, Agg): each function takes plain data and returns a Figure.

- `waterfall`: connections per mode on one time axis, like a browser's network panel.
- `ladder`: one connection's packets between client and server, with flags, seq and ack
  (the article's handshake and teardown diagrams, from real packets).
- `packet_categories`: packets per category (handshake, data, pure ACK, teardown, other) per mode.
- `stevens`: sequence number against time (tcptrace / Wireshark "Stevens" graph), fresh vs warm.

`render(fig, png_path)` writes the PNG and returns the SVG text for inlining.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch, PathPatch
from matplotlib.path import Path as MplPath

PHASE_COLORS = {
    "handshake": "#e8a33d",
    "tls": "#9b59b6",
    "idle": "#efe9d6",
    "waiting": "#cfd4da",
    "receiving": "#3b7dd8",
    "teardown": "#d9534f",
}
PHASE_LABELS = {
    "handshake": "handshake (SYN→ACK)",
    "tls": "TLS handshake (ClientHello→client Finished)",
    "idle": "idle (nothing asked)",
    "waiting": "waiting (request→first byte)",
    "receiving": "receiving (first→last byte)",
    "teardown": "teardown (first FIN→last ACK)",
}
CATEGORY_COLORS = {
    "handshake": "#e8a33d",
    "data": "#3b7dd8",
    "pure ACK": "#9fc5f8",
    "teardown": "#d9534f",
    "other": "#adb5bd",
}

matplotlib.rcParams.update({"font.size": 9, "svg.fonttype": "none", "axes.titleweight": "bold"})


def render(fig: Figure, png_path: Path) -> str:
    """Write `png_path` and return the same chart as SVG text (no XML prolog) for inlining."""
    fig.savefig(png_path, dpi=110)  # layouts are set by each chart: no tight bbox (a redraw)
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    # The RDF metadata names URLs (creativecommons, purl); nothing fetches them, but a report
    # that is self-contained should not even look like it points elsewhere.
    svg = re.sub(r"\s*<metadata>.*?</metadata>", "", svg, flags=re.S)
    return re.sub(r'\s+xmlns:(cc|dc|rdf)="[^"]*"', "", svg)


def _margins(fig: Figure, left: float, right: float, top: float, bottom: float) -> None:
    """Margins in inches, set once (tight_layout measures every label in an extra draw)."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=left / w, right=1 - right / w, top=1 - top / h, bottom=bottom / h)


# --- waterfall --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnPhases:
    """One connection's phase boundaries, epoch seconds (None where the capture has no mark)."""

    label: str
    syn: float
    established: float | None
    exchanges: Sequence[tuple[float, float | None, float | None]]  # request, first, last byte
    fin: float | None
    end: float | None
    tls_done: float | None = None  # a TLS connection: its handshake's end (lab.tls)

    def bars(self) -> list[tuple[str, float, float]]:
        marks = [("handshake", self.syn, self.established)]
        exchanges = self.exchanges
        if self.tls_done is not None:  # the TLS flights are its own phase, not requests
            marks.append(("tls", self.established, self.tls_done))
            exchanges = [e for e in exchanges if e[0] >= self.tls_done]
        for request, first, last in exchanges:
            marks += [("waiting", request, first), ("receiving", first, last)]
        marks.append(("teardown", self.fin, self.end))
        bars = [(p, a, b) for p, a, b in marks if a is not None and b is not None and b >= a]
        idle = [
            ("idle", prev[2], nxt[1])
            for prev, nxt in itertools.pairwise(bars)
            if nxt[1] > prev[2] and prev[0] != "waiting"
        ]
        return idle + bars

    @property
    def last(self) -> float:
        return max((b for _, _, b in self.bars()), default=self.syn)


@dataclass(frozen=True)
class WaterfallMode:
    """One panel: the connections drawn, and how many the mode had (a load run has thousands;
    the report draws the first few)."""

    name: str
    conns: Sequence[ConnPhases]
    total: int


ROW_INCH = 0.3  # height of one connection's row


def waterfall(modes: Sequence[WaterfallMode]) -> Figure:
    """One panel per mode, shared time axis (ms from each mode's first SYN).

    Each phase of a panel is one collection of rectangles (not a patch per bar), and the layout
    is computed here from inches rather than by tight_layout's extra draw.
    """
    rows = [max(1, len(m.conns)) for m in modes]
    gap, head, foot = 0.55, 1.0, 0.5  # inches: between panels, title + legend, x label
    height = head + foot + sum(ROW_INCH * r + gap for r in rows) - gap
    width = 9.5
    fig = Figure(figsize=(width, height))
    labels = [c.label for m in modes for c in m.conns]
    left = (0.25 + 0.055 * max((len(s) for s in labels), default=4)) / width
    top = height - head
    axes = []
    right = 0.0
    for m, r in zip(modes, rows, strict=True):
        ax = fig.add_axes(
            (left, (top - ROW_INCH * r) / height, 0.98 - left, ROW_INCH * r / height),
            sharex=axes[0] if axes else None,
        )
        axes.append(ax)
        top -= ROW_INCH * r + gap
        right = max(right, _waterfall_panel(ax, m))
    for ax in axes[:-1]:
        ax.tick_params(labelbottom=False)
    axes[-1].set_xlabel("time since the mode's first SYN (ms)")
    axes[-1].set_xlim(0, right * 1.02 or 1.0)
    fig.text(
        0.01,
        1 - 0.1 / height,
        "Connection waterfall per mode (one row per TCP stream)",
        ha="left",
        va="top",
        fontweight="bold",
        fontsize=11,
    )
    drawn = {p for m in modes for c in m.conns for p, _, _ in c.bars()}
    phases = [p for p in PHASE_COLORS if p != "tls" or p in drawn]  # TLS only where there is
    handles = [Patch(color=PHASE_COLORS[p], label=PHASE_LABELS[p]) for p in phases]
    fig.legend(
        handles=handles,
        loc="upper left",
        ncol=3,
        frameon=False,
        fontsize=8,
        bbox_to_anchor=(0.005, 1 - 0.3 / height),
    )
    return fig


def _waterfall_panel(ax, mode: WaterfallMode) -> float:
    """Draw one mode's rows; return where its last bar ends (ms since its first SYN)."""
    conns = mode.conns
    t0 = min((c.syn for c in conns), default=0.0)
    boxes: dict[str, list] = {p: [] for p in PHASE_COLORS}
    end = t0
    for i, c in enumerate(conns):
        for phase, a, b in c.bars():
            x0, x1 = (a - t0) * 1000, (b - t0) * 1000
            boxes[phase].append(((x0, i - 0.35), (x0, i + 0.35), (x1, i + 0.35), (x1, i - 0.35)))
            end = max(end, b)
    for phase, verts in boxes.items():  # one path per phase: one <path> in the SVG
        if verts:
            path = MplPath.make_compound_path_from_polys(np.asarray(verts, dtype=float))
            # add_artist, not add_patch: the limits are set by the caller, and add_patch walks
            # every segment of the path in Python to find them
            ax.add_artist(PathPatch(path, facecolor=PHASE_COLORS[phase], edgecolor="none", lw=0))
    ax.set_yticks(range(len(conns)), [c.label for c in conns], fontsize=7)
    ax.set_ylim(max(1, len(conns)) - 0.4, -0.6)
    shown = (
        f"{len(conns)} connection(s)"
        if len(conns) >= mode.total
        else f"first {len(conns)} of {mode.total:,} connections"
    )
    ax.set_title(f"{mode.name}: {shown}, {(end - t0) * 1000:.1f} ms", loc="left", y=1)
    ax.grid(axis="x", color="#eee")
    ax.set_axisbelow(True)
    return (end - t0) * 1000


# --- resource waterfall (a browser's network panel) -------------------------------------------

RESOURCE_COLORS = {
    "queued": "#efe9d6",
    "connect": "#e8a33d",
    "waiting": "#cfd4da",
    "receiving": "#3b7dd8",
}
RESOURCE_LABELS = {
    "queued": "queued (waiting for a connection)",
    "connect": "connecting (its own handshake)",
    "waiting": "waiting (request→first byte)",
    "receiving": "receiving (first→last byte)",
}


@dataclass(frozen=True)
class ResourceBars:
    """One request's row: (phase, from, to) in seconds from its mode's first request."""

    label: str
    bars: Sequence[tuple[str, float, float]]


@dataclass(frozen=True)
class ResourcePanel:
    name: str
    rows: Sequence[ResourceBars]
    note: str = ""  # e.g. "7 connections, 3 requests reused one"


def resource_waterfall(panels: Sequence[ResourcePanel]) -> Figure:
    """One panel per mode, one row per request, on a shared axis: what each request waited
    for, as a browser's network panel shows it (the browser's own net-log for a browser mode,
    the lab client's log for the others)."""
    rows = [max(1, len(p.rows)) for p in panels]
    gap, head, foot = 0.55, 1.0, 0.5
    height = head + foot + sum(ROW_INCH * r + gap for r in rows) - gap
    width = 9.5
    fig = Figure(figsize=(width, height))
    labels = [r.label for p in panels for r in p.rows]
    left = (0.25 + 0.055 * max((len(s) for s in labels), default=4)) / width
    top = height - head
    axes: list = []
    right = 0.0
    for panel, n in zip(panels, rows, strict=True):
        ax = fig.add_axes(
            (left, (top - ROW_INCH * n) / height, 0.98 - left, ROW_INCH * n / height),
            sharex=axes[0] if axes else None,
        )
        axes.append(ax)
        top -= ROW_INCH * n + gap
        boxes: dict[str, list] = {p: [] for p in RESOURCE_COLORS}
        end = 0.0
        for i, row in enumerate(panel.rows):
            for phase, a, b in row.bars:
                x0, x1 = a * 1000, max(b * 1000, a * 1000 + 0.3)  # a zero-length phase shows
                boxes[phase].append(
                    ((x0, i - 0.35), (x0, i + 0.35), (x1, i + 0.35), (x1, i - 0.35))
                )
                end = max(end, b)
        for phase, verts in boxes.items():
            if verts:
                path = MplPath.make_compound_path_from_polys(np.asarray(verts, dtype=float))
                ax.add_artist(
                    PathPatch(path, facecolor=RESOURCE_COLORS[phase], edgecolor="none", lw=0)
                )
        ax.set_yticks(range(len(panel.rows)), [r.label for r in panel.rows], fontsize=7)
        ax.set_ylim(max(1, len(panel.rows)) - 0.4, -0.6)
        note = f", {panel.note}" if panel.note else ""
        ax.set_title(f"{panel.name}: {end * 1000:.0f} ms{note}", loc="left", y=1, fontsize=9)
        ax.grid(axis="x", color="#eee")
        ax.set_axisbelow(True)
        right = max(right, end * 1000)
    for ax in axes[:-1]:
        ax.tick_params(labelbottom=False)
    if axes:
        axes[-1].set_xlabel("time since the mode's first request (ms)")
        axes[-1].set_xlim(0, right * 1.02 or 1.0)
    fig.text(
        0.01, 1 - 0.1 / height, "Requests per mode: the browser's and the lab client's",
        ha="left", va="top", fontweight="bold", fontsize=11,
    )  # fmt: skip
    handles = [Patch(color=RESOURCE_COLORS[p], label=RESOURCE_LABELS[p]) for p in RESOURCE_COLORS]
    fig.legend(
        handles=handles, loc="upper left", ncol=2, frameon=False, fontsize=8,
        bbox_to_anchor=(0.005, 1 - 0.3 / height),
    )  # fmt: skip
    return fig


# --- packet ladder ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LadderPacket:
    """One captured packet, seq/ack relative to each side's ISN as Wireshark shows them."""

    t: float  # seconds since the connection's first packet
    from_client: bool
    flags: str  # "SYN", "SYN, ACK", "PSH, ACK", "FIN, ACK", ...
    seq: int
    ack: int | None
    length: int


def ladder(packets: Sequence[LadderPacket], title: str, max_rows: int = 26) -> Figure:
    """Client on the left, server on the right, one sloped arrow per packet in capture order."""
    shown: list[LadderPacket | None] = list(packets)
    if len(packets) > max_rows:  # keep the handshake and the teardown, elide the middle
        head, tail = max_rows // 2, max_rows - max_rows // 2 - 1
        shown = [*packets[:head], None, *packets[-tail:]]
    step = 0.55
    height = 1.4 + step * len(shown)
    fig = Figure(figsize=(8.2, height))
    ax = fig.add_subplot()
    xc, xs = 0.18, 0.82
    for x, name in ((xc, "client"), (xs, "server")):
        ax.plot([x, x], [0, -(len(shown) + 0.3) * step], color="#333", lw=1.5)
        ax.text(x, 0.25 * step, name, ha="center", va="bottom", fontweight="bold", fontsize=10)
    for i, p in enumerate(shown):
        y = -(i + 0.5) * step
        if p is None:
            elided = len(packets) - (len(shown) - 1)
            ax.text(
                0.5,
                y,
                f"… {elided} more packets (data and ACKs) …",
                ha="center",
                va="center",
                style="italic",
                color="#555",
            )
            continue
        a, b = (xc, xs) if p.from_client else (xs, xc)
        color = _flag_color(p.flags)
        ax.annotate(
            "",
            xy=(b, y - 0.35 * step),
            xytext=(a, y + 0.1 * step),
            arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.4},
        )
        label = f"[{p.flags}] seq={p.seq}" + (f" ack={p.ack}" if p.ack is not None else "")
        if p.length:
            label += f" len={p.length}"
        ax.text(
            0.5,
            y - 0.02 * step,
            label,
            ha="center",
            va="bottom",
            fontsize=8,
            color=color,
            bbox={"fc": "white", "ec": "none", "pad": 0.6},
        )
        tx = 0.02 if p.from_client else 0.98
        ax.text(
            tx,
            y - 0.12 * step,
            f"{p.t * 1000:.3f} ms",
            ha="left" if p.from_client else "right",
            va="center",
            fontsize=7,
            color="#666",
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(-(len(shown) + 0.5) * step, 0.8 * step)
    ax.axis("off")
    ax.set_title(title, loc="left", y=1)
    fig.text(
        0.5,
        0.005,
        "time runs downwards; times are from the capture, ms since the SYN; "
        "seq/ack relative, as Wireshark shows them",
        ha="center",
        fontsize=7,
        color="#555",
    )
    _margins(fig, left=0.1, right=0.1, top=0.35, bottom=0.3)
    return fig


def _flag_color(flags: str) -> str:
    if "RST" in flags:
        return "#8b0000"
    if "SYN" in flags:
        return PHASE_COLORS["handshake"]
    if "FIN" in flags:
        return PHASE_COLORS["teardown"]
    if "PSH" in flags:
        return PHASE_COLORS["receiving"]
    return "#555555"


# --- packets per category ----------------------------------------------------------------------


def packet_categories(counts: Sequence[tuple[str, Mapping[str, int]]]) -> Figure:
    """Stacked horizontal bars, one per mode, with the count written in each segment."""
    names = [name for name, _ in counts]
    fig = Figure(figsize=(9, 1.3 + 0.6 * len(counts)))
    ax = fig.add_subplot()
    total_max = max((sum(c.values()) for _, c in counts), default=1) or 1
    for i, (_, c) in enumerate(counts):
        left = 0
        for cat, color in CATEGORY_COLORS.items():
            v = c.get(cat, 0)
            if not v:
                continue
            ax.barh(i, v, left=left, color=color, height=0.6)
            if v / total_max > 0.035:
                ax.text(
                    left + v / 2,
                    i,
                    str(v),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if cat in ("data", "teardown") else "black",
                )
            left += v
        cost = f"{c.get('handshake', 0)} handshake + {c.get('teardown', 0)} teardown"
        ax.text(left + total_max * 0.01, i, f"{left} packets\n({cost})", va="center", fontsize=8)
    ax.set_yticks(range(len(names)), names)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_xlim(0, total_max * 1.4)
    ax.set_xlabel("packets in the capture")
    ax.set_title("Packets per category per mode", loc="left", y=1)
    handles = [Patch(color=col, label=cat) for cat, col in CATEGORY_COLORS.items()]
    ax.legend(
        handles=handles,
        loc="lower right",
        fontsize=8,
        ncol=5,
        frameon=False,
        bbox_to_anchor=(1.0, 1.0),
    )
    ax.grid(axis="x", color="#eee")
    ax.set_axisbelow(True)
    _margins(
        fig,
        left=0.2 + 0.07 * max((len(n) for n in names), default=4),
        right=0.2,
        top=0.55,
        bottom=0.45,
    )
    return fig


# --- Stevens graph -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SeqSeries:
    label: str
    points: Sequence[tuple[float, int]]  # (ms since the request was captured, seq end)
    color: str


def stevens(series: Sequence[SeqSeries], title: str, rtt_ms: float | None = None) -> Figure:
    """Sequence number (KB of the response sent) against time, one line per connection kind."""
    fig = Figure(figsize=(8.5, 4.6))
    ax = fig.add_subplot()
    for s in series:
        if not s.points:
            continue
        xs = [0.0] + [p[0] for p in s.points]  # the request arrives: nothing sent yet
        ys = [0.0] + [p[1] / 1024 for p in s.points]
        ax.step(xs, ys, where="post", color=s.color, lw=1.2, alpha=0.6)
        ax.plot(xs, ys, "o", ms=3, color=s.color, label=f"{s.label}: done at {xs[-1]:.1f} ms")
    xlabel = "time since the capture saw the request (ms)"
    right = max((p[0] for s in series for p in s.points), default=0)
    if rtt_ms and rtt_ms > 0 and right / rtt_ms <= 40:  # a line per RTT, if they stay apart
        for k in range(1, int(right / rtt_ms) + 1):
            ax.axvline(k * rtt_ms, color="#bbb", lw=0.7, ls=":")
        xlabel += f"; dotted lines every RTT ({rtt_ms:.1f} ms)"
    elif rtt_ms is not None:
        xlabel += f" (RTT {rtt_ms:.2f} ms: too short for rounds to show)"
    ax.set_xlabel(xlabel)
    ax.set_ylabel("response bytes sent (KB, relative seq)")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.set_title(title, loc="left", y=1)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(color="#eee")
    ax.set_axisbelow(True)
    _margins(fig, left=0.65, right=0.2, top=0.35, bottom=0.5)
    return fig
