"""Engines on several machines, the pure parts: engine URLs (`hosts:`, `--engine`), the Swarm
preflight's decisions, the overlay network's spec, the image-sync plan and the path record."""

from __future__ import annotations

from pathlib import Path

import pytest

import lab
from lab import cli, hosts
from lab.capture import Packet
from lab.image_sync import Push, images_for_side, plan
from lab.netpath import path_record, syn_mss
from lab.placement import (
    Placement,
    Side,
    check_engines,
    choose_engines,
    engine_url_problem,
    parse_engine_args,
)
from lab.preflight import network_side, same_engine, same_swarm, swarm_of, swarm_problem
from lab.scenario import dump_yaml, parse_scenario

REPO = Path(__file__).resolve().parents[2]
PAGE10 = REPO / "scenarios" / "page10.yaml"


# --- Engine URLs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "unix:///var/run/docker.sock",
        "tcp://10.0.0.12:2376",
        "tcp://node1",
        "ssh://lab@10.0.0.11",
        "ssh://lab@host.example:2222",
        "tcp://[fd00::1]:2375",
    ],
)
def test_engine_urls_the_sdk_takes_are_accepted(url):
    assert engine_url_problem(url) is None


@pytest.mark.parametrize(
    "url, says",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("http://10.0.0.1:2375", "scheme 'http'"),
        ("10.0.0.1:2375", "no scheme"),
        ("tcp://", "names no host"),
        ("ssh://", "names no host"),
        ("unix://docker.sock", "absolute path"),
        ("tcp://h:99999", "out of range"),
        ("tcp://h:port", "tcp://h:port"),
        ("tcp://lab@h:2375", "takes no user"),
        ("tcp://h:2375/v1.41", "only tcp://"),
        ("tcp://h :2375", "whitespace"),
    ],
)
def test_bad_engine_urls_are_refused_in_one_line(url, says):
    problem = engine_url_problem(url)
    assert problem is not None and says in problem and "\n" not in problem


def test_engine_args_by_side():
    got = parse_engine_args(["server=tcp://10.0.0.11:2375", "client=ssh://lab@10.0.0.12"])
    assert got == {"server": "tcp://10.0.0.11:2375", "client": "ssh://lab@10.0.0.12"}


@pytest.mark.parametrize(
    "args, says",
    [
        (["tcp://10.0.0.11:2375"], "expected SIDE=URL"),
        (["capture=tcp://h"], "unknown role 'capture'"),
        (["server=tcp://a", "server=tcp://b"], "given twice"),
        (["server="], "empty"),
        (["client=ftp://h"], "scheme 'ftp'"),
    ],
)
def test_bad_engine_args_are_refused(args, says):
    with pytest.raises(ValueError, match=says):
        parse_engine_args(args)


def test_api_engines_are_checked_like_the_command_line():
    assert check_engines({"client": "tcp://h:2375"}) == {"client": "tcp://h:2375"}
    with pytest.raises(ValueError, match="unknown role"):
        check_engines({"proxy": "tcp://h"})
    with pytest.raises(ValueError, match="empty"):
        check_engines({"server": None})


def test_the_command_line_wins_side_by_side():
    scenario = {"server": "tcp://a:2375", "client": "tcp://b:2375"}
    assert choose_engines(scenario, {"server": "tcp://c:2375"}) == {
        "server": "tcp://c:2375",
        "client": "tcp://b:2375",
    }
    assert choose_engines({}, {}) == {}


# --- The scenario's hosts: block --------------------------------------------------------------

HOSTS = '\nhosts:\n  server: {engine: "ssh://lab@10.0.0.11"}\n  client: {engine: "tcp://10.0.0.12:2376"}\n'


def test_hosts_block_names_each_sides_engine_and_survives_a_dump():
    scenario = parse_scenario(PAGE10.read_text() + HOSTS)
    engines = {"server": "ssh://lab@10.0.0.11", "client": "tcp://10.0.0.12:2376"}
    assert scenario.hosts.engines() == engines
    assert parse_scenario(dump_yaml(scenario)).hosts.engines() == engines


def test_no_hosts_block_means_one_engine_and_nothing_in_the_dump():
    scenario = parse_scenario(PAGE10.read_text())
    assert scenario.hosts is None
    assert "hosts" not in scenario.to_dict()


@pytest.mark.parametrize(
    "block, says",
    [
        ('hosts: {server: {engine: "http://x"}}', "hosts.server.engine: engine URL 'http://x'"),
        ('hosts: {proxy: {engine: "tcp://x"}}', "hosts.proxy: unknown key"),
        ("hosts: {server: {}}", "hosts.server.engine: required field missing"),
        ('hosts: {server: "tcp://x"}', "hosts.server: expected a mapping"),
    ],
)
def test_bad_hosts_blocks_name_the_line_and_field(block, says):
    with pytest.raises(lab.ScenarioError, match=says):
        parse_scenario(PAGE10.read_text() + "\n" + block + "\n", "page10.yaml")


