"""Read a pcap or pcapng capture into a flat list of TCP packet records (the analysis' shell).

The file formats and link types are dpkt's (its magic numbers, DLT_* and block constants, and
its pcapng option parser for interface timestamp resolution). Records are walked here with
`struct` on the raw bytes instead of dpkt's readers, for two reasons:

- speed: building dpkt objects for every layer of a million packets takes about three times
  as long as tshark; unpacking just the header fields we need beats it;
- hostile files: dpkt's pcap reader returns a short last record without saying so, and its
  pcapng reader trusts block lengths. We stop at the cut, keep what came before it, and say
  the capture was truncated.

Only TCP over IPv4/IPv6 becomes a record (`lab.frames` decodes link layers and tunnels);
every other frame is counted and skipped. Payload lengths come from the IP header, as far as
the frame on the wire went, so a capture with a small snap length still measures bytes.
"""

from __future__ import annotations

import gc
import mmap
import os
import stat
import struct
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from dpkt import pcap as dpkt_pcap
from dpkt import pcapng as dpkt_pcapng

from lab.errors import UsageError
from lab.frames import (
    DLT_EN10MB,
    DLT_LINUX_SLL,
    DLT_LINUX_SLL2,
    ETH_IPV4,
    RAW_IP,
    SUPPORTED_LINK_TYPES,
    Packet,
    address_namer,
    make_decoder,
    new_packet,
    syn_mss,
)

__all__ = [
    "RAW_IP",
    "SUPPORTED_LINK_TYPES",
    "Capture",
    "Packet",
    "PcapStream",
    "Record",
    "decode_frame",
    "parse_capture",
    "read_capture",
    "without_gc",
]


@dataclass
class Capture:
    """What a capture file held: its TCP packets, and how much of the file could be read."""

    name: str
    format: str  # "pcap" or "pcapng"
    packets: list[Packet]
    frames: int = 0  # every record in the file, TCP or not (Wireshark's frame count)
    skipped: int = 0  # frames that were not TCP over IP, or too short to decode
    truncated: bool = False
    problem: str | None = None  # why reading stopped early, one line
    link_types: list[int] = field(default_factory=list)
    # frames not read for a reason a user should know (a link type or tunnel not decoded),
    # by that reason: lab.frames counts them
    undecoded: dict[str, int] = field(default_factory=dict)

    @property
    def warnings(self) -> list[str]:
        """One line per reason frames went unread: "link type 105 (IEEE 802.11) is not
        decoded: 12 frames"."""
        return [
            f"{why}: {n} frame{'s' if n != 1 else ''}" for why, n in sorted(self.undecoded.items())
        ]


_ETH_IPV4 = ETH_IPV4
_TCP_HEADER_MIN = 0x50  # data offset 5 in the byte's high nibble


_PCAP_MAGIC = {
    # magic as read little-endian -> (byte order, fraction of a second per timestamp unit)
    dpkt_pcap.TCPDUMP_MAGIC: ("<", 1e-6),
    dpkt_pcap.TCPDUMP_MAGIC_NANO: ("<", 1e-9),
    dpkt_pcap.PMUDPCT_MAGIC: (">", 1e-6),
    dpkt_pcap.PMUDPCT_MAGIC_NANO: (">", 1e-9),
}
_PCAPNG_SHB = dpkt_pcapng.PCAPNG_BT_SHB


