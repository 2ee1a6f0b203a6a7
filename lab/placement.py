"""Where each container of a run goes: the server side and the client side, each on an engine.

    server side   server, capture (tcpdump in the server's namespace), shaper-server
    client side   client, netns (the holder of the client's namespace), shaper-client

A side's containers share network namespaces (`network_mode=container:<id>`), and a namespace
cannot be shared across engines, so a whole side runs on one engine; the two sides only need a
network in common. The run's network is created by the server side's engine and the client side
joins it by name. Today both sides map to the one engine of `DOCKER_HOST`
(`Placement.single`); a Swarm run puts them on two engines joined by an overlay network.

Pure: an engine is whatever object the caller passes (a `lab.engine.Engine` in a run, a name in
the tests); nothing here talks to Docker.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from lab.hosts import ROLE_LABEL

E = TypeVar("E")


class Side(StrEnum):
    SERVER = "server"
    CLIENT = "client"


# The roles hosts.py labels its containers with (`tcplab.role`), by side.
ROLE_SIDES: dict[str, Side] = {
    "server": Side.SERVER,
    "capture": Side.SERVER,
    "shaper-server": Side.SERVER,
    "client": Side.CLIENT,
    "netns": Side.CLIENT,
    "shaper-client": Side.CLIENT,
}


def side_of(role: str) -> Side:
    """The side a container role belongs to; ValueError for a role no side owns."""
    try:
        return ROLE_SIDES[role]
    except KeyError:
        raise ValueError(f"no side runs the role {role!r}") from None


def role_of(spec: dict) -> str:
    """The role of a container spec from lab.hosts (its `tcplab.role` label)."""
    return spec["labels"][ROLE_LABEL]


@dataclass(frozen=True)
class Placement(Generic[E]):
    """The engine of each side of a run."""

    server: E
    client: E

    @classmethod
    def single(cls, engine: E) -> Placement[E]:
        """Both sides on one engine: every run today."""
        return cls(server=engine, client=engine)

    def engine_for_side(self, side: Side) -> E:
        return self.server if side is Side.SERVER else self.client

    def engine_for(self, role: str) -> E:
        return self.engine_for_side(side_of(role))

    def engine_for_spec(self, spec: dict) -> E:
        """Where a container spec from lab.hosts starts."""
        return self.engine_for(role_of(spec))

    @property
    def network_engine(self) -> E:
        """The engine that creates (and removes) the run's network."""
        return self.server

    @property
    def split(self) -> bool:
        """Whether the sides run on different engines."""
        return self.server is not self.client

    def engines(self) -> tuple[E, ...]:
        """Every engine involved, each once, the server side's first."""
        return (self.server, self.client) if self.split else (self.server,)
