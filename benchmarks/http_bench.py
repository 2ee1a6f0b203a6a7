"""Benchmark: the lab's HTTP server against an asyncio baseline and against an earlier commit of
itself, under real HTTP load tools, in one run.

    python benchmarks/http_bench.py [--before REV] [--seconds S] [--repeat N] [--clients 16,64]
                                    [--size BYTES] [--models threads,epoll]

Load: `wrk` for keep-alive (HTTP/1.1, each connection sends its next GET as soon as the last
answer is in) and `ab` without -k for the HTTP/1.0 style (a new connection per request, the
server closes after each answer), both from Debian (`apt-get install wrk apache2-utils`), both
written in C so that the load is never the ceiling on the servers' side of a 2-core machine.

Servers, each a subprocess on loopback serving both listeners:
- `now`: this checkout's `python -m server --protocol http` (every model given);
- `before`: the same server from git revision REV (`git archive REV`), when `--before` is given:
  the question issue 12 asks, "is the conformant server slower than the one before it?";
- `baseline`: an asyncio HTTP server written below (`--serve-baseline`): parses the request
  line and Host, answers `GET /name?size=N` with N bytes, keep-alive on HTTP/1.1, closing on
  the other listener, and no more.

Each cell (load x clients x server) runs a warmup and a timed window; the order of the servers
reverses every repeat; the table gives the median requests per second, the ratio to the
baseline and to `before`, and each server's CPU per request (user+system of its process).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import echo_bench  # noqa: E402  (the server process and the machine line are shared)

BASELINE = "baseline"
LOADS = ("keep-alive", "close")  # wrk on the persistent listener, ab on the non-persistent one
DATE = "Sun, 29 Nov 2026 00:00:00 GMT"


# --- the baseline: asyncio, as little HTTP as the load needs ----------------------------------


class _HttpProtocol(asyncio.Protocol):
    def __init__(self, persistent: bool) -> None:
        self.persistent = persistent
        self.buffer = b""

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            line = head.split(b"\r\n", 1)[0].split(b" ")
            size = int(line[1].rsplit(b"size=", 1)[1]) if b"size=" in line[1] else 0
            keep = self.persistent and line[2] == b"HTTP/1.1"
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nServer: baseline\r\nDate: " + DATE.encode()
                + b"\r\nContent-Type: application/octet-stream\r\nContent-Length: "
                + str(size).encode() + b"\r\nConnection: "
                + (b"keep-alive" if keep else b"close") + b"\r\n\r\n" + b"x" * size
            )  # fmt: skip
            if not keep:
                self.transport.close()
                return


async def _serve_baseline() -> None:
    loop = asyncio.get_running_loop()
    for mode in ("persistent", "non-persistent"):
        server = await loop.create_server(
            lambda m=mode: _HttpProtocol(m == "persistent"), "127.0.0.1", 0, backlog=1024
        )
        port = server.sockets[0].getsockname()[1]
        print(f'{{"event": "listening", "mode": "{mode}", "port": {port}}}', flush=True)
    await asyncio.Event().wait()


# --- servers -----------------------------------------------------------------------------------


def checkout(rev: str, into: Path) -> Path:
    """The tree of `rev` in a folder: `git archive` needs no work tree of its own."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "server", "wire"], capture_output=True
    )
    if archive.returncode:
        raise SystemExit(f"error: --before {rev}: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def start(name: str, model: str, tree: Path) -> echo_bench.ServerProc:
    if name == BASELINE:
        argv = [sys.executable, str(Path(__file__).resolve()), "--serve-baseline"]
    else:
        concurrency, _, loops = model.partition(":")
        argv = [sys.executable, "-m", "server", "--protocol", "http", "--host", "127.0.0.1"]
        argv += ["--concurrency", concurrency, "--loops", loops or "1", "--log-format", "quiet"]
        argv += ["--listen", "0:persistent", "--listen", "0:non-persistent"]
        argv += ["--idle-timeout", "60", "--shutdown-grace", "2"]
    proc = subprocess.Popen(
        argv, cwd=tree, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, bufsize=1
    )
    ports: dict[str, int] = {}
    for line in proc.stdout:
        if m := re.search(r'"mode": "([a-z-]+)", "port": (\d+)', line):
            ports[m.group(1)] = int(m.group(2))
        elif m := echo_bench.LISTENING.search(line):
            ports[m.group(2)] = int(m.group(1))
        if len(ports) == 2:
            break
    if len(ports) < 2:
        proc.kill()
        raise SystemExit(f"error: the {name} server did not start")
    server = echo_bench.ServerProc(name, proc, ports)
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return server


# --- load --------------------------------------------------------------------------------------


def load(server: echo_bench.ServerProc, kind: str, clients: int, seconds: float, size: int):
    """(requests per second, server CPU seconds per request) for one window."""
    if kind == "keep-alive":
        url = f"http://127.0.0.1:{server.ports['persistent']}/r?size={size}"
        argv = ["wrk", "-t", "2", "-c", str(clients), "-d", f"{seconds:g}s", url]
        pattern = r"Requests/sec:\s+([\d.]+)"
    else:
        url = f"http://127.0.0.1:{server.ports['non-persistent']}/r?size={size}"
        argv = ["ab", "-q", "-r", "-t", f"{seconds:g}", "-n", "10000000", "-c", str(clients), url]
        pattern = r"Requests per second:\s+([\d.]+)"
    before = sum(server.cpu())
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds * 4 + 30)
    cpu = sum(server.cpu()) - before
    m = re.search(pattern, done.stdout)
    failed = re.search(r"(Non-2xx or 3xx responses|Failed requests):\s+(\d+)", done.stdout)
    if not m or (failed and int(failed.group(2))):
        raise SystemExit(f"error: {argv[0]} against {server.name}: {done.stdout[-800:]}")
    rate = float(m.group(1))
    return rate, cpu / max(1.0, rate * seconds)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", help="a git revision whose server to measure too")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--clients", default="16,64")
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--models", default="threads,epoll")
    p.add_argument("--serve-baseline", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve_baseline:
        asyncio.run(_serve_baseline())
        return 0
    for tool in ("wrk", "ab"):
        if shutil.which(tool) is None:
            raise SystemExit(f"error: {tool} is not installed (apt-get install wrk apache2-utils)")
    clients = [int(c) for c in args.clients.split(",")]
    models = args.models.split(",")
    print(echo_bench.machine())
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"now": ROOT}
        if args.before:
            trees["before"] = checkout(args.before, Path(tmp))
        names = [BASELINE] + [f"{t}:{m}" for m in models for t in trees]
        results: dict[tuple[str, str, int], list[tuple[float, float]]] = {}
        for r in range(args.repeat):
            order = names if r % 2 == 0 else names[::-1]
            for name in order:
                tree, _, model = name.partition(":")
                server = start(name, model, trees.get(tree, ROOT))
                try:
                    for kind in LOADS:
                        for c in clients:
                            load(server, kind, c, 1.0, args.size)  # warmup
                            cell = load(server, kind, c, args.seconds, args.size)
                            results.setdefault((name, kind, c), []).append(cell)
                finally:
                    server.stop()
    print(f"\n{args.size}-byte responses, {args.seconds:g} s windows, median of {args.repeat}")
    header = "| load | clients | server | req/s | x baseline | x before | CPU us/req |"
    print(header + "\n" + re.sub(r"[^|]", "-", header))
    for kind in LOADS:
        for c in clients:
            base = statistics.median(x[0] for x in results[(BASELINE, kind, c)])
            for name in names:
                cells = results[(name, kind, c)]
                rate = statistics.median(x[0] for x in cells)
                cpu = statistics.median(x[1] for x in cells) * 1e6
                tree, _, model = name.partition(":")
                old = results.get((f"before:{model}", kind, c)) if tree == "now" else None
                vs_before = f"{rate / statistics.median(x[0] for x in old):.2f}" if old else ""
                print(
                    f"| {kind} | {c} | {name} | {rate:,.0f} | {rate / base:.2f} | {vs_before} "
                    f"| {cpu:.0f} |"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
