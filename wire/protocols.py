"""The registry of protocols: what each layer needs to know about one, in one place.

Every layer looks a protocol up here once (by the name on its command line or in the scenario)
instead of comparing strings: the server's and client's `--protocol` choices, the scenario's
rules (which workloads and framings a protocol takes), the model's cost of a response and what
`lab validate` prints all come from the `Protocol` object. Standard library only: it runs in
the containers.

To add a protocol (say `h3`), touch one module per layer, plus its tests:

1. here: a `Protocol(...)` entry in `PROTOCOLS` (name, scenario text, framings, workloads, head
   bytes, handshake round trips, and for HTTP/2-like ones multiplexed, tls, alpn,
   persistent_only); the wire format itself in its own `wire/<name>.py` (or a library Debian
   packages, as `h2`);
2. `server/handlers.py`: a `serve_<name>(conn, opts)` function in `HANDLERS`;
3. `client/plan.py`: a `<Name>Plan` class (items, request bytes, decoder, check) in `PLANS`;
4. tests: `tests/unit/test_protocols.py` checks that every registered protocol has a server
   handler and a client plan and that the two talk to each other; add a live case to
   `tests/unit/test_server_client.py`; regenerate `scenarios/schema.json`
   (`python -m lab.schema > scenarios/schema.json`: the protocol's name and text are in it).

The lab's scenario checks (`lab/scenario.py`), the model (`lab/model.py`) and `lab validate`
read the fields below and need no change.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from wire import framing

WORKLOAD_KINDS = ("messages", "sizes", "resources")  # the keys of a scenario's `workload:`


class UnknownProtocol(ValueError):
    """A protocol name that is not registered; the message is one line naming the choices."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown protocol {name!r} (choose from {', '.join(names())})")
        self.name = name


@dataclass(frozen=True)
class Protocol:
    name: str
    doc: str  # how the scenario schema describes it, e.g. "echo (the article's programs)"
    framings: tuple[str, ...]  # framings a scenario may give it; the first is the default
    workloads: tuple[str, ...]  # which workload keys it takes (see WORKLOAD_KINDS)
    # Bytes each response adds to its payload on the wire (the model's cost of a response).
    # Echo's 4-byte length prefix has always been left out of the model: small next to a
    # segment, and keeping it out keeps every published prediction unchanged.
    head_bytes: int
    # Round trips of the protocol's own handshake on each new connection, after TCP's
    # (a TLS 1.3 handshake would be 1); a request then costs one round trip more.
    handshake_round_trips: int = 0
    # HTTP/2: every request of a connection goes out at once, as streams of one connection
    # (the model's `multiplexed`; the client's one fetch per connection).
    multiplexed: bool = False
    # Whether it runs over TLS: "never", "optional" (a scenario's `tls:` turns it on) or
    # "required" (h2: HTTP/2 over TLS, chosen by ALPN).
    tls: str = "never"
    alpn: str | None = None  # the ALPN name both ends offer over TLS ("h2", "http/1.1")
    # Whether its server needs a keep-alive listener (HTTP/2 has no one-request connections).
    persistent_only: bool = False

    @property
    def has_framing_choice(self) -> bool:
        """Whether the scenario's `framing:` means anything for this protocol."""
        return len(self.framings) > 1

    @property
    def takes_tls(self) -> bool:
        return self.tls != "never"

    def workload_text(self) -> str:
        """The workload keys it needs, as an error message says them: "messages or sizes"."""
        return " or ".join(self.workloads)


ECHO = Protocol(
    name="echo",
    doc="echo (the article's programs)",
    framings=framing.FRAMINGS,
    workloads=("messages", "sizes"),
    head_bytes=0,
)
HTTP = Protocol(
    name="http",
    doc="http",
    framings=("length",),  # the server and client accept --framing, and ignore it
    workloads=("resources",),
    head_bytes=150,  # about what the server's response head adds to each body (Date included)
    tls="optional",
    alpn="http/1.1",
)
# HTTP/2 (wire format: the `h2` library, Debian's python3-h2): a response is a HEADERS frame
# (about 40 bytes once HPACK has the first response's fields in its table) and DATA frames of
# 16 KB, 9 bytes of frame header each: about 80 bytes on a page10 resource.
H2 = Protocol(
    name="h2",
    doc="h2 (HTTP/2 over TLS, ALPN h2)",
    framings=("length",),
    workloads=("resources",),
    head_bytes=80,
    multiplexed=True,
    tls="required",
    alpn="h2",
    persistent_only=True,
)
H2C = dataclasses.replace(
    H2, name="h2c", doc="h2c (HTTP/2 in clear, prior knowledge)", tls="never", alpn=None
)

PROTOCOLS = {p.name: p for p in (ECHO, HTTP, H2, H2C)}  # the registry: everything else reads this
DEFAULT = ECHO.name  # of `python -m server` and `python -m client`


def names() -> tuple[str, ...]:
    """The registered names, in registry order (the order of `--protocol` choices)."""
    return tuple(PROTOCOLS)


def get(name: str) -> Protocol:
    """The protocol called `name`; UnknownProtocol (a ValueError) if there is none."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise UnknownProtocol(name) from None


def with_framing(framing_name: str) -> tuple[str, ...]:
    """The protocols that take `framing_name`, e.g. ("echo",) for raw."""
    return tuple(p.name for p in PROTOCOLS.values() if framing_name in p.framings)


def with_tls() -> tuple[str, ...]:
    """The protocols that run over TLS, e.g. ("http", "h2")."""
    return tuple(p.name for p in PROTOCOLS.values() if p.takes_tls)


def describe() -> str:
    """All protocols as the scenario schema says them: "echo (the article's programs) or http"."""
    docs = [p.doc for p in PROTOCOLS.values()]
    return docs[0] if len(docs) == 1 else ", ".join(docs[:-1]) + " or " + docs[-1]
