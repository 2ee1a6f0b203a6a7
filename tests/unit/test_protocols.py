"""The protocol registry (wire.protocols) and the tables that every layer keys by it."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest

from client import plan
from lab import model
from lab.commands import validate
from lab.scenario import Mode, Scenario, Workload
from lab.spec import Invalid
from server import handlers
from server.core import Listener, Server, ServerConfig
from server.log import Log
from tests.unit.tcp_harness import live_server, run_client
from wire import protocols

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parents[2]
CLIENT = [sys.executable, "-m", "client", "--host", "x", "--port", "1"]


def test_every_protocol_has_a_server_handler_and_a_client_plan() -> None:
    assert {"echo", "http"} <= set(protocols.names())
    assert set(handlers.HANDLERS) == set(protocols.names())
    assert set(plan.PLANS) == set(protocols.names())
    assert protocols.DEFAULT in protocols.names()


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        (p.name, mode)
        for p in protocols.PROTOCOLS.values()
        for mode in ("non-persistent", "persistent")
        # h2 needs TLS and HTTP/2 keep-alive listeners: tests/unit/test_h2_wire.py
        if p.tls != "required" and not (p.persistent_only and mode == "non-persistent")
    ],
)
def test_each_protocols_server_and_client_agree(name: str, mode: str) -> None:
    """The same named workload, served and checked byte for byte, for every registered protocol."""
    with live_server(protocol=name) as (_, log, ports):
        result, _ = run_client(ports[mode], resources="a:100,b:3000", protocol=name, mode=mode)
    assert result.ok, result.first_error
    assert result.summary["protocol"] == name
    assert len(log.events("accepted")) == (2 if mode == "non-persistent" else 1)


def test_an_unknown_protocol_is_one_clear_line() -> None:
    with pytest.raises(protocols.UnknownProtocol) as err:
        protocols.get("h3")
    assert str(err.value) == f"unknown protocol 'h3' (choose from {', '.join(protocols.names())})"
    assert "\n" not in str(err.value)
    with pytest.raises(protocols.UnknownProtocol):
        plan.plan_for("h3", "length", True, "host:1")
    with pytest.raises(protocols.UnknownProtocol):
        Server(
            ServerConfig([Listener(0, "persistent")], options=handlers.ProtocolOptions("h3")),
            Log("quiet"),
        )


@pytest.mark.parametrize("program", ["server", "client"])
def test_the_command_lines_offer_the_registered_protocols(program: str) -> None:
    args = ["--protocol", "h3"] + (
        ["--host", "x", "--port", "1", "--messages", "a"] if program == "client" else []
    )
    proc = subprocess.run(
        [sys.executable, "-m", program, *args], cwd=ROOT, capture_output=True, text=True, timeout=20
    )
    assert proc.returncode == 2
    assert "invalid choice: 'h3' (choose from" in proc.stderr
    assert "echo" in proc.stderr and "http" in proc.stderr


def test_raw_framing_is_refused_where_the_registry_says() -> None:
    proc = subprocess.run(
        [*CLIENT, "--protocol", "http", "--framing", "raw", "--resources", "a:1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert proc.returncode == 2
    assert "--framing raw applies to the echo protocol only" in proc.stderr
    assert protocols.with_framing("raw") == ("echo",)
    assert {"echo", "http"} <= set(protocols.with_framing("length"))


# A protocol the lab has never seen: the scenario rules, the model and the schema text follow it.
BLOB = protocols.Protocol(
    name="blob",
    doc="blob (a test)",
    framings=("length",),
    workloads=("sizes",),
    head_bytes=7,
    handshake_round_trips=1,
)


@pytest.fixture
def with_blob(monkeypatch: pytest.MonkeyPatch) -> protocols.Protocol:
    monkeypatch.setitem(protocols.PROTOCOLS, BLOB.name, BLOB)
    return BLOB


def _scenario(protocol: str, workload: Workload, **kw: object) -> Scenario:
    mode = Mode(name="one", persistent=False)
    return Scenario(name="t", protocol=protocol, workload=workload, modes=(mode,), **kw)


def test_the_scenario_rules_come_from_the_registry(with_blob: protocols.Protocol) -> None:
    s = _scenario("blob", Workload(sizes=(100, 200)))
    assert s.protocol == "blob"
    with pytest.raises(Invalid, match="protocol blob needs sizes"):
        _scenario("blob", Workload(messages=("Luffy",)))
    with pytest.raises(Invalid, match="framing applies to protocol echo only"):
        _scenario("blob", Workload(sizes=(1,)), framing="raw")
    assert protocols.describe().startswith("echo (the article's programs), http")
    assert protocols.describe().endswith(" or blob (a test)")


def test_the_model_charges_what_the_registry_says(with_blob: protocols.Protocol) -> None:
    s = _scenario("blob", Workload(sizes=(100, 200)))
    assert model.response_sizes(s, s.modes[0]) == [107, 207]
    net = dataclasses.replace(s.network, rtt=100.0)
    slow = model.predict_scenario(dataclasses.replace(s, network=net))["one"]
    # two new connections, each: TCP's handshake, the protocol's, the request: 3 round trips
    assert slow.total_s == pytest.approx(2 * 3 * 0.1)


def test_validate_prints_the_framing_only_where_it_is_a_choice(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, framing_line in (("article", True), ("page10", False)):
        validate.run(Namespace(scenario=str(ROOT / "scenarios" / f"{name}.yaml")))
        out = capsys.readouterr().out
        assert ("framing " in out) is framing_line, out
