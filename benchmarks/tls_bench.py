"""Benchmark: what TLS costs the server per new connection and per request, against plain TCP.

    python benchmarks/tls_bench.py [--connections N] [--requests M] [--repeat R] [--key rsa|ec]
                                   [--server loop|lab] [--concurrency threads|epoll]

One server process (forked) listens on the loopback five times: plain TCP, TLS 1.2, TLS 1.3,
each with the lab's own contexts (server/tls.py, client/tls.py, a certificate from lab.tlsca).
`--server loop` (the default): each listener runs the same small HTTP/1.1 loop, a thread per
connection: read a request head, answer 1000 bytes, until the client closes. `--server lab`:
the lab's own server (`python -m server`'s Server, keep-alive, JSON log to /dev/null), in the
`--concurrency` model given (threads by default, or epoll: one event loop per variant), plain
or with `--tls`'s TlsConnection (LoopTlsConnection on epoll): what a run's server pays. The
client (this process) measures two cells per variant, in turn so that background load hits
them alike:

- new connection: connect, handshake, one request and its response, close; N times in a row
  (with `resume`, every connection after the first offers the first one's session);
- request: M requests one after another on one kept-alive connection.

The figures are the median over R repeats of the wall time per connection or per request seen
by the client and of the server process's CPU time (user + system, /proc) per connection or
request, and each as a ratio to plain TCP's in the same run: the baseline. The machine is
shared: the ratios are what to read, the times vary with its load.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from client.tls import Sessions, client_context  # noqa: E402
from lab.tlsca import make_authority  # noqa: E402
from server.tls import server_context  # noqa: E402

BODY = b"x" * 1000
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY
REQUEST = b"GET /r?size=%d HTTP/1.1\r\nHost: server\r\n\r\n" % len(BODY)
# variant -> (TLS version or None, client resumes)
VARIANTS = {
    "plain": (None, False),
    "tls1.2": ("1.2", False),
    "tls1.2-resume": ("1.2", True),
    "tls1.3": ("1.3", False),
    "tls1.3-resume": ("1.3", True),
}
TICKS = os.sysconf("SC_CLK_TCK")


def _serve_connection(sock: socket.socket, ctx) -> None:
    # as the lab's server does: without it, TLS 1.3's response waits behind the tickets until
    # the client's delayed ACK of them (Nagle), 40 ms a connection
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        if ctx is not None:
            sock = ctx.wrap_socket(sock, server_side=True)
        with sock:
            buf = b""
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    _, buf = buf.split(b"\r\n\r\n", 1)
                    sock.sendall(RESPONSE)
    except OSError:
        pass


def _server(listeners: dict[str, socket.socket], pems: tuple[bytes, bytes]) -> None:
    contexts = {None: None}
    for version in ("1.2", "1.3"):
        contexts[version] = server_context(version, *pems)

    def accept(listener: socket.socket, ctx) -> None:
        while True:
            sock, _ = listener.accept()
            threading.Thread(target=_serve_connection, args=(sock, ctx), daemon=True).start()

    for name, listener in listeners.items():
        ctx = contexts[VARIANTS[name][0]]
        threading.Thread(target=accept, args=(listener, ctx), daemon=True).start()
    threading.Event().wait()


def _lab_server(ports_out, pems: tuple[bytes, bytes], concurrency: str) -> None:
    """The lab's server, one Server per variant (each its own connection class)."""
    from server.core import Listener, Server, ServerConfig
    from server.handlers import ProtocolOptions
    from server.log import Log
    from server.tls import connection_factory

    log = Log("json", open(os.devnull, "w"))  # noqa: SIM115 (lives as long as the process)
    ports = {}
    for name, (version, _) in VARIANTS.items():
        config = ServerConfig(
            listeners=[Listener(0, "persistent")],
            host="127.0.0.1",
            options=ProtocolOptions(protocol="http"),
            idle_timeout=60.0,
            concurrency=concurrency,
        )
        if version is not None:
            config.connection = connection_factory(server_context(version, *pems), concurrency)
        server = Server(config, log)
        server.start()
        ports[name] = server.ports[0]
        threading.Thread(target=server.serve_forever, daemon=True).start()
    ports_out.send(ports)
    threading.Event().wait()


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def _exchange(sock: socket.socket) -> None:
    """One request and its whole response (head, then Content-Length bytes)."""
    sock.sendall(REQUEST)
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise RuntimeError("the server closed early")
        buf += data
    head, _, body = buf.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    got = len(body)
    while got < length:
        data = sock.recv(65536)
        if not data:
            raise RuntimeError("the server closed early")
        got += len(data)


