"""Slow peers over loopback: a client trickling a byte now and then beats the per-read timeout,
so a whole HTTP request head and a whole echo message have a deadline. A trickler is dropped
(a `dropped` log line with the reason) and its slot goes to the next client."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from server.connection import MessageClock
from tests.unit.tcp_harness import assert_serves, live_server, recv_all, run_client
from wire import framing

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("each_concurrency")]

DEADLINE = 1.0
GAP = 0.3  # between the trickler's bytes: well inside the read timeout (2 s)
REQUESTS = {
    "http": b"GET /slow?size=10 HTTP/1.1\r\nHost: x\r\n\r\n",
    "echo": framing.encode_length(b"Luffy" * 20),
}


class Trickler:
    """A real socket that sends `data` one byte every GAP seconds until the server stops it."""

    def __init__(self, port: int, data: bytes) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.data = data
        self.t_first: float | None = None  # time.time() of the first byte, as the log's ts
        self.t_stopped: float | None = None
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        try:
            for i in range(len(self.data)):
                self.sock.sendall(self.data[i : i + 1])
                if self.t_first is None:
                    self.t_first = time.time()
                time.sleep(GAP)
        except OSError:  # the server closed on us: a reset, or a broken pipe
            pass
        self.t_stopped = time.time()

    def close(self) -> None:
        self.thread.join(10)
        with contextlib.suppress(OSError):
            self.sock.close()


@pytest.mark.parametrize("protocol", ["http", "echo"])
def test_trickler_is_dropped_at_the_deadline_and_others_are_served(protocol: str) -> None:
    options = {"head_timeout": DEADLINE, "message_timeout": DEADLINE}
    with live_server(modes=("persistent",), protocol=protocol, **options) as (_, log, ports):
        slow = Trickler(ports["persistent"], REQUESTS[protocol])
        try:
            assert_serves(ports["persistent"], protocol=protocol)  # meanwhile: served at once
            dropped = log.wait_for("dropped", timeout=5)
            assert recv_all(slow.sock) == b""  # closed, nothing answered
        finally:
            slow.close()
    assert slow.t_first is not None
    took = dropped["ts"] - slow.t_first
    # Not before the deadline, and long before the trickler would have sent it all (11.7 s for
    # the http head, 30 s for the echo message); the slack is for a busy machine's scheduler.
    assert DEADLINE - 0.1 <= took <= DEADLINE + 3.0, took
    assert slow.t_stopped is not None and slow.t_stopped - slow.t_first < DEADLINE + 4.0
    sent = round(took / GAP) + 1
    assert sent < len(REQUESTS[protocol])  # it was dropped mid-request, not after sending it all
    what = "request head" if protocol == "http" else "echo message"
    flag = "--head-timeout" if protocol == "http" else "--message-timeout"
    assert dropped["reason"] == f"{what} not complete within 1 s ({flag}): slow peer dropped"
    assert (dropped["limit"], dropped["seconds"]) == (flag, DEADLINE)
    closed = log.events("closed", conn=dropped["conn"])[0]
    assert closed["error"] is True
    assert closed["reason"] == dropped["reason"]
    assert closed["bytes_out"] == 0


def test_two_tricklers_cannot_lock_out_a_third_client() -> None:
    options = {"message_timeout": DEADLINE, "max_connections": 2}
    with live_server(modes=("persistent",), **options) as (_, log, ports):
        port = ports["persistent"]
        slow = [Trickler(port, REQUESTS["echo"]) for _ in range(2)]
        try:
            log.wait_for("accepted", conn=2)
            # Both slots are held: a third connection is refused at once...
            with socket.create_connection(("127.0.0.1", port), timeout=5) as third:
                assert recv_all(third) == b""
            assert log.wait_for("refused")["reason"] == "max connections (2) reached"
            # ...until the deadline drops the tricklers; then it is served.
            log.wait_for("dropped", conn=1)
            log.wait_for("dropped", conn=2)
            log.wait_for("closed", conn=2)
            started = time.monotonic()
            result, _ = run_client(port, messages="Luffy,Zoro,Sanji", mode="persistent")
            assert result.ok, result.first_error
            assert time.monotonic() - started < 5.0  # served, not made to wait a deadline out
        finally:
            for t in slow:
                t.close()
    assert len(log.events("dropped")) == 2
    assert len(log.events("refused")) == 1


def test_time_the_server_spends_writing_does_not_count_against_the_next_message() -> None:
    # A pipelined client sends a 20 MB message and the start of the next, then reads nothing for
    # 1.4 s: the server is blocked writing the echo (loopback buffers hold far less than 20 MB)
    # for longer than the 1 s deadline. The next message is still served: its clock restarts
    # once the server is done writing and waits for the rest.
    big = b"x" * 20_000_000
    second = framing.encode_length(b"Zoro")
    options = {"message_timeout": DEADLINE, "max_message": 32 << 20}
    with live_server(modes=("persistent",), **options) as (_, log, ports):
        with socket.create_connection(("127.0.0.1", ports["persistent"]), timeout=5) as sock:
            sock.sendall(framing.encode_length(big, len(big)) + second[:3])
            time.sleep(1.4)
            sock.sendall(second[3:])
            sock.shutdown(socket.SHUT_WR)
            reply = recv_all(sock)
        log.wait_for("closed")
    assert not log.events("dropped")
    assert framing.LengthDecoder(len(big)).feed(reply) == [big, b"Zoro"]


def test_idle_time_between_keep_alive_requests_is_not_a_deadline() -> None:
    # Three requests 0.6 s apart: 1.8 s in all on one connection, more than the 1 s deadline,
    # yet each head arrives whole at once. Only the idle timeout (2 s here) bounds the gaps.
    options = {"head_timeout": DEADLINE}
    with live_server(modes=("persistent",), protocol="http", **options) as (_, log, ports):
        with socket.create_connection(("127.0.0.1", ports["persistent"]), timeout=5) as sock:
            for _ in range(3):
                sock.sendall(REQUESTS["http"])
                time.sleep(0.6)
            sock.shutdown(socket.SHUT_WR)
            reply = recv_all(sock)
        log.wait_for("closed")
    assert reply.count(b"HTTP/1.1 200 OK") == 3
    assert not log.events("dropped")


def test_message_clock_starts_on_first_use_and_restarts_after_reset() -> None:
    clock = MessageClock("echo message", "--message-timeout", 0.2)
    first = clock.left()
    assert first == pytest.approx(0.2, abs=0.01)
    time.sleep(0.05)
    assert clock.left() <= first - 0.04  # running: the same deadline
    clock.reset()
    assert clock.left() > first - 0.01  # a fresh deadline
