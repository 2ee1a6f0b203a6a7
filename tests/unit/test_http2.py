"""HTTP/2 on one connection: the server's and the client's `h2` halves on the loopback, over TLS
(ALPN h2) and in clear (h2c with prior knowledge)."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading

import pytest

from client import http2 as client_http2
from client import tls as client_tls
from lab import tlsca
from server import http2 as server_http2
from server import tls as server_tls

BIG = 300_000  # beyond HTTP/2's initial 65,535-byte windows: flow control has to reopen them
RESOURCES = {"/big.bin": b"b" * BIG, **{f"/r{i}.bin": bytes([i]) * (1000 * i) for i in range(1, 9)}}


def lookup(path: str) -> server_http2.Found:
    body = RESOURCES.get(path)
    if body is None:
        return 404, b"not found\n", server_http2.TEXT
    return 200, body, "application/octet-stream"


class Server:
    """Accepts connections on 127.0.0.1 and serves each with server.http2."""

    def __init__(self, ctx: ssl.SSLContext | None) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self.served: list[server_http2.ServedConnection] = []
        self.alpn: list[str | None] = []
        self.thread = threading.Thread(target=self._run, args=(ctx,), daemon=True)
        self.thread.start()

    def _run(self, ctx: ssl.SSLContext | None) -> None:
        with self.listener:
            sock, _ = self.listener.accept()
            self.accepted += 1
            sock.settimeout(10)
            if ctx is not None:
                sock = ctx.wrap_socket(sock, server_side=True)
                self.alpn.append(sock.selected_alpn_protocol())
            with sock:
                self.served.append(server_http2.serve(sock, lookup))


@pytest.fixture(scope="module")
def authority() -> tlsca.Authority:
    return tlsca.make_authority(key="ec")


def page(sock: socket.socket, scheme: str) -> list[client_http2.Response]:
    paths = ["/big.bin", *[f"/r{i}.bin" for i in range(1, 9)], "/missing"]
    with sock:
        return client_http2.fetch(sock, "server", paths, scheme=scheme)


def check(responses: list[client_http2.Response], server: Server) -> None:
    server.thread.join(10)
    assert server.accepted == 1  # the whole page on one connection
    by_path = {r.path: r for r in responses}
    assert [r.stream_id for r in responses] == list(range(1, 2 * len(responses), 2))
    for path, body in RESOURCES.items():
        assert (by_path[path].status, by_path[path].body_bytes) == (200, len(body))
    assert by_path["/missing"].status == 404
    # multiplexed: the small responses, asked for after the big one, end before it does
    big = by_path["/big.bin"]
    assert all(by_path[f"/r{i}.bin"].t_done <= big.t_done for i in range(1, 9))
    assert [path for _, path, _ in server.served[0].streams] == [r.path for r in responses]


def test_the_page_over_tls_with_alpn_h2(authority):
    ctx = server_tls.server_context(
        "1.3", authority.server_cert_pem, authority.server_key_pem, alpn=["h2", "http/1.1"]
    )
    server = Server(ctx)
    client = client_tls.client_context("1.3", authority.ca_cert_pem, alpn=["h2"])
    sock = client_tls.Sessions(client, False, "localhost").wrap(
        socket.create_connection(("127.0.0.1", server.port), timeout=10)
    )
    assert sock.selected_alpn_protocol() == "h2"
    check(page(sock, "https"), server)
    assert server.alpn == ["h2"]


def test_the_page_in_clear_with_prior_knowledge():
    server = Server(None)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    check(page(sock, "http"), server)


@pytest.mark.usefixtures("needs_curl")
@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_curl_fetches_over_http2_and_tls(authority, tmp_path, version):
    ctx = server_tls.server_context(
        version, authority.server_cert_pem, authority.server_key_pem, alpn=["h2", "http/1.1"]
    )
    server = Server(ctx)
    ca = authority.write_public(tmp_path)["ca"]
    out = subprocess.run(
        ["curl", "-sS", "--http2", f"--tlsv{version}", "--tls-max", version, "--cacert", str(ca),
         "--resolve", f"server:{server.port}:127.0.0.1", "-o", "/dev/null",
         "-w", "%{http_version} %{size_download}", f"https://server:{server.port}/r3.bin"],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    server.thread.join(10)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "2 3000" and server.alpn == ["h2"]


@pytest.mark.usefixtures("needs_curl")
def test_curl_fetches_over_h2c_with_prior_knowledge():
    server = Server(None)
    out = subprocess.run(
        ["curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null",
         "-w", "%{http_version} %{size_download}", f"http://127.0.0.1:{server.port}/big.bin"],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    server.thread.join(10)
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"2 {BIG}"


def test_a_peer_that_does_not_speak_http2_is_one_line():
    server = Server(None)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    with sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: server\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass
    server.thread.join(10)
    assert server.served[0].closed_by.startswith("error: ")
    a, b = socket.socketpair()
    with a, b:
        b.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
        b.shutdown(socket.SHUT_WR)
        with pytest.raises(client_http2.Http2Error, match=r"protocol error|closed"):
            client_http2.fetch(a, "server", ["/"], scheme="http")
