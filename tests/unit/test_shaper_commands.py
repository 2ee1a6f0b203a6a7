"""The tc/iptables argv the shaper would run, and the sidecar placement: pure, no kernel."""

from __future__ import annotations

import pytest

from shaper import netem, placement, rules
from wire import units


@pytest.mark.parametrize(
    ("text", "bps", "spelled"),
    [
        pytest.param("20mbit", 20_000_000, "20mbit", id="mbit"),
        pytest.param("1.5Mbit", 1_500_000, "1500kbit", id="fraction"),
        pytest.param("100kbit", 100_000, "100kbit", id="kbit"),
        pytest.param("1gbit", 1_000_000_000, "1gbit", id="gbit"),
    ],
)
def test_parse_rate(text: str, bps: int, spelled: str) -> None:
    assert units.require_rate(text) == bps
    assert units.format_rate(bps) == spelled


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("20", id="no-unit"),
        pytest.param("20mbps", id="bytes-unit"),
        pytest.param("-1mbit", id="negative"),
        pytest.param("1bit", id="too-slow"),
        pytest.param("20mbit; reboot", id="shell-junk"),
    ],
)
def test_bad_rates_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        units.require_rate(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("3000", (3000, 3000), id="one"),
        pytest.param("3000-3010", (3000, 3010), id="span"),
    ],
)
def test_parse_ports(text: str, expected: tuple[int, int]) -> None:
    assert rules.parse_ports(text) == expected


@pytest.mark.parametrize("text", ["0", "3010-3000", "70000", "30a", "1-2-3"])
def test_bad_ports_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="ports"):
        rules.parse_ports(text)


def test_queue_rules_hold_both_directions_on_input_and_undo_exactly() -> None:
    steps = rules.queue_steps("eth0", (3000, 3010), 0)
    assert [s.apply for s in steps] == [
        ["iptables", "-w", "5", "-I", "INPUT", "-i", "eth0", "-p", "tcp", "--sport", "3000:3010",
         "-j", "NFQUEUE", "--queue-num", "0"],
        ["iptables", "-w", "5", "-I", "INPUT", "-i", "eth0", "-p", "tcp", "--dport", "3000:3010",
         "-j", "NFQUEUE", "--queue-num", "0"],
    ]  # fmt: skip
    for step in steps:
        # holding on OUTPUT collapses throughput (docs/architecture.md)
        assert "OUTPUT" not in step.apply
        assert step.undo[:4] == ["iptables", "-w", "5", "-D"]
        assert step.undo[4:] == step.apply[4:]


def test_tbf_on_egress() -> None:
    (step,) = rules.rate_steps("eth0", 20_000_000)
    assert step.apply == [
        "tc", "qdisc", "add", "dev", "eth0", "root", "handle", "1:",
        "tbf", "rate", "20mbit", "burst", "5000", "latency", "100ms",
    ]  # fmt: skip
    assert step.undo == ["tc", "qdisc", "del", "dev", "eth0", "root"]


def test_tbf_burst_never_below_two_frames() -> None:
    assert rules.tbf_burst(1_000_000) == 2 * rules.MTU_FRAME
    assert rules.tbf_burst(1_000_000_000) == 250_000


@pytest.mark.parametrize(
    ("delay", "jitter", "loss", "expected"),
    [
        pytest.param(0.02, 0, 0, ["delay", "20ms"], id="delay"),
        pytest.param(0.02, 0.005, 0, ["delay", "20ms", "5ms"], id="jitter"),
        pytest.param(0.02, 0, 0.05, ["delay", "20ms", "loss", "random", "5%"], id="loss"),
        pytest.param(0.0125, 0.0005, 0.001, ["delay", "12.5ms", "0.5ms", "loss", "random", "0.1%"],
                     id="fractions"),
    ],
)  # fmt: skip
def test_netem_args(delay: float, jitter: float, loss: float, expected: list[str]) -> None:
    assert netem.netem_args(delay, jitter, loss) == ["netem", "limit", "10000", *expected]


def test_netem_with_rate_puts_tbf_under_netem_and_one_undo_removes_both() -> None:
    root, child = netem.netem_steps("eth0", 0.02, bps=20_000_000)
    assert root.apply[:8] == ["tc", "qdisc", "add", "dev", "eth0", "root", "handle", "1:"]
    assert root.apply[8] == "netem"
    assert child.apply[4:9] == ["eth0", "parent", "1:1", "handle", "10:"]
    assert child.apply[9:11] == ["tbf", "rate"]
    assert root.undo == ["tc", "qdisc", "del", "dev", "eth0", "root"]
    assert child.undo == []


def test_netem_without_rate_is_one_qdisc() -> None:
    assert len(netem.netem_steps("eth0", 0.02)) == 1


@pytest.mark.parametrize(
    ("requested", "probe_ok", "method"),
    [
        pytest.param("auto", True, "netem", id="auto-kernel-has-netem"),
        pytest.param("auto", False, "nfqueue", id="auto-no-netem"),
        pytest.param("nfqueue", True, "nfqueue", id="forced-nfqueue"),
        pytest.param("netem", False, "netem", id="forced-netem-fails-later-loudly"),
    ],
)
def test_choose_method(requested: str, probe_ok: bool, method: str) -> None:
    assert netem.choose_method(requested, probe_ok) == method


def test_probe_is_a_netem_root_and_its_removal() -> None:
    step = netem.probe("eth0")
    assert step.apply == ["tc", "qdisc", "add", "dev", "eth0", "root", "netem", "delay", "1ms"]
    assert step.undo == ["tc", "qdisc", "del", "dev", "eth0", "root"]


def test_placement_splits_rtt_and_jitter_between_the_ends() -> None:
    args = placement.sidecar_args(rtt_ms=50, jitter_ms=4, loss_pct=1, rate="20mbit", seed=3)
    for role, seed in (("client", "6"), ("server", "7")):
        a = args[role]
        assert a[a.index("--rtt") + 1] == "25"
        assert a[a.index("--jitter") + 1] == "2"
        assert a[a.index("--loss") + 1] == "1"
        assert a[a.index("--rate") + 1] == "20mbit"
        assert a[a.index("--seed") + 1] == seed


def test_placement_without_conditions_passes_no_conditions() -> None:
    args = placement.sidecar_args()
    assert "--rtt" not in args["client"]
    assert "--seed" not in args["server"]
