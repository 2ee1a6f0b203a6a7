"""A mode's own `protocol:` (h2, h2c in an http scenario): the rules, the containers' argv and
the model's multiplexing."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab import model
from lab.argv import client_argv, server_argv
from lab.errors import UsageError
from lab.scenario import load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[2]
PAGE = """
name: x
protocol: http
workload:
  resources: [{name: index.html, kind: html, size: 14k}, {name: a.js, kind: js, size: 90k}]
network: {rtt: 50, rate: 20mbit}
modes:
"""


def scenario(*modes: str):
    return parse_scenario(PAGE + "".join(f"  - {m}\n" for m in modes))


def error(*modes: str) -> str:
    with pytest.raises(UsageError) as err:
        scenario(*modes)
    return str(err.value)


def test_an_h2_mode_in_an_http_scenario_gets_its_own_servers_protocol():
    sc = scenario(
        "{name: ka, persistent: true, tls: '1.3'}",
        "{name: h2, persistent: true, tls: '1.3', protocol: h2}",
        "{name: h2c, persistent: true, protocol: h2c}",
    )
    ka, h2, h2c = sc.modes
    assert sc.protocol_of(ka) == "http" and sc.protocol_of(h2) == "h2"
    server, client = server_argv(sc, h2), client_argv(sc, h2, "server")
    assert server[server.index("--protocol") + 1] == "h2" and "--tls" in server
    assert any(a.startswith("--page=index.html") for a in server)
    assert client[client.index("--protocol") + 1] == "h2"
    assert client[client.index("--tls") + 1] == "1.3"
    c = client_argv(sc, h2c, "server")
    assert c[c.index("--protocol") + 1] == "h2c" and "--tls" not in c
    with pytest.raises(ValueError, match="different protocols"):
        server_argv(sc, (ka, h2))
    assert [model.multiplexed(sc, m) for m in sc.modes] == [False, True, True]
    assert model.pipelined(sc, h2)
    assert model.response_sizes(sc, h2) == [14 * 1024 + 80, 90 * 1024 + 80]
    assert model.response_sizes(sc, ka) == [14 * 1024 + 150, 90 * 1024 + 150]


@pytest.mark.parametrize(
    ("mode", "needle"),
    [
        ("{name: a, persistent: true, protocol: h2}", "protocol: h2 is HTTP/2 over TLS"),
        (
            "{name: a, persistent: true, protocol: h2c, tls: '1.3'}",
            "tls needs protocol: http or h2",
        ),
        ("{name: a, persistent: false, tls: '1.3', protocol: h2}", "h2 needs persistent: true"),
        ("{name: a, persistent: true, parallel: 6, protocol: h2c}", "multiplexes the page"),
        ("{name: a, persistent: true, pipeline: true, protocol: h2c}", "every request at once"),
        ("{name: a, persistent: true, protocol: echo}", "protocol echo needs messages or sizes"),
        ("{name: a, persistent: true, protocol: h3}", "must be one of echo, http, h2, h2c"),
    ],
)
def test_bad_h2_modes_are_one_line(mode, needle):
    message = error(mode)
    assert needle in message and "\n" not in message


def test_page10_tls_has_the_h2_mode_and_its_prediction():
    sc = load_scenario(ROOT / "scenarios" / "page10-tls.yaml")
    h2 = sc.mode("h2-tls13")
    assert sc.protocol_of(h2) == "h2" and sc.tls_of(h2) == "1.3"
    predictions = model.predict_scenario(sc)
    p = predictions["h2-tls13"]
    assert p.connections == 1 and p.tls_full == 1
    # one connection: one TCP and one TLS 1.3 round trip, then the page in one go, which
    # beats every HTTP/1.1 mode on one connection (each request waits for the one before)
    assert p.total_s < predictions["keepalive-tls13"].total_s
