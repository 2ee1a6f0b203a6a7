"""TLS: the record reader on captures the lab recorded (tests/data/tls, see its README), checked
against tshark; the run's CA; the server's and client's contexts in real handshakes."""

from __future__ import annotations

import random
import select
import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

from client import tls as client_tls
from lab import tls, tlsca
from lab.capture import read_capture
from server import tls as server_tls
from tests.conftest import require

DATA = Path(__file__).resolve().parents[1] / "data"
TLS_DATA = DATA / "tls"
PORT = 8443  # the recordings' server port
TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.usefixtures("needs_tshark")  # tests/conftest.py: skip, or fail in CI


def read(name: str) -> list[tls.TlsConnection]:
    return tls.read_tls(TLS_DATA / f"{name}.pcap")


def tshark(name: str, *args: str) -> list[list[str]]:
    """tshark's fields, one list per frame, reading port 8443 as TLS."""
    assert TSHARK is not None
    out = subprocess.run(
        [TSHARK, "-r", str(TLS_DATA / f"{name}.pcap"), "-d", f"tcp.port=={PORT},tls", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [line.split("\t") for line in out.splitlines() if line.strip()]


# The captures ----------------------------------------------------------------------------


def test_full_tls12_takes_two_round_trips_and_sends_the_certificate_in_clear():
    (c,) = read("tls12")
    assert (c.version, c.resumed, c.handshake_round_trips) == ("1.2", False, 2)
    assert c.flights == ["c", "s", "c", "s"]
    assert c.certificate_in_clear and c.certificates == 1
    assert c.certificate_bytes == 894  # 4 + tshark's tls.handshake.length 890
    assert c.tickets == 1  # a TLS 1.2 ticket, in clear, in the server's second flight
    assert c.alpn == "http/1.1" and c.alpn_offered == ["http/1.1"] and c.sni == "localhost"
    assert c.handshake_bytes["server"] > c.certificate_bytes
    assert c.problem is None


def test_full_tls13_takes_one_round_trip_and_encrypts_the_certificate():
    (c,) = read("tls13")
    assert (c.version, c.resumed, c.handshake_round_trips) == ("1.3", False, 1)
    assert c.flights == ["c", "s", "c"]
    assert not c.certificate_in_clear and c.certificate_bytes is None
    assert c.alpn == tls.ALPN_ENCRYPTED
    assert c.tickets == 2  # OpenSSL's two tickets, told from the response by their size
    assert c.handshake_bytes["server"] > 1500  # the encrypted flight holds the certificate


@pytest.mark.parametrize(
    ("name", "mechanism"), [("tls12-resume", "ticket"), ("tls12-session-id", "session id")]
)
def test_tls12_resumption_skips_the_certificate_and_a_round_trip(name, mechanism):
    full, resumed = read(name)
    assert not full.resumed and full.handshake_round_trips == 2
    assert resumed.resumed and resumed.resumption == mechanism
    assert resumed.handshake_round_trips == 1 and resumed.flights == ["c", "s", "c"]
    assert resumed.certificate_bytes is None and not resumed.certificate_in_clear
    assert resumed.handshake_bytes["server"] < full.handshake_bytes["server"] / 5


def test_tls13_resumption_skips_the_certificate_but_not_the_round_trip():
    full, resumed = read("tls13-resume")
    assert (resumed.resumed, resumed.resumption) == (True, "psk")
    assert full.handshake_round_trips == resumed.handshake_round_trips == 1
    # no certificate in the resumed flight: a quarter of the full one's bytes
    assert resumed.handshake_bytes["server"] < full.handshake_bytes["server"] / 3
    assert (full.tickets, resumed.tickets) == (2, 1)


@pytest.mark.parametrize("name", ["tls12", "tls13", "tls12-resume", "tls13-resume"])
def test_time_to_first_byte_is_tcp_plus_tls_plus_server_time(name):
    for c in read(name):
        t = c.ttfb()
        assert all(t[k] is not None and t[k] > 0 for k in t), t
        assert t["tcp_s"] + t["tls_s"] + t["server_s"] == pytest.approx(t["total_s"])
        assert c.syn_ts < c.client_hello_ts < c.server_hello_ts < c.handshake_done_ts
        assert c.application_bytes["client"] > 0 and c.application_bytes["server"] > 1000


def test_the_response_is_application_data_and_the_close_notify_is_not():
    (c,) = read("tls12")  # TLS 1.2: the alert has its own record type
    (d,) = read("tls13")  # TLS 1.3: a 19-byte final record, taken for the alert
    response = 85 + 1000  # record.py's head and body, in one record
    # AES-GCM records: TLS 1.2 adds an 8-byte explicit nonce and a 16-byte tag; TLS 1.3 a
    # 1-byte inner content type and the tag
    assert c.application_bytes["server"] == 5 + 8 + response + 16
    assert d.application_bytes["server"] == 5 + response + 1 + 16


def test_http2_over_tls12_says_h2_in_clear_and_fetches_the_page_on_one_connection():
    (c,) = read("tls12-h2")  # ten resources, 300 to 3,000 bytes: 16,500 bytes of bodies
    assert (c.alpn, c.alpn_offered, c.handshake_round_trips) == ("h2", ["h2"], 2)
    assert 16_500 < c.application_bytes["server"] < 18_000
    t = c.ttfb()  # the server's SETTINGS go before the request: not its first byte
    assert t["server_s"] > 0 and c.first_data_ts["server"] > c.first_data_ts["client"]


def test_stream_numbers_are_the_analysis_ones():
    capture = read_capture(TLS_DATA / "tls12-resume.pcap")
    conns = tls.read_tls(TLS_DATA / "tls12-resume.pcap", capture=capture, server_ports=[PORT])
    assert [c.stream for c in conns] == [0, 1]
    assert tls.read_tls(TLS_DATA / "tls12-resume.pcap", server_ports=[443]) == []


def test_a_capture_without_tls_has_no_tls_connections():
    assert tls.read_tls(DATA / "http10-ipv4.pcap") == []


def test_summary_counts_handshakes_round_trips_and_bytes():
    summary = tls.summarize(read("tls12-resume"))
    assert summary["full_handshakes"] == summary["resumed"] == 1
    assert summary["round_trips_full"] == [2] and summary["round_trips_resumed"] == [1]
    assert summary["certificates_in_clear"] == 1 and summary["certificate_bytes"] == 894
    assert summary["versions"] == ["1.2"] and summary["problems"] == []
    assert summary["server_handshake_bytes_resumed"] < summary["server_handshake_bytes_full"]


def test_the_claims_hold_on_the_recordings():
    s12, s13 = tls.summarize(read("tls12")), tls.summarize(read("tls13"))
    holds, observed, _, _ = tls.claim_tls13_saves_a_round_trip(s12, s13)
    assert holds and observed == "full handshakes: TLS 1.2 [2] round trips, TLS 1.3 [1]"
    assert tls.claim_tls13_saves_a_round_trip(s13, s13)[0] is False
    assert tls.claim_tls13_saves_a_round_trip(s12, tls.summarize([]))[0] is None
    for name in ("tls12-resume", "tls12-session-id", "tls13-resume"):
        assert tls.claim_resumption_skips_the_certificate(tls.summarize(read(name)))[0]
    holds, _, _, why = tls.claim_resumption_skips_the_certificate(s13)
    assert holds is None and "no connection resumed" in why


def test_the_key_log_comes_back_from_the_clients_log_records(tmp_path):
    lines = (TLS_DATA / "tls13.keys").read_text().splitlines()
    records = [client_tls.keylog_record(line) for line in lines]
    records.insert(1, {"event": "request", "line": "CLIENT_RANDOM aa bb"})  # another event
    records.insert(2, client_tls.keylog_record("CLIENT_RANDOM zz\nEVIL"))  # not a key line
    keys = [line for line in lines if not line.startswith("#")]  # Python's header is a comment
    assert len(keys) == 5 and tls.keylog_text(records) == "".join(line + "\n" for line in keys)
    assert client_tls.KEYLOG_EVENT == tls.KEYLOG_EVENT


# Checked independently by tshark ------------------------------------------------------------------


@needs_tshark
@pytest.mark.parametrize("name", ["tls12", "tls12-resume", "tls12-session-id"])
def test_tshark_sees_the_same_clear_handshake_messages(name):
    rows = tshark(name, "-Y", "tls.handshake.type", "-T", "fields", "-e", "tls.handshake.type")
    theirs = [int(t) for row in rows for t in row[0].split(",")]
    ours = [m.split(" ", 1)[1] for c in read(name) for m in c.messages]
    assert [tls.MESSAGE_NAMES[t] for t in theirs] == ours


@needs_tshark
def test_tshark_measures_the_same_certificate():
    rows = tshark(
        "tls12", "-Y", "tls.handshake.type == 11", "-T", "fields", "-e", "tls.handshake.type",
        "-e", "tls.handshake.length",
    )  # fmt: skip
    types, lengths = rows[0][0].split(","), rows[0][1].split(",")
    (c,) = read("tls12")
    assert c.certificate_bytes == 4 + int(lengths[types.index("11")])


@needs_tshark
def test_tshark_decrypts_ten_http2_requests_on_the_one_connection():
    keys = f"tls.keylog_file:{TLS_DATA / 'tls12-h2.keys'}"
    rows = tshark("tls12-h2", "-o", keys, "-Y", "http2.header.name == \":path\"", "-T", "fields",
                  "-e", "tcp.stream", "-e", "http2.header.value")  # fmt: skip
    paths = [v for row in rows for v in row[1].split(",") if v.startswith("/")]
    assert {row[0] for row in rows} == {"0"}
    assert paths == [f"/r{i}.bin" for i in range(1, 11)]


@needs_tshark
def test_the_key_log_lets_tshark_decrypt_the_request_and_count_the_tickets():
    keys = f"tls.keylog_file:{TLS_DATA / 'tls13.keys'}"
    rows = tshark(
        "tls13", "-o", keys, "-Y", "http.request", "-T", "fields", "-e", "http.request.uri"
    )
    assert rows == [["/page.html"]]
    rows = tshark("tls13", "-o", keys, "-Y", "tls.handshake.type == 4", "-T", "fields",
                  "-e", "frame.number")  # fmt: skip
    (c,) = read("tls13")
    assert len(rows) == c.tickets == 2


# Reassembly and record walking, by hand ------------------------------------------------------


def test_reassembly_keeps_retransmitted_bytes_once_and_waits_for_a_hole():
    s = tls._Stream()
    s.add_all([(0, b"abc", 1.0, 1), (6, b"ghi", 2.0, 2), (0, b"abc", 3.0, 3), (3, b"def", 4.0, 4)])
    assert bytes(s.data) == b"abcdefghi" and not s.gap
    assert s.at(0) == (1.0, 1) and s.at(4) == (4.0, 4)
    assert s.at(7) == (4.0, 4)  # readable only once the hole before it filled
    hole = tls._Stream()
    hole.add_all([(0, b"ab", 1.0, 1), (5, b"xyz", 2.0, 2)])
    assert bytes(hole.data) == b"ab" and hole.gap


def test_the_record_walk_stops_at_bytes_that_are_not_tls():
    s = tls._Stream()
    s.add_all([(0, bytes([22, 3, 3, 0, 2]) + b"hi" + b"GET / HTTP/1.1\r\n", 1.0, 1)])
    records, problem = tls._records(s, from_client=True)
    assert [(r.type, r.length, r.body) for r in records] == [(22, 2, b"hi")]
    assert problem is not None and "not a TLS record at byte 7" in problem


def test_damaged_payloads_never_raise():
    capture = read_capture(TLS_DATA / "tls12-resume.pcap")
    (packets, *_) = tls.split_streams(capture.packets)
    payloads = tls.read_payloads(TLS_DATA / "tls12-resume.pcap", [p.frame for p in packets])
    rng = random.Random(13)
    for _ in range(300):
        damaged = dict(payloads)
        frame = rng.choice(sorted(f for f, d in damaged.items() if d))
        data = bytearray(damaged[frame])
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        damaged[frame] = bytes(data[: rng.randint(1, len(data))])
        conn = tls.read_connection(0, packets, damaged)
        assert conn is None or isinstance(conn.to_dict(), dict)


def test_bytes_the_capture_missed_at_the_end_are_said():
    capture = read_capture(TLS_DATA / "tls12.pcap")
    (packets,) = tls.split_streams(capture.packets)
    payloads = tls.read_payloads(TLS_DATA / "tls12.pcap", [p.frame for p in packets])
    last = max(p.frame for p in packets if p.payload_len and p.sport == PORT)
    del payloads[last]  # the server's last data segment: nothing of it after it, but its FIN
    conn = tls.read_connection(0, packets, payloads)
    assert conn.problem is not None and "the capture holds" in conn.problem


def test_a_hello_retry_costs_a_round_trip():
    def rec(side: str, t: float, rtype: int = tls.HANDSHAKE) -> tls.TlsRecord:
        return tls.TlsRecord(side == "c", t, t, int(t), rtype, 0x0303, 10)

    client = [rec("c", 1), rec("c", 3), rec("c", 5, tls.APPLICATION_DATA)]
    server = [rec("s", 2), rec("s", 4), rec("s", 4.5, tls.APPLICATION_DATA)]
    conn = tls.TlsConnection(0, "c:1", "s:2", version="1.3")
    tls._account(conn, client, server, client[-1], post_handshake=0)
    assert conn.flights == list("cscsc") and conn.handshake_round_trips == 2


# The run's certificate authority -------------------------------------------------------------


@pytest.fixture(scope="module")
def authority() -> tlsca.Authority:
    return tlsca.make_authority(key="ec")


def test_the_ca_key_is_never_written(authority, tmp_path):
    paths = authority.write_public(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tls-ca.pem", "tls-server.pem"]
    for path in paths.values():
        assert b"PRIVATE KEY" not in path.read_bytes()
    assert b"PRIVATE KEY" not in "".join(authority.client_environment().values()).encode()
    assert "ca_key" not in repr(authority)


def test_the_environment_names_agree_with_the_containers():
    assert (tlsca.CERT_ENV, tlsca.KEY_ENV) == (server_tls.CERT_ENV, server_tls.KEY_ENV)
    assert tlsca.CA_ENV == client_tls.CA_ENV
    assert "server" in tlsca.SERVER_NAMES and client_tls.SERVER_NAME == "server"


def test_an_rsa_certificate_is_the_size_of_a_real_sites_leaf():
    rsa = tlsca.make_authority(key="rsa")
    assert 700 < rsa.server_cert_der_len < 1100
    with pytest.raises(ValueError, match="unknown key kind"):
        tlsca.make_authority(key="dsa")


# The server's and the client's contexts, in real handshakes ------------------------------------


class Loopback:
    """A TLS server on 127.0.0.1 answering each connection's line with "ok"."""

    def __init__(self, ctx: ssl.SSLContext, connections: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.seen: list[dict] = []
        self.thread = threading.Thread(target=self._serve, args=(ctx, connections), daemon=True)
        self.thread.start()

    def _serve(self, ctx: ssl.SSLContext, n: int) -> None:
        with self.listener:
            for _ in range(n):
                sock, _ = self.listener.accept()
                sock.settimeout(5)
                try:
                    with ctx.wrap_socket(sock, server_side=True) as conn:
                        self.seen.append(server_tls.describe(conn))
                        conn.recv(100)
                        conn.sendall(b"ok")
                        server_tls.send_close_notify(conn)
                except (ssl.SSLError, OSError) as exc:
                    self.seen.append({"error": str(exc)})


def fetch(sessions: client_tls.Sessions, port: int) -> dict:
    conn = sessions.wrap(socket.create_connection(("127.0.0.1", port), timeout=5))
    with conn:
        conn.sendall(b"hi\n")
        assert conn.recv(100) == b"ok"
        sessions.remember(conn)
        return client_tls.describe(conn)


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_the_second_connection_resumes_the_first_ones_session(authority, version):
    server = server_tls.server_context(version, authority.server_cert_pem, authority.server_key_pem)
    client = client_tls.client_context(version, authority.ca_cert_pem)
    loop = Loopback(server, 3)
    sessions = client_tls.Sessions(client, resume=True, server_name="localhost")
    first, second, third = (fetch(sessions, loop.port) for _ in range(3))
    loop.thread.join(5)
    assert first["tls_version"] == f"TLSv{version}"
    assert (first["resumed"], second["resumed"], third["resumed"]) == (False, True, True)
    assert [s["resumed"] for s in loop.seen] == [False, True, True]


def test_without_resume_every_connection_makes_a_full_handshake(authority):
    server = server_tls.server_context("1.3", authority.server_cert_pem, authority.server_key_pem)
    loop = Loopback(server, 2)
    sessions = client_tls.Sessions(
        client_tls.client_context("1.3", authority.ca_cert_pem), False, "localhost"
    )
    assert [fetch(sessions, loop.port)["resumed"] for _ in range(2)] == [False, False]
    assert sessions.session is None


def test_the_versions_are_pinned(authority):
    server = server_tls.server_context("1.2", authority.server_cert_pem, authority.server_key_pem)
    loop = Loopback(server, 1)
    sessions = client_tls.Sessions(
        client_tls.client_context("1.3", authority.ca_cert_pem), False, "localhost"
    )
    with pytest.raises(ssl.SSLError):
        fetch(sessions, loop.port)
    loop.thread.join(5)


def test_the_client_trusts_the_runs_ca_for_the_servers_name_only(authority):
    server = server_tls.server_context("1.3", authority.server_cert_pem, authority.server_key_pem)
    loop = Loopback(server, 1)
    client = client_tls.client_context("1.3", authority.ca_cert_pem)
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        fetch(client_tls.Sessions(client, False, "example.com"), loop.port)
    other = tlsca.make_authority(key="ec")
    with pytest.raises(ValueError, match="CA certificate"):
        client_tls.client_context("1.3", b"not pem")
    strange = client_tls.client_context("1.3", other.ca_cert_pem)
    loop = Loopback(server, 1)
    with pytest.raises(ssl.SSLCertVerificationError):
        fetch(client_tls.Sessions(strange, False, "localhost"), loop.port)


def test_bad_setup_is_one_line(authority):
    with pytest.raises(server_tls.TlsSetupError, match=r"unknown TLS version '1\.1'"):
        server_tls.server_context("1.1", authority.server_cert_pem, authority.server_key_pem)
    with pytest.raises(server_tls.TlsSetupError, match="not PEM"):
        server_tls.server_context("1.3", b"junk", b"junk")
    with pytest.raises(server_tls.TlsSetupError, match="cannot load"):
        other = tlsca.make_authority(key="ec")  # a key that is not the certificate's
        server_tls.server_context("1.3", authority.server_cert_pem, other.server_key_pem)
    with pytest.raises(server_tls.TlsSetupError, match="LAB_TLS_KEY unset"):
        server_tls.context_from_environment("1.3", {"LAB_TLS_CERT": "x"})
    with pytest.raises(client_tls.TlsSetupError, match="LAB_TLS_CA unset"):
        client_tls.context_from_environment("1.3", {})
    env = {**authority.server_environment(), **authority.client_environment()}
    assert server_tls.context_from_environment("1.2", env).maximum_version.name == "TLSv1_2"
    assert client_tls.context_from_environment("1.3", env).minimum_version.name == "TLSv1_3"


def test_openssl_s_client_verifies_the_server_with_the_runs_ca(authority, tmp_path):
    require(shutil.which("openssl") is not None, "openssl not installed")
    ca = authority.write_public(tmp_path)["ca"]
    for version in ("1.2", "1.3"):
        server = server_tls.server_context(
            version, authority.server_cert_pem, authority.server_key_pem
        )
        loop = Loopback(server, 1)
        out = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{loop.port}", "-CAfile", str(ca),
             "-verify_hostname", "server", "-verify_return_error", f"-tls1_{version[-1]}",
             "-ign_eof", "-quiet"],
            input=b"hi\n", capture_output=True, timeout=20,
        )  # fmt: skip
        loop.thread.join(5)
        assert out.returncode == 0, out.stderr[-300:]
        assert out.stdout == b"ok" and loop.seen[0]["tls_version"] == f"TLSv{version}"


def test_the_key_log_pipe_hands_over_every_line(authority):
    lines: list[str] = []
    keylog = client_tls.KeyLog(lines.append)
    client = client_tls.client_context("1.3", authority.ca_cert_pem, keylog=keylog.path)
    server = server_tls.server_context("1.3", authority.server_cert_pem, authority.server_key_pem)
    loop = Loopback(server, 1)
    fetch(client_tls.Sessions(client, False, "localhost"), loop.port)
    loop.thread.join(5)
    del client  # OpenSSL's own descriptor of the pipe closes with the context
    keylog.close()
    labels = {line.split()[0] for line in lines}
    assert {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0"} <= labels


def test_the_event_loops_handshake_yields_what_it_waits_for(authority):
    server = server_tls.server_context("1.3", authority.server_cert_pem, authority.server_key_pem)
    client = client_tls.client_context("1.3", authority.ca_cert_pem)
    a, b = socket.socketpair()
    a.setblocking(False)
    ours = server.wrap_socket(a, server_side=True, do_handshake_on_connect=False)
    done = threading.Thread(target=lambda: client.wrap_socket(b, server_hostname="localhost"))
    done.start()
    steps = server_tls.handshake(ours, deadline=0.0)
    waits = []
    try:
        waited = next(steps)
        while True:
            waits.append(waited[0])
            select.select([ours], [], [], 5)
            waited = steps.send(True)
    except StopIteration:
        pass
    done.join(5)
    assert waits and ours.version() == "TLSv1.3"
    quiet, silent = socket.socketpair()  # a peer that never speaks
    late = server.wrap_socket(quiet, server_side=True, do_handshake_on_connect=False)
    late.setblocking(False)
    gen = server_tls.handshake(late, deadline=0.0)
    next(gen)
    with pytest.raises(TimeoutError):
        gen.send(False)
    silent.close()
    late.close()
