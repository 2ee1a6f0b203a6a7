"""Scenario files: the model (frozen dataclasses) and the loader.

Every field carries its spec (`lab.spec`): the loader checks each value while its YAML line is
still known, so each error is one line naming the file, the line and the field, and the JSON
Schema in `lab.schema` comes from the same specs. Checks that span fields live in
`__post_init__`; the rules that depend on the protocol (which workloads and framings it takes)
come from the protocol registry, `wire.protocols`. Hostile files are refused before any Python
object is built (a size cap here, the YAML limits in `lab.spec`). Names end up in container
names, file paths and labels, so they match conservative patterns (no `/`, no `..` at the start,
no shell metacharacters). The command lines for the containers are built in `lab.argv`.

Pure except `load_scenario` (reads one file) and `resolve_out_dir` (looks at the cwd).
"""

from __future__ import annotations

import difflib
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.argv import MAX_ARG_CHARS, workload_arg
from lab.errors import UsageError
from lab.placement import engine_url_problem
from lab.spec import (
    MAX_ITEMS,
    MAX_SCALAR,
    Bool,
    Bytes,
    Int,
    Invalid,
    ListOf,
    Num,
    Obj,
    Rate,
    Str,
    Version,
    parse_yaml,
    spec,
    to_plain,
)
from wire import framing, protocols
from wire.protocols import WORKLOAD_KINDS
from wire.units import MAX_RATE_BPS, MIN_RATE_BPS, format_bytes

# --- Limits against hostile or mistaken input (the YAML ones are in lab.spec) ----------------

MAX_FILE_BYTES = 1024 * 1024  # a scenario is a few hundred bytes; 1 MiB is generous
MAX_RESOURCE_BYTES = 1 << 30  # 1 GiB per resource (or echo size)
MAX_TOTAL_BYTES = 1 << 30  # 1 GiB for a whole workload
BASE_PORT = 3000  # mode i listens on BASE_PORT + i

NAME_RE = r"^[a-z0-9][a-z0-9_-]{0,62}$"  # scenario name: container names, paths, labels
MODE_RE = r"^[a-z0-9][a-z0-9._-]{0,62}$"  # mode name: a folder under the run folder
RESOURCE_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"  # URL path segment and file name
MESSAGE_RE = (
    r"^[\x20-\x2b\x2d-\x7e]{1,1024}$"  # printable ASCII except ',' (the client's separator)
)

PROTOCOLS = protocols.names()
FRAMINGS = framing.FRAMINGS
KINDS = ("html", "css", "js", "image", "font", "other")
# The server's concurrency models (`python -m server --concurrency`); lab may not import server/,
# so the names are repeated here and a unit test keeps them equal to server.core.CONCURRENCY.
CONCURRENCY = ("threads", "epoll")
MAX_LOOPS = 64
FAULT_ACTIONS = (
    "kill_server",
    "pause_server",
    "disconnect_client",
    "kill_capture",
    "reset_connections",
)


# Memory an echo run takes, measured (max RSS, 100 MB message over loopback): the client holds
# a message in flight about 5 times over with length framing (the payload, the framed request,
# the decoder's buffer, the reply and its copy), the server about 3 times; the client also keeps
# every payload of the workload from the start. Python itself and the threads: the base.
ECHO_COPIES_IN_FLIGHT = 5
ECHO_BASE_MEMORY = 32 << 20


def echo_memory_need(largest: int, total: int, parallel: int) -> int:
    """Bytes the client container needs for an echo workload (it needs more than the server)."""
    return ECHO_BASE_MEMORY + total + ECHO_COPIES_IN_FLIGHT * largest * parallel


# --- The model ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    """One resource of an http page: fetched as GET /<name>?size=<size>."""

    name: str = spec(
        Str(
            RESOURCE_RE,
            hint="must be letters, digits, '.', '_' or '-', starting with a letter "
            "or digit, at most 128 characters",
        ),
        doc="URL path segment and file name, e.g. app.css",
    )
    kind: str = spec(Str(choices=KINDS), doc="what a browser would call it")
    size: int = spec(
        Bytes(0, MAX_RESOURCE_BYTES), doc="body size: bytes, or with a binary unit (14k, 1.5m)"
    )


