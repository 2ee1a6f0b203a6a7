"""What each request sends and what must come back: bytes in, values out (no sockets)."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

from wire import framing, http, payload, protocols, site
from wire.payload import preview


@dataclass(frozen=True)
class Item:
    name: str  # the message text, or the resource name
    payload: bytes = b""  # echo: the message
    size: int = 0  # http: the body size
    request_id: int = 0  # 1-based position in the whole run (unique even when repeated)
    page: site.Page = site.NO_PAGE  # http: the page it belongs to, which decides its body


def items_from_messages(text: str) -> list[Item]:
    names = [m for m in text.split(",") if m]
    if not names:
        raise ValueError("--messages needs at least one message")
    return [Item(name=m, payload=m.encode("utf-8")) for m in names]


def items_from_sizes(text: str, protocol: str) -> list[Item]:
    return plan_class(protocol).items_from_sizes(_ints(text, "--sizes"))


def items_from_resources(text: str, protocol: str) -> list[Item]:
    """`name:size[:kind],...`: http serves them as a page (`wire.site`), echo as payloads."""
    cls = plan_class(protocol)
    try:
        page = site.parse_page(text)
    except ValueError as exc:
        raise ValueError(f"--resources: {exc}") from None
    if not page.resources:
        raise ValueError("--resources needs at least one name:size")
    return [cls.item(r.name, r.size, page) for r in page.resources]


def _ints(text: str, flag: str) -> list[int]:
    parts = [p for p in text.split(",") if p]
    if not parts or not all(p.isdigit() for p in parts):
        raise ValueError(f"{flag}: expected sizes like 100,2000, got {text!r}")
    return [int(p) for p in parts]


def numbered(items: list[Item], repeat: int = 1) -> list[Item]:
    """The workload `repeat` times over, each request with its own id (load runs)."""
    return [replace(it, request_id=n) for n, it in enumerate(items * repeat, 1)]


def checksum(data: bytes) -> int:
    """CRC-32 of what a response carries (the HTTP body, or the echoed bytes), for the log:
    a later reader can check every response again without the bytes themselves."""
    return zlib.crc32(data)


def share(items: list[Item], connections: int) -> list[list[Item]]:
    """Persistent mode: deal the requests round-robin over the connections (none left empty)."""
    n = max(1, min(connections, len(items)))
    return [items[i::n] for i in range(n)]


class Plan:
    """How one protocol's request/response pairs look on the wire: one subclass per protocol
    in `PLANS` (names from `wire.protocols`). Responses are whatever its decoder yields."""

    decode_errors: tuple[type[Exception], ...] = ()  # what its decoder raises on bad bytes
    multiplexed = False  # HTTP/2: a connection's requests go out at once (`Http2Plan`)

    def __init__(self, framing_name: str, persistent: bool, host: str) -> None:
        self.framing = framing_name
        self.persistent = persistent
        self.host = host

    @property
    def raw(self) -> bool:
        """No boundaries at all: write the payloads as they are and read to the peer's FIN."""
        return False

    @staticmethod
    def items_from_sizes(sizes: list[int]) -> list[Item]:
        raise NotImplementedError

    @staticmethod
    def item(name: str, size: int, page: site.Page = site.NO_PAGE) -> Item:
        """The request for a named resource of `size` bytes of a page (`--resources`)."""
        raise NotImplementedError

    def request(self, item: Item) -> bytes:
        raise NotImplementedError

    def decoder(self, items: list[Item]) -> ResponseDecoder:
        raise NotImplementedError

    def check(self, item: Item, response: Any) -> str | None:
        """None when the response is exactly what `item` must get back, else why not."""
        raise NotImplementedError

    def body(self, response: Any) -> bytes:
        """What the response carries (for its checksum)."""
        raise NotImplementedError

    def label(self, item: Item) -> str:
        """How the log line names a request: `... sent by Client N`."""
        raise NotImplementedError

    def show(self, response: Any) -> str:
        """How the log line shows a response: `Response from server (Client N): ...`."""
        raise NotImplementedError


class EchoPlan(Plan):
    """The article's protocol: the server sends every message back."""

    decode_errors = (framing.FramingError,)

    @property
    def raw(self) -> bool:
        return self.framing == "raw"

    @staticmethod
    def items_from_sizes(sizes: list[int]) -> list[Item]:
        return [Item(name=n, payload=p) for n, p in payload.sized_messages(sizes)]

    @staticmethod
    def item(name: str, size: int, page: site.Page = site.NO_PAGE) -> Item:
        return Item(name=name, payload=payload.pattern(name, size))

    def request(self, item: Item) -> bytes:
        return framing.encode(self.framing, item.payload, max(len(item.payload), 1))

    def decoder(self, items: list[Item]) -> ResponseDecoder:
        largest = max((len(i.payload) for i in items), default=0)
        inner = framing.LengthDecoder(max(largest, framing.DEFAULT_MAX_MESSAGE))
        return ResponseDecoder(inner, lambda m: framing.HEADER_SIZE + len(m))

    def check(self, item: Item, response: bytes) -> str | None:
        if response != item.payload:
            return f"echo of {_short(item.name)} differs ({len(response)} bytes back)"
        return None

    def body(self, response: bytes) -> bytes:
        return response

    def label(self, item: Item) -> str:
        return preview(item.name)

    def show(self, response: bytes) -> str:
        return preview(response)


