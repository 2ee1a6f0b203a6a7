"""A real HTTP client against the server: curl opens N connections for N URLs over HTTP/1.0 and
one over HTTP/1.1 keep-alive, counted from the server's JSON log."""

from __future__ import annotations

import subprocess

import pytest

from tests.unit.tcp_harness import live_server
from wire import http

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("each_concurrency")]

URLS = [("index", 1200), ("style", 30000), ("app", 150000), ("empty", 0)]


@pytest.mark.usefixtures("needs_curl")
@pytest.mark.parametrize(
    ("curl_flag", "mode", "connections"),
    [
        pytest.param("--http1.0", "non-persistent", len(URLS), id="curl-1.0-vs-http-1.0"),
        pytest.param("--http1.1", "persistent", 1, id="curl-1.1-vs-keep-alive"),
        # The server decides: HTTP/1.0 mode answers `Connection: close` even to curl's 1.1 ...
        pytest.param("--http1.1", "non-persistent", len(URLS), id="curl-1.1-vs-http-1.0"),
        # ... and curl's HTTP/1.0 asks for no keep-alive, so it gets none.
        pytest.param("--http1.0", "persistent", len(URLS), id="curl-1.0-vs-keep-alive"),
    ],
)
def test_curl_connection_count(curl_flag: str, mode: str, connections: int) -> None:
    with live_server(protocol="http", modes=(mode,)) as (_, log, ports):
        urls = [f"http://127.0.0.1:{ports[mode]}/{name}?size={size}" for name, size in URLS]
        proc = subprocess.run(
            ["curl", "--silent", "--show-error", "--fail", "--max-time", "10", curl_flag, *urls],
            capture_output=True,
            timeout=20,
        )
        assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"".join(http.body(name, size) for name, size in URLS)
    assert len(log.events("accepted")) == connections
    assert [e["status"] for e in log.events("response")] == [200] * len(URLS)
    versions = {e["version"] for e in log.events("request")}
    assert versions == {"HTTP/1.0" if curl_flag == "--http1.0" else "HTTP/1.1"}


@pytest.mark.usefixtures("needs_curl")
def test_curl_sees_named_resources_and_headers(tmp_path) -> None:
    resources = tmp_path / "resources.txt"
    resources.write_text("# name size\nindex 2048\nlogo 5000\n")
    sizes = http.load_resources(resources.read_text())
    with live_server(protocol="http", modes=("persistent",), resources=sizes) as (_, _, ports):
        base = f"http://127.0.0.1:{ports['persistent']}"
        proc = subprocess.run(
            ["curl", "-s", "--max-time", "10", "-D", "-", f"{base}/logo", "-o", "/dev/null"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        missing = subprocess.run(
            [
                "curl",
                "-s",
                "--max-time",
                "10",
                "-w",
                "%{http_code}",
                "-o",
                "/dev/null",
                f"{base}/nope",
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
    head = proc.stdout.lower()
    assert head.startswith("http/1.1 200 ok")
    assert "content-length: 5000" in head
    assert "connection: keep-alive" in head
    assert missing.stdout == "404"
