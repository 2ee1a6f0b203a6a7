"""The shaper sidecar on real containers: the RTT it adds, the loss it causes, the rate it sets,
and that stopping it leaves no rule or qdisc behind.

Two hosts on a private labelled network run small stdlib peers (an echo port and a bulk port);
the sidecars join their network namespaces with NET_ADMIN only (iptables here is the nf_tables
backend, which needs no NET_RAW) and no-new-privileges, as the lab runs them.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import docker
import pytest

from lab import LABELS
from lab.images import ensure_images
from shaper import placement

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

PEERS = r"""
import socket, struct, threading
def echo(c):
    with c:
        while (d := c.recv(65536)):
            c.sendall(d)
def bulk(c):
    with c:
        (n,) = struct.unpack("!Q", c.recv(8, socket.MSG_WAITALL))
        c.sendall(b"\0" * n)
def serve(port, fn):
    s = socket.create_server(("0.0.0.0", port), backlog=64)
    while True:
        c, _ = s.accept()
        threading.Thread(target=fn, args=(c,), daemon=True).start()
threading.Thread(target=serve, args=(3000, echo), daemon=True).start()
print("peers listening", flush=True)
serve(3001, bulk)
"""

CONNECT = r"""
import json, socket, sys, time
host, n = sys.argv[1], int(sys.argv[2])
out = []
for _ in range(n):
    t0 = time.perf_counter()
    s = socket.create_connection((host, 3000), timeout=10)
    out.append((time.perf_counter() - t0) * 1000)
    s.close()
print(json.dumps(out))
"""

DOWNLOAD = r"""
import json, socket, struct, sys, time
host, n = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((host, 3001), timeout=30)
s.settimeout(60)
t0 = time.perf_counter()
s.sendall(struct.pack("!Q", n))
got, buf = 0, bytearray(1 << 20)
while (k := s.recv_into(buf)):
    got += k
print(json.dumps({"bytes": got, "seconds": time.perf_counter() - t0}))
"""


@pytest.fixture(scope="module")
def shaper_image(needs_docker: None) -> str:
    # TCPLAB_SHAPER_IMAGE lets a developer point at a hand-built image; CI builds the lab's own.
    explicit = os.environ.get("TCPLAB_SHAPER_IMAGE")
    if explicit:
        return explicit
    return ensure_images()["shaper"]


@dataclass
class Pair:
    docker: object
    image: str
    labels: dict
    tag: str
    server: object
    client: object
    server_ip: str
    started: list

    def exec_json(self, container, program: str, *args: str) -> object:
        res = container.exec_run(["python3", "-c", program, *args])
        assert res.exit_code == 0, res.output.decode()
        return json.loads(res.output.decode().strip().splitlines()[-1])

    def sidecar(self, host, args: list[str]):
        """Start `python -m shaper ARGS` in `host`'s namespace and wait for its ready line."""
        ctr = self.docker.containers.run(
            self.image,
            args,
            name=f"tcplab-shtest-sh-{self.tag}-{len(self.started)}",
            labels=self.labels,
            detach=True,
            network_mode=f"container:{host.id}",
            cap_drop=["ALL"],
            cap_add=["NET_ADMIN"],
            security_opt=["no-new-privileges"],
        )
        self.started.append(ctr)
        wait_log(ctr, "shaper ready", 30)
        return ctr

    def namespace_state(self, host) -> str:
        """`iptables -S` and `tc qdisc show` as seen inside `host`'s namespace."""
        out = self.docker.containers.run(
            self.image,
            ["-c", "iptables -S && tc qdisc show"],
            entrypoint=["sh"],
            labels=self.labels,
            network_mode=f"container:{host.id}",
            cap_drop=["ALL"],
            cap_add=["NET_ADMIN"],
            security_opt=["no-new-privileges"],
            remove=True,
        )
        return out.decode()


def wait_log(container, text: str, timeout: float) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        logs = container.logs().decode()
        if text in logs:
            return logs
        container.reload()
        if container.status == "exited":
            break
        time.sleep(0.1)
    pytest.fail(f"{container.name}: no {text!r} within {timeout} s: {container.logs().decode()}")


def stop(sidecar) -> tuple[int, str]:
    sidecar.stop(timeout=10)
    sidecar.reload()
    return sidecar.attrs["State"]["ExitCode"], sidecar.logs().decode()


def retrans_segs(container) -> int:
    snmp = container.exec_run(["cat", "/proc/net/snmp"]).output.decode().splitlines()
    names, values = [line.split() for line in snmp if line.startswith("Tcp:")][:2]
    return int(values[names.index("RetransSegs")])


