"""`python -m lab analyze FILE [--json]`: any TCP capture, read the way Wireshark numbers it.

The human view is a plain-text table (one row per stream) under the capture's totals;
`--json` prints one JSON object: the totals (`packets`, `connections`, `syn`, `fin`, `rst`,
`retransmissions`, ... as in docs/architecture.md), `truncated`, `warnings`, and a `streams`
list with every connection's details. The JSON is written as it is made, a batch of streams
at a time, with the C encoder (`json.dump` on a file takes the pure-Python one): a capture
of 100,000 connections gives about 100 MB of text, which never has to exist whole.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TextIO

from lab.analysis import Analysis, Connection, analyze
from lab.capture import Capture, read_capture


def run(args: argparse.Namespace) -> int:
    capture = read_capture(args.pcap)
    analysis = analyze(capture)
    try:
        if args.json:
            write_json(capture, analysis, sys.stdout)
            sys.stdout.write("\n")
        else:
            print_table(capture, analysis)
        sys.stdout.flush()
    except BrokenPipeError:  # `... | head`: the reader left, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if _is_the_command():
        # Freeing a million packet records one by one took a second on the way out; the
        # process is done, its memory goes back whole. (Only as `python -m lab analyze`:
        # callers in the same process keep their objects and get a return value.)
        sys.stderr.flush()
        os._exit(0)
    return 0


def _is_the_command() -> bool:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return spec is not None and spec.name == "lab.__main__"


def to_json(capture: Capture, analysis: Analysis) -> dict:
    """The `--json` object (`write_json` writes the same text without building it whole)."""
    out = {"file": capture.name, "format": capture.format, "link_types": capture.link_types}
    out.update(analysis.to_dict())
    out["skipped_frames"] = capture.skipped
    return out


STREAMS_PER_WRITE = 2000  # connections encoded per write: about 2 MB of text


def write_json(capture: Capture, analysis: Analysis, out: TextIO) -> None:
    """Write exactly `json.dumps(to_json(capture, analysis), separators=(",", ":"))`, one batch
    of streams at a time."""
    encode = json.JSONEncoder(separators=(",", ":")).encode
    head = {"file": capture.name, "format": capture.format, "link_types": capture.link_types}
    head.update(analysis.to_dict(streams=False))
    head["streams"] = []
    head["skipped_frames"] = capture.skipped
    text = encode(head)
    # The key is the last "streams":[] in the text: a string value holding it would show
    # escaped quotes, and only a number follows the key.
    cut = text.rindex('"streams":[]') + len('"streams":[')
    out.write(text[:cut])
    conns = analysis.connections
    for start in range(0, len(conns), STREAMS_PER_WRITE):
        batch = ",".join(encode(c.to_dict()) for c in conns[start : start + STREAMS_PER_WRITE])
        out.write("," + batch if start else batch)
    out.write(text[cut:])


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f}"


def _teardown(c: Connection) -> str:
    if c.teardown in ("none", "half-close"):
        return c.teardown
    if c.teardown == "reset":
        return f"RST by {c.rst_by}" if c.rst_by else "reset"
    return f"{c.teardown}, {c.closed_first} first"


COLUMNS = (  # (title, right-aligned)
    ("stream", True),
    ("client → server", False),
    ("pkts", True),
    ("hs pkts", True),
    ("RTT ms", True),
    ("data c/s", True),
    ("bytes c/s", True),
    ("acks c/s", True),
    ("retr", True),
    ("teardown", False),
    ("td pkts", True),
    ("ms", True),
)


def _row(c: Connection) -> tuple[str, ...]:
    return (
        str(c.stream),
        f"{c.client} → {c.server}",
        str(c.packets),
        str(c.handshake_packets),
        _ms(c.handshake_rtt),
        f"{c.data_segments[0]}/{c.data_segments[1]}",
        f"{c.payload_bytes[0]}/{c.payload_bytes[1]}",
        f"{c.pure_acks[0]}/{c.pure_acks[1]}",
        str(sum(c.retransmissions)),
        _teardown(c),
        str(c.teardown_packets),
        _ms(c.duration),
    )


def table_lines(rows: list[tuple[str, ...]]) -> list[str]:
    """The rows under a header and a rule, each column as wide as its widest cell. Plain text
    on purpose: rich took 1-3 s to lay out 200 rows, longer than the analysis of 100k packets."""
    widths = [max([len(title)] + [len(r[i]) for r in rows]) for i, (title, _) in enumerate(COLUMNS)]

    def line(cells) -> str:
        return "  ".join(
            cell.rjust(w) if right else cell.ljust(w)
            for cell, w, (_, right) in zip(cells, widths, COLUMNS, strict=True)
        ).rstrip()

    return [line([t for t, _ in COLUMNS]), "  ".join("─" * w for w in widths)] + [
        line(r) for r in rows
    ]


def print_table(capture: Capture, analysis: Analysis, limit: int = 200, out=None) -> None:
    out = out or sys.stdout
    lines = []
    if capture.truncated:
        lines.append(f"truncated capture: {capture.problem}; analysed up to the cut")
    lines += [f"warning: {w}" for w in analysis.warnings]
    lines.append(
        f"{capture.name}: {capture.format}, {capture.frames} frames, {analysis.packets} TCP "
        f"packets, {len(analysis.connections)} connections (tcp.stream), SYN {analysis.syn}, "
        f"SYN-ACK {analysis.synack}, FIN {analysis.fin}, RST {analysis.rst}, "
        f"retransmissions {analysis.retransmissions}, {analysis.bytes} bytes on the wire"
    )
    apart = [
        (analysis.out_of_order, "out of order"),
        (analysis.spurious_retransmission, "spurious retransmissions"),
        (analysis.keep_alive, "keep-alives"),
        (analysis.zero_window_probe, "zero-window probes"),
    ]
    if any(n for n, _ in apart):  # Wireshark's names for what is not a retransmission
        lines.append("not retransmissions: " + ", ".join(f"{what} {n}" for n, what in apart))
    lines.append("")
    lines += table_lines([_row(c) for c in analysis.connections[:limit]])
    lines.append("")
    lines.append("c/s: sent by the client / by the server; hs: handshake; td: teardown")
    if len(analysis.connections) > limit:
        lines.append(f"... {len(analysis.connections) - limit} more streams (--json shows all)")
    out.write("\n".join(lines) + "\n")
