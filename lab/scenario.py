"""Scenario files: the model (frozen dataclasses), the loader, validation and command lines.

A scenario is YAML read as a node tree (`yaml.compose` with the safe loader), never as Python
objects first: every value is checked against its field's spec while its line is still known,
so each error is one line naming the file, the line and the field:

    scenarios/x.yaml:12: modes[1].parallel: must be an integer from 1 to 4096, got -3

Each dataclass field carries its spec in `field(metadata={"spec": ...})`; the same specs drive
validation here and the JSON Schema in `lab.schema`, so the two cannot drift apart. Checks that
span fields live in `__post_init__` and raise `Invalid(path, message)`; the loader turns the path
into a line. Building a `Scenario` in Python runs the same checks.

Hostile files are refused before any Python object is built: a size cap on the file, a cap on
YAML events, nesting depth and scalar length, and no anchors or aliases at all (an alias bomb
needs them, and a scenario never does). Names end up in container names, file paths and labels,
so they match conservative patterns (no `/`, no `..` at the start, no shell metacharacters).

Pure except `load_scenario` (reads one file) and `resolve_out_dir` (looks at the cwd).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.errors import UsageError

# --- Limits against hostile or mistaken input ------------------------------------------------

MAX_FILE_BYTES = 1024 * 1024  # a scenario is a few hundred bytes; 1 MiB is generous
MAX_EVENTS = 100_000  # YAML parser events (roughly scalars + collections)
MAX_DEPTH = 16  # nesting of mappings and sequences
MAX_SCALAR = 4096  # characters in any one scalar (descriptions included)
MAX_RESOURCE_BYTES = 1 << 30  # 1 GiB per resource (or echo size)
MAX_TOTAL_BYTES = 1 << 30  # 1 GiB for a whole workload
MAX_ITEMS = 10_000  # messages, sizes or resources in one workload
MAX_ARG_CHARS = 100_000  # one argv string; Linux refuses more than 128 KiB (MAX_ARG_STRLEN)
BASE_PORT = 3000  # mode i listens on BASE_PORT + i

NAME_RE = r"^[a-z0-9][a-z0-9_-]{0,62}$"  # scenario name: container names, paths, labels
MODE_RE = r"^[a-z0-9][a-z0-9._-]{0,62}$"  # mode name: a folder under the run folder
RESOURCE_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"  # URL path segment and file name
MESSAGE_RE = (
    r"^[\x20-\x2b\x2d-\x7e]{1,1024}$"  # printable ASCII except ',' (the client's separator)
)

PROTOCOLS = ("echo", "http")
FRAMINGS = ("length", "raw")
KINDS = ("html", "css", "js", "image", "font", "other")
FAULT_ACTIONS = (
    "kill_server",
    "pause_server",
    "disconnect_client",
    "kill_capture",
    "reset_connections",
)


class Invalid(ValueError):
    """A check that spans fields failed: `path` is relative to the object that raised it."""

    def __init__(self, path: Sequence[str | int], message: str) -> None:
        super().__init__(message)
        self.path = tuple(path)
        self.message = message


# --- Specs: one per kind of value; each checks a YAML node and describes itself as JSON Schema --


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class _Fail(Exception):
    """Raised by specs: the node whose line to report, the field path, the message."""

    def __init__(self, node: Any, path: str, message: str) -> None:
        super().__init__(message)
        self.node, self.path, self.message = node, path, message


class Spec:
    description = ""

    def load(self, node: Any, path: str) -> Any:
        raise NotImplementedError

    def schema(self) -> dict[str, Any]:
        raise NotImplementedError


def _scalar(node: Any, path: str) -> Any:
    import yaml

    if not isinstance(node, yaml.ScalarNode):
        kind = "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"
        raise _Fail(node, path, f"expected a single value, got {kind}")
    constructor = _constructor()
    try:
        return constructor.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        raise _Fail(node, path, f"cannot read value: {getattr(exc, 'problem', exc)}") from None
    finally:
        # The constructor caches every node it has built; the shared one would keep them all.
        constructor.constructed_objects.clear()


_CONSTRUCTOR = None


def _constructor() -> Any:
    global _CONSTRUCTOR
    if _CONSTRUCTOR is None:
        import yaml

        _CONSTRUCTOR = yaml.constructor.SafeConstructor()
    return _CONSTRUCTOR


@dataclass(frozen=True)
class Str(Spec):
    pattern: str | None = None
    choices: tuple[str, ...] = ()
    max_len: int = MAX_SCALAR
    hint: str = ""

    def load(self, node: Any, path: str) -> str:
        value = _scalar(node, path)
        if not isinstance(value, str):
            raise _Fail(node, path, f"expected a string, got {_kind(value)} {_show(value)}")
        if self.choices and value not in self.choices:
            close = difflib.get_close_matches(value, self.choices, n=1)
            extra = f" (did you mean {close[0]!r}?)" if close else ""
            raise _Fail(
                node, path, f"must be one of {', '.join(self.choices)}, got {_show(value)}{extra}"
            )
        if len(value) > self.max_len:
            raise _Fail(node, path, f"longer than {self.max_len} characters ({len(value)})")
        if self.pattern and not re.fullmatch(self.pattern.strip("^$"), value):
            raise _Fail(
                node, path, f"{self.hint or 'must match ' + self.pattern}, got {_show(value)}"
            )
        return value

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "string"}
        if self.choices:
            out["enum"] = list(self.choices)
        else:
            out["maxLength"] = self.max_len
        if self.pattern:
            out["pattern"] = self.pattern
        return out


@dataclass(frozen=True)
class Int(Spec):
    lo: int
    hi: int

    def load(self, node: Any, path: str) -> int:
        value = _scalar(node, path)
        if isinstance(value, bool) or not isinstance(value, int) or not self.lo <= value <= self.hi:
            raise _Fail(
                node, path, f"must be an integer from {self.lo} to {self.hi}, got {_show(value)}"
            )
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.lo, "maximum": self.hi}


@dataclass(frozen=True)
class Num(Spec):
    lo: float
    hi: float
    unit: str = ""

    def load(self, node: Any, path: str) -> float:
        value = _scalar(node, path)
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or value != value or not self.lo <= value <= self.hi:
            unit = f" {self.unit}" if self.unit else ""
            raise _Fail(
                node,
                path,
                f"must be a number from {self.lo:g} to {self.hi:g}{unit}, got {_show(value)}",
            )
        return float(value)

    def schema(self) -> dict[str, Any]:
        return {"type": "number", "minimum": self.lo, "maximum": self.hi}


@dataclass(frozen=True)
class Bool(Spec):
    def load(self, node: Any, path: str) -> bool:
        value = _scalar(node, path)
        if not isinstance(value, bool):
            raise _Fail(node, path, f"expected true or false, got {_kind(value)} {_show(value)}")
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


_BYTES_RE = r"^([0-9]+(?:\.[0-9]+)?)\s*(?:([kmg])i?)?b?$"
_BYTE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_RATE_RE = r"^([0-9]+(?:\.[0-9]+)?)\s*([kmg]?)bit$"  # tc's "bps" means bytes/s: not accepted
# The same grammars for JSON Schema (ECMA-262 regexes have no inline case flag).
_BYTES_SCHEMA_RE = r"^[0-9]+(\.[0-9]+)?\s*([kKmMgG][iI]?)?[bB]?$"
_RATE_SCHEMA_RE = r"^[0-9]+(\.[0-9]+)?\s*[kKmMgG]?[bB][iI][tT]$"
_RATE_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}


def parse_bytes(text: str) -> int | None:
    """`14k` -> 14336, `1.5m`, `256MiB`, `600kb`: binary units as Docker's `--memory` uses."""
    m = re.fullmatch(_BYTES_RE.strip("^$"), text.strip().lower())
    if not m:
        return None
    return _saturate(float(m.group(1)) * _BYTE_UNITS[m.group(2) or ""])


