"""HTTP/2 on one accepted connection, with the `h2` library (Debian's python3-h2 in the image).

`h2` is sans-IO: it turns bytes into events and events into bytes. `H2Server` keeps one
connection's state (bytes in, bytes out, no socket); `serve_h2` is the `h2`/`h2c` handler of
`server.handlers` (it moves the bytes through the `Connection`, so TLS, timeouts and the log
are the other protocols'), and `serve(sock, lookup)` the same on a bare blocking socket.

One connection, many streams: every request the client sends is answered as soon as it is in,
and the responses' DATA frames are interleaved, one frame per stream in turn, as far as the
flow-control windows allow (a client that stops reading stops the server, the way TCP's window
does). Over TLS the client picks `h2` by ALPN (server/tls.py's `alpn`); in clear (h2c "prior
knowledge", RFC 9113 3.3) it starts with the connection preface, no Upgrade.

The client closes first, as HTTP/1.1 keep-alive's does: after its GOAWAY the server reads on
until the client's FIN. The server's own GOAWAY (max requests, shutdown) ends it from our side.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

from server.connection import Connection, PeerError, Waits
from wire import http

if TYPE_CHECKING:  # server.handlers imports this module
    from server.handlers import ProtocolOptions

RECV_SIZE = 65536
TEXT = "text/plain; charset=utf-8"

# (status, body, content type) of what a path asks for; the server's page in serve_h2.
Found = tuple[int, bytes, str]
Lookup = Callable[[str], Found]


@dataclass
class _Pending:
    path: str
    status: int
    body: memoryview
    sent: int = 0


@dataclass
class ServedConnection:
    """What one HTTP/2 connection served: each stream's path and bytes, in request order."""

    streams: list[tuple[int, str, int]] = field(default_factory=list)  # (id, path, body bytes)
    closed_by: str = "client"  # "client" (FIN or GOAWAY) or "error: ..."


@dataclass
class Answered:
    """A response whose last byte has been handed to `h2` (for the server's log)."""

    stream_id: int
    path: str
    status: int
    bytes: int


class H2Server:
    """The server's end of one HTTP/2 connection: `receive(data)` -> the bytes to send.

    `started` (new requests) and `answered` (responses sent whole) fill up as it goes, for
    the caller's log; it empties them. ProtocolError from `h2` on bytes that are not HTTP/2.
    """

    def __init__(self, lookup: Lookup, server_name: str = "tcplab") -> None:
        self.lookup = lookup
        self.server_name = server_name
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        self.conn.initiate_connection()  # our SETTINGS go with the first answer
        self.pending: dict[int, _Pending] = {}
        self.served = ServedConnection()
        self.started: list[tuple[int, str, str]] = []  # (stream, method, path)
        self.answered: list[Answered] = []
        self.goaway_received = False

    @property
    def busy(self) -> bool:
        """Responses are waiting for the client's window: the connection is mid-message."""
        return bool(self.pending)

    def receive(self, data: bytes) -> bytes:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self.served.closed_by = f"error: {exc}"
            raise
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                self._answer(event)
            elif isinstance(event, h2.events.DataReceived):
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                self.pending.pop(event.stream_id, None)
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.goaway_received = True
                self.pending.clear()
        self._send_what_windows_allow()
        return self.conn.data_to_send()

    def goaway(self) -> bytes:
        """Our GOAWAY (no error): the server ends the connection."""
        self.conn.close_connection(h2.errors.ErrorCodes.NO_ERROR)
        return self.conn.data_to_send()

    def _answer(self, event: h2.events.RequestReceived) -> None:
        headers = dict(event.headers)
        method = str(headers.get(":method", "GET"))
        path = str(headers.get(":path", "/"))
        status, body, content_type = self.lookup(path)
        if method not in http.ALLOWED_METHODS:
            status, body, content_type = 405, b"method not allowed (GET or HEAD)\n", TEXT
        head_only = method == "HEAD"  # the same head as a GET, no body
        self.conn.send_headers(
            event.stream_id,
            [
                (":status", str(status)),
                ("content-length", str(len(body))),
                ("content-type", content_type),
                ("server", self.server_name),
            ],
            end_stream=head_only or not body,
        )
        self.started.append((event.stream_id, method, path))
        self.served.streams.append((event.stream_id, path, len(body)))
        if head_only or not body:
            self.answered.append(Answered(event.stream_id, path, status, 0))
        else:
            self.pending[event.stream_id] = _Pending(path, status, memoryview(body))

    def _send_what_windows_allow(self) -> None:
        """DATA frames, one per stream in turn (round robin), until every window is shut or
        every response is sent; a finished response ends its stream."""
        conn = self.conn
        while self.pending:
            progressed = False
            for stream_id in list(self.pending):
                item = self.pending[stream_id]
                left = len(item.body) - item.sent
                room = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
                if room <= 0:
                    continue
                chunk = item.body[item.sent : item.sent + min(left, room)]
                item.sent += len(chunk)
                done = item.sent == len(item.body)
                conn.send_data(stream_id, chunk.tobytes(), end_stream=done)
                if done:
                    del self.pending[stream_id]
                    self.answered.append(Answered(stream_id, item.path, item.status, item.sent))
                progressed = True
            if not progressed:
                return


