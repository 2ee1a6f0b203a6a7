"""`python -m lab analyze FILE [--json]`: any TCP capture, read the way Wireshark numbers it.

The human view is a plain-text table (one row per stream) under the capture's totals;
`--json` prints one JSON object: the totals (`packets`, `connections`, `syn`, `fin`, `rst`,
`retransmissions`, ... as in docs/architecture.md), `truncated`, `warnings`, and a `streams`
list with every connection's details. The JSON is written as it is made, a batch of streams
at a time, with the C encoder (`json.dump` on a file takes the pure-Python one): a capture
of 100,000 connections gives about 100 MB of text, which never has to exist whole.

On a machine with a second core, a large capture's streams are analysed and encoded by two
processes: a forked child does the second half of the streams into an anonymous file while
this process does the first half, then writes the child's text after its own (see
`write_capture_json`).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from collections.abc import Callable
from typing import TextIO

from lab.analysis import Analysis, Connection, analyze, slow_start_restarts, split_streams
from lab.analysis.total import analyze_streams, of_connections, totals
from lab.capture import Capture, read_capture, without_gc


def run(args: argparse.Namespace) -> int:
    # No cyclic garbage collection in the whole command: a million packet records and their
    # connections hold no cycles, yet each collection that any allocation between the steps
    # started walked all of them (2 s of the 11 s of `--json` on the benchmark's capture).
    with without_gc():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    capture = read_capture(args.pcap)
    try:
        if args.json:
            write_capture_json(capture, sys.stdout, workers=_cores())
            sys.stdout.write("\n")
        else:
            print_table(capture, analyze(capture))
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


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may run on
    except (AttributeError, OSError):
        return os.cpu_count() or 1


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
PARALLEL_FROM = 20_000  # streams from which a second process pays for its fork


def write_json(capture: Capture, analysis: Analysis, out: TextIO) -> None:
    """Write exactly `json.dumps(to_json(capture, analysis), separators=(",", ":"))`, one batch
    of streams at a time."""
    _write_head(capture, analysis, out, lambda: _write_streams(analysis.connections, out, True))


def write_capture_json(capture: Capture, out: TextIO, workers: int = 1) -> None:
    """`write_json` of `analyze(capture)`, the same text. With `workers` > 1 and many streams,
    a forked child analyses and encodes the second half of the streams while this process does
    the first half; its text and its totals come back through an anonymous file. A fork, not a
    process pool: the child has the packets already, so nothing is pickled either way. Only
    from a single-threaded process (the command)."""
    streams = split_streams(capture.packets)
    half = len(streams) // 2
    second = None
    if workers > 1 and len(streams) >= PARALLEL_FROM:
        second = _in_child(lambda file: _analyze_and_write(streams[half:], half, file))
    if second is None:
        conns = analyze_streams(streams)
        write_json(capture, of_connections(conns, capture.packets, capture), out)
        return
    conns = analyze_streams(streams[:half])
    # Encoded before waiting for the child: the head, written first, needs its totals.
    mine = _text(lambda file: _write_streams(conns, file, first=True))
    summed, rest = totals(conns), second()
    if rest is None:  # the child failed: its half is analysed here, the text is the same
        more = analyze_streams(streams[half:], first=half)
        summed, rest = totals(conns + more), _text(lambda file: _write_streams(more, file, False))
    else:
        head, rest = rest.split("\n", 1)
        theirs = json.loads(head)
        summed = {key: n + theirs[key] for key, n in summed.items()}
    analysis = of_connections(conns, capture.packets, capture, summed)

    def streams_text() -> None:
        out.write(mine)
        out.write(rest)

    _write_head(capture, analysis, out, streams_text, connections=len(streams))


def _analyze_and_write(streams: list, first: int, file: TextIO) -> None:
    """The child's half: its totals as one JSON line, then its streams' text."""
    conns = analyze_streams(streams, first=first)
    file.write(json.dumps(totals(conns)) + "\n")
    _write_streams(conns, file, first=False)


def _write_head(
    capture: Capture,
    analysis: Analysis,
    out: TextIO,
    write_streams: Callable[[], None],
    connections: int | None = None,
) -> None:
    """The object around the streams, with `write_streams` writing the list's items."""
    encode = json.JSONEncoder(separators=(",", ":")).encode
    head = {"file": capture.name, "format": capture.format, "link_types": capture.link_types}
    head.update(analysis.to_dict(streams=False))
    if connections is not None:  # `analysis` holds a part of the connections, the totals all
        head["connections"] = connections
    head["streams"] = []
    head["skipped_frames"] = capture.skipped
    text = encode(head)
    # The key is the last "streams":[] in the text: a string value holding it would show
    # escaped quotes, and only a number follows the key.
    cut = text.rindex('"streams":[]') + len('"streams":[')
    out.write(text[:cut])
    write_streams()
    out.write(text[cut:])


