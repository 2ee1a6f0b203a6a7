"""TLS read from a capture's TCP payloads: each connection's handshake, round trips and costs.

Pure (stdlib and dpkt). `lab.capture`'s packet records carry no payload (its reader is the
analysis' hot path), so this reads the file a second time, only for the frames that carry
payload, and takes their TCP payload bytes with dpkt. Connections are lab.analysis' (Wireshark's
tcp.stream numbers, from the same packet records), so `stream` here is `stream` there.

Per connection and direction the payload is reassembled by sequence number (retransmitted bytes
once; a byte "arrives" when everything before it has), then walked as TLS records: content
type, version and length are in clear in every TLS version. A connection is TLS when its
client's first bytes are a handshake record holding a ClientHello. Inside the handshake
records that are still in clear, the handshake messages are read:

- ServerHello: the version (TLS 1.3 says so in its supported_versions extension; the legacy
  field stays 1.2), resumption (TLS 1.3: a pre_shared_key extension; TLS 1.2: the server goes
  from ServerHello straight to ChangeCipherSpec, no Certificate: an abbreviated handshake, by
  ticket if the ClientHello offered one, else by session id), ALPN (TLS 1.2 only: TLS 1.3
  sends it in EncryptedExtensions, encrypted);
- Certificate (TLS 1.2 only, in clear): its size, counted apart as `certificate_bytes`.
  In TLS 1.3 the certificate is encrypted: the server's flight is counted whole.

The handshake's end, from record types alone:

- TLS 1.2: each side's Finished is its first handshake record after its ChangeCipherSpec; the
  handshake is done when both are in (a full handshake: the client's first, then the
  server's; a resumed one: the other way round);
- TLS 1.3: the client's Finished is its first encrypted record (application_data type) after
  the server's flight; everything the server sent before it is the server's flight.

Round trips: the records from the ClientHello to the handshake's end, as the directions they
went (consecutive records one way are one flight), hold one round trip per client flight that
a server flight answers: full TLS 1.2 c-s-c-s = 2, TLS 1.3 c-s-c = 1, TLS 1.2 resumption
c-s-c = 1, a TLS 1.3 HelloRetryRequest c-s-c-s-c = 2.

After the handshake, application data. TLS 1.3 hides the content type, so a side's last record,
when 19 bytes long (an alert, its type byte and an AEAD tag), is taken for its close_notify,
and a server's
NewSessionTickets (sent when the client's Finished arrives) look like data: the records right
after the client's Finished that all have one length, under `TICKET_RECORD_MAX` bytes, are
taken for tickets (OpenSSL sends `num_tickets` of them, 2 after a full handshake and 1 after
a resumption, each in its own record of one size), and the server's data starts after them.

Time to first byte, from the client's SYN to the server's first application data byte, in
three parts that add up: `tcp` (SYN to the client's ACK ending TCP's handshake), `tls` (that ACK
to the client's first application data: the TLS handshake's round trips and both ends' work),
`server` (the request to the server's first record after it: its response, or for HTTP/2
perhaps the acknowledgement of the client's SETTINGS that goes just before). All times are the
capture's: a capture on the server's side sees the client's packets half a round trip after
they left.
"""

from __future__ import annotations

import bisect
import itertools
import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dpkt

from lab.analysis.streams import split_streams
from lab.capture import Capture, Packet, read_capture
from lab.tcp import ACK, FIN, SYN, is_syn, seq_diff

