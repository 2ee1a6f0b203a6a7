"""Hand-built TCP conversations for the capture and analysis tests.

`Flow` writes a conversation as `lab.capture.Packet` records the way a capture would show it
(seq/ack kept consistent), and `pcap_bytes` / `pcapng_bytes` turn records back into real capture
files with Ethernet, Linux cooked (v1, v2) or raw IP framing.
"""

from __future__ import annotations

import ipaddress
import struct

from lab.capture import Packet
from lab.tcp import ACK, DEFAULT_MSS, FIN, PSH, RST, SEQ_MASK, SYN


class Flow:
    """One TCP connection between a client and a server, written packet by packet."""

    def __init__(
        self,
        packets: list[Packet],
        client: tuple[str, int] = ("10.0.0.2", 40000),
        server: tuple[str, int] = ("10.0.0.3", 80),
        client_isn: int = 1000,
        server_isn: int = 5000,
    ) -> None:
        self.packets = packets
        self.client, self.server = client, server
        self.next = {"client": client_isn, "server": server_isn}
        self.isn = dict(self.next)

    def send(self, side: str, t: float, flags: int, length: int = 0, seq: int | None = None):
        """Append one segment from `side` ("client" or "server") at time t."""
        other = "server" if side == "client" else "client"
        src, dst = (self.client, self.server) if side == "client" else (self.server, self.client)
        this_seq = self.next[side] if seq is None else seq
        ack = self.next[other] if flags & ACK else 0
        self.packets.append(
            Packet(
                t,
                src[0],
                dst[0],
                src[1],
                dst[1],
                flags,
                this_seq & SEQ_MASK,
                ack & SEQ_MASK,
                length,
                54 + length + (4 if flags & SYN else 0),
                64240,
                len(self.packets) + 1,
                1460 if flags & SYN else 0,
            )
        )
        end = this_seq + length + (1 if flags & (SYN | FIN) else 0)
        if seq is None or end > self.next[side]:
            self.next[side] = max(self.next[side], end)
        return self

    def handshake(self, t: float, rtt: float = 0.010):
        self.send("client", t, SYN)
        self.send("server", t + rtt / 2, SYN | ACK)
        return self.send("client", t + rtt, ACK)

    def exchange(self, t: float, request: int, response: int, rtt: float = 0.010, mss=DEFAULT_MSS):
        """A request, the server's ACK-less reply in MSS segments, and the client's ACK."""
        self.send("client", t, PSH | ACK, request)
        at = t + rtt / 2
        while response > 0:
            size = min(mss, response)
            self.send("server", at, PSH | ACK if size == response else ACK, size)
            response -= size
            at += 0.0001
        return self.send("client", at + rtt / 2, ACK)

    def close4(self, t: float, first: str = "server", rtt: float = 0.010):
        """FIN, ACK, FIN, ACK: the other side acknowledges before closing."""
        other = "client" if first == "server" else "server"
        self.send(first, t, FIN | ACK)
        self.send(other, t + rtt / 2, ACK)
        self.send(other, t + rtt / 2 + 0.001, FIN | ACK)
        return self.send(first, t + rtt + 0.001, ACK)

    def close3(self, t: float, first: str = "server", rtt: float = 0.010):
        """FIN, FIN/ACK, ACK: the other side's ACK rides on its own FIN."""
        other = "client" if first == "server" else "server"
        self.send(first, t, FIN | ACK)
        self.send(other, t + rtt / 2, FIN | ACK)
        return self.send(first, t + rtt, ACK)


def conversation(
    t0: float = 1000.0,
    client=("10.0.0.2", 40000),
    server=("10.0.0.3", 80),
    response: int = 3000,
    close: str = "close4",
    rtt: float = 0.010,
    packets: list[Packet] | None = None,
    client_isn: int = 1000,
) -> list[Packet]:
    """A whole non-persistent exchange: handshake, one request and response, a teardown."""
    packets = [] if packets is None else packets
    flow = Flow(packets, client, server, client_isn=client_isn)
    flow.handshake(t0, rtt)
    flow.exchange(t0 + rtt + 0.001, 100, response, rtt)
    getattr(flow, close)(packets[-1].ts + 0.001, "server", rtt)
    return packets


# --- Turning records into capture files -------------------------------------------------------


