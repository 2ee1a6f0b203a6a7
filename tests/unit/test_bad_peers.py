"""A bad peer loses its own connection and nothing else: the server logs why and keeps serving."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from tests.unit.tcp_harness import assert_serves, live_server, recv_all
from wire import framing, http

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("each_concurrency")]

LIMITS = {"read_timeout": 0.4, "idle_timeout": 1.0, "max_message": 1024}


def _error_for(log, conn: int) -> str:
    closed = log.wait_for("closed", conn=conn)
    assert closed["error"] is True, closed
    return closed["reason"]


def _rst_close(sock: socket.socket) -> None:
    """Close with a RST instead of a FIN (SO_LINGER on, timeout 0)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.parametrize("mode", ["non-persistent", "persistent"])
@pytest.mark.parametrize(
    ("send", "expected"),
    [
        pytest.param(b"\xff\xff\xff\xffgarbage", "exceeds the limit", id="garbage-length"),
        pytest.param(b"GET / HTTP/1.1\r\n\r\n", "exceeds the limit", id="http-to-echo"),
        pytest.param(struct.pack(">I", 1025) + b"x" * 1025, "1025 bytes exceeds", id="oversize"),
    ],
)
def test_protocol_errors_cost_only_that_connection(mode: str, send: bytes, expected: str) -> None:
    with live_server(**LIMITS) as (_, log, ports):
        with socket.create_connection(("127.0.0.1", ports[mode]), timeout=5) as sock:
            sock.sendall(send)
            assert recv_all(sock) == b""  # closed without an answer
        assert expected in _error_for(log, conn=1)
        assert_serves(ports[mode], mode=mode)


def test_oversize_is_refused_before_the_payload_arrives() -> None:
    with live_server(**LIMITS) as (_, log, ports):
        with socket.create_connection(("127.0.0.1", ports["persistent"]), timeout=5) as sock:
            sock.sendall(struct.pack(">I", 10**9))  # a 1 GB promise, no payload
            assert recv_all(sock) == b""
        assert "exceeds the limit of 1024" in _error_for(log, conn=1)
        assert log.events("closed", conn=1)[0]["bytes_in"] == 4


def test_stall_mid_message_hits_the_read_timeout() -> None:
    with live_server(**LIMITS) as (_, log, ports):
        with socket.create_connection(("127.0.0.1", ports["persistent"]), timeout=5) as sock:
            sock.sendall(framing.encode_length(b"Luffy")[:6])
            started = time.monotonic()
            assert recv_all(sock) == b""
            assert time.monotonic() - started < 3
        assert "read timeout" in _error_for(log, conn=1)
        assert_serves(ports["persistent"])


def test_fin_mid_message_is_a_truncated_message() -> None:
    with live_server(**LIMITS) as (_, log, ports):
        with socket.create_connection(("127.0.0.1", ports["persistent"]), timeout=5) as sock:
            sock.sendall(framing.encode_length(b"Luffy")[:7])
            sock.shutdown(socket.SHUT_WR)
            recv_all(sock)
        assert "ended mid-message" in _error_for(log, conn=1)
        assert_serves(ports["persistent"])


@pytest.mark.parametrize("protocol", ["echo", "http"])
def test_abrupt_reset_mid_message(protocol: str) -> None:
    with live_server(protocol=protocol, **LIMITS) as (_, log, ports):
        sock = socket.create_connection(("127.0.0.1", ports["persistent"]), timeout=5)
        sock.sendall(b"\x00\x00\x00\x05Lu" if protocol == "echo" else b"GET /a?size=1 HT")
        log.wait_for("accepted")
        time.sleep(0.05)  # let the server read the partial message first
        _rst_close(sock)
        assert "reset" in _error_for(log, conn=1)
        assert_serves(ports["persistent"], protocol)


def test_a_peer_that_never_reads_hits_the_write_timeout() -> None:
    with live_server(protocol="http", **LIMITS) as (_, log, ports):
        sock = socket.create_connection(("127.0.0.1", ports["persistent"]), timeout=5)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            sock.sendall(b"GET /big?size=67108864 HTTP/1.1\r\nHost: x\r\n\r\n")
            started = time.monotonic()
            reason = _error_for(log, conn=1)  # while this client still reads nothing
            assert time.monotonic() - started < 10
        finally:
            _rst_close(sock)
        assert "not reading" in reason
        assert_serves(ports["persistent"], "http")


