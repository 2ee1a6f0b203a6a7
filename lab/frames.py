"""One captured frame to one TCP packet record: link layers, IP, tunnels and TCP (pure).

`lab.capture` walks the file formats and hands each frame here (except its own fast path for
the commonest frame: Ethernet or Linux cooked, IPv4 without options, TCP). Decoded, as
Wireshark decodes them by default so stream numbers agree:

- link types: Ethernet (VLAN tags, 802.3 LLC/SNAP), Linux cooked v1/v2, raw IPv4/IPv6, BSD
  loopback, NFLOG, IP over InfiniBand, PPP (HDLC-framed, PPPoE without Ethernet), Cisco HDLC;
- tunnels: IP in IP (4, 41), GRE (IP, Ethernet, MPLS, WCCP inside; also over UDP 4754),
  VXLAN (UDP 4789), Geneve (UDP 6081), GTP-U (UDP 2152), MPLS label stacks, PPPoE sessions,
  802.1ah PBB, Cisco FabricPath and VN-Tag.

Whatever else holds frames that cannot be read (another link type, GRE carrying something
other than IP or Ethernet, an encrypted MACsec frame) is counted in `notes` under a name a
user recognises, so the analysis can say why a capture has fewer TCP packets than frames.

Lengths: the IP header's length is believed only as far as the frame on the wire went (the
pcap record's original length), since a capture may hold frames whose IP length lies; a zero
IP length (TSO on the sending host) means "as long as the frame". The snap length cuts what is
captured, never what is counted.
"""

from __future__ import annotations

import socket
import struct
from typing import NamedTuple


class Packet(NamedTuple):
    """One TCP segment as seen on the wire. `frame` is Wireshark's frame.number (1-based);
    `mss` is the MSS option of a SYN or SYN-ACK (0 when absent or not a SYN)."""

    ts: float
    src: str
    dst: str
    sport: int
    dport: int
    flags: int
    seq: int
    ack: int
    payload_len: int
    wire_len: int
    window: int
    frame: int
    mss: int = 0


# Link types (LINKTYPE_* numbers as written in files)
DLT_NULL, DLT_EN10MB, DLT_PPP, DLT_LOOP = 0, 1, 9, 108
DLT_PPP_HDLC, DLT_PPP_ETHER, DLT_C_HDLC = 50, 51, 104
DLT_LINUX_SLL, DLT_LINUX_SLL2, DLT_NFLOG, DLT_IPOIB = 113, 276, 239, 242
DLT_IPV4, DLT_IPV6, DLT_PPP_PPPD = 228, 229, 166
# Raw IP has three numbers: LINKTYPE_RAW (101) in files, and the BSDs' DLT_RAW (12 or 14).
RAW_IP = frozenset({101, 12, 14, DLT_IPV4, DLT_IPV6})

LINK_TYPE_NAMES = {
    6: "IEEE 802.5 Token Ring",
    8: "SLIP",
    10: "FDDI",
    105: "IEEE 802.11",
    119: "Prism 802.11",
    127: "802.11 radiotap",
    143: "DOCSIS",
    147: "user-defined 0",
    163: "802.11 AVS",
    187: "Bluetooth HCI",
    192: "PPI",
    195: "IEEE 802.15.4",
    201: "Bluetooth HCI",
    220: "USB Linux mmapped",
    249: "USBPcap",
    252: "Wireshark upper PDU",
    253: "Linux netlink",
    263: "Bluetooth LE",
    274: "Linux USB",
}

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
_ETH_VLAN = frozenset({0x8100, 0x88A8, 0x9100})
_ETH_MPLS = frozenset({0x8847, 0x8848})
_ETH_PPPOE_SESSION = 0x8864
_ETH_BRIDGED = 0x6558  # transparent Ethernet bridging: GRE or Geneve carrying Ethernet
_ETH_INNER_ETHERNET = {0x88E7: 4, 0x8903: 2}  # 802.1ah PBB (I-TAG), Cisco FabricPath
_ETH_VN_TAG = 0x8926
_ETH_UNDECODED = {
    0x88E5: "MACsec (encrypted)",
    0x88BE: "ERSPAN",
    0x22EB: "ERSPAN III",
    0x880B: "PPP over GRE (PPTP)",
    0x894F: "NSH",
}
_PPP_IP = {0x0021: ETH_IPV4, 0x0057: ETH_IPV6, 0x0281: 0x8847}
_UDP_VXLAN, _UDP_GENEVE, _UDP_GRE, _UDP_GTP_U = 4789, 6081, 4754, 2152
_GRE_WCCP = 0x883E
_IPV6_EXT = frozenset({0, 43, 60, 51})  # hop-by-hop, routing, destination options, AH
_MAX_LAYERS = 8  # tunnels inside tunnels: enough for any real capture, bounded for hostile ones