@dataclass(frozen=True)
class Workload:
    """Exactly one of messages or sizes (echo) or resources (http)."""

    messages: tuple[str, ...] | None = spec(
        ListOf(
            Str(
                MESSAGE_RE,
                max_len=1024,
                hint="must be 1 to 1024 printable ASCII characters without ','",
            ),
            1,
        ),
        None,
        doc="echo: the messages to send, in order",
    )
    sizes: tuple[int, ...] | None = spec(
        ListOf(Bytes(1, MAX_RESOURCE_BYTES), 1), None, doc="echo: sizes of generated messages"
    )
    resources: tuple[Resource, ...] | None = spec(
        ListOf(Obj(Resource), 1), None, doc="http: the page's resources, in request order"
    )

    _schema_extra = {  # noqa: RUF012 (read-only class data)
        "oneOf": [{"required": ["messages"]}, {"required": ["sizes"]}, {"required": ["resources"]}]
    }

    def __post_init__(self) -> None:
        given = [n for n in WORKLOAD_KINDS if getattr(self, n) is not None]
        if len(given) != 1:
            what = "none" if not given else " and ".join(given)
            raise Invalid((), f"needs exactly one of messages, sizes, resources (got {what})")
        if self.resources is not None:
            names: dict[str, int] = {}
            for i, r in enumerate(self.resources):
                if r.name in names:
                    raise Invalid(
                        ("resources", i, "name"),
                        f"duplicate resource name {r.name!r} (also resources[{names[r.name]}])",
                    )
                names[r.name] = i
        total = sum(self.byte_sizes())
        if total > MAX_TOTAL_BYTES:
            raise Invalid(
                (given[0],),
                f"total size {format_bytes(total)} exceeds {format_bytes(MAX_TOTAL_BYTES)}",
            )

    @property
    def kind(self) -> str:
        """Which of messages, sizes or resources it is (`wire.protocols.WORKLOAD_KINDS`)."""
        return next(k for k in WORKLOAD_KINDS if getattr(self, k) is not None)

    def byte_sizes(self) -> tuple[int, ...]:
        """The payload of each request's response, in order (echo: the message itself)."""
        if self.resources is not None:
            return tuple(r.size for r in self.resources)
        if self.sizes is not None:
            return self.sizes
        return tuple(len(m.encode()) for m in self.messages or ())


@dataclass(frozen=True)
class ServerOptions:
    """How the server serves its connections: the concurrency model to compare."""

    concurrency: str = spec(
        Str(choices=CONCURRENCY),
        CONCURRENCY[0],
        doc="threads: a thread per connection (the article's); epoll: `loops` threads, each "
        "an epoll event loop serving many connections",
    )
    loops: int = spec(Int(1, MAX_LOOPS), 1, doc="epoll: event-loop threads")

    def __post_init__(self) -> None:
        if self.loops > 1 and self.concurrency != "epoll":
            raise Invalid(("loops",), "loops needs concurrency: epoll")


CLIENTS = ("lab", "browser")
# Chromium speaks HTTP/1.1 and HTTP/2 over TLS (ALPN h2), never HTTP/2 in clear (h2c).
BROWSER_PROTOCOLS = ("http", "h2")
TLS_VERSIONS = ("1.2", "1.3")  # server/tls.py's and client/tls.py's VERSIONS (a test checks)


