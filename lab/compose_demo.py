"""The in-container half of `docker compose up`: a line per SYN and FIN, then the comparison.

    python3 -m lab.compose_demo capture PCAP --port 3000:non-persistent ... -- tcpdump ARGS
        starts tcpdump (which writes PCAP), follows PCAP as it grows and prints one line per
        segment with SYN, FIN or RST; on SIGTERM stops tcpdump with SIGINT so it flushes.
    python3 -m lab.compose_demo report PCAP --port 3000:non-persistent ...
        follows PCAP until every port has seen a finished connection, none is open and the
        wire has been quiet for --drain seconds (the client is done and the capture drained),
        then prints the table of the modes and exits 0. That exit ends
        `docker compose up --abort-on-container-exit` with status 0.

Runs inside tcplab/capture: standard library plus Debian's python3-dpkt only. The pcap is read
incrementally (`lab.capture.PcapStream`, fed bytes, h11-style) because the file is still being
written; `lab.capture` decodes each frame, `lab.analysis` numbers the connections (Wireshark's
tcp.stream rule) and `lab.tcp` names the flags. Pure parts first, the shell (files, processes,
signals) last.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from lab.analysis.streams import stream_tracker
from lab.capture import Packet, PcapStream, Record, decode_frame
from lab.tcp import ACK, FIN, RST, SYN, flag_names, is_syn

__all__ = ["PcapStream", "Tally", "decode", "main", "table"]

# ---------------------------------------------------------------- pure: frames to segments


def decode(linktype: int, record: Record) -> Packet | None:
    """The TCP segment in a pcap record, or None (not TCP over IP, or too short)."""
    return decode_frame(linktype, record.data, record.ts, record.wire_len)


def _line_flags(flags: int) -> str:
    """Wireshark's spelling of the flags a line is about: [SYN], [SYN, ACK], [FIN, ACK], [RST]."""
    return "[" + flag_names(flags & (SYN | FIN | RST | ACK)) + "]"


# ---------------------------------------------------------------- pure: tally per server port


@dataclass
class ModeCount:
    """What the capture saw on one server port."""

    port: int
    mode: str
    connections: int = 0  # streams that began with a SYN in this capture
    syn: int = 0  # SYN without ACK: a client opening a connection
    syn_ack: int = 0
    fin: int = 0  # segments with FIN, both directions
    server_fin: int = 0
    rst: int = 0
    packets: int = 0
    bytes: int = 0  # on the wire, all headers included
    payload: int = 0
    closed: int = 0
    first_ts: float | None = None
    last_ts: float | None = None


@dataclass
class Tally:
    """Counts per server port, plus which connection (stream) every segment belongs to."""

    modes: dict[int, ModeCount]
    streams: dict[int, int] = field(default_factory=dict)  # tcp.stream -> the mode's conn no.
    state: dict[int, set] = field(default_factory=dict)  # stream -> {"client", "server", "rst"}
    first_ts: float | None = None
    last_ts: float | None = None
    # lab.analysis' rule (a new ISN on a used address pair is a new connection), fed in order
    stream_of: Callable[[Packet], int] = field(
        default_factory=lambda: stream_tracker(itertools.count().__next__)
    )

    @classmethod
    def of(cls, ports: dict[int, str]) -> Tally:
        return cls({port: ModeCount(port, mode) for port, mode in ports.items()})

    def add(self, seg: Packet) -> str | None:
        """Count one segment; return its line when it carries SYN, FIN or RST."""
        if seg.dport in self.modes:
            port, from_server = seg.dport, False
        elif seg.sport in self.modes:
            port, from_server = seg.sport, True
        else:
            return None
        key = self.stream_of(seg)
        m = self.modes[port]
        self.first_ts = seg.ts if self.first_ts is None else self.first_ts
        self.last_ts = seg.ts
        m.first_ts = seg.ts if m.first_ts is None else m.first_ts
        m.last_ts = seg.ts
        m.packets += 1
        m.bytes += seg.wire_len
        m.payload += seg.payload_len
        syn, fin, rst = seg.flags & SYN, seg.flags & FIN, seg.flags & RST
        if is_syn(seg.flags) and key not in self.state:
            m.connections += 1
            self.streams[key] = m.connections
            self.state[key] = set()
        m.syn += is_syn(seg.flags)
        m.syn_ack += bool(syn and seg.flags & ACK)
        m.fin += bool(fin)
        m.server_fin += bool(fin and from_server)
        m.rst += bool(rst)
        seen = self.state.get(key)
        if seen is not None and (fin or rst) and not self._finished(seen):
            seen.add("rst" if rst else "server" if from_server else "client")
            m.closed += self._finished(seen)
        if not (syn or fin or rst):
            return None
        conn = self.streams.get(key)
        label = f"conn {conn}" if conn else "conn ?"
        return (
            f"+{seg.ts - self.first_ts:7.3f}s  {m.mode:<14} {label:<7} "
            f"{_ep(seg.src, seg.sport)} → {_ep(seg.dst, seg.dport)}  {_line_flags(seg.flags)}"
        )

    @staticmethod
    def _finished(seen: set) -> bool:
        return "rst" in seen or {"client", "server"} <= seen

    def open_streams(self) -> int:
        return sum(not self._finished(s) for s in self.state.values())

    def complete(self) -> bool:
        """Every port saw a connection finish, and none is still open."""
        return all(m.closed > 0 for m in self.modes.values()) and self.open_streams() == 0


