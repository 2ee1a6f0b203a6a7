"""lab.analysis' detail of one connection (what the report's charts draw): packet categories
that agree with the analysis' counts, relative seq/ack, exchanges and phases."""

from __future__ import annotations

from collections import Counter

import pytest

from lab.analysis import (
    DATA,
    HANDSHAKE,
    OTHER,
    PURE_ACK,
    TEARDOWN,
    describe,
    details,
    split_streams,
)
from lab.tcp import ACK, FIN, PSH, RST, SYN, flag_names
from tests.unit.packets import Flow, conversation, sample_http10


def test_categories_add_up_to_the_connections_counts():
    d = describe(0, conversation(response=3000))
    c = d.connection
    counted = Counter(d.categories)
    assert counted == {
        HANDSHAKE: c.handshake_packets,
        DATA: sum(c.data_segments),
        PURE_ACK: sum(c.pure_acks),
        TEARDOWN: c.teardown_packets,
    }
    assert sum(counted.values()) == c.packets == 12


def test_categories_of_a_reset_and_of_a_fin_carrying_data():
    pk: list = []
    flow = Flow(pk)
    flow.handshake(0.0)
    flow.send("client", 0.011, PSH | ACK, 100)
    flow.send("server", 0.015, FIN | PSH | ACK, 500)  # the response and the close at once
    flow.send("client", 0.02, RST | ACK)
    d = describe(0, pk)
    assert d.categories == [HANDSHAKE] * 3 + [DATA, TEARDOWN, OTHER]
    # the analysis counts the FIN with data twice (teardown and data), the RST nowhere
    assert d.connection.teardown_packets == 1 and d.connection.data_segments == [1, 1]
    assert d.phases.fin == pytest.approx(0.015) and d.phases.end == pytest.approx(0.02)


def test_the_final_ack_with_data_is_data_and_counts_in_the_handshake_too():
    pk: list = []
    flow = Flow(pk)
    flow.send("client", 0.0, SYN)
    flow.send("server", 0.005, SYN | ACK)
    flow.send("client", 0.01, PSH | ACK, 100)  # the request completes the handshake
    d = describe(0, pk)
    assert d.categories == [HANDSHAKE, HANDSHAKE, DATA]
    assert d.connection.handshake_packets == 3 and d.phases.established == pytest.approx(0.01)


def test_ladder_numbers_are_relative_to_each_sides_isn_across_the_wrap():
    pk: list = []
    flow = Flow(pk, client_isn=2**32 - 10, server_isn=2**32 - 1)
    flow.handshake(0.0)
    flow.send("client", 0.011, PSH | ACK, 100)
    flow.send("server", 0.015, PSH | ACK, 300)
    flow.close3(0.02)
    rows = describe(0, pk).ladder
    assert [(flag_names(r.flags), r.seq, r.ack, r.length) for r in rows] == [
        ("SYN", 0, None, 0),
        ("SYN, ACK", 0, 1, 0),
        ("ACK", 1, 1, 0),
        ("PSH, ACK", 1, 1, 100),
        ("PSH, ACK", 1, 101, 300),
        ("FIN, ACK", 301, 101, 0),
        ("FIN, ACK", 101, 302, 0),
        ("ACK", 302, 102, 0),
    ]
    assert [r.from_client for r in rows[:3]] == [True, False, True]
    assert rows[1].t == pytest.approx(0.005)


def test_exchanges_in_order_with_request_in_two_segments_and_the_stevens_series():
    pk: list = []
    flow = Flow(pk)
    flow.handshake(0.0)
    flow.send("client", 0.011, ACK, 50)
    flow.send("client", 0.012, PSH | ACK, 50)  # the same request, second segment
    flow.send("server", 0.020, ACK, 1448)
    flow.send("server", 0.021, PSH | ACK, 552)
    flow.send("client", 0.030, PSH | ACK, 100)
    flow.send("server", 0.040, PSH | ACK, 700)
    d = describe(0, pk)
    assert [(e.request, e.first_byte, e.last_byte, e.nbytes) for e in d.exchanges] == [
        (0.011, 0.020, 0.021, 2000),
        (0.030, 0.040, 0.040, 700),
    ]
    assert d.exchanges[0].series() == [
        pytest.approx((9.0, 1448)),
        pytest.approx((10.0, 2000)),
    ]
    assert d.phases.exchanges == [(0.011, 0.020, 0.021), (0.030, 0.040, 0.040)]
    assert d.phases.syn == 0.0 and d.phases.fin is None and d.phases.end is None


def test_details_describe_only_the_wanted_streams_and_count_them_all():
    packets = sample_http10()
    total = len(split_streams(packets))
    chosen, counted = details(packets, {1})
    assert counted == total > 1
    assert [d.stream for d in chosen] == [1]
    everything, _ = details(packets)
    assert [d.stream for d in everything] == list(range(total))
    assert all(d.opened for d in everything)