@dataclass(frozen=True)
class Mode:
    """One way of fetching the workload: a row of the comparison."""

    name: str = spec(
        Str(
            MODE_RE,
            max_len=63,
            hint="must be lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, at most 63 characters",
        ),
        doc="e.g. http1.0, keepalive; a folder of the run",
    )
    persistent: bool = spec(Bool(), doc="keep-alive (true) or a connection per request (false)")
    parallel: int = spec(Int(1, 4096), 1, doc="connections open at once")
    repeat: int = spec(
        Int(1, 1_000_000),
        1,
        doc="send the workload this many times over (load runs); persistent connections "
        "share all of the requests",
    )
    pipeline: bool = spec(Bool(), False, doc="send every request before reading (persistent only)")
    framing: str | None = spec(
        Str(choices=FRAMINGS), None, doc="echo: overrides the scenario's framing for this mode"
    )
    workload: Workload | None = spec(  # noqa: RUF009
        Obj(Workload), None, doc="overrides the scenario's workload for this mode"
    )
    server: ServerOptions | None = spec(  # noqa: RUF009
        Obj(ServerOptions), None, doc="overrides the scenario's server options for this mode"
    )
    client: str = spec(
        Str(choices=CLIENTS),
        "lab",
        doc="lab: the lab's client; browser: headless Chromium loads the first resource (the "
        "page) and whatever it references (http, or h2 over tls; its own connections: "
        "parallel 1)",
    )
    tls: str | None = spec(
        Version(TLS_VERSIONS),
        None,
        doc="http over TLS 1.2 or 1.3 (overrides the scenario's tls); the lab makes the CA",
    )
    resume: bool | None = spec(
        Bool(),
        None,
        doc="TLS session resumption: connections opened once the client holds a session "
        "(after the first response) offer it (needs tls)",
    )
    protocol: str | None = spec(
        Str(choices=PROTOCOLS),
        None,
        doc="overrides the scenario's protocol for this mode (its own server), e.g. h2 in an "
        "http scenario: the same page over HTTP/2",
    )

    def __post_init__(self) -> None:
        if self.pipeline and not self.persistent:
            raise Invalid(("pipeline",), "pipelining needs persistent: true")
        if self.client == "browser":
            # The browser decides its connections, its order and its pipelining (none) itself.
            for key, default in (("parallel", 1), ("repeat", 1), ("pipeline", False)):
                if getattr(self, key) != default:
                    raise Invalid((key,), "the browser opens its own connections: remove it")

    @property
    def server_mode(self) -> str:
        return "persistent" if self.persistent else "non-persistent"


@dataclass(frozen=True)
class Timeouts:
    """Seconds. connect and request go to the client; request, idle, head and message to the
    server; run bounds a whole mode."""

    connect: float = spec(Num(0.1, 300, "s"), 5.0, doc="client connect timeout, seconds")
    request: float = spec(Num(0.1, 3600, "s"), 10.0, doc="client timeout per request, seconds")
    run: float = spec(Num(1, 86400, "s"), 120.0, doc="one mode's traffic, seconds")
    ready: float = spec(
        Num(1, 600, "s"), 15.0, doc="wait for the server and capture to be ready, seconds"
    )
    idle: float = spec(
        Num(0.1, 3600, "s"),
        5.0,
        doc="server: close a keep-alive connection idle this long, seconds (load runs with "
        "many client threads need more: a starved thread can leave its connection idle)",
    )
    head: float = spec(
        Num(0.1, 3600, "s"),
        10.0,
        doc="server: drop a peer whose whole HTTP request head takes longer, seconds",
    )
    message: float = spec(
        Num(0.1, 3600, "s"),
        10.0,
        doc="server: drop a peer whose whole echo message takes longer, seconds (a large "
        "message on a slow link needs more)",
    )


CAPTURE_SIDES = ("server", "client")


@dataclass(frozen=True)
class Capture:
    """tcpdump in a sidecar on the server's network namespace, and on the client's too when
    `sides` says so (`capture: [server, client]` is short for `capture: {sides: [...]}`)."""

    sides: tuple[str, ...] = spec(
        ListOf(Str(choices=CAPTURE_SIDES), 1, 2),
        ("server",),
        doc="where to capture: [server], or [server, client] to measure the clock offset "
        "between the hosts and the one-way delays (capture.pcap and capture-client.pcap)",
    )

    snaplen: int = spec(
        Int(0, 262144), 262144, doc="bytes kept per packet (tcpdump -s); 0 means 262144"
    )
    drain: float = spec(
        Num(0, 10, "s"), 0.2, doc="seconds to keep capturing after the client exits (+2 RTT)"
    )

    def __post_init__(self) -> None:
        if "server" not in self.sides:
            raise Invalid(
                ("sides",),
                "the server's capture is what the analysis reads: "
                "list server (and client if wanted)",
            )
        if len(set(self.sides)) != len(self.sides):
            raise Invalid(("sides",), "a side is listed twice")

    @property
    def on_client(self) -> bool:
        return "client" in self.sides