def test_bad_engines_refused_before_anything_starts(tmp_path):
    with pytest.raises(lab.ScenarioError, match="unknown role"):
        lab.run(PAGE10, out=tmp_path, engines={"proxy": "tcp://h:2375"})
    assert list(tmp_path.iterdir()) == []


def test_bad_engine_argument_exits_2_in_one_line(tmp_path, capsys):
    code = cli.main(["run", str(PAGE10), "--out", str(tmp_path), "--engine", "server=http://h"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "scheme 'http'" in err
    assert list(tmp_path.iterdir()) == []


# --- Preflight: one Swarm, a manager ----------------------------------------------------------


def info(engine_id, state="active", node="", cluster="", manager=False, managers=()):
    swarm = {
        "NodeID": node,
        "LocalNodeState": state,
        "ControlAvailable": manager,
        "RemoteManagers": [{"NodeID": m, "Addr": f"{m}:2377"} for m in managers] or None,
    }
    if cluster:
        swarm["Cluster"] = {"ID": cluster}
    return {"ID": engine_id, "Swarm": swarm}


MANAGER = swarm_of(info("E1", node="n1", cluster="c1", manager=True, managers=["n1"]))
WORKER = swarm_of(info("E2", node="n2", managers=["n1"]))
OTHER_MANAGER = swarm_of(info("E3", node="n3", cluster="c2", manager=True, managers=["n3"]))
OTHER_WORKER = swarm_of(info("E4", node="n4", managers=["n3"]))
ALONE = swarm_of(info("E5", state="inactive"))


def test_swarm_facts_from_docker_info():
    assert MANAGER.active and MANAGER.manager and MANAGER.cluster_id == "c1"
    assert WORKER.managers == {"n1"} and not WORKER.manager and WORKER.cluster_id == ""
    assert swarm_of({"ID": "x"}).state == "inactive"  # an engine without a Swarm section


def test_a_manager_and_its_worker_are_one_swarm_others_are_not():
    assert same_swarm(MANAGER, WORKER) and same_swarm(WORKER, MANAGER)
    assert not same_swarm(MANAGER, OTHER_MANAGER)
    assert not same_swarm(MANAGER, OTHER_WORKER)
    assert not same_swarm(WORKER, OTHER_WORKER)
    assert not same_swarm(MANAGER, ALONE)


def test_no_problem_in_one_swarm_and_the_manager_makes_the_network():
    assert swarm_problem(MANAGER, WORKER, "tcp://a", "tcp://b") is None
    assert network_side(MANAGER, WORKER) == "server"
    assert network_side(WORKER, MANAGER) == "client"


def test_an_engine_outside_any_swarm_gets_the_two_commands():
    problem = swarm_problem(MANAGER, ALONE, "tcp://a", "tcp://b")
    assert "client's engine (tcp://b) is not in a Swarm" in problem
    assert "docker swarm init --advertise-addr IP" in problem
    assert "docker swarm join --token TOKEN IP:2377" in problem


def test_two_swarms_are_refused():
    problem = swarm_problem(MANAGER, OTHER_WORKER, "tcp://a", "tcp://b")
    assert "different Swarms" in problem and "docker swarm join" in problem


def test_two_workers_of_one_swarm_lack_a_manager():
    second_worker = swarm_of(info("E6", node="n6", managers=["n1"]))
    assert "neither engine" in swarm_problem(WORKER, second_worker, "tcp://a", "tcp://b")


def test_two_urls_of_one_engine_are_one_engine():
    assert same_engine(MANAGER, swarm_of(info("E1", node="n1", cluster="c1", manager=True)))
    assert not same_engine(MANAGER, WORKER)
    assert not same_engine(swarm_of({}), swarm_of({}))  # no ID: never assumed the same


def test_the_network_is_made_on_the_side_the_placement_says():
    a, b = object(), object()
    assert Placement(server=a, client=b).network_engine is a
    assert Placement(server=a, client=b, network_side=Side.CLIENT).network_engine is b


# --- The overlay network --------------------------------------------------------------------


def test_two_engines_get_an_attachable_internal_overlay_with_its_mtu_pinned():
    spec = hosts.network_spec(run_id="20260101T000000Z-page10", mode="http1.0", overlay=True)
    assert spec["driver"] == "overlay" and spec["attachable"] is True
    assert spec["internal"] is True
    assert spec["options"] == {"com.docker.network.driver.mtu": "1500"}
    assert hosts.OVERLAY_MTU == 1450
    assert spec["labels"]["tcplab.run"] == "20260101T000000Z-page10"


def test_overlay_names_are_dns_labels():
    spec = hosts.network_spec(run_id="20260101T000000Z-page10", mode="http1.0", overlay=True)
    name = spec["name"]
    assert len(name) <= 63 and name.replace("-", "").isalnum() and name == name.lower()
    long = hosts.network_spec(run_id="20260101T000000Z-" + "a" * 63, mode="m" * 63, overlay=True)
    other = hosts.network_spec(run_id="20260101T000000Z-" + "a" * 63, mode="m" * 62, overlay=True)
    assert len(long["name"]) <= 63 and long["name"] != other["name"]
    assert hosts.dns_label("tcplab-run-x") == "tcplab-run-x"


# --- Images without a registry ----------------------------------------------------------------


def test_each_side_gets_the_images_its_containers_start():
    assert images_for_side(Side.SERVER, shaped=False) == ("capture", "server")
    assert images_for_side(Side.SERVER, shaped=True) == ("capture", "server", "shaper")
    assert images_for_side(Side.CLIENT, shaped=False) == ("client",)
    assert images_for_side(Side.CLIENT, shaped=True) == ("client", "shaper")
    # captured on both ends: tcpdump's image goes to the client's engine too
    assert images_for_side(Side.CLIENT, False, client_capture=True) == ("capture", "client")
    assert images_for_side(Side.SERVER, False, client_capture=True) == ("capture", "server")


def test_sync_plan_pushes_only_what_an_engine_lacks():
    wanted = {"s:1": "sha256:s", "c:1": "sha256:c", "p:1": "sha256:p"}
    needs = {"A": ["s:1", "p:1"], "B": ["c:1"], "C": ["c:1", "p:1"]}
    present = {
        "A": {"s:1": "sha256:s", "p:1": "sha256:p"},  # has both: costs nothing
        "B": {"c:1": None},  # lacks it
        "C": {"c:1": "sha256:old", "p:1": "sha256:p"},  # same tag, other content
    }
    assert plan(wanted, needs, present) == [Push("B", ("c:1",)), Push("C", ("c:1",))]


def test_sync_plan_for_a_fresh_engine_is_one_archive_of_everything():
    wanted = {"s:1": "sha256:s", "c:1": "sha256:c"}
    assert plan(wanted, {"A": ["s:1", "c:1"]}, {}) == [Push("A", ("c:1", "s:1"))]


# --- The path --------------------------------------------------------------------------------


def packet(mss: int) -> Packet:
    return Packet(0.0, "a", "b", 1, 2, 2, 0, 0, 0, 60, 0, 1, mss)


def test_the_path_keeps_the_smallest_syn_mss_and_the_median_probe():
    assert syn_mss([packet(1410), packet(0), packet(1460)]) == 1410
    assert syn_mss([packet(0)]) is None
    record = path_record(
        "overlay",
        [{"base_rtt_ms": 0.3, "mtu": 1450}, None, {"base_rtt_ms": 0.5, "mtu": 1450}],
        1410,
    )
    assert (record.network_driver, record.mtu, record.syn_mss) == ("overlay", 1450, 1410)
    assert record.base_rtt_ms == pytest.approx(0.4)
    assert path_record("overlay", [{"base_rtt_ms": None, "mtu": None}], None).mtu is None


def test_clean_refuses_a_bad_engine_url_before_touching_any(capsys):
    assert cli.main(["clean", "--engine", "tcp://node1:2375", "--engine", "http://h"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "scheme 'http'" in err


# --- Removing an overlay network while the Swarm drains its endpoints ------------------------


class DrainingNetwork:
    """A network that is "in use" for its first `busy` removals, as an overlay is for a moment
    after the other engine's containers went."""

    def __init__(self, busy: int, error: str = "network tcplab-x has active endpoints") -> None:
        self.busy, self.error, self.attempts = busy, error, 0

    def remove(self) -> None:
        from lab.engine import APIError

        self.attempts += 1
        if self.attempts <= self.busy:
            raise APIError("403", explanation=self.error)


def test_an_overlay_network_is_removed_once_its_endpoints_drain():
    from lab.engine import Engine

    network = DrainingNetwork(busy=2)
    Engine(client=None).remove_network(network, drain_s=5.0)
    assert network.attempts == 3


def test_a_bridge_is_tried_once_and_other_refusals_are_not_retried():
    from lab.engine import Engine

    bridge = DrainingNetwork(busy=5)
    Engine(client=None).remove_network(bridge)  # drain_s=0: one try, never raises
    assert bridge.attempts == 1
    refused = DrainingNetwork(busy=5, error="permission denied")
    Engine(client=None).remove_network(refused, drain_s=5.0)
    assert refused.attempts == 1
