"""nfnetlink_queue messages as bytes: what we send matches the kernel's structs, and what the
kernel sends parses, including malformed input. No socket anywhere."""

from __future__ import annotations

import struct
import sys

import pytest

from shaper import nfqueue

pytestmark = pytest.mark.skipif(
    sys.byteorder != "little", reason="expected bytes are written for little-endian hosts"
)


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


@pytest.mark.parametrize(
    ("built", "expected"),
    [
        pytest.param(
            nfqueue.config_command(0, nfqueue.NFQNL_CFG_CMD_BIND, seq=1),
            # nlmsghdr: len 28, type 0x0302 (queue subsystem, CONFIG), REQUEST|ACK, seq 1, pid 0
            # nfgenmsg: AF_UNSPEC, v0, queue 0 (big-endian)
            # nlattr len 8 type CMD: command BIND, pad, pf 0
            h("1c000000 0203 0500 01000000 00000000  00 00 0000  0800 0100 01 00 0000"),
            id="bind-queue-0",
        ),
        pytest.param(
            nfqueue.config_command(258, nfqueue.NFQNL_CFG_CMD_UNBIND, seq=7),
            h("1c000000 0203 0500 07000000 00000000  00 00 0102  0800 0100 02 00 0000"),
            id="unbind-queue-258-big-endian-res-id",
        ),
        pytest.param(
            nfqueue.config_params(0, nfqueue.NFQNL_COPY_META, seq=2),
            # PARAMS is packed (be32 copy_range, u8 copy_mode): 9-byte attribute padded to 12
            h("20000000 0203 0500 02000000 00000000  00 00 0000  0900 0200 00000000 01 000000"),
            id="params-copy-meta",
        ),
        pytest.param(
            nfqueue.config_maxlen(0, 16384, seq=3),
            h("1c000000 0203 0500 03000000 00000000  00 00 0000  0800 0300 00004000"),
            id="queue-maxlen",
        ),
        pytest.param(
            nfqueue.config_flags(0, nfqueue.NFQA_CFG_F_GSO, nfqueue.NFQA_CFG_F_GSO, seq=4),
            h(
                "24000000 0203 0500 04000000 00000000  00 00 0000"
                "  0800 0500 00000004  0800 0400 00000004"
            ),
            id="flags-gso-with-mask",
        ),
        pytest.param(
            nfqueue.verdict(0, 0x01020304, nfqueue.NF_ACCEPT),
            # type 0x0301 (VERDICT), REQUEST only (no ACK per packet), verdict hdr big-endian
            h("20000000 0103 0100 00000000 00000000  00 00 0000  0c00 0200 00000001 01020304"),
            id="verdict-accept",
        ),
        pytest.param(
            nfqueue.verdict(3, 9, nfqueue.NF_DROP),
            h("20000000 0103 0100 00000000 00000000  00 00 0003  0c00 0200 00000000 00000009"),
            id="verdict-drop",
        ),
        pytest.param(
            nfqueue.verdict(0, 9, nfqueue.NF_ACCEPT, batch=True),
            h("20000000 0303 0100 00000000 00000000  00 00 0000  0c00 0200 00000001 00000009"),
            id="verdict-batch",
        ),
    ],
)
def test_messages_match_kernel_layout(built: bytes, expected: bytes) -> None:
    assert built == expected
    assert struct.unpack_from("=I", built)[0] == len(built)


def packet_message(packet_id: int, queue: int = 0, *, extra: bytes = b"") -> bytes:
    """A PACKET message as nfqnl_build_packet_message() lays it out (META copy mode)."""
    hdr = struct.pack("!IHB", packet_id, 0x0800, 1)  # id, ETH_P_IP, NF_INET_LOCAL_IN
    attrs = nfqueue.attr(nfqueue.NFQA_PACKET_HDR, hdr)
    attrs += nfqueue.attr(nfqueue.NFQA_IFINDEX_INDEV, struct.pack("!I", 42))
    attrs += extra
    body = struct.pack("!BBH", 2, 0, queue) + attrs  # AF_INET
    return struct.pack("=IHHII", 16 + len(body), 0x0300, 0, 0, 0) + body


def test_packet_header_attribute_is_seven_bytes_padded_to_twelve() -> None:
    msg = packet_message(5)
    assert msg[20:24] == h("0b00 0100")  # nla_len 11 = 4 + packed struct of 7
    assert len(msg) == 16 + 4 + 12 + 8


