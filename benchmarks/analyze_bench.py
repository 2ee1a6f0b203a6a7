"""Benchmark: `lab analyze` against tshark on a million packets, synthetic and real.

    python benchmarks/analyze_bench.py [--packets 1000000] [--quick] [--keep DIR]
        [--replay PCAP...] [--repeat N]

Writes a real pcap (Ethernet, snap length 96 like `tcpdump -s 96`, so payload is counted from
the IP header as on a real trace) of many short HTTP/1.0-style connections: handshake, request,
a response of one to three segments, the client's ACK, and a 3- or 4-packet teardown; some
connections lose a segment (a retransmission), some end with RST, and some reuse a client port
with a new ISN (a new Wireshark stream on the same address/port pair).

The real-traffic case replays real captures (`replay`: by default the regression corpus,
tests/data/corpus, whole frames) to the same number of packets, each copy on its own addresses.

For each capture, in one run, it times our reader + analysis and `tshark -r FILE -q -z
conv,tcp`, prints packets/s of each and the ratio, and asserts that the streams, SYNs and FINs
we count equal tshark's (a second, untimed tshark pass counts the flags). Then it times the
command itself, `python -m lab analyze FILE` (the table) and `... --json` (every stream),
output to /dev/null: wall, user and system seconds of each, and the ratio against tshark.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab.analysis import analyze
from lab.capture import read_capture
from lab.tcp import ACK, DEFAULT_MSS, FIN, PSH, RST, SEQ_MASK, SYN

SNAPLEN = 96
MSS = DEFAULT_MSS


def synthesize(path: str, target_packets: int) -> dict[str, int]:
    """Write the capture; returns what was written (packets, connections, syn, fin)."""
    record = struct.Struct("<IIII").pack
    # Ethernet + IPv4 (no options) + TCP (no options): 54 bytes, all the snap length keeps here.
    header = struct.Struct("!6s6sH BBHHHBBH4s4s HHIIBBHHH").pack
    mac_c, mac_s = b"\x02\x00\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\x02"
    server_ip = bytes([10, 0, 0, 1])
    out: list[bytes] = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, 1)]
    counts = {"packets": 0, "connections": 0, "syn": 0, "fin": 0}
    t = 1_700_000_000.0
    n = 0
    pair = (b"", 0)
    while counts["packets"] < target_packets:
        if n % 97 == 5:  # the previous connection's pair again, new ISN: a new stream
            client_ip, port = pair
        else:
            client_ip, port = bytes([10, 1, (n >> 14) & 0xFF, 2 + (n >> 22)]), 1024 + (n & 0x3FFF)
        pair = (client_ip, port)
        pkts = _connection(n)
        for from_client, flags, seq, ack, length in pkts:
            src, dst = (client_ip, server_ip) if from_client else (server_ip, client_ip)
            sport, dport = (port, 80) if from_client else (80, port)
            macs = (mac_s, mac_c) if from_client else (mac_c, mac_s)
            frame = header(
                *macs, 0x0800, 0x45, 0, 40 + length, 0, 0x4000, 64, 6, 0, src, dst,
                sport, dport, seq, ack, 0x50, flags, 64240, 0, 0,
            )  # fmt: skip
            wire = 54 + length
            sec = int(t)
            out.append(record(sec, int((t - sec) * 1e6), len(frame), wire) + frame)
            t += 0.00002
            counts["packets"] += 1
            counts["syn"] += flags & (SYN | ACK) == SYN
            counts["fin"] += bool(flags & FIN)
        counts["connections"] += 1
        n += 1
    with open(path, "wb") as f:
        f.write(b"".join(out))
    return counts


CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "corpus"


def replay(path: str, sources: list[Path], target_packets: int, snap: int = 0) -> dict[str, int]:
    """Real traffic: the Ethernet/IPv4/TCP frames of real pcap captures (by default the
    regression corpus, tests/data/corpus) written again and again until `target_packets`,
    each copy on its own addresses (copy k adds k to the third and fourth bytes of both IPv4
    addresses) and later in time, so copies are new connections with the same behaviour.
    Checksums are left as they were: neither tshark nor we check them. `snap` cuts every frame
    to that many bytes, as `tcpdump -s` does (0: whole frames)."""
    frames: list[tuple[float, int, bytes]] = []  # (seconds since the previous frame, ...)
    for source in sources:
        data = source.read_bytes()
        if len(data) < 24 or data[:4] != b"\xd4\xc3\xb2\xa1" or data[20] != 1:
            continue  # little-endian microsecond pcap of Ethernet only
        o, last = 24, None
        while o + 16 <= len(data):
            sec, usec, caplen, wire = struct.unpack_from("<IIII", data, o)
            frame = data[o + 16 : o + 16 + caplen]
            o += 16 + caplen
            if len(frame) >= 54 and frame[12:14] == b"\x08\x00" and frame[23] == 6:
                ts = sec + usec * 1e-6
                # idle gaps over 10 s shortened to 10 s, so decades of captures fit in a file
                gap = 0.001 if last is None else min(max(ts - last, 0.0), 10.0)
                frames.append((gap, wire, frame))
                last = ts
    if not frames:
        raise SystemExit("no Ethernet/IPv4/TCP frames in the replay sources")
    record = struct.Struct("<IIII").pack
    out: list[bytes] = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)]
    copies = packets = 0
    t = 1_700_000_000.0
    while packets < target_packets:
        copies += 1
        for gap, wire, frame in frames:
            moved = bytearray(frame[:snap] if snap else frame)
            for at in (28, 32):  # the low halves of the source and destination addresses
                low = (int.from_bytes(moved[at : at + 2], "big") + copies) & 0xFFFF
                moved[at : at + 2] = low.to_bytes(2, "big")
            t += gap
            sec = int(t)
            out.append(record(sec, int((t - sec) * 1e6), len(moved), wire) + bytes(moved))
            packets += 1
    with open(path, "wb") as f:
        f.write(b"".join(out))
    return {"packets": packets, "copies": copies, "frames": len(frames)}


def _connection(n: int) -> list[tuple]:
    """Connection n as (from_client, flags, seq, ack, payload_len) tuples."""
    seq = [(n * 2654435761) & SEQ_MASK, (n * 40503 + 12345) & SEQ_MASK]  # client, server ISN
    pkts: list[tuple] = []

    def seg(side: int, flags: int, length: int = 0) -> None:
        ack = seq[1 - side] if flags & ACK else 0
        pkts.append((side == 0, flags, seq[side], ack, length))
        seq[side] = (seq[side] + length + (1 if flags & (SYN | FIN) else 0)) & SEQ_MASK

    client, server = 0, 1
    seg(client, SYN)
    seg(server, SYN | ACK)
    seg(client, ACK)
    seg(client, PSH | ACK, 120)
    response = left = 500 + (n % 3) * 1400
    while left:
        size = min(MSS, left)
        if n % 53 == 7 and left == response:  # lost after the capture point, sent again
            pkts.append((False, ACK, seq[server], seq[client], size))
        seg(server, (PSH | ACK) if size == left else ACK, size)
        left -= size
    seg(client, ACK)
    if n % 101 == 3:
        seg(server, RST | ACK)
    elif n % 2:  # 3-packet teardown: the client's ACK of the FIN rides on its own FIN
        seg(server, FIN | ACK)
        seg(client, FIN | ACK)
        seg(server, ACK)
    else:
        seg(server, FIN | ACK)
        seg(client, ACK)
        seg(client, FIN | ACK)
        seg(server, ACK)
    return pkts


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ours(path: str) -> tuple[float, float, dict[str, int]]:
    """(wall seconds, CPU seconds, counts) of reading and analysing the capture."""
    start, cpu = time.perf_counter(), time.process_time()
    analysis = analyze(read_capture(path))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    counts = {
        "packets": analysis.packets,
        "streams": len(analysis.connections),
        "syn": analysis.syn,
        "fin": analysis.fin,
    }
    return elapsed, cpu, counts


def tshark_conv(path: str) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, conversations) of `tshark -q -z conv,tcp`."""
    start, cpu = time.perf_counter(), _child_cpu()
    out = subprocess.run(
        ["tshark", "-r", path, "-q", "-z", "conv,tcp"],
        capture_output=True, text=True, check=True, timeout=900,
    )  # fmt: skip
    elapsed, cpu = time.perf_counter() - start, _child_cpu() - cpu
    rows = [line for line in out.stdout.splitlines() if "<->" in line]
    return elapsed, cpu, len(rows)


