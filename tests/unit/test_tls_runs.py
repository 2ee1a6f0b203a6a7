"""TLS in a run's plan and document (issue 13): the scenario's tls/resume reach the command
lines and the containers' environment, analysis.json types what lab.tls reads, and the claims
and the report use it. Pure: no container starts here."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from lab import claims, hosts, tls, tlsca
from lab.argv import client_argv, server_argv
from lab.cli import main as lab_main
from lab.costs import measure
from lab.document import ConnectionResult, ModeResult, RunResult, TlsModeResult
from lab.errors import UsageError
from lab.report.render import tls_keylog_text, tls_rows
from lab.results import _tls_row, plans
from lab.scenario import dump_yaml, load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[2]
PAGE10_TLS = ROOT / "scenarios" / "page10-tls.yaml"
TLS_DATA = ROOT / "tests" / "data" / "tls"

BASE = """\
name: t
protocol: http
workload:
  resources:
    - {name: index.html, kind: html, size: 14k}
modes:
"""


@pytest.fixture(scope="module")
def authority() -> tlsca.Authority:
    return tlsca.make_authority(key="ec")


def test_tls_version_may_be_written_unquoted_and_resume_follows_the_scenario():
    s = parse_scenario(
        BASE + "  - {name: a, persistent: true, tls: 1.3}\n"
        "  - {name: b, persistent: true, tls: '1.2', resume: false}\n"
        "  - {name: c, persistent: false}\ntls: 1.2\nresume: true\n"
    )
    a, b, c = s.modes
    assert (s.tls_of(a), s.resume_of(a)) == ("1.3", True)
    assert (s.tls_of(b), s.resume_of(b)) == ("1.2", False)
    assert (s.tls_of(c), s.resume_of(c)) == ("1.2", True)
    again = parse_scenario(dump_yaml(s))
    assert again == s


def test_plain_scenarios_stay_plain():
    s = load_scenario(ROOT / "scenarios" / "page10-wan.yaml")
    assert all(s.tls_of(m) is None and not s.resume_of(m) for m in s.modes)
    assert "--tls" not in server_argv(s, s.modes[0])
    assert "--tls" not in client_argv(s, s.modes[0], "server")


def test_command_lines_carry_tls_and_resume():
    s = load_scenario(PAGE10_TLS)
    first, resume = s.mode("http1.0-tls12"), s.mode("keepalive-6-tls13-resume")
    argv = server_argv(s, first)
    assert argv[argv.index("--tls") + 1] == "1.2"
    argv = server_argv(s, resume)
    assert argv[argv.index("--tls") + 1] == "1.3"
    argv = client_argv(s, resume, "server")
    assert argv[argv.index("--tls") + 1] == "1.3" and "--resume" in argv
    assert "--resume" not in client_argv(s, first, "server")
    with pytest.raises(ValueError, match="different TLS"):
        server_argv(s, s.modes)


def test_tls_on_the_event_loop_server_reaches_its_command_line():
    s = parse_scenario(
        BASE + "  - {name: a, persistent: true, tls: 1.3, server: {concurrency: epoll, loops: 2}}\n"
    )
    argv = server_argv(s, s.modes[0])
    assert argv[argv.index("--tls") + 1] == "1.3"
    assert argv[argv.index("--concurrency") + 1] == "epoll" and "--loops" in argv


def test_validate_says_tls(capsys):
    assert lab_main(["validate", str(PAGE10_TLS)]) == 0
    out = capsys.readouterr().out
    assert "mode keepalive-tls12: persistent, 1 at a time, TLS 1.2, server threads" in out
    assert "6 at a time, TLS 1.3 with resumption" in out


def test_plans_give_the_server_its_key_and_the_client_the_ca_only(authority, tmp_path):
    s = load_scenario(PAGE10_TLS)
    with pytest.raises(ValueError, match="authority"):
        plans(s, s.modes, tmp_path)
    for plan in plans(s, s.modes, tmp_path, authority):
        assert plan.tls
        assert set(plan.server_env) == {tlsca.CERT_ENV, tlsca.KEY_ENV}
        assert set(plan.client_env) == {tlsca.CA_ENV}
        assert "PRIVATE KEY" not in plan.client_env[tlsca.CA_ENV]
        assert "PRIVATE KEY" not in repr(plan)  # the PEMs stay out of a plan's repr
    plain = load_scenario(ROOT / "scenarios" / "page10.yaml")
    assert all(not p.tls and not p.server_env for p in plans(plain, plain.modes, tmp_path))


def test_a_browser_mode_over_tls_loads_https_trusting_the_servers_pin(authority, tmp_path):
    s = parse_scenario(
        BASE + "  - {name: b, client: browser, persistent: true, tls: 1.3, protocol: h2}\n"
    )
    (plan,) = plans(s, s.modes, tmp_path, authority)
    assert plan.tls and plan.client == "browser"
    assert set(plan.server_env) == {tlsca.CERT_ENV, tlsca.KEY_ENV}
    assert plan.client_env == {}  # no CA for Chromium (NSS): it trusts the key's pin
    argv = plan.client_argv
    assert argv[argv.index("--url") + 1] == "https://server:3000/index.html"
    assert argv[argv.index("--spki-pin") + 1] == authority.server_spki_pin()
    assert len(base64.b64decode(authority.server_spki_pin())) == 32  # a SHA-256
    assert authority.server_spki_pin() != tlsca.make_authority(key="ec").server_spki_pin()
    plain = parse_scenario(BASE + "  - {name: b, client: browser, persistent: true}\n")
    (plan,) = plans(plain, plain.modes, tmp_path)
    assert "--spki-pin" not in plan.client_argv and "http://server:" in plan.client_argv[1]


@pytest.mark.parametrize(
    ("mode", "says"),
    [
        ("{name: b, client: browser, persistent: true, protocol: h2c}", "it has no h2c"),
        ("{name: b, client: browser, persistent: true, tls: 1.3, resume: true}",
         "the browser resumes sessions as it likes"),
    ],
)  # fmt: skip
def test_what_a_browser_mode_cannot_do(mode, says):
    with pytest.raises(UsageError, match=says):
        parse_scenario(BASE + f"  - {mode}\n")


def test_container_specs_take_the_environment():
    common = {"image": "i", "run_id": "r", "mode": "m", "command": [], "limits": hosts.Limits()}
    assert hosts.server_spec(network="n", environment={"A": "1"}, **common)["environment"] == {
        "A": "1"
    }
    assert "environment" not in hosts.server_spec(network="n", **common)
    assert hosts.client_spec(network="n", environment={"B": "2"}, **common)["environment"] == {
        "B": "2"
    }
    assert "environment" not in hosts.client_spec(network="n", **common)


def _row_from(name: str) -> ModeResult:
    """A ModeResult with the TLS of a recorded capture, as lab.results makes it."""
    from lab import analysis, capture

    pcap = TLS_DATA / f"{name}.pcap"
    packets = capture.read_capture(pcap)
    row = ModeResult.from_dict(analysis.summarize_mode(analysis.analyze(packets), []))
    row.name = name
    _tls_row(row, pcap, packets, ())
    return row


def test_analysis_types_every_tls_key_and_reads_back():
    row = _row_from("tls13-resume")
    assert row.tls is not None and row.tls.extra == {}
    assert row.tls.resumed >= 1 and row.tls.round_trips_full == [1]
    for conn in row.per_connection:
        assert conn.tls is not None and conn.tls.extra == {}
        # the first request of a TLS connection is its first application data
        assert conn.t_first_client_byte == conn.tls.times["first_data_client"]
        assert conn.t_first_client_byte > conn.tls.times["client_hello"]
    again = ModeResult.from_dict(row.to_dict())
    assert again == row and again.to_dict() == row.to_dict()
    plain = ConnectionResult.from_dict({"stream": 0})
    assert "tls" not in plain.to_dict()


def _run(*rows: ModeResult, scenario: dict | None = None) -> RunResult:
    return RunResult(scenario=scenario or {}, modes={r.name: r for r in rows})


def test_the_tls_claims_from_the_recordings():
    tls12, tls13 = _row_from("tls12"), _row_from("tls13")
    resumed = _row_from("tls13-resume")
    scenario = {"modes": [{"name": "tls13-resume", "resume": True}]}
    found = {c.id: c for c in claims.check_claims(_run(tls12, tls13, resumed, scenario=scenario))}
    assert found["tls13-round-trip"].holds is True
    assert found["tls13-round-trip"].mode == "tls13"
    assert found["tls-resumption"].holds is True and found["tls-resumption"].mode == "tls13-resume"
    # no TLS 1.2 mode: no comparison; no mode asked to resume: no resumption claim
    ids = {c.id for c in claims.check_claims(_run(tls13, resumed))}
    assert "tls13-round-trip" not in ids and "tls-resumption" not in ids


def test_the_report_shows_the_handshakes_and_the_key_log():
    row = _row_from("tls12")
    row.tls.keylog = "m/tls-keys.log"
    headers, rows = tls_rows(_run(row))
    table = {r[0]: r[1] for r in rows}
    assert headers == ["", "tls12"]
    assert table["round trips after TCP's, full"] == "2"
    assert table["key log"] == "m/tls-keys.log"
    text = tls_keylog_text(["m/tls-keys.log"])
    assert "(Pre)-Master-Secret log filename" in text and "tls.keylog_file:" in text
    assert tls_rows(_run(ModeResult(name="plain"))) is None


def test_a_keep_alive_mode_that_resumes_opens_one_connection_at_first():
    # connection 0 opens at 0, the others after its first response (1 s later): their setup is
    # SYN to first request less the handshake, not a stagger of a second
    conns = [
        ConnectionResult(stream=i, client_port=100 + i, t_syn=t, t_first_client_byte=t + 0.2)
        for i, t in enumerate((0.0, 1.0, 1.001, 1.002))
    ]
    got = measure(
        [], conns, persistent=True, parallel=1, model_rtt_s=0.1, model_handshake_s=0.2
    ).costs
    assert got.stagger_s == 0.0 and got.setup_s == pytest.approx(0.0, abs=1e-9)
    assert TlsModeResult.from_dict(tls.summarize([])).connections == 0


def test_the_waterfall_draws_the_tls_handshake_apart_from_tcps():
    pytest.importorskip("matplotlib")
    from lab.charts import ConnPhases, WaterfallMode, waterfall

    # TCP 0-50 ms, TLS flights 50-150 ms (an exchange the analysis saw), the request at 150 ms
    exchanges = [(0.05, 0.1, 0.1), (0.15, 0.2, 0.3)]
    tls_conn = ConnPhases("#0", 0.0, 0.05, exchanges, 0.3, 0.35, tls_done=0.15)
    phases = [(p, round(a, 3), round(b, 3)) for p, a, b in tls_conn.bars()]
    assert phases == [
        ("handshake", 0.0, 0.05),
        ("tls", 0.05, 0.15),
        ("waiting", 0.15, 0.2),
        ("receiving", 0.2, 0.3),
        ("teardown", 0.3, 0.35),
    ]
    plain = ConnPhases("#0", 0.0, 0.05, exchanges, 0.3, 0.35)
    assert "tls" not in {p for p, _, _ in plain.bars()}

    def legend(conn):
        fig = waterfall([WaterfallMode("m", [conn], 1)])
        return [t.get_text() for t in fig.legends[0].get_texts()]

    assert any(text.startswith("TLS handshake") for text in legend(tls_conn))
    assert not any(text.startswith("TLS") for text in legend(plain))
