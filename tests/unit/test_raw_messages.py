"""Raw framing over loopback: what a message is, and that the server never drops a byte.

Non-persistent: a message is everything up to the client's half-close, however many reads it
takes. Persistent: each read is a message (the article's coalescing). Over --max-message, the
server logs why and closes: nothing comes back, never the first part of it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.unit.tcp_harness import live_server, recv_all, run_client
from wire import payload

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("each_concurrency")]


def test_100000_bytes_non_persistent_come_back_whole() -> None:
    # 100,000 bytes take at least two reads of 64 KiB: the server used to echo the first read.
    size = 100_000
    with live_server(modes=("non-persistent",), framing="raw") as (_, log, ports):
        result, _ = run_client(ports["non-persistent"], resources=f"big:{size}", framing="raw")
        log.wait_for("closed")
    assert result.ok, result.first_error
    (record,) = result.records
    assert record.bytes_received == size
    (message,) = log.events("message")
    assert message["bytes"] == size
    closed = log.events("closed")[0]
    assert (closed["bytes_in"], closed["bytes_out"], closed["error"]) == (size, size, False)


def test_client_cli_raw_non_persistent_exits_0_for_100000_bytes() -> None:
    root = Path(__file__).resolve().parents[2]
    with live_server(modes=("non-persistent",), framing="raw") as (_, _log, ports):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "client",
                "--host",
                "127.0.0.1",
                "--port",
                str(ports["non-persistent"]),
                "--framing",
                "raw",
                "--sizes",
                "100000",
                "--log-format",
                "json",
            ],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=20,
        )
    assert proc.returncode == 0, proc.stderr


def test_luf_then_fy_50_ms_later_come_back_as_luffy() -> None:
    with live_server(modes=("non-persistent",), framing="raw") as (_, log, ports):
        with socket.create_connection(("127.0.0.1", ports["non-persistent"]), timeout=5) as sock:
            sock.sendall(b"Luf")
            time.sleep(0.05)
            sock.sendall(b"fy")
            sock.shutdown(socket.SHUT_WR)  # the end of the message
            assert recv_all(sock) == b"Luffy"
        log.wait_for("closed")
    assert [e["preview"] for e in log.events("message")] == ["Luffy"]
    # The client's FIN came first (it ends the message); the server answers, then sends its own.
    order = [e["event"] for e in log.events(conn=1)]
    assert order == ["accepted", "peer_fin", "message", "fin_sent", "closed"], order
    assert log.events("closed")[0]["error"] is False


def test_article_non_persistent_raw_with_the_real_client() -> None:
    words = ["Luffy", "Zoro", "Sanji", "Nami", "Robin"]
    with live_server(modes=("non-persistent",), framing="raw") as (_, log, ports):
        result, stdout = run_client(
            ports["non-persistent"],
            messages=",".join(words),
            framing="raw",
            parallel=5,
            log_format="human",
        )
    assert result.ok, result.first_error
    assert sorted(e["preview"] for e in log.events("message")) == sorted(words)
    assert stdout.count("Socket closing initiated") == 5
    assert stdout.count("stops receiving data (server FIN)") == 5


def test_non_persistent_over_max_message_is_refused_not_truncated() -> None:
    with live_server(modes=("non-persistent",), framing="raw", max_message=1000) as (_, log, ports):
        with socket.create_connection(("127.0.0.1", ports["non-persistent"]), timeout=5) as sock:
            sock.sendall(b"a" * 600)
            time.sleep(0.05)  # two reads: the limit is on the whole message, not one read
            sock.sendall(b"b" * 600)
            sock.shutdown(socket.SHUT_WR)
            assert recv_all(sock) == b""  # not the first 1000 bytes, not the first read
        closed = log.wait_for("closed")
        after, _ = run_client(ports["non-persistent"], messages="still,here", framing="raw")
        assert after.ok, after.first_error  # the next client is served
    assert closed["error"] is True
    assert closed["bytes_out"] == 0
    assert "raw message of at least 1200 bytes exceeds the limit of 1000 bytes" in closed["reason"]
    assert log.events("error", conn=1)[0]["reason"] == closed["reason"]  # its own log line
    assert not log.events("message", conn=1)


def test_exactly_max_message_is_answered() -> None:
    data = payload.pattern("edge", 1000)
    with (
        live_server(modes=("non-persistent",), framing="raw", max_message=1000) as (_, _l, ports),
        socket.create_connection(("127.0.0.1", ports["non-persistent"]), timeout=5) as sock,
    ):
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        assert recv_all(sock) == data


def test_persistent_read_over_max_message_is_refused_not_truncated() -> None:
    # --wait-peer-fin makes the 11 bytes arrive in one read: one message of 11 > 10.
    with live_server(modes=("persistent",), framing="raw", max_message=10, wait_peer_fin=True) as (
        _,
        log,
        ports,
    ):
        with socket.create_connection(("127.0.0.1", ports["persistent"]), timeout=5) as sock:
            sock.sendall(b"LuffyZoroSa")
            sock.shutdown(socket.SHUT_WR)
            assert recv_all(sock) == b""
        closed = log.wait_for("closed")
    assert closed["error"] is True
    assert "message of 11 bytes exceeds the limit of 10 bytes" in closed["reason"]
    assert not log.events("message")


def test_persistent_raw_stream_longer_than_a_read_comes_back_whole() -> None:
    # Per-read messages of 64 KiB each: a 300 KB stream is echoed piece by piece, all of it.
    data = payload.pattern("stream", 300_000)
    with live_server(modes=("persistent",), framing="raw") as (_, log, ports):
        result, _ = run_client(
            ports["persistent"], resources="stream:300000", framing="raw", mode="persistent"
        )
        log.wait_for("closed")
    assert result.ok, result.first_error
    assert sum(e["bytes"] for e in log.events("message")) == len(data)


def test_raw_non_persistent_peer_that_never_half_closes_is_dropped_saying_why() -> None:
    # Without its FIN the message never ends: the deadline drops the peer, and the log says
    # what the server was waiting for.
    options = {"framing": "raw", "message_timeout": 0.5}
    with live_server(modes=("non-persistent",), **options) as (_, log, ports):
        with socket.create_connection(("127.0.0.1", ports["non-persistent"]), timeout=5) as sock:
            sock.sendall(b"Luffy")
            assert recv_all(sock) == b""
        dropped = log.wait_for("dropped")
    assert dropped["reason"] == (
        "raw message (it ends at the peer's FIN) not complete within 0.5 s "
        "(--message-timeout): slow peer dropped"
    )
