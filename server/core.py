"""Listeners, the accept loop, connection limits and the SIGTERM shutdown."""

from __future__ import annotations

import contextlib
import itertools
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from server import handlers
from server.connection import Connection, IdleTimeout, PeerError, ShuttingDown
from server.handlers import ProtocolOptions
from server.log import Log
from wire.framing import FramingError

MODES = ("non-persistent", "persistent")


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


class Server:
    """`start()` binds and logs the listening lines; `serve_forever()` accepts until
    `request_stop()`, then drains in-flight connections (bounded) and joins every handler."""

    def __init__(self, config: ServerConfig, log: Log) -> None:
        self.config = config
        self.log = log
        self.ports: list[int] = []
        self._listeners: list[tuple[socket.socket, Listener]] = []
        self._ids = itertools.count(1)
        self._active: dict[int, tuple[Connection, threading.Thread]] = {}
        self._active_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_w.setblocking(False)
        self.served = 0

    def start(self) -> None:
        for spec in self.config.listeners:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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
            self._close_listeners()  # stop accepting: new SYNs now get a RST
            self._drain()

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
            sock.setblocking(True)
            with self._active_lock:
                full = len(self._active) >= self.config.max_connections
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
                continue
            self._spawn(sock, spec)

    def _spawn(self, sock: socket.socket, spec: Listener) -> None:
        try:
            conn = Connection(
                sock,
                next(self._ids),
                spec.mode,
                self.log,
                self.config.idle_timeout,
                self.config.read_timeout,
            )
        except OSError:  # the peer already reset before we could look at it
            sock.close()
            return
        thread = threading.Thread(target=self._handle, args=(conn,), name=f"conn-{conn.id}")
        with self._active_lock:
            self._active[conn.id] = (conn, thread)
            self.served += 1
        conn.event("accepted")
        thread.start()

    # One connection ----------------------------------------------------------------------

    def _handle(self, conn: Connection) -> None:
        http = self.config.options.protocol == "http"
        serve = handlers.serve_http if http else handlers.serve_echo
        try:
            try:
                reason = serve(conn, self.config.options)
            except IdleTimeout:
                reason = f"idle timeout ({conn.idle_timeout:g} s)"
            except ShuttingDown:
                reason = "server shutting down"
            if reason is None:
                conn.peer_closed()
            else:
                conn.finish(reason)
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

    # Shutdown ----------------------------------------------------------------------------

    def _close_listeners(self) -> None:
        for sock, _ in self._listeners:
            with contextlib.suppress(OSError):
                sock.close()
        self._listeners = []

    def _drain(self) -> None:
        with self._active_lock:
            active = list(self._active.values())
        self.log.event(
            "stopping", reason="stop requested", connections=len(active), served=self.served
        )
        for conn, _ in active:
            conn.interrupt_if_idle()
        deadline = time.monotonic() + self.config.shutdown_grace
        for _, thread in active:
            thread.join(max(0.0, deadline - time.monotonic()))
        late = [(c, t) for c, t in active if t.is_alive()]
        for conn, _ in late:
            conn.event("error", reason="shutdown grace over: connection aborted")
            conn.abort()
        for _, thread in late:
            thread.join(2.0)
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