def _ep(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


COLUMNS = (
    ("connections", "connections"),
    ("SYN", "syn"),
    ("SYN/ACK", "syn_ack"),
    ("FIN", "fin"),
    ("packets", "packets"),
    ("bytes", "bytes"),
    ("payload", "payload"),
)


def table(tally: Tally) -> str:
    """The comparison, one row per mode, as fixed-width text."""
    head = ["mode", "port", *(title for title, _ in COLUMNS)]
    rows = [
        [m.mode, str(m.port), *(str(getattr(m, attr)) for _, attr in COLUMNS)]
        for m in tally.modes.values()
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def fmt(r: list[str]) -> str:
        cells = zip(r, widths, strict=True)
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(cells))

    rule = "-" * len(fmt(head))
    lines = [fmt(head), rule, *(fmt(r) for r in rows)]
    modes = list(tally.modes.values())
    if len(modes) == 2 and modes[1].packets:
        a, b = modes
        lines += [
            rule,
            f"{a.mode} used {a.connections} connection(s) and {a.packets / b.packets:.1f}x the "
            f"packets of {b.mode} ({b.connections} connection(s)) for the same work.",
        ]
    return "\n".join(lines)


def parse_port(text: str) -> tuple[int, str]:
    port, sep, mode = text.partition(":")
    if not sep or not port.isdigit() or not mode:
        raise argparse.ArgumentTypeError(f"expected PORT:MODE, got {text!r}")
    return int(port), mode


# ---------------------------------------------------------------- the shell: files, processes


def follow(path: str, stop, poll: float = 0.02) -> Iterator[Packet | None]:
    """Segments from a pcap that is still being written. Yields None when it has to wait
    (so the caller can check time), and ends once stop() is true and the file is drained."""
    stream = PcapStream()
    while not os.path.exists(path):
        if stop():
            return
        yield None
        time.sleep(poll)
    with open(path, "rb") as f:
        while True:
            chunk = f.read(65536)
            if chunk:
                for record in stream.feed(chunk):
                    seg = decode(stream.linktype or 0, record)
                    if seg is not None:
                        yield seg
                continue
            if stop():
                return
            yield None
            time.sleep(poll)


def _out(line: str) -> None:
    print(line, flush=True)


def cmd_capture(args: argparse.Namespace) -> int:
    """Run tcpdump into args.pcap and print its SYN/FIN/RST segments until SIGTERM."""
    if not args.tcpdump:
        _out("capture: give the tcpdump command after --")
        return 2
    if os.path.exists(args.pcap):
        os.remove(args.pcap)  # an old run's file: healthchecks must see the new one only
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signo, frame: stopping.append(signo))
    signal.signal(signal.SIGINT, lambda signo, frame: stopping.append(signo))
    proc = subprocess.Popen(args.tcpdump)
    tally = Tally.of(dict(args.port))

    interrupted: list[bool] = []

    def stop() -> bool:
        if stopping and not interrupted and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # tcpdump flushes and closes the file on SIGINT
            interrupted.append(True)
        return proc.poll() is not None

    for seg in follow(args.pcap, stop):
        if seg is not None and (line := tally.add(seg)):
            _out(line)
    code = proc.wait()
    # Stopped by us: tcpdump's own exit status on SIGINT is not a failure of the capture.
    return 0 if stopping else code


def cmd_report(args: argparse.Namespace) -> int:
    """Wait until the demo's traffic is over and drained, then print the comparison."""
    tally = Tally.of(dict(args.port))
    started = time.monotonic()
    last_change = started
    seen = 0
    state = {"done": False, "timeout": False}

    def stop() -> bool:
        now = time.monotonic()
        if now - started > args.timeout:
            state["timeout"] = True
            return True
        if tally.complete() and now - last_change >= args.drain:
            state["done"] = True
        return state["done"]

    for seg in follow(args.pcap, stop):
        if seg is not None:
            tally.add(seg)
            seen += 1
            last_change = time.monotonic()
    _out("")
    _out(f"comparison from {args.pcap} ({seen} TCP segments)")
    _out(table(tally))
    if state["timeout"] and not state["done"]:
        print(
            f"report: the demo did not finish within {args.timeout:.0f} s "
            f"({tally.open_streams()} connection(s) still open)",
            file=sys.stderr,
        )
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python3 -m lab.compose_demo", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for name, fn in (("capture", cmd_capture), ("report", cmd_report)):
        s = sub.add_parser(name)
        s.add_argument("pcap")
        s.add_argument(
            "--port", type=parse_port, action="append", required=True, metavar="PORT:MODE"
        )
        s.set_defaults(func=fn)
        if name == "report":
            s.add_argument("--drain", type=float, default=1.0, help="quiet seconds (default 1)")
            s.add_argument("--timeout", type=float, default=120.0, help="give up after S s")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after `--` is the tcpdump command, left to tcpdump whatever it looks like.
    cut = argv.index("--") if "--" in argv else len(argv)
    args = build_parser().parse_args(argv[:cut])
    args.tcpdump = argv[cut + 1 :]
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
