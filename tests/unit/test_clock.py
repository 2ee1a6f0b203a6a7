"""lab.clock: the offset between two captures' clocks and the one-way delays, on hand-built
packets with known delays and on a pair the lab recorded, with the client's clock shifted."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from lab import clock
from lab.capture import read_capture
from lab.frames import Packet
from lab.tcp import ACK, PSH, SYN

DATA = Path(__file__).resolve().parents[1] / "data" / "clock"
PORT = 3001  # the keepalive mode's port in page10


def pkt(ts: float, up: bool, flags: int, seq: int, ack: int = 0, length: int = 0) -> Packet:
    src, sport, dst, dport = ("10.0.0.2", 40000, "10.0.0.1", PORT)
    if not up:
        src, sport, dst, dport = dst, dport, src, sport
    return Packet(ts, src, dst, sport, dport, flags, seq, ack, length, length + 54, 512, 0)


def exchange(offset: float, d_up: list[float], d_down: list[float]):
    """Client and server views of alternating packets: the server's clock reads `offset` more
    than the client's; each packet crosses in its listed one-way delay."""
    at_client, at_server = [], []
    t = 1000.0  # the client's clock
    for i, (up, down) in enumerate(zip(d_up, d_down, strict=True)):
        sent = pkt(t, True, SYN if i == 0 else ACK | PSH, 100 + i, i, 0 if i == 0 else 10)
        at_client.append(sent)
        at_server.append(sent._replace(ts=t + up + offset))
        t += up + 0.001
        reply = pkt(t + offset, False, (SYN | ACK) if i == 0 else ACK, 900 + i, 101 + i)
        at_server.append(reply)
        at_client.append(reply._replace(ts=t + down))
        t += down + 0.001
    return at_server, at_client


def test_the_offset_lies_within_the_bound_the_fastest_packets_give():
    server, client = exchange(0.250, d_up=[0.003, 0.001, 0.002], d_down=[0.004, 0.002, 0.0015])
    est = clock.estimate(server, client, [PORT], resolution_s=0)
    # a = 1 ms + offset, b = 1.5 ms - offset: theta = offset + (1 - 1.5) / 2 ms, bound 1.25 ms
    assert est.offset_ms == pytest.approx(250.0 - 0.25)
    assert est.bound_ms == pytest.approx(1.25)
    assert abs(est.offset_ms - 250.0) <= est.bound_ms
    assert est.matched == 6


def test_symmetric_delays_give_the_exact_offset_and_the_one_way_delays():
    server, client = exchange(-0.0375, d_up=[0.002, 0.005], d_down=[0.002, 0.003])
    est = clock.estimate(server, client, [PORT], resolution_s=0)
    assert est.offset_ms == pytest.approx(-37.5)
    up, down = est.one_way[clock.CLIENT_TO_SERVER], est.one_way[clock.SERVER_TO_CLIENT]
    assert (up.packets, up.min_ms, up.median_ms) == (2, pytest.approx(2.0), pytest.approx(3.5))
    assert (down.min_ms, down.p95_ms) == (pytest.approx(2.0), pytest.approx(3.0))


def test_a_retransmitted_packet_is_not_matched():
    server, client = exchange(0.0, d_up=[0.001, 0.001], d_down=[0.001, 0.001])
    again = client[2]._replace(ts=client[2].ts + 0.2)  # the same segment sent twice
    est = clock.estimate([*server, again._replace(ts=again.ts + 0.001)], [*client, again], [PORT])
    assert est.matched == 3


def test_traffic_in_one_direction_only_cannot_be_placed():
    server, client = exchange(0.0, d_up=[0.001], d_down=[0.001])
    assert clock.estimate(server[:1], client[:1], [PORT]) is None
    assert clock.estimate(server, [], [PORT]) is None


def recorded() -> tuple[list[Packet], list[Packet]]:
    return (
        read_capture(DATA / "keepalive-server.pcap").packets,
        read_capture(DATA / "keepalive-client.pcap").packets,
    )


@pytest.mark.parametrize("shift_s", [0.0, 0.0123, -3.5, 3600.0])
def test_a_recorded_pair_with_the_client_clock_shifted(shift_s):
    """One engine: the true offset is 0, so a client clock shifted by s puts the server's
    clock -s from it; the estimate finds that within its bound, and the bound is tight."""
    server, client = recorded()
    shifted = [p._replace(ts=p.ts + shift_s) for p in client]
    est = clock.estimate(server, shifted, [PORT])
    assert abs(est.offset_ms - (-shift_s * 1000.0)) <= est.bound_ms
    assert est.bound_ms < 0.1  # one machine: tens of microseconds at most
    assert est.matched > 40
    for way in est.one_way.values():
        assert 0 <= way.min_ms <= way.median_ms <= way.p95_ms < 1.0


@pytest.mark.skipif(shutil.which("editcap") is None, reason="editcap (Wireshark) not installed")
def test_a_capture_file_shifted_by_editcap(tmp_path):
    """The shift written into a file by Wireshark's own tool, read back by lab.capture."""
    shifted = tmp_path / "client-shifted.pcap"
    subprocess.run(
        ["editcap", "-t", "-42.5", str(DATA / "keepalive-client.pcap"), str(shifted)], check=True
    )
    server, _ = recorded()
    est = clock.estimate(server, read_capture(shifted).packets, [PORT])
    assert abs(est.offset_ms - 42_500.0) <= est.bound_ms