def parse_rate(text: str) -> int | None:
    """`20mbit` -> 20_000_000 bits/s; decimal units as tc uses (`kbit` = 1000 bit/s)."""
    m = re.fullmatch(_RATE_RE.strip("^$"), text.strip().lower())
    if not m:
        return None
    return _saturate(float(m.group(1)) * _RATE_UNITS[m.group(2)])


def _saturate(value: float) -> int:
    # 400 digits are inf as a float and int(inf) raises: clamp, and the range check refuses it.
    return int(min(value, 2.0**64))


def format_bytes(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.4g} {unit}"
    return f"{n} B"


@dataclass(frozen=True)
class Bytes(Spec):
    """An integer count of bytes, or a string with a binary unit (`14k`, `1.5m`, `256MiB`)."""

    lo: int
    hi: int

    def load(self, node: Any, path: str) -> int:
        value = _scalar(node, path)
        n = value if isinstance(value, int) and not isinstance(value, bool) else None
        if isinstance(value, str):
            n = parse_bytes(value)
            if n is None:
                raise _Fail(
                    node,
                    path,
                    f"expected bytes like 14336, 14k, 1.5m, 256MiB, got {_show(value)}",
                )
        if n is None or not self.lo <= n <= self.hi:
            raise _Fail(
                node,
                path,
                f"must be from {format_bytes(self.lo)} to {format_bytes(self.hi)}, "
                f"got {_show(value)}",
            )
        return n

    def schema(self) -> dict[str, Any]:
        return {
            "oneOf": [
                {"type": "integer", "minimum": self.lo, "maximum": self.hi},
                {"type": "string", "pattern": _BYTES_SCHEMA_RE},
            ]
        }