@contextmanager
def without_gc():
    """Pause the cyclic garbage collector while building millions of records: they hold no
    cycles, yet collections walking the growing heap took a quarter to a third of the time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def parse_capture(data, name: str = "<capture>") -> Capture:
    """Decode a whole capture held in memory (bytes, bytearray or mmap)."""
    if len(data) >= 4:
        magic = struct.unpack_from("<I", data, 0)[0]
        with without_gc():
            if magic in _PCAP_MAGIC:
                return _parse_pcap(data, name, *_PCAP_MAGIC[magic])
            if magic == _PCAPNG_SHB:
                return _parse_pcapng(data, name)
    raise UsageError(f"{name}: not a pcap or pcapng capture")


def read_capture(path: str | os.PathLike) -> Capture:
    """Read a capture file; a file that is not a capture raises UsageError (exit 2)."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):  # a pipe: `tcpdump -w - | ... /dev/stdin`
                data = f.read()
                if not data:
                    raise UsageError(f"{name}: not a pcap or pcapng capture (empty file)")
                return parse_capture(data, name)
            if info.st_size == 0:
                raise UsageError(f"{name}: not a pcap or pcapng capture (empty file)")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return parse_capture(data, name)
    except FileNotFoundError:
        raise UsageError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{name}: is a directory, not a capture") from None
    except (PermissionError, ValueError, OSError) as exc:
        if isinstance(exc, UsageError):
            raise
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UsageError(f"{name}: cannot read ({reason})") from None


def decode_frame(linktype: int, frame_bytes, ts: float, wire_len: int, frame: int = 0):
    """The TCP packet in one frame of the given link type, or None (not TCP over IP, too
    short, or a link type we do not read). For readers that get frames one at a time."""
    decode = _DECODERS.get(linktype)
    if decode is None:
        decode = _DECODERS[linktype] = make_decoder(linktype, {})
    return decode(frame_bytes, 0, len(frame_bytes), ts, wire_len, frame)


_DECODERS: dict[int, Any] = {}


class Record(NamedTuple):
    """One pcap record: its timestamp, the frame's length on the wire (orig_len, whatever the
    snap length) and the captured bytes."""

    ts: float
    wire_len: int
    data: bytes


