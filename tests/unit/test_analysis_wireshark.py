"""Captures from elsewhere, counted as Wireshark counts them (issue 11 points 6 and 7).

Each test is one defect found by comparing with tshark 4.0 on public captures: sequence
numbers past 4 GiB or below the first one seen, IP lengths longer than the frame, data on a
SYN, bogus data offsets, packets with several control flags, tunnels and link types, and the
segments Wireshark tells apart from retransmissions.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import pytest

from lab.analysis import analyze, analyze_connection, split_streams
from lab.capture import Packet, parse_capture
from lab.tcp import SEQ_MASK, URG
from tests.unit.packets import ACK, FIN, PSH, RST, SYN, Flow, frame_bytes, ip_bytes, pcap_bytes

GIB = 1 << 30
BIG = 1 << 20  # a "segment" of 1 MiB: records need no bytes, and 4 GiB takes 4,000 of them


def one(packets):
    streams = split_streams(packets)
    assert len(streams) == 1
    return analyze_connection(0, streams[0])


def raw_pcap(linktype: int, frames: list[bytes], wire_lens: list[int] | None = None) -> bytes:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)]
    for i, data in enumerate(frames):
        wire = wire_lens[i] if wire_lens else len(data)
        out.append(struct.pack("<IIII", 1000 + i, 0, len(data), wire) + data)
    return b"".join(out)


def handshake_then_bulk(total: int, segment: int = BIG, isn: int = 5000) -> list[Packet]:
    """A server sending `total` bytes in `segment`-sized records, the client acknowledging
    every second one (a delayed ACK), so the ACK clock makes a new round each time."""
    packets: list[Packet] = []
    flow = Flow(packets, server_isn=isn)
    flow.handshake(0.0)
    flow.send("client", 0.011, PSH | ACK, 100)
    t = 0.02
    for i in range(total // segment):
        flow.send("server", t, ACK, segment)
        if i % 2:
            flow.send("client", t + 0.0001, ACK)
        t += 0.0002
    return packets


# --- Sequence numbers modulo 2**32 ---------------------------------------------------------


def test_more_than_4_gib_in_one_direction_is_not_retransmitted():
    c = one(handshake_then_bulk(4 * GIB + 64 * BIG))
    assert c.retransmissions == [0, 0]
    assert c.out_of_order == [0, 0] and c.spurious_retransmission == [0, 0]
    assert c.data_segments[1] == 4096 + 64
    assert c.payload_bytes[1] == 4 * GIB + 64 * BIG


def test_flights_are_found_past_2_gib():
    c = one(handshake_then_bulk(3 * GIB))
    late = [f for f in c.flights if f.start > 0.02 + 0.0002 * (2 * GIB // BIG)]
    assert len(late) > 500  # a round per client ACK, as before 2 GiB
    assert [f.round for f in c.flights[:4]] == [0, 1, 2, 3]


def test_sequence_numbers_wrapping_in_the_middle_are_not_retransmissions():
    c = one(handshake_then_bulk(64 * BIG, isn=SEQ_MASK - 5 * BIG))
    assert c.retransmissions == [0, 0] and len(c.flights) == 32


def test_capture_starting_mid_connection_below_its_first_segment():
    """The first segment seen is not the lowest: the one before it is one late segment, not
    a reason to call everything after it a retransmission."""
    packets: list[Packet] = []
    flow = Flow(packets, server_isn=5000)
    for i, n in enumerate([1, 0, 2, 3, 4, 5]):
        flow.send("server", 10.0 + i * 0.01, ACK, 1000, seq=5001 + n * 1000)
        flow.send("client", 10.0 + i * 0.01 + 0.001, ACK)
    c = one(packets)
    behind = c.retransmissions[1] + c.out_of_order[1] + c.spurious_retransmission[1]
    assert behind == 1
    assert c.data_segments[1] == 6


# --- Lengths ----------------------------------------------------------------------------------


def test_ip_length_longer_than_the_frame_on_the_wire_is_cut_to_the_wire():
    p = Packet(1.0, "10.0.0.2", "10.0.0.3", 40000, 80, PSH | ACK, 1, 1, 100, 154, 500, 1)
    frame = bytearray(frame_bytes(p))
    struct.pack_into("!H", frame, 16, 1500)  # the IP header claims 1,500 bytes
    for link in (1, 101):  # the fast path (Ethernet) and the general decoder (raw IP)
        data = bytes(frame) if link == 1 else bytes(frame[14:])
        capture = parse_capture(raw_pcap(link, [data]))
        assert capture.packets[0].payload_len == 100


def test_snap_length_still_counts_bytes_from_the_ip_header():
    p = Packet(1.0, "10.0.0.2", "10.0.0.3", 40000, 80, PSH | ACK, 1, 1, 1000, 1054, 500, 1)
    capture = parse_capture(pcap_bytes([p], snap=96))
    assert capture.packets[0].payload_len == 1000


def test_data_offset_below_5_is_not_a_tcp_header():
    p = Packet(1.0, "10.0.0.2", "10.0.0.3", 40000, 80, ACK, 1, 1, 10, 64, 500, 1)
    frame = bytearray(frame_bytes(p))
    frame[14 + 20 + 12] = 0x40  # data offset 4
    capture = parse_capture(raw_pcap(1, [bytes(frame)]))
    assert capture.packets == [] and capture.skipped == 1


# --- Flags ------------------------------------------------------------------------------------


def test_data_on_a_syn_counts_and_its_retransmission_is_found():
    """TCP Fast Open: the SYN carries 100 bytes; the server accepts only the SYN, so the
    client sends the bytes again after the handshake."""
    packets: list[Packet] = []
    flow = Flow(packets, client_isn=1000)
    flow.send("client", 0.0, SYN, 100)
    flow.next["client"] = 1001  # the server acknowledged the SYN alone
    flow.send("server", 0.005, SYN | ACK)
    flow.send("client", 0.010, ACK)
    flow.send("client", 0.011, PSH | ACK, 100)
    c = one(packets)
    assert c.data_segments[0] == 2 and c.payload_bytes[0] == 200
    assert c.retransmissions[0] == 1


def test_syn_fin_counts_as_both_and_every_flag_as_every_flag():
    packets: list[Packet] = []
    Flow(packets).send("client", 0.0, SYN | FIN)
    Flow(packets, client=("10.0.0.2", 40001)).send("client", 1.0, SYN | FIN | RST | PSH | ACK | URG)
    totals = analyze(packets)
    assert (totals.syn, totals.fin, totals.rst) == (1, 2, 1)
    assert totals.synack == 1  # the all-flags packet has ACK too


# --- Retransmissions and their look-alikes ----------------------------------------------------


def test_keep_alives_and_zero_window_probes_are_not_retransmissions():
    packets: list[Packet] = []
    flow = Flow(packets)
    flow.handshake(0.0)
    flow.exchange(0.011, 100, 1000)
    # keep-alives: one byte below the next seq, empty or with one byte
    flow.send("client", 10.0, ACK, 0, seq=flow.next["client"] - 1)
    flow.send("server", 10.001, ACK)
    flow.send("client", 20.0, ACK, 1, seq=flow.next["client"] - 1)
    # the server's window closes; the client probes it with one byte
    flow.send("server", 20.001, ACK)
    packets[-1] = packets[-1]._replace(window=0)
    flow.send("client", 21.0, ACK, 1)
    c = one(packets)
    assert c.keep_alive == [2, 0] and c.zero_window_probe == [1, 0]
    assert c.retransmissions == [0, 0]


def test_out_of_order_spurious_and_fast_retransmissions_are_told_apart():
    packets: list[Packet] = []
    flow = Flow(packets, server_isn=5000)
    flow.handshake(0.0, rtt=0.010)
    flow.send("client", 0.011, PSH | ACK, 100)
    s = 5001
    flow.send("server", 0.020, ACK, 1000, seq=s + 1000)  # the first segment comes later
    flow.send("server", 0.0201, ACK, 1000, seq=s)  # out of order: within an RTT
    flow.send("client", 0.030, ACK)  # everything acknowledged
    flow.send("server", 0.5, ACK, 1000, seq=s)  # spurious: already acknowledged
    # a loss: three duplicate ACKs, then the fast retransmission
    flow.send("server", 0.6, ACK, 1000, seq=s + 2000)
    flow.send("server", 0.6001, ACK, 1000, seq=s + 3000)
    flow.send("server", 0.6002, ACK, 1000, seq=s + 4000)
    for i in range(3):
        flow.send("client", 0.605 + i * 0.0001, ACK)  # acknowledges s + 2000, not past it
        packets[-1] = packets[-1]._replace(ack=s + 2000)
    flow.send("server", 0.6055, ACK, 1000, seq=s + 2000)
    flow.send("server", 2.0, ACK, 1000, seq=s + 3000)  # a timeout's retransmission
    c = one(packets)
    assert c.out_of_order == [0, 1]
    assert c.spurious_retransmission == [0, 1]
    assert c.fast_retransmission == [0, 1]
    assert c.retransmissions == [0, 2]  # the fast one and the timeout's


# --- Link types and tunnels -------------------------------------------------------------------


def _segment() -> Packet:
    return Packet(1.0, "10.0.0.2", "10.0.0.3", 40000, 80, SYN, 1, 0, 0, 58, 500, 1, 1460)


def _ethernet(payload: bytes, etype: int = 0x0800) -> bytes:
    return bytes(6) + b"\x02" + bytes(5) + struct.pack("!H", etype) + payload


def _ipv4(proto: int, payload: bytes) -> bytes:
    header = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(payload), 0, 0, 64, proto, 0)
    return header + bytes([192, 168, 0, 1, 192, 168, 0, 2]) + payload


def _udp(dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", 50000, dport, 8 + len(payload), 0) + payload


SEGMENT = ip_bytes(_segment())
VXLAN = b"\x08\x00\x00\x00\x00\x00\x01\x00"  # flags (VNI valid), VNI 1
GENEVE = b"\x00\x00\x08\x00\x00\x00\x01\x00"  # no options, protocol IPv4, VNI 1
SNAP_IPV4 = b"\xaa\xaa\x03\x00\x00\x00\x08\x00"
TUNNELS = {
    "vxlan": _ethernet(_ipv4(17, _udp(4789, VXLAN + _ethernet(SEGMENT)))),
    "geneve": _ethernet(_ipv4(17, _udp(6081, GENEVE + SEGMENT))),
    "gre": _ethernet(_ipv4(47, b"\x00\x00\x08\x00" + SEGMENT)),
    "gre-key-ethernet": _ethernet(_ipv4(47, b"\x20\x00\x65\x58" + bytes(4) + _ethernet(SEGMENT))),
    "ip-in-ip": _ethernet(_ipv4(4, SEGMENT)),
    "mpls": _ethernet(b"\x00\x01\x00\x40\x00\x02\x01\x40" + SEGMENT, 0x8847),
    "pppoe": _ethernet(b"\x11\x00\x00\x01\x00\x00\x00\x21" + SEGMENT, 0x8864),
    "llc-snap": bytes(12) + struct.pack("!H", 70) + SNAP_IPV4 + SEGMENT,
    "vlan-gre": bytes(12) + b"\x81\x00\x00\x05\x08\x00" + _ipv4(47, b"\x00\x00\x08\x00" + SEGMENT),
}


@pytest.mark.parametrize("name", sorted(TUNNELS))
def test_tunnels_are_opened(name):
    capture = parse_capture(raw_pcap(1, [TUNNELS[name]]))
    assert len(capture.packets) == 1, capture
    p = capture.packets[0]
    assert (p.src, p.dst, p.sport, p.dport, p.flags, p.mss) == (
        "10.0.0.2", "10.0.0.3", 40000, 80, SYN, 1460,
    )  # fmt: skip
    assert capture.warnings == []


def _nflog(ip: bytes) -> bytes:
    prefix = b"\x0c\x00\x0a\x00" + b"test\x00\x00\x00\x00"  # NFULA_PREFIX
    payload = struct.pack("<HH", 4 + len(ip), 9) + ip + bytes(-len(ip) % 4)
    return b"\x02\x00\x00\x00" + prefix + payload


@pytest.mark.parametrize(
    "link,frame",
    [
        (239, _nflog(ip_bytes(_segment()))),  # NFLOG
        (242, b"\x08\x00\x00\x00" + ip_bytes(_segment())),  # IP over InfiniBand
        (9, b"\xff\x03\x00\x21" + ip_bytes(_segment())),  # PPP in HDLC framing
        (104, b"\x0f\x00\x08\x00" + ip_bytes(_segment())),  # Cisco HDLC
    ],
    ids=["nflog", "ipoib", "ppp", "c-hdlc"],
)
def test_link_types_are_decoded(link, frame):
    capture = parse_capture(raw_pcap(link, [frame]))
    assert len(capture.packets) == 1 and capture.packets[0].sport == 40000


def test_undecoded_link_types_and_encapsulations_are_named(tmp_path):
    capture = parse_capture(raw_pcap(105, [b"\x00" * 60] * 3))
    assert capture.warnings == ["link type 105 (IEEE 802.11) is not decoded: 3 frames"]
    macsec = _ethernet(b"\x2c\x00" + bytes(60), 0x88E5)
    assert parse_capture(raw_pcap(1, [macsec])).warnings == [
        "MACsec (encrypted) is not decoded: 1 frame"
    ]
    path = tmp_path / "wifi.pcap"
    path.write_bytes(raw_pcap(105, [b"\x00" * 60]))
    out = subprocess.run(
        [sys.executable, "-m", "lab", "analyze", str(path), "--json"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert json.loads(out.stdout)["warnings"] == [
        "link type 105 (IEEE 802.11) is not decoded: 1 frame"
    ]
    table = subprocess.run(
        [sys.executable, "-m", "lab", "analyze", str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert "link type 105 (IEEE 802.11) is not decoded" in table