def ip_bytes(p: Packet, snap_payload: bool = True) -> bytes:
    """The IP datagram of a record (payload zero-filled; omitted when snap_payload is False)."""
    flags = p.flags & 0xFF
    options = struct.pack("!BBH", 2, 4, p.mss) if p.mss else b""
    offset = (5 + len(options) // 4) << 4 | (p.flags >> 8 & 1)
    tcp = struct.pack("!HHIIBBHHH", p.sport, p.dport, p.seq, p.ack, offset, flags, p.window, 0, 0)
    tcp += options
    payload = bytes(p.payload_len) if snap_payload else b""
    src, dst = ipaddress.ip_address(p.src), ipaddress.ip_address(p.dst)
    if src.version == 4:
        total = 20 + len(tcp) + p.payload_len
        header = struct.pack("!BBHHHBBH", 0x45, 0, total, 0, 0x4000, 64, 6, 0)
        return header + src.packed + dst.packed + tcp + payload
    header = struct.pack("!IHBB", 6 << 28, len(tcp) + p.payload_len, 6, 64)
    return header + src.packed + dst.packed + tcp + payload


def frame_bytes(p: Packet, link: str = "ethernet", snap_payload: bool = True) -> bytes:
    ip = ip_bytes(p, snap_payload)
    etype = 0x0800 if ip[0] >> 4 == 4 else 0x86DD
    if link == "ethernet":
        return bytes(6) + b"\x02" + bytes(5) + struct.pack("!H", etype) + ip
    if link == "sll":  # packet type, ARPHRD_ETHER, address length, address (8), protocol
        return struct.pack("!HHH8sH", 0, 1, 6, bytes(8), etype) + ip
    if link == "sll2":  # protocol, reserved, ifindex, ARPHRD, packet type, addr len, addr (8)
        return struct.pack("!HHIHBB8s", etype, 0, 2, 1, 0, 6, bytes(8)) + ip
    if link == "raw":
        return ip
    raise ValueError(link)


LINKTYPES = {"ethernet": 1, "raw": 101, "sll": 113, "sll2": 276}


def pcap_bytes(
    packets: list[Packet],
    link: str = "ethernet",
    snaplen: int = 65535,
    nano: bool = False,
    order: str = "<",
    extra_frames: list[tuple[float, bytes]] = (),
    snap: int | None = None,
) -> bytes:
    """A pcap file; `snap` cuts every frame to that many bytes, as `tcpdump -s N` does."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, LINKTYPES[link])]
    frames = [(p.ts, frame_bytes(p, link)) for p in packets] + list(extra_frames)
    for ts, data in sorted(frames, key=lambda item: item[0]):
        sec = int(ts)
        frac = round((ts - sec) * (1e9 if nano else 1e6))
        kept = data[:snap] if snap else data
        out.append(struct.pack(order + "IIII", sec, frac, len(kept), len(data)) + kept)
    return b"".join(out)


def _block(block_type: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    length = len(body) + 12
    return struct.pack("<II", block_type, length) + body + struct.pack("<I", length)


def pcapng_bytes(packets: list[Packet], link: str = "ethernet", tsresol: int = 9) -> bytes:
    """A little-endian pcapng file: SHB, an IDB with if_tsresol, one EPB per packet."""
    shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    option = struct.pack("<HHB3x", 9, 1, tsresol) + struct.pack("<HH", 0, 0)
    idb = _block(1, struct.pack("<HHI", LINKTYPES[link], 0, 0) + option)
    out = [shb, idb]
    for p in packets:
        data = frame_bytes(p, link)
        ticks = round(p.ts * 10**tsresol) & 0xFFFFFFFFFFFFFFFF
        header = struct.pack("<IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data))
        out.append(_block(6, header + data))
    return b"".join(out)


# --- The committed samples in tests/data (regenerated and compared by test_capture) -----------


def sample_http10() -> list[Packet]:
    """Three HTTP/1.0-style connections: 4-packet teardown, 3-packet teardown, then an RST."""
    packets: list[Packet] = []
    conversation(1000.0, ("10.0.0.2", 40000), ("10.0.0.3", 80), 2000, "close4", packets=packets)
    conversation(1000.1, ("10.0.0.2", 40002), ("10.0.0.3", 80), 1000, "close3", packets=packets)
    flow = Flow(packets, ("10.0.0.2", 40004), ("10.0.0.3", 80))
    flow.handshake(1000.2)
    flow.exchange(1000.211, 100, 500)
    flow.send("server", 1000.23, RST | ACK)
    return packets


def sample_keepalive_ipv6() -> list[Packet]:
    """One keep-alive connection over IPv6 carrying three requests, closed in 3 packets."""
    packets: list[Packet] = []
    flow = Flow(packets, ("fd00::2", 45000), ("fd00::3", 8080))
    flow.handshake(2000.0)
    for i, size in enumerate((1500, 700, 2500)):
        flow.exchange(2000.011 + 0.02 * i, 90, size)
    flow.close3(2000.08, "client")
    return packets


def sample_port_reuse() -> list[Packet]:
    """A retransmitted SYN, then the same address/port pair reused with a new ISN."""
    packets: list[Packet] = []
    flow = Flow(packets, ("192.168.7.2", 50000), ("192.168.7.3", 3000))
    flow.send("client", 3000.0, SYN)
    flow.send("client", 3001.0, SYN, seq=1000)
    flow.send("server", 3001.005, SYN | ACK)
    flow.send("client", 3001.01, ACK)
    flow.exchange(3001.011, 50, 50)
    flow.close4(3001.03, "server")
    conversation(
        3002.0, ("192.168.7.2", 50000), ("192.168.7.3", 3000), 800, "close3",
        packets=packets, client_isn=777_000,
    )  # fmt: skip
    return packets


def write_samples(folder) -> None:
    from pathlib import Path

    folder = Path(folder)
    (folder / "http10-ipv4.pcap").write_bytes(pcap_bytes(sample_http10()))
    (folder / "keepalive-ipv6-sll2.pcapng").write_bytes(
        pcapng_bytes(sample_keepalive_ipv6(), "sll2")
    )
    (folder / "port-reuse-sll.pcap").write_bytes(pcap_bytes(sample_port_reuse(), "sll"))
