"""TLS wired into the lab's programs: `python -m server --tls` against curl, openssl s_client
and the lab's client (`--tls`, `--resume`), on loopback, with a CA from lab.tlsca."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import tlsca
from lab.tls import keylog_text
from tests.conftest import require
from wire import http

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parents[2]
# index.html has room for the page's report script (wire.site), which Chromium's test reads
RESOURCES = "index.html:1400,style.css:30000,app.js:150000,empty:0,logo.png:2000"


@pytest.fixture(scope="module")
def authority() -> tlsca.Authority:
    return tlsca.make_authority()


@pytest.fixture(scope="module")
def ca_file(authority, tmp_path_factory) -> Path:
    return authority.write_public(tmp_path_factory.mktemp("tls"))["ca"]


def _env(authority: tlsca.Authority) -> dict[str, str]:
    return {**os.environ, **authority.server_environment(), **authority.client_environment()}


def _server(authority, version: str, *extra: str) -> Iterator[tuple[dict[str, int], list[str]]]:
    argv = [sys.executable, "-m", "server", "--protocol", "http", "--tls", version,
            "--host", "127.0.0.1", "--log-format", "json", "--listen", "0:persistent",
            "--listen", "0:non-persistent", f"--page={RESOURCES}", *extra]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=ROOT, env=_env(authority), stdout=subprocess.PIPE, text=True)
    ports = {}
    while len(ports) < 2:
        line = json.loads(proc.stdout.readline())
        ports[line["mode"]] = line["port"]
    lines: list[str] = []
    try:
        yield ports, lines
    finally:
        proc.terminate()
        lines += proc.communicate(timeout=20)[0].splitlines()


@pytest.fixture(
    params=[("1.2", "threads"), ("1.3", "threads"), ("1.2", "epoll"), ("1.3", "epoll")],
    ids=lambda p: f"tls{p[0]}-{p[1]}",
)
def tls_server(request, authority):
    """The server over each TLS version, in each concurrency model."""
    version, concurrency = request.param
    gen = _server(authority, version, "--concurrency", concurrency)
    ports, lines = next(gen)
    yield version, ports, lines
    next(gen, None)


def _events(lines: list[str], name: str) -> list[dict]:
    return [e for e in map(json.loads, lines) if e["event"] == name]


@pytest.mark.usefixtures("needs_curl")
@pytest.mark.parametrize("mode", ["persistent", "non-persistent"])
def test_curl_fetches_over_tls_trusting_the_run_ca(tls_server, ca_file, mode):
    version, ports, _ = tls_server
    names = [("a", 100), ("b", 70000), ("c", 5)]
    urls = [f"https://localhost:{ports[mode]}/{n}?size={s}" for n, s in names]
    proc = subprocess.run(
        ["curl", "--silent", "--show-error", "--fail", "--max-time", "10", "--cacert",
         str(ca_file), f"--tlsv{version}", "--tls-max", version, *urls],
        capture_output=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"".join(http.body(n, s) for n, s in names)


@pytest.mark.usefixtures("needs_curl")
def test_curl_tls13_and_the_server_log(authority, ca_file):
    gen = _server(authority, "1.3")
    ports, lines = next(gen)
    proc = subprocess.run(
        ["curl", "-sS", "--fail", "--max-time", "10", "--cacert", str(ca_file), "--tlsv1.3",
         f"https://localhost:{ports['persistent']}/x?size=10",
         f"https://localhost:{ports['persistent']}/y?size=20"],
        capture_output=True, timeout=30,
    )  # fmt: skip
    next(gen, None)
    assert proc.returncode == 0, proc.stderr
    tls = _events(lines, "tls")
    assert [e["tls_version"] for e in tls] == ["TLSv1.3"]  # two requests, one connection
    assert len(_events(lines, "response")) == 2
    assert not _events(lines, "error")


def test_openssl_s_client_gets_a_response(tls_server, ca_file):
    require(shutil.which("openssl") is not None, "openssl is not installed (Debian: openssl)")
    version, ports, _ = tls_server
    request = b"GET /x?size=5 HTTP/1.1\r\nHost: server\r\nConnection: close\r\n\r\n"
    proc = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{ports['persistent']}", "-CAfile",
         str(ca_file), "-verify_hostname", "server", "-verify_return_error",
         f"-tls1_{version[-1]}", "-servername", "server", "-ign_eof", "-quiet"],
        input=request, capture_output=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-300:]
    assert proc.stdout.startswith(b"HTTP/1.1 200 OK\r\n")
    assert proc.stdout.endswith(http.body("x", 5))


def _client(authority, port: int, version: str, mode: str, *extra: str) -> tuple[int, list]:
    argv = [sys.executable, "-m", "client", "--host", "localhost", "--port", str(port),
            "--protocol", "http", "--mode", mode, "--resources", RESOURCES, "--tls", version,
            "--log-format", "json", *extra]  # fmt: skip
    proc = subprocess.run(
        argv, cwd=ROOT, env=_env(authority), capture_output=True, text=True, timeout=30
    )
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()]


@pytest.mark.parametrize(
    ("mode", "extra", "resumed"),
    [
        pytest.param("persistent", (), [False] * 5, id="keep-alive"),
        pytest.param("non-persistent", (), [False] * 5, id="http1.0"),
        # the first connection reads a response before the other two open: they resume
        pytest.param(
            "persistent",
            ("--parallel", "3", "--resume"),
            [False, True, True, False, True],
            id="keep-alive-resume",
        ),
        pytest.param(
            "non-persistent",
            ("--parallel", "2", "--resume"),
            None,  # two workers race: see below
            id="http1.0-resume",
        ),
    ],
)
def test_lab_client_over_tls(tls_server, authority, mode, extra, resumed):
    version, ports, _ = tls_server
    code, records = _client(authority, ports[mode], version, mode, *extra)
    requests = [r for r in records if r["event"] == "request"]
    assert code == 0, records[-1]
    assert all(r["ok"] for r in requests) and len(requests) == 5
    by_request = {r["request"]: r for r in requests}
    names = [entry.split(":")[0] for entry in RESOURCES.split(",")]
    got = [by_request[n]["tls"]["resumed"] for n in names]
    if resumed is not None:
        assert got == resumed
    else:
        # Two workers, a connection per request: each worker's first connection resumes only
        # if the other's session was kept before it opened (which one wins is the scheduler's
        # choice: [F, F, T, T, T] usually, [F, T, T, T, T] on a busy machine, seen once). The
        # first request is always a full handshake, at most one per worker, the rest resume.
        assert got[0] is False and got.count(False) <= 2 and all(got[2:]), got
    assert {r["tls"]["tls_version"] for r in requests} == {f"TLSv{version}"}
    keylog = keylog_text(records).splitlines()
    label = "CLIENT_RANDOM" if version == "1.2" else "CLIENT_TRAFFIC_SECRET_0"
    connections = len({r["conn"] for r in requests})
    assert sum(line.startswith(label) for line in keylog) == connections
    assert records[-1]["event"] == "summary"  # the key log lines all came before it


@pytest.mark.parametrize("concurrency", ["threads", "epoll"])
def test_sigterm_ends_an_idle_tls_connection_with_close_notify(authority, ca_file, concurrency):
    """The shutdown wakes an idle keep-alive read with shutdown(SHUT_RD); OpenSSL 3 took that
    for a truncation and sent the client a fatal decode_error alert instead of a clean close."""
    gen = _server(authority, "1.3", "--concurrency", concurrency)
    ports, lines = next(gen)
    context = ssl.create_default_context(cafile=str(ca_file))
    raw = socket.create_connection(("127.0.0.1", ports["persistent"]), timeout=10)
    with context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"GET /empty HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert tls.recv(4096).startswith(b"HTTP/1.1 200 OK")
        next(gen, None)  # SIGTERM, then the server's log
        assert tls.recv(4096) == b""  # the server's close_notify: not an alert, not a reset
    closed = _events(lines, "closed")
    assert [(c["reason"], c["error"]) for c in closed] == [("server shutting down", False)]


def test_bad_tls_input_is_one_line_and_exit_2(authority):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_TLS")}
    for argv in (
        ["-m", "server", "--protocol", "http", "--tls", "1.3"],
        ["-m", "server", "--protocol", "echo", "--tls", "1.3"],
        ["-m", "server", "--protocol", "http", "--tls", "1.3", "--concurrency", "epoll"],  # no PEM
        ["-m", "client", "--host", "h", "--port", "1", "--protocol", "http", "--sizes", "1",
         "--resume"],
        ["-m", "client", "--host", "h", "--port", "1", "--protocol", "http", "--sizes", "1",
         "--tls", "1.3"],
    ):  # fmt: skip
        proc = subprocess.run(
            [sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=20
        )
        assert proc.returncode == 2, argv
        assert "Traceback" not in proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith("python -m "), proc.stderr


@pytest.mark.parametrize("protocol", ["http", "h2"])
def test_chromium_loads_the_page_over_the_runs_tls(authority, tmp_path, protocol):
    """Headless Chromium, through the lab's driver (`python -m client.browser --spki-pin`, as
    a `client: browser` mode over TLS runs it), loads the page from `python -m server --tls
    1.3` (HTTP/1.1, or HTTP/2 by ALPN): every script, stylesheet and image loaded (the page's
    own script says so in the DOM), the server's log shows the protocol Chromium spoke, and
    the driver returns Chromium's key log. Chromium's trust store is NSS, which the test leaves
    alone: it trusts the run's server certificate by its key's pin (lab.tlsca)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    require(browser is not None, "chromium is not installed (Debian: apt-get install chromium)")
    argv = [sys.executable, "-m", "server", "--protocol", protocol, "--tls", "1.3",
            "--host", "127.0.0.1", "--log-format", "json", "--listen", "0:persistent",
            f"--page={RESOURCES}"]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=ROOT, env=_env(authority), stdout=subprocess.PIPE, text=True)
    try:
        port = json.loads(proc.stdout.readline())["port"]
        driven = subprocess.run(
            [sys.executable, "-m", "client.browser", "--chromium", browser, "--timeout", "40",
             "--url", f"https://localhost:{port}/index.html",
             "--spki-pin", authority.server_spki_pin()],
            cwd=ROOT, capture_output=True, text=True, timeout=45,
        )  # fmt: skip
    finally:
        proc.terminate()
        log = proc.communicate(timeout=20)[0]
    assert driven.returncode == 0, driven.stderr[-1500:]
    done = json.loads(driven.stderr.strip().splitlines()[-1])
    shown = subprocess.CompletedProcess([], 0, stdout=done["dom"], stderr=driven.stderr)
    assert "CLIENT_HANDSHAKE_TRAFFIC_SECRET" in done["keylog"]  # TLS 1.3's, for Wireshark
    assert 'data-loaded="yes"' in shown.stdout, shown.stderr[-1500:]
    assert 'data-scripts="app.js"' in shown.stdout and "logo.png:32x32" in shown.stdout
    events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    served = [e for e in events if e.get("event") == "response" and e.get("status") == 200]
    assert len(served) >= 4, events[-5:]  # the document and its three resources
    if protocol == "h2":  # one connection carried every stream (Chromium may open a spare
        # one and never use it, as it does over HTTP/1.0: seen once in three runs)
        assert len({e["conn"] for e in served}) == 1, served
