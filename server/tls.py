"""The server's TLS: a context per scenario's `tls:` version, built from PEM text (stdlib `ssl`).

The runner gives the server its certificate and key as PEM text in its environment (`CERT_ENV`,
`KEY_ENV`: see lab/tlsca.py for why not files). `ssl` loads a certificate chain from a path
only, and the container's root filesystem is read-only, so the PEM goes through an anonymous
memory file (`os.memfd_create`) named by /proc/self/fd: no file anywhere, the key lives in this
process's memory.

`tls: "1.2"` or `"1.3"` pins both the minimum and the maximum version, so a mode measures
exactly one. Session tickets are on (TLS 1.2: RFC 5077 tickets, the ticket key being the
context's, made at startup; TLS 1.3: `num_tickets` tickets after each full handshake, 2 by
default as in OpenSSL): a client that offers one resumes. Resumption by session id needs the
server's session cache, which OpenSSL keeps per context, so it works too.

What the server's accept path has to change for a TLS socket (the hooks, see the README):

- wrap after accept: `context.wrap_socket(sock, server_side=True, do_handshake_on_connect=
  False)`, then the handshake: blocking (`do_handshake()` under a Python-level timeout) or, on
  the event loop, `handshake(sslsock, deadline)`, which yields what it waits for;
- an SSLSocket takes no flags on send() (`MSG_DONTWAIT` raises ValueError);
- an SSLSocket ignores SO_RCVTIMEO: when OpenSSL's read meets EAGAIN on a socket Python thinks
  blocking, CPython's SSLSocket.read() retries it, so the kernel's timeout never reaches the
  caller: use `settimeout()` (or the non-blocking loop) on TLS connections;
- `SSLSocket.shutdown(SHUT_WR)` drops the TLS layer before the TCP shutdown, so send the
  close_notify first (`send_close_notify`): the server closes first in the article's modes;
- on a non-blocking socket (the event loop), OpenSSL's "want read" and "want write" stand for
  the socket's would-block, and bytes OpenSSL has already decrypted (`pending()`) are where
  epoll cannot see them.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import select
import socket
import ssl
import time
from collections.abc import Generator, Iterator, Mapping, Sequence

from server.connection import Connection, MessageClock, PeerError, Waits
from server.loop import LoopConnection
from wire.tls import VERSIONS as VERSIONS  # re-exported: the server's command line uses them
from wire.tls import TlsSetupError as TlsSetupError
from wire.tls import pinned_context, with_options

CERT_ENV, KEY_ENV = "LAB_TLS_CERT", "LAB_TLS_KEY"  # lab.tlsca writes them
TICKETS = 2  # TLS 1.3 tickets after a full handshake (OpenSSL's default)


@contextlib.contextmanager
def _memory_file(data: bytes) -> Iterator[str]:
    """A path that reads `data` and exists only in memory while the block runs."""
    fd = os.memfd_create("lab-tls", os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def server_context(
    version: str,
    cert_pem: str | bytes,
    key_pem: str | bytes,
    keylog: str | None = None,
    alpn: Sequence[str] = (),
    tickets: int = TICKETS,
) -> ssl.SSLContext:
    """A server context that speaks exactly TLS `version` with this certificate and key.

    `keylog`: a path the TLS secrets are appended to (SSLKEYLOGFILE format), for Wireshark.
    `alpn`: the protocols the server picks from, in its order of preference ("h2", "http/1.1").
    """
    ctx = pinned_context(ssl.PROTOCOL_TLS_SERVER, version)
    ctx.options &= ~ssl.OP_NO_TICKET  # on by default; said here because resumption needs it
    # At shutdown an idle connection's read is woken by shutdown(SHUT_RD), which OpenSSL 3
    # reads as a truncation and answers with a fatal decode_error alert to the client; the
    # server then closes with its close_notify as at any other close.
    ctx.options |= getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    ctx.num_tickets = tickets
    cert = cert_pem.encode() if isinstance(cert_pem, str) else cert_pem
    key = key_pem.encode() if isinstance(key_pem, str) else key_pem
    if b"CERTIFICATE" not in cert or b"PRIVATE KEY" not in key:
        raise TlsSetupError("the server's TLS certificate or key is not PEM text")
    try:
        with _memory_file(cert) as cert_path, _memory_file(key) as key_path:
            ctx.load_cert_chain(cert_path, key_path)
    except ssl.SSLError as exc:
        raise TlsSetupError(f"cannot load the server's TLS certificate and key: {exc}") from None
    return with_options(ctx, alpn, keylog)


def context_from_environment(
    version: str,
    environ: Mapping[str, str] = os.environ,
    keylog: str | None = None,
    alpn: Sequence[str] = (),
) -> ssl.SSLContext:
    """`server_context` with the PEM text the runner put in the environment."""
    missing = [name for name in (CERT_ENV, KEY_ENV) if not environ.get(name)]
    if missing:
        raise TlsSetupError(f"TLS needs the certificate and key: {' and '.join(missing)} unset")
    return server_context(version, environ[CERT_ENV], environ[KEY_ENV], keylog, alpn)


def handshake(sslsock: ssl.SSLSocket, deadline: float) -> Generator[tuple[int, float], bool, None]:
    """The server's handshake on a non-blocking SSLSocket, for the event loop: yields
    (epoll events, deadline) whenever OpenSSL waits for the peer, is sent True (ready) or False
    (the deadline passed: TimeoutError). A blocking socket finishes without yielding."""
    while True:
        try:
            sslsock.do_handshake()
            return
        except ssl.SSLWantReadError:
            events = select.EPOLLIN
        except ssl.SSLWantWriteError:
            events = select.EPOLLOUT
        if not (yield events, deadline):
            raise TimeoutError("TLS handshake not complete in time")


def send_close_notify(sslsock: ssl.SSLSocket) -> bool:
    """Send our close_notify alert without waiting for the peer's (unlike unwrap(), which
    waits), so a plain shutdown(SHUT_WR) can follow. True if it went out."""
    was = sslsock.gettimeout()
    sslsock.settimeout(0.0)
    try:
        sslsock.unwrap()  # returns only when the peer's close_notify is already here
        return True
    except ssl.SSLWantReadError:
        return True  # ours is sent; theirs has not come (and we do not wait for it)
    except (ssl.SSLError, OSError):
        return False
    finally:
        with contextlib.suppress(OSError):
            sslsock.settimeout(was)


def describe(sslsock: ssl.SSLSocket) -> dict[str, object]:
    """What the server's log says of a connection's TLS once the handshake is done."""
    cipher = sslsock.cipher()
    return {
        "tls_version": sslsock.version(),
        "cipher": cipher[0] if cipher else None,
        "resumed": sslsock.session_reused,
        "alpn": sslsock.selected_alpn_protocol(),
    }


# The accepted connection over TLS ---------------------------------------------------------


class _LayeredSocket(ssl.SSLSocket):
    """An SSLSocket whose shutdown() keeps the TLS layer (the stdlib's drops it first, so a
    read after shutdown(SHUT_WR) would return ciphertext): SHUT_WR sends our close_notify
    first, then TCP's FIN; SHUT_RD (waking a blocked read at shutdown) touches TCP only."""

    def shutdown(self, how: int) -> None:
        if how == socket.SHUT_WR:
            send_close_notify(self)
        socket.socket.shutdown(self, how)

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        # Once our close_notify is out, the peer's comes as SSLZeroReturnError, not b"": it is
        # the peer's end of the stream all the same. On a non-blocking socket, a record not yet
        # whole is the socket's would-block, so code written for plain sockets waits for more.
        try:
            return super().recv(buflen, flags)
        except ssl.SSLZeroReturnError:
            return b""
        except ssl.SSLWantReadError:
            raise BlockingIOError(errno.EAGAIN, "TLS record not complete") from None

    def send(self, data, flags: int = 0) -> int:
        try:
            return super().send(data, flags)
        except ssl.SSLWantWriteError:  # the socket's buffer is full: retry with the same bytes
            raise BlockingIOError(errno.EAGAIN, "TLS record not sent") from None


