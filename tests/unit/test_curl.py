"""A real HTTP client against the server: curl opens N connections for N URLs over HTTP/1.0 and
one over HTTP/1.1 keep-alive, counted from the server's JSON log; and what RFC 9110/9112 ask
of an origin server, as curl sees it (HEAD, Host checks, 405 with Allow, 414, Date, keep-alive
after a 404)."""

from __future__ import annotations

import email.utils
import re
import subprocess
import time

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


# --- HTTP/1.1 as RFC 9110/9112 ask (issue 12, point 2), with curl as the client ----------------

IMF_FIXDATE = re.compile(
    r"^Date: ([A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT)$", re.M
)


def _curl(*args: str) -> subprocess.CompletedProcess[str]:
    """curl's output as text (CR LF read as LF)."""
    return subprocess.run(
        ["curl", "--silent", "--show-error", "--max-time", "10", *args],
        capture_output=True,
        text=True,
        timeout=20,
    )


def _status_lines(verbose: str) -> list[str]:
    """The status lines curl -v received, in order ("HTTP/1.1 404 Not Found")."""
    return [line[2:].strip() for line in verbose.splitlines() if line.startswith("< HTTP/")]


@pytest.mark.usefixtures("needs_curl")
def test_curl_head_gets_the_get_head_and_no_body() -> None:
    with live_server(protocol="http", modes=("persistent",)) as (_, log, ports):
        url = f"http://127.0.0.1:{ports['persistent']}/logo?size=5000"
        # Two HEADs on one connection: a body after the first would be read as the second's head.
        head = _curl("-I", url, url)
        get = _curl("-D", "-", "-o", "/dev/null", url)
    assert head.returncode == 0, head.stderr
    first, second = head.stdout.lower().split("\n\n")[:2]
    assert first.startswith("http/1.1 200 ok") and second.startswith("http/1.1 200 ok")
    assert "content-length: 5000" in first
    drop_date = [line for line in first.splitlines() if not line.startswith("date:")]
    assert drop_date == [
        line for line in get.stdout.lower().splitlines() if line and not line.startswith("date:")
    ]
    sent = [(e["conn"], e["status"], e["bytes"]) for e in log.events("response")]
    assert sent == [(1, 200, 0), (1, 200, 0), (2, 200, 5000)]  # both HEADs on one connection
    closed = log.events("closed")
    heads = head.stdout + get.stdout
    assert sum(e["bytes_out"] for e in closed) == len(heads) + heads.count("\n") + 5000


@pytest.mark.usefixtures("needs_curl")
@pytest.mark.parametrize(
    ("args", "status", "reason"),
    [
        pytest.param(["-H", "Host:"], 400, "without a Host", id="no-host"),
        # curl keeps one Host of two -H; a CR LF inside another header's value gets the second
        # Host line onto the wire (curl 7.88 sends header values as given).
        pytest.param(["-H", "X-Pad: 1\r\nHost: two"], 400, "more than one Host", id="two-hosts"),
        pytest.param(["-H", "Host: a b"], 400, "invalid Host", id="invalid-host"),
        pytest.param(["-X", "DELETE"], 405, "not allowed", id="delete"),
    ],
)
def test_curl_refusals(args: list[str], status: int, reason: str) -> None:
    with live_server(protocol="http", modes=("persistent",)) as (_, log, ports):
        proc = _curl("-i", *args, f"http://127.0.0.1:{ports['persistent']}/a?size=1")
    head = proc.stdout.lower()
    assert head.startswith(f"http/1.1 {status} "), proc.stdout[:200]
    assert IMF_FIXDATE.search(proc.stdout)
    if status == 405:
        assert "allow: get, head" in head
    assert reason in log.wait_for("error")["reason"]


@pytest.mark.usefixtures("needs_curl")
def test_curl_long_target_gets_414_and_a_long_header_431() -> None:
    with live_server(protocol="http", modes=("persistent",)) as (_, _, ports):
        base = f"http://127.0.0.1:{ports['persistent']}"
        code = ["-o", "/dev/null", "-w", "%{http_code}"]
        target = _curl(*code, f"{base}/a?size=1&pad={'x' * 17_000}")  # a 17 KB target
        header = _curl(*code, "-H", f"X-Pad: {'x' * 17_000}", f"{base}/a?size=1")
    assert (target.stdout, header.stdout) == ("414", "431")


@pytest.mark.usefixtures("needs_curl")
@pytest.mark.parametrize("mode", ["persistent", "non-persistent"])
def test_curl_keeps_the_connection_after_a_404(mode: str) -> None:
    """A browser's missing favicon costs no new connection (on the HTTP/1.0 listener it does:
    every response closes there, a 404 as much as a 200)."""
    with live_server(protocol="http", modes=(mode,)) as (_, log, ports):
        base = f"http://127.0.0.1:{ports[mode]}"
        proc = _curl(
            "-v", "-o", "/dev/null", "-o", "/dev/null", f"{base}/favicon.ico", f"{base}/a?size=9"
        )
    assert _status_lines(proc.stderr) == [
        f"{'HTTP/1.1' if mode == 'persistent' else 'HTTP/1.0'} 404 Not Found",
        f"{'HTTP/1.1' if mode == 'persistent' else 'HTTP/1.0'} 200 OK",
    ]
    reused = "Re-using existing connection" in proc.stderr
    assert reused is (mode == "persistent")
    assert len(log.events("accepted")) == (1 if mode == "persistent" else 2)
    assert [e["keep_alive"] for e in log.events("response")] == [mode == "persistent"] * 2


@pytest.mark.usefixtures("needs_curl")
def test_curl_sees_a_date_on_every_response() -> None:
    with live_server(protocol="http", modes=("persistent", "non-persistent")) as (_, _, ports):
        heads = [
            _curl(
                "-s", "-D", "-", "-o", "/dev/null", f"http://127.0.0.1:{ports[mode]}/{path}"
            ).stdout
            for mode in ("persistent", "non-persistent")
            for path in ("a?size=3", "nope", "a?size=x")
        ]
    for head in heads:
        (date,) = IMF_FIXDATE.findall(head)
        sent = email.utils.parsedate_to_datetime(date)
        assert abs(sent.timestamp() - time.time()) < 30
