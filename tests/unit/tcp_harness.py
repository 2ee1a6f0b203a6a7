"""Loopback helpers for the server/client tests: a real server on 127.0.0.1 in this process,
its JSON log captured line by line, and the real client run against it."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from client.core import ClientConfig, Result
from client.core import run as run_client_config
from client.log import Output
from client.plan import items_from_messages, items_from_resources
from server.core import CONCURRENCY, Listener, Server, ServerConfig, running
from server.handlers import ProtocolOptions
from server.log import Log

# The concurrency model live_server uses; the `each_concurrency` fixture (tests/unit/conftest.py)
# runs a test module once per model.
MODEL: dict[str, Any] = {"concurrency": CONCURRENCY[0]}


def model_args() -> list[str]:
    """The `python -m server` options for the model under test."""
    return ["--concurrency", MODEL["concurrency"]]


class LogSink(io.TextIOBase):
    """A text stream that keeps the server's JSON log lines as dicts."""

    def __init__(self) -> None:
        self._lines: list[dict[str, Any]] = []
        self._cond = threading.Condition()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._cond:
            for line in text.splitlines():
                if line.strip():
                    self._lines.append(json.loads(line))
            self._cond.notify_all()
        return len(text)

    def events(self, name: str | None = None, **match: Any) -> list[dict[str, Any]]:
        with self._cond:
            lines = list(self._lines)
        return [
            e
            for e in lines
            if (name is None or e["event"] == name) and all(e.get(k) == v for k, v in match.items())
        ]

    def wait_for(self, name: str, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [
                    e
                    for e in self._lines
                    if e["event"] == name and all(e.get(k) == v for k, v in match.items())
                ]
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {name} {match} in the server log within {timeout} s")
                self._cond.wait(left)


@contextlib.contextmanager
def live_server(
    modes: tuple[str, ...] = ("non-persistent", "persistent"),
    idle_timeout: float = 2.0,
    read_timeout: float = 2.0,
    max_connections: int = 64,
    shutdown_grace: float = 2.0,
    **options: Any,
) -> Iterator[tuple[Server, LogSink, dict[str, int]]]:
    """Yields (server, log, {mode: port}); every listener on a free port of 127.0.0.1."""
    sink = LogSink()
    config = ServerConfig(
        listeners=[Listener(0, m) for m in modes],
        host="127.0.0.1",
        options=ProtocolOptions(**options),
        idle_timeout=idle_timeout,
        read_timeout=read_timeout,
        max_connections=max_connections,
        shutdown_grace=shutdown_grace,
        concurrency=MODEL["concurrency"],
        loops=MODEL.get("loops", 1),
    )
    with running(config, Log("json", sink)) as server:
        yield server, sink, dict(zip(modes, server.ports, strict=True))


def run_client(
    port: int,
    messages: str | None = None,
    resources: str | None = None,
    protocol: str = "echo",
    timeout: float = 5.0,
    log_format: str = "json",
    **kw: Any,
) -> tuple[Result, str]:
    """Run the real client in-process; returns its result and its stdout."""
    if messages is not None:
        items = items_from_messages(messages)
    else:
        items = items_from_resources(resources or "", protocol)
    config = ClientConfig(
        host="127.0.0.1",
        port=port,
        items=items,
        protocol=protocol,
        timeout=timeout,
        connect_timeout=timeout,
        **kw,
    )
    out = io.StringIO()
    result = run_client_config(config, Output(log_format, out))
    return result, out.getvalue()


def assert_serves(port: int, protocol: str = "echo", mode: str = "persistent") -> None:
    """A good client still gets correct answers."""
    if protocol == "http":
        result, _ = run_client(port, resources="after:1000,again:10", protocol="http", mode=mode)
    else:
        result, _ = run_client(port, messages="still,here", mode=mode)
    assert result.ok, result.first_error


def recv_all(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Read until EOF (or a reset); bounded by `timeout` per read."""
    sock.settimeout(timeout)
    chunks = []
    with contextlib.suppress(ConnectionResetError):
        while data := sock.recv(65536):
            chunks.append(data)
    return b"".join(chunks)
