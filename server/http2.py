"""HTTP/2 on one accepted connection, with the `h2` library (Debian's python3-h2 in the image).

`h2` is sans-IO: it turns bytes into events and events into bytes, and this module moves the
bytes. One connection, many streams: every request the client sends is answered as soon as it
is in, and the responses' DATA frames are interleaved, one frame per stream in turn, as far as
the flow-control windows allow (a client that stops reading stops the server, the way TCP's
window does). Over TLS the client picks `h2` by ALPN (server/tls.py's `alpn`); in clear (h2c
"prior knowledge", RFC 9113 3.3) it starts with the connection preface, no Upgrade.

Blocking, a thread per connection, as the article's server: `serve(sock, lookup)` returns once
the client has closed or sent GOAWAY. `lookup(path)` gives a resource's bytes (None: 404).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.exceptions

RECV_SIZE = 65536


@dataclass
class _Pending:
    body: memoryview
    sent: int = 0


@dataclass
class ServedConnection:
    """What one HTTP/2 connection served: each stream's path and bytes, in request order."""

    streams: list[tuple[int, str, int]] = field(default_factory=list)  # (id, path, body bytes)
    closed_by: str = "client"  # "client" (FIN or GOAWAY) or "error: ..."


def serve(
    sock: socket.socket,
    lookup: Callable[[str], bytes | None],
    server_name: str = "tcplab",
) -> ServedConnection:
    """Serve one HTTP/2 connection on a connected socket (plain or TLS) until it ends."""
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
    )
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    pending: dict[int, _Pending] = {}
    served = ServedConnection()
    while True:
        try:
            data = sock.recv(RECV_SIZE)
        except OSError as exc:
            served.closed_by = f"error: {exc}"
            return served
        if not data:
            return served
        try:
            events = conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            served.closed_by = f"error: {exc}"
            sock.sendall(conn.data_to_send())
            return served
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                headers = dict(event.headers)
                path = str(headers.get(":path", "/"))
                body = lookup(path)
                status = "200" if body is not None else "404"
                body = body if body is not None else b"not found\n"
                conn.send_headers(
                    event.stream_id,
                    [
                        (":status", status),
                        ("content-length", str(len(body))),
                        ("content-type", "application/octet-stream"),
                        ("server", server_name),
                    ],
                )
                pending[event.stream_id] = _Pending(memoryview(body))
                served.streams.append((event.stream_id, path, len(body)))
            elif isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                pending.pop(event.stream_id, None)
            elif isinstance(event, h2.events.ConnectionTerminated):
                sock.sendall(conn.data_to_send())
                return served
        _send_what_windows_allow(conn, pending)
        out = conn.data_to_send()
        if out:
            sock.sendall(out)


def _send_what_windows_allow(
    conn: h2.connection.H2Connection, pending: dict[int, _Pending]
) -> None:
    """DATA frames, one per stream in turn (round robin), until every window is shut or every
    response is sent; a finished response ends its stream."""
    while pending:
        progressed = False
        for stream_id in list(pending):
            item = pending[stream_id]
            left = len(item.body) - item.sent
            room = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
            if left and room <= 0:
                continue
            chunk = item.body[item.sent : item.sent + min(left, room)]
            item.sent += len(chunk)
            conn.send_data(stream_id, chunk.tobytes(), end_stream=item.sent == len(item.body))
            if item.sent == len(item.body):
                del pending[stream_id]
            progressed = True
        if not progressed:
            return
