"""Each protocol on one connection: `HANDLERS` maps a protocol name (see `wire.protocols`) to
the function that serves it. Each returns None when the peer closed first, or the reason the
server closes first; errors are raised and the caller closes the connection.

Handlers are generators: every read and write is a `yield from conn...`, so the same code runs
on a blocking socket in a thread (nothing is ever yielded) and in an event loop (the connection
yields what it waits for; see `server.connection`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from server.connection import Connection, MessageClock, PeerError, Waits
from wire import framing, http, protocols, site
from wire.framing import DEFAULT_MAX_MESSAGE
from wire.payload import preview

DEFAULT_HEAD_TIMEOUT = 10.0  # seconds
DEFAULT_MESSAGE_TIMEOUT = 10.0  # seconds


@dataclass(frozen=True)
class ProtocolOptions:
    protocol: str = protocols.DEFAULT
    framing: str = "length"
    max_message: int = DEFAULT_MAX_MESSAGE
    max_requests: int | None = None
    resources: dict[str, int] | None = None
    page: site.Page = site.NO_PAGE  # http: the scenario's page, served as a small web site
    max_body: int = http.MAX_BODY
    wait_peer_fin: bool = False
    # Deadlines for a whole request head (http) and a whole echo message, from the moment the
    # server waits for more of one: a peer trickling bytes cannot hold a connection for longer.
    head_timeout: float = DEFAULT_HEAD_TIMEOUT
    message_timeout: float = DEFAULT_MESSAGE_TIMEOUT
    # Set by --reset or SIGUSR1 (a lab fault): each connection ends with a RST after its next
    # answer, instead of a FIN or another keep-alive request.
    resets: threading.Event = field(default_factory=threading.Event, compare=False)


def serve_echo(conn: Connection, opts: ProtocolOptions) -> Waits[str | None]:
    # Raw framing on a non-persistent listener: the message is everything up to the peer's
    # half-close (the client's shutdown(SHUT_WR)), so no byte is left unanswered.
    until_fin = opts.framing == "raw" and not conn.persistent
    decoder = framing.decoder(opts.framing, opts.max_message, until_fin=until_fin)
    what = "raw message (it ends at the peer's FIN)" if until_fin else "echo message"
    clock = MessageClock(what, "--message-timeout", opts.message_timeout)
    if opts.wait_peer_fin and conn.persistent:  # non-persistent clients wait for our FIN
        yield from conn.wait_peer_fin()
    # Length framing, quiet log: a read of whole messages is echoed as it came (the common
    # case: one request per read), without splitting and re-framing it.
    whole = decoder.whole if opts.framing == "length" and not conn.log.per_connection else None
    if not conn.persistent:  # `most`: the messages answered before the server closes (0: no end)
        most, last_reason = 1, "answered one message (non-persistent)"
    else:
        most, last_reason = opts.max_requests or 0, f"max requests ({opts.max_requests}) reached"
    answered = 0
    while True:
        data = yield from conn.recv(mid_message=decoder.pending > 0, clock=clock)
        count = whole(data) if whole and data else 0
        if count and (not most or answered + count <= most):
            reply, echoed = data, ()  # whole messages: their echo is the read itself
            answered += count
        else:
            if data:
                messages = decoder.feed(data)
            else:
                messages = decoder.eof()  # TruncatedMessage if the peer stopped mid-message
                if not messages:
                    return None
                conn.event("peer_fin")  # the FIN ended the message: logged as it came
            replies = []
            for message in messages:
                replies.append(framing.encode(opts.framing, message, opts.max_message))
                answered += 1
                if answered == most:
                    break
            reply, echoed = b"".join(replies), messages[: len(replies)]
        if reply:
            yield from conn.send(reply)
            # Logged once echoed, as http's `response`: a fault `at: {request: N}` follows
            # these lines, and fired on receipt it killed a server mid-echo (seen in CI).
            if conn.log.per_connection:
                for message in echoed:
                    conn.event("message", preview=preview(message), bytes=len(message))
            if opts.resets.is_set():
                return conn.reset("reset mode")
        if reply or not decoder.pending:  # a new message, or time spent writing: fresh clock
            clock.reset()
        if most and answered == most:
            return last_reason
        if conn.stopping and decoder.pending == 0:
            return "server shutting down"


def serve_http(conn: Connection, opts: ProtocolOptions) -> Waits[str | None]:
    """HTTP/1.0 (non-persistent listener: one response, then close) or HTTP/1.1 keep-alive.

    Every request is answered in order, refusals too. A refusal of a request the parser took
    whole (404, 405, a bad `size`) keeps the connection as a 200 would; a refusal by the parser
    (malformed or oversized head, Host error, unread content, unknown version) closes it: where
    the next request starts is unknown (`http.RequestParser` has the rule and why).
    """
    parser = http.RequestParser()
    clock = MessageClock("request head", "--head-timeout", opts.head_timeout)
    version = "HTTP/1.1" if conn.persistent else "HTTP/1.0"
    answered = 0
    while True:
        data = yield from conn.recv(mid_message=parser.pending > 0, clock=clock)
        if not data:
            if parser.pending:
                raise PeerError(f"connection ended mid-request ({parser.pending} bytes)")
            return None
        try:
            requests = parser.feed(data)
        except http.HTTPError as exc:
            return (yield from _refuse(conn, exc, version))
        for request in requests:
            conn.event(
                "request",
                request_line=f"{request.method} {request.target} {request.version}"[:200],
                version=request.version,
            )
            answered += 1
            last = bool(opts.max_requests and answered >= opts.max_requests)
            wanted = conn.persistent and http.wants_keep_alive(request)
            keep_alive = wanted and not last and not conn.stopping
            head_only = request.method == "HEAD"  # the same head as a GET, no body
            try:
                name, size = http.route(request, opts.resources, opts.max_body)
            except http.HTTPError as exc:
                yield from _refuse(conn, exc, version, keep_alive, head_only)
            else:
                chunks = opts.page.chunks(name, size)
                content_type = opts.page.content_type(name, size)
                head = http.response_head(200, size, keep_alive, version, content_type)
                yield from conn.send(head if head_only else head + next(chunks, b""))
                for chunk in () if head_only else chunks:
                    yield from conn.send(chunk)
                sent = 0 if head_only else size
                conn.event("response", status=200, request=name, bytes=sent, keep_alive=keep_alive)
            if opts.resets.is_set():
                return conn.reset("reset mode")
            if not keep_alive:
                if not conn.persistent:
                    return "HTTP/1.0: one response per connection"
                if last:
                    return f"max requests ({opts.max_requests}) reached"
                if conn.stopping:
                    return "server shutting down"
                return "client asked to close"
        if parser.refusal is not None:  # after the requests before it, answered in order
            return (yield from _refuse(conn, parser.refusal, version))
        if requests or not parser.pending:  # a new head, or time spent writing: fresh clock
            clock.reset()
        if conn.stopping and parser.pending == 0:
            return "server shutting down"


def _refuse(
    conn: Connection,
    exc: http.HTTPError,
    version: str,
    keep_alive: bool = False,
    head_only: bool = False,
) -> Waits[str]:
    """Answer a refusal; without `keep_alive` the caller closes with the reason returned."""
    conn.event("error", reason=f"{exc.status}: {exc}")
    yield from conn.send(http.error_response(exc.status, str(exc), version, keep_alive, head_only))
    conn.event("response", status=exc.status, request=None, bytes=0, keep_alive=keep_alive)
    return f"bad request ({exc.status})"


def serve_h2(conn: Connection, opts: ProtocolOptions) -> Waits[str | None]:
    """HTTP/2 (h2 over TLS, h2c in clear): `server.http2`, imported by `handler()` for these
    protocols only, so the others never need the `h2` library."""
    from server import http2

    return (yield from http2.serve_h2(conn, opts))


Handler = Callable[[Connection, ProtocolOptions], "Waits[str | None]"]
HANDLERS: dict[str, Handler] = {
    protocols.ECHO.name: serve_echo,
    protocols.HTTP.name: serve_http,
    # HTTP/2 over TLS (ALPN h2) and in clear (prior knowledge): the same frames
    protocols.H2.name: serve_h2,
    protocols.H2C.name: serve_h2,
}


def handler(protocol: str) -> Handler:
    """The function serving `protocol`; UnknownProtocol if it is not registered."""
    if protocols.get(protocol).multiplexed:  # also the one-line error for an unknown name
        # Import `h2` now, at startup: it takes 40-50 ms, which the first connection's
        # TLS handshake would otherwise wait for (the model would count it as a round trip).
        from server import http2  # noqa: F401
    return HANDLERS[protocol]