class HttpPlan(Plan):
    """GET /name?size=N: HTTP/1.0 per connection, or HTTP/1.1 keep-alive."""

    decode_errors = (http.HTTPError,)

    @staticmethod
    def items_from_sizes(sizes: list[int]) -> list[Item]:
        return [Item(name=f"r{i + 1}", size=s) for i, s in enumerate(sizes)]

    @staticmethod
    def item(name: str, size: int, page: site.Page = site.NO_PAGE) -> Item:
        return Item(name=name, size=size, page=page)

    def request(self, item: Item) -> bytes:
        version = "HTTP/1.1" if self.persistent else "HTTP/1.0"
        return http.request_bytes(item.name, item.size, self.host, self.persistent, version)

    def decoder(self, items: list[Item]) -> ResponseDecoder:
        largest = max((i.size for i in items), default=0)
        inner = http.ResponseParser(max_body=max(largest, http.MAX_BODY))
        return ResponseDecoder(inner, lambda r: r.wire_len)

    def check(self, item: Item, response: http.Response) -> str | None:
        if response.status != 200:
            return f"{item.name}: HTTP status {response.status}, expected 200"
        if response.headers.get("content-length") != str(item.size):
            got = response.headers.get("content-length")
            return f"{item.name}: Content-Length {got}, expected {item.size}"
        # The server's own function: the page's typed body, or the hex pattern off the page.
        content_type = item.page.content_type(item.name, item.size)
        if response.headers.get("content-type") != content_type:
            got = response.headers.get("content-type")
            return f"{item.name}: Content-Type {got}, expected {content_type}"
        if response.body != item.page.body(item.name, item.size):
            return f"{item.name}: body differs from the page's ({content_type}, {item.size} bytes)"
        return None

    def body(self, response: http.Response) -> bytes:
        return response.body

    def label(self, item: Item) -> str:
        return f"GET /{item.name}?size={item.size}"

    def show(self, response: http.Response) -> str:
        return f"{response.status} ({len(response.body)} bytes body)"


class Http2Plan(HttpPlan):
    """HTTP/2 (h2 over TLS, h2c in clear): a connection's requests all at once, as streams
    (`client.http2`), so there are no request bytes or decoder of its own: the client's
    `_multiplexed` fetches each connection's share of the page. A response is a
    `client.http2.Response`, checked as HTTP/1's (status, length, type, the page's body)."""

    multiplexed = True

    def path(self, item: Item) -> str:
        """The request's :path, HTTP/1's target: /name?size=N (any server can answer it)."""
        return f"/{quote(item.name)}?size={item.size}"

    def check(self, item: Item, response: Any) -> str | None:
        if response.reset:
            return f"{item.name}: stream {response.stream_id} reset by the server"
        return super().check(item, _as_http1(response))

    def body(self, response: Any) -> bytes:
        return response.body

    def label(self, item: Item) -> str:
        return f"GET {self.path(item)} (HTTP/2)"

    def show(self, response: Any) -> str:
        return f"{response.status} ({len(response.body)} bytes body, stream {response.stream_id})"


def _as_http1(response: Any) -> http.Response:
    """An HTTP/2 response in HTTP/1's shape, for `HttpPlan.check`."""
    headers = {k: v for k, v in response.headers.items() if not k.startswith(":")}
    return http.Response("HTTP/2", response.status or 0, headers, response.body, 0)


PLANS: dict[str, type[Plan]] = {
    protocols.ECHO.name: EchoPlan,
    protocols.HTTP.name: HttpPlan,
    protocols.H2.name: Http2Plan,
    protocols.H2C.name: Http2Plan,
}


def plan_class(protocol: str) -> type[Plan]:
    """The plan of `protocol`; UnknownProtocol if it is not registered."""
    protocols.get(protocol)  # the one-line error for a name nobody registered
    return PLANS[protocol]


def plan_for(protocol: str, framing_name: str, persistent: bool, host: str) -> Plan:
    return plan_class(protocol)(framing_name, persistent, host)


class ResponseDecoder:
    """A protocol's incremental decoder: `feed` -> [(response, bytes it took on the wire)]."""

    def __init__(self, inner: Any, wire_len: Callable[[Any], int]) -> None:
        self.inner = inner
        self.wire_len = wire_len

    @property
    def pending(self) -> int:
        return self.inner.pending

    def feed(self, data: bytes) -> list[tuple[Any, int]]:
        return [(r, self.wire_len(r)) for r in self.inner.feed(data)]


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
