"""Client for load runs: `--repeat`, a unique request id and a CRC-32 per response."""

from __future__ import annotations

import json
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from client.plan import Item, numbered, share
from tests.unit.tcp_harness import live_server, run_client
from wire import http

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parents[2]


def test_numbered_repeats_in_order_with_ids_from_one() -> None:
    items = [Item("a", b"a"), Item("b", b"bb")]
    out = numbered(items, 3)
    assert [i.name for i in out] == ["a", "b"] * 3
    assert [i.request_id for i in out] == [1, 2, 3, 4, 5, 6]
    # 1,000 connections sharing 100,000 requests of one resource: 100 each, every id once.
    groups = share(numbered([Item("r", size=10)], 100_000), 1000)
    assert {len(g) for g in groups} == {100}
    assert len({i.request_id for g in groups for i in g}) == 100_000


@pytest.mark.parametrize(
    ("protocol", "mode", "parallel", "connections"),
    [
        pytest.param("http", "persistent", 3, 3, id="http-persistent-3-connections"),
        pytest.param("http", "non-persistent", 4, 12, id="http-non-persistent-4-at-a-time"),
        pytest.param("echo", "persistent", 2, 2, id="echo-persistent-2-connections"),
    ],
)
def test_repeat_logs_every_request_once_with_its_checksum(
    protocol: str, mode: str, parallel: int, connections: int
) -> None:
    what = {"resources": "a:100,b:3000"} if protocol == "http" else {"messages": "Luffy,Zoro"}
    with live_server(protocol=protocol) as (_, log, ports):
        result, stdout = run_client(
            ports[mode], protocol=protocol, mode=mode, parallel=parallel, repeat=6, **what
        )
        assert result.ok, result.first_error
    assert len(log.events("accepted")) == connections
    lines = [json.loads(line) for line in stdout.splitlines()]
    requests = [r for r in lines if r["event"] == "request"]
    assert sorted(r["request_id"] for r in requests) == list(range(1, 13))
    assert len({r["conn"] for r in requests}) == connections
    for r in requests:
        if protocol == "http":
            expected = http.body(r["request"], 100 if r["request"] == "a" else 3000)
        else:
            expected = r["request"].encode()
        assert r["crc32"] == zlib.crc32(expected), r
    assert lines[-1]["requests"] == 12 and lines[-1]["repeat"] == 6


def test_failed_request_has_no_checksum() -> None:
    with live_server() as (_, _, ports):
        port = ports["persistent"]
    result, stdout = run_client(port, messages="Luffy", timeout=1.0)  # server gone: refused
    assert not result.ok
    (request,) = [json.loads(x) for x in stdout.splitlines() if '"request"' in x]
    assert request["crc32"] is None and request["request_id"] == 1


@pytest.mark.parametrize("value", [pytest.param("0", id="zero"), pytest.param("x", id="word")])
def test_repeat_must_be_a_positive_integer(value: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "client", "--host", "127.0.0.1", "--port", "9",
         "--messages", "a", "--repeat", value],
        cwd=ROOT, capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "--repeat" in proc.stderr
