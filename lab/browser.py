"""What a browser did, from its own account (Chromium's net-log) joined to the capture. Pure.

A mode with `client: browser` runs headless Chromium (tcplab/browser, `client.browser`) instead
of the lab's client; it leaves `browser.netlog.json` (Chromium's net-log, verbatim) and
`browser.log` (Chromium's stderr and the driver's last JSON line: exit, title, DOM) beside the
capture. This module reads the net-log's sockets (their local ports) and URL requests (which
socket each went on, and when), and joins them to the capture's connections by the client's
port: which resource went on which connection, how many connections the browser opened, how
many requests reused one, and what each request waited for.

The net-log chain from a request to its connection:

    URL_REQUEST ──HTTP_STREAM_REQUEST_BOUND_TO_JOB──► HTTP_STREAM_JOB
    HTTP_STREAM_JOB ──SOCKET_POOL_BOUND_TO_SOCKET──► SOCKET ──TCP_CONNECT (end)──► local port

Times: net-log event times are milliseconds of Chromium's tick clock; `constants.timeTickOffset`
turns them into Unix milliseconds, the capture's clock (one host, one clock).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

NETLOG_FILE = "browser.netlog.json"
LOG_FILE = "browser.log"
# Chromium's limit of open connections per host (its socket pool's group) for HTTP/1.x.
CONNECTIONS_PER_HOST = 6


# --- the net-log ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Socket:
    """One TCP socket the browser opened (a net-log SOCKET source)."""

    id: int
    local_port: int | None
    remote: str | None  # "host:port" as Chromium connected to it
    t_connect: float | None  # Unix seconds: the connect began
    t_connected: float | None
    t_closed: float | None
    requests: tuple[int, ...] = ()  # URL_REQUEST ids it carried, in order


@dataclass(frozen=True)
class Fetch:
    """One URL request (a net-log URL_REQUEST source), with what it waited for."""

    id: int
    url: str
    t_start: float  # Unix seconds: the page asked for it
    t_socket: float | None  # a connection was bound to it (the wait for a socket ends)
    t_sent: float | None  # its request headers went out
    t_headers: float | None  # its response headers came in
    t_end: float | None
    status: int | None
    body_bytes: int
    socket: int | None  # the Socket id
    error: str | None = None

    @property
    def name(self) -> str:
        """The resource's name as the lab's scenarios give it: the path without its '/'."""
        return urlsplit(self.url).path.lstrip("/") or "/"


@dataclass(frozen=True)
class NetLog:
    sockets: tuple[Socket, ...]
    fetches: tuple[Fetch, ...]
    truncated: bool = False  # the file ended mid-way (Chromium killed); read up to the cut


def load_netlog(text: str) -> dict[str, Any]:
    """The net-log as JSON; a file cut short (Chromium killed before it closed the file) is
    read up to its last whole event."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    head, sep, _ = text.rpartition("},\n")
    if not sep:
        raise ValueError("not a Chromium net-log (no JSON object)")
    try:
        data = json.loads(head + "}]}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"not a Chromium net-log: {exc}") from None
    data["truncated"] = True
    return data


# A job that puts its request on an open HTTP/2 connection (the session's own source id).
H2_SESSION_FOUND = (
    "HTTP2_SESSION_POOL_FOUND_EXISTING_SESSION",
    "HTTP_STREAM_JOB_HTTP2_SESSION_AVAILABLE",
)


def parse_netlog(text: str) -> NetLog:
    data = load_netlog(text)
    try:
        constants = data["constants"]
        events = data["events"]
        event_name = {v: k for k, v in constants["logEventTypes"].items()}
        source_name = {v: k for k, v in constants["logSourceType"].items()}
        phase_name = {v: k for k, v in constants["logEventPhase"].items()}
        offset_ms = float(constants.get("timeTickOffset", 0))
    except (KeyError, TypeError, AttributeError):
        raise ValueError("not a Chromium net-log (no constants or events)") from None

    def secs(e: dict) -> float:
        return (float(e["time"]) + offset_ms) / 1000.0

    sockets: dict[int, dict[str, Any]] = {}
    requests: dict[int, dict[str, Any]] = {}
    job_socket: dict[int, int] = {}
    # HTTP/2: a request's job finds the connection's session, not a socket of the pool
    job_session: dict[int, int] = {}
    session_socket: dict[int, int] = {}
    for e in events:
        src = e.get("source") or {}
        kind, sid = source_name.get(src.get("type")), src.get("id")
        name, phase = event_name.get(e.get("type")), phase_name.get(e.get("phase"))
        params = e.get("params") or {}
        if kind == "SOCKET":
            s = sockets.setdefault(sid, {"id": sid})
            if name == "TCP_CONNECT" and phase == "PHASE_BEGIN":
                s["t_connect"] = secs(e)
            elif name == "TCP_CONNECT" and phase == "PHASE_END":
                s["t_connected"] = secs(e)
                s["local"] = params.get("local_address") or params.get("source_address")
                s["remote"] = params.get("remote_address")
            elif name == "SOCKET_ALIVE" and phase == "PHASE_END":
                s["t_closed"] = secs(e)
        elif kind == "HTTP_STREAM_JOB" and name == "SOCKET_POOL_BOUND_TO_SOCKET":
            job_socket[sid] = params["source_dependency"]["id"]
        elif kind == "HTTP_STREAM_JOB" and name in H2_SESSION_FOUND:
            job_session[sid] = params["source_dependency"]["id"]
        elif kind == "HTTP2_SESSION" and name == "HTTP2_SESSION_INITIALIZED":
            session_socket[sid] = params["source_dependency"]["id"]
        elif kind == "URL_REQUEST":
            if name == "REQUEST_ALIVE" and phase == "PHASE_BEGIN":
                url = params.get("url", "")
                if url.startswith(("http://", "https://")):
                    requests[sid] = {"id": sid, "url": url, "t_start": secs(e), "bytes": 0}
                continue
            r = requests.get(sid)
            if r is None:
                continue
            if name == "HTTP_STREAM_REQUEST_BOUND_TO_JOB":
                r["job"] = params["source_dependency"]["id"]
                r["t_socket"] = secs(e)
            elif name == "HTTP_TRANSACTION_SEND_REQUEST" and phase == "PHASE_BEGIN":
                r.setdefault("t_sent", secs(e))
            elif name == "HTTP_TRANSACTION_READ_RESPONSE_HEADERS":
                r["t_headers"] = secs(e)
                r["status"] = _status(params.get("headers") or [])
            elif name == "URL_REQUEST_JOB_FILTERED_BYTES_READ":
                r["bytes"] += int(params.get("byte_count", 0))
            elif name == "REQUEST_ALIVE" and phase == "PHASE_END":
                r["t_end"] = secs(e)
                if params.get("net_error"):
                    r["error"] = _net_error(constants, params["net_error"])
            elif name == "FAILED" or (phase == "PHASE_END" and params.get("net_error")):
                r.setdefault("error", _net_error(constants, params.get("net_error", 0)))

    fetches = []
    carried: dict[int, list[int]] = {}
    for r in sorted(requests.values(), key=lambda r: (r["t_start"], r["id"])):
        job = r.get("job", -1)
        sock = job_socket.get(job)
        if sock is None and job in job_session:  # a stream on an HTTP/2 connection
            sock = session_socket.get(job_session[job])
        if sock is not None:
            carried.setdefault(sock, []).append(r["id"])
        fetches.append(
            Fetch(
                id=r["id"], url=r["url"], t_start=r["t_start"], t_socket=r.get("t_socket"),
                t_sent=r.get("t_sent"), t_headers=r.get("t_headers"), t_end=r.get("t_end"),
                status=r.get("status"), body_bytes=r["bytes"], socket=sock, error=r.get("error"),
            )
        )  # fmt: skip
    out_sockets = tuple(
        Socket(
            id=s["id"], local_port=_port(s.get("local")), remote=s.get("remote"),
            t_connect=s.get("t_connect"), t_connected=s.get("t_connected"),
            t_closed=s.get("t_closed"), requests=tuple(carried.get(s["id"], ())),
        )
        for s in sorted(sockets.values(), key=lambda s: s["id"])
        if s.get("t_connect") is not None  # a SOCKET source that never connected is not one
    )  # fmt: skip
    return NetLog(out_sockets, tuple(fetches), bool(data.get("truncated")))


def _status(headers: Sequence[str]) -> int | None:
    parts = headers[0].split() if headers else []
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def _net_error(constants: dict, code: int) -> str:
    names = {v: k for k, v in (constants.get("netError") or {}).items()}
    return names.get(code, f"net error {code}")


def _port(address: str | None) -> int | None:
    if not address or ":" not in address:
        return None
    tail = address.rpartition(":")[2]
    return int(tail) if tail.isdigit() else None


def driver_summary(log_text: str) -> dict[str, Any]:
    """The driver's last JSON line in browser.log (exit, elapsed_s, title, dom), or {}."""
    for line in reversed(log_text.splitlines()):
        line = line.strip()
        if line.startswith("{") and '"browser_done"' in line:
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                return {}
    return {}


# --- joined with the capture ------------------------------------------------------------------


@dataclass
class ResourceRow:
    """One resource as the browser fetched it, on the capture's connection that carried it.

    Times are seconds on the browser's clock from the moment the page's first request began
    (the net-log's own times; the capture's clock is the server's side of the path, a one-way
    delay away)."""

    name: str
    status: int | None
    body_bytes: int
    local_port: int | None
    stream: int | None  # the capture's tcp.stream (None: the port is not in the capture)
    reused: bool  # the connection had carried an earlier request
    start: float  # the page asked for it
    socket: float | None  # a connection was bound to it: the wait for a socket ends
    connect_start: float | None  # a new connection: its handshake began (may precede start:
    connected: float | None  # a preconnect), and ended
    sent: float | None
    first_byte: float | None  # its response headers arrived
    end: float | None
    error: str | None = None

    def phases(self) -> list[tuple[str, float, float]]:
        """(phase, from, to) for a waterfall row: queued (waiting for a connection), connect
        (the handshake it waited for), waiting (request sent to first byte), receiving."""
        connect = (self.connect_start, self.connected) if not self.reused else (None, None)
        if connect[0] is not None and connect[0] < self.start:
            connect = (self.start, connect[1])  # opened ahead: only the part it waited for
        marks = [
            ("queued", self.start, connect[0] if connect[0] is not None else self.sent),
            ("connect", *connect),
            ("waiting", self.sent, self.first_byte),
            ("receiving", self.first_byte, self.end),
        ]
        return [(p, a, b) for p, a, b in marks if a is not None and b is not None and b >= a]


@dataclass
class BrowserAccount:
    """A browser mode's account: the browser's own view joined to the packets."""

    title: str | None
    exit: int | None
    requests: int  # URL requests that went to the network
    loaded: int  # answered 2xx
    sockets: int  # TCP connections the net-log says the browser opened
    connections: int | None  # TCP connections in the capture
    used_connections: int  # connections that carried at least one request
    unused_connections: int  # opened (a preconnect, a spare) and never carried a request
    reused: int  # requests that went on a connection that had carried an earlier one
    max_parallel: int | None  # most connections open at once (SYN to first FIN), capture
    max_parallel_per_host: dict[str, int] = field(default_factory=dict)
    complete_handshakes_used: int = 0  # the capture's complete handshakes, used connections
    unmatched_ports: list[int] = field(default_factory=list)  # net-log ports not in the capture
    truncated: bool = False
    resources: list[ResourceRow] = field(default_factory=list)
    # The page's own Navigation Timing (ms from the navigation's start), from the DOM: the
    # browser's page load time, which the capture's last byte overstates when the browser asks
    # for more after the load event (its favicon)
    dom_content_loaded_ms: float | None = None
    load_event_ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_TIMING = re.compile(r'\bdata-timing="([0-9]+(?:\.[0-9]+)?) ([0-9]+(?:\.[0-9]+)?)"')


def page_timing(dom: str | None) -> dict[str, float | None]:
    """The Navigation Timing the page's own script wrote into <body data-timing> (wire.site):
    when DOMContentLoaded ended and when the load event began, ms from the navigation's start."""
    m = _TIMING.search(dom or "")
    dcl, load = (float(m.group(1)), float(m.group(2))) if m else (None, None)
    return {"dom_content_loaded_ms": dcl, "load_event_ms": load}


def join(
    netlog: NetLog, connections: Iterable[Any], summary: dict[str, Any], origin: str | None = None
) -> BrowserAccount:
    """The net-log's requests on the capture's connections, by the browser's local port.

    `connections`: the capture's connections, anything with `stream`, `client_port`,
    `server_addr`, `server_port`, `t_syn`, `start`, `t_first_fin`, `end` and
    `handshake_complete` (lab.document.ConnectionResult). `origin` ("server:3000"): only the
    requests to it count (Chromium also tries a few of its own hosts, which do not resolve on
    the lab's internal network)."""
    conns = list(connections)
    fetches = [f for f in netlog.fetches if origin is None or urlsplit(f.url).netloc == origin]
    by_port = {c.client_port: c for c in conns if c.client_port is not None}
    socket_of = {s.id: s for s in netlog.sockets}
    t0 = min((f.t_start for f in fetches), default=0.0)

    def rel(t: float | None) -> float | None:
        return None if t is None else round(t - t0, 4)

    rows = []
    seen_on: dict[int, int] = {}  # socket id -> requests carried so far
    for f in sorted(fetches, key=lambda f: (f.t_sent or f.t_start, f.id)):
        sock = socket_of.get(f.socket) if f.socket is not None else None
        port = sock.local_port if sock else None
        conn = by_port.get(port) if port is not None else None
        before = seen_on.get(f.socket, 0) if f.socket is not None else 0
        if f.socket is not None:
            seen_on[f.socket] = before + 1
        rows.append(
            ResourceRow(
                name=f.name, status=f.status, body_bytes=f.body_bytes, local_port=port,
                stream=conn.stream if conn else None, reused=before > 0, start=rel(f.t_start),
                socket=rel(f.t_socket), connect_start=rel(sock.t_connect) if sock else None,
                connected=rel(sock.t_connected) if sock else None, sent=rel(f.t_sent),
                first_byte=rel(f.t_headers), end=rel(f.t_end), error=f.error,
            )
        )  # fmt: skip
    rows.sort(key=lambda r: (r.start, r.name))
    used_ports = {r.local_port for r in rows if r.local_port is not None and r.sent is not None}
    used = [c for c in conns if c.client_port in used_ports]
    net_ports = [s.local_port for s in netlog.sockets if s.local_port is not None]
    on_wire = [r for r in rows if r.sent is not None]
    return BrowserAccount(
        title=summary.get("title"),
        exit=summary.get("exit"),
        requests=len(on_wire),
        loaded=sum(1 for r in on_wire if r.status is not None and 200 <= r.status < 300),
        sockets=len(netlog.sockets),
        connections=len(conns) if conns else None,
        used_connections=len(used),
        unused_connections=len(conns) - len(used),
        reused=sum(1 for r in on_wire if r.reused),
        max_parallel=max_open(conns) if conns else None,
        max_parallel_per_host={
            host: max_open(group) for host, group in sorted(_by_host(conns).items())
        },
        complete_handshakes_used=sum(1 for c in used if c.handshake_complete),
        unmatched_ports=sorted(p for p in net_ports if p not in by_port),
        truncated=netlog.truncated,
        resources=rows,
        **page_timing(summary.get("dom")),
    )


def _by_host(conns: Sequence[Any]) -> dict[str, list[Any]]:
    groups: dict[str, list[Any]] = {}
    for c in conns:
        groups.setdefault(f"{c.server_addr}:{c.server_port}", []).append(c)
    return groups


def max_open(conns: Iterable[Any]) -> int:
    """The most connections open at once on the capture: from the SYN to the first FIN (or the
    last packet). A connection closes before one opening at the same instant."""
    edges = []
    for c in conns:
        opened = c.t_syn if c.t_syn is not None else c.start
        closed = c.t_first_fin if c.t_first_fin is not None else c.end
        if opened is None or closed is None:
            continue
        edges += [(opened, 1), (closed, -1)]
    most = now = 0
    for _, step in sorted(edges):
        now += step
        most = max(most, now)
    return most


def driver_argv(url: str, timeout_s: float, spki_pin: str | None = None) -> list[str]:
    """Arguments after `python3 -m client.browser` (the tcplab/browser image's entrypoint);
    `spki_pin`: over TLS, the server key's pin the browser trusts (lab.tlsca)."""
    argv = ["--url", url, "--timeout", f"{timeout_s:g}"]
    return [*argv, "--spki-pin", spki_pin] if spki_pin else argv


def page_url(host: str, port: int, first_resource: str, tls: bool = False) -> str:
    """The page the browser loads: the workload's first resource (the HTML); the browser
    fetches whatever it references."""
    return f"{'https' if tls else 'http'}://{host}:{port}/{first_resource}"