class _Wrapped:
    """What both models' TLS connections do alike: wrap the accepted socket (the handshake
    comes later, in the connection's own thread or loop), and look for a buffered request
    through TLS: MSG_PEEK would read ciphertext."""

    def __init__(self, sock: socket.socket, *args, context: ssl.SSLContext, **kwargs) -> None:
        tls = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        super().__init__(tls, *args, **kwargs)  # type: ignore[call-arg]
        self.handshake_done = False

    def _handshake_done(self) -> None:
        self.handshake_done = True
        if self.log.per_connection:  # type: ignore[attr-defined]
            self.event("tls", **describe(self.sock))  # type: ignore[attr-defined]

    def _buffered(self) -> bool:
        if self.sock.pending():  # type: ignore[attr-defined]  # decrypted, not yet read
            return True
        readable, _, _ = select.select([self.sock], [], [], 0)  # type: ignore[attr-defined]
        return bool(readable) and not self._shut_rd  # type: ignore[attr-defined]


class TlsConnection(_Wrapped, Connection):
    """`server.connection.Connection` over TLS, for the threads model: the handshake at the
    first read (in the connection's own thread, not the accept loop), and what differs on an
    SSLSocket (see the module doc): timeouts by settimeout(), no send() flags, the close_notify
    before the FIN, pending() for what is already decrypted."""

    def recv(self, mid_message: bool, clock: MessageClock | None = None) -> Waits[bytes]:
        if not self.handshake_done:
            self._handshake()
        return (yield from super().recv(mid_message, clock))

    def _handshake(self) -> None:
        self._set_rcvtimeo(self.read_timeout)
        with _handshake_errors(self):
            self.sock.do_handshake()  # type: ignore[attr-defined]
        self._handshake_done()

    def _set_rcvtimeo(self, seconds: float) -> None:
        if seconds != self._rcvtimeo:
            self.sock.settimeout(seconds)  # SO_RCVTIMEO does not reach an SSLSocket's reads
            self._rcvtimeo = seconds

    def send(self, data: bytes) -> Waits[None]:
        yield from ()  # blocks, never yields
        self._set_rcvtimeo(self.read_timeout)  # bounds the write too
        try:
            self.sock.sendall(data)
        except TimeoutError:
            raise self._write_timed_out() from None
        self.bytes_out += len(data)