@dataclass(frozen=True)
class Network:
    """Conditions between client and server; each optional, absent means untouched."""

    rtt: float | None = spec(Num(0, 10_000, "ms"), None, doc="added round-trip time, ms")
    jitter: float | None = spec(Num(0, 10_000, "ms"), None, doc="delay variation, ms (needs rtt)")
    loss: float | None = spec(Num(0, 100, "%"), None, doc="packet loss, percent 0-100")
    rate: int | None = spec(
        Rate(MIN_RATE_BPS, MAX_RATE_BPS), None, doc="bandwidth: bits/s or 500kbit, 20mbit, 1gbit"
    )

    def __post_init__(self) -> None:
        if self.jitter and not self.rtt:
            raise Invalid(("jitter",), "jitter needs an rtt greater than 0")
        if self.jitter and self.rtt and self.jitter > self.rtt:
            raise Invalid(("jitter",), f"jitter {self.jitter:g} ms exceeds rtt {self.rtt:g} ms")

    @property
    def shaped(self) -> bool:
        return bool(self.rtt or self.jitter or self.loss or self.rate)


@dataclass(frozen=True)
class Limits:
    """Applied to every container the lab starts. The server runs a thread per connection,
    so pids must exceed its --max-connections (1024 by default)."""

    memory: int = spec(Bytes(16 << 20, 64 << 30), 512 << 20, doc="memory limit: bytes or 256m, 1g")
    pids: int = spec(Int(16, 65536), 2048, doc="pids (threads count) limit")


@dataclass(frozen=True)
class FaultAt:
    """When the fault fires: exactly one of time (s into the mode) or request (1-based)."""

    time: float | None = spec(Num(0, 86400, "s"), None, doc="seconds after the client starts")
    request: int | None = spec(Int(1, MAX_ITEMS), None, doc="after this many requests completed")

    _schema_extra = {"oneOf": [{"required": ["time"]}, {"required": ["request"]}]}  # noqa: RUF012

    def __post_init__(self) -> None:
        if (self.time is None) == (self.request is None):
            raise Invalid((), "needs exactly one of time or request")


@dataclass(frozen=True)
class Fault:
    """Something that goes wrong on purpose during a run."""

    action: str = spec(Str(choices=FAULT_ACTIONS))
    at: FaultAt = spec(Obj(FaultAt))  # noqa: RUF009
    mode: str | None = spec(
        Str(MODE_RE, max_len=63, hint="must name a mode"), None, doc="only in this mode"
    )
    duration: float | None = spec(
        Num(0.1, 3600, "s"), None, doc="pause_server, disconnect_client: seconds until undone"
    )

    def __post_init__(self) -> None:
        if self.duration is not None and self.action not in ("pause_server", "disconnect_client"):
            raise Invalid(
                ("duration",),
                f"duration applies to pause_server and disconnect_client, not {self.action}",
            )


@dataclass(frozen=True)
class HostEngine:
    """One side's Docker engine (see lab.placement for the URLs the lab takes)."""

    engine: str = spec(
        Str(max_len=512), doc="Docker Engine URL: unix:///path, tcp://host:port or ssh://user@host"
    )

    def __post_init__(self) -> None:
        problem = engine_url_problem(self.engine)
        if problem:
            raise Invalid(("engine",), problem)


@dataclass(frozen=True)
class Hosts:
    """Where each side runs; a side left out runs on the engine of DOCKER_HOST. `lab run
    --engine SIDE=URL` overrides a side."""

    server: HostEngine | None = spec(  # noqa: RUF009
        Obj(HostEngine), None, doc="the server, its capture sidecar and server-side shaper"
    )
    client: HostEngine | None = spec(  # noqa: RUF009
        Obj(HostEngine), None, doc="the client, its namespace holder and client-side shaper"
    )

    def engines(self) -> dict[str, str]:
        """{side: URL} for the sides named."""
        return {
            side: host.engine
            for side, host in (("server", self.server), ("client", self.client))
            if host is not None
        }