def test_parse_packet() -> None:
    (pkt,) = nfqueue.parse(packet_message(0xDEADBEEF, queue=4))
    assert pkt == nfqueue.Packet(
        queue=4, packet_id=0xDEADBEEF, hw_protocol=0x0800, hook=1, indev=42
    )


def test_parse_packet_with_payload_and_cap_len() -> None:
    payload = bytes(range(40))
    extra = nfqueue.attr(nfqueue.NFQA_PAYLOAD, payload)
    extra += nfqueue.attr(nfqueue.NFQA_CAP_LEN, struct.pack("!I", 1500))
    (pkt,) = nfqueue.parse(packet_message(1, extra=extra))
    assert pkt.payload == payload
    assert pkt.cap_len == 1500


# A PACKET message the kernel (6.18, META copy mode) sent on this project's machines for a
# SYN-ACK arriving at a lab client: PACKET_HDR, IFINDEX_INDEV 11, HWADDR, SKB_INFO.
KERNEL_PACKET = h(
    "40000000 0003 0000 00000000 00000000  02 00 0005"
    "  0b00 0100 00000001 0800 01 00"
    "  0800 0500 0000000b"
    "  1000 0900 0006 0000 0242ac120002 0000"
    "  0800 0e00 00000001"
)


def test_parse_a_message_the_kernel_sent() -> None:
    assert nfqueue.parse(KERNEL_PACKET) == [
        nfqueue.Packet(queue=5, packet_id=1, hw_protocol=0x0800, hook=1, indev=11)
    ]


def test_attribute_flags_are_masked() -> None:
    # The kernel may set NLA_F_NESTED / NLA_F_NET_BYTEORDER in nla_type; the type is below them.
    hdr = struct.pack("!IHB", 77, 0x0800, 1)
    attrs = nfqueue.attr(nfqueue.NFQA_PACKET_HDR | 0x4000, hdr)
    body = struct.pack("!BBH", 2, 0, 0) + attrs
    msg = struct.pack("=IHHII", 16 + len(body), 0x0300, 0, 0, 0) + body
    assert nfqueue.parse(msg)[0].packet_id == 77


def test_parse_several_messages_in_one_datagram() -> None:
    data = packet_message(1) + packet_message(2) + packet_message(3)
    assert [p.packet_id for p in nfqueue.parse(data)] == [1, 2, 3]


@pytest.mark.parametrize(
    ("error", "seq"),
    [pytest.param(0, 5, id="ack"), pytest.param(-16, 6, id="ebusy")],
)
def test_parse_ack_and_error(error: int, seq: int) -> None:
    request = nfqueue.config_command(0, nfqueue.NFQNL_CFG_CMD_BIND, seq=seq)
    # nlmsgerr: int error, then the header of the request it answers.
    body = struct.pack("=i", error) + request[:16]
    msg = struct.pack("=IHHII", 16 + len(body), nfqueue.NLMSG_ERROR, 0x100, seq, 0) + body
    assert nfqueue.parse(msg) == [nfqueue.Ack(seq=seq, error=error)]


def test_unknown_message_kinds_are_skipped() -> None:
    done = struct.pack("=IHHII", 20, nfqueue.NLMSG_DONE, 0, 0, 0) + b"\0" * 4
    assert [p.packet_id for p in nfqueue.parse(done + packet_message(9))] == [9]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(packet_message(1)[:-3], id="cut-message"),
        pytest.param(struct.pack("=IHHII", 8, 0x0300, 0, 0, 0), id="length-below-header"),
        pytest.param(
            struct.pack("=IHHII", 24, 0x0300, 0, 0, 0) + h("02000000") + h("ff00 0100"),
            id="attribute-overruns",
        ),
        pytest.param(
            struct.pack("=IHHII", 20, 0x0300, 0, 0, 0) + h("02000000"), id="no-packet-header"
        ),
        pytest.param(struct.pack("=IHHII", 16, nfqueue.NLMSG_ERROR, 0, 0, 0), id="short-error"),
    ],
)
def test_malformed_input_is_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        nfqueue.parse(data)


def test_trailing_bytes_shorter_than_a_header_are_ignored() -> None:
    assert [p.packet_id for p in nfqueue.parse(packet_message(4) + b"\0\0")] == [4]
