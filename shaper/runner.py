"""The thin shell: runs tc/iptables, speaks netlink to the kernel's queue, drives the delay line.

Everything here touches the kernel; what it decides comes from the pure modules (`rules`,
`netem`, `nfqueue`, `delayline`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

from shaper import nfqueue
from shaper.delayline import DelayLine
from shaper.rules import Step

SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # absent from Python's socket module
RCVBUF_BYTES = 16 << 20
QUEUE_MAXLEN = 16_384
LATENESS_SAMPLES = 200_000


class ShaperError(Exception):
    """A setup or teardown step failed; the message is one complete line."""


def run_command(argv: list[str], timeout: float = 15.0) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(argv, 127, "", str(exc))


def _describe(argv: list[str], proc: subprocess.CompletedProcess[str]) -> str:
    detail = (proc.stderr or proc.stdout).strip().replace("\n", " | ")
    return f"`{' '.join(argv)}` failed (exit {proc.returncode}): {detail}"


def probe_ok(step: Step) -> bool:
    """Apply a probe step and take it back: True when the kernel accepted it."""
    if run_command(step.apply).returncode != 0:
        return False
    run_command(step.undo)
    return True


@dataclass
class Changes:
    """What this process changed in the namespace, undone in reverse order."""

    steps: list[Step] = field(default_factory=list)

    def apply(self, step: Step) -> None:
        proc = run_command(step.apply)
        if proc.returncode != 0:
            raise ShaperError(_describe(step.apply, proc))
        self.steps.append(step)

    def undo(self) -> list[str]:
        """Undo everything; returns the failures (empty when the namespace is clean again)."""
        errors = []
        while self.steps:
            step = self.steps.pop()
            if step.undo:
                proc = run_command(step.undo)
                if proc.returncode != 0:
                    errors.append(_describe(step.undo, proc))
        return errors


class QueueSocket:
    """A netlink socket bound to one nfnetlink_queue number, copy mode META."""

    def __init__(self, queue: int, *, gso: bool) -> None:
        self.queue = queue
        self._seq = 0
        self._buf = bytearray(256 * 1024)
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, nfqueue.NETLINK_NETFILTER)
        try:
            # Bursts of queued packets overflow the default buffer (recv fails with ENOBUFS and
            # the kernel drops them): force a large buffer and ask not to be told of overruns.
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF_BYTES)
            except PermissionError:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
            self.sock.setsockopt(nfqueue.SOL_NETLINK, nfqueue.NETLINK_NO_ENOBUFS, 1)
            self.sock.bind((0, 0))
            self._request(
                nfqueue.config_command(queue, nfqueue.NFQNL_CFG_CMD_BIND, seq=self._next())
            )
            self._request(nfqueue.config_params(queue, nfqueue.NFQNL_COPY_META, seq=self._next()))
            self._request(nfqueue.config_maxlen(queue, QUEUE_MAXLEN, seq=self._next()))
            # GSO: take a GRO/TSO super-packet as one entry instead of having the kernel cut it
            # into MTU segments first; far fewer messages at high rates. Off when dropping, so
            # a loss costs one segment, as on a wire.
            flag = nfqueue.NFQA_CFG_F_GSO if gso else 0
            self._request(
                nfqueue.config_flags(queue, flag, nfqueue.NFQA_CFG_F_GSO, seq=self._next())
            )
        except BaseException:
            self.sock.close()
            raise

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def _request(self, data: bytes) -> None:
        seq = self._seq
        self.sock.send(data)
        self.sock.settimeout(5.0)
        try:
            while True:
                n = self.sock.recv_into(self._buf)
                for msg in nfqueue.parse(memoryview(self._buf)[:n]):
                    if isinstance(msg, nfqueue.Ack) and msg.seq == seq:
                        if msg.error:
                            name = errno.errorcode.get(-msg.error, str(-msg.error))
                            raise ShaperError(
                                f"nfnetlink_queue refused a config request for queue "
                                f"{self.queue}: {name} ({os.strerror(-msg.error)})"
                            )
                        return
        except TimeoutError as exc:
            raise ShaperError(
                "no answer from nfnetlink_queue (is the kernel module there?)"
            ) from exc
        finally:
            self.sock.settimeout(None)

    def fileno(self) -> int:
        return self.sock.fileno()

    def read_packets(self) -> list[nfqueue.Packet]:
        """Every packet message waiting on the socket, without blocking."""
        out: list[nfqueue.Packet] = []
        while True:
            try:
                n = self.sock.recv_into(self._buf, 0, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return out
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # only if NO_ENOBUFS was refused; keep going
                    continue
                raise
            out.extend(
                m for m in nfqueue.parse(memoryview(self._buf)[:n]) if isinstance(m, nfqueue.Packet)
            )

    def send_verdict(self, packet_id: int, decision: int, *, batch: bool = False) -> None:
        self.sock.send(nfqueue.verdict(self.queue, packet_id, decision, batch=batch))

    def close(self) -> None:
        with contextlib.suppress(OSError, ShaperError):
            self._request(
                nfqueue.config_command(self.queue, nfqueue.NFQNL_CFG_CMD_UNBIND, seq=self._next())
            )
        self.sock.close()


@dataclass
class Stats:
    """What the delay line did, for the log line at exit and the benchmark."""

    packets: int = 0
    dropped: int = 0
    max_held: int = 0
    lateness: list[float] = field(default_factory=list)  # seconds past the scheduled release

    def summary(self) -> str:
        late = sorted(self.lateness)

        def pct(p: float) -> str:
            return f"{late[min(len(late) - 1, int(p * len(late)))] * 1000:.3f}" if late else "nan"

        return (
            f"packets={self.packets} dropped={self.dropped} max_held={self.max_held} "
            f"late_ms_p50={pct(0.5)} late_ms_p99={pct(0.99)} cpu_s={time.process_time():.2f}"
        )


def serve(line: DelayLine, qsock: QueueSocket, wakeup_fd: int, stats: Stats) -> None:
    """Hold queued packets for their scheduled time until a byte arrives on `wakeup_fd`.

    One thread, one select(): its timeout is the next release time, in microseconds (poll and
    epoll round up to whole milliseconds, which alone would add ~0.5 ms per packet). Due packets
    go with one batch verdict: the line releases in arrival order and the kernel numbers packets
    in arrival order, so "accept every id up to the last due one" is exact; lost packets got their
    DROP verdict on arrival.
    """
    now = time.monotonic
    fds = [qsock.fileno(), wakeup_fd]
    while True:
        nxt = line.next_release()
        timeout = None if nxt is None else max(0.0, nxt - now())
        readable, _, _ = select.select(fds, [], [], timeout)
        if wakeup_fd in readable:
            return
        if readable:
            for pkt in qsock.read_packets():
                stats.packets += 1
                if line.arrive(pkt.packet_id, now()) is None:
                    stats.dropped += 1
                    qsock.send_verdict(pkt.packet_id, nfqueue.NF_DROP)
            stats.max_held = max(stats.max_held, len(line))
        t = now()
        due = line.due(t)
        if due:
            qsock.send_verdict(due[-1][0], nfqueue.NF_ACCEPT, batch=True)
            if len(stats.lateness) < LATENESS_SAMPLES:
                stats.lateness.extend(t - release for _, release in due)


def release_all(line: DelayLine, qsock: QueueSocket) -> None:
    """Shutdown: the queue rules are gone, so accept whatever is still held or unread."""
    pending = [p.packet_id for p in qsock.read_packets()]
    ids = line.drain() + pending
    if ids:
        qsock.send_verdict(ids[-1], nfqueue.NF_ACCEPT, batch=True)  # last in arrival order


def say(text: str) -> None:
    print(text, flush=True)


def warn(text: str) -> None:
    print(f"shaper: {text}", file=sys.stderr, flush=True)