def _connect(port: int, sessions: Sessions | None) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sessions.wrap(sock) if sessions is not None else sock


def new_connections(port: int, sessions: Sessions | None, n: int) -> None:
    for _ in range(n):
        sock = _connect(port, sessions)
        _exchange(sock)
        if sessions is not None:
            sessions.remember(sock)  # after a response: a TLS 1.3 ticket has come with it
        sock.close()


def requests(port: int, sessions: Sessions | None, m: int) -> None:
    sock = _connect(port, sessions)
    for _ in range(m):
        _exchange(sock)
    sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--connections", type=int, default=300)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--key", choices=("rsa", "ec"), default="rsa")
    parser.add_argument("--server", choices=("loop", "lab"), default="loop")
    parser.add_argument("--concurrency", choices=("threads", "epoll"), default="threads")
    args = parser.parse_args()
    authority = make_authority(names=("server",), key=args.key)
    pems = (authority.server_cert_pem, authority.server_key_pem)
    fork = multiprocessing.get_context("fork")
    if args.server == "lab":
        mine, theirs = fork.Pipe()
        proc = fork.Process(target=_lab_server, args=(theirs, pems, args.concurrency), daemon=True)
        proc.start()
        ports = mine.recv()
    else:
        listeners = {name: socket.create_server(("127.0.0.1", 0)) for name in VARIANTS}
        ports = {name: s.getsockname()[1] for name, s in listeners.items()}
        proc = fork.Process(target=_server, args=(listeners, pems), daemon=True)
        proc.start()
    clients = {None: None}
    for version in ("1.2", "1.3"):
        clients[version] = client_context(version, authority.ca_cert_pem)
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    try:
        for r in range(args.repeat):
            order = list(VARIANTS) if r % 2 == 0 else list(reversed(VARIANTS))
            for name in order:
                version, resume = VARIANTS[name]
                cells = [("connection", new_connections, args.connections)]
                if not resume:
                    cells.append(("request", requests, args.requests))
                for cell, run, n in cells:
                    sessions = None
                    if version is not None:
                        sessions = Sessions(clients[version], resume, server_name="server")
                        if resume:  # the session to offer: one connection's, before the clock
                            new_connections(ports[name], sessions, 1)
                    cpu0, t0 = _cpu(proc.pid), time.perf_counter()
                    run(ports[name], sessions, n)
                    wall, cpu = time.perf_counter() - t0, _cpu(proc.pid) - cpu0
                    results.setdefault((name, cell), []).append((wall / n, cpu / n))
    finally:
        proc.kill()
    load = os.getloadavg()[0]
    model = f" ({args.concurrency})" if args.server == "lab" else ""
    print(f"{args.server} server{model}, loopback, {args.key} key, {args.repeat} repeats; ", end="")
    print(f"load average {load:.2f} (2 cores,")
    print("shared with other work: read the ratios to plain TCP, measured in the same run)\n")
    print("| variant | per | wall µs | × plain | server CPU µs | × plain |")
    print("|---|---|---:|---:|---:|---:|")
    for cell in ("connection", "request"):
        base = results[("plain", cell)]
        base_wall = statistics.median(w for w, _ in base)
        base_cpu = statistics.median(c for _, c in base)
        for name in VARIANTS:
            if (name, cell) not in results:
                continue
            wall = statistics.median(w for w, _ in results[(name, cell)])
            cpu = statistics.median(c for _, c in results[(name, cell)])
            cpu_ratio = f"{cpu / base_cpu:.1f}" if base_cpu else "n/a"
            print(
                f"| {name} | {cell} | {wall * 1e6:,.0f} | {wall / base_wall:.1f} "
                f"| {cpu * 1e6:,.0f} | {cpu_ratio} |"
            )


if __name__ == "__main__":
    main()
