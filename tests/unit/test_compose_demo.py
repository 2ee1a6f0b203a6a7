"""The compose demo's pure parts: a pcap read while it grows, the SYN/FIN lines, the table."""

from __future__ import annotations

import io

import dpkt
import pytest

from lab.compose_demo import PcapStream, Tally, decode, table
from lab.tcp import ACK, FIN, SYN

CLIENT, SERVER = "10.0.0.3", "10.0.0.2"
PORTS = {3000: "non-persistent", 3001: "persistent"}


def frame(src, sport, dst, dport, flags, payload=b"") -> bytes:
    import socket

    tcp = dpkt.tcp.TCP(sport=sport, dport=dport, flags=flags, data=payload)
    ip = dpkt.ip.IP(
        src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=dpkt.ip.IP_PROTO_TCP, data=tcp
    )
    ip.len = len(bytes(ip))
    return bytes(dpkt.ethernet.Ethernet(type=dpkt.ethernet.ETH_TYPE_IP, data=ip))


def connection(cport: int, port: int, messages: list[bytes]) -> list[bytes]:
    """A whole connection: handshake, each message echoed, server closes first."""
    c, s = (CLIENT, cport, SERVER, port), (SERVER, port, CLIENT, cport)
    out = [frame(*c, SYN), frame(*s, SYN | ACK), frame(*c, ACK)]
    for m in messages:
        out += [frame(*c, ACK, m), frame(*s, ACK, m)]
    out += [frame(*s, FIN | ACK), frame(*c, FIN | ACK), frame(*s, ACK)]
    return out


def pcap_bytes(frames: list[bytes], nano: bool = False) -> bytes:
    buf = io.BytesIO()
    writer = dpkt.pcap.Writer(buf, nano=nano)
    for i, f in enumerate(frames):
        writer.writepkt(f, ts=1000 + i / 1000)
    return buf.getvalue()


NAMES = [b"Luffy", b"Zoro", b"Sanji", b"Nami", b"Robin"]
DEMO = [f for i, n in enumerate(NAMES) for f in connection(40000 + i, 3000, [n])] + connection(
    50000, 3001, NAMES
)


@pytest.mark.parametrize(
    "piece",
    [pytest.param(1, id="byte-by-byte"), pytest.param(7, id="7"), pytest.param(1 << 20, id="all")],
)
@pytest.mark.parametrize("nano", [pytest.param(False, id="usec"), pytest.param(True, id="nsec")])
def test_stream_yields_each_record_once_whatever_the_pieces(piece, nano):
    data = pcap_bytes(DEMO, nano)
    stream = PcapStream()
    records = []
    for i in range(0, len(data), piece):
        records += stream.feed(data[i : i + piece])
    assert [r.data for r in records] == DEMO
    assert stream.linktype == dpkt.pcap.DLT_EN10MB
    assert records[1].ts == pytest.approx(1000.001, abs=1e-6)


def test_stream_rejects_what_is_not_pcap():
    with pytest.raises(ValueError, match="not a pcap"):
        PcapStream().feed(b"\x0a\x0d\x0d\x0a" + b"\0" * 40)


def tally_of(frames: list[bytes]) -> tuple[Tally, list[str]]:
    stream, tally, lines = PcapStream(), Tally.of(PORTS), []
    for record in stream.feed(pcap_bytes(frames)):
        seg = decode(stream.linktype, record)
        if seg is not None and (line := tally.add(seg)):
            lines.append(line)
    return tally, lines


def test_counts_per_mode():
    tally, lines = tally_of(DEMO)
    np, p = tally.modes[3000], tally.modes[3001]
    assert (np.connections, np.syn, np.syn_ack, np.fin, np.server_fin) == (5, 5, 5, 10, 5)
    assert (p.connections, p.syn, p.syn_ack, p.fin, p.server_fin) == (1, 1, 1, 2, 1)
    assert (np.packets, p.packets) == (5 * 8, 3 + 10 + 3)
    assert np.payload == p.payload == 2 * sum(map(len, NAMES))
    assert np.bytes == sum(len(f) for f in DEMO[:40])
    assert tally.complete()
    # A line per SYN, SYN/ACK and FIN: 4 per connection, none for plain ACKs or data.
    assert len(lines) == 6 * 4
    assert lines[0].endswith(f"{CLIENT}:40000 → {SERVER}:3000  [SYN]")
    assert "non-persistent conn 1" in lines[0]
    assert lines[-1].endswith("[FIN, ACK]") and "persistent     conn 1" in lines[-1]


@pytest.mark.parametrize(
    ("cut", "complete"),
    [
        pytest.param(len(DEMO) - 16, False, id="persistent-not-started"),
        pytest.param(len(DEMO) - 2, False, id="client-fin-missing"),
        pytest.param(len(DEMO) - 1, True, id="both-fins"),
    ],
)
def test_complete_only_when_every_port_finished(cut, complete):
    tally, _ = tally_of(DEMO[:cut])
    assert tally.complete() is complete


def test_traffic_on_other_ports_is_ignored():
    tally, lines = tally_of(connection(41000, 8080, [b"x"]))
    assert lines == [] and all(m.packets == 0 for m in tally.modes.values())


def test_table_rows_and_ratio():
    tally, _ = tally_of(DEMO)
    text = table(tally)
    rows = text.splitlines()
    assert rows[0].split() == [
        "mode", "port", "connections", "SYN", "SYN/ACK", "FIN", "packets", "bytes", "payload",
    ]  # fmt: skip
    assert rows[2].split()[:7] == ["non-persistent", "3000", "5", "5", "5", "10", "40"]
    assert rows[3].split()[:7] == ["persistent", "3001", "1", "1", "1", "2", "16"]
    assert "2.5x the packets" in rows[-1]


def test_a_reused_client_port_with_a_new_isn_is_a_new_connection():
    def conn(isn: int) -> list[bytes]:
        c, s = (CLIENT, 40000, SERVER, 3000), (SERVER, 3000, CLIENT, 40000)
        syn = _with_tcp(dpkt.tcp.TCP(sport=40000, dport=3000, flags=SYN, seq=isn))
        return [
            syn,
            syn,  # retransmitted: the same ISN is the same connection
            frame(*s, SYN | ACK),
            frame(*s, FIN | ACK),
            frame(*c, FIN | ACK),
        ]

    tally, lines = tally_of(conn(0) + conn(7777))
    assert tally.modes[3000].connections == 2 and tally.modes[3000].syn == 4
    assert [line.split()[3:5] for line in lines if line.endswith("[SYN]")] == [
        ["conn", "1"], ["conn", "1"], ["conn", "2"], ["conn", "2"],
    ]  # fmt: skip


def _with_tcp(tcp) -> bytes:
    import socket

    ip = dpkt.ip.IP(
        src=socket.inet_aton(CLIENT), dst=socket.inet_aton(SERVER), p=dpkt.ip.IP_PROTO_TCP, data=tcp
    )
    ip.len = len(bytes(ip))
    return bytes(dpkt.ethernet.Ethernet(type=dpkt.ethernet.ETH_TYPE_IP, data=ip))