@dataclass(frozen=True)
class Rate(Spec):
    """Bits per second: an integer, or a string as tc writes it (`500kbit`, `20mbit`, `1gbit`)."""

    lo: int
    hi: int

    def load(self, node: Any, path: str) -> int:
        value = _scalar(node, path)
        n = value if isinstance(value, int) and not isinstance(value, bool) else None
        if isinstance(value, str):
            n = parse_rate(value)
            if n is None:
                raise _Fail(
                    node, path, f"expected a rate like 500kbit, 20mbit or 1gbit, got {_show(value)}"
                )
        if n is None or not self.lo <= n <= self.hi:
            raise _Fail(
                node, path, f"must be from {self.lo} to {self.hi} bits/s, got {_show(value)}"
            )
        return n

    def schema(self) -> dict[str, Any]:
        return {
            "oneOf": [
                {"type": "integer", "minimum": self.lo, "maximum": self.hi},
                {"type": "string", "pattern": _RATE_SCHEMA_RE},
            ]
        }


@dataclass(frozen=True)
class ListOf(Spec):
    item: Spec
    min_items: int = 0
    max_items: int = MAX_ITEMS

    def load(self, node: Any, path: str) -> tuple[Any, ...]:
        import yaml

        if not isinstance(node, yaml.SequenceNode):
            got = _kind(_scalar(node, path)) if isinstance(node, yaml.ScalarNode) else "a mapping"
            raise _Fail(node, path, f"expected a list, got {got}")
        if len(node.value) < self.min_items:
            raise _Fail(node, path, "must not be empty" if self.min_items == 1 else "too few items")
        if len(node.value) > self.max_items:
            raise _Fail(node, path, f"at most {self.max_items} items, got {len(node.value)}")
        return tuple(self.item.load(child, f"{path}[{i}]") for i, child in enumerate(node.value))

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "array", "items": self.item.schema()}
        if self.min_items:
            out["minItems"] = self.min_items
        out["maxItems"] = self.max_items
        return out


@dataclass(frozen=True)
class Obj(Spec):
    """A mapping loaded into a frozen dataclass whose fields carry their specs."""

    cls: type

    def load(self, node: Any, path: str) -> Any:
        import yaml

        if not isinstance(node, yaml.MappingNode):
            got = _kind(_scalar(node, path)) if isinstance(node, yaml.ScalarNode) else "a list"
            raise _Fail(node, path, f"expected a mapping, got {got}")
        fields = {f.name: f for f in dataclasses.fields(self.cls) if "spec" in f.metadata}
        keys = {_key_name(f): f for f in fields.values()}
        values: dict[str, Any] = {}
        seen: dict[str, Any] = {}
        prefix = f"{path}." if path else ""
        for key_node, value_node in node.value:
            key = _scalar(key_node, path or "(top level)")
            if not isinstance(key, str):
                raise _Fail(key_node, path or "(top level)", f"keys must be strings, got {key!r}")
            if key in seen:
                raise _Fail(key_node, prefix + key, "duplicate key")
            seen[key] = key_node
            f = keys.get(key)
            if f is None:
                close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
                hint = (
                    f" (did you mean {close[0]!r}?)"
                    if close
                    else f" (known: {', '.join(sorted(keys))})"
                )
                raise _Fail(key_node, prefix + key, f"unknown key{hint}")
            values[f.name] = f.metadata["spec"].load(value_node, prefix + key)
        for name, f in keys.items():
            if f.metadata.get("required") and f.name not in values:
                raise _Fail(node, prefix + name, "required field missing")
        try:
            return self.cls(**values)
        except Invalid as exc:
            target, where = _walk(node, exc.path)
            raise _Fail(target, prefix + where if where else path, exc.message) from None

    def schema(self) -> dict[str, Any]:
        props: dict[str, Any] = {}
        required = []
        for f in dataclasses.fields(self.cls):
            if "spec" not in f.metadata:
                continue
            sub = dict(f.metadata["spec"].schema())
            if f.metadata.get("doc"):
                sub = {"description": f.metadata["doc"], **sub}
            default = f.default
            if default is not dataclasses.MISSING and default is not None:
                if not isinstance(default, str | int | float | bool):
                    default = None
                if default is not None:
                    sub["default"] = default
            props[_key_name(f)] = sub
            if f.metadata.get("required"):
                required.append(_key_name(f))
        out: dict[str, Any] = {"type": "object", "additionalProperties": False}
        if self.cls.__doc__:
            out["description"] = " ".join(self.cls.__doc__.split())
        out["properties"] = props
        if required:
            out["required"] = required
        extra = getattr(self.cls, "_schema_extra", None)
        if extra:
            out.update(extra)
        return out