# Record content types (RFC 8446 5.1) and handshake message types (4)
CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA, HEARTBEAT = 20, 21, 22, 23, 24
CLIENT_HELLO, SERVER_HELLO, NEW_SESSION_TICKET = 1, 2, 4
CERTIFICATE, SERVER_KEY_EXCHANGE, SERVER_HELLO_DONE = 11, 12, 14
MESSAGE_NAMES = {
    0: "HelloRequest",
    1: "ClientHello",
    2: "ServerHello",
    4: "NewSessionTicket",
    8: "EncryptedExtensions",
    11: "Certificate",
    12: "ServerKeyExchange",
    13: "CertificateRequest",
    14: "ServerHelloDone",
    15: "CertificateVerify",
    16: "ClientKeyExchange",
    20: "Finished",
}
# Extensions (IANA TLS ExtensionType values)
EXT_SERVER_NAME, EXT_ALPN, EXT_SESSION_TICKET = 0, 16, 35
EXT_PRE_SHARED_KEY, EXT_EARLY_DATA, EXT_SUPPORTED_VERSIONS = 41, 42, 43
VERSION_NAMES = {0x0300: "SSL 3.0", 0x0301: "1.0", 0x0302: "1.1", 0x0303: "1.2", 0x0304: "1.3"}
# A HelloRetryRequest is a ServerHello with this random (RFC 8446 4.1.3)
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
RECORD_HEADER = 5
MAX_RECORD = 2**14 + 2048  # the largest TLSCiphertext (RFC 5246 6.2.3): more is not TLS
TICKET_RECORD_MAX = 1024  # an OpenSSL TLS 1.3 ticket record is ~300 bytes
# A TLS 1.3 alert as an AEAD record: 2 bytes of alert, 1 of inner type, a 16-byte tag
TLS13_ALERT_LENGTH = 19
ALPN_ENCRYPTED = "encrypted (TLS 1.3 sends ALPN in EncryptedExtensions)"

_LINK_DECODERS = {
    1: dpkt.ethernet.Ethernet,
    113: dpkt.sll.SLL,
    276: dpkt.sll2.SLL2,
    0: dpkt.loopback.Loopback,
    108: dpkt.loopback.Loopback,
}
_RAW_IP = {101, 12, 14, 228, 229}


@dataclass(frozen=True)
class TlsRecord:
    """One TLS record as it crossed the wire: who sent it, when its first and last bytes
    arrived (every byte before them in), its header, and its body (kept for clear handshakes)."""

    from_client: bool
    ts: float
    end_ts: float
    frame: int  # the frame its first byte came in
    type: int
    version: int
    length: int  # the body's, without the 5-byte header
    body: bytes = field(repr=False, default=b"")

    @property
    def size(self) -> int:
        return RECORD_HEADER + self.length


