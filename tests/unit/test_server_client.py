"""Server and client over loopback: connection counts, who sends the first FIN, the article's
raw coalescing, limits, timeouts and SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.unit.tcp_harness import live_server, model_args, recv_all, run_client
from wire import framing

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("each_concurrency")]

ROOT = Path(__file__).resolve().parents[2]
ARTICLE = "Luffy,Zoro,Sanji,Nami,Robin"
PAGE = "index:2000,style:30000,app:150000,logo:5000,font:70000"


@pytest.mark.parametrize(
    ("protocol", "mode", "parallel", "pipeline", "connections"),
    [
        pytest.param("echo", "non-persistent", 5, False, 5, id="echo-non-persistent-all-at-once"),
        pytest.param("echo", "non-persistent", 1, False, 5, id="echo-non-persistent-one-at-a-time"),
        pytest.param("echo", "persistent", 1, False, 1, id="echo-persistent"),
        pytest.param("echo", "persistent", 1, True, 1, id="echo-persistent-pipelined"),
        pytest.param("echo", "persistent", 2, False, 2, id="echo-persistent-2-connections"),
        pytest.param("http", "non-persistent", 5, False, 5, id="http-1.0"),
        pytest.param("http", "persistent", 1, False, 1, id="http-1.1-keep-alive"),
        pytest.param("http", "persistent", 1, True, 1, id="http-1.1-pipelined"),
        pytest.param("http", "persistent", 3, True, 3, id="http-1.1-3-connections-pipelined"),
    ],
)
def test_connections_per_mode(
    protocol: str, mode: str, parallel: int, pipeline: bool, connections: int
) -> None:
    with live_server(protocol=protocol) as (_, log, ports):
        what = {"resources": PAGE} if protocol == "http" else {"messages": ARTICLE}
        result, stdout = run_client(
            ports[mode], protocol=protocol, mode=mode, parallel=parallel, pipeline=pipeline, **what
        )
        assert result.ok, result.first_error
    # Leaving live_server joined every handler: the log is complete.
    accepted = log.events("accepted")
    assert len(accepted) == connections
    # The client's local ports are the server's peer ports: that is how captures join requests.
    records = [json.loads(line) for line in stdout.splitlines()]
    requests = [r for r in records if r["event"] == "request"]
    assert len(requests) == 5
    assert {r["local_port"] for r in requests} == {e["peer_port"] for e in accepted}
    assert records[-1]["event"] == "summary"
    assert records[-1]["connections"] == connections
    for r in requests:
        assert r["t_connect_start"] <= r["t_connected"] <= r["t_sent"]
        assert r["t_sent"] <= r["t_first_byte"] <= r["t_done"]
        assert r["bytes_sent"] > 0
        assert r["bytes_received"] > 0
    # Who closes first: the server in non-persistent mode, the client in persistent mode.
    for conn in (e["conn"] for e in accepted):
        order = [e["event"] for e in log.events(conn=conn) if e["event"] != "message"]
        if mode == "non-persistent":
            assert order.index("fin_sent") < order.index("peer_fin"), order
        else:
            assert "fin_sent" not in order, order
            assert order[-2:] == ["peer_fin", "closed"], order
        assert log.events("closed", conn=conn)[0]["error"] is False


def test_one_process_serves_both_modes() -> None:
    with live_server() as (_, log, ports):
        one, _ = run_client(ports["non-persistent"], messages="Luffy,Zoro,Sanji")
        two, _ = run_client(ports["persistent"], messages="Luffy,Zoro,Sanji", mode="persistent")
    assert one.ok and two.ok
    by_port = [e["local_port"] for e in log.events("accepted")]
    assert by_port.count(ports["non-persistent"]) == 3
    assert by_port.count(ports["persistent"]) == 1


def test_article_raw_persistent_case_coalesces_into_one_reply() -> None:
    # --wait-peer-fin: the server reads only once the client's FIN is in, so the three writes
    # are all in its buffer and one read returns them together, every time.
    with live_server(modes=("persistent",), framing="raw", wait_peer_fin=True) as (_, log, ports):
        result, stdout = run_client(
            ports["persistent"],
            messages="Luffy,Zoro,Sanji",
            mode="persistent",
            framing="raw",
            log_format="human",
        )
        log.wait_for("closed")
    assert result.ok, result.first_error
    assert [e["preview"] for e in log.events("message")] == ["LuffyZoroSanji"]
    assert "Response from server (Client 1): LuffyZoroSanji" in stdout.splitlines()
    assert stdout.index("Sanji sent by Client 1") < stdout.index("Socket closing initiated")


def test_article_raw_non_persistent_case_one_connection_per_message() -> None:
    with live_server(framing="raw", wait_peer_fin=True) as (_, log, ports):
        result, stdout = run_client(
            ports["non-persistent"], messages=ARTICLE, framing="raw", parallel=5, log_format="human"
        )
    assert result.ok, result.first_error
    assert len(log.events("accepted")) == 5
    assert sorted(e["preview"] for e in log.events("message")) == sorted(ARTICLE.split(","))
    assert stdout.count("stops receiving data (server FIN)") == 5


def test_length_framing_keeps_the_three_messages_in_the_same_situation() -> None:
    with live_server(modes=("persistent",), wait_peer_fin=True) as (_, log, ports):
        with socket.create_connection(("127.0.0.1", ports["persistent"]), timeout=5) as sock:
            for word in (b"Luffy", b"Zoro", b"Sanji"):
                sock.sendall(framing.encode_length(word))
            sock.shutdown(socket.SHUT_WR)
            reply = recv_all(sock)
        log.wait_for("closed")
    decoder = framing.LengthDecoder()
    assert decoder.feed(reply) == [b"Luffy", b"Zoro", b"Sanji"]
    assert [e["preview"] for e in log.events("message")] == ["Luffy", "Zoro", "Sanji"]


def test_max_requests_closes_the_persistent_connection() -> None:
    with live_server(modes=("persistent",), max_requests=2) as (_, log, ports):
        result, _ = run_client(ports["persistent"], messages="a,b,c", mode="persistent")
        fin = log.wait_for("fin_sent")
    assert "max requests (2)" in fin["reason"]
    assert [r.ok for r in result.records] == [True, True, False]
    assert "short response" in (result.records[2].error or "")


def test_idle_persistent_connection_is_closed_by_the_server() -> None:
    with live_server(modes=("persistent",), idle_timeout=0.3) as (_, log, ports):
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", ports["persistent"]), timeout=5) as sock:
            assert recv_all(sock) == b""
        assert time.monotonic() - started < 3
        assert "idle timeout" in log.wait_for("fin_sent")["reason"]


def test_client_detects_a_wrong_reply() -> None:
    # A real socket peer that answers with the wrong bytes: the client must say so and fail.
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def liar() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(100)
            conn.sendall(framing.encode_length(b"Zorro"))

    thread = threading.Thread(target=liar)
    thread.start()
    try:
        result, _ = run_client(port, messages="Luffy")
    finally:
        thread.join(5)
        listener.close()
    assert not result.ok
    assert "differs" in (result.first_error or "")


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        pytest.param("refused", "connection refused", id="refused"),
        pytest.param("silent", "read timeout", id="never-answers"),
    ],
)
def test_client_cli_fails_with_one_line_and_exit_1(setup: str, expected: str) -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # accepted by the kernel, never answered
    port = listener.getsockname()[1]
    if setup == "refused":
        listener.close()
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "client",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--messages",
                "Luffy",
                "--timeout",
                "0.5",
                "--connect-timeout",
                "1",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=15,
        )
    finally:
        listener.close()
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert expected in lines[0]


def _start_server_process(*args: str) -> tuple[subprocess.Popen[str], list[dict]]:
    argv = [sys.executable, "-m", "server", "--host", "127.0.0.1", "--log-format", "json"]
    proc = subprocess.Popen(
        [*argv, *model_args(), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    listening = []
    while len(listening) < args.count("--listen"):
        line = proc.stdout.readline()
        assert line, "server exited before listening"
        event = json.loads(line)
        if event["event"] == "listening":
            listening.append(event)
    return proc, listening


def test_server_cli_listens_twice_and_sigterm_drains_and_exits_0() -> None:
    proc, listening = _start_server_process(
        "--listen", "0:non-persistent", "--listen", "0:persistent", "--shutdown-grace", "3"
    )
    try:
        ports = {e["mode"]: e["port"] for e in listening}
        assert set(ports) == {"non-persistent", "persistent"}
        result, _ = run_client(ports["non-persistent"], messages=ARTICLE, parallel=5)
        assert result.ok, result.first_error
        idle = socket.create_connection(("127.0.0.1", ports["persistent"]), timeout=5)
        idle.sendall(framing.encode_length(b"hello"))
        assert recv_all_frames(idle, 1) == [b"hello"]
        proc.send_signal(signal.SIGTERM)
        # The idle keep-alive connection gets the server's FIN, not a reset and not silence.
        assert recv_all(idle) == b""
        idle.close()
        assert proc.wait(timeout=10) == 0
        assert proc.stdout is not None
        events = [json.loads(line) for line in proc.stdout.read().splitlines()]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    names = [e["event"] for e in events]
    assert "stopping" in names
    assert names[-1] == "stopped"
    fins = [e for e in events if e["event"] == "fin_sent"]
    assert any("shutting down" in e["reason"] for e in fins)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", ports["persistent"]), timeout=2).close()


def test_shutdown_still_answers_a_request_already_received() -> None:
    # --wait-peer-fin holds the request unread in the server's buffer until we stop the server:
    # the stop must answer it, then send the FIN.
    with live_server(modes=("persistent",), framing="raw", wait_peer_fin=True) as (srv, log, ports):
        with socket.create_connection(("127.0.0.1", ports["persistent"]), timeout=5) as sock:
            sock.sendall(b"Luffy")
            log.wait_for("accepted")
            time.sleep(0.1)
            srv.request_stop()
            assert recv_all(sock) == b"Luffy"
        assert "shutting down" in log.wait_for("fin_sent")["reason"]
    assert log.events("closed")[0]["error"] is False


def recv_all_frames(sock: socket.socket, n: int) -> list[bytes]:
    decoder = framing.LengthDecoder()
    got: list[bytes] = []
    sock.settimeout(5)
    while len(got) < n:
        data = sock.recv(65536)
        assert data, "server closed early"
        got += decoder.feed(data)
    return got


@pytest.mark.parametrize("protocol", ["echo", "http"])
def test_sigusr1_ends_the_next_answer_with_a_rst(protocol: str) -> None:
    proc, listening = _start_server_process(
        "--listen", "0:persistent", "--protocol", protocol, "--shutdown-grace", "2"
    )
    if protocol == "http":
        request = b"GET /a?size=10 HTTP/1.1\r\nHost: x\r\n\r\n"
    else:
        request = framing.encode_length(b"hi")
    try:
        with socket.create_connection(("127.0.0.1", listening[0]["port"]), timeout=5) as sock:
            sock.sendall(request)
            assert sock.recv(65536)  # kept alive: answered normally
            time.sleep(0.2)  # the server checks the reset mode right after an answer: let it
            proc.send_signal(signal.SIGUSR1)
            _wait_for_line(proc, "reset_mode")
            sock.sendall(request)
            with pytest.raises(ConnectionResetError):
                while True:  # the answer may arrive before the RST; then the RST, never a FIN
                    assert sock.recv(65536), "a FIN instead of a RST"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _wait_for_line(proc: subprocess.Popen[str], event: str) -> dict:
    assert proc.stdout is not None
    while line := proc.stdout.readline():
        record = json.loads(line)
        if record["event"] == event:
            return record
    raise AssertionError(f"the server exited before logging {event}")
