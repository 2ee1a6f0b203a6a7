"""The `http` protocol: HTTP/1.0 (close) and HTTP/1.1 (keep-alive) as bytes in, values out.

The server answers `GET /<name>?size=N` (and `HEAD`, the same head without the body) with
`body(name, size)`: deterministic bytes, always with a Content-Length and a Date. Parsers are
incremental (`feed(data)` returns whole messages) with hard limits, so a slow or hostile peer
costs a bounded amount of memory.

What RFC 9110/9112 ask of an origin server and how it is met here: HEAD is served like GET
without the body; any other method gets 405 with `Allow: GET, HEAD`; an HTTP/1.1 request
without a Host, any request with two Hosts or an invalid one, gets 400; a request line over
`MAX_REQUEST_LINE` gets 414, a head over `MAX_HEAD` 431; HTTP/1.x with a minor version above 1
is served as HTTP/1.1 (RFC 9110 §2.5), any other version gets 505. Request content is never
read: a request that has some is refused (413 for GET and HEAD, 405 otherwise) and, since its
bytes are still on the wire, the connection closed. Which refusals keep a connection open is
the rule in `RequestParser`'s docstring.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from urllib.parse import parse_qs, quote, unquote, urlsplit

from wire import payload

MAX_HEAD = 16 * 1024  # request line + headers
# RFC 9112 §3 asks for at least 8000 octets; nginx and Apache refuse a longer line with 414 too.
MAX_REQUEST_LINE = 8 * 1024
MAX_BODY = 64 * 1024 * 1024  # largest resource the server will generate
MAX_HEADERS = 100

REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    505: "HTTP Version Not Supported",
}

# \Z, not $: `$` also matches before a trailing newline, so "GET\n" would pass as a token.
_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_VERSION = re.compile(rb"^HTTP/1\.[01]\Z")  # what a response's status line may say
# HTTP-version = "HTTP/" DIGIT "." DIGIT (RFC 9112 §2.3); a request's major version must be 1.
_REQUEST_VERSION = re.compile(rb"^HTTP/([0-9])\.([0-9])\Z")
_VERSIONS = {b"HTTP/1.1": "HTTP/1.1", b"HTTP/1.0": "HTTP/1.0"}
# Host = uri-host [ ":" port ] (RFC 9110 §7.2, RFC 3986 §3.2.2): an IP-literal in brackets or a
# reg-name (unreserved, pct-encoded, sub-delims); an empty value is allowed.
_HOST = re.compile(
    r"^(?:\[[0-9A-Za-z:._~!$&'()*+,;=-]+\]|[0-9A-Za-z._~!$&'()*+,;=%-]*)(?::[0-9]*)?\Z"
)
ALLOWED_METHODS = ("GET", "HEAD")
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


_date_cache: tuple[int, str] = (-1, "")


def http_date(now: float | None = None) -> str:
    """The Date header's value, IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 §5.6.7).

    Formatted once per second, not once per response: formatdate costs a few microseconds, a
    tuple compare far less. One tuple is swapped whole, so threads never see half an update.
    """
    global _date_cache
    second = int(time.time() if now is None else now)
    cached = _date_cache
    if cached[0] != second:
        cached = (second, formatdate(second, usegmt=True))
        _date_cache = cached
    return cached[1]


def body(name: str, size: int) -> bytes:
    """The body of resource `name` at `size` bytes: the same bytes on every host, every time."""
    return payload.pattern(name, size)


def body_chunks(name: str, size: int) -> Iterator[bytes]:
    return payload.chunks(name, size)


class HTTPError(ValueError):
    """A request the server must refuse; `status` is the response to send."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Request:
    method: str
    target: str
    version: str  # "HTTP/1.0" or "HTTP/1.1" (HTTP/1.2 to 1.9 are served as 1.1)
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
        if key in headers:
            if key == "host":  # joined, two Hosts would look like one odd value
                raise HTTPError(400, "more than one Host header field")
            headers[key] = f"{headers[key]}, {text}"
        else:
            headers[key] = text
    return first, headers