class LoopTlsConnection(_Wrapped, LoopConnection):
    """`server.loop.LoopConnection` over TLS, for the epoll model: the handshake at the first
    read or write, its waits yielded to the loop like any other; the rest is the plain
    connection's code, since `_LayeredSocket` turns OpenSSL's want-read and want-write into the
    socket's would-block."""

    def recv(self, mid_message: bool, clock: MessageClock | None = None) -> Waits[bytes]:
        if not self.handshake_done:
            yield from self._handshake()
        if self.sock.pending():  # type: ignore[attr-defined]
            self.fresh = True  # decrypted bytes wait in OpenSSL: read them before any wait
        return (yield from super().recv(mid_message, clock))

    def send(self, data: bytes) -> Waits[None]:
        if not self.handshake_done:  # HTTP/2's server speaks first
            yield from self._handshake()
        yield from super().send(data)

    def _handshake(self) -> Waits[None]:
        with _handshake_errors(self):
            yield from handshake(self.sock, time.monotonic() + self.read_timeout)  # type: ignore[arg-type]
        self._handshake_done()


@contextlib.contextmanager
def _handshake_errors(conn: Connection) -> Iterator[None]:
    """A handshake that fails or stalls costs its connection, with a one-line reason."""
    try:
        yield
    except TimeoutError:
        raise PeerError(f"TLS handshake not complete in {conn.read_timeout:g} s") from None
    except ssl.SSLError as exc:
        raise PeerError(f"TLS handshake failed: {exc.reason or exc}") from None


def connection_factory(context: ssl.SSLContext, concurrency: str = "threads"):
    """What `ServerConfig.connection` takes: accepted sockets become TlsConnections (threads)
    or LoopTlsConnections (epoll)."""
    context.sslsocket_class = _LayeredSocket
    kind = LoopTlsConnection if concurrency == "epoll" else TlsConnection
    return functools.partial(kind, context=context)