def _key_name(f: dataclasses.Field) -> str:
    return f.metadata.get("key", f.name)


def _walk(node: Any, path: Sequence[str | int]) -> tuple[Any, str]:
    """Follow a field path as far as the node tree goes: the node to blame and the path text."""
    import yaml

    text = ""
    for step in path:
        if isinstance(step, int):
            text += f"[{step}]"
            if isinstance(node, yaml.SequenceNode) and step < len(node.value):
                node = node.value[step]
        else:
            text += f".{step}" if text else step
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    if isinstance(k, yaml.ScalarNode) and k.value == step:
                        node = v
                        break
    return node, text


def spec(s: Spec, default: Any = dataclasses.MISSING, doc: str = "", **meta: Any) -> Any:
    # Returns a dataclasses.field, so ruff's RUF009 (a call in a default) is silenced where used.
    """A dataclass field checked by `s`; without a default it is required in the file."""
    metadata = {"spec": s, "doc": doc, "required": default is dataclasses.MISSING, **meta}
    if isinstance(default, list | dict):  # mutable defaults go through a factory
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


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
        given = [n for n in ("messages", "sizes", "resources") if getattr(self, n) is not None]
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

    def byte_sizes(self) -> tuple[int, ...]:
        """The payload of each request's response, in order (echo: the message itself)."""
        if self.resources is not None:
            return tuple(r.size for r in self.resources)
        if self.sizes is not None:
            return self.sizes
        return tuple(len(m.encode()) for m in self.messages or ())

    def names(self) -> tuple[str, ...]:
        if self.resources is not None:
            return tuple(r.name for r in self.resources)
        if self.sizes is not None:
            return tuple(f"size-{n}" for n in self.sizes)
        return tuple(self.messages or ())


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

    def __post_init__(self) -> None:
        if self.pipeline and not self.persistent:
            raise Invalid(("pipeline",), "pipelining needs persistent: true")

    @property
    def server_mode(self) -> str:
        return "persistent" if self.persistent else "non-persistent"


@dataclass(frozen=True)
class Timeouts:
    """Seconds. connect and request go to the client; run bounds a whole mode."""

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


@dataclass(frozen=True)
class Capture:
    """tcpdump in a sidecar on the server's network namespace."""

    snaplen: int = spec(
        Int(0, 262144), 262144, doc="bytes kept per packet (tcpdump -s); 0 means 262144"
    )
    drain: float = spec(
        Num(0, 10, "s"), 0.2, doc="seconds to keep capturing after the client exits (+2 RTT)"
    )


