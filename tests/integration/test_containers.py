"""Server, capture sidecar and client as the lab runs them, checked from the packets.

Per mode and protocol: the server on a private labelled network, tcpdump sharing its network
namespace (`network_mode=container:<id>`, NET_RAW + SETUID/SETGID only), and the client, which
verifies every response. The pcap is then read here with dpkt: non-persistent N requests make N
SYNs, N SYN/ACKs and N server FINs (the server closes first); persistent makes one of each. The
capture is stopped right after the client exits, and must still hold the last connection's
final FIN/ACK exchange: without tcpdump's --immediate-mode that tail is lost.
"""

from __future__ import annotations

import io
import json
import socket
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import dpkt
import pytest
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network
from testcontainers.core.wait_strategies import LogMessageWaitStrategy

from tests.integration.conftest import TEST_LABELS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PORT = 3000
# Half a second: long enough for a tcpdump that is briefly off the CPU (0.1 s lost the last
# connection's SYN-ACK and FINs once in CI), and still well inside the 1 s block timeout in which
# a tcpdump without --immediate-mode holds packets back, so the test still catches that.
DRAIN_S = 0.5
HARDENED = {
    "labels": TEST_LABELS,
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges:true"],
}
NAMES = ["Luffy", "Zoro", "Sanji", "Nami", "Robin"]
RESOURCES = {"index.html": 1200, "style.css": 4000, "logo.png": 30000, "app.js": 9000}


@dataclass
class Exchange:
    client_exit: int
    client_log: str
    pcap: bytes


