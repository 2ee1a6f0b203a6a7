"""HTTP/2 wired into the lab's programs: `python -m server --protocol h2 --tls 1.3` (ALPN h2)
and `--protocol h2c` (prior knowledge, in clear) against curl and the lab's client, on loopback,
with the page10 page (wire.site's bodies and content types)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import tlsca
from wire import site

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parents[2]
# page10's ten resources: index.html links the others; vendor.js and hero.jpg are over the
# 65,535-byte initial window of HTTP/2 (the server's writes wait for the client's updates)
PAGE = (
    "index.html:14336,style.css:24576,theme.css:8192,vendor.js:163840,app.js:61440,"
    "analytics.js:20480,hero.jpg:184320,photo.jpg:92160,logo.png:6144,text.woff2:40960"
)


@pytest.fixture(scope="module")
def authority() -> tlsca.Authority:
    return tlsca.make_authority()


@pytest.fixture(scope="module")
def ca_file(authority, tmp_path_factory) -> Path:
    return authority.write_public(tmp_path_factory.mktemp("h2"))["ca"]


def _env(authority: tlsca.Authority) -> dict[str, str]:
    return {**os.environ, **authority.server_environment(), **authority.client_environment()}


def _server(authority, protocol: str, *extra: str) -> Iterator[tuple[int, list[str]]]:
    tls = ["--tls", "1.3"] if protocol == "h2" else []
    argv = [sys.executable, "-m", "server", "--protocol", protocol, *tls, "--host", "127.0.0.1",
            "--log-format", "json", "--listen", "0:persistent", f"--page={PAGE}",
            *extra]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=ROOT, env=_env(authority), stdout=subprocess.PIPE, text=True)
    port = json.loads(proc.stdout.readline())["port"]
    lines: list[str] = []
    try:
        yield port, lines
    finally:
        proc.terminate()
        lines += proc.communicate(timeout=20)[0].splitlines()


@pytest.fixture(
    params=[("h2", "threads"), ("h2c", "threads"), ("h2", "epoll")],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def h2_server(request, authority):
    """HTTP/2 over TLS and in clear on the threads server, and over TLS on the event loop."""
    protocol, concurrency = request.param
    gen = _server(authority, protocol, "--concurrency", concurrency)
    port, lines = next(gen)
    yield protocol, port, lines
    next(gen, None)


def _events(lines: list[str], name: str) -> list[dict]:
    return [e for e in map(json.loads, lines) if e["event"] == name]


def _curl(protocol: str, port: int, ca_file: Path, out: Path | None, *paths: str):
    """curl over HTTP/2 (h2: TLS 1.3 and ALPN; h2c: prior knowledge), each body into `out`
    (named by its path's last part), stdout one `version content-type` line per URL."""
    if protocol == "h2":
        how = ["--http2", "--tlsv1.3", "--cacert", str(ca_file)]
        base = f"https://127.0.0.1:{port}"
    else:
        how = ["--http2-prior-knowledge"]
        base = f"http://127.0.0.1:{port}"
    urls = []
    for p in paths:
        urls += [f"{base}{p}", "-o", str(out / p.strip("/").split("?")[0]) if out else "/dev/null"]
    return subprocess.run(
        ["curl", "-sS", "--fail", "--max-time", "10", *how,
         "-w", "%{http_version} %{content_type}\\n", *urls],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


@pytest.mark.usefixtures("needs_curl")
def test_curl_fetches_the_page_over_http2(h2_server, ca_file, tmp_path):
    protocol, port, _ = h2_server
    page = site.parse_page(PAGE)
    # One URL per curl: Debian bookworm's curl 7.88.1 breaks an h2c connection it reuses with
    # prior knowledge ("Error in the HTTP2 framing layer", curl issue 10634, fixed in 8.0).
    lines = []
    for path in ("/index.html", "/hero.jpg", "/x?size=5"):
        proc = _curl(protocol, port, ca_file, tmp_path, path)
        assert proc.returncode == 0, proc.stderr
        lines += proc.stdout.splitlines()
    for name, size in (("index.html", 14336), ("hero.jpg", 184320)):
        assert (tmp_path / name).read_bytes() == page.body(name, size)
    assert (tmp_path / "x").read_bytes() == site.NO_PAGE.body("x", 5)
    assert lines == [
        "2 text/html; charset=utf-8",
        "2 image/jpeg",
        "2 application/octet-stream",
    ]


@pytest.mark.usefixtures("needs_curl")
def test_curl_http2_over_tls_and_the_server_log(authority, ca_file):
    gen = _server(authority, "h2")
    port, lines = next(gen)
    proc = _curl("h2", port, ca_file, None, "/logo.png", "/missing.css")
    next(gen, None)
    assert proc.stdout.splitlines()[0] == "2 image/png"  # the 404 fails curl, after it
    tls = _events(lines, "tls")
    assert [(e["tls_version"], e["alpn"]) for e in tls] == [("TLSv1.3", "h2")]
    responses = _events(lines, "response")
    assert [(r["status"], r["request"], r["bytes"]) for r in responses][:1] == [
        (200, "logo.png", 6144)
    ]
    assert [r["status"] for r in responses] == [200, 404]
    requests = _events(lines, "request")
    assert [r["request_line"] for r in requests] == [
        "GET /logo.png HTTP/2",
        "GET /missing.css HTTP/2",
    ]
    assert not _events(lines, "error")


def _client(authority, protocol: str, port: int, *extra: str) -> tuple[int, list]:
    tls = ["--tls", "1.3"] if protocol == "h2" else []
    argv = [sys.executable, "-m", "client", "--host", "localhost", "--port", str(port),
            "--protocol", protocol, "--mode", "persistent", "--resources", PAGE, *tls,
            "--log-format", "json", *extra]  # fmt: skip
    proc = subprocess.run(
        argv, cwd=ROOT, env=_env(authority), capture_output=True, text=True, timeout=30
    )
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()]


def test_lab_client_multiplexes_the_page_on_one_connection(h2_server, authority):
    protocol, port, _ = h2_server
    code, records = _client(authority, protocol, port)
    requests = [r for r in records if r["event"] == "request"]
    assert code == 0, records[-1]
    assert len(requests) == 10 and all(r["ok"] for r in requests)
    assert len({r["conn"] for r in requests}) == 1
    assert sorted(r["stream"] for r in requests) == list(range(1, 21, 2))
    assert len({r["t_sent"] for r in requests}) == 1  # every request left in one write
    # multiplexed: small responses asked for after hero.jpg end before it does
    done = {r["request"]: r["t_done"] for r in requests}
    assert done["logo.png"] <= done["hero.jpg"]
    assert sum(r["bytes_received"] for r in requests) == sum(
        int(e.split(":")[1]) for e in PAGE.split(",")
    )
    if protocol == "h2":
        assert {r["tls"]["alpn"] for r in requests} == {"h2"}
    summary = records[-1]
    assert summary["event"] == "summary" and summary["connections"] == 1
    assert summary["protocol"] == protocol


def test_two_connections_share_the_page_on_the_event_loop(authority):
    """h2c on the epoll server: the handler is a generator on the Connection, as HTTP/1's."""
    gen = _server(authority, "h2c", "--concurrency", "epoll")
    port, lines = next(gen)
    code, records = _client(authority, "h2c", port, "--parallel", "2")
    next(gen, None)
    requests = [r for r in records if r["event"] == "request"]
    assert code == 0 and all(r["ok"] for r in requests)
    assert len({r["conn"] for r in requests}) == 2
    assert len(_events(lines, "accepted")) == 2
    closed = _events(lines, "closed")
    assert [c["reason"] for c in closed] == ["peer closed"] * 2  # the client closed first


def test_the_lab_client_refuses_a_server_without_h2(authority):
    """An HTTP/1.1 server over TLS: ALPN picks http/1.1, not h2; one line, exit 1."""
    argv = [sys.executable, "-m", "server", "--protocol", "http", "--tls", "1.3",
            "--host", "127.0.0.1", "--log-format", "json", "--listen", "0:persistent"]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=ROOT, env=_env(authority), stdout=subprocess.PIPE, text=True)
    try:
        port = json.loads(proc.stdout.readline())["port"]
        code, records = _client(authority, "h2", port)
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
    assert code == 1
    assert "did not choose h2 by ALPN" in records[-1]["error"]


