"""The epoll model's own bookkeeping (its behaviour is tested with every other model's, in the
server tests that run once per model)."""

from __future__ import annotations

import io
import socket

import pytest

from server import loop
from server.log import Log
from tests.unit import tcp_harness
from tests.unit.tcp_harness import live_server, recv_all, run_client
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


@pytest.mark.parametrize("protocol", ["echo", "http"])
def test_two_loops_share_the_listeners_and_drain_on_stop(
    monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    monkeypatch.setitem(tcp_harness.MODEL, "concurrency", "epoll")
    monkeypatch.setitem(tcp_harness.MODEL, "loops", 2)
    what = {"resources": "a:100,b:200000,c:10"} if protocol == "http" else {"messages": "x,y,z"}
    with live_server(protocol=protocol) as (server, log, ports):
        for mode in ("non-persistent", "persistent"):
            result, _ = run_client(ports[mode], protocol=protocol, mode=mode, parallel=3, **what)
            assert result.ok, result.first_error
        # An idle keep-alive connection when the stop comes: it gets the server's FIN.
        idle = socket.create_connection(("127.0.0.1", ports["persistent"]), timeout=5)
        log.wait_for("accepted", peer_port=idle.getsockname()[1])
        server.request_stop()
        assert recv_all(idle) == b""
        idle.close()
    assert len(server.event_loops) == 2
    accepted = log.events("accepted")
    assert len(accepted) == 3 + 3 + 1
    assert len(log.events("closed")) == len(accepted)
    assert not log.events("error")
    assert [e["event"] for e in log.events()][-1] == "stopped"


def test_a_new_connections_first_read_does_not_wait_but_the_next_does() -> None:
    # A client sends its request as soon as connect() returns, usually before the accept: the
    # first read is tried at once (one loop wake-up less per connection); after a reply the
    # next request is rarely there yet, so later reads wait for epoll first.
    server_side, client = socket.socketpair()
    with server_side, client:
        conn = loop.LoopConnection(
            server_side, 1, "persistent", Log("quiet", io.StringIO()), 5.0, 5.0, peer=("x", 1)
        )
        client.sendall(b"request")
        first = conn.recv(mid_message=False)
        with pytest.raises(StopIteration) as done:
            next(first)  # no wait yielded: the bytes were read at once
        assert done.value.value == b"request"
        client.sendall(b"next")
        second = conn.recv(mid_message=False)
        events, _deadline = next(second)  # waits for epoll first
        assert events == loop.IN
        with pytest.raises(StopIteration) as done:
            second.send(True)
        assert done.value.value == b"next"
