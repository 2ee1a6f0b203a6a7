"""The `http` protocol: HTTP/1.0 (close) and HTTP/1.1 (keep-alive) as bytes in, values out.

The server answers `GET /<name>?size=N` with `body(name, size)`: deterministic bytes, always
with a Content-Length. Parsers are incremental (`feed(data)` returns whole messages) with hard
limits, so a slow or hostile peer costs a bounded amount of memory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, quote, unquote, urlsplit

from wire import payload

MAX_HEAD = 16 * 1024  # request line + headers
MAX_BODY = 64 * 1024 * 1024  # largest resource the server will generate
MAX_HEADERS = 100

REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    505: "HTTP Version Not Supported",
}

# \Z, not $: `$` also matches before a trailing newline, so "GET\n" would pass as a token.
_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_VERSION = re.compile(rb"^HTTP/1\.[01]\Z")
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,128}\Z")
_MAX_DIGITS = 30  # longer decimal strings are over any limit (and int() refuses > 4300 digits)


def _decimal(text: str) -> int | None:
    """ASCII digits as an int (None if not digits); absurdly long values saturate to 10**30.

    str.isdigit() alone also accepts '²' or Arabic-Indic digits, which int() then rejects.
    """
    if not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0") or "0"
    return int(digits) if len(digits) <= _MAX_DIGITS else 10**_MAX_DIGITS


def body(name: str, size: int) -> bytes:
    """The body of resource `name` at `size` bytes: the same bytes on every host, every time."""
    return payload.pattern(name, size)


def body_chunks(name: str, size: int) -> Iterator[bytes]:
    return payload.chunks(name, size)


class HTTPError(ValueError):
    """A request the server must refuse; `status` is the response to send before closing."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Request:
    method: str
    target: str
    version: str  # "HTTP/1.0" or "HTTP/1.1"
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    wire_len: int = 0

    def connection_tokens(self) -> set[str]:
        value = self.headers.get("connection", "")
        return {t.strip().lower() for t in value.split(",") if t.strip()}


def wants_keep_alive(request: Request) -> bool:
    """RFC 9112 §9.3: HTTP/1.1 persists unless `close`; HTTP/1.0 only with `keep-alive`."""
    tokens = request.connection_tokens()
    if "close" in tokens:
        return False
    if request.version == "HTTP/1.1":
        return True
    return "keep-alive" in tokens


def _split_head(head: bytes, what: str) -> tuple[bytes, dict[str, str]]:
    lines = head.split(b"\r\n")
    first, header_lines = lines[0], lines[1:]
    if len(header_lines) > MAX_HEADERS:
        raise HTTPError(431, f"more than {MAX_HEADERS} header fields")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.match(name):
            raise HTTPError(400, f"malformed {what} header line {line[:60]!r}")
        key = name.decode("ascii").lower()
        text = value.strip(b" \t").decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return first, headers


