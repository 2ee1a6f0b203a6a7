"""The `epoll` concurrency model: a fixed pool of threads, each running its own epoll loop.

Each loop accepts from every listener itself (EPOLLEXCLUSIVE when there are several loops, so
one connection wakes one loop) and runs each of its connections' stories (`Server.story`, the
same handler code as the `threads` model) as a generator: where a thread would block, the
connection yields `(epoll events, deadline)` and the loop resumes it with True when the socket
is ready or False when the deadline passed. No thread hand-off per read or write, and one
`epoll_wait` serves every ready connection: that is what the asyncio baseline had over us.

Linux only (epoll, EPOLLRDHUP for `--wait-peer-fin`), like the lab's containers.
"""

from __future__ import annotations

import contextlib
import heapq
import select
import socket
import threading
import time
from collections.abc import Generator
from typing import TYPE_CHECKING

from server.connection import RECV_SIZE, Connection, IdleTimeout, MessageClock, Waits

if TYPE_CHECKING:
    from server.core import Listener, Server

IN, OUT, RDHUP = select.EPOLLIN, select.EPOLLOUT, select.EPOLLRDHUP
ACCEPT_BATCH = 64  # accepts per wake-up: a flood of SYNs must not starve the open connections
FINAL_WAIT = 2.0  # seconds the loop keeps running after aborting the late connections
COMPACT_SLACK = 1024  # ended connections' timer entries tolerated before the heap is rebuilt


class LoopConnection(Connection):
    """A non-blocking connection whose waits are yielded to its loop."""

    BLOCKING = False

    # Set by the loop that owns the connection.
    story: Generator[tuple[int, float], bool | None, None] | None = None
    loop: EventLoop
    watching = 0  # the epoll events registered now
    deadline = 0.0  # of the current wait
    timer_at: float | None = None  # the deadline of its entry in the loop's timer heap
    # Just accepted: the client sent its request as soon as its connect() returned, before we
    # accepted, so the first read is tried before waiting (a wake-up less per connection).
    fresh = True

    def recv(self, mid_message: bool, clock: MessageClock | None = None) -> Waits[bytes]:
        timeout, bound_by = self._read_bounds(mid_message, clock)
        deadline = time.monotonic() + timeout
        try:
            while True:
                # Otherwise wait first: right after a reply the next bytes are rarely there
                # yet, and epoll is level-triggered, so buffered bytes wake at once.
                if self.fresh:
                    self.fresh = False
                elif not (yield IN, deadline):
                    self._read_timed_out(mid_message, bound_by)
                try:
                    data = self.sock.recv(RECV_SIZE)
                    break
                except (BlockingIOError, InterruptedError):
                    continue
        finally:
            self._idle = False
        return self._got(data, mid_message)

    def wait_peer_fin(self) -> Waits[None]:
        with self._lock:
            if self.stopping:
                return
            self._idle = True
        try:
            ready = yield RDHUP, time.monotonic() + self.idle_timeout
        finally:
            self._idle = False
        if not ready:
            raise IdleTimeout

    def send(self, data: bytes) -> Waits[None]:
        try:
            sent = self.sock.send(data)  # usually all of it: done
        except (BlockingIOError, InterruptedError):
            sent = 0
        if sent < len(data):  # the send buffer is full: wait, bounded, for the peer to read
            view = memoryview(data)[sent:]
            while view:
                if not (yield OUT, time.monotonic() + self.read_timeout):
                    raise self._write_timed_out()
                try:
                    view = view[self.sock.send(view) :]
                except (BlockingIOError, InterruptedError):
                    continue
        self.bytes_out += len(data)

    def finish(self, reason: str) -> Waits[None]:
        if self.was_reset:
            return
        wait = min(self.idle_timeout, self.read_timeout)
        try:
            self.sock.shutdown(socket.SHUT_WR)
            self.event("fin_sent", reason=reason)
            # Drain until the peer's FIN so close() never meets unread data (that would be RST).
            while not (self._shut_rd or self.peer_fin_seen):
                if not (yield IN, time.monotonic() + wait):
                    self.close(error=False, reason=f"{reason}; no FIN from the peer in time")
                    return
                try:
                    data = self.sock.recv(RECV_SIZE)
                except (BlockingIOError, InterruptedError):
                    continue
                if not data:
                    if not self._shut_rd:
                        self.event("peer_fin")
                    break
                self.bytes_in += len(data)
        except OSError as exc:
            self.close(error=True, reason=f"{reason}; then {exc.strerror or exc}")
            return
        self.close(error=False, reason=reason)

    def _release(self) -> None:
        self.loop.forget(self)  # before close(): the fd number may be reused at once
        super()._release()


