"""Record the TLS test captures of this folder (see README.md): root, tcpdump, loopback.

    PYTHONPATH=. python tests/data/tls/record.py [OUT_DIR [NAME...]]

A stdlib `ssl` server and client (the lab's own context builders, server/tls.py and
client/tls.py, with a certificate from lab/tlsca.py) exchange one HTTP/1.1 request and response
per connection (or, for `-h2`, a page of resources over HTTP/2: server/http2.py and
client/http2.py) on 127.0.0.1:8443 while tcpdump records the loopback; each capture gets the key log
both ends wrote (SSLKEYLOGFILE format) next to it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from client import http2 as h2_client
from client.tls import Sessions, client_context
from lab.tlsca import make_authority
from server import http2
from server.tls import send_close_notify, server_context

PORT = 8443
BODY = b"x" * 1000
REQUEST = b"GET /page.html HTTP/1.1\r\nHost: server\r\nConnection: close\r\n\r\n"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n"
    b"Connection: close\r\n\r\n" % len(BODY)
) + BODY

H2_RESOURCES = {f"/r{i}.bin": bytes([65 + i]) * (300 * i) for i in range(1, 11)}

# name -> (version, connections, server's tickets on, client resumes, ALPN protocol)
CAPTURES = {
    "tls12": ("1.2", 1, True, False, "http/1.1"),
    "tls13": ("1.3", 1, True, False, "http/1.1"),
    "tls12-resume": ("1.2", 2, True, True, "http/1.1"),  # a session ticket (RFC 5077)
    "tls12-session-id": ("1.2", 2, False, True, "http/1.1"),  # the session cache, no tickets
    "tls13-resume": ("1.3", 2, True, True, "http/1.1"),  # a 1.3 ticket: PSK, still one round trip
    "tls12-h2": ("1.2", 1, True, False, "h2"),  # ten resources on one connection
}


def serve_h2(ctx: ssl.SSLContext, listener: socket.socket, n: int) -> None:
    for _ in range(n):
        sock, _ = listener.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with ctx.wrap_socket(sock, server_side=True) as tls:
            http2.serve(tls, H2_RESOURCES.get)


def fetch_h2(sessions: Sessions) -> None:
    sock = socket.create_connection(("127.0.0.1", PORT), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with sessions.wrap(sock) as tls:
        responses = h2_client.fetch(tls, "localhost", list(H2_RESOURCES))
    assert [r.body_bytes for r in responses] == [len(b) for b in H2_RESOURCES.values()]


def serve(ctx: ssl.SSLContext, listener: socket.socket, n: int) -> None:
    for _ in range(n):
        sock, _ = listener.accept()
        with ctx.wrap_socket(sock, server_side=True) as tls:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                data += chunk
            tls.sendall(RESPONSE)
            send_close_notify(tls)  # the server closes first, as the lab's http server does
            tls.shutdown(socket.SHUT_WR)
            tls.settimeout(5)
            while tls.recv(4096):  # the client's FIN (after its own bytes, if any)
                pass


def fetch(sessions: Sessions) -> None:
    sock = socket.create_connection(("127.0.0.1", PORT), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    tls = sessions.wrap(sock)
    tls.sendall(REQUEST)
    got = b""
    while len(got) < len(RESPONSE):
        chunk = tls.recv(65536)
        if not chunk:
            break
        got += chunk
    assert got == RESPONSE, got[:80]
    sessions.remember(tls)  # after the response: a TLS 1.3 ticket came with it
    try:
        while tls.recv(4096):  # the server's close_notify, then its FIN
            pass
    except (ssl.SSLError, OSError):
        pass
    tls.close()


def record(
    name: str, out: Path, version: str, n: int, tickets: bool, resume: bool, alpn: str
) -> None:
    authority = make_authority()
    keys = out / f"{name}.keys"
    keys.unlink(missing_ok=True)
    server = server_context(
        version, authority.server_cert_pem, authority.server_key_pem, alpn=[alpn]
    )
    if not tickets:
        server.options |= ssl.OP_NO_TICKET
    client = client_context(version, authority.ca_cert_pem, keylog=str(keys), alpn=[alpn])
    serve_one, fetch_one = (serve_h2, fetch_h2) if alpn == "h2" else (serve, fetch)
    pcap = out / f"{name}.pcap"
    raw = Path(tempfile.mkdtemp()) / "lo.pcap"
    # No capture filter: on this host's kernel (a Firecracker VM) tcpdump's filter on lo passed
    # nothing; the port is filtered from the file afterwards instead.
    dump = subprocess.Popen(
        ["tcpdump", "-i", "lo", "-U", "--immediate-mode", "-w", str(raw)],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert dump.stderr is not None
    dump.stderr.readline()  # "listening on lo, ...": yet the first packets may still be missed
    time.sleep(1.0)
    with socket.create_server(("127.0.0.1", PORT), reuse_port=True) as listener:
        worker = threading.Thread(target=serve_one, args=(server, listener, n))
        worker.start()
        sessions = Sessions(client, resume=resume, server_name="localhost")
        for _ in range(n):
            fetch_one(sessions)
            time.sleep(0.05)
        worker.join(10)
    time.sleep(0.3)
    dump.send_signal(signal.SIGTERM)
    dump.wait(10)
    subprocess.run(
        ["tcpdump", "-r", str(raw), "-w", str(pcap), f"tcp port {PORT}"],
        check=True,
        capture_output=True,
    )
    shutil.rmtree(raw.parent)
    size = pcap.stat().st_size
    print(f"{pcap}: {size} bytes; {keys}: {keys.stat().st_size} bytes")
    if size <= 24:
        sys.exit(f"record.py: {pcap} holds no packets (tcpdump missed them): run it again")


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("record.py: tcpdump on lo needs root")
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent
    names = sys.argv[2:] or list(CAPTURES)
    for name in names:
        record(name, out, *CAPTURES[name])


if __name__ == "__main__":
    main()
