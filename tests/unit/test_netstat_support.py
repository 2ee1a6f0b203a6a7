"""tests.support.netstat: the kernel's reset counters, read as the load test reads them."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.support import netstat

SAMPLE = """TcpExt: SyncookiesSent TCPAbortOnData TCPAbortOnClose TCPAbortOnMemory
TcpExt: 0 3 2 0
IpExt: InNoRoutes InOctets
IpExt: 0 1234
Tcp: RtoAlgorithm MaxConn OutRsts
Tcp: 1 -1 7
"""


def test_reads_names_and_values_pairwise():
    found = netstat.counters(SAMPLE)
    assert found["TCPAbortOnClose"] == 2 and found["InOctets"] == 1234
    assert found["MaxConn"] == -1 and found["OutRsts"] == 7


def test_resets_keeps_the_counters_that_are_not_zero():
    assert netstat.resets(SAMPLE) == {"OutRsts": 7, "TCPAbortOnData": 3, "TCPAbortOnClose": 2}


def test_names_and_values_out_of_step_are_refused():
    with pytest.raises(ValueError):
        netstat.counters("TcpExt: A B\nIpExt: 1 2\n")


PROC = (Path("/proc/net/netstat"), Path("/proc/net/snmp"))


@pytest.mark.skipif(not all(p.exists() for p in PROC), reason="needs Linux's /proc/net")
def test_a_close_with_unread_data_is_counted_as_abort_on_close():
    """The counter the load test reads moves when the kernel resets for that reason."""

    def read() -> dict[str, int]:
        return netstat.counters("".join(p.read_text() for p in PROC))

    before = read()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
        client.sendall(b"never read")
        client.close()
        server.recv(1, socket.MSG_PEEK)  # the bytes are in the server's receive buffer
        server.close()  # unread data: RST instead of FIN
    after = read()
    assert after["TCPAbortOnClose"] >= before["TCPAbortOnClose"] + 1
    assert after["OutRsts"] >= before["OutRsts"] + 1