def tshark_flags(path: str) -> dict[str, int]:
    """SYN (without ACK) and FIN packets as tshark counts them (untimed)."""
    filters = ["tcp.flags.syn==1 && tcp.flags.ack==0", "tcp.flags.fin==1"]
    args = ["tshark", "-r", path, "-q", "-z", "io,stat,0," + ",".join(filters)]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=900).stdout
    # The table's last row: | 0.0 <> Dur | frames | bytes | frames | bytes |
    row = [line for line in out.splitlines() if "<>" in line][-1]
    numbers = [int(x) for x in re.findall(r"\|\s*(\d+)\s*(?=\|)", row)]
    return {"syn": numbers[0], "fin": numbers[2]}


def cli(path: str, *extra: str) -> tuple[float, float, float]:
    """(wall, user, system seconds) of `python -m lab analyze FILE [extra]` into /dev/null."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with open(os.devnull, "w") as sink:
        subprocess.run(
            [sys.executable, "-m", "lab", "analyze", path, *extra],
            stdout=sink, check=True, timeout=900, env=env,
        )  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (
        time.perf_counter() - start,
        after.ru_utime - before.ru_utime,
        after.ru_stime - before.ru_stime,
    )


def race(path: str, written: dict[str, int] | None, repeat: int = 1) -> None:
    """Time ours and tshark on one capture, print both and the ratios, check the counts.
    With `repeat` > 1, tshark and the two commands run that many times, interleaved, and each
    ratio is of medians: on a shared machine one run of each measures the neighbours too."""
    t_ours, cpu_ours, counts = ours(path)
    runs: dict[str, list[tuple[float, float]]] = {"tshark": [], "table": [], "--json": []}
    tshark_streams = 0
    for _ in range(repeat):
        wall, cpu, tshark_streams = tshark_conv(path)
        runs["tshark"].append((wall, cpu))
        for label, extra in (("table", ()), ("--json", ("--json",))):
            wall, user, system = cli(path, *extra)
            runs[label].append((wall, user + system))
    t_tshark = statistics.median(w for w, _ in runs["tshark"])
    cpu_tshark = statistics.median(c for _, c in runs["tshark"])
    flags = tshark_flags(path)
    packets = counts["packets"]
    # CPU time too: on a shared machine the wall clock also measures the neighbours.
    print(
        f"  ours:   {t_ours:6.2f} s wall {packets / t_ours:>10,.0f} packets/s   "
        f"{cpu_ours:6.2f} s CPU {packets / cpu_ours:>10,.0f} packets/s"
    )
    print(
        f"  tshark: {t_tshark:6.2f} s wall {packets / t_tshark:>10,.0f} packets/s   "
        f"{cpu_tshark:6.2f} s CPU {packets / cpu_tshark:>10,.0f} packets/s  (-z conv,tcp"
        + (f", median of {repeat})" if repeat > 1 else ")")
    )
    print(
        f"  ratio:  ours is {t_tshark / t_ours:.2f}x tshark's speed (wall), "
        f"{cpu_tshark / cpu_ours:.2f}x (CPU)"
    )
    print(
        f"  streams {counts['streams']:,} (tshark {tshark_streams:,}), "
        f"SYN {counts['syn']:,} (tshark {flags['syn']:,}), "
        f"FIN {counts['fin']:,} (tshark {flags['fin']:,})"
    )
    assert counts["streams"] == tshark_streams, (counts, tshark_streams)
    assert counts["syn"] == flags["syn"] and counts["fin"] == flags["fin"], (counts, flags)
    if written:
        assert packets == written["packets"], (packets, written)
        assert counts["syn"] == written["syn"] and counts["fin"] == written["fin"], written
    for label in ("table", "--json"):
        wall = statistics.median(w for w, _ in runs[label])
        cpu = statistics.median(c for _, c in runs[label])
        each = "  (CPU s of each run: " + ", ".join(f"{c:.2f}" for _, c in runs[label]) + ")"
        print(
            f"  lab analyze {label:<6} {wall:6.2f} s wall  {cpu:6.2f} s CPU: "
            f"{t_tshark / wall:.2f}x tshark's speed (wall), {cpu_tshark / cpu:.2f}x (CPU)"
            + (each if repeat > 1 else "")
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100,000 packets")
    parser.add_argument("--keep", metavar="DIR", help="write the captures here and keep them")
    parser.add_argument(
        "--repeat", type=int, default=1, metavar="N",
        help="run tshark and the two commands N times each, interleaved; report medians",
    )  # fmt: skip
    parser.add_argument(
        "--replay", metavar="PCAP", nargs="+", type=Path,
        help="real captures to replay (default: every pcap of tests/data/corpus)",
    )  # fmt: skip
    args = parser.parse_args()
    target = 100_000 if args.quick else args.packets
    if shutil.which("tshark") is None:
        print("tshark is not installed (apt-get install tshark)", file=sys.stderr)
        return 2
    workdir = args.keep or tempfile.mkdtemp(prefix="tcplab-bench-")
    os.makedirs(workdir, exist_ok=True)
    try:
        path = os.path.join(workdir, "synthetic.pcap")
        start = time.perf_counter()
        written = synthesize(path, target)
        print(
            f"synthetic: {written['packets']:,} packets, {written['connections']:,} connections, "
            f"{os.path.getsize(path) / 1e6:.0f} MB, written in {time.perf_counter() - start:.1f} s"
        )
        race(path, written, args.repeat)
        path = os.path.join(workdir, "replay.pcap")
        sources = args.replay or sorted(CORPUS.glob("*.pcap"))
        made = replay(path, sources, target)
        print(
            f"real traffic: {made['packets']:,} packets, {made['copies']} copies of "
            f"{made['frames']:,} Ethernet/IPv4/TCP frames from {len(sources)} captures, "
            f"{os.path.getsize(path) / 1e6:.0f} MB"
        )
        race(path, None, args.repeat)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