class PcapStream:
    """A pcap file still being written: feed it the file's bytes in any pieces, it returns
    each record once it is complete (and says which link type the file holds)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._order: str | None = None
        self._unit = 1e-6
        self.linktype: int | None = None

    def feed(self, data: bytes) -> list[Record]:
        self._buf += data
        out: list[Record] = []
        if self._order is None:
            if len(self._buf) < 24:
                return out
            magic = struct.unpack_from("<I", self._buf, 0)[0]
            if magic not in _PCAP_MAGIC:
                raise ValueError(f"not a pcap file (magic {magic:#010x}); pcapng is not followed")
            self._order, self._unit = _PCAP_MAGIC[magic]
            self.linktype = struct.unpack_from(self._order + "I", self._buf, 20)[0] & 0x0FFFFFFF
            del self._buf[:24]
        pos = 0
        header = struct.Struct(self._order + "IIII").unpack_from
        while len(self._buf) - pos >= 16:
            sec, frac, caplen, wire_len = header(self._buf, pos)
            if len(self._buf) - pos - 16 < caplen:
                break  # the rest of this record is not written yet
            data = bytes(self._buf[pos + 16 : pos + 16 + caplen])
            out.append(Record(sec + frac * self._unit, wire_len, data))
            pos += 16 + caplen
        del self._buf[:pos]
        return out


# Fast path for the common frame: a link header with an EtherType, then IPv4 without options,
# then TCP. One unpack reads every field we need; anything else takes the general decoder.
# As in the decoder, `flags & 2` is lab.tcp.SYN and `(off & 1) << 8` lab.tcp.NS.
_FAST_LINKS = {
    DLT_EN10MB: ("!12xH", 14),
    DLT_LINUX_SLL: ("!14xH", 16),
    DLT_LINUX_SLL2: ("!H18x", 20),
}
_FAST_TAIL = "BxHxxHxB2x4s4sHHIIBBH"


def _parse_pcap(data, name: str, order: str, unit: float) -> Capture:
    # Over 80 lines on purpose: the per-record loop with its fast path inline is the reader's
    # hot path (a million records); a call per record would cost more than the record.
    size = len(data)
    capture = Capture(name=name, format="pcap", packets=[])
    if size < 24:
        capture.truncated = True
        capture.problem = "the file ends inside the pcap file header"
        return capture
    linktype = struct.unpack_from(order + "I", data, 20)[0] & 0x0FFFFFFF  # top bits: FCS info
    capture.link_types = [linktype]
    decode = make_decoder(linktype, capture.undecoded)
    names = address_namer()
    prefix, link_len = _FAST_LINKS.get(linktype, (None, 0))
    fast = struct.Struct(prefix + _FAST_TAIL).unpack_from if prefix else None
    fast_len = link_len + 40
    record = struct.Struct(order + "IIII").unpack_from
    append = capture.packets.append
    o = 24
    frame = 0
    skipped = 0
    while o < size:
        if size - o < 16:
            capture.truncated = True
            capture.problem = f"the file ends inside the header of record {frame + 1}"
            break
        sec, frac, caplen, wire_len = record(data, o)
        o += 16
        frame += 1
        end = o + caplen
        if end > size:
            capture.truncated = True
            capture.problem = (
                f"record {frame} claims {caplen} bytes but only {size - o} remain in the file"
            )
            end = size
        if fast is not None and end - o >= fast_len:
            etype, vihl, total, frag, proto, rs, rd, sp, dp, seq, ack, off, flags, win = fast(
                data, o
            )
            if (
                etype == _ETH_IPV4
                and vihl == 0x45
                and proto == 6
                and not frag & 0x1FFF
                and off >= _TCP_HEADER_MIN
            ):
                # the IP length, as far as the frame on the wire went (lab.frames' doc)
                ip_len = (wire_len if wire_len > end - o else end - o) - link_len
                if total and total < ip_len:
                    ip_len = total
                payload = ip_len - 20 - (off >> 4) * 4
                append(
                    new_packet(
                        Packet,
                        (
                            sec + frac * unit,
                            names[rs],
                            names[rd],
                            sp,
                            dp,
                            flags | (off & 1) << 8,
                            seq,
                            ack,
                            payload if payload > 0 else 0,
                            wire_len,
                            win,
                            frame,
                            syn_mss(
                                data,
                                o + fast_len - 20,
                                min(end, o + fast_len - 20 + (off >> 4) * 4),
                            )
                            if flags & 2
                            else 0,
                        ),
                    )
                )
                o = end
                continue
        packet = decode(data, o, end, sec + frac * unit, wire_len, frame)
        if packet is None:
            skipped += 1
        else:
            append(packet)
        o = end
    capture.frames = frame
    capture.skipped = skipped
    return capture


def _interface(block: bytes, order: str) -> tuple[int, float, float]:
    """(link type, seconds per timestamp unit, timestamp offset) of an interface block."""
    linktype = struct.unpack_from(order + "H", block, 8)[0]
    unit, offset = 1e-6, 0.0
    try:
        cls = (
            dpkt_pcapng.InterfaceDescriptionBlockLE
            if order == "<"
            else dpkt_pcapng.InterfaceDescriptionBlock
        )
        for opt in cls(block).opts:
            if opt.code == dpkt_pcapng.PCAPNG_OPT_IF_TSRESOL and opt.data:
                value = opt.data[0]
                exponent = value & 0x7F
                unit = 2.0**-exponent if value & 0x80 else 10.0**-exponent
            elif opt.code == dpkt_pcapng.PCAPNG_OPT_IF_TSOFFSET and len(opt.data) == 8:
                offset = float(struct.unpack(order + "q", opt.data)[0])
    except Exception:  # malformed options: keep the defaults, the packets still decode
        pass
    return linktype, unit, offset


_SECTION_ORDER = {dpkt_pcapng.BYTE_ORDER_MAGIC: "<", dpkt_pcapng.BYTE_ORDER_MAGIC_LE: ">"}


def _add_interface(capture: Capture, block, order: str, decoders: dict) -> tuple:
    """An interface description block as (decode, unit, offset, snaplen); decoders are shared
    by the interfaces of one link type, so each keeps one address cache."""
    linktype, unit, offset = _interface(bytes(block), order)
    snaplen = struct.unpack_from(order + "I", block, 12)[0]
    if linktype not in decoders:
        decoders[linktype] = make_decoder(linktype, capture.undecoded)
    if linktype not in capture.link_types:
        capture.link_types.append(linktype)
    return decoders[linktype], unit, offset, snaplen


def _simple_packet(data, o: int, body_end: int, order: str, interfaces: list, ts: float, frame):
    """The packet of a simple packet block (interface 0; no timestamp: it inherits `ts`, the
    previous block's), or None."""
    if not interfaces:
        return None
    wire_len = struct.unpack_from(order + "I", data, o + 8)[0]
    decode, _unit, _offset, snaplen = interfaces[0]
    caplen = min(wire_len, snaplen) if snaplen else wire_len
    return decode(data, o + 12, min(o + 12 + caplen, body_end), ts, wire_len, frame)


def _parse_pcapng(data, name: str) -> Capture:
    size = len(data)
    capture = Capture(name=name, format="pcapng", packets=[])
    append = capture.packets.append
    interfaces: list[tuple] = []  # (decode, unit, offset, snaplen)
    decoders: dict[int, object] = {}
    order = "<"
    o = 0
    frame = 0
    skipped = 0
    last_ts = 0.0

    def stop(problem: str) -> None:
        capture.truncated = True
        capture.problem = problem

    while o < size:
        if size - o < 12:
            stop(f"the file ends inside a block header at byte {o}")
            break
        if struct.unpack_from("<I", data, o)[0] == _PCAPNG_SHB:
            order = _SECTION_ORDER.get(struct.unpack_from("<I", data, o + 8)[0])
            if order is None:
                stop(f"section header at byte {o} has an unknown byte-order magic")
                break
            interfaces = []  # interface ids are per section
        btype, blen = struct.unpack_from(order + "II", data, o)
        if blen < 12 or blen % 4:
            stop(f"block at byte {o} has an invalid length {blen}")
            break
        end = o + blen
        cut = end > size
        if cut:
            stop(f"block at byte {o} claims {blen} bytes but only {size - o} remain in the file")
            end = size
        if btype == dpkt_pcapng.PCAPNG_BT_IDB:
            if cut or blen < 20:
                break
            interfaces.append(_add_interface(capture, data[o:end], order, decoders))
        elif btype in (dpkt_pcapng.PCAPNG_BT_EPB, dpkt_pcapng.PCAPNG_BT_PB):
            if end - o < 28:
                break
            frame += 1
            if btype == dpkt_pcapng.PCAPNG_BT_EPB:
                iface, hi, lo, caplen, wire_len = struct.unpack_from(order + "5I", data, o + 8)
            else:
                iface, hi, lo, caplen, wire_len = struct.unpack_from(order + "H2xIIII", data, o + 8)
            start = o + 28
            stop_at = min(start + caplen, end if cut else end - 4)
            if iface < len(interfaces):
                decode, unit, offset, _snaplen = interfaces[iface]
                last_ts = ((hi << 32) | lo) * unit + offset
                packet = decode(data, start, stop_at, last_ts, wire_len, frame)
            else:
                packet = None  # a packet of an interface never described: unreadable
            if packet is None:
                skipped += 1
            else:
                append(packet)
        elif btype == dpkt_pcapng.PCAPNG_BT_SPB:
            if end - o < 16:
                break
            frame += 1
            packet = _simple_packet(
                data, o, end if cut else end - 4, order, interfaces, last_ts, frame
            )
            if packet is None:
                skipped += 1
            else:
                append(packet)
        if cut:
            break
        o = end
    capture.frames = frame
    capture.skipped = skipped
    return capture