_U16 = struct.Struct("!H").unpack_from
_U16LE = struct.Struct("<H").unpack_from
_IPV4 = struct.Struct("!BxHxxHxB").unpack_from  # version/ihl, total length, fragment, protocol
_IPV6 = struct.Struct("!4xHB").unpack_from  # payload length, next header
_TCP = struct.Struct("!HHIIBBH").unpack_from
_U16x2 = struct.Struct("!HH").unpack_from


class _AddressNames(dict):
    """Raw address bytes -> text: `names[raw]` is one C-level lookup per packet, inet_ntop
    runs once per distinct address (captures hold few addresses and many packets)."""

    def __missing__(self, raw: bytes) -> str:
        family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
        text = self[raw] = socket.inet_ntop(family, raw)
        return text


def address_namer() -> dict[bytes, str]:
    return _AddressNames()


# Packet(...) from a tuple, as `new_packet(Packet, values)`: namedtuple's _make is a
# Python-level call per packet, this one is not (0.1-0.2 µs less per packet)
new_packet = tuple.__new__


def _by_version(data, o: int) -> int:
    version = data[o] >> 4
    return ETH_IPV4 if version == 4 else ETH_IPV6 if version == 6 else 0


def _ethernet(data, o: int, end: int):
    """(EtherType, where its payload starts) after an Ethernet header, VLAN tags and an
    802.3 LLC/SNAP header."""
    if end - o < 14:
        return None
    etype = _U16(data, o + 12)[0]
    o += 14
    while etype in _ETH_VLAN and end - o >= 4:
        etype = _U16(data, o + 2)[0]
        o += 4
    if etype < 0x0600:  # an 802.3 length: LLC follows; SNAP (AA AA 03) carries an EtherType
        if end - o >= 8 and data[o] == 0xAA and data[o + 1] == 0xAA and data[o + 2] == 3:
            return _U16(data, o + 6)[0], o + 8
        return None
    return etype, o


def _linux_sll(data, o: int, end: int):
    return (_U16(data, o + 14)[0], o + 16) if end - o >= 16 else None


def _linux_sll2(data, o: int, end: int):
    return (_U16(data, o)[0], o + 20) if end - o >= 20 else None


def _raw_ip(data, o: int, end: int):
    return (_by_version(data, o), o) if end - o >= 1 else None


def _bsd_loopback(data, o: int, end: int):
    """The BSD loopback header is the address family in the writer's byte order: the IP
    version nibble that follows says more, in any byte order."""
    return (_by_version(data, o + 4), o + 4) if end - o >= 5 else None


def _ppp(data, o: int, end: int):
    """PPP in HDLC framing (address FF, control 03, often left out) or bare."""
    if end - o >= 2 and data[o] == 0xFF and data[o + 1] == 0x03:
        o += 2
    if end - o < 2:
        return None
    if data[o] & 1:  # a compressed one-byte protocol field
        proto, o = data[o], o + 1
    else:
        proto, o = _U16(data, o)[0], o + 2
    return _PPP_IP.get(proto, 0), o


def _pppoe(data, o: int, end: int):
    """A PPPoE session header (6 bytes), then PPP."""
    return _ppp(data, o + 6, end) if end - o >= 8 else None


def _cisco_hdlc(data, o: int, end: int):
    return (_U16(data, o + 2)[0], o + 4) if end - o >= 4 else None


def _ipoib(data, o: int, end: int):
    return (_U16(data, o)[0], o + 4) if end - o >= 4 else None


def _nflog(data, o: int, end: int):
    """Linux NFLOG: a 4-byte header, then TLVs in host byte order (little-endian on the
    machines that write them); the packet is the NFULA_PAYLOAD (type 9) TLV's value."""
    t = o + 4
    while end - t >= 4:
        size, kind = _U16LE(data, t)[0], _U16LE(data, t + 2)[0]
        if size < 4:
            return None
        if kind == 9:
            return (_by_version(data, t + 4), t + 4) if end - t > 4 else None
        t += (size + 3) & ~3
    return None


