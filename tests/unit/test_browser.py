"""The browser client: Chromium's net-log joined to the capture (lab.browser), its claims, the
scenario key, the container spec, the image role, the driver and the report's parts.

tests/data/browser/ holds a lab run of tests/data/browser/tiny-browser.yaml (a page of 9
resources of 1-2 KiB: HTML, 2 CSS, 2 JS, 3 PNG, a WOFF2 font; 20 ms; tcpdump -s 96): headless
Chromium in tcplab/browser, `http10` from the listener that closes after every response,
`keepalive` from the keep-alive one: the capture, the server's log, the driver's summary line and
the net-log trimmed with tests/support/netlog_trim.py. `h2` is the same page over TLS 1.3 and
HTTP/2 (tiny-browser-tls.yaml): its summary line carries Chromium's key log too.
"""

from __future__ import annotations

import json
import re
import shutil
import stat
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import lab
from lab import browser, claims, hosts, images
from lab.document import ModeResult, RunResult
from lab.scenario import load_scenario, parse_scenario

DATA = Path(__file__).resolve().parents[1] / "data" / "browser"
ORIGINS = {"http10": "server:3000", "keepalive": "server:3001", "h2": "server:3000"}
PAGE = [
    "index.html", "style.css", "theme.css", "app.js", "vendor.js", "hero.png", "photo.png",
    "logo.png", "text.woff2",
]  # fmt: skip
TITLE = "TCP Connection Lab: a page of 9 resources"


def recorded(name: str) -> browser.BrowserAccount:
    netlog = browser.parse_netlog((DATA / f"{name}.netlog.json").read_text())
    capture = lab.analyze_pcap(DATA / f"{name}.pcap")
    summary = browser.driver_summary((DATA / f"{name}.log").read_text())
    return browser.join(netlog, capture.connections, summary, origin=ORIGINS[name])


# --- the net-log ------------------------------------------------------------------------------


def test_netlog_sockets_have_their_local_ports_and_requests():
    log = browser.parse_netlog((DATA / "keepalive.netlog.json").read_text())
    assert len(log.sockets) == 5
    assert all(s.local_port and s.remote.endswith(":3001") for s in log.sockets)
    assert all(s.t_connect <= s.t_connected for s in log.sockets)
    carried = sorted(len(s.requests) for s in log.sockets)
    assert carried == [1, 1, 2, 3, 3]  # 10 requests, 5 on a connection already used
    page = [f for f in log.fetches if f.url.startswith("http://server:3001/")]
    assert page[0].name == "index.html"
    assert {f.name for f in page} == {*PAGE, "favicon.ico"}
    sent = [f for f in page if f.t_sent is not None]
    assert all(f.socket is not None and f.t_start <= f.t_sent <= f.t_headers for f in sent)
    assert {f.name: f.status for f in sent}["favicon.ico"] == 404
    # Chromium asked for the font twice: the first request never reached a connection
    assert [f.t_sent is None for f in page if f.name == "text.woff2"] == [True, False]


def test_server_log_and_netlog_count_the_same_connections():
    for name, origin in ORIGINS.items():
        port = int(origin.rpartition(":")[2])
        log = [json.loads(line) for line in (DATA / f"{name}.server.log").read_text().splitlines()]
        accepted = [e for e in log if e["event"] == "accepted" and e["local_port"] == port]
        netlog = browser.parse_netlog((DATA / f"{name}.netlog.json").read_text())
        assert len(accepted) == len(netlog.sockets)
        assert {e["peer_port"] for e in accepted} == {s.local_port for s in netlog.sockets}


