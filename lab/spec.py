"""Typed fields for YAML files: specs that check a node and describe themselves as JSON Schema.

A file is read as a node tree (`yaml.compose` with the safe loader), never as Python objects
first: every value is checked against its field's spec while its line is still known, so each
error is one line naming the file, the line and the field:

    scenarios/x.yaml:12: modes[1].parallel: must be an integer from 1 to 4096, got -3

Each dataclass field carries its spec in `field(metadata={"spec": ...})` (see `spec()`); the
same specs drive validation (`Obj(cls).load`) and the JSON Schema (`Obj(cls).schema()`), so the
two cannot drift apart. Checks that span fields live in `__post_init__` and raise
`Invalid(path, message)`; the loader turns the path into a line. Building the dataclass in
Python runs the same checks.

Hostile text is refused before any Python object is built (`check_events`): a cap on YAML
events, nesting depth and scalar length, and no anchors or aliases at all (an alias bomb needs
them, and a lab file never does).

PyYAML is imported through `_yaml()` when a file is read, not at import: the capture image
ships `lab` without it, and `python -m lab.schema` needs none. Pure (no I/O).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lab.errors import UsageError
from wire.units import BYTES_SCHEMA_RE, RATE_SCHEMA_RE, format_bytes, parse_bytes, parse_rate

# --- Limits against hostile or mistaken input ------------------------------------------------

MAX_EVENTS = 100_000  # YAML parser events (roughly scalars + collections)
MAX_DEPTH = 16  # nesting of mappings and sequences
MAX_SCALAR = 4096  # characters in any one scalar (descriptions included)
MAX_ITEMS = 10_000  # items in one list (messages, sizes or resources in one workload)


def _yaml() -> Any:
    import yaml  # lazy: see the module docstring

    return yaml


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
    def load(self, node: Any, path: str) -> Any:
        raise NotImplementedError

    def schema(self) -> dict[str, Any]:
        raise NotImplementedError


def _scalar(node: Any, path: str) -> Any:
    yaml = _yaml()
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
        _CONSTRUCTOR = _yaml().constructor.SafeConstructor()
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
class Version(Spec):
    """One of a few version strings; a number YAML read from an unquoted `1.3` counts too
    (people write it so)."""

    choices: tuple[str, ...] = ()

    def load(self, node: Any, path: str) -> str:
        value = _scalar(node, path)
        if isinstance(value, float | int) and not isinstance(value, bool):
            value = f"{value:g}"
        if isinstance(value, str) and value in self.choices:
            return value
        raise _Fail(node, path, f"must be one of {', '.join(self.choices)}, got {_show(value)}")

    def schema(self) -> dict[str, Any]:
        return {"enum": [*self.choices, *(float(c) for c in self.choices)]}


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
                {"type": "string", "pattern": BYTES_SCHEMA_RE},
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
                {"type": "string", "pattern": RATE_SCHEMA_RE},
            ]
        }


@dataclass(frozen=True)
class ListOf(Spec):
    item: Spec
    min_items: int = 0
    max_items: int = MAX_ITEMS

    def load(self, node: Any, path: str) -> tuple[Any, ...]:
        yaml = _yaml()
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
    # A list where the mapping is expected is short for {list_key: the list} (`capture:`).
    list_key: str | None = None

    def load(self, node: Any, path: str) -> Any:
        yaml = _yaml()
        if self.list_key and isinstance(node, yaml.SequenceNode):
            (f,) = (f for f in dataclasses.fields(self.cls) if key_name(f) == self.list_key)
            values = {f.name: f.metadata["spec"].load(node, f"{path}.{self.list_key}")}
            try:
                return self.cls(**values)
            except Invalid as exc:
                raise _Fail(node, f"{path}.{self.list_key}", exc.message) from None
        if not isinstance(node, yaml.MappingNode):
            got = _kind(_scalar(node, path)) if isinstance(node, yaml.ScalarNode) else "a list"
            raise _Fail(node, path, f"expected a mapping, got {got}")
        fields = {f.name: f for f in dataclasses.fields(self.cls) if "spec" in f.metadata}
        keys = {key_name(f): f for f in fields.values()}
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
            props[key_name(f)] = sub
            if f.metadata.get("required"):
                required.append(key_name(f))
        out: dict[str, Any] = {"type": "object", "additionalProperties": False}
        if self.cls.__doc__:
            out["description"] = " ".join(self.cls.__doc__.split())
        out["properties"] = props
        if required:
            out["required"] = required
        extra = getattr(self.cls, "_schema_extra", None)
        if extra:
            out.update(extra)
        if self.list_key:
            listed = props[self.list_key]
            return {"anyOf": [out, {k: v for k, v in listed.items() if k != "default"}]}
        return out


def key_name(f: dataclasses.Field) -> str:
    return f.metadata.get("key", f.name)


def _walk(node: Any, path: Sequence[str | int]) -> tuple[Any, str]:
    """Follow a field path as far as the node tree goes: the node to blame and the path text."""
    yaml = _yaml()
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


def to_plain(obj: Any) -> Any:
    """A spec'd dataclass as plain data that `Obj(cls).load` accepts again (None left out)."""
    if dataclasses.is_dataclass(obj):
        out = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if value is None:
                continue
            out[key_name(f)] = to_plain(value)
        return out
    if isinstance(obj, tuple | list):
        return [to_plain(v) for v in obj]
    return obj


# --- Reading YAML text ----------------------------------------------------------------------


def _loader() -> type:
    yaml = _yaml()
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# Explicit tags beyond plain data (`!!python/object`, `!custom`) are refused outright.
_PLAIN_TAGS = {None, "!"} | {
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map")
}


def check_events(text: str, where: str) -> None:
    """Refuse anchors, aliases, deep nesting, huge scalars and floods before composing nodes."""
    yaml = _yaml()
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


def parse_yaml(text: str, cls: type, where: str, empty: str) -> Any:
    """YAML `text` checked into the spec'd dataclass `cls`; UsageError `where:line: field: why`.

    `empty` is the message for a file with no content at all.
    """
    yaml = _yaml()
    try:
        check_events(text, where)
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
        raise UsageError(f"{where}:1: {empty}")
    try:
        return Obj(cls).load(root, "")
    except _Fail as fail:
        line = fail.node.start_mark.line + 1
        field_text = fail.path or "(top level)"
        raise UsageError(f"{where}:{line}: {field_text}: {fail.message}") from None