@dataclass(frozen=True)
class Scenario:
    """A TCP Connection Lab scenario: what to fetch and which connection modes to compare."""

    name: str = spec(
        Str(
            NAME_RE,
            max_len=63,
            hint="must be lower-case letters, digits, '_' or '-', starting "
            "with a letter or digit, at most 63 characters",
        ),
        doc="used in container names, labels and the run folder",
    )
    protocol: str = spec(Str(choices=PROTOCOLS), doc=protocols.describe())
    workload: Workload = spec(Obj(Workload))  # noqa: RUF009
    modes: tuple[Mode, ...] = spec(ListOf(Obj(Mode), 1, 64), doc="the modes to compare")
    description: str = spec(Str(max_len=MAX_SCALAR), "", doc="free text for the report")
    framing: str = spec(
        Str(choices=FRAMINGS), "length", doc="echo: length-prefixed messages, or raw bytes"
    )
    repeats: int = spec(Int(1, 100), 1, doc="runs of every mode")
    server: ServerOptions = spec(  # noqa: RUF009
        Obj(ServerOptions), ServerOptions(), doc="the server's concurrency model"
    )
    timeouts: Timeouts = spec(Obj(Timeouts), Timeouts())  # noqa: RUF009
    capture: Capture = spec(Obj(Capture, list_key="sides"), Capture())  # noqa: RUF009
    network: Network = spec(Obj(Network), Network())  # noqa: RUF009
    limits: Limits = spec(Obj(Limits), Limits())  # noqa: RUF009
    faults: tuple[Fault, ...] = spec(ListOf(Obj(Fault), 0, 32), (), doc="faults to inject")
    hosts: Hosts | None = spec(Obj(Hosts), None, doc="the Docker engine of each side")  # noqa: RUF009
    tls: str | None = spec(
        Version(TLS_VERSIONS),
        None,
        doc="every mode over TLS 1.2 or 1.3 (http; a mode may override it)",
    )
    resume: bool = spec(Bool(), False, doc="TLS session resumption in every TLS mode")

    def __post_init__(self) -> None:
        self._check_workload(self.workload, ("workload",))
        self._check_tls()
        seen: dict[str, int] = {}
        for i, m in enumerate(self.modes):
            if m.protocol is not None:
                self._check_mode_protocol(m, i)
            if m.workload is not None:
                self._check_workload(m.workload, ("modes", i, "workload"), self.protocol_of(m))
            if m.name in seen:
                raise Invalid(
                    ("modes", i, "name"),
                    f"duplicate mode name {m.name!r} (also modes[{seen[m.name]}])",
                )
            seen[m.name] = i
            if m.framing is not None:
                self._check_framing(m.framing, ("modes", i, "framing"), self.protocol_of(m))
            if protocols.get(self.protocol_of(m)).multiplexed:
                self._check_multiplexed(m, i)
            if m.client == "browser" and self.protocol_of(m) not in BROWSER_PROTOCOLS:
                raise Invalid(
                    ("modes", i, "client"),
                    "the browser client needs protocol: http or h2 (it has no h2c)",
                )
        self._check_framing(self.framing, ("framing",))
        for i, m in enumerate(self.modes):
            self._check_echo_fits(m, i)
        for i, f in enumerate(self.faults):
            if f.mode is not None and f.mode not in seen:
                raise Invalid(("faults", i, "mode"), f"no mode named {f.mode!r}")
            most = max(len(self.workload_of(m).byte_sizes()) for m in self.modes)
            if f.at.request is not None and f.at.request > most:
                raise Invalid(
                    ("faults", i, "at", "request"), f"the workload has only {most} requests"
                )

    def _check_mode_protocol(self, mode: Mode, index: int) -> None:
        """A mode's own protocol takes the scenario's workload (http, h2 and h2c: resources)."""
        if mode.workload is None:
            proto = protocols.get(self.protocol_of(mode))
            if self.workload.kind not in proto.workloads:
                raise Invalid(
                    ("modes", index, "protocol"),
                    f"protocol {proto.name} needs {proto.workload_text()}: the scenario's "
                    f"workload has {self.workload.kind}",
                )

    def _check_multiplexed(self, mode: Mode, index: int) -> None:
        """HTTP/2 (h2, h2c): one keep-alive connection, every request on it at once."""
        name = self.protocol_of(mode)
        where = ("modes", index)
        if not mode.persistent:
            raise Invalid((*where, "persistent"), f"{name} needs persistent: true (one connection)")
        if mode.parallel != 1:
            raise Invalid((*where, "parallel"), f"{name} multiplexes the page on one connection")
        if mode.pipeline:
            raise Invalid((*where, "pipeline"), f"{name} sends every request at once already")

    def _check_tls(self) -> None:
        """TLS is http's and h2's (h2 needs it), with the lab's client, one request at a time."""
        if self.resume and not any(self.tls_of(m) for m in self.modes):
            raise Invalid(("resume",), "resume needs tls")
        for i, m in enumerate(self.modes):
            if m.resume and not self.tls_of(m):
                raise Invalid(("modes", i, "resume"), "resume needs tls")
        with_tls = " or ".join(protocols.with_tls())
        if (
            self.tls
            and not protocols.get(self.protocol).takes_tls
            and not all(protocols.get(self.protocol_of(m)).takes_tls for m in self.modes)
        ):
            raise Invalid(("tls",), f"tls needs protocol: {with_tls}")
        for i, m in enumerate(self.modes):
            proto = protocols.get(self.protocol_of(m))
            if proto.tls == "required" and not self.tls_of(m):
                where = ("modes", i, "protocol") if m.protocol else ("protocol",)
                raise Invalid(where, f"{proto.name} is HTTP/2 over TLS: give tls (or use h2c)")
            if not self.tls_of(m):
                continue
            if not proto.takes_tls:
                raise Invalid(("modes", i, "tls"), f"tls needs protocol: {with_tls}")
            if m.client == "browser" and m.resume is not None:
                raise Invalid(
                    ("modes", i, "resume"),
                    "the browser resumes sessions as it likes: resume is for the lab's client",
                )
            if m.pipeline:  # one SSL object written and read by two threads at once: unsafe
                raise Invalid(("modes", i, "pipeline"), "pipelining is not done over TLS")

    def tls_of(self, mode: Mode) -> str | None:
        """The mode's TLS version (its own, else the scenario's), or None for plain TCP."""
        return mode.tls or self.tls

    def resume_of(self, mode: Mode) -> bool:
        return bool(self.tls_of(mode)) and (mode.resume if mode.resume is not None else self.resume)

    def protocol_of(self, mode: Mode) -> str:
        """The mode's protocol: its own `protocol:`, else the scenario's."""
        return mode.protocol or self.protocol

    def _check_workload(
        self, wl: Workload, where: tuple[str | int, ...], protocol: str | None = None
    ) -> None:
        proto = protocols.get(protocol or self.protocol)
        if wl.kind not in proto.workloads:
            # One kind only: the workload lacks it. Several: the key given is the wrong one.
            blame = where if len(proto.workloads) == 1 else (*where, wl.kind)
            raise Invalid(blame, f"protocol {proto.name} needs {proto.workload_text()}")
        arg = workload_arg(wl)
        if len(arg) > MAX_ARG_CHARS:
            raise Invalid(where, f"too large for one command line ({len(arg)} > {MAX_ARG_CHARS})")

    def _check_framing(
        self, name: str, where: tuple[str | int, ...], protocol: str | None = None
    ) -> None:
        if name not in protocols.get(protocol or self.protocol).framings:
            users = " and ".join(protocols.with_framing(name))
            raise Invalid(where, f"framing applies to protocol {users} only")

    def _check_echo_fits(self, mode: Mode, index: int) -> None:
        """Refuse echo modes that cannot work: a message the server's deadline cuts off on the
        shaped link, or messages the containers cannot hold in their memory limit."""
        if self.protocol_of(mode) != protocols.ECHO.name:
            return
        sizes = self.workload_of(mode).byte_sizes()
        largest = max(sizes)
        # Raw framing on a persistent connection echoes each read as it comes: no message is
        # ever buffered whole, so neither the deadline nor the memory holds it.
        if self.framing_of(mode) == "raw" and mode.persistent:
            return
        what = f"a {format_bytes(largest)} echo message"
        rate = self.network.rate
        if rate and largest * 8 / rate > self.timeouts.message:
            raise Invalid(
                ("modes", index),
                f"{what} takes at least {largest * 8 / rate:.3g} s at {rate / 1e6:g} Mbit/s, "
                f"more than the server's message deadline, timeouts.message "
                f"({self.timeouts.message:g} s)",
            )
        need = echo_memory_need(largest, sum(sizes), mode.parallel)
        if need > self.limits.memory:
            on = "1 connection" if mode.parallel == 1 else f"{mode.parallel} connections"
            raise Invalid(
                ("modes", index),
                f"{what} on {on} at once needs about {format_bytes(need)} of client memory, "
                f"more than limits.memory ({format_bytes(self.limits.memory)})",
            )

    def framing_of(self, mode: Mode) -> str:
        return mode.framing or self.framing

    def workload_of(self, mode: Mode) -> Workload:
        return mode.workload or self.workload

    @property
    def browser_modes(self) -> tuple[Mode, ...]:
        return tuple(m for m in self.modes if m.client == "browser")

    def server_of(self, mode: Mode) -> ServerOptions:
        return mode.server or self.server

    def mode(self, name: str) -> Mode:
        return select_modes(self, [name])[0]

    def port_of(self, mode: Mode) -> int:
        """The server port of a mode: one listener per mode, BASE_PORT + its index."""
        return BASE_PORT + self.modes.index(mode)

    def to_dict(self) -> dict[str, Any]:
        """Plain data that `load_scenario` accepts again (sizes in bytes, rate in bits/s)."""
        return to_plain(self)


