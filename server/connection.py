"""One accepted socket: timed reads and writes, the FIN dance, and its log lines.

Every read and write has a timeout, so no peer can hold a handler thread forever: waiting for the
start of a message is bounded by the idle timeout, each read of the rest of a message by the read
timeout, the whole rest of a message by its deadline (`MessageClock`: a peer trickling a byte
now and then beats any per-read timeout), and every write (a peer that never reads) by the read
timeout too.

Reads use the kernel's SO_RCVTIMEO on a blocking socket, and writes first try one send()
without waiting: a Python socket timeout costs an ioctl and a poll() before every recv() or
send(), each one more GIL hand-off, which with many threads cost more than the echo itself.

`recv`, `send`, `wait_peer_fin` and `finish` are generators, used with `yield from`, so that one
handler serves every concurrency model: here they block and never yield; the event loop's
`server.loop.LoopConnection` yields `(epoll events, deadline)` wherever it would block, and the
loop resumes it with True (ready) or False (the deadline passed).
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from collections.abc import Generator
from typing import Any, NoReturn, TypeVar

from server.log import Log

RECV_SIZE = 65536
_TIMEVAL = struct.Struct("@ll")  # struct timeval for SO_RCVTIMEO
_LINGER = struct.Struct("@ii")  # struct linger {l_onoff, l_linger}

T = TypeVar("T")
# What a connection's I/O methods return: a generator that yields (epoll events, deadline)
# while it waits, is sent True (ready) or False (deadline passed), and returns a T.
Waits = Generator[tuple[int, float], bool, T]


class IdleTimeout(Exception):
    """No new message within the idle timeout: the server closes first, not an error."""


class ShuttingDown(Exception):
    """The server is stopping and this connection is between messages."""


class PeerError(Exception):
    """The peer broke the connection (stall, reset, never reads): closed as an error."""


class DeadlinePassed(PeerError):
    """A whole message (or request head) did not arrive in time: the slow peer is dropped."""

    def __init__(self, clock: MessageClock) -> None:
        super().__init__(
            f"{clock.what} not complete within {clock.seconds:g} s ({clock.flag}): "
            "slow peer dropped"
        )
        self.clock = clock


class MessageClock:
    """The deadline for the rest of one message, e.g. an HTTP request head.

    It starts when the server first waits for more of a message it has begun to receive, so
    time the server spends writing replies never counts against the peer: the handler calls
    `reset()` at each message boundary and after each reply.
    """

    def __init__(self, what: str, flag: str, seconds: float) -> None:
        self.what = what  # "request head", "echo message": for the log line
        self.flag = flag  # the server option that sets it, e.g. "--head-timeout"
        self.seconds = seconds
        self._at: float | None = None

    def reset(self) -> None:
        self._at = None

    def left(self) -> float:
        """Seconds until the deadline; starts the clock on the first call after a reset."""
        now = time.monotonic()
        if self._at is None:
            self._at = now + self.seconds
        return self._at - now


class Connection:
    """An accepted socket served by one thread, blocking (the `threads` model)."""

    BLOCKING = True  # the event loop's LoopConnection is non-blocking

    def __init__(
        self,
        sock: socket.socket,
        conn_id: int,
        mode: str,
        log: Log,
        idle_timeout: float,
        read_timeout: float,
        peer: tuple[str, int] | None = None,
    ) -> None:
        self.sock = sock
        self.id = conn_id
        self.mode = mode
        self.persistent = mode == "persistent"
        self.log = log
        self.idle_timeout = idle_timeout
        self.read_timeout = read_timeout
        self.bytes_in = 0
        self.bytes_out = 0
        self.stopping = False
        self._idle = False
        self._shut_rd = False  # set by our own shutdown(SHUT_RD): later EOFs are not the peer's
        self._lock = threading.Lock()
        self._rcvtimeo: float | None = None
        self.peer_fin_seen = False  # a read returned the peer's FIN
        self.was_reset = False  # closed by reset(): later finish/close calls do nothing
        if sock.gettimeout() != (None if self.BLOCKING else 0.0):  # accept() gives blocking ones
            sock.setblocking(self.BLOCKING)  # an ioctl: skipped when it would change nothing
        self._peer = peer or sock.getpeername()
        # The local address is looked up at the first log line: a quiet log never needs it,
        # and a getsockname() per connection showed in the profile.
        self._fields: dict[str, Any] | None = None
        # TCP_NODELAY is the listener's (`Server.start`): Linux copies it to every accepted
        # socket, so no setsockopt per connection.

    def fields(self) -> dict[str, Any]:
        """The connection's fields in every log line (conn, peer, local, mode)."""
        if self._fields is None:
            try:
                local = self.sock.getsockname()
            except OSError:  # already closed: the address is gone
                local = ("", 0)
            self._fields = {
                "conn": self.id,
                "peer": self._peer[0],
                "peer_port": self._peer[1],
                "local": local[0],
                "local_port": local[1],
                "mode": self.mode,
            }
        return self._fields

    def event(self, event: str, **extra: Any) -> None:
        if not self.log.per_connection and event not in ("error", "dropped"):
            return
        self.log.event(
            event, **self.fields(), bytes_in=self.bytes_in, bytes_out=self.bytes_out, **extra
        )

    # Reads -------------------------------------------------------------------------------

    def recv(self, mid_message: bool, clock: MessageClock | None = None) -> Waits[bytes]:
        """One read; b"" means the peer's FIN. Mid-message, `clock` bounds the whole rest of
        the message. Raises IdleTimeout, ShuttingDown, DeadlinePassed, PeerError."""
        yield from ()  # blocks, never yields (see the module doc)
        timeout, bound_by = self._read_bounds(mid_message, clock)
        self._set_rcvtimeo(timeout)
        try:
            data = self.sock.recv(RECV_SIZE)
        except (TimeoutError, BlockingIOError):  # SO_RCVTIMEO expired: EAGAIN
            self._read_timed_out(mid_message, bound_by)
        finally:
            with self._lock:
                self._idle = False
        return self._got(data, mid_message)

    def _read_bounds(
        self, mid_message: bool, clock: MessageClock | None
    ) -> tuple[float, MessageClock | None]:
        """Before a read: the timeout that applies, and the clock when its deadline comes first.
        Marks the connection idle (interruptible by shutdown) between messages."""
        with self._lock:
            if self.stopping and not mid_message and not self._buffered():
                raise ShuttingDown  # a request already in our buffer is still answered
            self._idle = not mid_message
        timeout = self.read_timeout if mid_message else self.idle_timeout
        if mid_message and clock is not None:
            left = clock.left()
            if left <= 0:
                raise DeadlinePassed(clock)
            if left < timeout:
                return left, clock
        return timeout, None

    def _read_timed_out(self, mid_message: bool, bound_by: MessageClock | None) -> NoReturn:
        if bound_by is not None:
            raise DeadlinePassed(bound_by) from None
        if mid_message:
            raise PeerError(f"read timeout ({self.read_timeout:g} s) mid-message") from None
        raise IdleTimeout from None

    def _got(self, data: bytes, mid_message: bool) -> bytes:
        if not data:
            if self.stopping and not mid_message:
                raise ShuttingDown  # our own shutdown(SHUT_RD) woke the read, not the peer
            self.peer_fin_seen = not self._shut_rd
        self.bytes_in += len(data)
        return data

    def _set_rcvtimeo(self, seconds: float) -> None:
        if seconds != self._rcvtimeo:
            usec = max(1, round(seconds * 1e6))  # 0 would mean "wait forever"
            timeval = _TIMEVAL.pack(usec // 1_000_000, usec % 1_000_000)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
            self._rcvtimeo = seconds

    def _buffered(self) -> bool:
        try:
            data = self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True  # let the real read report the error
        return bool(data) or not self._shut_rd

    def wait_peer_fin(self) -> Waits[None]:
        """Block until the peer's FIN is in, so every byte it wrote is in our receive buffer.

        Makes the article's coalescing deterministic: one read then returns all its writes.
        """
        yield from ()  # blocks, never yields
        poller = select.poll()
        poller.register(self.sock, select.POLLRDHUP)
        with self._lock:
            if self.stopping:
                return  # shutting down: answer what is already here, wait for nothing more
            self._idle = True
        try:
            if not poller.poll(int(self.idle_timeout * 1000)):
                raise IdleTimeout
        finally:
            with self._lock:
                self._idle = False

    # Writes ------------------------------------------------------------------------------

    def send(self, data: bytes) -> Waits[None]:
        yield from ()  # blocks, never yields
        try:
            sent = self.sock.send(data, socket.MSG_DONTWAIT)  # usually all of it: done
        except (BlockingIOError, InterruptedError):
            sent = 0
        if sent < len(data):  # the send buffer is full: wait, bounded, for the peer to read
            self.sock.settimeout(self.read_timeout)
            try:
                self.sock.sendall(memoryview(data)[sent:])
            except TimeoutError:
                raise self._write_timed_out() from None
            finally:
                self.sock.settimeout(None)
        self.bytes_out += len(data)

    def _write_timed_out(self) -> PeerError:
        return PeerError(f"write timeout ({self.read_timeout:g} s): the peer is not reading")

    # Closing -----------------------------------------------------------------------------

    def finish(self, reason: str) -> Waits[None]:
        """Server closes first: send our FIN, wait (bounded) for the peer's, then close."""
        yield from ()  # blocks, never yields
        if self.was_reset:
            return
        try:
            self.sock.shutdown(socket.SHUT_WR)
            self.event("fin_sent", reason=reason)
            if self._shut_rd or self.peer_fin_seen:  # no FIN left to wait for
                self.close(error=False, reason=reason)
                return
            # Drain until the peer's FIN so close() never meets unread data (that would be RST).
            self._set_rcvtimeo(min(self.idle_timeout, self.read_timeout))
            while True:
                data = self.sock.recv(RECV_SIZE)
                if not data:
                    if not self._shut_rd:
                        self.event("peer_fin")
                    break
                self.bytes_in += len(data)
        except (TimeoutError, BlockingIOError):
            self.close(error=False, reason=f"{reason}; no FIN from the peer in time")
            return
        except OSError as exc:
            self.close(error=True, reason=f"{reason}; then {exc.strerror or exc}")
            return
        self.close(error=False, reason=reason)

    def peer_closed(self) -> None:
        """Peer closed first (its FIN arrived): answer with ours and close."""
        if self.was_reset:
            return
        self.event("peer_fin")
        self.close(error=False, reason="peer closed")

    def close(self, error: bool, reason: str) -> None:
        if self.was_reset:
            return
        if self.log.per_connection:
            self.fields()  # before the socket goes: the local address is still known
        self._release()
        self.event("closed", error=error, reason=reason)

    def _release(self) -> None:
        """Close the socket (the event loop first stops watching it)."""
        with contextlib.suppress(OSError):
            self.sock.close()

    def reset(self, reason: str) -> str:
        """Abort with a RST: SO_LINGER 0 makes close() send RST and drop any unsent bytes."""
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER.pack(1, 0))
        if self.log.per_connection:
            self.fields()
        self._release()
        self.was_reset = True
        self.event("closed", error=False, reason=reason, rst_sent=True)
        return reason

    def interrupt_if_idle(self) -> None:
        """Shutdown: mark stopping; wake a handler blocked waiting for a next message."""
        with self._lock:
            self.stopping = True
            if self._idle:
                self._shut_rd = True
                with contextlib.suppress(OSError):
                    self.sock.shutdown(socket.SHUT_RD)

    def abort(self) -> None:
        """Shutdown grace is over: break any blocked read or write."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