def page_lookup(opts: ProtocolOptions) -> Lookup:
    """What `serve_h2` serves: the scenario's page, as `serve_http` does (GET /name, or
    /name?size=N for the hex pattern), refusals as plain text."""

    def lookup(path: str) -> Found:
        try:
            name, size = http.route(
                http.Request("GET", path, "HTTP/2"), opts.resources, opts.max_body
            )
        except http.HTTPError as exc:
            return exc.status, f"{exc}\n".encode(), TEXT
        return 200, opts.page.body(name, size), opts.page.content_type(name, size)

    return lookup


def serve_h2(conn: Connection, opts: ProtocolOptions) -> Waits[str | None]:
    """The `h2` and `h2c` handler: None when the client closed (after its GOAWAY), else why
    the server ends the connection (it sent a GOAWAY first)."""
    server = H2Server(page_lookup(opts))
    answered = 0
    while True:
        data = yield from conn.recv(mid_message=server.busy)
        if not data:
            return None
        try:
            out = server.receive(data)
        except h2.exceptions.ProtocolError as exc:
            yield from conn.send(server.conn.data_to_send())  # h2's GOAWAY, if any
            raise PeerError(f"not HTTP/2: {str(exc)[:120]}") from None
        for stream_id, method, path in server.started:
            conn.event(
                "request",
                request_line=f"{method} {path[:200]} HTTP/2",
                version="HTTP/2",
                stream=stream_id,
            )
        server.started.clear()
        if out:
            yield from conn.send(out)
        for a in server.answered:
            conn.event(
                "response",
                status=a.status,
                request=a.path.lstrip("/"),
                bytes=a.bytes,
                keep_alive=True,
                stream=a.stream_id,
            )
        answered += len(server.answered)
        finished = bool(server.answered)
        server.answered.clear()
        if finished and opts.resets.is_set():
            return conn.reset("reset mode")
        if server.busy or server.goaway_received:
            continue  # the client closes after its GOAWAY: read on to its FIN
        reason = None
        if opts.max_requests and answered >= opts.max_requests:
            reason = f"max requests ({opts.max_requests}) reached"
        elif conn.stopping:
            reason = "server shutting down"
        if reason:
            yield from conn.send(server.goaway())
            return reason


def serve(sock: socket.socket, lookup: Lookup, server_name: str = "tcplab") -> ServedConnection:
    """Serve one HTTP/2 connection on a connected blocking socket (plain or TLS) until the
    client closes it (its FIN) or breaks the protocol."""
    server = H2Server(lookup, server_name)
    while True:
        try:
            data = sock.recv(RECV_SIZE)
        except OSError as exc:
            server.served.closed_by = f"error: {exc}"
            return server.served
        if not data:
            return server.served
        try:
            out = server.receive(data)
        except h2.exceptions.ProtocolError:
            sock.sendall(server.conn.data_to_send())
            return server.served
        if out:
            sock.sendall(out)
