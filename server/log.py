"""Server log lines: human (modelled on the article's) or JSON, one line each, flushed.

`quiet` writes human lines for the server's own life (listening, refused, errors, slow peers
dropped, stopping) and nothing per connection or message: for benchmarks, where a flushed line
per event would cost more than the echo itself.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, TextIO

LOG_FORMATS = ("human", "json", "quiet")
QUIET_EVENTS = frozenset({"listening", "refused", "error", "dropped", "stopping", "stopped"})


def _human(event: str, f: dict[str, Any]) -> str:
    sock = f.get("conn")
    peer = f"{f.get('peer')}:{f.get('peer_port')}"
    match event:
        case "listening":
            return f"Server listening at port {f['port']} ({f['mode']})"
        case "accepted":
            return f"Client connection successful - Socket {sock} (from {peer})"
        case "message":
            return f"Message from client (Socket {sock}): {f['preview']}"
        case "request":
            return f"Request from client (Socket {sock}): {f['request_line']}"
        case "response":
            return f"Response to Socket {sock}: {f['status']} ({f['bytes']} bytes body)"
        case "fin_sent":
            return f"Socket {sock} stops sending data (server FIN: {f['reason']})"
        case "peer_fin":
            return f"Socket {sock} stops receiving data"
        case "closed":
            why = f" due to error: {f['reason']}" if f.get("error") else ""
            return (
                f"Socket {sock} closed{why} "
                f"({f.get('bytes_in', 0)} bytes in, {f.get('bytes_out', 0)} bytes out)"
            )
        case "refused":
            return f"Connection from {peer} refused: {f['reason']}"
        case "error":
            return f"Error in Socket {sock}: {f['reason']}"
        case "dropped":
            return f"Socket {sock} dropped: {f['reason']}"
        case "stopping":
            return f"Server stopping: {f['reason']}"
        case "stopped":
            return f"Server stopped ({f.get('connections', 0)} connections served)"
    rest = " ".join(f"{k}={v}" for k, v in f.items())
    return f"{event} {rest}".strip()


class Log:
    """Thread-safe line logger; `event(name, **fields)` writes one line and flushes."""

    def __init__(self, fmt: str = "human", stream: TextIO | None = None) -> None:
        if fmt not in LOG_FORMATS:
            raise ValueError(f"unknown log format {fmt!r}")
        self.fmt = fmt
        self.per_connection = fmt != "quiet"  # callers skip building fields nobody writes
        self.stream = stream if stream is not None else sys.stdout
        self._lock = threading.Lock()

    def event(self, event: str, **fields: Any) -> None:
        if not self.per_connection and event not in QUIET_EVENTS:
            return
        if self.fmt == "json":
            line = json.dumps({"ts": time.time(), "event": event, **fields})
        else:
            line = _human(event, fields)
        with self._lock:
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass  # a closed stdout must not take a connection down