def dump_yaml(scenario: Scenario) -> str:
    """The scenario as run, as YAML that `load_scenario` reads back to an equal Scenario."""
    import yaml  # lazy: `python -m lab.schema` and the capture image have no use for it

    return yaml.safe_dump(scenario.to_dict(), sort_keys=False, allow_unicode=False, width=100)


# --- Loading ---------------------------------------------------------------------------------


def parse_scenario(text: str, where: str = "<scenario>") -> Scenario:
    """Validate scenario YAML text; `where` names it in errors. Pure."""
    return parse_yaml(
        text, Scenario, where, "empty file: expected a mapping with name, protocol, ..."
    )


def load_scenario(path: str | os.PathLike[str]) -> Scenario:
    """Read and validate a scenario file; UsageError (one line: file:line: field: why) if bad."""
    where = str(path)
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise UsageError(f"{where}: is a directory, not a scenario file")
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"{where}: not a regular file")
        if st.st_size > MAX_FILE_BYTES:
            raise UsageError(f"{where}: {st.st_size} bytes, larger than {MAX_FILE_BYTES}")
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(f"{where}: no such file") from None
    except OSError as exc:
        raise UsageError(f"{where}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise UsageError(f"{where}: larger than {MAX_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UsageError(f"{where}:{line}: not UTF-8 text") from None
    return parse_scenario(text, where)


# --- Helpers for the commands ----------------------------------------------------------------


def select_modes(scenario: Scenario, names: Iterable[str]) -> tuple[Mode, ...]:
    """The modes named by `--mode` (all if none), in the scenario's order; UsageError if unknown."""
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return scenario.modes
    known = [m.name for m in scenario.modes]
    for name in wanted:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UsageError(
                f"--mode {name}: no such mode in {scenario.name} ({hint}modes: {', '.join(known)})"
            )
    return tuple(m for m in scenario.modes if m.name in wanted)


def resolve_out_dir(
    path: str | os.PathLike[str], cwd: str | os.PathLike[str] | None = None
) -> Path:
    """The absolute `--out` folder: any folder the user can write to, existing or not (the run
    creates it); a relative path starts at `cwd` (default: the working directory).

    A path the user types is the user's choice, so it may lie anywhere. UsageError (one line,
    exit 2, before anything starts) only for what cannot work: the path, or a folder on its
    way, exists and is not a folder; or the nearest existing folder refuses a new entry, found
    by making one and removing it at once (permission bits say nothing for root or a read-only
    mount). Names from a scenario file never come here: they pass their own patterns and only
    ever name the run folder inside this one.
    """
    import tempfile  # only `lab run` comes here

    target = (Path(cwd if cwd is not None else os.getcwd()) / Path(path).expanduser()).resolve()
    existing = target
    # os.path.exists, not Path.exists: an unreadable folder on the way is False, not a raise.
    while not os.path.exists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "exists and" if existing == target else f"is under {existing}, which"
        raise UsageError(f"--out {path}: {where} is not a directory")
    try:
        tempfile.TemporaryDirectory(dir=existing, prefix=".tcplab-write-test-").cleanup()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(f"--out {path}: cannot create a folder in {existing} ({reason})") from None
    return target
