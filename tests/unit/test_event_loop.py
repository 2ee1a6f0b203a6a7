"""The epoll model's own bookkeeping (its behaviour is tested with every other model's, in the
server tests that run once per model)."""

from __future__ import annotations

import socket

import pytest

from server import loop
from tests.unit import tcp_harness
from tests.unit.tcp_harness import live_server
from wire import framing

pytestmark = pytest.mark.timeout(60)


def test_ended_connections_leave_the_timer_heap(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every short connection arms a deadline an idle timeout away; a server making thousands of
    # connections a second must not keep each one (and its entry) until then.
    monkeypatch.setitem(tcp_harness.MODEL, "concurrency", "epoll")
    monkeypatch.setattr(loop, "COMPACT_SLACK", 50)
    frame = framing.encode_length(b"x")
    with live_server(modes=("non-persistent",), idle_timeout=60, read_timeout=60) as (
        server,
        _log,
        ports,
    ):
        for _ in range(300):
            with socket.create_connection(("127.0.0.1", ports["non-persistent"]), timeout=5) as s:
                s.sendall(frame)
                assert s.recv(64) == frame
        (event_loop,) = server.event_loops
        assert len(event_loop.timers) <= 2 * len(event_loop.conns) + 50
