"""What each request sends and what must come back: bytes in, values out (no sockets)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace

from wire import framing, http, payload


@dataclass(frozen=True)
class Item:
    name: str  # the message text, or the resource name
    payload: bytes = b""  # echo: the message
    size: int = 0  # http: the body size
    request_id: int = 0  # 1-based position in the whole run (unique even when repeated)


def items_from_messages(text: str) -> list[Item]:
    names = [m for m in text.split(",") if m]
    if not names:
        raise ValueError("--messages needs at least one message")
    return [Item(name=m, payload=m.encode("utf-8")) for m in names]


def items_from_sizes(text: str, protocol: str) -> list[Item]:
    sizes = _ints(text, "--sizes")
    if protocol == "http":
        return [Item(name=f"r{i + 1}", size=s) for i, s in enumerate(sizes)]
    return [Item(name=n, payload=p) for n, p in payload.sized_messages(sizes)]


def items_from_resources(text: str, protocol: str) -> list[Item]:
    items = []
    for part in (p for p in text.split(",") if p):
        name, sep, size = part.partition(":")
        if not sep or not name or not size.isdigit():
            raise ValueError(f"--resources: expected name:size, got {part!r}")
        if protocol == "http":
            items.append(Item(name=name, size=int(size)))
        else:
            items.append(Item(name=name, payload=payload.pattern(name, int(size))))
    if not items:
        raise ValueError("--resources needs at least one name:size")
    return items


def _ints(text: str, flag: str) -> list[int]:
    parts = [p for p in text.split(",") if p]
    if not parts or not all(p.isdigit() for p in parts):
        raise ValueError(f"{flag}: expected sizes like 100,2000, got {text!r}")
    return [int(p) for p in parts]


def numbered(items: list[Item], repeat: int = 1) -> list[Item]:
    """The workload `repeat` times over, each request with its own id (load runs)."""
    return [replace(it, request_id=n) for n, it in enumerate(items * repeat, 1)]


def checksum(response: object) -> int:
    """CRC-32 of what a response carries (the HTTP body, or the echoed bytes), for the log:
    a later reader can check every response again without the bytes themselves."""
    data = response.body if isinstance(response, http.Response) else response
    assert isinstance(data, bytes)
    return zlib.crc32(data)


def share(items: list[Item], connections: int) -> list[list[Item]]:
    """Persistent mode: deal the requests round-robin over the connections (none left empty)."""
    n = max(1, min(connections, len(items)))
    return [items[i::n] for i in range(n)]


class Protocol:
    """How one request/response pair looks on the wire for a protocol and framing."""

    def __init__(self, protocol: str, framing_name: str, persistent: bool, host: str) -> None:
        self.protocol = protocol
        self.framing = framing_name
        self.persistent = persistent
        self.host = host

    def request(self, item: Item) -> bytes:
        if self.protocol == "http":
            version = "HTTP/1.1" if self.persistent else "HTTP/1.0"
            return http.request_bytes(item.name, item.size, self.host, self.persistent, version)
        return framing.encode(self.framing, item.payload, max(len(item.payload), 1))

    def decoder(self, items: list[Item]) -> ResponseDecoder:
        if self.protocol == "http":
            largest = max((i.size for i in items), default=0)
            return ResponseDecoder(http.ResponseParser(max_body=max(largest, http.MAX_BODY)))
        largest = max((len(i.payload) for i in items), default=0)
        return ResponseDecoder(framing.LengthDecoder(max(largest, framing.DEFAULT_MAX_MESSAGE)))

    def check(self, item: Item, response: object) -> str | None:
        """None when the response is exactly what `item` must get back, else why not."""
        if self.protocol == "http":
            assert isinstance(response, http.Response)
            if response.status != 200:
                return f"{item.name}: HTTP status {response.status}, expected 200"
            if response.headers.get("content-length") != str(item.size):
                got = response.headers.get("content-length")
                return f"{item.name}: Content-Length {got}, expected {item.size}"
            if response.body != http.body(item.name, item.size):
                return f"{item.name}: body differs from wire.http.body({item.name!r}, {item.size})"
            return None
        assert isinstance(response, bytes)
        if response != item.payload:
            return f"echo of {_short(item.name)} differs ({len(response)} bytes back)"
        return None


class ResponseDecoder:
    """Adapts the framing and HTTP decoders: `feed` -> [(response, wire_len)]."""

    def __init__(self, inner: framing.LengthDecoder | http.ResponseParser) -> None:
        self.inner = inner

    @property
    def pending(self) -> int:
        return self.inner.pending

    def feed(self, data: bytes) -> list[tuple[object, int]]:
        out = self.inner.feed(data)
        if isinstance(self.inner, http.ResponseParser):
            return [(r, r.wire_len) for r in out]  # type: ignore[union-attr]
        return [(m, framing.HEADER_SIZE + len(m)) for m in out]  # type: ignore[arg-type]


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