def test_max_connections_closes_the_extra_one_with_a_reason() -> None:
    with live_server(max_connections=2, **LIMITS) as (_, log, ports):
        port = ports["persistent"]
        held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(2)]
        log.wait_for("accepted", conn=2)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as extra:
            extra_port = extra.getsockname()[1]
            assert recv_all(extra) == b""
        refused = log.wait_for("refused")
        assert "max connections (2)" in refused["reason"]
        assert refused["peer_port"] == extra_port
        assert len(log.events("accepted")) == 2
        for sock in held:
            sock.close()
        log.wait_for("closed", conn=2)
        time.sleep(0.05)
        assert_serves(port)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        pytest.param(b"NONSENSE\r\n\r\n", 400, id="bad-request-line"),
        pytest.param(b"GET /a?size=1 HTTP/1.1\r\nno colon\r\n\r\n", 400, id="bad-header"),
        pytest.param(b"GET /a HTTP/1.1\r\nX: " + b"y" * 20000 + b"\r\n\r\n", 431, id="huge-head"),
        pytest.param(b"GET /" + b"a" * 17000 + b" HTTP/1.1\r\n\r\n", 414, id="huge-target"),
        pytest.param(b"GET /a?size=1 HTTP/1.1\r\n\r\n", 400, id="no-host"),
        pytest.param(b"GET /a?size=1 HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, id="two-hosts"),
        pytest.param(
            b"POST /a?size=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc", 405, id="post"
        ),
        pytest.param(
            b"GET /a?size=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc", 413, id="body"
        ),
        pytest.param(b"GET /a?size=1 HTTP/2.0\r\n\r\n", 505, id="http-2"),
    ],
)
def test_bad_http_request_gets_an_error_status_and_close(request_bytes: bytes, status: int) -> None:
    """The parser's refusals close even a keep-alive connection: where the next request starts
    is unknown (a cut head, unread content, a peer not speaking our HTTP)."""
    with live_server(protocol="http", **LIMITS) as (_, log, ports):
        with socket.create_connection(("127.0.0.1", ports["persistent"]), timeout=5) as sock:
            sock.sendall(request_bytes)
            reply = recv_all(sock)
        assert reply.startswith(f"HTTP/1.1 {status} ".encode()), reply[:80]
        assert b"Connection: close" in reply
        assert (b"\r\nAllow: GET, HEAD\r\n" in reply) is (status == 405)
        assert log.wait_for("response", conn=1)["status"] == status
        assert log.wait_for("closed", conn=1)["reason"] == f"bad request ({status})"
        assert_serves(ports["persistent"], "http")


GOOD = b"GET /a?size=3 HTTP/1.1\r\nHost: a\r\n\r\n"


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        pytest.param(b"GET /nope HTTP/1.1\r\nHost: a\r\n\r\n", 404, id="not-found"),
        pytest.param(
            b"GET /a?size=99999999999 HTTP/1.1\r\nHost: a\r\n\r\n", 413, id="size-over-max"
        ),
        pytest.param(b"GET /a?size=x HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="size-not-a-number"),
        pytest.param(b"DELETE /a?size=1 HTTP/1.1\r\nHost: a\r\n\r\n", 405, id="delete"),
        pytest.param(b"HEAD /nope HTTP/1.1\r\nHost: a\r\n\r\n", 404, id="head-not-found"),
    ],
)
def test_a_refused_whole_request_keeps_the_connection(request_bytes: bytes, status: int) -> None:
    """The parser took the request whole (a head, no content): the next byte is the next
    request's, so the refusal is answered like a 200 and the connection goes on."""
    with live_server(protocol="http", **LIMITS) as (_, log, ports):
        with socket.create_connection(("127.0.0.1", ports["persistent"]), timeout=5) as sock:
            sock.sendall(
                request_bytes
                + GOOD
                + b"GET /a?size=3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
            )
            reply = recv_all(sock)
        if request_bytes.startswith(b"HEAD"):  # the refusal's head alone, no body
            after_head = reply[reply.index(b"\r\n\r\n") + 4 :]
            assert after_head.startswith(b"HTTP/1.1 200 OK\r\n")
        else:
            parser = http.ResponseParser()
            assert [r.status for r in parser.feed(reply)] == [status, 200, 200]
            assert parser.pending == 0
        statuses = [e["status"] for e in log.events("response", conn=1)]
        assert statuses == [status, 200, 200]
        assert [e["keep_alive"] for e in log.events("response", conn=1)] == [True, True, False]
        assert reply.count(b"HTTP/1.1 200 OK\r\n") == 2
        assert reply.endswith(http.body("a", 3))
        assert len(log.events("accepted")) == 1


def test_pipelined_requests_before_a_bad_one_are_answered_in_order() -> None:
    with live_server(protocol="http", **LIMITS) as (_, log, ports):
        with socket.create_connection(("127.0.0.1", ports["persistent"]), timeout=5) as sock:
            sock.sendall(GOOD + GOOD + b"GET /a?size=3 HTTP/1.1\r\n\r\n" + GOOD)
            reply = recv_all(sock)
        parser = http.ResponseParser()
        assert [r.status for r in parser.feed(reply)] == [200, 200, 400]
        assert parser.pending == 0
        assert log.wait_for("closed", conn=1)["reason"] == "bad request (400)"


def test_http_1_2_is_answered_as_1_1() -> None:
    with live_server(protocol="http", **LIMITS) as (_, log, ports):
        with socket.create_connection(("127.0.0.1", ports["persistent"]), timeout=5) as sock:
            sock.sendall(
                b"GET /a?size=3 HTTP/1.2\r\nHost: a\r\n\r\n" + GOOD.replace(b"1.1", b"1.2")
            )
            sock.shutdown(socket.SHUT_WR)
            reply = recv_all(sock)
        (first, second) = http.ResponseParser().feed(reply)
        assert (first.status, first.version, first.keep_alive, first.body) == (
            200,
            "HTTP/1.1",
            True,
            http.body("a", 3),
        )
        assert second.status == 200
        assert [e["version"] for e in log.events("request")] == ["HTTP/1.1"] * 2
