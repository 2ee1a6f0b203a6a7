"""HTTP/2 from the client: a page's requests multiplexed on one connection (the `h2` library,
Debian's python3-h2 in the image).

`fetch(sock, authority, paths)` sends every request at once (one HEADERS frame each, streams
1, 3, 5, ...) on a connected socket, plain (h2c with prior knowledge) or TLS with `h2` chosen by
ALPN, then reads until every stream has ended, returning each response with when its request
left and its first and last body bytes came. Received data is acknowledged as it is read, so
the server's windows reopen and a large response keeps flowing. The caller closes the socket.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

import h2.config
import h2.connection
import h2.events
import h2.exceptions

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


def fetch(
    sock: socket.socket, authority: str, paths: list[str], scheme: str = "https"
) -> list[Response]:
    """Every path over one HTTP/2 connection, all requested at once; in request order."""
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    )
    conn.initiate_connection()
    responses: dict[int, Response] = {}
    for path in paths:
        stream_id = conn.get_next_available_stream_id()
        headers = [(":method", "GET"), (":scheme", scheme), (":authority", authority)]
        conn.send_headers(stream_id, [*headers, (":path", path)], end_stream=True)
        responses[stream_id] = Response(path, stream_id)
    sent = time.time()
    sock.sendall(conn.data_to_send())
    for r in responses.values():
        r.t_sent = sent
    open_streams = set(responses)
    while open_streams:
        try:
            data = sock.recv(RECV_SIZE)
        except OSError as exc:
            raise Http2Error(f"HTTP/2 read failed: {exc}") from None
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
                r.status = int(dict(event.headers).get(":status", 0))
            elif isinstance(event, h2.events.DataReceived) and r is not None:
                if r.t_first_byte is None and event.data:
                    r.t_first_byte = now
                r.body_bytes += len(event.data)
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded) and r is not None:
                r.t_done = now
                open_streams.discard(r.stream_id)
            elif isinstance(event, h2.events.StreamReset) and r is not None:
                r.reset, r.t_done = True, now
                open_streams.discard(r.stream_id)
            elif isinstance(event, h2.events.ConnectionTerminated):
                raise Http2Error(f"the server sent GOAWAY (error code {event.error_code})")
        out = conn.data_to_send()
        if out:
            sock.sendall(out)
    conn.close_connection()
    sock.sendall(conn.data_to_send())
    return [responses[s] for s in sorted(responses)]
