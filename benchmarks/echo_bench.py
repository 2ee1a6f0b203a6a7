"""Benchmark: our echo server, in each concurrency model, against an asyncio echo server.

    python benchmarks/echo_bench.py [--quick] [--seconds S] [--repeat N] [--clients 1,16,64]
                                    [--size BYTES] [--procs P] [--log-format F]
                                    [--models threads,epoll,epoll:2]

Every server runs as a subprocess, each serving two listeners from one process (persistent and
non-persistent), with `length` framing from `wire.framing`, all on loopback:
- ours, once per model given (`threads`, `epoll`, `epoll:N` for `--concurrency epoll --loops N`):
  `python -m server --host 127.0.0.1 --listen 0:persistent --listen 0:non-persistent`;
- baseline: an asyncio `Protocol` echo server written below (`--serve-baseline`), which does
  the same dance: non-persistent answers one message, sends its FIN first (`write_eof`) and
  closes when the peer's FIN arrives; persistent answers every message until the peer closes.
Subprocesses rather than threads in this process so that the load generator's GIL never
throttles a server, and so each server's CPU time can be read from /proc.

The load generator is the same for both: P worker processes (fork), each an epoll loop over
its share of the clients, written with plain non-blocking sockets (cheaper per request than
asyncio, so the generator is less of a ceiling on a 2-core machine). Persistent: each client
keeps one connection and sends the next message as soon as the echo is complete (requests/s).
Non-persistent: each client connects, sends one message, reads the echo and the server's FIN,
closes, and starts over (connections/s). Every reply is checked byte for byte.

Each cell (mode x clients x server) runs a warmup, then a timed window; the order of the
servers reverses every repeat so that background load hits them alike, and the table reports,
per model, the median of the repeats, the ratio model/baseline (same run, same cells), and each
server's CPU time per request (user+system of the whole process over the window), which varies
less with machine load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import multiprocessing
import os
import platform
import re
import select
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from server.core import CONCURRENCY  # noqa: E402
from wire import framing  # noqa: E402

MODES = ("persistent", "non-persistent")
BASELINE = "baseline"
TARGET = 1.0  # the best model against the baseline, at 16 clients and more
TICKS = os.sysconf("SC_CLK_TCK")
LISTENING = re.compile(r"Server listening at port (\d+) \(([a-z-]+)\)")


# Baseline server ---------------------------------------------------------------------------


class _EchoProtocol(asyncio.Protocol):
    def __init__(self, persistent: bool) -> None:
        self.persistent = persistent
        self.decoder = framing.LengthDecoder()
        self.answered = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.answered:
            return  # non-persistent: anything after the one message is ignored
        try:
            messages = self.decoder.feed(data)
        except framing.FramingError:
            self.transport.abort()
            return
        if not messages:
            return
        if self.persistent:
            self.transport.write(b"".join(framing.encode_length(m) for m in messages))
        else:
            self.transport.write(framing.encode_length(messages[0]))
            self.transport.write_eof()  # the server sends the first FIN
            self.answered = True

    def eof_received(self) -> bool:
        return False  # the peer's FIN: close our side (after ours, if we sent it)


async def _serve_baseline(host: str, backlog: int) -> None:
    loop = asyncio.get_running_loop()
    servers = []
    for mode in MODES:
        persistent = mode == "persistent"
        srv = await loop.create_server(
            lambda p=persistent: _EchoProtocol(p), host, 0, backlog=backlog, reuse_address=True
        )
        servers.append(srv)
        port = srv.sockets[0].getsockname()[1]
        print(json.dumps({"event": "listening", "port": port, "mode": mode}), flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    for srv in servers:
        srv.close()


# Load generator ----------------------------------------------------------------------------


class _Slot:
    """One client: its current socket and the reply bytes read so far."""

    __slots__ = ("connected", "got", "sock")

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.got = bytearray()
        self.connected = False


def _drive(
    addr: tuple[str, int],
    persistent: bool,
    clients: int,
    payload: bytes,
    start: float,
    marks: tuple[float, float],
    result: multiprocessing.connection.Connection,  # type: ignore[name-defined]
) -> None:
    """Run `clients` clients until marks[1]; send back the count and CPU at each mark.

    One function on purpose (over 80 lines): the load generator's epoll loop keeps its state in
    local variables so that it outruns the server it measures; calls per event would not."""
    frame = framing.encode_length(payload)
    want = len(frame)
    ep = select.epoll()
    slots: dict[int, _Slot] = {}
    done = 0
    errors: list[str] = []
    IN, OUT = select.EPOLLIN, select.EPOLLOUT

    def open_conn(slot: _Slot) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        slot.sock, slot.connected = sock, False
        slot.got.clear()
        rc = sock.connect_ex(addr)
        if rc not in (0, errno.EINPROGRESS):
            raise OSError(rc, os.strerror(rc))
        slots[sock.fileno()] = slot
        ep.register(sock.fileno(), OUT)

    def drop(slot: _Slot, why: str | None) -> None:
        if why:
            errors.append(why)
        fd = slot.sock.fileno()
        ep.unregister(fd)
        del slots[fd]
        slot.sock.close()

    while time.monotonic() < start:
        time.sleep(0.001)
    for _ in range(clients):
        open_conn(_Slot())
    snaps: list[tuple[int, float]] = []
    poll, recv_size = ep.poll, 65536
    for mark in marks:
        while True:
            now = time.monotonic()
            if now >= mark:
                break
            for fd, _ in poll(min(mark - now, 0.05)):
                slot = slots[fd]
                sock = slot.sock
                if not slot.connected:
                    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        drop(slot, f"connect: {os.strerror(err)}")
                        open_conn(slot)
                        continue
                    slot.connected = True
                    sock.send(frame)  # a few bytes: always fits an empty send buffer
                    ep.modify(fd, IN)
                    continue
                try:
                    data = sock.recv(recv_size)
                except OSError as exc:
                    drop(slot, f"recv: {exc}")
                    open_conn(slot)
                    continue
                got = slot.got
                if persistent:
                    if not data:
                        drop(slot, "server closed a persistent connection")
                        open_conn(slot)
                        continue
                    got += data
                    if len(got) >= want:
                        if got != frame:
                            errors.append("reply differs from the request")
                        done += 1
                        got.clear()
                        sock.send(frame)
                elif data:
                    got += data
                else:  # the server's FIN: the exchange is complete
                    if got != frame:
                        errors.append(f"reply of {len(got)} bytes, expected {want}")
                    else:
                        done += 1
                    drop(slot, None)
                    open_conn(slot)
        cpu = os.times()
        snaps.append((done, cpu.user + cpu.system))
    for slot in list(slots.values()):
        drop(slot, None)
    result.send({"snaps": snaps, "errors": errors[:5], "error_count": len(errors)})
    result.close()


# Servers as subprocesses -------------------------------------------------------------------


@dataclass
class ServerProc:
    name: str
    proc: subprocess.Popen
    ports: dict[str, int]
    lines: list[int] = field(default_factory=lambda: [0])  # lines logged after `listening`

    def cpu(self) -> tuple[float, float]:
        """User and system CPU seconds of the whole process (all threads)."""
        with open(f"/proc/{self.proc.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return int(fields[11]) / TICKS, int(fields[12]) / TICKS  # utime, stime

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_server(name: str, args: argparse.Namespace) -> ServerProc:
    """`name` is one of our models (`threads`, `epoll`, `epoll:LOOPS`), or BASELINE."""
    if name != BASELINE:
        argv = [sys.executable, "-m", "server", "--host", "127.0.0.1"]
        concurrency, _, loops = name.partition(":")
        argv += ["--log-format", args.log_format, "--concurrency", concurrency]
        argv += ["--loops", loops or "1"]
        argv += ["--listen", "0:persistent", "--listen", "0:non-persistent"]
        argv += ["--idle-timeout", "60", "--shutdown-grace", "2"]
    else:
        argv = [sys.executable, str(Path(__file__).resolve()), "--serve-baseline"]
    proc = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, bufsize=1
    )
    ports: dict[str, int] = {}
    deadline = time.monotonic() + 20
    while len(ports) < len(MODES):
        line = proc.stdout.readline()
        if not line or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"error: {name} server did not start (last line: {line!r})")
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") == "listening":
                ports[event["mode"]] = event["port"]
        elif m := LISTENING.search(line):
            ports[m.group(2)] = int(m.group(1))
    server = ServerProc(name, proc, ports)

    def drain() -> None:  # the server must never block on a full stdout pipe
        for _ in proc.stdout:
            server.lines[0] += 1

    threading.Thread(target=drain, daemon=True).start()
    return server


# One cell ----------------------------------------------------------------------------------


@dataclass
class Cell:
    rate: float  # completed requests (persistent) or connections (non-persistent) per second
    server_us: float  # server CPU microseconds per request/connection
    server_sys: float  # the kernel's share of it
    driver_load: float  # load generator CPU seconds per second of wall time, all processes
    errors: list[str]


def run_cell(server: ServerProc, mode: str, clients: int, args: argparse.Namespace, ctx) -> Cell:
    shares = [clients // args.procs + (i < clients % args.procs) for i in range(args.procs)]
    shares = [n for n in shares if n]
    start = time.monotonic() + 0.2
    marks = (start + args.warmup, start + args.warmup + args.seconds)
    addr = ("127.0.0.1", server.ports[mode])
    workers = []
    for n in shares:
        recv_end, send_end = ctx.Pipe(duplex=False)
        p = ctx.Process(
            target=_drive,
            args=(addr, mode == "persistent", n, args.payload, start, marks, send_end),
        )
        p.start()
        send_end.close()
        workers.append((p, recv_end))
    cpu = []
    for mark in marks:
        time.sleep(max(0.0, mark - time.monotonic()))
        cpu.append(server.cpu())
    results = []
    for p, conn in workers:
        if not conn.poll(args.seconds + args.warmup + 30):
            p.kill()
            raise SystemExit("error: a load generator process hung")
        results.append(conn.recv())
        p.join()
    done = sum(r["snaps"][1][0] - r["snaps"][0][0] for r in results)
    driver_cpu = sum(r["snaps"][1][1] - r["snaps"][0][1] for r in results)
    errors = [e for r in results for e in r["errors"]]
    if sum(r["error_count"] for r in results):
        errors.insert(0, f"{sum(r['error_count'] for r in results)} errors")
    time.sleep(args.settle)  # let the server finish closing this cell's connections
    user, system = cpu[1][0] - cpu[0][0], cpu[1][1] - cpu[0][1]
    return Cell(
        rate=done / args.seconds,
        server_us=(user + system) / done * 1e6 if done else float("nan"),
        server_sys=system / (user + system) if user + system else float("nan"),
        driver_load=driver_cpu / args.seconds,
        errors=errors,
    )


# Report ------------------------------------------------------------------------------------


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg()[0]
    return (
        f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, "
        f"Linux {platform.release()}, load average {load:.2f} at start"
    )


def table(results: dict[tuple[str, int, str], list[Cell]], args: argparse.Namespace) -> str:
    """One row per mode, clients and model: its rate and CPU against the baseline's."""
    head = (
        "| mode | clients | model | model /s | baseline /s | ratio | model CPU µs/op | "
        "baseline CPU µs/op | CPU ratio |"
    )
    rows = [head, "|" + "---|" * 9]
    for mode in args.modes:
        unit = "req" if mode == "persistent" else "conn"
        for clients in args.clients:
            base_rate, base_us = _medians(results[(mode, clients, BASELINE)])
            for model in args.models:
                rate, us = _medians(results[(mode, clients, model)])
                ratio = rate / base_rate if base_rate else float("nan")
                cpu_ratio = base_us / us if us else float("nan")
                rows.append(
                    f"| {mode} | {clients} | {model} | {rate:,.0f} {unit} | "
                    f"{base_rate:,.0f} {unit} | {ratio:.2f} | {us:.0f} | {base_us:.0f} | "
                    f"{cpu_ratio:.2f} |"
                )
    return "\n".join(rows)


