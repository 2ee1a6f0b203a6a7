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
with a small incremental decoder (`PcapStream`, fed bytes, h11-style) because the file is
still being written; dpkt decodes each frame. Pure parts first, the shell (files, processes,
signals) last.
"""

from __future__ import annotations

import argparse
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import dpkt

TH_FIN, TH_SYN, TH_RST, TH_ACK = dpkt.tcp.TH_FIN, dpkt.tcp.TH_SYN, dpkt.tcp.TH_RST, dpkt.tcp.TH_ACK

# ---------------------------------------------------------------- pure: pcap records from bytes

_MAGIC = {
    0xA1B2C3D4: ("<", 1e-6),
    0xD4C3B2A1: (">", 1e-6),
    0xA1B23C4D: ("<", 1e-9),
    0x4D3CB2A1: (">", 1e-9),
}


class Record(NamedTuple):
    ts: float
    wire_len: int  # the frame's length on the wire (orig_len), whatever the snap length
    data: bytes


class PcapStream:
    """Feed it the bytes of a pcap file in any pieces; it returns each record once complete."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._endian: str | None = None
        self._scale = 1e-6
        self.linktype: int | None = None

    def feed(self, data: bytes) -> list[Record]:
        self._buf += data
        out: list[Record] = []
        if self._endian is None:
            if len(self._buf) < 24:
                return out
            magic = struct.unpack("<I", self._buf[:4])[0]
            if magic not in _MAGIC:
                raise ValueError(f"not a pcap file (magic {magic:#010x}); pcapng is not followed")
            self._endian, self._scale = _MAGIC[magic]
            self.linktype = struct.unpack(self._endian + "I", self._buf[20:24])[0] & 0x0FFFFFFF
            del self._buf[:24]
        pos = 0
        while len(self._buf) - pos >= 16:
            sec, frac, incl, orig = struct.unpack_from(self._endian + "IIII", self._buf, pos)
            if len(self._buf) - pos - 16 < incl:
                break  # the rest of this record is not written yet
            data = bytes(self._buf[pos + 16 : pos + 16 + incl])
            out.append(Record(sec + frac * self._scale, orig, data))
            pos += 16 + incl
        del self._buf[:pos]
        return out


class Segment(NamedTuple):
    ts: float
    src: str
    sport: int
    dst: str
    dport: int
    flags: int
    payload_len: int
    wire_len: int


def _ip_of(linktype: int, frame: bytes):
    if linktype == dpkt.pcap.DLT_EN10MB:
        return dpkt.ethernet.Ethernet(frame).data
    if linktype == dpkt.pcap.DLT_LINUX_SLL:
        return dpkt.sll.SLL(frame).data
    if linktype == 276:  # LINKTYPE_LINUX_SLL2: tcpdump -i any on newer libpcap
        from dpkt import sll2

        return sll2.SLL2(frame).data
    if linktype in (dpkt.pcap.DLT_RAW, 101):
        return dpkt.ip.IP(frame) if frame[:1] and frame[0] >> 4 == 4 else dpkt.ip6.IP6(frame)
    return None


def decode(linktype: int, record: Record) -> Segment | None:
    """The TCP segment in a frame, or None (not TCP over IP, or too short)."""
    try:
        ip = _ip_of(linktype, record.data)
    except (dpkt.UnpackError, IndexError, struct.error):
        return None
    if isinstance(ip, dpkt.ip.IP):
        src, dst, ip_payload = _addr(ip.src), _addr(ip.dst), ip.len - ip.hl * 4
    elif isinstance(ip, dpkt.ip6.IP6):
        src, dst, ip_payload = _addr(ip.src), _addr(ip.dst), ip.plen
    else:
        return None
    tcp = ip.data
    if not isinstance(tcp, dpkt.tcp.TCP):
        return None
    payload = max(0, ip_payload - tcp.off * 4)  # from the headers: right under a snap length
    return Segment(record.ts, src, tcp.sport, dst, tcp.dport, tcp.flags, payload, record.wire_len)


def _addr(raw: bytes) -> str:
    import socket

    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


def flag_names(flags: int) -> str:
    """Wireshark's spelling: [SYN], [SYN, ACK], [FIN, ACK], [RST]."""
    names = [n for bit, n in ((TH_SYN, "SYN"), (TH_FIN, "FIN"), (TH_RST, "RST")) if flags & bit]
    if flags & TH_ACK:
        names.append("ACK")
    return "[" + ", ".join(names) + "]"


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
    streams: dict[tuple, int] = field(default_factory=dict)  # (client, cport, port) -> conn no.
    state: dict[tuple, set] = field(default_factory=dict)  # stream -> {"client", "server", "rst"}
    first_ts: float | None = None
    last_ts: float | None = None

    @classmethod
    def of(cls, ports: dict[int, str]) -> Tally:
        return cls({port: ModeCount(port, mode) for port, mode in ports.items()})

    def add(self, seg: Segment) -> str | None:
        """Count one segment; return its line when it carries SYN, FIN or RST."""
        if seg.dport in self.modes:
            port, key, from_server = seg.dport, (seg.src, seg.sport, seg.dport), False
        elif seg.sport in self.modes:
            port, key, from_server = seg.sport, (seg.dst, seg.dport, seg.sport), True
        else:
            return None
        m = self.modes[port]
        self.first_ts = seg.ts if self.first_ts is None else self.first_ts
        self.last_ts = seg.ts
        m.first_ts = seg.ts if m.first_ts is None else m.first_ts
        m.last_ts = seg.ts
        m.packets += 1
        m.bytes += seg.wire_len
        m.payload += seg.payload_len
        syn, fin, rst = seg.flags & TH_SYN, seg.flags & TH_FIN, seg.flags & TH_RST
        if syn and not seg.flags & TH_ACK and key not in self.state:
            m.connections += 1
            self.streams[key] = m.connections
            self.state[key] = set()
        m.syn += bool(syn and not seg.flags & TH_ACK)
        m.syn_ack += bool(syn and seg.flags & TH_ACK)
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
            f"{_ep(seg.src, seg.sport)} → {_ep(seg.dst, seg.dport)}  {flag_names(seg.flags)}"
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


def follow(path: str, stop, poll: float = 0.02) -> Iterator[Segment | None]:
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