def parse_request_head(head: bytes, max_line: int = MAX_REQUEST_LINE) -> Request:
    """Parse a request head (without the final blank line)."""
    first, headers = _split_head(head, "request")
    if len(first) > max_line:
        raise HTTPError(414, f"request line longer than {max_line} bytes")
    parts = first.split(b" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise HTTPError(400, f"malformed request line {first[:80]!r}")
    method, target, raw_version = parts
    if not _TOKEN.match(method):
        raise HTTPError(400, f"malformed method {method[:20]!r}")
    if not raw_version.startswith(b"HTTP/"):
        raise HTTPError(400, f"malformed version {raw_version[:20]!r}")
    version = _VERSIONS.get(raw_version)  # nearly every request: no regex
    if version is None:
        numbers = _REQUEST_VERSION.match(raw_version)
        if not numbers or numbers[1] != b"1":
            raise HTTPError(505, f"unsupported version {raw_version[:20]!r}")
        # RFC 9110 §2.5: a later minor version is answered with the highest one the server has.
        version = "HTTP/1.1"
    host = headers.get("host")
    if host is None:
        if version == "HTTP/1.1":
            raise HTTPError(400, "HTTP/1.1 request without a Host header field")
    elif not _HOST.match(host):
        raise HTTPError(400, f"invalid Host {host[:60]!r}")
    if "content-length" in headers or "transfer-encoding" in headers:
        _refuse_content(method, headers)
    return Request(
        method=method.decode("ascii"),
        target=target.decode("latin-1"),
        version=version,
        headers=headers,
    )


def _refuse_content(method: bytes, headers: dict[str, str]) -> None:
    """No request here has content: a request that comes with some is refused (and, since the
    server does not read it, the connection must close: its bytes would be read as a request)."""
    length_text = headers.get("content-length")
    if length_text is not None and _decimal(length_text) is None:
        raise HTTPError(400, f"invalid Content-Length {length_text[:20]!r}")
    if "transfer-encoding" not in headers and not (length_text and _decimal(length_text)):
        return
    if method.decode("ascii") not in ALLOWED_METHODS:
        raise HTTPError(405, f"method {method[:20].decode('ascii')} not allowed (GET or HEAD)")
    raise HTTPError(413, "request content is not accepted (a GET or HEAD has none)")


class _HeadBuffer:
    """Shared incremental head splitting for requests and responses."""

    def __init__(self, max_head: int) -> None:
        self.max_head = max_head
        self.buf = bytearray()

    def take_head(self, max_line: int | None = None) -> bytes | None:
        """The next whole head, without its blank line; None until it has arrived. With
        `max_line`, a first line longer than that is refused with 414 (URI Too Long) even
        before its end arrives, ahead of the head's own limit (431). (A whole head within the
        limits has its first line checked by `parse_request_head`: no second scan here.)"""
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0 or end > self.max_head:
            if (
                max_line is not None
                and len(buf) >= max_line + 2
                and buf.find(b"\r\n", 0, max_line + 2) < 0
            ):
                raise HTTPError(414, f"request line longer than {max_line} bytes")
            if end > self.max_head or len(buf) > self.max_head:
                raise HTTPError(431, f"head larger than {self.max_head} bytes")
            return None
        head = bytes(buf[:end])
        del self.buf[: end + 4]
        return head


class RequestParser:
    """Incremental request parser: `feed(data)` returns the complete requests (pipelining ok).

    A head it cannot take (malformed, too large, a version it does not speak, a Host error,
    content it will not read) raises HTTPError. Requests that came before it in the same data
    are returned first and the error is kept (`refusal`, raised again by any later `feed`): a
    server answers pipelined requests in order, then the refusal.

    The rule for the connection after a refusal (RFC 9112 §9.3: only a message whose framing is
    known leaves the connection usable):
    - the parser's refusals close it. After one, where the next request starts is unknown: the
      head may have been cut off by a limit, its content is unread and would be taken for a
      request, or the peer does not speak our HTTP at all. The parser refuses everything after.
    - refusals of a request the parser took whole (`route`'s: 404, 405, a `size` that is not a
      number (400) or over the limit (413)) keep it, like a 200, if the client wants it kept:
      the request was a head ending in its blank line, with no content, so the next byte is the
      next request's. A browser's missing favicon costs no new connection.
    """

    def __init__(self, max_head: int = MAX_HEAD, max_line: int = MAX_REQUEST_LINE) -> None:
        self._heads = _HeadBuffer(max_head)
        self.max_line = min(max_line, max_head)
        self.refusal: HTTPError | None = None

    @property
    def pending(self) -> int:
        return len(self._heads.buf)

    def feed(self, data: bytes) -> list[Request]:
        if self.refusal is not None:
            raise self.refusal
        self._heads.buf += data
        out: list[Request] = []
        while True:
            # Tolerate blank lines between requests (RFC 9112 §2.2).
            while self._heads.buf[:2] == b"\r\n":
                del self._heads.buf[:2]
            try:
                head = self._heads.take_head(self.max_line)
                if head is None:
                    return out
                request = parse_request_head(head, self.max_line)
            except HTTPError as exc:
                self.refusal = exc
                del self._heads.buf[:]  # nothing after a refusal is ever parsed
                if out:
                    return out
                raise
            request.wire_len = len(head) + 4
            out.append(request)


def route(
    request: Request, resources: dict[str, int] | None = None, max_body: int = MAX_BODY
) -> tuple[str, int]:
    """(name, size) of the resource a GET or HEAD asks for, or HTTPError."""
    if request.method not in ALLOWED_METHODS:
        raise HTTPError(405, f"method {request.method} not allowed (GET or HEAD)")
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
    status: int,
    length: int,
    keep_alive: bool,
    version: str = "HTTP/1.1",
    content_type: str = "",
    date: str | None = None,
) -> bytes:
    """A response head; `length` is the body's, also for a HEAD (which gets no body)."""
    lines = [
        f"{version} {status} {REASONS.get(status, 'Unknown')}",
        f"Date: {date or http_date()}",
        "Server: tcplab",
        f"Content-Type: {content_type or 'application/octet-stream'}",
        f"Content-Length: {length}",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
    ]
    if status == 405:  # RFC 9110 §15.5.6: a 405 MUST say what is allowed
        lines.append(f"Allow: {', '.join(ALLOWED_METHODS)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def error_response(
    status: int,
    message: str,
    version: str = "HTTP/1.1",
    keep_alive: bool = False,
    head_only: bool = False,
) -> bytes:
    """A refusal with a one-line text body (`head_only`: the head alone, for a HEAD)."""
    text = f"{status} {REASONS.get(status, 'Error')}: {message}\n".encode()
    head = response_head(status, len(text), keep_alive, version, "text/plain; charset=utf-8")
    return head if head_only else head + text


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
