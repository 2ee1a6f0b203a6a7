"""One client TCP connection: timed connect, reads and writes, and when each byte came."""

from __future__ import annotations

import bisect
import contextlib
import socket
import ssl
import time
from typing import Any

from client import tls as client_tls


class ClientError(Exception):
    """A one-line reason this connection failed (refused, reset, timeout, short response)."""


class Session:
    def __init__(
        self,
        host: str,
        port: int,
        conn_id: int,
        connect_timeout: float,
        timeout: float,
        tls: client_tls.Sessions | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.id = conn_id
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.tls = tls  # TLS over the connection (the handshake in connect())
        self.tls_info: dict[str, Any] | None = None  # client_tls.describe, after the handshake
        self.t_tls_done: float | None = None
        self.local_port: int | None = None
        self.t_connect_start: float | None = None
        self.t_connected: float | None = None
        self.bytes_sent = 0
        self.bytes_received = 0
        # Cumulative received byte count after each read, and its time: a response starting at
        # offset k got its first byte at the first read whose end is beyond k.
        self._ends: list[int] = []
        self._times: list[float] = []

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def connect(self) -> None:
        self.t_connect_start = time.time()
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except ConnectionRefusedError:
            raise ClientError(f"connection refused by {self.where}") from None
        except TimeoutError:
            raise ClientError(
                f"connect timeout ({self.connect_timeout:g} s) to {self.where}"
            ) from None
        except OSError as exc:
            raise ClientError(f"cannot connect to {self.where}: {exc.strerror or exc}") from None
        self.t_connected = time.time()
        self.sock = sock
        self.local_port = sock.getsockname()[1]
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.timeout)
        if self.tls is not None:
            self.sock = self._handshake(sock)

    def _handshake(self, sock: socket.socket) -> ssl.SSLSocket:
        assert self.tls is not None
        try:
            wrapped = self.tls.wrap(sock)
        except TimeoutError:
            sock.close()
            raise ClientError(
                f"TLS handshake timeout ({self.timeout:g} s) with {self.where}"
            ) from None
        except ssl.SSLError as exc:
            sock.close()
            reason = exc.reason or exc
            raise ClientError(f"TLS handshake with {self.where} failed: {reason}") from None
        except OSError as exc:
            sock.close()
            raise ClientError(_os_reason(exc, self.where, "in the TLS handshake")) from None
        self.t_tls_done = time.time()
        self.tls_info = client_tls.describe(wrapped)
        return wrapped

    def keep_session(self) -> None:
        """A response was read whole: the TLS session (and a 1.3 ticket) is here to resume."""
        if self.tls is not None and isinstance(self.sock, ssl.SSLSocket):
            self.tls.remember(self.sock)

    def send(self, data: bytes) -> float:
        assert self.sock is not None
        try:
            self.sock.sendall(data)
        except TimeoutError:
            raise ClientError(
                f"write timeout ({self.timeout:g} s): {self.where} is not reading"
            ) from None
        except OSError as exc:
            raise ClientError(_os_reason(exc, self.where, "while sending")) from None
        self.bytes_sent += len(data)
        return time.time()

    def recv(self) -> bytes:
        """One read; b"" is the server's FIN."""
        assert self.sock is not None
        try:
            data = self.sock.recv(262144)
        except ssl.SSLZeroReturnError:  # the peer's close_notify after ours: its end too
            data = b""
        except TimeoutError:
            raise ClientError(
                f"read timeout ({self.timeout:g} s): no response from {self.where}"
            ) from None
        except OSError as exc:
            raise ClientError(_os_reason(exc, self.where, "while reading")) from None
        if data:
            self.bytes_received += len(data)
            self._ends.append(self.bytes_received)
            self._times.append(time.time())
        return data

    def time_of_byte(self, offset: int) -> float | None:
        """When the byte at `offset` (0-based, in the received stream) arrived."""
        i = bisect.bisect_right(self._ends, offset)
        return self._times[i] if i < len(self._times) else None

    def shutdown_write(self) -> None:
        assert self.sock is not None
        try:
            if isinstance(self.sock, ssl.SSLSocket):
                client_tls.close_write(self.sock)
            else:
                self.sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            raise ClientError(_os_reason(exc, self.where, "while closing")) from None

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()


def _os_reason(exc: OSError, where: str, when: str) -> str:
    if isinstance(exc, ConnectionResetError):
        return f"connection reset by {where} {when}"
    if isinstance(exc, BrokenPipeError):
        return f"connection closed by {where} {when} (broken pipe)"
    return f"{exc.strerror or exc} ({where}, {when})"