class EventLoop:
    """One thread's loop: `run()` until the server stops, then drain its own connections."""

    def __init__(self, server: Server, exclusive: bool) -> None:
        self.server = server
        self.exclusive = exclusive  # several loops share the listeners
        self.epoll = select.epoll()
        self.conns: dict[int, LoopConnection] = {}  # by fd
        self.timers: list[tuple[float, int, LoopConnection]] = []  # heap of deadlines

    def run(self) -> None:
        server = self.server
        listeners = {sock.fileno(): (sock, spec) for sock, spec in server.listeners()}
        flags = IN | (select.EPOLLEXCLUSIVE if self.exclusive else 0)
        for fd in listeners:
            self.epoll.register(fd, flags)
        self.epoll.register(server.wake_fd(), IN)
        try:
            self._loop(listeners)
            for fd in [*listeners, server.wake_fd()]:  # the wake-up stays readable: stop it
                with contextlib.suppress(OSError):
                    self.epoll.unregister(fd)
            server.stop_accepting()
            self._drain()
        finally:
            for conn in list(self.conns.values()):  # only after a bug: never leak a socket
                conn.abort()
                conn._release()
            self.epoll.close()

    def _loop(self, listeners: dict[int, tuple[socket.socket, Listener]]) -> None:
        stop = self.server.stop_event()
        conns, poll, timers = self.conns, self.epoll.poll, self.timers
        while not stop.is_set():
            timeout = max(0.0, timers[0][0] - time.monotonic()) if timers else -1
            for fd, _events in poll(timeout):
                conn = conns.get(fd)
                if conn is not None:
                    self._step(conn, True)
                elif fd in listeners:
                    self._accept(*listeners[fd])
            if timers:
                self._expire(time.monotonic())

    def _accept(self, listener: socket.socket, spec: Listener) -> None:
        accepted: list[LoopConnection] = []
        for _ in range(ACCEPT_BATCH):
            try:
                sock, addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # e.g. EMFILE: log, keep serving the others
                if not self.server.stop_event().is_set():  # else another loop closed it
                    self.server.log.event("error", reason=f"accept failed: {exc}", port=spec.port)
                break
            conn = self.server.admit(sock, addr, spec, self.server.make_connection)
            if conn is None:
                continue
            conn.loop = self
            fd = conn.sock.fileno()  # a TLS connection's socket took over the accepted one's
            self.conns[fd] = conn
            self.epoll.register(fd, IN)
            conn.watching = IN
            conn.story = self.server.story(conn)
            accepted.append(conn)
        # The stories start once the batch is in: each first read is tried at once
        # (LoopConnection.fresh), and a client that reconnects as soon as it is answered must
        # not keep this loop accepting while the others' FINs wait.
        for conn in accepted:
            self._step(conn, None)

    def _step(self, conn: LoopConnection, ready: bool | None) -> None:
        """Resume a connection's story until it waits again (or ends)."""
        try:
            events, deadline = conn.story.send(ready)  # type: ignore[union-attr]
        except StopIteration:
            conn.story = None
            if conn.sock.fileno() != -1:  # every story closes its socket; a bug must not leak it
                conn._release()
            if len(self.timers) > 2 * len(self.conns) + COMPACT_SLACK:
                self._compact_timers()
            return
        if events != conn.watching:
            self.epoll.modify(conn.sock.fileno(), events)
            conn.watching = events
        conn.deadline = deadline
        if conn.timer_at is None or deadline < conn.timer_at:
            # One heap entry per connection at most: a later deadline re-arms it on expiry.
            heapq.heappush(self.timers, (deadline, conn.id, conn))
            conn.timer_at = deadline

    def _expire(self, now: float) -> None:
        timers = self.timers
        while timers and timers[0][0] <= now:
            at, _, conn = heapq.heappop(timers)
            if conn.timer_at != at or conn.story is None:
                continue  # superseded by an earlier entry, or the connection has ended
            conn.timer_at = None
            if conn.deadline <= now:
                self._step(conn, False)
            else:
                heapq.heappush(timers, (conn.deadline, conn.id, conn))
                conn.timer_at = conn.deadline

    def _compact_timers(self) -> None:
        """Drop the entries of ended connections: each would otherwise stay in the heap (with
        its connection) until its deadline, an idle timeout away, however many connections
        a second come and go."""
        live = [(c.timer_at, c.id, c) for c in self.conns.values() if c.timer_at is not None]
        heapq.heapify(live)
        self.timers[:] = live  # in place: the running loop holds the list

    def forget(self, conn: LoopConnection) -> None:
        """The connection's socket is about to be closed: closing it also takes it out of the
        epoll set (no other descriptor shares it), so no epoll_ctl call is needed."""
        fd = conn.sock.fileno()
        if self.conns.get(fd) is conn:
            del self.conns[fd]

    # Shutdown ----------------------------------------------------------------------------

    def _drain(self) -> None:
        """Wake the idle connections, let the others finish within the grace, then abort."""
        for conn in list(self.conns.values()):
            conn.interrupt_if_idle()
        grace = self.server.config.shutdown_grace
        if not self._run_until_empty(time.monotonic() + grace):
            for conn in list(self.conns.values()):
                conn.event("error", reason="shutdown grace over: connection aborted")
                conn.abort()
            self._run_until_empty(time.monotonic() + FINAL_WAIT)

    def _run_until_empty(self, until: float) -> bool:
        while self.conns:
            now = time.monotonic()
            if now >= until:
                return False
            next_timer = self.timers[0][0] if self.timers else until
            for fd, _events in self.epoll.poll(max(0.0, min(until, next_timer) - now)):
                conn = self.conns.get(fd)
                if conn is not None:
                    self._step(conn, True)
            self._expire(time.monotonic())
        return True


def run_loops(server: Server, count: int) -> None:
    """Run `count` loops, one in this thread (signals land here) and the rest in threads."""
    loops = [EventLoop(server, exclusive=count > 1) for _ in range(count)]
    server.event_loops = loops
    threads = [threading.Thread(target=loop.run, name=f"loop-{i}") for i, loop in enumerate(loops)]
    for thread in threads[1:]:
        thread.start()
    loops[0].run()
    for thread in threads[1:]:
        thread.join(server.config.shutdown_grace + FINAL_WAIT + 5)
