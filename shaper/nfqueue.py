"""The nfnetlink_queue wire protocol, as bytes in and bytes out (no sockets here).

Linux hands packets that an iptables `NFQUEUE` rule matched to a userspace program over a
netlink socket (AF_NETLINK, NETLINK_NETFILTER) and holds each one until the program sends a
verdict for its id. Layouts follow the kernel's uapi headers (linux/netlink.h,
linux/netfilter/nfnetlink.h, linux/netfilter/nfnetlink_queue.h):

    nlmsghdr   u32 len, u16 type, u16 flags, u32 seq, u32 pid      (host byte order)
    nfgenmsg   u8 family, u8 version, be16 res_id (the queue number)
    nlattr     u16 len, u16 type, payload padded to 4 bytes          (host byte order)

Attribute payloads are big-endian. `type` is (NFNL_SUBSYS_QUEUE << 8) | message kind.
The socket shell that sends these lives in `shaper.runner`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_NO_ENOBUFS = 5

NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4

NFNL_SUBSYS_QUEUE = 3
NFNETLINK_V0 = 0
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQNL_MSG_VERDICT_BATCH = 3

# Config attributes (NFQA_CFG_*) and commands.
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQA_CFG_MASK = 4
NFQA_CFG_FLAGS = 5
NFQNL_CFG_CMD_BIND = 1
NFQNL_CFG_CMD_UNBIND = 2
NFQNL_COPY_NONE = 0
NFQNL_COPY_META = 1
NFQNL_COPY_PACKET = 2
NFQA_CFG_F_FAIL_OPEN = 1 << 0
NFQA_CFG_F_CONNTRACK = 1 << 1
NFQA_CFG_F_GSO = 1 << 2

# Packet attributes (NFQA_*).
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_MARK = 3
NFQA_TIMESTAMP = 4
NFQA_IFINDEX_INDEV = 5
NFQA_IFINDEX_OUTDEV = 6
NFQA_PAYLOAD = 10
NFQA_CAP_LEN = 13

NF_DROP = 0
NF_ACCEPT = 1

_NLMSGHDR = struct.Struct("=IHHII")
_NFGENMSG = struct.Struct("!BBH")
_NLATTR = struct.Struct("=HH")
_NLA_TYPE_MASK = 0x3FFF  # strips NLA_F_NESTED and NLA_F_NET_BYTEORDER
_QUEUE_TYPE = NFNL_SUBSYS_QUEUE << 8


def _align(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to a 4-byte boundary."""
    size = _NLATTR.size + len(payload)
    return _NLATTR.pack(size, kind) + payload + b"\0" * (_align(size) - size)


def message(kind: int, queue: int, attrs: bytes, *, seq: int = 0, flags: int = 0) -> bytes:
    """An nfnetlink_queue message: nlmsghdr + nfgenmsg (family AF_UNSPEC) + attributes."""
    body = _NFGENMSG.pack(0, NFNETLINK_V0, queue) + attrs
    return (
        _NLMSGHDR.pack(
            _NLMSGHDR.size + len(body), _QUEUE_TYPE | kind, NLM_F_REQUEST | flags, seq, 0
        )
        + body
    )


def config_command(queue: int, command: int, *, seq: int) -> bytes:
    """Bind or unbind this socket to `queue` (asks the kernel for an ACK)."""
    cmd = struct.pack("!BxH", command, 0)  # nfqnl_msg_config_cmd: u8 command, pad, be16 pf
    return message(NFQNL_MSG_CONFIG, queue, attr(NFQA_CFG_CMD, cmd), seq=seq, flags=NLM_F_ACK)


def config_params(queue: int, copy_mode: int, copy_range: int = 0, *, seq: int) -> bytes:
    """How much of each packet the kernel copies to us (META: ids and metadata, no payload)."""
    params = struct.pack("!IB", copy_range, copy_mode)  # packed: be32 range, u8 mode
    return message(NFQNL_MSG_CONFIG, queue, attr(NFQA_CFG_PARAMS, params), seq=seq, flags=NLM_F_ACK)


def config_maxlen(queue: int, maxlen: int, *, seq: int) -> bytes:
    """How many packets the kernel may hold for us before it drops new ones."""
    payload = attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", maxlen))
    return message(NFQNL_MSG_CONFIG, queue, payload, seq=seq, flags=NLM_F_ACK)


