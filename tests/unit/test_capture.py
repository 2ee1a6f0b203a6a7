"""lab.capture: real capture bytes in, TCP records out; hostile files end in a clear answer."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab.capture import parse_capture, read_capture
from lab.errors import UsageError
from tests.unit.packets import (
    conversation,
    frame_bytes,
    pcap_bytes,
    pcapng_bytes,
)

DATA = Path(__file__).resolve().parents[1] / "data"
REPO = Path(__file__).resolve().parents[2]
V6 = dict(client=("fd00::2", 40000), server=("fd00::3", 8080))


def expected(packets, link):
    """What the reader must return: the records, with the frame length the link gives them."""
    return [p._replace(wire_len=len(frame_bytes(p, link))) for p in packets]


def same(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g._replace(ts=0.0) == w._replace(ts=0.0)
        assert g.ts == pytest.approx(w.ts, abs=1e-6)


@pytest.mark.parametrize(
    "link,addresses",
    [
        pytest.param("ethernet", {}, id="ethernet-ipv4"),
        pytest.param("ethernet", V6, id="ethernet-ipv6"),
        pytest.param("sll", {}, id="sll-ipv4"),
        pytest.param("sll", V6, id="sll-ipv6"),
        pytest.param("sll2", {}, id="sll2-ipv4"),
        pytest.param("sll2", V6, id="sll2-ipv6"),
        pytest.param("raw", {}, id="raw-ipv4"),
        pytest.param("raw", V6, id="raw-ipv6"),
    ],
)
def test_pcap_round_trip_every_link_type(link, addresses):
    packets = conversation(**addresses)
    capture = parse_capture(pcap_bytes(packets, link), "x.pcap")
    assert capture.format == "pcap"
    assert not capture.truncated and capture.problem is None
    assert capture.frames == len(packets) and capture.skipped == 0
    same(capture.packets, expected(packets, link))


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"order": ">"}, id="big-endian"),
        pytest.param({"nano": True}, id="nanosecond"),
        pytest.param({"snaplen": 0}, id="snaplen-0"),
        pytest.param({"snaplen": 0xFFFFFFFF}, id="snaplen-absurd"),
    ],
)
def test_pcap_header_variants(kwargs):
    packets = conversation()
    capture = parse_capture(pcap_bytes(packets, **kwargs))
    same(capture.packets, expected(packets, "ethernet"))


@pytest.mark.parametrize(
    "link,tsresol,addresses",
    [
        pytest.param("ethernet", 9, {}, id="ethernet-ns"),
        pytest.param("ethernet", 6, V6, id="ethernet-us-ipv6"),
        pytest.param("sll2", 9, V6, id="sll2-ipv6"),
    ],
)
def test_pcapng(link, tsresol, addresses):
    packets = conversation(**addresses)
    capture = parse_capture(pcapng_bytes(packets, link, tsresol), "x.pcapng")
    assert capture.format == "pcapng" and capture.link_types == [{"sll2": 276}.get(link, 1)]
    assert not capture.truncated
    same(capture.packets, expected(packets, link))


def test_snap_length_keeps_payload_sizes_from_the_ip_header():
    packets = conversation(response=5000)
    capture = parse_capture(pcap_bytes(packets, snap=68))
    assert [p.payload_len for p in capture.packets] == [p.payload_len for p in packets]
    assert sum(p.payload_len for p in capture.packets) == 5100
    assert [p.wire_len for p in capture.packets] == [p.wire_len for p in packets]


def test_frames_that_are_not_tcp_are_counted_and_skipped():
    packets = conversation()
    arp = bytes(12) + b"\x08\x06" + bytes(28)
    udp = bytes(12) + b"\x08\x00" + struct.pack("!BBHHHBBH", 0x45, 0, 28, 0, 0, 64, 17, 0)
    udp += bytes(8) + bytes(8)
    short = bytes(10)  # shorter than an Ethernet header
    extra = [(999.0, arp), (999.5, udp), (1000.0005, short)]
    capture = parse_capture(pcap_bytes(packets, extra_frames=extra))
    assert capture.frames == len(packets) + 3
    assert capture.skipped == 3
    assert len(capture.packets) == len(packets)
    # Frame numbers are Wireshark's: they count the skipped frames too.
    assert capture.packets[0].frame == 3


def test_ip_fragments_after_the_first_are_skipped():
    p = conversation()[0]
    frame = bytearray(frame_bytes(p))
    frame[14 + 6 : 14 + 8] = struct.pack("!H", 0x2000 | 100)  # more fragments, offset 800
    capture = parse_capture(pcap_bytes([], extra_frames=[(1.0, bytes(frame))]))
    assert capture.packets == [] and capture.skipped == 1


# --- Hostile and damaged files -------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"hello, this is text", id="text"),
        pytest.param(b"\x00\x00\x00\x00" * 10, id="zeros"),
        pytest.param(b"\xd4\xc3", id="two-bytes"),
        pytest.param(b"PK\x03\x04" + bytes(40), id="zip"),
    ],
)
def test_wrong_magic_is_a_usage_error(data):
    with pytest.raises(UsageError) as err:
        parse_capture(data, "f.pcap")
    assert str(err.value) == "f.pcap: not a pcap or pcapng capture"


def test_read_capture_errors(tmp_path):
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    with pytest.raises(UsageError, match=r"empty\.pcap: not a pcap or pcapng capture"):
        read_capture(empty)
    with pytest.raises(UsageError, match=r"missing\.pcap: no such file"):
        read_capture(tmp_path / "missing.pcap")
    with pytest.raises(UsageError, match="is a directory"):
        read_capture(tmp_path)


def test_partial_last_record_is_analysed_up_to_the_cut():
    packets = conversation(response=3000)
    data = pcap_bytes(packets)
    # Cut in the middle of the 6th record's payload: its headers are still there.
    offsets = _record_offsets(data)
    cut = data[: offsets[5] + 16 + 60]
    capture = parse_capture(cut)
    assert capture.truncated
    assert "record 6 claims" in capture.problem
    assert len(capture.packets) == 6
    assert capture.packets[5].payload_len == packets[5].payload_len  # from the IP header


def test_cut_inside_a_record_header():
    data = pcap_bytes(conversation())
    offsets = _record_offsets(data)
    capture = parse_capture(data[: offsets[3] + 7])
    assert capture.truncated and "header of record 4" in capture.problem
    assert len(capture.packets) == 3


def test_record_claiming_more_than_the_file_holds():
    data = bytearray(pcap_bytes(conversation()))
    offsets = _record_offsets(bytes(data))
    struct.pack_into("<I", data, offsets[2] + 8, 0xFFFFFFF0)  # caplen of record 3
    capture = parse_capture(bytes(data))
    assert capture.truncated and "record 3 claims 4294967280 bytes" in capture.problem
    assert len(capture.packets) == 3  # records 1, 2 and what remains of 3


def test_file_header_only_and_cut_file_header():
    header_only = pcap_bytes([])
    capture = parse_capture(header_only)
    assert capture.packets == [] and not capture.truncated
    capture = parse_capture(header_only[:10])
    assert capture.truncated and capture.packets == []


def test_unknown_link_type_reads_no_packets():
    data = bytearray(pcap_bytes(conversation()))
    struct.pack_into("<I", data, 20, 999)
    capture = parse_capture(bytes(data))
    assert capture.link_types == [999] and capture.packets == []
    assert capture.skipped == capture.frames == 12


@pytest.mark.parametrize(
    "damage,problem",
    [
        pytest.param(lambda d: d[:-10], "claims", id="cut-last-block"),
        pytest.param(lambda d: d + b"\x06\x00\x00\x00", "ends inside a block header", id="stub"),
        pytest.param(lambda d: _set_block_len(d, 3, 7), "invalid length 7", id="len-7"),
        pytest.param(lambda d: _set_block_len(d, 3, 0xFFFFFFFC), "claims", id="len-huge"),
        pytest.param(lambda d: _set_block_len(d, 3, 1001), "invalid length", id="len-odd"),
    ],
)
def test_damaged_pcapng(damage, problem):
    packets = conversation()
    capture = parse_capture(damage(pcapng_bytes(packets)))
    assert capture.truncated and problem in capture.problem
    assert 0 < len(capture.packets) <= len(packets)


def test_pcapng_packet_of_an_undescribed_interface_is_skipped():
    data = bytearray(pcapng_bytes(conversation()))
    offset = _block_offsets(bytes(data))[2]  # the first EPB
    struct.pack_into("<I", data, offset + 8, 7)  # interface 7 was never described
    capture = parse_capture(bytes(data))
    assert capture.skipped == 1 and len(capture.packets) == 11 and not capture.truncated


def test_pcapng_absurd_timestamp_resolution():
    capture = parse_capture(pcapng_bytes(conversation(), tsresol=127))
    assert len(capture.packets) == 12 and all(p.ts < 1e-100 for p in capture.packets)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_captures_never_crash(data):
    """Any damage to a real capture yields records or UsageError, never another exception."""
    kind = data.draw(st.sampled_from(["pcap", "pcapng"]))
    blob = bytearray(pcap_bytes(conversation()) if kind == "pcap" else pcapng_bytes(conversation()))
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(blob) - 1))
        blob[at] = data.draw(st.integers(0, 255))
    blob = blob[: data.draw(st.integers(0, len(blob)))]
    try:
        capture = parse_capture(bytes(blob))
    except UsageError:
        return
    assert capture.frames >= len(capture.packets)


# --- The committed sample captures (hand-built, a few KB) ----------------------------------


def test_sample_files_match_their_builder(tmp_path):
    from tests.unit.packets import write_samples

    write_samples(tmp_path)
    for built in sorted(tmp_path.iterdir()):
        assert (DATA / built.name).read_bytes() == built.read_bytes(), built.name


# --- The CLI ---------------------------------------------------------------------------------


def _analyze(*args, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "lab", "analyze", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, cwd=REPO,
    )  # fmt: skip


def test_cli_json_has_the_design_keys():
    out = _analyze("--json", DATA / "http10-ipv4.pcap")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    for key in ("packets", "connections", "syn", "fin", "rst", "retransmissions", "truncated"):
        assert key in result
    assert result["connections"] == 3 and result["syn"] == 3 and result["truncated"] is False
    assert [s["stream"] for s in result["streams"]] == [0, 1, 2]
    assert result["streams"][0]["teardown"] == "4-packet"


def test_cli_truncated_file_says_so(tmp_path):
    data = (DATA / "http10-ipv4.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) - 30])
    out = _analyze("--json", cut)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["truncated"] is True and "claims" in result["problem"]
    human = _analyze(cut)
    assert human.returncode == 0 and "truncated" in human.stdout


@pytest.mark.parametrize(
    "content,message",
    [
        pytest.param(b"not a capture at all", "not a pcap or pcapng capture", id="wrong-magic"),
        pytest.param(b"", "not a pcap or pcapng capture", id="empty"),
        pytest.param(None, "no such file", id="missing"),
    ],
)
def test_cli_bad_file_exits_2_with_one_line(tmp_path, content, message):
    path = tmp_path / "bad.pcap"
    if content is not None:
        path.write_bytes(content)
    out = _analyze(path)
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr.count("\n") == 1 and message in out.stderr
    assert "Traceback" not in out.stderr


def _record_offsets(data: bytes) -> list[int]:
    offsets, o = [], 24
    while o + 16 <= len(data):
        offsets.append(o)
        o += 16 + struct.unpack_from("<I", data, o + 8)[0]
    return offsets


def _block_offsets(data: bytes) -> list[int]:
    offsets, o = [], 0
    while o + 8 <= len(data):
        offsets.append(o)
        o += struct.unpack_from("<I", data, o + 4)[0]
    return offsets


def _set_block_len(data: bytes, index: int, length: int) -> bytes:
    out = bytearray(data)
    struct.pack_into("<I", out, _block_offsets(data)[index] + 4, length)
    return bytes(out)


@pytest.mark.parametrize(
    "options,mss",
    [
        pytest.param(b"\x02\x04\x05\xb4", 1460, id="mss-only"),
        pytest.param(b"\x01\x01\x08\x0a" + bytes(8) + b"\x02\x04\x23\x28", 9000, id="after-ts"),
        pytest.param(b"\x03\x03\x07\x00", 0, id="no-mss"),
        pytest.param(b"\x08\x00\x02\x04", 0, id="zero-length-option"),
        pytest.param(b"\x01\x01\x02\x04", 0, id="runs-past-the-header"),
    ],
)
@pytest.mark.parametrize("link", ["ethernet", "raw"])  # the fast path and the general decoder
def test_syn_mss_option(options, mss, link):
    syn = conversation()[0]
    frame = bytearray(frame_bytes(syn._replace(mss=0), link))
    at = 14 if link == "ethernet" else 0
    options += bytes(-len(options) % 4)
    frame[at + 32] = (5 + len(options) // 4) << 4  # TCP data offset
    frame[at + 2 : at + 4] = struct.pack("!H", 40 + len(options))  # IP total length
    frame += options
    (packet,) = parse_capture(pcap_bytes([], link, extra_frames=[(1.0, bytes(frame))])).packets
    assert packet.mss == mss and packet.payload_len == 0


def test_cli_reads_a_pipe():
    data = (DATA / "http10-ipv4.pcap").read_bytes()
    out = subprocess.run(
        [sys.executable, "-m", "lab", "analyze", "--json", "/dev/stdin"],
        input=data, capture_output=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["connections"] == 3