_LINKS = {
    DLT_EN10MB: _ethernet,
    DLT_LINUX_SLL: _linux_sll,
    DLT_LINUX_SLL2: _linux_sll2,
    DLT_NULL: _bsd_loopback,
    DLT_LOOP: _bsd_loopback,
    DLT_PPP: _ppp,
    DLT_PPP_HDLC: _ppp,
    DLT_PPP_PPPD: _ppp,
    DLT_PPP_ETHER: _pppoe,
    DLT_C_HDLC: _cisco_hdlc,
    DLT_NFLOG: _nflog,
    DLT_IPOIB: _ipoib,
}
SUPPORTED_LINK_TYPES = frozenset(_LINKS) | RAW_IP


def link_reader(linktype: int):
    """The link layer's reader, (data, offset, end) -> (EtherType, offset) | None; None for
    a link type we do not read."""
    return _raw_ip if linktype in RAW_IP else _LINKS.get(linktype)


def link_type_name(linktype: int) -> str:
    name = LINK_TYPE_NAMES.get(linktype)
    return f"link type {linktype} ({name})" if name else f"link type {linktype}"


def _ipv6_extensions(data, t: int, end: int, nxt: int):
    """Skip IPv6 extension headers: (next header, its offset) or None for a later fragment
    (no upper-layer header in it) or a header cut by the snap length."""
    while nxt in _IPV6_EXT or nxt == 44:
        if end - t < 8:
            return None
        if nxt == 44:  # fragment header
            if _U16(data, t + 2)[0] & 0xFFF8:
                return None
            size = 8
        else:
            size = (data[t + 1] + 2) * 4 if nxt == 51 else (data[t + 1] + 1) * 8
        nxt = data[t]
        t += size
    return nxt, t


def _gre(data, t: int, end: int, notes: dict):
    """(EtherType, offset) inside a GRE header (RFC 2784/2890), or None."""
    if end - t < 4:
        return None
    bits, ptype = _U16x2(data, t)
    if bits & 7:  # version 1 is PPTP's enhanced GRE, carrying PPP
        _note(notes, "GRE version 1 (PPTP)")
        return None
    t += 4 + 4 * (bool(bits & 0xC000) + bool(bits & 0x2000) + bool(bits & 0x1000))
    if ptype == _GRE_WCCP:  # Cisco WCCP: IPv4, after a 4-byte redirect header when present
        return ETH_IPV4, (t if end - t >= 1 and data[t] >> 4 == 4 else t + 4)
    return ptype, t


def _udp_tunnel(data, t: int, end: int):
    """(EtherType, offset) inside VXLAN or Geneve over UDP, or None for other UDP."""
    if end - t < 8:
        return None
    dport = _U16(data, t + 2)[0]
    if dport == _UDP_VXLAN:
        # Wireshark decodes UDP 4789 as VXLAN whatever the flags say; so do we
        return (_ETH_BRIDGED, t + 16) if end - t >= 16 else None
    if dport == _UDP_GENEVE and end - t >= 16:
        return _U16(data, t + 10)[0], t + 16 + (data[t + 8] & 0x3F) * 4
    if dport == _UDP_GRE:
        return _gre(data, t + 8, end, {})
    if dport == _UDP_GTP_U and end - t >= 16 and data[t + 9] == 0xFF:  # G-PDU: a user packet
        o = t + 16
        if data[t + 8] & 0x07:  # sequence number, N-PDU number, extension headers
            o += 4
            ext = data[o - 1] if data[t + 8] & 0x04 else 0
            while ext and end - o >= 4 and data[o]:
                o += data[o] * 4
                ext = data[o - 1]
        return (_by_version(data, o), o) if end - o >= 1 else None
    return None


def _note(notes: dict, what: str) -> None:
    notes[what] = notes.get(what, 0) + 1


