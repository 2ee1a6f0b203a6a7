"""HTTP/2 from the client: a page's requests multiplexed on one connection (the `h2` library,
Debian's python3-h2 in the image).

`fetch(sock, authority, paths)` sends every request at once (one HEADERS frame each, streams
1, 3, 5, ...) on a connected socket, plain (h2c with prior knowledge) or TLS with `h2` chosen by
ALPN, then reads until every stream has ended, returning each response with when its request
left and its first and last body bytes came. Received data is acknowledged as it is read, so
the server's windows reopen and a large response keeps flowing; the windows start as large as
a browser's. `exchange` is the same over any send/recv pair (the lab client's `Session`, which
counts and times the bytes). The caller closes the socket.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

RECV_SIZE = 262144


class Http2Error(Exception):
    """A one-line reason the page could not be fetched over HTTP/2."""


@dataclass
class Response:
    path: str
    stream_id: int
    status: int | None = None
    body_bytes: int = 0
    t_sent: float = 0.0
    t_first_byte: float | None = None
    t_done: float | None = None
    reset: bool = False
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names, ":status" too
    body: bytes = b""


# The client's receive windows: a browser's (Chromium opens 6 MB per stream, 15 MB for the
# connection), so the page flows without waiting a round trip for each 64 KB window update.
STREAM_WINDOW = 6 << 20
CONNECTION_WINDOW = 15 << 20


def fetch(
    sock: socket.socket, authority: str, paths: list[str], scheme: str = "https"
) -> list[Response]:
    """Every path over one HTTP/2 connection, all requested at once; in request order."""

    def recv() -> bytes:
        try:
            return sock.recv(RECV_SIZE)
        except OSError as exc:
            raise Http2Error(f"HTTP/2 read failed: {exc}") from None

    return exchange(sock.sendall, recv, authority, paths, scheme)


def exchange(
    send: Callable[[bytes], object],
    recv: Callable[[], bytes],
    authority: str,
    paths: list[str],
    scheme: str = "https",
) -> list[Response]:
    """`fetch` over any byte pipe: `send(data)` writes, `recv()` reads (b"" at the FIN). After
    the last response it sends GOAWAY; the caller then closes (the client closes first)."""
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    )
    conn.local_settings = h2.settings.Settings(
        client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW}
    )
    conn.initiate_connection()
    conn.increment_flow_control_window(CONNECTION_WINDOW - conn.inbound_flow_control_window)
    responses: dict[int, Response] = {}
    for path in paths:
        stream_id = conn.get_next_available_stream_id()
        headers = [(":method", "GET"), (":scheme", scheme), (":authority", authority)]
        conn.send_headers(stream_id, [*headers, (":path", path)], end_stream=True)
        responses[stream_id] = Response(path, stream_id)
    send(conn.data_to_send())
    sent = time.time()
    for r in responses.values():
        r.t_sent = sent
    open_streams = set(responses)
    bodies: dict[int, list[bytes]] = {s: [] for s in responses}
    while open_streams:
        data = recv()
        now = time.time()
        if not data:
            raise Http2Error(f"the server closed with {len(open_streams)} streams unanswered")
        try:
            events = conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            raise Http2Error(f"HTTP/2 protocol error: {exc}") from None
        for event in events:
            r = responses.get(getattr(event, "stream_id", 0) or 0)
            if isinstance(event, h2.events.ResponseReceived) and r is not None:
                r.headers = {str(k): str(v) for k, v in event.headers}
                r.status = int(r.headers.get(":status", 0))
            elif isinstance(event, h2.events.DataReceived) and r is not None:
                if r.t_first_byte is None and event.data:
                    r.t_first_byte = now
                r.body_bytes += len(event.data)
                bodies[r.stream_id].append(event.data)
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded) and r is not None:
                r.t_done = now
                r.t_first_byte = r.t_first_byte or now  # an empty body: the head was its start
                open_streams.discard(r.stream_id)
            elif isinstance(event, h2.events.StreamReset) and r is not None:
                r.reset, r.t_done = True, now
                open_streams.discard(r.stream_id)
            elif isinstance(event, h2.events.ConnectionTerminated):
                raise Http2Error(f"the server sent GOAWAY (error code {event.error_code})")
        out = conn.data_to_send()
        if out:
            send(out)
    conn.close_connection()
    send(conn.data_to_send())
    for stream_id, r in responses.items():
        r.body = b"".join(bodies[stream_id])
    return [responses[s] for s in sorted(responses)]