def parse_request_head(head: bytes) -> Request:
    """Parse a request head (without the final blank line)."""
    first, headers = _split_head(head, "request")
    parts = first.split(b" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise HTTPError(400, f"malformed request line {first[:80]!r}")
    method, target, version = parts
    if not _TOKEN.match(method):
        raise HTTPError(400, f"malformed method {method[:20]!r}")
    if not version.startswith(b"HTTP/"):
        raise HTTPError(400, f"malformed version {version[:20]!r}")
    if not _VERSION.match(version):
        raise HTTPError(505, f"unsupported version {version[:20]!r}")
    if "transfer-encoding" in headers or headers.get("content-length", "0").strip() != "0":
        raise HTTPError(400, "request bodies are not supported")
    return Request(
        method=method.decode("ascii"),
        target=target.decode("latin-1"),
        version=version.decode("ascii"),
        headers=headers,
    )


class _HeadBuffer:
    """Shared incremental head splitting for requests and responses."""

    def __init__(self, max_head: int) -> None:
        self.max_head = max_head
        self.buf = bytearray()

    def take_head(self) -> bytes | None:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > self.max_head:
                raise HTTPError(431, f"head larger than {self.max_head} bytes")
            return None
        if end > self.max_head:
            raise HTTPError(431, f"head larger than {self.max_head} bytes")
        head = bytes(self.buf[:end])
        del self.buf[: end + 4]
        return head


class RequestParser:
    """Incremental request parser: `feed(data)` returns the complete requests (pipelining ok)."""

    def __init__(self, max_head: int = MAX_HEAD) -> None:
        self._heads = _HeadBuffer(max_head)

    @property
    def pending(self) -> int:
        return len(self._heads.buf)

    def feed(self, data: bytes) -> list[Request]:
        self._heads.buf += data
        out = []
        while True:
            # Tolerate blank lines between requests (RFC 9112 §2.2).
            while self._heads.buf[:2] == b"\r\n":
                del self._heads.buf[:2]
            head = self._heads.take_head()
            if head is None:
                return out
            request = parse_request_head(head)
            request.wire_len = len(head) + 4
            out.append(request)


def route(
    request: Request, resources: dict[str, int] | None = None, max_body: int = MAX_BODY
) -> tuple[str, int]:
    """(name, size) of the resource a request asks for, or HTTPError."""
    if request.method != "GET":
        raise HTTPError(405, f"method {request.method} not allowed (GET only)")
    try:
        url = urlsplit(request.target)
    except ValueError:  # e.g. "//[x": an unclosed IPv6 host in an authority-form target
        raise HTTPError(400, f"malformed target {request.target[:80]!r}") from None
    name = unquote(url.path).lstrip("/")
    if not _NAME.match(name):
        raise HTTPError(404, f"no resource at {url.path[:80]!r}")
    query = parse_qs(url.query)
    if "size" in query:
        text = query["size"][-1]
        size = _decimal(text)
        if size is None:
            raise HTTPError(400, f"size must be a non-negative integer, not {text[:20]!r}")
    elif resources and name in resources:
        size = resources[name]
    else:
        raise HTTPError(404, f"unknown resource {name!r} (ask for /{name}?size=N)")
    if size > max_body:
        shown = str(size) if size < 10**_MAX_DIGITS else "over 10**30"
        raise HTTPError(413, f"size {shown} exceeds the limit of {max_body} bytes")
    return name, size


def response_head(
    status: int, length: int, keep_alive: bool, version: str = "HTTP/1.1", content_type: str = ""
) -> bytes:
    lines = [
        f"{version} {status} {REASONS.get(status, 'Unknown')}",
        "Server: tcplab",
        f"Content-Type: {content_type or 'application/octet-stream'}",
        f"Content-Length: {length}",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def error_response(status: int, message: str, version: str = "HTTP/1.1") -> bytes:
    text = f"{status} {REASONS.get(status, 'Error')}: {message}\n".encode()
    head = response_head(status, len(text), False, version, "text/plain; charset=utf-8")
    return head + text


def request_bytes(name: str, size: int, host: str, keep_alive: bool, version: str) -> bytes:
    """A client's GET for `name` at `size` bytes."""
    target = f"/{quote(name)}?size={size}"
    conn = "keep-alive" if keep_alive else "close"
    return (
        f"GET {target} {version}\r\nHost: {host}\r\nUser-Agent: tcplab-client\r\n"
        f"Connection: {conn}\r\n\r\n"
    ).encode("ascii")


@dataclass
class Response:
    version: str
    status: int
    headers: dict[str, str]
    body: bytes
    wire_len: int

    @property
    def keep_alive(self) -> bool:
        tokens = {t.strip().lower() for t in self.headers.get("connection", "").split(",")}
        if "close" in tokens:
            return False
        return self.version == "HTTP/1.1" or "keep-alive" in tokens


class ResponseParser:
    """Incremental response parser for the client; requires Content-Length (our server sends it)."""

    def __init__(self, max_head: int = MAX_HEAD, max_body: int = MAX_BODY) -> None:
        self._heads = _HeadBuffer(max_head)
        self.max_body = max_body
        self._head: tuple[str, int, dict[str, str], int] | None = None

    @property
    def pending(self) -> int:
        return len(self._heads.buf) + (1 if self._head else 0)

    def feed(self, data: bytes) -> list[Response]:
        self._heads.buf += data
        out = []
        while True:
            if self._head is None:
                head = self._heads.take_head()
                if head is None:
                    return out
                self._head = self._parse_head(head)
            version, status, headers, head_len = self._head
            length = int(headers["content-length"])
            if len(self._heads.buf) < length:
                return out
            content = bytes(self._heads.buf[:length])
            del self._heads.buf[:length]
            self._head = None
            out.append(Response(version, status, headers, content, head_len + length))

    def _parse_head(self, head: bytes) -> tuple[str, int, dict[str, str], int]:
        first, headers = _split_head(head, "response")
        parts = first.split(b" ", 2)
        if len(parts) < 2 or not _VERSION.match(parts[0]) or not parts[1].isdigit():
            raise HTTPError(400, f"malformed status line {first[:80]!r}")
        text = headers.get("content-length", "")
        length = _decimal(text)
        if length is None:
            raise HTTPError(400, "response without a valid Content-Length")
        if length > self.max_body:
            raise HTTPError(413, f"response body of {text[:20]} bytes exceeds {self.max_body}")
        headers["content-length"] = str(length)  # feed() reads it back with int()
        return parts[0].decode(), int(parts[1]), headers, len(head) + 4


def load_resources(text: str) -> dict[str, int]:
    """Resources file: JSON `{"name": size, ...}`, or one `name size` per line (# comments)."""
    stripped = text.strip()
    if stripped.startswith("{"):
        data = json.loads(stripped)
        items = list(data.items())
    else:
        items = []
        for number, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 2:
                raise ValueError(f"line {number}: expected `name size`, got {line!r}")
            items.append((parts[0], parts[1]))
    resources: dict[str, int] = {}
    for name, size in items:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"bad resource name {name!r} (letters, digits, . _ -)")
        if isinstance(size, bool) or not str(size).isdigit() or int(size) > MAX_BODY:
            raise ValueError(f"resource {name}: size must be an integer 0..{MAX_BODY}")
        resources[name] = int(size)
    return resources