def make_decoder(linktype: int, notes: dict[str, int]):
    """A function (data, offset, end, ts, wire_len, frame) -> Packet | None for one link type.
    Frames it cannot read for a reason a user should know are counted in `notes` by name.

    Longer than 80 lines on purpose: `decode` runs once per frame that is not the commonest
    kind, and peels layer after layer in one loop on local variables (a call per layer and
    an object to carry the offsets, limit and addresses between calls cost more than the
    layers themselves)."""
    names = address_namer()
    link = link_reader(linktype)
    unknown_link = link_type_name(linktype) + " is not decoded"

    def decode(data, o: int, end: int, ts: float, wire_len: int, frame: int) -> Packet | None:
        if link is None:
            _note(notes, unknown_link)
            return None
        # The frame on the wire ended here, whatever was captured (a record claiming to be
        # shorter than what it holds is believed no further than its bytes)
        limit = o + (wire_len if wire_len > end - o else end - o)
        found = link(data, o, end)
        if found is None:
            return None
        etype, o = found
        for _layer in range(_MAX_LAYERS):
            if etype == ETH_IPV4:
                if end - o < 20:
                    return None
                vihl, total, frag, proto = _IPV4(data, o)
                ihl = (vihl & 15) * 4
                if vihl >> 4 != 4 or ihl < 20 or frag & 0x1FFF:
                    return None  # a later fragment holds no TCP header
                raw_src, raw_dst = data[o + 12 : o + 16], data[o + 16 : o + 20]
                if total and o + total < limit:
                    limit = o + total
                t = o + ihl
            elif etype == ETH_IPV6:
                if end - o < 40:
                    return None
                length, proto = _IPV6(data, o)
                raw_src, raw_dst = data[o + 8 : o + 24], data[o + 24 : o + 40]
                if length and o + 40 + length < limit:  # 0: a jumbogram or TSO
                    limit = o + 40 + length
                t = o + 40
                if proto != 6:
                    found = _ipv6_extensions(data, t, end, proto)
                    if found is None:
                        return None
                    proto, t = found
            elif etype == _ETH_BRIDGED:
                found = _ethernet(data, o, end)
                if found is None:
                    return None
                etype, o = found
                continue
            elif etype in _ETH_MPLS:
                while end - o >= 4 and not data[o + 2] & 1:  # to the bottom of the stack
                    o += 4
                if end - o < 5:
                    return None
                etype, o = _by_version(data, o + 4), o + 4
                continue
            elif etype in _ETH_INNER_ETHERNET:  # a tag, then a whole Ethernet header again
                found = _ethernet(data, o + _ETH_INNER_ETHERNET[etype], end)
                if found is None:
                    return None
                etype, o = found
                continue
            elif etype == _ETH_VN_TAG:
                if end - o < 6:
                    return None
                etype, o = _U16(data, o + 4)[0], o + 6
                continue
            elif etype == _ETH_PPPOE_SESSION:
                found = _pppoe(data, o, end)
                if found is None:
                    return None
                if o + 6 + _U16(data, o + 4)[0] < limit:  # the session's payload length
                    limit = o + 6 + _U16(data, o + 4)[0]
                etype, o = found
                continue
            else:
                undecoded = _ETH_UNDECODED.get(etype)
                if undecoded:
                    _note(notes, undecoded + " is not decoded")
                return None
            # An IP header: TCP, or a tunnel to open
            if proto == 6:
                return _tcp(data, t, end, limit, raw_src, raw_dst, ts, wire_len, frame)
            if proto == 4 or proto == 41:
                etype, o = (ETH_IPV4 if proto == 4 else ETH_IPV6), t
            elif proto == 47:
                found = _gre(data, t, end, notes)
                if found is None:
                    return None
                etype, o = found
            elif proto == 17:
                found = _udp_tunnel(data, t, end)
                if found is None:
                    return None
                etype, o = found
            else:
                return None
        return None

    def _tcp(data, t, end, limit, raw_src, raw_dst, ts, wire_len, frame):
        if end - t < 20:
            return None
        sport, dport, seq, ack, offset, flags, window = _TCP(data, t)
        header = (offset >> 4) * 4
        if header < 20:
            return None  # a data offset below 5: not a TCP header (Wireshark: "bogus")
        payload = limit - t - header
        # 2 is lab.tcp.SYN and 1 << 8 lab.tcp.NS, literals on a per-packet path; the NS bit
        # sits in the data-offset byte
        mss = syn_mss(data, t, min(end, t + header)) if flags & 2 else 0
        return new_packet(
            Packet,
            (
                ts,
                names[raw_src],
                names[raw_dst],
                sport,
                dport,
                flags | (offset & 1) << 8,
                seq,
                ack,
                payload if payload > 0 else 0,
                wire_len,
                window,
                frame,
                mss,
            ),
        )

    return decode


def syn_mss(data, start: int, end: int) -> int:
    """The MSS option's value in a SYN's TCP options (start: the TCP header), 0 if absent."""
    o = start + 20
    while o < end:
        kind = data[o]
        if kind == 0:  # end of options
            break
        if kind == 1:  # no-operation
            o += 1
            continue
        if o + 1 >= end or data[o + 1] < 2:
            break
        if kind == 2 and data[o + 1] == 4 and o + 4 <= end:
            return _U16(data, o + 2)[0]
        o += data[o + 1]
    return 0
