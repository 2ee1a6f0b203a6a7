"""The client's TLS: a context that trusts the run's CA only, and session resumption.

Standard library `ssl` only. The runner gives the client the run's CA certificate as PEM text
in its environment (`CA_ENV`); `load_verify_locations(cadata=...)` takes it from memory. The
client checks the server's certificate and its name (`server`, the container's name) as any
client would, so a handshake costs what it costs a browser: the certificate chain is sent,
parsed and verified.

`tls: "1.2"` or `"1.3"` pins the minimum and the maximum version. With `resume` the client
keeps the session of its first connection (`Sessions.remember`, once that connection has
read its first response: a TLS 1.3 ticket comes after the handshake, in a NewSessionTicket
the client only reads with the data) and offers it on every connection it opens later
(`Sessions.wrap`). Connections opened before a session exists (the first `parallel`
connections, opened at once) make full handshakes; the model assumes the same.

Is 0-RTT (TLS 1.3 early data) possible with the standard library? No. Early data needs
OpenSSL's early-data calls, and CPython's `_ssl` (3.11 to 3.13) wraps none of them:

- the server must set a maximum amount of early data (`SSL_CTX_set_max_early_data`); it stays
  0, so the server's NewSessionTicket carries no `early_data` extension and no ticket it
  issues permits 0-RTT;
- the client must write with `SSL_write_early_data` before the handshake completes; Python's
  `SSLSocket.send`/`write` call `SSL_write`, which finishes the whole handshake first, so the
  request always waits for the server's Finished;
- the server must read with `SSL_read_early_data` and accept it (`SSL_get_early_data_status`):
  not exposed either, and no `ssl.OP_*` flag turns any of this on.

So a resumed TLS 1.3 connection still costs one round trip before the request (PSK with a
fresh (EC)DHE key exchange): what resumption saves in TLS 1.3 is the certificate chain and the
server's signature, not a round trip. In TLS 1.2 it saves a round trip (2 -> 1).
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence

from wire.tls import VERSIONS as VERSIONS  # re-exported: the client's command line uses them
from wire.tls import TlsSetupError as TlsSetupError
from wire.tls import pinned_context, with_options

CA_ENV = "LAB_TLS_CA"  # lab.tlsca writes it
KEYLOG_EVENT = "tls_keylog"  # the client log's record of one key log line (lab.tls reads it)
SERVER_NAME = "server"  # the server's container name, in its certificate
_END = b"#end of the key log\n"  # KeyLog.close's marker: no key log line starts with '#'


def client_context(
    version: str,
    ca_pem: str | bytes,
    keylog: str | None = None,
    alpn: Sequence[str] = (),
) -> ssl.SSLContext:
    """A client context for exactly TLS `version` that trusts `ca_pem` and nothing else."""
    ctx = pinned_context(ssl.PROTOCOL_TLS_CLIENT, version)  # verifies the chain and the name
    text = ca_pem.decode() if isinstance(ca_pem, bytes) else ca_pem
    try:
        ctx.load_verify_locations(cadata=text)
    except (ssl.SSLError, ValueError) as exc:
        raise TlsSetupError(f"cannot load the run's CA certificate: {exc}") from None
    return with_options(ctx, alpn, keylog)


def context_from_environment(
    version: str,
    environ: Mapping[str, str] = os.environ,
    keylog: str | None = None,
    alpn: Sequence[str] = (),
) -> ssl.SSLContext:
    """`client_context` with the CA the runner put in the environment."""
    ca = environ.get(CA_ENV)
    if not ca:
        raise TlsSetupError(f"TLS needs the run's CA certificate: {CA_ENV} unset")
    return client_context(version, ca, keylog, alpn)


class Sessions:
    """Wraps the client's sockets in TLS; with `resume`, offers the first session it kept."""

    def __init__(self, context: ssl.SSLContext, resume: bool, server_name: str = SERVER_NAME):
        self.context = context
        self.resume = resume
        self.server_name = server_name
        self._session: ssl.SSLSession | None = None
        self._lock = threading.Lock()

    @property
    def session(self) -> ssl.SSLSession | None:
        with self._lock:
            return self._session

    def wrap(self, sock: socket.socket) -> ssl.SSLSocket:
        """TLS over a connected socket, the handshake done (under the socket's timeout);
        offers the kept session when resuming. Raises ssl.SSLError or OSError."""
        offer = self.session if self.resume else None
        tls = self.context.wrap_socket(
            sock, server_hostname=self.server_name, session=offer, do_handshake_on_connect=False
        )
        tls.do_handshake()
        return tls

    def remember(self, tls: ssl.SSLSocket) -> bool:
        """Keep this connection's session if none is kept yet and it can be resumed (it has a
        ticket, or TLS 1.2's session id). Call it once the first response is read. True if
        the session was kept now."""
        if not self.resume:
            return False
        session = tls.session
        if session is None or not (session.has_ticket or session.id):
            return False
        with self._lock:
            if self._session is not None:
                return False
            self._session = session
            return True


def close_write(tls: ssl.SSLSocket) -> None:
    """Our close_notify, then TCP's FIN, keeping the TLS layer to read the peer's last bytes
    (SSLSocket.shutdown() would drop it first and send no close_notify)."""
    was = tls.gettimeout()
    tls.settimeout(0.0)
    try:
        tls.unwrap()  # sends our close_notify; returns only if the peer's is already here
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
        pass  # ours is out (or queued); theirs comes later, with their FIN
    except ssl.SSLEOFError:
        pass  # ours is out, and the peer has closed already (its FIN beat our second look)
    finally:
        tls.settimeout(was)
    socket.socket.shutdown(tls, socket.SHUT_WR)


def keylog_record(line: str) -> dict[str, str]:
    """One key log line as the client's JSON log records it (lab.tls.keylog_text reads it)."""
    return {"event": KEYLOG_EVENT, "line": line}


def describe(tls: ssl.SSLSocket) -> dict[str, object]:
    """What the client's log records of a connection's TLS, after the handshake."""
    cipher = tls.cipher()
    return {
        "tls_version": tls.version(),
        "cipher": cipher[0] if cipher else None,
        "resumed": tls.session_reused,
        "alpn": tls.selected_alpn_protocol(),
    }


class KeyLog:
    """The TLS key log as lines handed to `on_line`: OpenSSL appends to a path, and the
    client's container has no writable file system, so the path is a pipe (/proc/self/fd)
    that a thread reads; the client writes each line into its JSON log and the lab puts them
    in the run folder as an SSLKEYLOGFILE for Wireshark."""

    def __init__(self, on_line: Callable[[str], None]) -> None:
        self._read_fd, self._write_fd = os.pipe()
        os.set_inheritable(self._write_fd, False)
        self.path = f"/proc/self/fd/{self._write_fd}"
        self._on_line = on_line
        self._thread = threading.Thread(target=self._pump, name="tls-keylog", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        with os.fdopen(self._read_fd, "r", encoding="ascii", errors="replace") as lines:
            for line in lines:
                if line == _END.decode():
                    return
                if line.strip():
                    self._on_line(line.rstrip("\n"))

    def close(self, timeout: float = 5.0) -> None:
        """Take every line written so far, then stop. OpenSSL keeps its own descriptor of the
        pipe while a context lives, so the end of the lines is a marker written here (a pipe
        keeps the order of writes, and OpenSSL flushes each line as it goes), not EOF."""
        os.write(self._write_fd, _END)
        os.close(self._write_fd)
        self._thread.join(timeout)