def verdict(results: dict[tuple[str, int, str], list[Cell]], args: argparse.Namespace) -> str:
    """The target: the best model at least as fast as the baseline at 16 clients and more."""
    lines, missed = [], False
    for mode in args.modes:
        for clients in (c for c in args.clients if c >= 16):
            base_rate = _medians(results[(mode, clients, BASELINE)])[0]
            ratios = {m: _medians(results[(mode, clients, m)])[0] / base_rate for m in args.models}
            best = max(ratios, key=ratios.__getitem__)
            ok = ratios[best] >= TARGET
            missed |= not ok
            lines.append(
                f"{mode} {clients} clients: best {best} {ratios[best]:.2f} "
                f"(>= {TARGET} {'ok' if ok else 'MISSED'})"
            )
    lines.append("target " + ("MISSED" if missed else "met"))
    return "\n".join(lines)


def _medians(cells: list[Cell]) -> tuple[float, float]:
    return statistics.median(c.rate for c in cells), statistics.median(c.server_us for c in cells)


# Main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short run: 1 repeat of 2 s per cell")
    p.add_argument("--seconds", type=float, help="timed window per cell (default 5, quick 2)")
    p.add_argument("--warmup", type=float, help="untimed start of each cell (default 1, quick 0.5)")
    p.add_argument("--repeat", type=int, help="runs of each cell; the median is reported (def. 3)")
    p.add_argument("--clients", default="1,16,64", help="concurrent clients (default 1,16,64)")
    p.add_argument("--size", type=int, default=64, help="payload bytes per message (default 64)")
    p.add_argument("--procs", type=int, default=1, help="load generator processes (default 1)")
    p.add_argument("--modes", default=",".join(MODES), help="persistent,non-persistent")
    p.add_argument("--log-format", default="quiet", help="our server's --log-format")
    p.add_argument(
        "--models",
        default="threads,epoll,epoll:2",
        help="our server's models: threads, epoll, epoll:N (N event loops)",
    )
    p.add_argument("--settle", type=float, default=0.5, help="pause after each cell (s)")
    p.add_argument("--serve-baseline", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.seconds is None:
        args.seconds = 2.0 if args.quick else 5.0
    if args.warmup is None:
        args.warmup = 0.5 if args.quick else 1.0
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    args.clients = [int(c) for c in args.clients.split(",")]
    args.modes = [m for m in args.modes.split(",") if m]
    args.models = [m for m in args.models.split(",") if m]
    for model in args.models:
        concurrency, sep, loops = model.partition(":")
        bad_loops = sep and (concurrency != "epoll" or not loops.isdigit() or int(loops) < 1)
        if concurrency not in CONCURRENCY or bad_loops:
            p.error(f"--models: {model!r} is not threads, epoll or epoll:N")
    args.payload = bytes(i % 251 for i in range(args.size))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_baseline:
        asyncio.run(_serve_baseline("127.0.0.1", 512))
        return 0
    print(f"machine: {machine()}")
    print(
        f"cells: {args.repeat} x ({args.warmup:g} s warmup + {args.seconds:g} s), "
        f"payload {args.size} B, {args.procs} load generator process(es), "
        f"our server --log-format {args.log_format}, models {', '.join(args.models)}",
        flush=True,
    )
    ctx = multiprocessing.get_context("fork")
    names = [*args.models, BASELINE]
    servers = {name: start_server(name, args) for name in names}
    results: dict[tuple[str, int, str], list[Cell]] = {}
    failed = False
    try:
        for rep in range(args.repeat):
            order = names if rep % 2 == 0 else names[::-1]
            for mode in args.modes:
                for clients in args.clients:
                    for name in order:
                        before = servers[name].lines[0]
                        cell = run_cell(servers[name], mode, clients, args, ctx)
                        results.setdefault((mode, clients, name), []).append(cell)
                        logged = servers[name].lines[0] - before
                        print(
                            f"  run {rep + 1} {mode:>14} {clients:>3} clients {name:>8}: "
                            f"{cell.rate:9,.0f}/s  server {cell.server_us:5.0f} µs/op "
                            f"({cell.server_sys:4.0%} sys, "
                            f"{cell.rate * cell.server_us / 1e6:.2f} CPUs)  "
                            f"load generator {cell.driver_load:.2f} CPU  "
                            f"{logged} log lines",
                            flush=True,
                        )
                        if cell.errors:
                            failed = True
                            print(f"    errors: {'; '.join(cell.errors)}", flush=True)
    finally:
        for server in servers.values():
            server.stop()
    print()
    print(table(results, args))
    print()
    print(verdict(results, args))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