def config_flags(queue: int, flags: int, mask: int, *, seq: int) -> bytes:
    """Set the queue flags selected by `mask` (for example NFQA_CFG_F_GSO)."""
    payload = attr(NFQA_CFG_FLAGS, struct.pack("!I", flags)) + attr(
        NFQA_CFG_MASK, struct.pack("!I", mask)
    )
    return message(NFQNL_MSG_CONFIG, queue, payload, seq=seq, flags=NLM_F_ACK)


def verdict(queue: int, packet_id: int, decision: int, *, batch: bool = False) -> bytes:
    """A verdict for one packet id, or (batch) for every queued id up to and including it."""
    kind = NFQNL_MSG_VERDICT_BATCH if batch else NFQNL_MSG_VERDICT
    hdr = struct.pack("!II", decision, packet_id)  # nfqnl_msg_verdict_hdr
    return message(kind, queue, attr(NFQA_VERDICT_HDR, hdr))


@dataclass(frozen=True)
class Packet:
    """A packet the kernel queued: its id (for the verdict) and what META copy mode tells."""

    queue: int
    packet_id: int
    hw_protocol: int
    hook: int
    indev: int | None = None
    payload: bytes | None = None
    cap_len: int | None = None


@dataclass(frozen=True)
class Ack:
    """The kernel's answer to a request sent with NLM_F_ACK: error 0, or a negative errno."""

    seq: int
    error: int


def parse_attrs(data: bytes | memoryview) -> dict[int, memoryview]:
    """Attributes by type (flags stripped); raises ValueError when one runs past the end."""
    view = memoryview(data)
    out: dict[int, memoryview] = {}
    pos = 0
    while pos + _NLATTR.size <= len(view):
        size, kind = _NLATTR.unpack_from(view, pos)
        if size < _NLATTR.size or pos + size > len(view):
            raise ValueError(f"netlink attribute of length {size} at {pos} overruns {len(view)}")
        out[kind & _NLA_TYPE_MASK] = view[pos + _NLATTR.size : pos + size]
        pos += _align(size)
    return out


def parse(data: bytes | memoryview) -> list[Packet | Ack]:
    """Every message in one datagram from the kernel; unknown message kinds are skipped."""
    view = memoryview(data)
    out: list[Packet | Ack] = []
    pos = 0
    while pos + _NLMSGHDR.size <= len(view):
        length, kind, _flags, seq, _pid = _NLMSGHDR.unpack_from(view, pos)
        if length < _NLMSGHDR.size or pos + length > len(view):
            raise ValueError(f"netlink message of length {length} at {pos} overruns {len(view)}")
        body = view[pos + _NLMSGHDR.size : pos + length]
        pos += _align(length)
        if kind == NLMSG_ERROR:
            if len(body) < 4:
                raise ValueError("truncated NLMSG_ERROR")
            (error,) = struct.unpack_from("=i", body)
            out.append(Ack(seq=seq, error=error))
        elif kind == _QUEUE_TYPE | NFQNL_MSG_PACKET:
            out.append(_packet(body))
    return out


def _packet(body: memoryview) -> Packet:
    if len(body) < _NFGENMSG.size:
        raise ValueError("truncated nfgenmsg")
    _family, _version, queue = _NFGENMSG.unpack_from(body)
    attrs = parse_attrs(body[_NFGENMSG.size :])
    hdr = attrs.get(NFQA_PACKET_HDR)
    if hdr is None or len(hdr) < 7:
        raise ValueError("packet message without NFQA_PACKET_HDR")
    packet_id, hw_protocol, hook = struct.unpack_from("!IHB", hdr)
    indev = attrs.get(NFQA_IFINDEX_INDEV)
    payload = attrs.get(NFQA_PAYLOAD)
    cap_len = attrs.get(NFQA_CAP_LEN)
    return Packet(
        queue=queue,
        packet_id=packet_id,
        hw_protocol=hw_protocol,
        hook=hook,
        indev=struct.unpack("!I", indev)[0] if indev is not None and len(indev) >= 4 else None,
        payload=bytes(payload) if payload is not None else None,
        cap_len=struct.unpack("!I", cap_len)[0]
        if cap_len is not None and len(cap_len) >= 4
        else None,
    )
