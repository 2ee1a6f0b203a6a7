"""What the server does once instead of once per connection (see the server benchmark)."""

from __future__ import annotations

import socket
import time

import pytest

from tests.unit.tcp_harness import live_server

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("each_concurrency")]


def test_accepted_sockets_have_nodelay_from_the_listener() -> None:
    # The server sets TCP_NODELAY on its listeners only; each accepted socket must have it
    # (Linux copies it at accept), or every small reply could wait behind Nagle's algorithm.
    with live_server(modes=("persistent",)) as (server, log, ports):
        client = socket.create_connection(("127.0.0.1", ports["persistent"]), timeout=5)
        try:
            log.wait_for("accepted", peer_port=client.getsockname()[1])
            deadline = time.monotonic() + 5
            while not server._active and time.monotonic() < deadline:
                time.sleep(0.01)
            (conn,) = server._active.values()
            assert conn.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        finally:
            client.close()