def _write_streams(conns: list[Connection], out: TextIO, first: bool) -> None:
    """The streams' JSON objects, comma-separated; `first`: no comma before the first one."""
    for start in range(0, len(conns), STREAMS_PER_WRITE):
        batch = ",".join(map(connection_json, conns[start : start + STREAMS_PER_WRITE]))
        out.write(batch if first and not start else "," + batch)


def _text(write: Callable[[TextIO], None]) -> str:
    buffer = io.StringIO()
    write(buffer)
    return buffer.getvalue()


def _in_child(work: Callable[[TextIO], None]) -> Callable[[], str | None] | None:
    """Start a forked child that runs `work` on an anonymous file; return a function that
    waits for it and returns the file's text (None if the child failed), or None when no
    child could be started."""
    try:
        fd = os.memfd_create("lab-analyze")
    except (AttributeError, OSError):
        return None
    try:
        pid = os.fork()
    except OSError:
        os.close(fd)
        return None
    if pid == 0:  # the child: work, then exit without running the parent's cleanup
        status = 1
        try:
            with open(fd, "w", encoding="utf-8") as file:
                work(file)
            status = 0
        finally:
            os._exit(status)

    def result() -> str | None:
        _, status = os.waitpid(pid, 0)
        with open(fd, encoding="utf-8") as file:
            file.seek(0)  # the child's writes moved the offset this descriptor shares
            return file.read() if os.waitstatus_to_exitcode(status) == 0 else None

    return result


_P = '{"client":%d,"server":%d}'  # a pair: sent by the client, by the server
_CONNECTION = (
    '{"stream":%d,"client":"%s","server":"%s","client_addr":"%s","client_port":%d,'
    '"server_addr":"%s","server_port":%d,"roles_from":"%s","start":%s,"end":%s,'
    '"duration_s":%r,"packets":%d,"bytes":%d,"syn_packets":%d,"syn_retransmissions":%d,'
    '"synack_packets":%d,"handshake_packets":%d,"handshake_complete":%s,'
    '"handshake_rtt_ms":%s,"t_syn":%s,"t_established":%s,"teardown":"%s",'
    '"teardown_complete":%s,"teardown_packets":%d,"closed_first":%s,"time_wait":%s,'
    '"t_first_fin":%s,"t_teardown_end":%s,"fin_packets":%d,"rst":%d,"rst_by":%s,'
    f'"data_segments":{_P},"pure_acks":{_P},"payload_bytes":{_P},"retransmissions":{_P},'
    f'"fast_retransmission":{_P},"out_of_order":{_P},"spurious_retransmission":{_P},'
    f'"keep_alive":{_P},"zero_window_probe":{_P},"resent":{_P},'
    '"overhead_packets":%d,"t_last_server_byte":%s,'
    '"mss":%d,"syn_mss":%d,"slow_start_restarts":%d,"flights":[%s]}'
)
_FLIGHT = (
    '{"burst":%d,"round":%d,"start":%s,"end":%s,"segments":%d,"bytes":%d,'
    '"in_flight_max":%d,"cwnd_segments":%d}'
)


