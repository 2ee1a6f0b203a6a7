"""Benchmark: the hand-written HTTP/1.x request parser (`wire.http`) against h11, same requests.

    pip install h11        # on the host, for this benchmark only (Debian: python3-h11)
    python benchmarks/http_parse_bench.py [--quick] [--requests N] [--repeat R]

The per-request work of the wire layer, both ways, in this one process: parse a request head,
decide keep-alive, write a 200 response head (Date, Server, Content-Type, Content-Length,
Connection). h11 cannot go on to the next request before its response is written, so both
sides write one; routing (`wire.http.route`) and the body are the same whichever parser reads
the head, and are left out. Three ways requests arrive:

- pipelined: N requests back to back, fed in 64 KiB reads into one parser (the lab's client
  with --pipeline, h2load --h1, wrk with a pipelining script);
- keep-alive: one parser, one read per request (a browser, ab -k);
- new connection: a new parser for every request (HTTP/1.0, ab without -k).

Each with three request heads: the lab's client's, curl's, and Chromium's (12 header fields).
Each cell runs hand-written and h11 alternately `--repeat` times and keeps the median of the
CPU time per request (this process's: on a shared machine wall time counts others' work too);
the ratio is h11's time per request over the hand-written parser's (above 1: h11 is slower).

Then the conformance table: each case of RFC 9110/9112 that issue 12 names, what the RFC asks,
what the hand-written parser does and what h11 does (h11 leaves some checks to the server).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wire import http

try:
    import h11
except ImportError:  # pragma: no cover - the message is the point
    raise SystemExit("h11 is not installed: pip install h11 (for this benchmark only)") from None

READ = 64 * 1024  # one recv() of the server (server.connection.RECV_SIZE)
BODY = 30_000  # the size the response heads announce
BODY_BYTES = memoryview(http.body("style", BODY))  # h11 wants the body to count it; never copied

REQUESTS = {
    "lab client": http.request_bytes("style", BODY, "server:3001", True, "HTTP/1.1"),
    "curl": (
        b"GET /style?size=30000 HTTP/1.1\r\nHost: server:3001\r\nUser-Agent: curl/7.88.1\r\n"
        b"Accept: */*\r\n\r\n"
    ),
    "chromium": (
        b"GET /style.css HTTP/1.1\r\nHost: server:3001\r\nConnection: keep-alive\r\n"
        b'sec-ch-ua: "Chromium";v="120", "Not?A_Brand";v="8"\r\nsec-ch-ua-mobile: ?0\r\n'
        b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        b'Chrome/120.0.0.0 Safari/537.36\r\nsec-ch-ua-platform: "Linux"\r\n'
        b"Accept: text/css,*/*;q=0.1\r\nSec-Fetch-Site: same-origin\r\nSec-Fetch-Mode: no-cors\r\n"
        b"Sec-Fetch-Dest: style\r\nReferer: http://server:3001/index.html\r\n"
        b"Accept-Encoding: gzip, deflate\r\nAccept-Language: en-US,en;q=0.9\r\n\r\n"
    ),
}


# --- The two servers' wire layers: each returns how many requests it answered ------------------


def hand_stream(reads: list[bytes]) -> int:
    """One connection, the reads as they come: parse, keep-alive, response head."""
    parser = http.RequestParser()
    answered = 0
    for data in reads:
        for request in parser.feed(data):
            keep_alive = http.wants_keep_alive(request)
            http.response_head(200, BODY, keep_alive)
            answered += 1
    return answered


def hand_per_connection(reads: list[bytes]) -> int:
    return sum(hand_stream([data]) for data in reads)


def _h11_head(keep_alive: bool) -> list[tuple[bytes, bytes]]:
    return [
        (b"Date", http.http_date().encode()),
        (b"Server", b"tcplab"),
        (b"Content-Type", b"application/octet-stream"),
        (b"Content-Length", str(BODY).encode()),
        (b"Connection", b"keep-alive" if keep_alive else b"close"),
    ]


def h11_stream(reads: list[bytes]) -> int:
    """The same with h11: a Request event, our Response (head) and EndOfMessage, its
    EndOfMessage, then the next cycle."""
    conn = h11.Connection(h11.SERVER)
    answered = 0
    for data in reads:
        conn.receive_data(data)
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                break
            if type(event) is h11.Request:
                keep_alive = conn.our_state is h11.SEND_RESPONSE and not _h11_close(event)
                conn.send(h11.Response(status_code=200, headers=_h11_head(keep_alive)))
                # h11 checks the body against Content-Length: handed over without a copy.
                conn.send_with_data_passthrough(h11.Data(data=BODY_BYTES))
                conn.send(h11.EndOfMessage())
            elif type(event) is h11.EndOfMessage:
                conn.start_next_cycle()
                answered += 1
            else:  # pragma: no cover
                raise AssertionError(event)
    return answered


def _h11_close(request: h11.Request) -> bool:
    return any(n == b"connection" and b"close" in v.lower() for n, v in request.headers)


def h11_per_connection(reads: list[bytes]) -> int:
    return sum(h11_stream([data]) for data in reads)


# --- Timing ----------------------------------------------------------------------------------


def _workloads(request: bytes, n: int) -> dict[str, tuple[list[bytes], str]]:
    stream = request * n
    pipelined = [stream[i : i + READ] for i in range(0, len(stream), READ)]
    alone = [request] * n
    return {
        "pipelined": (pipelined, "stream"),
        "keep-alive": (alone, "stream"),
        "new connection": (alone, "per_connection"),
    }


PARSERS: dict[str, dict[str, Callable[[list[bytes]], int]]] = {
    "hand": {"stream": hand_stream, "per_connection": hand_per_connection},
    "h11": {"stream": h11_stream, "per_connection": h11_per_connection},
}


def _time(fn: Callable[[list[bytes]], int], reads: list[bytes], n: int) -> float:
    """CPU seconds per request: on a shared machine, wall time also counts other processes'."""
    started = time.process_time()
    answered = fn(reads)
    elapsed = time.process_time() - started
    assert answered == n, (fn.__name__, answered, n)  # both really answered every request
    return elapsed / n