@dataclass
class TlsConnection:
    """What the packets say of one connection's TLS (see the module doc); times in seconds on
    the capture's clock, None where the capture did not show it."""

    stream: int
    client: str  # "addr:port"
    server: str
    syn_ts: float | None = None
    tcp_done_ts: float | None = None  # the client's ACK of the SYN-ACK
    client_hello_ts: float | None = None
    server_hello_ts: float | None = None
    version: str | None = None  # "1.2", "1.3"
    resumed: bool = False
    resumption: str | None = None  # "ticket", "session id", "psk" (TLS 1.3)
    hello_retry: bool = False
    early_data: bool = False  # the client sent TLS 1.3 0-RTT records
    sni: str | None = None
    alpn_offered: list[str] = field(default_factory=list)
    alpn: str | None = None  # the server's choice when in clear (TLS 1.2), else ALPN_ENCRYPTED
    certificate_in_clear: bool = False
    certificate_bytes: int | None = None  # the Certificate message, header included (1.2)
    certificates: int | None = None  # certificates in the chain (1.2)
    tickets: int = 0  # NewSessionTickets (1.2: in clear; 1.3: by the rule in the module doc)
    client_finished_ts: float | None = None
    server_finished_ts: float | None = None
    handshake_done_ts: float | None = None
    handshake_round_trips: int | None = None
    handshake_bytes: dict[str, int] = field(default_factory=lambda: {"client": 0, "server": 0})
    application_bytes: dict[str, int] = field(default_factory=lambda: {"client": 0, "server": 0})
    first_data_ts: dict[str, float | None] = field(
        default_factory=lambda: {"client": None, "server": None}
    )
    messages: list[str] = field(default_factory=list)  # clear handshake messages, as sent
    flights: list[str] = field(default_factory=list)  # "c"/"s", ClientHello to the end
    problem: str | None = None  # why the reading stopped short, one line

    @property
    def full_handshake(self) -> bool:
        return self.version is not None and not self.resumed

    def ttfb(self) -> dict[str, float | None]:
        """Time to first byte and its three parts (see the module doc)."""
        syn, tcp = self.syn_ts, self.tcp_done_ts
        request, response = self.first_data_ts["client"], self.first_data_ts["server"]

        def span(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else b - a

        return {
            "total_s": span(syn, response),
            "tcp_s": span(syn, tcp),
            "tls_s": span(tcp, request),
            "server_s": span(request, response),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "client": self.client,
            "server": self.server,
            "version": self.version,
            "resumed": self.resumed,
            "resumption": self.resumption,
            "hello_retry": self.hello_retry,
            "early_data": self.early_data,
            "sni": self.sni,
            "alpn_offered": self.alpn_offered,
            "alpn": self.alpn,
            "certificate_in_clear": self.certificate_in_clear,
            "certificate_bytes": self.certificate_bytes,
            "certificates": self.certificates,
            "tickets": self.tickets,
            "handshake_round_trips": self.handshake_round_trips,
            "handshake_bytes": dict(self.handshake_bytes),
            "application_bytes": dict(self.application_bytes),
            "times": {
                "syn": self.syn_ts,
                "tcp_done": self.tcp_done_ts,
                "client_hello": self.client_hello_ts,
                "server_hello": self.server_hello_ts,
                "client_finished": self.client_finished_ts,
                "server_finished": self.server_finished_ts,
                "handshake_done": self.handshake_done_ts,
                "first_data_client": self.first_data_ts["client"],
                "first_data_server": self.first_data_ts["server"],
            },
            "ttfb": self.ttfb(),
            "messages": self.messages,
            "flights": "".join(self.flights),
            "problem": self.problem,
        }


# Reading the file ------------------------------------------------------------------------


def _tcp_payload(linktype: int, buf: bytes) -> bytes | None:
    """The TCP payload of one frame, or None if it is not TCP over IP in a link we read."""
    try:
        if linktype in _RAW_IP:
            ip = dpkt.ip.IP(buf) if buf[0] >> 4 == 4 else dpkt.ip6.IP6(buf)
        else:
            decode = _LINK_DECODERS.get(linktype)
            if decode is None:
                return None
            ip = decode(buf).data
        tcp = ip.data
    except (dpkt.UnpackError, IndexError, struct.error):
        return None
    return bytes(tcp.data) if isinstance(tcp, dpkt.tcp.TCP) else None


def read_payloads(path: str | os.PathLike, frames: Iterable[int]) -> dict[int, bytes]:
    """The TCP payload of each wanted frame (Wireshark's 1-based frame numbers) of a pcap or
    pcapng file; frames dpkt cannot decode are left out."""
    wanted = set(frames)
    out: dict[int, bytes] = {}
    if not wanted:
        return out
    last = max(wanted)
    with open(path, "rb") as f:
        try:
            reader = dpkt.pcap.UniversalReader(f)
        except ValueError:
            return out
        linktype = reader.datalink()
        try:
            for number, (_ts, buf) in enumerate(reader, start=1):
                if number in wanted:
                    payload = _tcp_payload(linktype, buf)
                    if payload is not None:
                        out[number] = payload
                if number >= last:
                    break
        except (dpkt.NeedData, dpkt.UnpackError, ValueError, struct.error):
            pass  # a truncated file: lab.capture already says so; keep what was read
    return out


# Byte streams ------------------------------------------------------------------------------


class _Stream:
    """One direction's bytes in order, with the time each byte became readable."""

    def __init__(self) -> None:
        self.data = bytearray()
        self._starts: list[int] = []  # offset where each piece starts
        self._times: list[float] = []
        self._frames: list[int] = []
        self.gap = False  # bytes missing from the capture: nothing after them is read

    def add_all(self, chunks: list[tuple[int, bytes, float, int]]) -> None:
        """Chunks (offset, bytes, ts, frame) in capture order."""
        pending: list[tuple[int, bytes]] = []
        for offset, data, ts, frame in chunks:
            if offset + len(data) <= len(self.data):
                continue  # a retransmission of bytes already in
            if offset > len(self.data):
                pending.append((offset, data))  # ahead of a hole: wait for it to fill
                continue
            self._take(offset, data, ts, frame)
            progress = True
            while pending and progress:  # the hole filled: what waited is readable now
                progress = False
                for item in sorted(pending):
                    o, d = item
                    if o <= len(self.data):
                        pending.remove(item)
                        if o + len(d) > len(self.data):
                            self._take(o, d, ts, frame)
                        progress = True
        self.gap = bool(pending)

    def _take(self, offset: int, data: bytes, ts: float, frame: int) -> None:
        new = data[len(self.data) - offset :]
        self._starts.append(len(self.data))
        self._times.append(ts)
        self._frames.append(frame)
        self.data += new

    def at(self, offset: int) -> tuple[float, int]:
        """(time, frame) the byte at `offset` became readable."""
        i = bisect.bisect_right(self._starts, offset) - 1
        return self._times[i], self._frames[i]


def _records(stream: _Stream, from_client: bool) -> tuple[list[TlsRecord], str | None]:
    """The stream's complete TLS records, and why the walk stopped early (None: it did not)."""
    out: list[TlsRecord] = []
    data, pos, end = stream.data, 0, len(stream.data)
    while end - pos >= RECORD_HEADER:
        rtype, version, length = struct.unpack_from("!BHH", data, pos)
        if not CHANGE_CIPHER_SPEC <= rtype <= HEARTBEAT or version >> 8 != 3:
            return out, f"not a TLS record at byte {pos} ({'client' if from_client else 'server'})"
        if length > MAX_RECORD:
            return out, f"a {length}-byte TLS record at byte {pos}: longer than TLS allows"
        if end - pos - RECORD_HEADER < length:
            break
        ts, frame = stream.at(pos)
        end_ts, _ = stream.at(pos + RECORD_HEADER + length - 1)
        # bodies are read for the clear records only: application data stays in the stream
        body = (
            b""
            if rtype == APPLICATION_DATA
            else bytes(data[pos + RECORD_HEADER : pos + RECORD_HEADER + length])
        )
        out.append(TlsRecord(from_client, ts, end_ts, frame, rtype, version, length, body))
        pos += RECORD_HEADER + length
    if stream.gap:
        return out, "bytes missing from the capture: the records after them are not read"
    return out, None


# Handshake messages --------------------------------------------------------------------------


@dataclass
class _Message:
    type: int
    body: bytes
    record: TlsRecord

    @property
    def size(self) -> int:
        return 4 + len(self.body)


def _messages(records: Sequence[TlsRecord], in_clear) -> list[_Message]:
    """The handshake messages of the records `in_clear(record)` says are plaintext (one
    message may span records; a record may hold several)."""
    out: list[_Message] = []
    buf = b""
    first: TlsRecord | None = None
    for rec in records:
        if rec.type != HANDSHAKE or not in_clear(rec):
            continue
        if not buf:
            first = rec
        buf += rec.body
        while len(buf) >= 4:
            mtype = buf[0]
            length = int.from_bytes(buf[1:4], "big")
            if len(buf) < 4 + length:
                break
            assert first is not None
            out.append(_Message(mtype, buf[4 : 4 + length], first))
            buf = buf[4 + length :]
            first = rec
    return out


def _extensions(data: bytes, at: int) -> dict[int, bytes]:
    """The extensions block starting at `at` (its 2-byte length), as {type: data}."""
    out: dict[int, bytes] = {}
    if at + 2 > len(data):
        return out
    end = min(len(data), at + 2 + int.from_bytes(data[at : at + 2], "big"))
    at += 2
    while at + 4 <= end:
        etype, elen = struct.unpack_from("!HH", data, at)
        out[etype] = data[at + 4 : at + 4 + elen]
        at += 4 + elen
    return out


@dataclass
class _Hello:
    version: int
    random: bytes
    session_id: bytes
    extensions: dict[int, bytes]


def _client_hello(body: bytes) -> _Hello:
    version = int.from_bytes(body[0:2], "big")
    random = body[2:34]
    at = 34
    sid = body[at + 1 : at + 1 + body[at]]
    at += 1 + body[at]
    at += 2 + int.from_bytes(body[at : at + 2], "big")  # cipher suites
    at += 1 + body[at]  # compression methods
    return _Hello(version, random, sid, _extensions(body, at))


def _server_hello(body: bytes) -> _Hello:
    version = int.from_bytes(body[0:2], "big")
    random = body[2:34]
    at = 34
    sid = body[at + 1 : at + 1 + body[at]]
    at += 1 + body[at] + 2 + 1  # session id, cipher suite, compression method
    return _Hello(version, random, sid, _extensions(body, at))


def _alpn_list(data: bytes) -> list[str]:
    names, at = [], 2
    while at < len(data):
        n = data[at]
        names.append(data[at + 1 : at + 1 + n].decode("ascii", "replace"))
        at += 1 + n
    return names


def _sni(data: bytes) -> str | None:
    # server_name_list: 2-byte length, then (type 0, 2-byte length, name)
    if len(data) < 5 or data[2] != 0:
        return None
    n = int.from_bytes(data[3:5], "big")
    return data[5 : 5 + n].decode("ascii", "replace")


def _negotiated(hello: _Hello) -> int:
    chosen = hello.extensions.get(EXT_SUPPORTED_VERSIONS)
    return int.from_bytes(chosen[:2], "big") if chosen and len(chosen) >= 2 else hello.version


# One connection --------------------------------------------------------------------------------


def _endpoint(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def _client_side(packets: Sequence[Packet]) -> tuple[str, int] | None:
    for p in packets:
        if is_syn(p.flags):
            return p.src, p.sport
    return None


def read_connection(
    stream: int, packets: Sequence[Packet], payloads: dict[int, bytes]
) -> TlsConnection | None:
    """The TLS of one connection (its packets in capture order, and the payload of each frame
    that has one), or None if it does not start with a ClientHello."""
    client = _client_side(packets)
    chunks: dict[tuple[str, int], list[tuple[int, bytes, float, int]]] = {}
    bases: dict[tuple[str, int], int] = {}
    ends: dict[tuple[str, int], int] = {}  # how far each side's sequence numbers went
    fins: dict[tuple[str, int], int] = {}
    for p in packets:
        side = (p.src, p.sport)
        if p.flags & SYN:
            bases.setdefault(side, (p.seq + 1) & 0xFFFFFFFF)
            continue
        end = seq_diff(p.seq, bases.setdefault(side, p.seq)) + p.payload_len
        if end < 2**31:  # not bytes from before the capture's first
            ends[side] = max(ends.get(side, 0), end)
            if p.flags & FIN:  # the FIN's sequence number is no byte: later segments count it
                fins[side] = end
        data = payloads.get(p.frame)
        if not data:
            continue
        data = data[: p.payload_len]
        base = bases.setdefault(side, p.seq)
        chunks.setdefault(side, []).append((seq_diff(p.seq, base), data, p.ts, p.frame))
        if client is None and data[:1] == bytes([HANDSHAKE]) and data[5:6] == bytes([1]):
            client = side
    if client is None or client not in chunks:
        return None
    first = chunks[client][0][1] if chunks[client][0][0] == 0 else b""
    if len(first) < 6 or first[0] != HANDSHAKE or first[1] != 3 or first[5] != CLIENT_HELLO:
        return None
    server = next(((p.dst, p.dport) for p in packets if (p.src, p.sport) == client), None)
    assert server is not None
    conn = TlsConnection(stream, _endpoint(*client), _endpoint(*server))
    _tcp_times(conn, packets, client)
    streams = {}
    problems = []
    for side, from_client in ((client, True), (server, False)):
        s = _Stream()
        s.add_all(chunks.get(side, []))
        records, problem = _records(s, from_client)
        sent = min(ends.get(side, 0), fins.get(side, 2**32))
        if problem is None and sent > len(s.data):
            who = "client" if from_client else "server"
            problem = f"the capture holds {len(s.data)} of the {who}'s {sent} bytes"
        streams[from_client] = records
        if problem:
            problems.append(problem)
    try:
        _interpret(conn, streams[True], streams[False])
    except (IndexError, ValueError, struct.error, UnicodeDecodeError):
        # a message shorter than its fields (a damaged or hostile capture): keep what was read
        problems.append("a malformed handshake message: the reading stopped there")
    conn.problem = "; ".join(problems) or None
    return conn


def _tcp_times(conn: TlsConnection, packets: Sequence[Packet], client: tuple[str, int]) -> None:
    synack = None
    for p in packets:
        from_client = (p.src, p.sport) == client
        if from_client and is_syn(p.flags) and conn.syn_ts is None:
            conn.syn_ts = p.ts
        elif not from_client and p.flags & (SYN | ACK) == SYN | ACK and synack is None:
            synack = p.ts
        elif from_client and synack is not None and p.flags & ACK and not p.flags & SYN:
            conn.tcp_done_ts = p.ts
            return


def _interpret(conn: TlsConnection, client: list[TlsRecord], server: list[TlsRecord]) -> None:
    # The server's first handshake record is always in clear (a ServerHello or a
    # HelloRetryRequest): it says the version, and so which later records are.
    first_server = _messages(server[:1], lambda r: True)
    hello = next((m for m in first_server if m.type == SERVER_HELLO), None)
    tls13 = hello is not None and _negotiated(_server_hello(hello.body)) == 0x0304
    ccs_at = {
        side: next((i for i, r in enumerate(records) if r.type == CHANGE_CIPHER_SPEC), None)
        for side, records in ((True, client), (False, server))
    }

    def in_clear(rec: TlsRecord) -> bool:
        if tls13:
            return True  # TLS 1.3 encrypts as application_data: every handshake record is clear
        records = client if rec.from_client else server
        ccs = ccs_at[rec.from_client]
        return ccs is None or records.index(rec) < ccs

    cmsgs, smsgs = _messages(client, in_clear), _messages(server, in_clear)
    conn.messages = [
        ("c " if m.record.from_client else "s ") + MESSAGE_NAMES.get(m.type, str(m.type))
        for m in sorted(cmsgs + smsgs, key=lambda m: (m.record.ts, not m.record.from_client))
    ]
    ch = next((m for m in cmsgs if m.type == CLIENT_HELLO), None)
    if ch is None:
        return
    conn.client_hello_ts = ch.record.ts
    offered = _client_hello(ch.body)
    conn.sni = _sni(offered.extensions.get(EXT_SERVER_NAME, b""))
    conn.alpn_offered = _alpn_list(offered.extensions.get(EXT_ALPN, b""))
    hellos = [m for m in smsgs if m.type == SERVER_HELLO]
    real = [m for m in hellos if _server_hello(m.body).random != HRR_RANDOM]
    conn.hello_retry = len(real) < len(hellos)
    if not real:
        return
    sh = real[0]
    chosen = _server_hello(sh.body)
    conn.server_hello_ts = sh.record.ts
    conn.version = VERSION_NAMES.get(_negotiated(chosen), hex(_negotiated(chosen)))
    cert = next((m for m in smsgs if m.type == CERTIFICATE), None)
    if tls13:
        _tls13(conn, client, server, chosen, sh.record)
    else:
        _tls12(conn, client, server, offered, chosen, cert, smsgs)
    if cert is not None:
        conn.certificate_in_clear = True
        conn.certificate_bytes = cert.size
        conn.certificates = _chain_length(cert.body)


def _chain_length(body: bytes) -> int:
    """Certificates in a TLS 1.2 Certificate message (3-byte list length, then each with a
    3-byte length)."""
    n, at, end = 0, 3, min(len(body), 3 + int.from_bytes(body[0:3], "big"))
    while at + 3 <= end:
        at += 3 + int.from_bytes(body[at : at + 3], "big")
        n += 1
    return n


def _after(records: list[TlsRecord], rec: TlsRecord | None) -> list[TlsRecord]:
    return [] if rec is None else records[records.index(rec) + 1 :]


def _tls12(conn, client, server, offered: _Hello, chosen: _Hello, cert, smsgs) -> None:
    abbreviated = cert is None and not any(m.type == SERVER_KEY_EXCHANGE for m in smsgs)
    server_ccs = next((r for r in server if r.type == CHANGE_CIPHER_SPEC), None)
    client_ccs = next((r for r in client if r.type == CHANGE_CIPHER_SPEC), None)
    conn.tickets = sum(1 for m in smsgs if m.type == NEW_SESSION_TICKET)
    if abbreviated and server_ccs is not None:
        conn.resumed = True
        conn.resumption = "ticket" if offered.extensions.get(EXT_SESSION_TICKET) else "session id"
    conn.alpn = next(iter(_alpn_list(chosen.extensions.get(EXT_ALPN, b""))), None)
    cfin = next((r for r in _after(client, client_ccs) if r.type == HANDSHAKE), None)
    sfin = next((r for r in _after(server, server_ccs) if r.type == HANDSHAKE), None)
    conn.client_finished_ts = cfin.ts if cfin else None
    conn.server_finished_ts = sfin.ts if sfin else None
    if cfin is None or sfin is None:
        return
    last = max(cfin, sfin, key=lambda r: r.ts)
    _account(conn, client, server, last, post_handshake=0)


def _tls13(conn, client, server, chosen: _Hello, sh: TlsRecord) -> None:
    if EXT_PRE_SHARED_KEY in chosen.extensions:
        conn.resumed, conn.resumption = True, "psk"
    conn.alpn = ALPN_ENCRYPTED
    # 0-RTT: client application_data records sent before the server's first record
    conn.early_data = any(r.type == APPLICATION_DATA and r.ts < server[0].ts for r in client)
    encrypted = [r for r in server if r.type == APPLICATION_DATA]
    if not encrypted:
        return
    flight_start = encrypted[0].ts
    cfin = next((r for r in client if r.type == APPLICATION_DATA and r.ts >= flight_start), None)
    if cfin is None:
        return
    conn.client_finished_ts = cfin.ts
    flight = [r for r in encrypted if r.ts <= cfin.ts]
    conn.server_finished_ts = flight[-1].ts if flight else None
    # the tickets: the server's first records after the client's Finished, of one small size,
    # before a record of another size (the response, or the close_notify alert)
    later = [r for r in server if r.ts > cfin.ts]
    run = 0
    while (
        run < len(later)
        and later[run].type == APPLICATION_DATA
        and later[run].length == later[0].length <= TICKET_RECORD_MAX
    ):
        run += 1
    tickets = run if run < len(later) else 0
    conn.tickets = tickets
    _account(conn, client, server, cfin, post_handshake=tickets)


def _account(conn, client, server, last: TlsRecord, post_handshake: int) -> None:
    """Handshake bytes, flights and round trips up to `last` (the record that ends the
    handshake); application data after it, less the server's first `post_handshake` records
    (TLS 1.3 tickets: handshake bytes too)."""
    conn.handshake_done_ts = last.ts
    every = sorted(client + server, key=lambda r: (r.ts, r.frame))
    start = next(i for i, r in enumerate(every) if r.from_client)
    end = every.index(last)
    flights: list[str] = []
    for rec in every[start : end + 1]:
        side = "c" if rec.from_client else "s"
        if not flights or flights[-1] != side:
            flights.append(side)
    conn.flights = flights
    conn.handshake_round_trips = sum(
        1 for a, b in itertools.pairwise(flights) if a == "c" and b == "s"
    )
    done = set(map(id, every[start : end + 1]))
    # a side's last record, when 19 bytes long, is TLS 1.3's encrypted close_notify
    finals = {id(records[-1]) for records in (client, server) if records}
    skipped = 0
    for rec in every:
        key = "client" if rec.from_client else "server"
        if id(rec) in done:
            conn.handshake_bytes[key] += rec.size
        elif conn.version == "1.3" and id(rec) in finals and rec.length == TLS13_ALERT_LENGTH:
            continue
        elif rec.type == APPLICATION_DATA and rec.ts >= last.ts:
            if not rec.from_client and skipped < post_handshake:
                skipped += 1
                conn.handshake_bytes[key] += rec.size
                continue
            conn.application_bytes[key] += rec.size
            # the server's first byte answers the request: HTTP/2's server speaks first (its
            # SETTINGS), which is not a response
            answered = rec.from_client or conn.first_data_ts["client"] is not None
            if conn.first_data_ts[key] is None and answered:
                conn.first_data_ts[key] = rec.ts


# A whole capture ----------------------------------------------------------------------------


def read_tls(
    path: str | os.PathLike,
    capture: Capture | None = None,
    server_ports: Iterable[int] = (),
) -> list[TlsConnection]:
    """Every TLS connection of a capture, in tcp.stream order. `capture` is lab.capture's
    reading of the same file when the caller has it (else it is read here); `server_ports`
    limits the search to connections with one of these ports (all when empty)."""
    if capture is None:
        capture = read_capture(path)
    ports = frozenset(server_ports)
    streams = split_streams(capture.packets)
    wanted = [
        (i, s)
        for i, s in enumerate(streams)
        if not ports or s[0].sport in ports or s[0].dport in ports
    ]
    frames = [p.frame for _, s in wanted for p in s if p.payload_len]
    payloads = read_payloads(path, frames)
    out = []
    for i, packets in wanted:
        conn = read_connection(i, packets, payloads)
        if conn is not None:
            out.append(conn)
    return out


def summarize(conns: Sequence[TlsConnection]) -> dict[str, Any]:
    """A mode's TLS in a few figures (for analysis.json): how many handshakes of each kind,
    their round trips, and the bytes they cost."""
    full = [c for c in conns if c.full_handshake]
    resumed = [c for c in conns if c.resumed]

    def median(values: list[float]) -> float | None:
        values = sorted(v for v in values if v is not None)
        if not values:
            return None
        mid = len(values) // 2
        return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2

    return {
        "connections": len(conns),
        "versions": sorted({c.version for c in conns if c.version}),
        "full_handshakes": len(full),
        "resumed": len(resumed),
        "round_trips_full": sorted({c.handshake_round_trips for c in full} - {None}),
        "round_trips_resumed": sorted({c.handshake_round_trips for c in resumed} - {None}),
        "certificates_in_clear": sum(1 for c in conns if c.certificate_in_clear),
        "resumed_with_certificate": sum(1 for c in resumed if c.certificate_in_clear),
        "certificate_bytes": sum(c.certificate_bytes or 0 for c in conns),
        "handshake_bytes": {
            side: sum(c.handshake_bytes[side] for c in conns) for side in ("client", "server")
        },
        "server_handshake_bytes_full": median([c.handshake_bytes["server"] for c in full]),
        "server_handshake_bytes_resumed": median([c.handshake_bytes["server"] for c in resumed]),
        "ttfb_median_s": {
            part: median([c.ttfb()[part] for c in conns])
            for part in ("total_s", "tcp_s", "tls_s", "server_s")
        },
        "problems": sorted({c.problem for c in conns if c.problem}),
    }


# Claims (issue 13): each returns (holds, observed, expected, why) for lab.claims to wrap -------


def claim_tls13_saves_a_round_trip(tls12: dict, tls13: dict) -> tuple:
    """ "TLS 1.3 needs one round trip less than TLS 1.2 per new connection", from two modes'
    `summarize` (full handshakes only). holds is None when either mode made none."""
    a, b = tls12.get("round_trips_full") or [], tls13.get("round_trips_full") or []
    observed = f"full handshakes: TLS 1.2 {a or '-'} round trips, TLS 1.3 {b or '-'}"
    expected = "TLS 1.2 2, TLS 1.3 1"
    if not a or not b:
        return None, observed, expected, "a mode made no full handshake the capture could read"
    if len(a) == len(b) == 1 and a[0] - b[0] == 1:
        why = "each new connection waited one round trip less for the server's Finished"
        return True, observed, expected, why
    return False, observed, expected, "the handshakes' flights do not differ by one round trip"


def claim_resumption_skips_the_certificate(summary: dict) -> tuple:
    """ "Resumption skips the certificate": every resumed handshake of a mode sent no
    certificate (in clear: TLS 1.2) and a server flight under half a full one's (TLS 1.3,
    where the certificate is encrypted)."""
    resumed, full = summary.get("resumed", 0), summary.get("full_handshakes", 0)
    bytes_full = summary.get("server_handshake_bytes_full")
    bytes_resumed = summary.get("server_handshake_bytes_resumed")
    observed = (
        f"{resumed} resumed, {full} full; server handshake bytes (median): resumed "
        f"{bytes_resumed if bytes_resumed is not None else '-'}, full "
        f"{bytes_full if bytes_full is not None else '-'}"
    )
    expected = "resumed handshakes without the certificate"
    if not resumed:
        why = "no connection resumed (connections opened at once have no session to offer)"
        return None, observed, expected, why
    if summary.get("resumed_with_certificate"):
        return False, observed, expected, "a resumed handshake sent a certificate"
    if bytes_full is not None and bytes_resumed is not None and bytes_resumed * 2 > bytes_full:
        return False, observed, expected, "the resumed flights are not much smaller than full ones"
    return True, observed, expected, "the resumed handshakes sent no certificate chain"


# The key log ------------------------------------------------------------------------------------

KEYLOG_EVENT = "tls_keylog"  # client/tls.py's: a client log record holding one key log line
_KEYLOG_LABELS = frozenset(
    {
        "CLIENT_RANDOM",
        "CLIENT_EARLY_TRAFFIC_SECRET",
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
        "EXPORTER_SECRET",
        "EARLY_EXPORTER_SECRET",
    }
)


def keylog_text(records: Iterable[dict]) -> str:
    """An SSLKEYLOGFILE (Wireshark's "(Pre)-Master-Secret log filename") from a client log's
    records: each `{"event": "tls_keylog", "line": "LABEL <hex> <hex>"}`, in order; lines of
    another shape are left out, so the file is only ever what Wireshark reads."""
    out = []
    for record in records:
        if record.get("event") != KEYLOG_EVENT:
            continue
        parts = str(record.get("line", "")).split()
        hexes = parts[1:]
        if len(parts) == 3 and parts[0] in _KEYLOG_LABELS and all(_is_hex(h) for h in hexes):
            out.append(" ".join(parts))
    return "".join(line + "\n" for line in out)


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return len(text) % 2 == 0