def connection_json(c: Connection) -> str:
    """Exactly `json.dumps(c.to_dict(), separators=(",", ":"))`, written from the attributes
    without the dict: building and encoding 95,000 dicts took 4 s, longer than the analysis.
    Floats are written by repr, as json writes them; the strings (addresses, teardown kinds,
    sides) are ASCII without quotes or backslashes, so they need no escaping. The properties
    and small helpers are inlined (a Python call each, a dozen per connection, was a fifth of
    the time). A float's repr (about 1 µs, the largest cost left) is made once per float
    object: the times are the packets' own `ts` objects, and the SYN's is often the start, the
    last packet's the teardown's end, a flight's last segment the server's last byte.
    `tests/unit/test_analyze_command.py` holds it to json.dumps on every corpus capture."""
    start, end, t_syn, t_est = c.start, c.end, c.t_syn, c.t_established
    t_fin, t_end, t_last = c.t_first_fin, c.t_teardown_end, c.t_last_server_byte
    closed, wait, rst_by = c.closed_first, c.time_wait, c.rst_by
    caddr, cport, saddr, sport = c.client_addr, c.client_port, c.server_addr, c.server_port
    flights = c.flights
    acks = c.pure_acks
    r_start, r_end = repr(start), repr(end)
    r_last = "null" if t_last is None else repr(t_last)
    return _CONNECTION % (
        c.stream,
        f"[{caddr}]:{cport}" if ":" in caddr else f"{caddr}:{cport}",  # Connection.client
        f"[{saddr}]:{sport}" if ":" in saddr else f"{saddr}:{sport}",
        caddr, cport, saddr, sport, c.roles_from, r_start, r_end, end - start, c.packets, c.bytes,
        c.syn_packets, c.syn_retransmissions, c.synack_packets, c.handshake_packets,
        "true" if c.handshake_complete else "false",
        "null" if t_syn is None or t_est is None else repr((t_est - t_syn) * 1000.0),
        "null" if t_syn is None else r_start if t_syn is start else repr(t_syn),
        "null" if t_est is None else repr(t_est),
        c.teardown, "true" if c.teardown_complete else "false", c.teardown_packets,
        "null" if closed is None else f'"{closed}"',
        "null" if wait is None else f'"{wait}"',
        "null" if t_fin is None else repr(t_fin),
        "null" if t_end is None else r_end if t_end is end else repr(t_end),
        c.fin_packets, c.rst, "null" if rst_by is None else f'"{rst_by}"',
        *c.data_segments, *acks, *c.payload_bytes, *c.retransmissions,
        *c.fast_retransmission, *c.out_of_order, *c.spurious_retransmission, *c.keep_alive,
        *c.zero_window_probe, *c.resent,
        c.handshake_packets + c.teardown_packets + acks[0] + acks[1],  # overhead_packets
        r_last,
        c.mss, c.syn_mss,
        slow_start_restarts(flights) if len(flights) > 1 else 0,  # it needs two
        ",".join([
            _FLIGHT % (
                f.burst, f.round, r0,
                r0 if f.end is f0 else r_last if f.end is t_last else repr(f.end),
                f.segments, f.bytes, f.in_flight_max, f.cwnd_segments,
            )
            for f in flights
            for f0 in (f.start,)
            for r0 in (r_last if f0 is t_last else repr(f0),)
        ]),
    )  # fmt: skip


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
    if any(n for n, _ in apart):  # what Wireshark does not name a retransmission
        lines.append("Wireshark's other names: " + ", ".join(f"{what} {n}" for n, what in apart))
    if analysis.resent:
        lines.append(
            f"resent data segments {analysis.resent} (a byte this capture had shown before, "
            "whatever Wireshark names them)"
        )
    lines.append("")
    lines += table_lines([_row(c) for c in analysis.connections[:limit]])
    lines.append("")
    lines.append("c/s: sent by the client / by the server; hs: handshake; td: teardown")
    if len(analysis.connections) > limit:
        lines.append(f"... {len(analysis.connections) - limit} more streams (--json shows all)")
    out.write("\n".join(lines) + "\n")
