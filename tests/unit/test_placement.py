"""Where each container of a run goes (lab.placement), and the runner's pure parts.

Engines here are plain named objects: a placement only decides, it never talks to Docker.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import docker.errors
import pytest
import requests

from lab import hosts
from lab.engine import ContainerState, Engine
from lab.placement import Placement, Side, role_of, side_of
from lab.runner import ModePlan, capture_drops, ended_early, shaper_method


@dataclass(frozen=True)
class NamedEngine:
    name: str


def every_spec(run_id: str = "r1", mode: str = "m") -> list[dict]:
    """One spec per container role of a shaped run, as lab.runner builds them."""
    common = {"image": "i", "run_id": run_id, "mode": mode, "limits": hosts.Limits()}
    return [
        hosts.server_spec(**common, network="n", command=[]),
        hosts.capture_spec(**common, server_id="s", snaplen=0),
        hosts.shaper_spec(**common, side="server", target_id="s", command=[]),
        hosts.netns_spec(**common, network="n"),
        hosts.shaper_spec(**common, side="client", target_id="h", command=[]),
        hosts.capture_spec(**common, server_id="h", snaplen=0, role="capture-client"),
        hosts.client_spec(**common, command=[], netns_of="h"),
    ]


def test_each_role_belongs_to_its_side():
    sides = {role_of(spec): side_of(role_of(spec)) for spec in every_spec()}
    assert sides == {
        "server": Side.SERVER,
        "capture": Side.SERVER,
        "shaper-server": Side.SERVER,
        "netns": Side.CLIENT,
        "shaper-client": Side.CLIENT,
        "capture-client": Side.CLIENT,
        "client": Side.CLIENT,
    }


@pytest.mark.parametrize("role", ["network", "shaper", "", "Server"])
def test_a_role_no_side_runs_is_refused(role):
    with pytest.raises(ValueError, match="no side runs the role"):
        side_of(role)


def test_containers_sharing_a_namespace_share_an_engine():
    """network_mode=container:<id> only works on one engine: each such pair is one side."""
    placement = Placement(server=NamedEngine("a"), client=NamedEngine("b"))
    specs = every_spec()
    by_name = {s["name"]: s for s in specs}
    holders = {"s": "tcplab-r1-m-server", "h": "tcplab-r1-m-netns"}
    for spec in specs:
        mode = spec.get("network_mode", "")
        if mode.startswith("container:"):
            holder = by_name[holders[mode.partition(":")[2]]]
            assert placement.engine_for_spec(spec) == placement.engine_for_spec(holder), spec


def test_two_engines_each_side_on_its_own():
    a, b = NamedEngine("server-host"), NamedEngine("client-host")
    placement = Placement(server=a, client=b)
    where = {role_of(s): placement.engine_for_spec(s).name for s in every_spec()}
    assert where == {
        "server": "server-host",
        "capture": "server-host",
        "shaper-server": "server-host",
        "netns": "client-host",
        "shaper-client": "client-host",
        "capture-client": "client-host",
        "client": "client-host",
    }
    assert placement.split
    assert placement.engines() == (a, b)
    assert placement.network_engine is a
    assert placement.engine_for_side(Side.CLIENT) is b


def test_single_puts_everything_on_one_engine_once():
    only = NamedEngine("local")
    placement = Placement.single(only)
    assert {placement.engine_for_spec(s) for s in every_spec()} == {only}
    assert not placement.split
    assert placement.engines() == (only,)
    assert placement.network_engine is only


def test_equal_but_distinct_engines_are_two_engines():
    """Two engines with the same name are still two daemons: teardown must visit both."""
    a, b = NamedEngine("x"), NamedEngine("x")
    assert Placement(server=a, client=b).engines() == (a, b)


def test_network_spec_is_labelled_internal_and_named_for_the_mode():
    spec = hosts.network_spec(run_id="20260101T000000Z-page10", mode="http1.0-r2")
    assert spec["name"] == "tcplab-20260101T000000Z-page10-http1.0-r2"
    assert spec["internal"] is True and spec["driver"] == "bridge"
    assert spec["labels"]["tcplab.project"] == "1"
    assert spec["labels"]["tcplab.run"] == "20260101T000000Z-page10"
    assert spec["labels"][hosts.ROLE_LABEL] == "network"


def plan(repeat: int, repeats: int) -> ModePlan:
    return ModePlan(
        mode="keepalive", repeat=repeat, repeats=repeats, folder=Path("f"), server_argv=[],
        client_argv=[], shaper_argv=None, limits=hosts.Limits(), snaplen=0,
        ready_timeout=1, run_timeout=1, drain_s=0,
    )  # fmt: skip


def test_plan_tag_names_the_repeat_only_when_there_are_several():
    assert plan(1, 1).tag == "keepalive"
    assert plan(2, 3).tag == "keepalive-r2"


RUNNING = ContainerState("running", 0)


def test_ended_early_nothing_when_both_still_run():
    assert ended_early(RUNNING, RUNNING) == []


def test_ended_early_a_dead_server_blinds_the_capture():
    assert ended_early(RUNNING, ContainerState("exited", 137)) == [
        "the server ended during the run (exit 137)",
        "the capture saw nothing after the server's namespace went away",
    ]


def test_ended_early_a_killed_capture():
    assert ended_early(ContainerState("dead", 137), RUNNING) == [
        "the capture (tcpdump) ended during the run (exit 137)"
    ]


def test_ended_early_a_paused_server_has_not_ended():
    assert ended_early(RUNNING, ContainerState("paused", 0)) == []


def test_capture_drops_from_tcpdumps_account():
    log = "listening on eth0\n1234 packets captured\n1240 packets received by filter\n"
    assert capture_drops(log + "6 packets dropped by kernel\n") == 6
    assert capture_drops(log + "1 packet dropped by kernel\n") == 1
    assert capture_drops(log) is None


def test_shaper_method_from_its_ready_line():
    log = "shaper: starting\nshaper ready method=nfqueue rtt=50\n"
    assert shaper_method(log) == "nfqueue"
    assert shaper_method("shaper: starting\n") == "unknown"


def test_engine_errors_become_one_line_and_others_pass():
    gone = docker.errors.NotFound("404", explanation="No such container: abc\nmore")
    assert Engine.describe_error(gone) == "No such container: abc"
    assert Engine.describe_error(requests.ConnectionError("refused")) == "refused"
    assert Engine.describe_error(ValueError("not the engine's")) is None
