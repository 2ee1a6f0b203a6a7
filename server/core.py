"""Listeners, the accept loop, connection limits and the SIGTERM shutdown.

Two concurrency models (`ServerConfig.concurrency`) run the same story per connection
(`Server.story`: the protocol's handler, then the close):
- `threads` (the default, the article's): each connection is served start to end by one
  thread. A thread whose connection has ended waits (up to `spare_threads` of them) to serve
  the next one: starting a thread cost about 200 µs of CPU here, more than the rest of a short
  connection.
- `epoll`: `loops` threads, each an epoll loop serving many connections (`server.loop`).
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from server import handlers, loop
from server.connection import (
    Connection,
    DeadlinePassed,
    IdleTimeout,
    PeerError,
    ShuttingDown,
    Waits,
)
from server.handlers import ProtocolOptions
from server.log import Log
from wire.framing import FramingError

MODES = ("non-persistent", "persistent")
C = TypeVar("C", bound=Connection)
CONCURRENCY = ("threads", "epoll")  # the first is the default


@dataclass(frozen=True)
class Listener:
    port: int
    mode: str


@dataclass
class ServerConfig:
    listeners: list[Listener]
    host: str = "0.0.0.0"
    options: ProtocolOptions = field(default_factory=ProtocolOptions)
    idle_timeout: float = 5.0
    read_timeout: float = 10.0
    max_connections: int = 1024
    shutdown_grace: float = 5.0
    backlog: int = 512
    spare_threads: int = 64  # finished handler threads kept waiting for a next connection
    concurrency: str = CONCURRENCY[0]
    loops: int = 1  # epoll: event-loop threads (one loop per core is the most that helps)
    # What an accepted socket becomes: by default the model's Connection (threads) or
    # LoopConnection (epoll); server.tls.connection_factory for --tls.
    connection: Callable[..., Connection] | None = None


class Server:
    """`start()` binds and logs the listening lines; `serve_forever()` accepts until
    `request_stop()`, then drains in-flight connections (bounded) and joins every handler."""

    def __init__(self, config: ServerConfig, log: Log) -> None:
        self.config = config
        self.log = log
        self._serve = handlers.handler(config.options.protocol)  # looked up once
        default = loop.LoopConnection if config.concurrency == "epoll" else Connection
        self.make_connection: Callable[..., Connection] = config.connection or default
        self.ports: list[int] = []
        self._listeners: list[tuple[socket.socket, Listener]] = []
        self._ids = itertools.count(1)
        self._active: dict[int, Connection] = {}
        self._active_lock = threading.Lock()
        self._none_active = threading.Condition(self._active_lock)
        self._workers: set[threading.Thread] = set()
        self._spare = 0  # workers blocked on _handoff.get()
        self._handoff: queue.SimpleQueue[Connection | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_w.setblocking(False)
        self._stopping_logged = False
        self._admitting = 0  # slots taken by connections being set up (admit)
        self.event_loops: list[loop.EventLoop] = []  # the epoll model's loops, once running
        self.served = 0
        if config.concurrency not in CONCURRENCY:
            raise ValueError(f"unknown concurrency model {config.concurrency!r}")

    def start(self) -> None:
        for spec in self.config.listeners:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # Replies go out at once (no Nagle wait behind an unacknowledged segment). Set here,
            # once: every accepted socket inherits it (Linux), a syscall less per connection.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                sock.bind((self.config.host, spec.port))
            except OSError:
                sock.close()
                self._close_listeners()
                raise
            sock.listen(self.config.backlog)
            sock.setblocking(False)
            self._listeners.append((sock, spec))
            self.ports.append(sock.getsockname()[1])
        for (_sock, spec), port in zip(self._listeners, self.ports, strict=True):
            self.log.event(
                "listening",
                port=port,
                mode=spec.mode,
                host=self.config.host,
                protocol=self.config.options.protocol,
                framing=self.config.options.framing,
            )

    def request_stop(self) -> None:
        """Safe from a signal handler or another thread."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def serve_forever(self) -> None:
        if self.config.concurrency == "epoll":
            try:
                loop.run_loops(self, self.config.loops)
            finally:
                self.stop_accepting()
                self._stopped()
            return
        selector = selectors.DefaultSelector()
        for sock, spec in self._listeners:
            selector.register(sock, selectors.EVENT_READ, spec)
        selector.register(self._wake_r, selectors.EVENT_READ, None)
        try:
            while not self._stop.is_set():
                for key, _ in selector.select():
                    if key.data is not None:
                        self._accept_all(key.fileobj, key.data)  # type: ignore[arg-type]
        finally:
            selector.close()
            self.stop_accepting()
            self._drain()

    # What the event loops share with the server ----------------------------------------------

    def listeners(self) -> list[tuple[socket.socket, Listener]]:
        return list(self._listeners)

    def wake_fd(self) -> int:
        """Readable once `request_stop()` has been called."""
        return self._wake_r.fileno()

    def stop_event(self) -> threading.Event:
        return self._stop

    def stop_accepting(self) -> None:
        """Close the listeners (new SYNs now get a RST) and log `stopping`, once."""
        with self._active_lock:
            if self._stopping_logged:
                return
            self._stopping_logged = True
            active = len(self._active)
        self._close_listeners()
        self.log.event("stopping", reason="stop requested", connections=active, served=self.served)

    # Accepting ---------------------------------------------------------------------------

    def _accept_all(self, listener: socket.socket, spec: Listener) -> None:
        while True:
            try:
                sock, addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. EMFILE: log, keep serving the others
                self.log.event("error", reason=f"accept failed: {exc}", port=spec.port)
                return
            conn = self.admit(sock, addr, spec, self.make_connection)
            if conn is not None:
                self._spawn(conn)

    def admit(
        self,
        sock: socket.socket,
        addr: tuple[str, int],
        spec: Listener,
        make: Callable[..., C],
    ) -> C | None:
        """An accepted socket becomes an active connection (logged `accepted`), or is closed at
        once when `max_connections` are active (logged `refused`)."""
        with self._active_lock:  # check and take a slot at once: several loops may admit
            full = len(self._active) + self._admitting >= self.config.max_connections
            if not full:
                self._admitting += 1
        if full:
            local = sock.getsockname()
            self.log.event(
                "refused",
                peer=addr[0],
                peer_port=addr[1],
                local=local[0],
                local_port=local[1],
                mode=spec.mode,
                reason=f"max connections ({self.config.max_connections}) reached",
            )
            sock.close()
            return None
        try:
            conn = make(
                sock,
                next(self._ids),
                spec.mode,
                self.log,
                self.config.idle_timeout,
                self.config.read_timeout,
                peer=addr,
            )
        except OSError:  # the peer already reset before we could look at it
            with self._active_lock:
                self._admitting -= 1
            sock.close()
            return None
        with self._active_lock:
            self._admitting -= 1
            self._active[conn.id] = conn
            self.served += 1
        conn.event("accepted")
        return conn

    def _spawn(self, conn: Connection) -> None:
        with self._active_lock:
            reuse = self._spare > 0
            if reuse:
                self._spare -= 1
            else:
                thread = threading.Thread(target=self._work, args=(conn,), name="handler")
                self._workers.add(thread)
        if reuse:
            self._handoff.put(conn)
        else:
            thread.start()

    def _work(self, conn: Connection | None) -> None:
        while conn is not None:
            self._handle(conn)
            with self._active_lock:
                if self._stop.is_set() or self._spare >= self.config.spare_threads:
                    self._workers.discard(threading.current_thread())
                    return
                self._spare += 1
            conn = self._handoff.get()

    # One connection ----------------------------------------------------------------------

    def _handle(self, conn: Connection) -> None:
        for waited in self.story(conn):  # a blocking Connection never yields
            raise AssertionError(f"a blocking connection yielded {waited!r}")

    def story(self, conn: Connection) -> Waits[None]:
        """A connection from its first read to its close, whatever happens; the same generator
        in every concurrency model (see `server.connection`)."""
        try:
            try:
                reason = yield from self._serve(conn, self.config.options)
            except IdleTimeout:
                reason = f"idle timeout ({conn.idle_timeout:g} s)"
            except ShuttingDown:
                reason = "server shutting down"
            if reason is None:
                conn.peer_closed()
            else:
                yield from conn.finish(reason)
        except DeadlinePassed as exc:  # a slow peer, not a broken one: its own event
            conn.event("dropped", reason=str(exc), limit=exc.clock.flag, seconds=exc.clock.seconds)
            conn.close(error=True, reason=str(exc))
        except (PeerError, FramingError, OSError) as exc:
            text = str(exc) if not isinstance(exc, OSError) else _os_reason(exc)
            conn.event("error", reason=text)
            conn.close(error=True, reason=text)
        except Exception as exc:  # a bug must cost one connection, never the server
            conn.event("error", reason=f"internal error: {type(exc).__name__}: {exc}")
            conn.close(error=True, reason="internal error")
        finally:
            with self._active_lock:
                self._active.pop(conn.id, None)
                if not self._active:
                    self._none_active.notify_all()

    # Shutdown ----------------------------------------------------------------------------

    def _close_listeners(self) -> None:
        for sock, _ in self._listeners:
            with contextlib.suppress(OSError):
                sock.close()
        self._listeners = []

    def _drain(self) -> None:
        with self._active_lock:
            active = list(self._active.values())
        for conn in active:
            conn.interrupt_if_idle()
        with self._active_lock:
            self._none_active.wait_for(lambda: not self._active, self.config.shutdown_grace)
            late = list(self._active.values())
        for conn in late:
            conn.event("error", reason="shutdown grace over: connection aborted")
            conn.abort()
        with self._active_lock:  # _stop is set: no worker becomes spare from here on
            self._none_active.wait_for(lambda: not self._active, 2.0)
            spare, self._spare = self._spare, 0
            workers = list(self._workers)
        for _ in range(spare):
            self._handoff.put(None)
        deadline = time.monotonic() + 2.0
        for thread in workers:  # every handler has returned, so every FIN is sent
            thread.join(max(0.0, deadline - time.monotonic()))
        self._stopped()

    def _stopped(self) -> None:
        self._wake_r.close()
        self._wake_w.close()
        self.log.event("stopped", connections=self.served)


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(exc, BrokenPipeError):
        return "broken pipe (peer gone)"
    return exc.strerror or str(exc)


@contextlib.contextmanager
def running(config: ServerConfig, log: Log) -> Iterator[Server]:
    """A server accepting in a background thread (tests, benchmarks); stopped on exit."""
    server = Server(config, log)
    server.start()
    thread = threading.Thread(target=server.serve_forever, name="accept")
    thread.start()
    try:
        yield server
    finally:
        server.request_stop()
        thread.join(config.shutdown_grace + 5)
