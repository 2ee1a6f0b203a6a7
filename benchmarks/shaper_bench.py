"""Benchmark: what the NFQUEUE delay line carries, and how much delay it adds beyond its own.

    python benchmarks/shaper_bench.py [--rtt 20] [--seconds 4] [--rates 1,20,100,0] [--loss 0]
                                      [--image REF]

Two containers on a private labelled network; a server streams to the client on port 3001,
paced by the kernel (SO_MAX_PACING_RATE) at the offered rate (0 = unpaced, as fast as it goes),
while the client pings the server's echo port 3000 every 10 ms with 64 bytes. Each rate runs
twice: without a shaper (the base), then with `python -m shaper --rtt R --method nfqueue` in
the client's namespace, which holds everything the server sends for R ms on the client's INPUT.

Per rate it prints the throughput the client received, the probe's median round trip, and the
delay the line added beyond R: median(probe RTT, shaped) - R - median(probe RTT, base), plus
the shaper's own figures (packets queued, how late its verdicts were, CPU seconds).
Target (issue 5): at least 20 Mbit/s sustained, at most 1 ms added at the median.
Everything it starts carries tcplab.project=1 and is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab import LABELS

SERVER = r"""
import socket, struct, threading, time
SO_MAX_PACING_RATE = 47
def echo(c):
    with c:
        while (d := c.recv(65536)):
            c.sendall(d)
def bulk(c):
    with c:
        rate, ms = struct.unpack("!QI", c.recv(12, socket.MSG_WAITALL))
        if rate:
            c.setsockopt(socket.SOL_SOCKET, SO_MAX_PACING_RATE, rate)
        chunk = b"\0" * 65536
        end = time.monotonic() + ms / 1000
        while time.monotonic() < end:
            c.sendall(chunk)
def serve(port, fn):
    s = socket.create_server(("0.0.0.0", port), backlog=64)
    while True:
        c, _ = s.accept()
        threading.Thread(target=fn, args=(c,), daemon=True).start()
threading.Thread(target=serve, args=(3000, echo), daemon=True).start()
print("peers listening", flush=True)
serve(3001, bulk)
"""

CLIENT = r"""
import json, socket, struct, sys, threading, time
host, rate_bps, ms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rtts, stop = [], threading.Event()
def probe():
    with socket.create_connection((host, 3000), timeout=10) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while not stop.is_set():
            t0 = time.perf_counter()
            s.sendall(b"p" * 64)
            got = 0
            while got < 64:
                got += len(s.recv(64 - got))
            rtts.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.01)