@dataclass(frozen=True)
class Network:
    """Conditions between client and server; each optional, absent means untouched."""

    rtt: float | None = spec(Num(0, 10_000, "ms"), None, doc="added round-trip time, ms")
    jitter: float | None = spec(Num(0, 10_000, "ms"), None, doc="delay variation, ms (needs rtt)")
    loss: float | None = spec(Num(0, 100, "%"), None, doc="packet loss, percent 0-100")
    rate: int | None = spec(
        Rate(8_000, 100 * 10**9), None, doc="bandwidth: bits/s or 500kbit, 20mbit, 1gbit"
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
    protocol: str = spec(Str(choices=PROTOCOLS), doc="echo (the article's programs) or http")
    workload: Workload = spec(Obj(Workload))  # noqa: RUF009
    modes: tuple[Mode, ...] = spec(ListOf(Obj(Mode), 1, 64), doc="the modes to compare")
    description: str = spec(Str(max_len=MAX_SCALAR), "", doc="free text for the report")
    framing: str = spec(
        Str(choices=FRAMINGS), "length", doc="echo: length-prefixed messages, or raw bytes"
    )
    repeats: int = spec(Int(1, 100), 1, doc="runs of every mode")
    timeouts: Timeouts = spec(Obj(Timeouts), Timeouts())  # noqa: RUF009
    capture: Capture = spec(Obj(Capture), Capture())  # noqa: RUF009
    network: Network = spec(Obj(Network), Network())  # noqa: RUF009
    limits: Limits = spec(Obj(Limits), Limits())  # noqa: RUF009
    faults: tuple[Fault, ...] = spec(ListOf(Obj(Fault), 0, 32), (), doc="faults to inject")

    def __post_init__(self) -> None:
        self._check_workload(self.workload, ("workload",))
        seen: dict[str, int] = {}
        for i, m in enumerate(self.modes):
            if m.workload is not None:
                self._check_workload(m.workload, ("modes", i, "workload"))
            if m.name in seen:
                raise Invalid(
                    ("modes", i, "name"),
                    f"duplicate mode name {m.name!r} (also modes[{seen[m.name]}])",
                )
            seen[m.name] = i
            if self.protocol == "http" and m.framing == "raw":
                raise Invalid(("modes", i, "framing"), "framing applies to protocol echo only")
        if self.protocol == "http" and self.framing == "raw":
            raise Invalid(("framing",), "framing applies to protocol echo only")
        for i, f in enumerate(self.faults):
            if f.mode is not None and f.mode not in seen:
                raise Invalid(("faults", i, "mode"), f"no mode named {f.mode!r}")
            most = max(len(self.workload_of(m).byte_sizes()) for m in self.modes)
            if f.at.request is not None and f.at.request > most:
                raise Invalid(
                    ("faults", i, "at", "request"), f"the workload has only {most} requests"
                )

    def _check_workload(self, wl: Workload, where: tuple[str | int, ...]) -> None:
        if self.protocol == "http" and wl.resources is None:
            raise Invalid(where, "protocol http needs resources")
        if self.protocol == "echo" and wl.resources is not None:
            raise Invalid((*where, "resources"), "protocol echo needs messages or sizes")
        arg = _workload_arg(wl)
        if len(arg) > MAX_ARG_CHARS:
            raise Invalid(where, f"too large for one command line ({len(arg)} > {MAX_ARG_CHARS})")

    def framing_of(self, mode: Mode) -> str:
        return mode.framing or self.framing

    def workload_of(self, mode: Mode) -> Workload:
        return mode.workload or self.workload

    def mode(self, name: str) -> Mode:
        return select_modes(self, [name])[0]

    def port_of(self, mode: Mode) -> int:
        """The server port of a mode: one listener per mode, BASE_PORT + its index."""
        return BASE_PORT + self.modes.index(mode)

    def to_dict(self) -> dict[str, Any]:
        """Plain data that `load_scenario` accepts again (sizes in bytes, rate in bits/s)."""
        return _to_plain(self)


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        out = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if value is None:
                continue
            out[_key_name(f)] = _to_plain(value)
        return out
    if isinstance(obj, tuple | list):
        return [_to_plain(v) for v in obj]
    return obj


def dump_yaml(scenario: Scenario) -> str:
    """The scenario as run, as YAML that `load_scenario` reads back to an equal Scenario."""
    import yaml

    return yaml.safe_dump(scenario.to_dict(), sort_keys=False, allow_unicode=False, width=100)


# --- Loading ---------------------------------------------------------------------------------


def _loader() -> type:
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# Explicit tags beyond plain data (`!!python/object`, `!custom`) are refused outright.
_PLAIN_TAGS = {None, "!"} | {
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map")
}


def _check_events(text: str, where: str) -> None:
    """Refuse anchors, aliases, deep nesting, huge scalars and floods before composing nodes."""
    import yaml

    depth = 0
    for count, event in enumerate(yaml.parse(text, Loader=_loader())):
        line = event.start_mark.line + 1 if event.start_mark else 0
        if count > MAX_EVENTS:
            raise UsageError(f"{where}:{line}: too many YAML nodes (more than {MAX_EVENTS})")
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise UsageError(f"{where}:{line}: YAML anchors and aliases are not allowed")
        tag = getattr(event, "tag", None)
        if tag not in _PLAIN_TAGS:
            raise UsageError(f"{where}:{line}: YAML tag {tag[:60]!r} is not allowed")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise UsageError(f"{where}:{line}: nested deeper than {MAX_DEPTH} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        elif isinstance(event, yaml.ScalarEvent) and len(event.value) > MAX_SCALAR:
            raise UsageError(
                f"{where}:{line}: a value of {len(event.value)} characters (at most {MAX_SCALAR})"
            )


def parse_scenario(text: str, where: str = "<scenario>") -> Scenario:
    """Validate scenario YAML text; `where` names it in errors. Pure."""
    import yaml

    try:
        _check_events(text, where)
        root = yaml.compose(text, Loader=_loader())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        problem = exc.problem or exc.context or "syntax error"
        raise UsageError(f"{where}:{line}: invalid YAML: {problem}") from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise UsageError(
            f"{where}:{line}: invalid YAML: character {exc.character!r} is not allowed"
        ) from None
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"{where}: invalid YAML: {first}") from None
    if root is None:
        raise UsageError(f"{where}:1: empty file: expected a mapping with name, protocol, ...")
    try:
        return Obj(Scenario).load(root, "")
    except _Fail as fail:
        line = fail.node.start_mark.line + 1
        field_text = fail.path or "(top level)"
        raise UsageError(f"{where}:{line}: {field_text}: {fail.message}") from None


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


def _workload_arg(wl: Workload) -> str:
    if wl.resources is not None:
        return "--resources=" + ",".join(f"{r.name}:{r.size}" for r in wl.resources)
    if wl.sizes is not None:
        return "--sizes=" + ",".join(str(n) for n in wl.sizes)
    return "--messages=" + ",".join(wl.messages or ())


def _secs(x: float) -> str:
    return f"{x:g}"


def server_argv(scenario: Scenario, modes: Mode | Sequence[Mode] | None = None) -> list[str]:
    """Arguments after `python3 -m server`: one listener per mode on `scenario.port_of(mode)`.

    `modes` is one mode, several, or None for all. The server takes one framing, so the modes
    given must share it (pass one mode at a time when a mode overrides the framing).
    Logs are JSON lines.
    """
    if isinstance(modes, Mode):
        modes = (modes,)
    modes = tuple(modes) if modes is not None else scenario.modes
    if not modes:
        raise ValueError("server_argv needs at least one mode")
    framings = {scenario.framing_of(m) for m in modes}
    if len(framings) > 1:
        raise ValueError("modes with different framings need a server each")
    largest = max(max(scenario.workload_of(m).byte_sizes()) for m in modes)
    argv = [
        "--host",
        "0.0.0.0",
        "--protocol",
        scenario.protocol,
        "--framing",
        framings.pop(),
        "--log-format",
        "json",
        "--read-timeout",
        _secs(scenario.timeouts.request),
        "--idle-timeout",
        _secs(scenario.timeouts.idle),
        "--max-message",
        str(max(1 << 20, largest)),
    ]
    for m in modes:
        argv += ["--listen", f"{scenario.port_of(m)}:{m.server_mode}"]
    return argv


def client_argv(scenario: Scenario, mode: Mode, host: str, port: int | None = None) -> list[str]:
    """Arguments after `python3 -m client` for one mode (port defaults to the mode's port).

    Values go as `--opt=value` where they could start with '-', so argparse never mistakes a
    message for an option; no shell is involved anywhere.
    """
    argv = [
        "--host",
        host,
        "--port",
        str(port if port is not None else scenario.port_of(mode)),
        "--protocol",
        scenario.protocol,
        "--framing",
        scenario.framing_of(mode),
        "--mode",
        mode.server_mode,
        _workload_arg(scenario.workload_of(mode)),
        "--parallel",
        str(mode.parallel),
        "--connect-timeout",
        _secs(scenario.timeouts.connect),
        "--timeout",
        _secs(scenario.timeouts.request),
        "--log-format",
        "json",
    ]
    if mode.repeat > 1:
        argv += ["--repeat", str(mode.repeat)]
    if mode.pipeline:
        argv.append("--pipeline")
    return argv
