"""lab.faults' pure parts: which faults a mode gets, when they are due, the account of a run;
and the server's reset mode on loopback (a RST instead of a FIN)."""

from __future__ import annotations

import json
import socket
import struct

import pytest

from lab import analysis, faults
from lab import scenario as sc
from lab.document import RunResult
from lab.report import fault_rows
from server.core import Listener, ServerConfig, running
from server.handlers import ProtocolOptions
from server.log import Log
from tests.unit.packets import ACK, RST, SYN, Flow

SCENARIO = """
name: f
protocol: echo
workload: {messages: [a, b, c, d]}
modes:
  - {name: np, persistent: false}
  - {name: p, persistent: true}
faults:
  - {action: kill_server, at: {request: 2}}
  - {action: pause_server, at: {time: 1.5}, mode: p, duration: 2}
"""


def test_for_mode_keeps_the_faults_of_that_mode():
    s = sc.parse_scenario(SCENARIO)
    assert faults.for_mode(s.faults, "np") == (faults.FaultPlan("kill_server", request=2),)
    assert faults.for_mode(s.faults, "p") == (
        faults.FaultPlan("kill_server", request=2),
        faults.FaultPlan("pause_server", time=1.5, duration=2.0),
    )


@pytest.mark.parametrize(
    ("plan", "elapsed", "answered", "expected"),
    [
        pytest.param(faults.FaultPlan("kill_server", time=1.0), 0.99, 10, False, id="time-early"),
        pytest.param(faults.FaultPlan("kill_server", time=1.0), 1.0, 0, True, id="time-reached"),
        pytest.param(faults.FaultPlan("kill_server", request=3), 99, 2, False, id="req-early"),
        pytest.param(faults.FaultPlan("kill_server", request=3), 0, 3, True, id="req-reached"),
    ],
)
def test_due(plan, elapsed, answered, expected):
    assert faults.due(plan, elapsed, answered) is expected


def test_trigger_text():
    assert faults.FaultPlan("kill_server", time=2.5).trigger == "at 2.5 s"
    assert faults.FaultPlan("kill_server", request=4).trigger == "after request 4"


def test_answered_counts_echo_messages_and_http_responses_only():
    lines = [
        {"event": "listening", "port": 3000},
        {"event": "accepted", "conn": 1},
        {"event": "message", "conn": 1},
        {"event": "response", "conn": 2, "status": 200},
        {"event": "closed", "conn": 1, "reason": 'a "message" in a reason'},
    ]
    text = "\n".join(json.dumps(x) for x in lines) + '\n{"event": "message", "conn'  # cut line
    assert faults.answered(text) == 2


def _records():
    return [
        {"event": "request", "request": "a", "conn": 1, "ok": True, "error": None},
        {"event": "request", "request": "b", "conn": 2, "ok": False,
         "error": "read timeout (1 s): no response from server:3000"},
        {"event": "request", "request": "c", "conn": 3, "ok": False,
         "error": "connection refused by server:3000"},
        {"event": "request", "request": "d", "conn": 4, "ok": False,
         "error": "connection refused by server:3000"},
    ]  # fmt: skip


def test_account_names_failed_requests_and_groups_how():
    fired = [{"action": "kill_server", "fired": True, "at_s": 1.234}]
    row = {"connections": 4, "syn": 4, "rst": 2, "retransmissions": 1, "unanswered_syn": 0}
    acct = faults.account(fired, _records(), row)
    assert acct["failed"] == 3 and acct["ok"] == 1 and acct["requests"] == 4
    assert [f["request"] for f in acct["failed_requests"]] == ["b", "c", "d"]
    assert acct["failures_by_kind"] == {"timed out": 1, "connection refused": 2}
    assert acct["client_finished"] is False  # no summary line: the client was cut short
    line = faults.summary_line("np", fired, acct)
    assert line == (
        "np: faults kill_server at 1.23 s: 3 of 4 requests failed (2 connection refused, "
        "1 timed out); the client did not finish; capture: 4 connections, 2 RST, "
        "1 retransmissions, 0 unanswered SYN"
    )


def test_summary_line_says_when_a_fault_did_not_fire_or_failed():
    fired = [
        {"action": "kill_capture", "fired": False, "not_fired": "the client finished first"},
        {"action": "pause_server", "fired": False, "error": "container is not running"},
    ]
    acct = faults.account(fired, [{"event": "summary"}], {})
    line = faults.summary_line("p", fired, acct)
    assert "kill_capture (not fired)" in line
    assert "pause_server (could not be injected: container is not running)" in line
    assert "capture:" not in line  # no capture figures to show


def test_unanswered_syn_counts_attempts_without_synack_or_rst():
    packets: list = []
    lost = Flow(packets, client=("10.0.0.2", 40000), server=("10.0.0.3", 3000))
    for t in (0.0, 1.0, 3.0):  # the SYN and two retransmissions, never answered
        lost.send("client", t, SYN, seq=1000)
    refused = Flow(packets, client=("10.0.0.2", 40001), server=("10.0.0.3", 3000))
    refused.send("client", 4.0, SYN).send("server", 4.001, RST | ACK)
    answered = Flow(packets, client=("10.0.0.2", 40002), server=("10.0.0.3", 3000))
    answered.send("client", 5.0, SYN).send("server", 5.001, SYN | ACK)
    answered.send("client", 5.002, ACK)
    parsed = analysis.analyze(packets, server_ports=[3000])
    row = analysis.summarize_mode(parsed, [], server_ports=[3000])
    assert row["connections"] == 3
    assert row["unanswered_syn"] == 1  # the refused one was answered, by a RST
    assert row["rst"] == 1


def test_server_reset_mode_sends_rst_after_the_next_answer():
    log_lines = []

    class Sink:
        def write(self, s):
            log_lines.append(s)

        def flush(self):
            pass

    options = ProtocolOptions(protocol="echo", framing="length")
    config = ServerConfig(listeners=[Listener(0, "persistent")], host="127.0.0.1", options=options)
    with (
        running(config, Log("json", Sink())) as server,
        socket.create_connection(("127.0.0.1", server.ports[0]), timeout=5) as s,
    ):
        s.sendall(struct.pack("!I", 2) + b"hi")
        assert s.recv(6) == struct.pack("!I", 2) + b"hi"  # kept alive: answered normally
        options.resets.set()  # what SIGUSR1 does
        s.sendall(struct.pack("!I", 2) + b"yo")
        got = b""
        with pytest.raises(ConnectionResetError):
            while True:  # the answer may arrive before the RST; then the RST, never a FIN
                data = s.recv(65536)
                assert data, "a FIN instead of a RST"
                got += data
    closed = [json.loads(x) for x in log_lines if '"closed"' in x]
    assert closed and closed[-1]["rst_sent"] is True and closed[-1]["reason"] == "reset mode"


def test_report_lists_disturbed_and_incomplete_modes_only():
    modes = [
        {"name": "a"},
        {"name": "b", "faults": [{"action": "kill_capture"}], "fault_summary": "b: faults ..."},
        {"name": "c", "incomplete": ["the capture (tcpdump) ended during the run (exit 137)"]},
    ]
    _headers, rows = fault_rows(RunResult.from_dict({"modes": modes}))
    assert [r[0] for r in rows] == ["b", "c"]
    assert rows[0][1] == "b: faults ..." and rows[1][2].startswith("the capture")
    assert fault_rows(RunResult.from_dict({"modes": [{"name": "a"}]})) is None