s = socket.create_connection((host, 3001), timeout=30)
s.sendall(struct.pack("!QI", rate_bps // 8, ms))
buf = bytearray(1 << 20)
first = s.recv_into(buf)
t0 = time.perf_counter()
th = threading.Thread(target=probe); th.start()
total = 0
while (n := s.recv_into(buf)):
    total += n
elapsed = time.perf_counter() - t0
stop.set(); th.join()
print(json.dumps({"mbit": total * 8 / elapsed / 1e6, "seconds": elapsed, "rtts": rtts}))
"""


def shaper_image(explicit: str | None) -> str:
    if explicit:
        return explicit
    from lab.images import ensure_images

    return ensure_images()["shaper"]


def run(args: argparse.Namespace) -> int:
    import docker

    image = shaper_image(args.image)
    c = docker.from_env(timeout=60)
    tag = uuid.uuid4().hex[:8]
    labels = {**LABELS, "tcplab.run": f"shaper-bench-{tag}"}
    made: list = []
    net = c.networks.create(f"tcplab-shbench-{tag}", driver="bridge", labels=labels)
    common = dict(
        image=image, labels=labels, detach=True, cap_drop=["ALL"],
        security_opt=["no-new-privileges"], entrypoint=["python3"], mem_limit="512m",
    )  # fmt: skip
    rows = []
    try:
        server = c.containers.run(
            command=["-c", SERVER], name=f"tcplab-shbench-srv-{tag}", network=net.name, **common
        )
        made.append(server)
        client = c.containers.run(
            command=["-c", "import time; time.sleep(3600)"],
            name=f"tcplab-shbench-cli-{tag}", network=net.name, **common,
        )  # fmt: skip
        made.append(client)
        wait_log(server, "peers listening", 20)
        host = server.name
        for rate in args.rates:
            base = transfer(client, host, rate, args.seconds)
            shaper = c.containers.run(
                image=image, labels=labels, detach=True, name=f"tcplab-shbench-sh-{tag}",
                network_mode=f"container:{client.id}", cap_drop=["ALL"], cap_add=["NET_ADMIN"],
                security_opt=["no-new-privileges"],
                command=["--rtt", f"{args.rtt:g}", "--method", "nfqueue", "--seed", "1",
                         "--loss", f"{args.loss:g}"],
            )  # fmt: skip
            try:
                wait_log(shaper, "shaper ready", 20)
                shaped = transfer(client, host, rate, args.seconds)
            finally:
                shaper.stop(timeout=10)
                shaper.reload()
                log = shaper.logs().decode()
                code = shaper.attrs["State"]["ExitCode"]
                shaper.remove(force=True)
            if code != 0:
                raise SystemExit(f"shaper exited {code}:\n{log}")
            stats = dict(re.findall(r"(\w+)=(\S+)", log.split("shaper stopped", 1)[1]))
            rows.append(row(rate, args.rtt, base, shaped, stats))
            print_row(rows[-1], header=len(rows) == 1)
    finally:
        for ctr in reversed(made):
            ctr.remove(force=True)
        net.remove()
    # The unpaced row measures capacity: a saturated line queues, so only paced rows count.
    paced = [r for r in rows if r["offered"] != "unpaced"]
    verdict = bool(paced) and all(
        r["mbit"] >= min(20.0, float(r["offered"])) * 0.9 and r["added_ms"] <= 1.0 for r in paced
    )
    print(f"\ntarget (>= 20 Mbit/s sustained, <= 1 ms added at the median): "
          f"{'met' if verdict else 'NOT met'}")  # fmt: skip
    return 0


def wait_log(container, text: str, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if text in container.logs().decode():
            return
        container.reload()
        if container.status == "exited":
            break
        time.sleep(0.1)
    logs = container.logs().decode()
    raise SystemExit(f"{container.name}: no {text!r} within {timeout} s:\n{logs}")


def transfer(client, host: str, rate_mbit: float, seconds: float) -> dict:
    res = client.exec_run(
        ["python3", "-c", CLIENT, host, str(int(rate_mbit * 1e6)), str(int(seconds * 1000))]
    )
    if res.exit_code != 0:
        raise SystemExit(f"client failed: {res.output.decode()}")
    return json.loads(res.output.decode().strip().splitlines()[-1])


def row(rate: float, rtt: float, base: dict, shaped: dict, stats: dict) -> dict:
    base_ms = statistics.median(base["rtts"])
    shaped_ms = statistics.median(shaped["rtts"])
    return {
        "offered": f"{rate:g}" if rate else "unpaced",
        "mbit": shaped["mbit"],
        "base_mbit": base["mbit"],
        "base_ms": base_ms,
        "shaped_ms": shaped_ms,
        "added_ms": shaped_ms - rtt - base_ms,
        "added_p90_ms": statistics.quantiles(shaped["rtts"], n=10)[-1] - rtt - base_ms,
        "probes": len(shaped["rtts"]),
        "packets": stats.get("packets"),
        "late_p50": stats.get("late_ms_p50"),
        "cpu_s": stats.get("cpu_s"),
    }


def print_row(r: dict, header: bool) -> None:
    cols = [
        ("offered Mbit/s", "offered", "{}"),
        ("got Mbit/s", "mbit", "{:.1f}"),
        ("no-shaper Mbit/s", "base_mbit", "{:.1f}"),
        ("base RTT ms", "base_ms", "{:.2f}"),
        ("shaped RTT ms", "shaped_ms", "{:.2f}"),
        ("added ms p50", "added_ms", "{:.2f}"),
        ("added ms p90", "added_p90_ms", "{:.2f}"),
        ("probes", "probes", "{}"),
        ("queued pkts", "packets", "{}"),
        ("verdict late ms p50", "late_p50", "{}"),
        ("shaper CPU s", "cpu_s", "{}"),
    ]
    if header:
        print("| " + " | ".join(c[0] for c in cols) + " |")
        print("|" + "|".join("---:" for _ in cols) + "|")
    print("| " + " | ".join(fmt.format(r[key]) for _, key, fmt in cols) + " |", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rtt", type=float, default=20.0, help="delay the shaper adds (ms)")
    p.add_argument("--seconds", type=float, default=4.0, help="transfer time per run")
    p.add_argument("--rates", default="1,20,100,0", help="offered Mbit/s; 0 = unpaced")
    p.add_argument(
        "--loss",
        type=float,
        default=0.0,
        help="loss %% (>0 also turns off GSO queueing: one message per segment)",
    )
    p.add_argument("--image", default=None, help="shaper image (default: lab.images)")
    args = p.parse_args()
    args.rates = [float(x) for x in args.rates.split(",")]
    print(f"NFQUEUE delay line, rtt {args.rtt:g} ms, loss {args.loss:g}%, {args.seconds:g} s/run\n")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
