"""Fixtures for the loopback server tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from server.core import CONCURRENCY
from tests.unit import tcp_harness


@pytest.fixture(params=CONCURRENCY)
def each_concurrency(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test once per server concurrency model: live_server and `server_argv()` use it."""
    before = tcp_harness.MODEL["concurrency"]
    tcp_harness.MODEL["concurrency"] = request.param
    try:
        yield request.param
    finally:
        tcp_harness.MODEL["concurrency"] = before
