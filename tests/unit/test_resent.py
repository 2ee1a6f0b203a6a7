"""Resent data segments: what a sender sent again, whatever Wireshark names it.

Wireshark calls a segment behind the next expected seq "out of order" when it comes within the
handshake's RTT of the newest data. On the lab's sub-millisecond paths that is where a sender's
resends come, so a run with 5% loss showed 2 retransmissions and 13 out-of-order segments (and,
once in CI, none at all), tshark agreeing. `Connection.resent` counts the data segments that carry
a byte the capture had already shown: a resend at the sender's capture point, whatever its name;
a segment that only fills a hole (its bytes never shown) is not one.

Checked on hand-built connections, on a capture the lab recorded at 5% loss, and against a
brute-force reading (every byte range each side showed) on every capture in tests/data.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest

from lab.analysis import analyze, analyze_connection, split_streams
from lab.capture import Packet, read_capture
from lab.commands import analyze as command
from lab.tcp import SEQ_HALF, SEQ_MASK
from tests.unit.packets import ACK, PSH, Flow

DATA = Path(__file__).resolve().parents[1] / "data"
LOSS5 = DATA / "loss" / "loss5-keepalive.pcap"


def one(packets: list[Packet]):
    (stream,) = split_streams(packets)
    return analyze_connection(0, stream)


def bulk(flow: Flow, t: float, starts: list[int], gap: float = 0.00001) -> float:
    """The server sends 1,000-byte segments at the given relative starts, `gap` apart."""
    base = flow.isn["server"] + 1
    for i, start in enumerate(starts):
        flow.send("server", t + i * gap, ACK, 1000, seq=base + start)
    return t + len(starts) * gap


def test_a_quick_resend_is_resent_though_wireshark_says_out_of_order() -> None:
    packets: list[Packet] = []
    flow = Flow(packets)
    flow.handshake(0.0, rtt=0.0001)  # a LAN: 100 µs
    flow.send("client", 0.001, PSH | ACK, 100)
    t = bulk(flow, 0.002, [0, 1000, 2000, 3000, 4000])
    bulk(flow, t + 0.00002, [2000])  # sent again 20 µs after the newest data
    c = one(packets)
    assert c.out_of_order == [0, 1] and c.retransmissions == [0, 0]  # Wireshark's names
    assert c.resent == [0, 1]


def test_a_segment_filling_a_hole_is_not_resent_but_one_repeating_a_byte_is() -> None:
    packets: list[Packet] = []
    flow = Flow(packets)
    flow.handshake(0.0)
    flow.send("client", 0.011, PSH | ACK, 100)
    # 1000-1999 and 3000-3999 are missing (lost before the capture point), then arrive
    t = bulk(flow, 0.02, [0, 2000, 4000])
    t = bulk(flow, t, [1000])  # fills the first hole exactly: never shown
    t = bulk(flow, t, [2500])  # half in the second hole, half shown before: a resend
    t = bulk(flow, t, [3500])  # the rest of the second hole and 4000-4499, shown
    bulk(flow, t, [3000])  # all of it shown by now
    c = one(packets)
    assert c.resent == [0, 3]
    behind = c.retransmissions[1] + c.out_of_order[1] + c.spurious_retransmission[1]
    assert behind == 4  # Wireshark looks at every one of them


def test_every_wireshark_name_for_a_repeat_is_a_resend_and_a_keep_alive_is_not() -> None:
    packets: list[Packet] = []
    flow = Flow(packets, server_isn=5000)
    flow.handshake(0.0, rtt=0.010)
    flow.send("client", 0.011, PSH | ACK, 100)
    s = 5001
    flow.send("server", 0.020, ACK, 1000, seq=s + 1000)
    flow.send("server", 0.0201, ACK, 1000, seq=s)  # out of order, filling a hole: not resent
    flow.send("client", 0.030, ACK)
    flow.send("server", 0.5, ACK, 1000, seq=s)  # spurious: resent
    flow.send("server", 0.6, ACK, 1000, seq=s + 2000)
    flow.send("server", 0.6001, ACK, 1000, seq=s + 3000)
    flow.send("server", 0.6002, ACK, 1000, seq=s + 4000)
    for i in range(3):
        flow.send("client", 0.605 + i * 0.0001, ACK)
        packets[-1] = packets[-1]._replace(ack=s + 2000)
    flow.send("server", 0.6055, ACK, 1000, seq=s + 2000)  # fast retransmission: resent
    flow.send("server", 2.0, ACK, 1000, seq=s + 3000)  # a timeout's: resent
    flow.send("client", 10.0, ACK, 1, seq=flow.next["client"] - 1)  # a keep-alive
    c = one(packets)
    assert (c.out_of_order, c.spurious_retransmission) == ([0, 1], [0, 1])
    assert c.retransmissions == [0, 2] and c.keep_alive == [1, 0]
    assert c.resent == [0, 3]


def test_a_segment_from_before_the_capture_started_is_not_resent() -> None:
    packets: list[Packet] = []
    flow = Flow(packets, server_isn=5000)
    for i, n in enumerate([1, 0, 2, 3, 1]):  # 0 comes late; 1 comes twice
        flow.send("server", 10.0 + i * 0.01, ACK, 1000, seq=5001 + n * 1000)
    assert one(packets).resent == [0, 1]


def test_resends_are_found_across_the_sequence_wrap() -> None:
    packets: list[Packet] = []
    flow = Flow(packets, server_isn=SEQ_MASK - 2500)
    flow.handshake(0.0)
    t = bulk(flow, 0.02, [0, 1000, 3000, 4000])  # the wrap is inside the third; 2000 missing
    bulk(flow, t, [2000, 3000])  # the hole, then a repeat past the wrap
    assert one(packets).resent == [0, 1]


def test_the_lab_capture_at_5_percent_loss_resends_more_than_wireshark_retransmits() -> None:
    """Recorded by the lab (tests/data/loss/README.md): 400 KiB over one connection, 5% loss each
    way, no delay. The capture is the server's, so every server segment behind its newest one
    is a resend: Wireshark names most of them out of order."""
    (c,) = analyze(read_capture(LOSS5).packets).connections
    server = 1
    assert c.resent[server] == (
        c.retransmissions[server] + c.out_of_order[server] + c.spurious_retransmission[server]
    )
    assert c.out_of_order[server] > c.retransmissions[server]
    assert c.resent[server] > c.retransmissions[server]


# --- the brute-force reading -------------------------------------------------------------------


def brute_force_resent(packets: list[Packet], caddr: str, cport: int) -> list[int]:
    """Per side, data segments sharing a byte with any data segment that side showed before,
    from a list of every byte range shown (unwrapped from each side's first seq); keep-alives
    (at most one byte, one below the highest end) do not count."""
    shown: list[list[tuple[int, int]]] = [[], []]
    last: list[tuple[int, int] | None] = [None, None]  # (seq, unwrapped) of the side's last
    high: list[int | None] = [None, None]
    resent = [0, 0]
    for p in packets:
        d = 0 if (p.src, p.sport) == (caddr, cport) else 1
        if last[d] is None:
            start = p.seq
        else:
            seq0, u0 = last[d]
            start = u0 + ((p.seq - seq0 + SEQ_HALF) & SEQ_MASK) - SEQ_HALF
        last[d] = (p.seq, start)
        if not p.payload_len:
            continue
        end = start + p.payload_len
        if high[d] is not None and p.payload_len <= 1 and start == high[d] - 1:
            continue
        if any(lo < end and start < hi for lo, hi in shown[d]):
            resent[d] += 1
        shown[d].append((start, end))
        high[d] = end if high[d] is None else max(high[d], end)
    return resent


CAPTURES = sorted(p for p in DATA.rglob("*") if p.suffix in (".pcap", ".pcapng"))


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: str(p.relative_to(DATA)))
def test_resent_agrees_with_a_brute_force_reading(path: Path) -> None:
    capture = read_capture(path)
    for i, stream in enumerate(split_streams(capture.packets)):
        c = analyze_connection(i, stream)
        assert c.resent == brute_force_resent(stream, c.client_addr, c.client_port), i


def test_lab_analyze_shows_the_resends_beside_wiresharks_names() -> None:
    capture = read_capture(LOSS5)
    analysis = analyze(capture.packets)
    out = io.StringIO()
    command.print_table(capture, analysis, out=out)
    text = out.getvalue()
    assert "retransmissions 2," in text
    assert "Wireshark's other names: out of order 13," in text
    assert "resent data segments 15 (a byte this capture had shown before" in text
    (c,) = analysis.connections
    encode = json.JSONEncoder(separators=(",", ":")).encode
    assert command.connection_json(c) == encode(c.to_dict())
    assert json.loads(command.connection_json(c))["resent"] == {"client": 0, "server": 15}


@pytest.mark.parametrize("seed", range(20))
def test_resent_agrees_with_the_brute_force_on_random_flows(seed: int) -> None:
    """A sender whose segments are lost before the capture point (holes), resent whole or in
    part, early or late, many holes open at once: the walk's holes against every byte range."""
    rng = random.Random(seed)
    packets: list[Packet] = []
    flow = Flow(packets, server_isn=rng.randrange(SEQ_MASK))
    flow.handshake(0.0, rtt=0.0001)
    base, t, sent = flow.isn["server"] + 1, 0.001, []
    for i in range(400):
        t += 0.00001
        if sent and rng.random() < 0.2:  # a resend of some earlier range, whole or a part
            start = rng.choice(sent) + rng.choice([0, 0, 300, -300])
            flow.send("server", t, ACK, rng.choice([300, 1000, 1700]), seq=base + max(0, start))
        else:
            start = i * 1000
            sent.append(start)
            if rng.random() < 0.1:
                continue  # lost before the capture: a hole
            flow.send("server", t, ACK, 1000, seq=base + start)
        if rng.random() < 0.3:
            flow.send("client", t, ACK)
    c = one(packets)
    assert c.resent == brute_force_resent(packets, *flow.client)
    assert c.resent[1] > 0