@pytest.fixture
def pair(shaper_image: str) -> Iterator[Pair]:
    c = docker.from_env(timeout=60)
    tag = uuid.uuid4().hex[:8]
    labels = {**LABELS, "tcplab.run": f"shaper-test-{tag}"}
    net = c.networks.create(f"tcplab-shtest-{tag}", driver="bridge", labels=labels)
    started: list = []
    try:
        common = dict(
            labels=labels, detach=True, network=net.name, cap_drop=["ALL"],
            security_opt=["no-new-privileges"], entrypoint=["python3"], mem_limit="256m",
        )  # fmt: skip
        server = c.containers.run(
            shaper_image, ["-c", PEERS], name=f"tcplab-shtest-srv-{tag}", **common
        )
        started.append(server)
        client = c.containers.run(
            shaper_image, ["-c", "import time; time.sleep(600)"],
            name=f"tcplab-shtest-cli-{tag}", **common,
        )  # fmt: skip
        started.append(client)
        wait_log(server, "peers listening", 30)
        server.reload()
        ip = server.attrs["NetworkSettings"]["Networks"][net.name]["IPAddress"]
        yield Pair(c, shaper_image, labels, tag, server, client, ip, started)
    finally:
        for ctr in reversed(started):
            ctr.remove(force=True)
        net.remove()
        left = c.containers.list(all=True, filters={"label": f"tcplab.run=shaper-test-{tag}"})
        c.close()
        assert not left, f"left behind: {[x.name for x in left]}"


def assert_clean(pair: Pair, host) -> None:
    state = pair.namespace_state(host)
    assert "NFQUEUE" not in state, state
    assert not re.search(r"qdisc (tbf|netem)", state), state


@pytest.mark.parametrize(
    "placement_kind",
    [
        pytest.param("split", id="20ms-at-each-end"),
        pytest.param("client", id="40ms-at-the-client"),
    ],
)
def test_rtt_40_gives_a_40ms_handshake_and_cleans_up(pair: Pair, placement_kind: str) -> None:
    base = pair.exec_json(pair.client, CONNECT, pair.server_ip, "5")
    if placement_kind == "split":
        args = placement.sidecar_args(rtt_ms=40, seed=1)
        sidecars = {
            pair.client: pair.sidecar(pair.client, args["client"]),
            pair.server: pair.sidecar(pair.server, args["server"]),
        }
    else:
        sidecars = {pair.client: pair.sidecar(pair.client, ["--rtt", "40"])}
    for sc in sidecars.values():
        assert re.search(r"shaper ready method=(nfqueue|netem) rtt_ms=(20|40) ", sc.logs().decode())
    shaped = pair.exec_json(pair.client, CONNECT, pair.server_ip, "15")
    median = sorted(shaped)[len(shaped) // 2]
    assert 36 <= median <= 44, f"connect median {median:.2f} ms (base {min(base):.2f} ms)"
    for host, sc in sidecars.items():
        code, logs = stop(sc)
        assert code == 0, logs
        assert "shaper stopped" in logs
        assert_clean(pair, host)
    after = pair.exec_json(pair.client, CONNECT, pair.server_ip, "5")
    assert sorted(after)[2] < 10, f"still delayed after the shaper stopped: {after}"


def test_loss_5_causes_retransmissions_and_the_transfer_completes(pair: Pair) -> None:
    before = retrans_segs(pair.server)
    sc = pair.sidecar(pair.client, ["--rtt", "10", "--loss", "5", "--seed", "7"])
    result = pair.exec_json(pair.client, DOWNLOAD, pair.server_ip, str(2 << 20))
    assert result["bytes"] == 2 << 20
    retrans = retrans_segs(pair.server) - before
    code, logs = stop(sc)
    assert code == 0, logs
    dropped = int(re.search(r"dropped=(\d+)", logs).group(1))
    assert dropped > 0, logs
    assert retrans > 0, f"no retransmission by the server with {dropped} segments dropped"
    assert_clean(pair, pair.client)


def test_rate_20mbit_limits_a_download(pair: Pair) -> None:
    sc = pair.sidecar(pair.server, ["--rate", "20mbit"])
    assert "rate=20mbit" in sc.logs().decode()
    result = pair.exec_json(pair.client, DOWNLOAD, pair.server_ip, str(5 << 20))
    mbit = result["bytes"] * 8 / result["seconds"] / 1e6
    assert 14 <= mbit <= 21, f"{mbit:.1f} Mbit/s through a 20mbit tbf"
    code, logs = stop(sc)
    assert code == 0, logs
    assert_clean(pair, pair.server)


def test_bad_arguments_exit_2_before_touching_anything(pair: Pair) -> None:
    out = pair.docker.containers.run(
        pair.image,
        ["--rate", "20"],
        labels=pair.labels,
        network_mode=f"container:{pair.client.id}",
        cap_drop=["ALL"],
        cap_add=["NET_ADMIN"],
        detach=True,
    )
    pair.started.append(out)
    assert out.wait(timeout=30)["StatusCode"] == 2
    assert "rate '20'" in out.logs().decode()
    assert_clean(pair, pair.client)