def test_bad_h2_input_is_one_line_and_exit_2(authority):
    client = ["-m", "client", "--host", "h", "--port", "1", "--sizes", "1"]
    for argv in (
        ["-m", "server", "--protocol", "h2"],  # HTTP/2 in clear is h2c
        ["-m", "server", "--protocol", "h2c", "--tls", "1.3"],
        ["-m", "server", "--protocol", "h2c", "--mode", "non-persistent"],
        [*client, "--protocol", "h2", "--mode", "persistent"],
        [*client, "--protocol", "h2c", "--tls", "1.3", "--mode", "persistent"],
        [*client, "--protocol", "h2c"],  # non-persistent
        [*client, "--protocol", "h2c", "--mode", "persistent", "--pipeline"],
    ):
        proc = subprocess.run(
            [sys.executable, *argv], cwd=ROOT, env=_env(authority), capture_output=True,
            text=True, timeout=20,
        )  # fmt: skip
        assert proc.returncode == 2, argv
        assert "Traceback" not in proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith("python -m "), proc.stderr


def test_h2_is_imported_at_startup_for_http2_only():
    """The `h2` library takes 40-50 ms to import: an HTTP/2 server loads it when it looks its
    handler up (at startup), not in its first connection's handshake; others never load it."""
    code = (
        "import sys; from server import handlers; handlers.handler('http'); "
        "assert 'h2' not in sys.modules; handlers.handler('h2c'); "
        "assert 'h2.connection' in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
