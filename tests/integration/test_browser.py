"""Headless Chromium as the lab's client, on real containers (tcplab/browser).

- `scenarios/page10-browser.yaml` end to end: the browser's connections counted from the
  capture, and the browser's own net-log joined to them (every socket it opened is a connection
  in the capture; a connection per request when the server closes; reuse under keep-alive, at
  most 6 at once).
- Chromium on loopback against `python -m server --protocol http` (the server's namespace has
  only a loopback): the DOM has the page's title, every resource loaded, and the server's own
  log counts the connections of each mode.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from testcontainers.core.labels import LABEL_SESSION_ID, SESSION_ID

import lab
from lab import browser, docker_util, hosts
from lab.argv import server_argv
from lab.images import ensure_images
from lab.scenario import load_scenario
from tests.integration.conftest import TEST_LABELS, decrypted_requests

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
SCENARIO = REPO / "scenarios" / "page10-browser.yaml"
BROWSER_MODES = ("browser-http1.0", "browser-keepalive")


@pytest.fixture(scope="module")
def browser_images(needs_docker) -> dict[str, str]:
    started = time.monotonic()
    refs = ensure_images(extra=["browser"])
    print(f"\nbrowser image ready in {time.monotonic() - started:.1f} s: {refs['browser']}")
    return refs


def _names(scenario) -> list[str]:
    return [r.name for r in scenario.workload.resources]


def test_page10_browser_counts_from_the_capture(browser_images, tmp_path):
    started = time.monotonic()
    result = lab.run(SCENARIO, out=tmp_path)
    print(f"\npage10-browser: {time.monotonic() - started:.1f} s (machine shared with others)")
    names = set(_names(load_scenario(SCENARIO)))
    accounts = {}
    for name in BROWSER_MODES:
        mode = result.modes[name]
        account = mode.browser
        accounts[name] = account
        folder = Path(result.run_dir) / name
        assert (folder / browser.NETLOG_FILE).stat().st_size > 0
        # every socket Chromium opened is one connection of the capture, matched by its port
        assert account["unmatched_ports"] == [], account
        assert mode.connections == account["connections"] == account["sockets"]
        loaded = {r["name"] for r in account["resources"] if r["status"] == 200}
        assert names <= loaded, f"{name}: not loaded: {names - loaded}"
        assert account["title"], "the DOM has the page's title"
        assert all(r["stream"] is not None for r in account["resources"] if r["sent"] is not None)
        assert max(account["max_parallel_per_host"].values()) <= 6
    closing, keeping = accounts["browser-http1.0"], accounts["browser-keepalive"]
    # the server closes after every response: a connection, and a handshake, per request
    assert closing["reused"] == 0
    assert closing["used_connections"] == closing["requests"]
    assert closing["complete_handshakes_used"] == closing["requests"]
    # keep-alive: fewer connections, and each reuse is a handshake the capture does not have
    assert keeping["reused"] > 0
    assert keeping["connections"] < closing["connections"]
    assert keeping["complete_handshakes_used"] == keeping["requests"] - keeping["reused"]
    verdicts = {(c.id, c.mode): c.holds for c in result.claims}
    for name in BROWSER_MODES:
        assert verdicts[("browser-parallel", name)] is True
    assert verdicts[("browser-reuse", "browser-keepalive")] is True
    # the lab's client ran beside it as before
    assert result.modes["http1.0"].connections == len(names)


TLS_SCENARIO = REPO / "scenarios" / "page10-browser-tls.yaml"


@pytest.mark.usefixtures("needs_tshark")
def test_page10_browser_over_tls_and_http2(browser_images, tmp_path):
    """Chromium over TLS 1.3, trusting the run's server by its key's pin: HTTP/1.1 keep-alive
    on up to 6 connections, HTTP/2 on one; the handshakes read from the packets, and tshark
    decrypts every request with the key log Chromium wrote."""
    started = time.monotonic()
    result = lab.run(TLS_SCENARIO, out=tmp_path)
    print(f"\npage10-browser-tls: {time.monotonic() - started:.1f} s")
    names = set(_names(load_scenario(TLS_SCENARIO)))
    for name, port, used in (("browser-tls13", 3000, None), ("browser-h2", 3001, 1)):
        mode = result.modes[name]
        account = mode.browser
        assert account["unmatched_ports"] == [], account
        loaded = {r["name"] for r in account["resources"] if r["status"] == 200}
        assert names <= loaded, f"{name}: not loaded: {names - loaded}"
        assert mode.tls.versions == ["1.3"] and mode.tls.round_trips_full == [1], mode.tls
        assert mode.tls.connections == mode.connections  # every connection spoke TLS
        if used is not None:  # HTTP/2: the page on one connection, every later request reused it
            assert account["used_connections"] == used
            assert account["reused"] == account["requests"] - 1
        folder = Path(result.run_dir) / name
        keylog = (folder / "tls-keys.log").read_text()
        assert keylog.count("CLIENT_TRAFFIC_SECRET_0") >= account["used_connections"]
        requests = decrypted_requests(folder, port, h2=name == "browser-h2")
        paths = {u.split("?")[0].lstrip("/") for u in requests}
        assert names <= paths, f"{name}: tshark did not decrypt {names - paths}"
    verdicts = {(c.id, c.mode): c.holds for c in result.claims}
    assert verdicts[("browser-reuse", "browser-h2")] is True


def _run_browser(client, image: str, url: str, server_id: str, run_id: str, mode: str):
    spec = hosts.browser_spec(
        image=image, run_id=run_id, mode=mode,
        command=browser.driver_argv(url, 60), limits=hosts.Limits(memory="1g"),
        netns_of=server_id,
    )  # fmt: skip
    spec["labels"] = {**spec["labels"], **TEST_LABELS, LABEL_SESSION_ID: SESSION_ID}
    container = client.containers.run(**spec)
    try:
        code = container.wait(timeout=90)["StatusCode"]
        netlog = container.logs(stdout=True, stderr=False).decode()
        log = container.logs(stdout=False, stderr=True).decode("utf-8", "replace")
    finally:
        container.remove(force=True)
    assert code == 0, log[-2000:]
    return browser.parse_netlog(netlog), browser.driver_summary(log)


def test_chromium_on_loopback_against_the_server(browser_images):
    scenario = load_scenario(SCENARIO)
    modes = [scenario.mode(n) for n in BROWSER_MODES]
    run_id = f"test-{uuid.uuid4().hex[:8]}"
    client = docker_util.client()
    server = client.containers.run(
        browser_images["server"],
        command=server_argv(scenario, modes),
        detach=True,
        network_mode="none",  # a loopback and nothing else
        user=hosts.LAB_UID,
        read_only=True,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        labels={**TEST_LABELS, LABEL_SESSION_ID: SESSION_ID},
        name=f"tcplab-{run_id}-server",
    )
    try:
        deadline = time.monotonic() + 15
        while server.logs().decode().count('"event": "listening"') < len(modes):
            assert time.monotonic() < deadline, server.logs().decode()[-2000:]
            time.sleep(0.1)
        results = {}
        for mode in modes:
            port = scenario.port_of(mode)
            url = browser.page_url("127.0.0.1", port, _names(scenario)[0])
            results[mode.name] = (port, *_run_browser(
                client, browser_images["browser"], url, server.id, run_id, mode.name
            ))  # fmt: skip
        log = [json.loads(line) for line in server.logs().decode().splitlines() if line]
    finally:
        server.remove(force=True)
        client.close()
    accepted = {}
    for port, netlog, summary in results.values():
        accepted[port] = sum(
            1 for e in log if e.get("event") == "accepted" and e.get("local_port") == port
        )
        assert summary["title"], "the DOM shows the page's title"
        assert f"<title>{summary['title']}" in summary["dom"].replace("\n", "")
        statuses = {f.name: f.status for f in netlog.fetches if f":{port}/" in f.url}
        missing = [n for n in _names(scenario) if statuses.get(n) != 200]
        assert not missing, f"port {port}: not loaded: {missing} ({statuses})"
        # the server's log and the browser's net-log count the same connections
        assert accepted[port] == len(netlog.sockets)
    closing_port, keeping_port = (scenario.port_of(m) for m in modes)
    assert accepted[closing_port] >= len(_names(scenario))  # one per resource (and a favicon)
    assert accepted[keeping_port] < accepted[closing_port]
    print(f"\nconnections accepted per port (server log): {accepted}")
