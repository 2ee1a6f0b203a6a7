"""Before a run on two engines: does each answer, and are they in one Swarm?

A run whose sides are on different engines needs an overlay network between them, and Docker
makes one only inside a Swarm: both engines in the same Swarm, one of them a manager (the
network is created there). The lab never creates or leaves a Swarm on a user's machines; it
says which commands would.

Pure: `swarm_of` reads the Swarm section of `docker info` (`client.info()["Swarm"]`, plus the
engine's ID), and `swarm_problem` decides. The shell that asks the engines is `lab.engine`
(`Engine.from_url`, `Engine.info`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# How long an engine may take to answer the first ping before the run is refused.
PING_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class SwarmFacts:
    """What one engine says about itself and its Swarm."""

    engine_id: str  # `docker info`'s ID: two URLs for the same engine share it
    state: str  # LocalNodeState: inactive, pending, active, error, locked
    node_id: str = ""
    cluster_id: str = ""  # only managers know it
    manager: bool = False  # ControlAvailable
    managers: frozenset[str] = field(default_factory=frozenset)  # RemoteManagers' node IDs
    address: str = ""  # NodeAddr: the address the node advertises

    @property
    def active(self) -> bool:
        return self.state == "active"


def swarm_of(info: dict) -> SwarmFacts:
    """SwarmFacts from `client.info()` (the fields older engines lack read as absent)."""
    swarm = info.get("Swarm") or {}
    cluster = swarm.get("Cluster") or {}
    return SwarmFacts(
        engine_id=str(info.get("ID") or ""),
        state=str(swarm.get("LocalNodeState") or "inactive"),
        node_id=str(swarm.get("NodeID") or ""),
        cluster_id=str(cluster.get("ID") or swarm.get("ClusterID") or ""),
        manager=bool(swarm.get("ControlAvailable")),
        managers=frozenset(m.get("NodeID", "") for m in swarm.get("RemoteManagers") or ()),
        address=str(swarm.get("NodeAddr") or ""),
    )


def same_engine(a: SwarmFacts, b: SwarmFacts) -> bool:
    """Two URLs that reach one engine (a socket and its TCP port): a one-engine run."""
    return bool(a.engine_id) and a.engine_id == b.engine_id


def same_swarm(a: SwarmFacts, b: SwarmFacts) -> bool:
    """Whether two active nodes belong to one Swarm. Only managers know the cluster's ID; a
    worker knows its managers' node IDs."""
    if not (a.active and b.active):
        return False
    if a.cluster_id and b.cluster_id:
        return a.cluster_id == b.cluster_id
    if a.manager and not b.manager:
        return a.node_id in b.managers
    if b.manager and not a.manager:
        return b.node_id in a.managers
    return bool(a.managers & b.managers)  # two workers: a manager in common


def fix_commands(server_url: str, client_url: str) -> str:
    return (
        f"on one engine (e.g. the server's, {server_url}) run `docker swarm init "
        "--advertise-addr IP`, then on the other "
        f"({client_url}) `docker swarm join --token TOKEN IP:2377` with the token it prints "
        "(open 2377/tcp, 7946/tcp+udp and 4789/udp between them)"
    )


def swarm_problem(
    server: SwarmFacts, client: SwarmFacts, server_url: str, client_url: str
) -> str | None:
    """Why a run cannot span these two engines (one line), or None when it can."""
    fix = fix_commands(server_url, client_url)
    for side, facts, url in (("server", server, server_url), ("client", client, client_url)):
        if not facts.active:
            return f"the {side}'s engine ({url}) is not in a Swarm (state {facts.state}): {fix}"
    if not same_swarm(server, client):
        return (
            f"the engines of the server ({server_url}) and the client ({client_url}) are in "
            f"different Swarms: leave one (`docker swarm leave`), then {fix}"
        )
    if not (server.manager or client.manager):
        return (
            f"neither engine ({server_url}, {client_url}) is a Swarm manager, and the run's "
            "overlay network is created on one: promote one (`docker node promote NODE` on a "
            "manager) or name a manager's engine for one side"
        )
    return None


def network_side(server: SwarmFacts, client: SwarmFacts) -> str:
    """The side whose engine creates the overlay network: the server's if it is a manager."""
    return "server" if server.manager or not client.manager else "client"
