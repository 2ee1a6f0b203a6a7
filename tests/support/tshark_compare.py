"""Compare `lab.analysis` with tshark on one capture, stream by stream (tests and by hand).

    python -m tests.support.tshark_compare FILE...

tshark prints per frame its tcp.stream and the fields we count; both sides are reduced to
per-stream counts under the same names, and `differences` lists every count that differs.
Left out on both sides: frames with more than one TCP header (a tunnel inside a tunnel that
tshark decodes twice), and ICMP errors quoting a TCP header, which tshark files under the quoted
connection's stream and we do not count as TCP packets.
"""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict

from lab.analysis import analyze, split_streams
from lab.capture import read_capture
from lab.tcp import FIN, RST, SYN

FIELDS = (
    "frame.number",
    "frame.protocols",
    "tcp.stream",
    "tcp.len",
    "tcp.flags",
    "tcp.analysis.retransmission",
    "tcp.analysis.fast_retransmission",
    "tcp.analysis.out_of_order",
    "tcp.analysis.spurious_retransmission",
    "tcp.analysis.keep_alive",
    "tcp.analysis.zero_window_probe",
)
# per-stream counts, named after the analysis' fields
COUNTS = (
    "packets",
    "syn",
    "fin",
    "rst",
    "payload_bytes",
    "retransmissions",
    "fast_retransmission",
    "out_of_order",
    "spurious_retransmission",
    "keep_alive",
    "zero_window_probe",
)
TIMEOUT_S = 120


def tshark_streams(path: str) -> tuple[dict[int, dict[str, int]], set[int]]:
    """Per tcp.stream, the counts tshark gives; and the frames left out (the module's doc)."""
    out = subprocess.run(
        ["tshark", "-n", "-r", path, "-Y", "tcp", "-T", "fields", "-E", "separator=/t"]
        + [x for f in FIELDS for x in ("-e", f)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    ).stdout
    streams: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTS, 0))
    multiple: set[int] = set()
    for line in out.splitlines():
        cells = line.split("\t")
        frame, protocols, *cells = cells
        if len(cells) < len(FIELDS) - 2 or not cells[0]:
            continue
        if "," in cells[0] or ":icmp" in protocols:
            multiple.add(int(frame))
            continue
        s = streams[int(cells[0])]
        s.setdefault("first_frame", int(frame))
        flags = int(cells[2], 16)
        s["packets"] += 1
        s["syn"] += bool(flags & SYN)
        s["fin"] += bool(flags & FIN)
        s["rst"] += bool(flags & RST)
        s["payload_bytes"] += int(cells[1] or 0)
        for name, cell in zip(COUNTS[5:], cells[3:], strict=True):
            s[name] += bool(cell)
    return dict(streams), multiple


def lab_streams(path: str, leave_out: set[int]) -> dict[int, dict[str, int]]:
    """The same counts from lab.analysis (frames in `leave_out` dropped first)."""
    capture = read_capture(path)
    if leave_out:
        capture.packets = [p for p in capture.packets if p.frame not in leave_out]
    out = {}
    streams = split_streams(capture.packets)
    for c, packets in zip(analyze(capture).connections, streams, strict=True):
        out[c.stream] = {
            "first_frame": packets[0].frame,
            "packets": c.packets,
            "syn": c.syn_packets + c.synack_packets,
            "fin": c.fin_packets,
            "rst": c.rst,
            "payload_bytes": sum(c.payload_bytes),
            # Wireshark 4.0 sets tcp.analysis.retransmission on spurious ones too
            "retransmissions": sum(c.retransmissions) + sum(c.spurious_retransmission),
            "fast_retransmission": sum(c.fast_retransmission),
            "out_of_order": sum(c.out_of_order),
            "spurious_retransmission": sum(c.spurious_retransmission),
            "keep_alive": sum(c.keep_alive),
            "zero_window_probe": sum(c.zero_window_probe),
        }
    return out


def differences(path: str) -> list[str]:
    """Every per-stream count where we and tshark differ, one line each (empty: agreed).
    Streams are matched by their first frame, so one stream missing on a side shows as that
    stream, not as every later number shifted; a stream numbered differently is a line too."""
    theirs, multiple = tshark_streams(path)
    ours = lab_streams(path, multiple)
    if multiple:  # tshark numbers streams of frames we left out: compare by first frame only
        theirs = {i: s for i, s in enumerate(sorted(theirs.values(), key=_first))}
    by_frame = {s["first_frame"]: (n, s) for n, s in theirs.items()}
    lines = []
    for number, mine in sorted(ours.items()):
        found = by_frame.pop(mine["first_frame"], None)
        if found is None:
            lines.append(f"stream {number} (frame {mine['first_frame']}): not in tshark")
            continue
        their_number, their = found
        if their_number != number:
            lines.append(f"stream {number} (frame {mine['first_frame']}): tshark {their_number}")
        for name in COUNTS:
            if mine[name] != their[name]:
                lines.append(
                    f"stream {number} (frame {mine['first_frame']}) {name}: {mine[name]}, "
                    f"tshark {their[name]}"
                )
    for their_number, their in by_frame.values():
        lines.append(f"tshark stream {their_number} (frame {their['first_frame']}): not ours")
    return lines


def _first(stream: dict[str, int]) -> int:
    return stream["first_frame"]


if __name__ == "__main__":
    failed = 0
    for arg in sys.argv[1:]:
        found = differences(arg)
        failed += bool(found)
        for line in found[:5000]:
            print(f"{arg}: {line}")
    print(f"{failed} of {len(sys.argv) - 1} files differ")
    sys.exit(1 if failed else 0)