def bench(n: int, repeat: int) -> list[tuple[str, str, float, float]]:
    rows = []
    for kind, request in REQUESTS.items():
        for how, (reads, shape) in _workloads(request, n).items():
            times: dict[str, list[float]] = {"hand": [], "h11": []}
            for r in range(repeat):
                order = ("hand", "h11") if r % 2 == 0 else ("h11", "hand")  # load hits both
                for name in order:
                    times[name].append(_time(PARSERS[name][shape], reads, n))
            rows.append(
                (kind, how, statistics.median(times["hand"]), statistics.median(times["h11"]))
            )
    return rows


# --- Conformance -----------------------------------------------------------------------------

H = b"Host: lab\r\n"
CASES = [
    ("GET, HTTP/1.1", b"GET /a?size=1 HTTP/1.1\r\n" + H + b"\r\n", "200"),
    ("HEAD", b"HEAD /a?size=1 HTTP/1.1\r\n" + H + b"\r\n", "200, no body"),
    ("DELETE", b"DELETE /a?size=1 HTTP/1.1\r\n" + H + b"\r\n", "405 + Allow"),
    ("1.1 without Host", b"GET /a?size=1 HTTP/1.1\r\n\r\n", "400"),
    ("two Hosts", b"GET /a?size=1 HTTP/1.1\r\n" + H + H + b"\r\n", "400"),
    ("Host: a b", b"GET /a?size=1 HTTP/1.1\r\nHost: a b\r\n\r\n", "400"),
    ("17 KB target", b"GET /" + b"a" * 17_000 + b" HTTP/1.1\r\n" + H + b"\r\n", "414"),
    ("20 KB header", b"GET / HTTP/1.1\r\n" + H + b"X: " + b"y" * 20_000 + b"\r\n\r\n", "431"),
    ("HTTP/1.2", b"GET /a?size=1 HTTP/1.2\r\n" + H + b"\r\n", "as 1.1"),
    ("HTTP/2.0", b"GET /a?size=1 HTTP/2.0\r\n" + H + b"\r\n", "505"),
    ("GET with 3 B body", b"GET /a?size=1 HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n\r\nabc", "-"),
    ("bare LF line ends", b"GET /a?size=1 HTTP/1.1\nHost: lab\n\n", "MAY accept"),
    ("obs-fold header", b"GET /a?size=1 HTTP/1.1\r\n" + H + b"X: a\r\n b\r\n\r\n", "400 or fold"),
]


def hand_answer(data: bytes) -> str:
    parser = http.RequestParser()
    try:
        requests = parser.feed(data)
        if not requests:
            return "waits for more"
        (request,) = requests[:1]
        http.route(request)
    except http.HTTPError as exc:
        return str(exc.status)
    extra = (
        ""
        if request.version == data.split(b"\r\n")[0][-8:].decode()
        else f" as {request.version[5:]}"
    )
    return f"{request.method} ok{extra}"


def h11_answer(data: bytes, read: int = READ) -> str:
    conn = h11.Connection(h11.SERVER)
    try:
        for at in range(0, len(data), read):  # as the server's reads would deliver it
            conn.receive_data(data[at : at + read])
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                break
        if type(event) is not h11.Request:
            return "waits for more"
        body = conn.next_event()
        tail = " + body read" if type(body) is h11.Data else ""
        return f"{event.method.decode()} ok (version {event.http_version.decode()}){tail}"
    except h11.RemoteProtocolError as exc:
        return f"{exc.error_status_hint} ({exc})"[:48]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000, help="requests per cell")
    parser.add_argument("--repeat", type=int, default=5, help="runs per cell (median kept)")
    parser.add_argument("--quick", action="store_true", help="2,000 requests, 3 runs")
    args = parser.parse_args()
    n, repeat = (2_000, 3) if args.quick else (args.requests, args.repeat)
    if n < 1 or repeat < 1:
        print("error: --requests and --repeat must be at least 1", file=sys.stderr)
        return 2
    print(
        f"Python {platform.python_version()}, h11 {h11.__version__}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f} at the start; {n:,} requests a cell, "
        f"median of {repeat}"
    )
    print("\nCPU µs per request")
    print(f"{'request':11} {'arrival':15} {'hand':>8} {'h11':>8} {'h11/hand':>9}")
    ratios = []
    for kind, how, hand, h11_time in bench(n, repeat):
        ratios.append(h11_time / hand)
        print(f"{kind:11} {how:15} {hand * 1e6:8.2f} {h11_time * 1e6:8.2f} {ratios[-1]:8.2f}x")
    print(
        f"h11 takes {min(ratios):.1f}x to {max(ratios):.1f}x the hand-written parser's time "
        f"per request (geometric mean {statistics.geometric_mean(ratios):.1f}x); load average "
        f"{os.getloadavg()[0]:.2f} at the end"
    )
    print(f"\n{'case':19} {'RFC 9110/9112':14} {'hand-written':22} h11")
    for name, data, rfc in CASES:
        print(f"{name:19} {rfc:14} {hand_answer(data):22} {h11_answer(data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
