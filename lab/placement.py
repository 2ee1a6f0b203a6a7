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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar
from urllib.parse import urlsplit

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
    "browser": Side.CLIENT,  # a browser mode's client (headless Chromium)
    "capture-client": Side.CLIENT,  # only when a scenario captures on both ends
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

    network_side: Side = Side.SERVER  # a Swarm run: the side whose engine is a manager
    # Two daemons in one Swarm (lab.engine.open_placement): the run's network is an overlay.
    # Two Engine objects of one daemon are split but share a bridge.
    overlay: bool = False

    @property
    def network_engine(self) -> E:
        """The engine that creates (and removes) the run's network."""
        return self.engine_for_side(self.network_side)

    @property
    def split(self) -> bool:
        """Whether the sides run on different engines."""
        return self.server is not self.client

    def engines(self) -> tuple[E, ...]:
        """Every engine involved, each once, the server side's first."""
        return (self.server, self.client) if self.split else (self.server,)


# --- Engines named by URL (the scenario's `hosts:` block and `lab run --engine`) -------------

# What the Docker SDK takes as a base_url and the lab supports: the local socket, TCP (TLS from
# DOCKER_TLS_VERIFY / DOCKER_CERT_PATH, as the docker CLI reads them) and SSH.
ENGINE_SCHEMES = ("unix", "tcp", "ssh")
SIDES = tuple(s.value for s in Side)


def engine_url_problem(url: str) -> str | None:
    """Why `url` is not a Docker Engine URL the lab can use, or None when it is."""
    if not url or not url.strip():
        return "an engine URL is empty"
    if url != url.strip() or any(c.isspace() for c in url):
        return f"engine URL {url!r} contains whitespace"
    scheme, sep, _ = url.partition("://")
    if not sep:
        return (
            f"engine URL {url!r} has no scheme: use {', '.join(s + '://' for s in ENGINE_SCHEMES)}"
        )
    if scheme not in ENGINE_SCHEMES:
        return (
            f"engine URL {url!r}: scheme {scheme!r} is not one of "
            f"{', '.join(s + '://' for s in ENGINE_SCHEMES)}"
        )
    try:
        parts = urlsplit(url)
        _ = parts.port  # ValueError when it is not a number in range
    except ValueError as exc:
        return f"engine URL {url!r}: {exc}"
    if scheme == "unix":
        if not parts.path.startswith("/") or parts.netloc:
            return f"engine URL {url!r}: a unix socket needs an absolute path (unix:///run/docker.sock)"
    elif not parts.hostname:
        return f"engine URL {url!r} names no host"
    elif parts.path not in ("", "/") or parts.query or parts.fragment:
        return f"engine URL {url!r}: only {scheme}://[user@]host[:port] is allowed"
    if scheme == "tcp" and parts.username:
        return f"engine URL {url!r}: tcp:// takes no user (ssh:// does)"
    return None


def parse_engine_args(args: Iterable[str]) -> dict[str, str]:
    """`--engine SIDE=URL` arguments as {side: URL}; ValueError (one line) on bad input."""
    out: dict[str, str] = {}
    for arg in args:
        side, sep, url = arg.partition("=")
        if not sep:
            raise ValueError(
                f"--engine {arg!r}: expected SIDE=URL, e.g. server=tcp://10.0.0.11:2375"
            )
        if side not in SIDES:
            raise ValueError(f"--engine {arg!r}: unknown role {side!r} (use {' or '.join(SIDES)})")
        if side in out:
            raise ValueError(f"--engine: the role {side!r} is given twice")
        problem = engine_url_problem(url)
        if problem:
            raise ValueError(f"--engine {side}=: {problem}")
        out[side] = url
    return out


def check_engines(engines: Mapping[str, str]) -> dict[str, str]:
    """An `engines={side: URL}` mapping (the Python API's) checked; ValueError on bad input."""
    out: dict[str, str] = {}
    for side, url in engines.items():
        if side not in SIDES:
            raise ValueError(f"engines: unknown role {side!r} (use {' or '.join(SIDES)})")
        problem = engine_url_problem(url if isinstance(url, str) else "")
        if problem:
            raise ValueError(f"engines[{side!r}]: {problem}")
        out[side] = url
    return out


def choose_engines(from_scenario: Mapping[str, str], given: Mapping[str, str]) -> dict[str, str]:
    """Each side's engine URL: the command line's (or API's) wins over the scenario's, side by
    side. A side in neither is absent: it runs on the engine of DOCKER_HOST."""
    return {**from_scenario, **given}