def test_a_netlog_cut_short_is_read_up_to_its_last_whole_event():
    text = (DATA / "http10.netlog.json").read_text()
    whole = browser.parse_netlog(text)
    cut = browser.parse_netlog(text[: len(text) // 2])
    assert cut.truncated and not whole.truncated
    assert 0 < len(cut.fetches) < len(whole.fetches)


@pytest.mark.parametrize("text", ["", "{}", "[1, 2]", '{"constants": {}, "events": []}', "x"])
def test_not_a_netlog(text):
    with pytest.raises(ValueError, match="not a Chromium net-log"):
        browser.parse_netlog(text)


def test_driver_summary_is_the_last_json_line():
    log = "[1:2:ERROR:dbus] noise\n" + json.dumps({"event": "browser_done", "title": "t"}) + "\n"
    assert browser.driver_summary(log)["title"] == "t"
    assert browser.driver_summary("no summary\n") == {}


# --- joined with the capture ------------------------------------------------------------------


def test_closing_server_a_connection_per_request_at_most_six_at_once():
    account = recorded("http10")
    assert account.title == TITLE and account.exit == 0
    assert (account.requests, account.loaded) == (9, 9)
    assert account.connections == account.sockets == 10
    # Chromium opened one connection more than it used (a spare for the favicon it never sent)
    assert (account.used_connections, account.unused_connections) == (9, 1)
    assert account.reused == 0 and account.complete_handshakes_used == 9
    assert account.max_parallel == 5 and list(account.max_parallel_per_host.values()) == [5]
    assert account.unmatched_ports == []
    streams = [r.stream for r in account.resources if r.sent is not None]
    assert len(set(streams)) == 9  # each resource on its own tcp.stream


def test_keepalive_server_reused_connections_and_their_streams():
    account = recorded("keepalive")
    assert (account.requests, account.connections, account.reused) == (10, 5, 5)
    assert account.complete_handshakes_used == 5 == account.requests - account.reused
    first = account.resources[0]
    assert first.name == "index.html" and first.start == 0.0 and not first.reused
    reused = [r for r in account.resources if r.reused]
    assert len(reused) == 5
    # a reused connection's stream carried an earlier request, and the row shows no handshake
    for r in reused:
        earlier = [o for o in account.resources if o.stream == r.stream and o.sent < r.sent]
        assert earlier
        assert "connect" not in [p for p, _, _ in r.phases()]


def test_http2_streams_are_requests_on_their_connection():
    """Over HTTP/2 a request's job finds the open session, not a socket of the pool: the
    net-log's HTTP2_SESSION names the socket, so every later request is a reuse of the one
    connection (Chromium opened a spare one it never used)."""
    account = recorded("h2")
    assert (account.connections, account.used_connections, account.unmatched_ports) == (2, 1, [])
    sent = [r for r in account.resources if r.sent is not None]
    assert len({r.stream for r in sent}) == 1 and None not in {r.stream for r in sent}
    assert account.reused == account.requests - 1 == len(sent) - 1
    assert account.complete_handshakes_used == 1
    summary = browser.driver_summary((DATA / "h2.log").read_text())
    assert "CLIENT_TRAFFIC_SECRET_0" in summary["keylog"]


def test_page_timing_from_the_dom():
    dom = '<body data-timing="212.4 598.0" data-loaded="yes">'
    assert browser.page_timing(dom) == {"dom_content_loaded_ms": 212.4, "load_event_ms": 598.0}
    # a page too small for its report script, or no DOM: unknown, not zero
    assert browser.page_timing("<body>") == {"dom_content_loaded_ms": None, "load_event_ms": None}
    assert browser.page_timing(None)["load_event_ms"] is None
    account = recorded("h2")  # recorded before the page reported its timing
    assert account.load_event_ms is None and account.as_dict()["load_event_ms"] is None


def test_origin_leaves_out_chromium_own_hosts():
    netlog = browser.parse_netlog((DATA / "http10.netlog.json").read_text())
    others = [f for f in netlog.fetches if not f.url.startswith("http://server:3000/")]
    assert others, "the recording has Chromium's own (unresolved) requests"
    conns = lab.analyze_pcap(DATA / "http10.pcap").connections
    with_all = browser.join(netlog, conns, {})
    only_page = browser.join(netlog, conns, {}, origin=ORIGINS["http10"])
    assert len(with_all.resources) == len(only_page.resources) + len(others)
    assert with_all.requests == only_page.requests  # they never reached a connection


def _conn(t_syn, t_fin, server="10.0.0.2", port=3000):
    return SimpleNamespace(
        t_syn=t_syn, start=t_syn, t_first_fin=t_fin, end=t_fin, server_addr=server, server_port=port
    )


def test_max_open_counts_from_syn_to_first_fin():
    assert browser.max_open([]) == 0
    assert browser.max_open([_conn(0, 1), _conn(1, 2)]) == 1  # one closes as the next opens
    assert browser.max_open([_conn(0, 3), _conn(1, 2), _conn(1.5, 4)]) == 3
    assert browser.max_open([_conn(0, None)]) == 0  # no end known: not counted


def test_phases_of_a_row():
    row = browser.ResourceRow(
        name="a.css", status=200, body_bytes=1, local_port=1, stream=0, reused=False, start=0.1,
        socket=0.2, connect_start=0.05, connected=0.2, sent=0.21, first_byte=0.3, end=0.4,
    )  # fmt: skip
    # the connection was opened ahead (a preconnect): only the part the request waited for
    assert row.phases() == [
        ("queued", 0.1, 0.1),
        ("connect", 0.1, 0.2),
        ("waiting", 0.21, 0.3),
        ("receiving", 0.3, 0.4),
    ]
    reused = browser.ResourceRow(**{**row.__dict__, "reused": True})
    assert [p for p, _, _ in reused.phases()] == ["queued", "waiting", "receiving"]


def test_page_url_and_driver_argv():
    url = browser.page_url("server", 3002, "index.html")
    assert url == "http://server:3002/index.html"
    assert browser.driver_argv(url, 60.0) == ["--url", url, "--timeout", "60"]
    url = browser.page_url("server", 3002, "index.html", tls=True)
    assert url == "https://server:3002/index.html"
    assert browser.driver_argv(url, 60.0, spki_pin="AAA=")[-2:] == ["--spki-pin", "AAA="]


# --- the claims -------------------------------------------------------------------------------


def _browser_mode(name, persistent, account):
    return ModeResult(name=name, persistent=persistent, client="browser", browser=account)


def _run(*modes):
    return RunResult(modes={m.name: m for m in modes})


def test_the_modes_table_shows_a_browsers_load_event_beside_the_page_time():
    from lab.summary import METRICS

    account = {**recorded("h2").as_dict(), "load_event_ms": 598.0}
    run = _run(
        _browser_mode("b", True, account), ModeResult(name="lab", persistent=True, client="lab")
    )
    (get,) = [g for label, g, _ in METRICS if label == "browser's load event (ms from navigation)"]
    assert [get(run, m) for m in run.modes.values()] == [598.0, None]


def _by_id(run):
    return {(c.id, c.mode): c for c in claims.check_claims(run)}


def test_browser_claims_hold_on_the_recordings():
    closing = _browser_mode("b10", False, recorded("http10").as_dict())
    keeping = _browser_mode("bka", True, recorded("keepalive").as_dict())
    got = _by_id(_run(closing, keeping))
    assert got[("browser-parallel", "b10")].holds is True
    assert got[("browser-parallel", "bka")].observed == 5
    reuse = got[("browser-reuse", "bka")]
    assert reuse.holds is True, reuse.why
    assert reuse.observed == "5 handshake(s) saved (15 packets)"
    # the lab client's per-request claims leave browser modes alone
    assert {cid for cid, _ in got} == {"browser-parallel", "browser-reuse"}


def test_browser_claims_differ():
    seven = {"max_parallel_per_host": {"10.0.0.2:3000": 7}, "connections": 9}
    assert _by_id(_run(_browser_mode("b", False, seven)))[("browser-parallel", "b")].holds is False
    # a reused request that still paid a handshake
    odd = {"requests": 10, "reused": 4, "complete_handshakes_used": 7}
    assert _by_id(_run(_browser_mode("k", True, odd)))[("browser-reuse", "k")].holds is False
    none = {"requests": 10, "reused": 0, "complete_handshakes_used": 10}
    claim = _by_id(_run(_browser_mode("k", True, none)))[("browser-reuse", "k")]
    assert claim.holds is False and "reused no connection" in claim.why
    unknown = _by_id(_run(_browser_mode("k", True, {"error": "no net-log"})))
    assert unknown[("browser-reuse", "k")].holds is None
    assert unknown[("browser-parallel", "k")].why == "no net-log"


# --- the scenario, the container, the image ---------------------------------------------------

SCENARIO = """
name: b
protocol: {protocol}
workload: {workload}
modes:
  - {{name: m, persistent: true, client: browser{extra}}}
"""


HTML = "{resources: [{name: index.html, kind: html, size: 1k}]}"


def _scenario(protocol="http", extra=""):
    workload = HTML if protocol == "http" else "{sizes: [1]}"
    return parse_scenario(SCENARIO.format(protocol=protocol, workload=workload, extra=extra))


def test_scenario_client_key():
    s = _scenario()
    assert s.modes[0].client == "browser" and s.browser_modes == s.modes
    lab_mode = parse_scenario(
        SCENARIO.format(protocol="http", extra="", workload=HTML).replace(", client: browser", "")
    )
    assert lab_mode.modes[0].client == "lab" and lab_mode.browser_modes == ()


@pytest.mark.parametrize(
    ("protocol", "extra", "message"),
    [
        ("echo", "", "modes[0].client: the browser client needs protocol: http"),
        ("http", ", parallel: 6", "modes[0].parallel: the browser opens its own connections"),
        ("http", ", pipeline: true", "modes[0].pipeline: the browser opens its own connections"),
    ],
)
def test_scenario_client_key_refused(protocol, extra, message):
    with pytest.raises(lab.ScenarioError, match=re.escape(message)):
        _scenario(protocol, extra)


def test_scenario_client_key_unknown_value():
    with pytest.raises(lab.ScenarioError, match="must be one of lab, browser"):
        text = SCENARIO.format(protocol="http", workload=HTML, extra="")
        parse_scenario(text.replace("client: browser", "client: firefox"))


def test_browser_plan_runs_the_driver_on_the_page():
    from lab.results import plans

    s = load_scenario(Path(__file__).resolve().parents[2] / "scenarios/page10-browser.yaml")
    by_mode = {p.mode: p for p in plans(s, s.modes, Path("/tmp/run"))}
    b = by_mode["browser-keepalive"]
    assert b.client == "browser"
    port = s.port_of(s.mode("browser-keepalive"))
    assert b.client_argv == ["--url", f"http://server:{port}/index.html", "--timeout", "60"]
    assert by_mode["http1.0"].client == "lab" and "--host" in by_mode["http1.0"].client_argv


@pytest.mark.parametrize("netns", [None, "abc123"])
def test_browser_container_keeps_least_privilege(netns):
    spec = hosts.browser_spec(
        image="tcplab/browser:x", run_id="r", mode="m", command=["--url", "http://server:3000/"],
        limits=hosts.Limits(), network="net", netns_of=netns,
    )  # fmt: skip
    assert spec["user"] == hosts.LAB_UID and spec["read_only"] is True
    assert spec["cap_drop"] == ["ALL"] and "cap_add" not in spec and spec["privileged"] is False
    assert spec["security_opt"] == ["no-new-privileges"]
    assert spec["tmpfs"] == {"/tmp": "rw,nosuid,nodev,size=256m,mode=1777"}
    assert spec["labels"][hosts.ROLE_LABEL] == "browser" and spec["name"].endswith("-browser")
    if netns:
        assert spec["network_mode"] == f"container:{netns}" and "network" not in spec
    else:
        assert spec["network"] == "net" and spec["hostname"] == "client"


def test_browser_image_is_built_only_on_demand():
    assert "browser" not in images.default_roles()
    assert images.default_roles(["browser"])[-1] == "browser"
    assert set(images.default_roles()) == set(images.ROLES) - {"browser"}
    with pytest.raises(ValueError, match="unknown image roles: firefox"):
        images.default_roles(["firefox"])
    text = (images.IMAGES_DIR / "browser.Dockerfile").read_text()
    assert "USER 10001:10001" in text and "--no-install-recommends chromium" in text
    assert "apt-get update" in text and "rm -rf /var/lib/apt/lists/*" in text


def test_browser_image_goes_to_the_client_side_only_when_built():
    from lab import image_sync
    from lab.placement import Side, side_of

    assert side_of("browser") is Side.CLIENT
    assert "browser" not in image_sync.images_for_side(Side.CLIENT, shaped=True)


# --- the driver (client.browser), with a stand-in for Chromium --------------------------------

FAKE_CHROMIUM = """#!{python}
import sys
args = sys.argv[1:]
netlog = next(a.split("=", 1)[1] for a in args if a.startswith("--log-net-log="))
assert "--no-sandbox" in args and "--headless" in args and "--dump-dom" in args
open(netlog, "w").write('{{"constants": {{}}, "events": []}}')
print("<html><head><title> The  page </title></head></html>")
print("[1:1:ERROR:dbus] no bus", file=sys.stderr)
sys.exit({code})
"""


def _fake(tmp_path: Path, code: int = 0) -> str:
    path = tmp_path / "chromium"
    path.write_text(FAKE_CHROMIUM.format(python=sys.executable, code=code))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_driver_prints_the_netlog_and_the_dom(tmp_path, capsys):
    from client import browser as driver

    code = driver.main(["--url", "http://server:3000/index.html", "--chromium", _fake(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0
    assert json.loads(out) == {"constants": {}, "events": []}
    summary = browser.driver_summary(err)
    assert summary["title"] == "The page" and summary["exit"] == 0
    assert "no bus" in err  # Chromium's own stderr is kept


def test_driver_failures(tmp_path, capsys):
    from client import browser as driver

    assert driver.main(["--url", "ftp://x", "--chromium", _fake(tmp_path)]) == 2
    assert "must be an http(s) URL" in capsys.readouterr().err
    assert driver.main(["--url", "http://s/", "--chromium", _fake(tmp_path, code=3)]) == 1
    assert (
        capsys.readouterr().err.splitlines()[-1] == "error: chromium failed on http://s/ (exit 3)"
    )
    assert driver.main(["--url", "http://s/", "--chromium", str(tmp_path / "none")]) == 1
    assert "no chromium binary" in capsys.readouterr().err


def test_driver_chromium_flags():
    from client import browser as driver

    argv = driver.chromium_argv("/c", "http://s/", "/tmp/p", "/tmp/n.json")
    assert argv[0] == "/c" and argv[-1] == "http://s/"
    assert {"--headless", "--no-sandbox", "--dump-dom", "--log-net-log=/tmp/n.json"} <= set(argv)
    assert "--user-data-dir=/tmp/p" in argv
    assert not [a for a in argv if "spki" in a or "key-log" in a]
    argv = driver.chromium_argv("/c", "https://s/", "/tmp/p", "/tmp/n.json", "AAA=", "/tmp/k")
    assert {"--ignore-certificate-errors-spki-list=AAA=", "--ssl-key-log-file=/tmp/k"} <= set(argv)


# --- the run's analysis and the report --------------------------------------------------------


def _mode_folder(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    shutil.copy(DATA / f"{name}.pcap", folder / "capture.pcap")
    shutil.copy(DATA / f"{name}.netlog.json", folder / browser.NETLOG_FILE)
    shutil.copy(DATA / f"{name}.log", folder / browser.LOG_FILE)
    return folder


def test_browser_row_from_a_mode_folder(tmp_path):
    from lab.results import analyze_mode_folder, browser_row

    folder = _mode_folder(tmp_path, "keepalive")
    row = analyze_mode_folder(folder, (3001,))
    browser_row(row, folder, ORIGINS["keepalive"])
    assert row.client == "browser" and row.requests == 10 and row.client_ok == 9
    assert row.browser["reused"] == 5 and row.connections == 5
    again = ModeResult.from_dict(json.loads(json.dumps(row.to_dict())))
    assert again.browser == row.browser  # analysis.json keeps it
    (folder / browser.NETLOG_FILE).write_text("not json")
    broken = analyze_mode_folder(folder, (3001,))
    browser_row(broken, folder, ORIGINS["keepalive"])
    assert broken.browser["error"].startswith("browser.netlog.json: not a Chromium net-log")


def test_report_parts_for_browser_modes(tmp_path):
    from lab.report.chart_inputs import resource_panels
    from lab.report.render import browser_rows

    modes = []
    for name in ("http10", "keepalive"):
        folder = _mode_folder(tmp_path, name)
        from lab.results import analyze_mode_folder, browser_row

        row = analyze_mode_folder(folder, (int(ORIGINS[name].rpartition(":")[2]),))
        browser_row(row, folder, ORIGINS[name])
        row.name = name
        modes.append(row)
    headers, rows = browser_rows(_run(*modes))
    assert headers == ["", "http10", "keepalive"]
    table = {r[0]: r[1:] for r in rows}
    assert table["requests on a reused connection"] == ["0", "5"]
    assert table["most connections open at once, per host"] == ["5", "5"]
    assert table["connections that carried no request"] == ["1", "0"]
    assert table["page title (from the DOM)"] == [TITLE, TITLE]
    panels = resource_panels(modes)
    assert [len(p.rows) for p in panels] == [11, 11]  # with the unsent font and favicon rows
    labels = [r.label for r in panels[1].rows]
    assert "style.css (stream 0, reused)" in labels and "text.woff2 (not sent)" in labels
    assert browser_rows(_run(ModeResult(name="lab"))) is None


def test_validate_says_which_modes_are_the_browser(capsys):
    from lab import cli

    scenario = Path(__file__).resolve().parents[2] / "scenarios/page10-browser.yaml"
    assert cli.main(["validate", str(scenario)]) == 0
    out = capsys.readouterr().out
    assert "mode browser-keepalive: persistent, Chromium (browser)" in out
    assert "mode keepalive-6: persistent, 6 at a time" in out
    assert cli.build_parser().parse_args(["build", "--browser"]).browser is True


def test_rtt_check_judges_the_lab_client_when_a_browser_is_beside_it():
    from lab.document import ConnectionResult
    from lab.results import _network_check
    from lab.summary import network_rows

    scenario = load_scenario(Path(__file__).resolve().parents[2] / "scenarios/page10-browser.yaml")

    def mode(name, rtt, client=None):
        conns = [ConnectionResult(stream=i, handshake_rtt_ms=rtt) for i in range(10)]
        return ModeResult(name=name, rtt_ms=rtt, client=client, per_connection=conns)

    # the browser's handshakes late (its start-up takes the client shaper's CPU), outnumbering
    modes = [mode("http1.0", 50.5), mode("b1", 65.0, "browser"), mode("b2", 64.0, "browser")]
    check = _network_check(scenario, modes, base_rtt_ms=0.5)
    assert check.rtt_check.ok and check.rtt_check.handshakes == 10
    assert [m.get("judged", True) for m in check.rtt_check.modes] == [True, False, False]
    rows = dict(network_rows(check))
    assert "b1 65.00 ms ✗ (browser, not judged)" in rows["handshake RTT check"]
    only_browsers = _network_check(scenario, modes[1:], base_rtt_ms=0.5)
    assert not only_browsers.rtt_check.ok  # no lab client: the browser's handshakes decide