def _pcap_from(container, path: str) -> bytes:
    chunks, _ = container.get_archive(path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        member = tar.getmembers()[0]
        return tar.extractfile(member).read()


def run_exchange(images: dict[str, str], mode: str, protocol: str, what: list[str]) -> Exchange:
    """One server + capture + client run; returns the client's result and the pcap."""
    with Network(docker_network_kw={"labels": TEST_LABELS, "internal": True}) as net:
        server = (
            DockerContainer(images["server"])
            .with_command(
                f"--port {PORT} --mode {mode} --protocol {protocol} --log-format json"
                # http: the server serves the client's list as a page (typed bodies, as the lab
                # passes it), so that the client's Content-Type and body checks agree
                + (f" --page {what[1]}" if protocol == "http" else "")
            )
            .with_network(net)
            .with_network_aliases("server")
            .with_kwargs(**HARDENED, read_only=True)
            .waiting_for(LogMessageWaitStrategy('"event": "listening"'))
        )
        with server:
            sid = server.get_wrapped_container().id
            capture = (
                DockerContainer(images["capture"])
                .with_command(
                    "tcpdump -p --immediate-mode -U -Z root -i eth0 -w /tmp/capture.pcap tcp"
                )
                .with_kwargs(
                    **HARDENED,
                    cap_add=["NET_RAW", "SETUID", "SETGID"],
                    network_mode=f"container:{sid}",
                )
                .waiting_for(LogMessageWaitStrategy("listening on eth0"))
            )
            client_args = [
                *("python3", "-m", "client", "--host", "server", "--port", str(PORT)),
                *("--mode", mode, "--protocol", protocol, "--log-format", "json", *what),
                *("--connect-timeout", "5", "--timeout", "10"),
            ]
            with capture:
                # The client runs by exec in an idle container: its end is known at once,
                # with no container teardown in between that would act as a drain.
                client = (
                    DockerContainer(images["client"])
                    .with_network(net)
                    .with_kwargs(**HARDENED, read_only=True, entrypoint=["sleep", "300"])
                )
                cap = capture.get_wrapped_container()
                with client:
                    result = client.get_wrapped_container().exec_run(client_args, demux=True)
                    # Stop the capture after a short drain: without --immediate-mode the
                    # packets are still in the kernel's ring and never reach the file.
                    time.sleep(DRAIN_S)
                    cap.kill(signal="SIGINT")
                code = result.exit_code
                out, err = (part.decode() if part else "" for part in result.output)
                cap.wait(timeout=20)
                pcap = _pcap_from(cap, "/tmp/capture.pcap")
    return Exchange(code, out + err, pcap)


@dataclass
class Seg:
    ts: float
    src: str
    sport: int
    dport: int
    flags: int
    seq: int
    ack: int
    payload: int


def segments(pcap: bytes) -> list[Seg]:
    out = []
    for ts, buf in dpkt.pcap.Reader(io.BytesIO(pcap)):
        ip = dpkt.ethernet.Ethernet(buf).data
        if not isinstance(ip, dpkt.ip.IP) or not isinstance(ip.data, dpkt.tcp.TCP):
            continue
        t = ip.data
        out.append(
            Seg(ts, socket.inet_ntoa(ip.src), t.sport, t.dport, t.flags, t.seq, t.ack, len(t.data))
        )
    return out


def streams(segs: list[Seg]) -> dict[int, list[Seg]]:
    """Segments per connection, keyed by the client's port (one client host here)."""
    by: dict[int, list[Seg]] = {}
    for s in segs:
        by.setdefault(s.sport if s.dport == PORT else s.dport, []).append(s)
    return by


CASES = [
    pytest.param((mode, protocol), id=f"{mode}-{protocol}")
    for mode in ("non-persistent", "persistent")
    for protocol in ("echo", "http")
]


@pytest.fixture(scope="module", params=CASES)
def exchange(request, lab_images) -> Iterator[tuple[str, str, int, Exchange]]:
    mode, protocol = request.param
    if protocol == "echo":
        what, n = ["--messages", ",".join(NAMES)], len(NAMES)
    else:
        resources = ",".join(f"{k}:{v}" for k, v in RESOURCES.items())
        what, n = ["--resources", resources], len(RESOURCES)
    yield mode, protocol, n, run_exchange(lab_images, mode, protocol, what)


def test_client_verified_every_response(exchange):
    _, _, n, ex = exchange
    assert ex.client_exit == 0, ex.client_log
    events = [json.loads(line) for line in ex.client_log.splitlines() if line.startswith("{")]
    requests = [e for e in events if e.get("event") == "request"]
    assert len(requests) == n
    assert all(r["ok"] for r in requests), requests


def test_handshakes_and_server_fins_match_the_mode(exchange):
    mode, _, n, ex = exchange
    segs = segments(ex.pcap)
    syn = [s for s in segs if s.flags & dpkt.tcp.TH_SYN and not s.flags & dpkt.tcp.TH_ACK]
    syn_ack = [s for s in segs if s.flags & dpkt.tcp.TH_SYN and s.flags & dpkt.tcp.TH_ACK]
    server_fin = [s for s in segs if s.flags & dpkt.tcp.TH_FIN and s.sport == PORT]
    want = n if mode == "non-persistent" else 1
    assert (len(syn), len(syn_ack), len(server_fin)) == (want, want, want)
    assert all(s.dport == PORT for s in syn)
    if mode == "non-persistent":
        # HTTP/1.0 semantics and the article's echo: the server sends the first FIN.
        for conn in streams(segs).values():
            first_fin = next(s for s in conn if s.flags & dpkt.tcp.TH_FIN)
            assert first_fin.sport == PORT


def test_capture_holds_the_last_connections_teardown(exchange):
    _, _, _, ex = exchange
    segs = segments(ex.pcap)
    last = max(streams(segs).values(), key=lambda conn: conn[0].ts)
    fins = [s for s in last if s.flags & dpkt.tcp.TH_FIN]
    assert {s.sport == PORT for s in fins} == {True, False}, "a FIN from each side"
    second = max(fins, key=lambda s: s.ts)
    # The ACK of the second FIN is the connection's last packet on the wire.
    final_ack = [
        s
        for s in last
        if s.ts >= second.ts
        and s.sport != second.sport
        and s.flags & dpkt.tcp.TH_ACK
        and s.ack == (second.seq + second.payload + 1) & 0xFFFFFFFF
    ]
    assert final_ack, "the final ACK of the last connection is missing from the capture"
