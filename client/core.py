"""The client's two modes on top of `Session`: every request gets one record."""

from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from client import tls as client_tls
from client.log import Output
from client.plan import Item, ResponseDecoder, checksum, numbered, plan_for, share
from client.session import ClientError, Session
from wire import protocols
from wire.payload import preview


@dataclass
class ClientConfig:
    host: str
    port: int
    items: list[Item]
    protocol: str = protocols.DEFAULT
    framing: str = "length"
    mode: str = "non-persistent"
    parallel: int = 1
    repeat: int = 1  # the items this many times over (load runs)
    pipeline: bool = False
    connect_timeout: float = 5.0
    timeout: float = 10.0
    tls: str | None = None  # "1.2" or "1.3": every connection over exactly that TLS version
    resume: bool = False  # TLS: offer the first connection's session on later ones
    ca_pem: str | None = None  # the CA to trust (None: client.tls.CA_ENV in the environment)


@dataclass
class Record:
    conn: int
    request: str
    request_id: int = 0
    local_port: int | None = None
    t_connect_start: float | None = None
    t_connected: float | None = None
    t_sent: float | None = None
    t_first_byte: float | None = None
    t_done: float | None = None
    bytes_sent: int = 0
    bytes_received: int = 0
    ok: bool = False
    error: str | None = None
    crc32: int | None = None  # of the response's body (http) or echoed bytes, as received
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        return {"event": "request", **data, **extra}


@dataclass
class Result:
    records: list[Record]
    summary: dict[str, Any]

    @property
    def ok(self) -> bool:
        return bool(self.records) and all(r.ok for r in self.records)

    @property
    def first_error(self) -> str | None:
        return next((r.error for r in self.records if r.error), None)


class Client:
    def __init__(self, config: ClientConfig, out: Output) -> None:
        self.cfg = config
        self.out = out
        self.persistent = config.mode == "persistent"
        self.proto = plan_for(
            config.protocol, config.framing, self.persistent, f"{config.host}:{config.port}"
        )
        self.raw = self.proto.raw
        if self.proto.multiplexed:
            # `h2` takes 40-50 ms to import: before the clock starts, not between two packets
            from client import http2  # noqa: F401
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._records: list[Record] = []
        self.sessions: client_tls.Sessions | None = None
        self.keylog: client_tls.KeyLog | None = None
        # resume with keep-alive connections: the first reads a response, then the others open
        self._session_ready = threading.Event()
        self._wait_for_session = False
        if config.tls:
            self._setup_tls(config, out)

    def _setup_tls(self, config: ClientConfig, out: Output) -> None:
        """The context (raises client_tls.TlsSetupError), then the key log into the log."""
        alpn = (protocols.get(config.protocol).alpn or "http/1.1",)
        if config.ca_pem is not None:
            context = client_tls.client_context(config.tls or "", config.ca_pem, alpn=alpn)
        else:
            context = client_tls.context_from_environment(config.tls or "", alpn=alpn)
        self.keylog = client_tls.KeyLog(lambda line: out.record(client_tls.keylog_record(line)))
        context.keylog_filename = self.keylog.path
        self.sessions = client_tls.Sessions(context, config.resume, server_name=config.host)

    def run(self) -> Result:
        t_start = time.time()
        items = numbered(self.cfg.items, self.cfg.repeat)
        if self.persistent:
            groups = share(items, self.cfg.parallel)
            work = self._multiplexed if self.proto.multiplexed else self._persistent
            workers, jobs, fn = len(groups), groups, self._guard(work)
            # Resumption needs a session, which the first connection has once it has read a
            # response: the others open then (lab.model's _open_connections does the same).
            self._wait_for_session = self.cfg.resume and self.sessions is not None and workers > 1
        else:
            workers = min(self.cfg.parallel, len(items))
            jobs, fn = [[i] for i in items], self._guard(self._non_persistent)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            list(pool.map(fn, jobs))
        t_end = time.time()
        if self.keylog is not None:
            self.keylog.close()  # every key log line is in the log before the summary
        records = self._records
        ok = sum(r.ok for r in records)
        summary = {
            "event": "summary",
            "mode": self.cfg.mode,
            "protocol": self.cfg.protocol,
            "framing": self.cfg.framing,
            "parallel": self.cfg.parallel,
            "repeat": self.cfg.repeat,
            "pipeline": self.cfg.pipeline,
            "requests": len(records),
            "ok": ok,
            "failed": len(records) - ok,
            "connections": len({r.conn for r in records}),
            "local_ports": sorted({r.local_port for r in records if r.local_port}),
            "bytes_sent": sum(r.bytes_sent for r in records),
            "bytes_received": sum(r.bytes_received for r in records),
            "t_start": t_start,
            "t_end": t_end,
            "elapsed_s": t_end - t_start,
            "error": next((r.error for r in records if r.error), None),
        }
        self.out.record(summary)
        return Result(records, summary)

    # Plumbing ----------------------------------------------------------------------------

    def _guard(self, fn: Any) -> Any:
        """Run one connection's work; whatever happens, every request ends with a record."""

        def run(items: list[Item]) -> None:
            session = Session(
                self.cfg.host,
                self.cfg.port,
                next(self._ids),
                self.cfg.connect_timeout,
                self.cfg.timeout,
                self.sessions,
            )
            records = [Record(session.id, i.name, i.request_id) for i in items]
            try:
                fn(session, items, records)
            except ClientError as exc:
                self._fail(session, records, str(exc))
            except Exception as exc:  # a bug still gives a record and an exit 1, not a hang
                self._fail(session, records, f"internal error: {type(exc).__name__}: {exc}")
            finally:
                if session.id == 1:
                    self._session_ready.set()  # a first connection that failed frees the others
                session.close()
                if session.sock is not None:
                    self.out.say(f"Connection closed ID {session.id}")
                self._finish(session, records)

        return run

    def _fail(self, session: Session, records: list[Record], reason: str) -> None:
        self.out.say(f"Error for Client {session.id}: {reason}")
        # Requests without a complete response fail; if all had one, the failure came at the
        # close (no FIN, extra bytes), which the last request on the connection owns.
        unfinished = [r for r in records if r.t_done is None] or records[-1:]
        for rec in unfinished:
            rec.ok = False
            rec.error = rec.error or reason

    def _finish(self, session: Session, records: list[Record]) -> None:
        share_sent = _split(session.bytes_sent, len(records))
        share_recv = _split(session.bytes_received, len(records))
        with self._lock:
            for rec, sent, recv in zip(records, share_sent, share_recv, strict=True):
                rec.local_port = session.local_port
                rec.t_connect_start = session.t_connect_start
                rec.t_connected = session.t_connected
                if session.tls_info is not None:
                    rec.extra["t_tls_done"] = session.t_tls_done
                    rec.extra["tls"] = session.tls_info
                if not rec.bytes_sent and not rec.bytes_received:
                    rec.bytes_sent, rec.bytes_received = sent, recv
                self._records.append(rec)
                self.out.record(rec.as_json())

    def _connect(self, session: Session) -> None:
        if self._wait_for_session and session.id != 1:
            self._session_ready.wait(self.cfg.connect_timeout + self.cfg.timeout)
        session.connect()
        self.out.say(f"Socket ID {session.id} successful (local port {session.local_port})")

    def _label(self, item: Item) -> str:
        return self.proto.label(item)

    def _show(self, session: Session, response: object) -> None:
        self.out.say(f"Response from server (Client {session.id}): {self.proto.show(response)}")

    def _read(self, session: Session, decoder: ResponseDecoder, n: int) -> list[Any]:
        """Read until `n` more responses are complete; a FIN before that is a short response."""
        got: list[Any] = []
        while len(got) < n:
            data = session.recv()
            if not data:
                partial = f", {decoder.pending} bytes of the next" if decoder.pending else ""
                raise ClientError(
                    f"short response: {session.where} closed the connection after "
                    f"{len(got)} of {n} responses{partial}"
                )
            try:
                got += decoder.feed(data)
            except self.proto.decode_errors as exc:
                raise ClientError(f"bad response from {session.where}: {exc}") from None
        return got

    def _expect_fin(self, session: Session, decoder: ResponseDecoder | None) -> float:
        data = session.recv()
        if data:
            raise ClientError(
                f"{session.where} sent {len(data)} unexpected bytes after the last response"
            )
        self.out.say(f"Socket ID {session.id} stops receiving data (server FIN)")
        return time.time()

    def _settle(
        self,
        session: Session,
        item: Item,
        rec: Record,
        response: object,
        start: int,
        length: int,
        show: bool = True,
    ) -> None:
        rec.t_first_byte = session.time_of_byte(start)
        rec.t_done = session.time_of_byte(start + length - 1) if length else time.time()
        if rec.t_sent and rec.t_first_byte and rec.t_first_byte < rec.t_sent:
            # A reply needs the whole request, so the kernel had it before the first reply
            # byte: the pipelining writer thread was merely descheduled before reading the clock.
            rec.t_sent = rec.t_first_byte
        rec.bytes_received = length
        if show:
            self._show(session, response)
        rec.crc32 = checksum(self.proto.body(response))
        rec.error = self.proto.check(item, response)
        rec.ok = rec.error is None
        if self.sessions is not None and self.sessions.resume and not self._session_ready.is_set():
            session.keep_session()
            self._session_ready.set()

    # Non-persistent: one connection per request, the server closes first ----------------

    def _non_persistent(self, session: Session, items: list[Item], records: list[Record]) -> None:
        (item,), (rec,) = items, records
        self._connect(session)
        request = item.payload if self.raw else self.proto.request(item)
        rec.t_sent = session.send(request)
        rec.bytes_sent = len(request)
        self.out.say(f"{self._label(item)} sent by Client {session.id}")
        if self.raw:
            # No boundaries: our half-close ends the message (the server reads up to it), and
            # the reply is whatever comes before the server's FIN.
            session.shutdown_write()
            self.out.say(f"Socket closing initiated for Client {session.id}")
            reply = self._read_to_eof(
                session, len(item.payload), "Socket ID {id} stops receiving data (server FIN)"
            )
            rec.extra["t_fin"] = time.time()
            self._settle(session, item, rec, reply, 0, len(reply), show=False)
            return
        decoder = self.proto.decoder(items)
        ((response, length),) = self._read(session, decoder, 1)
        self._settle(session, item, rec, response, 0, length)
        rec.extra["t_fin"] = self._expect_fin(session, decoder)

    def _read_to_eof(self, session: Session, expected: int, fin_text: str) -> bytes:
        chunks = []
        total = 0
        while True:
            data = session.recv()
            if not data:
                self.out.say(fin_text.format(id=session.id))
                return b"".join(chunks)
            self.out.say(f"Response from server (Client {session.id}): {preview(data)}")
            chunks.append(data)
            total += len(data)
            if total > 2 * expected + 65536:
                raise ClientError(f"{session.where} sent {total} bytes, expected {expected}")

    # Persistent: one connection for many requests, the client closes first --------------

    def _persistent(self, session: Session, items: list[Item], records: list[Record]) -> None:
        self._connect(session)
        if self.raw:
            self._raw_persistent(session, items, records)
            return
        decoder = self.proto.decoder(items)
        offset = 0
        if self.cfg.pipeline:
            writer = self._start_writer(session, items, records)
            responses = self._read(session, decoder, len(items))
            writer.join(self.cfg.timeout)
            if writer.error:
                raise ClientError(writer.error)
            for item, rec, (response, length) in zip(items, records, responses, strict=False):
                self._settle(session, item, rec, response, offset, length)
                offset += length
        else:
            for item, rec in zip(items, records, strict=True):
                request = self.proto.request(item)
                rec.t_sent = session.send(request)
                rec.bytes_sent = len(request)
                self.out.say(f"{self._label(item)} sent by Client {session.id}")
                responses = self._read(session, decoder, 1)
                if len(responses) > 1:
                    raise ClientError(f"{session.where} sent more responses than requests")
                ((response, length),) = responses
                self._settle(session, item, rec, response, offset, length)
                offset += length
        self._close_first(session)

    # HTTP/2: one connection, its requests all at once as streams, the client closes first --

    def _multiplexed(self, session: Session, items: list[Item], records: list[Record]) -> None:
        from client import http2  # the `h2` library: only HTTP/2 runs need it

        self._connect(session)
        if session.tls_info is not None and session.tls_info.get("alpn") != "h2":
            raise ClientError(f"{session.where} did not choose h2 by ALPN (it has no HTTP/2)")
        paths = [self.proto.path(item) for item in items]  # type: ignore[attr-defined]
        for item in items:
            self.out.say(f"{self._label(item)} sent by Client {session.id}")
        scheme = "https" if session.tls is not None else "http"
        sent_before = session.bytes_sent
        try:
            responses = http2.exchange(session.send, session.recv, session.where, paths, scheme)
        except http2.Http2Error as exc:
            raise ClientError(f"{session.where}: {exc}") from None
        for item, rec, response in zip(items, records, responses, strict=True):
            rec.t_sent = response.t_sent
            rec.t_first_byte = response.t_first_byte
            rec.t_done = response.t_done
            rec.bytes_sent = (session.bytes_sent - sent_before) // len(items)
            rec.bytes_received = response.body_bytes
            rec.extra["stream"] = response.stream_id
            self._show(session, response)
            rec.crc32 = checksum(self.proto.body(response))
            rec.error = self.proto.check(item, response)
            rec.ok = rec.error is None
        self._close_first(session)

    def _close_first(self, session: Session) -> None:
        session.shutdown_write()
        self.out.say(f"Socket closing initiated for Client {session.id}")
        data = session.recv()
        if data:
            raise ClientError(f"{session.where} sent {len(data)} bytes nobody asked for")
        self.out.say(f"Server stopped sending for Client {session.id}")

    def _start_writer(self, session: Session, items: list[Item], records: list[Record]) -> Any:
        # Writes from their own thread, so large pipelined requests cannot deadlock against a
        # server that is blocked writing responses we have not read yet.
        def write() -> None:
            try:
                for item, rec in zip(items, records, strict=True):
                    request = self.proto.request(item)
                    rec.t_sent = session.send(request)
                    rec.bytes_sent = len(request)
                    self.out.say(f"{self._label(item)} sent by Client {session.id}")
            except ClientError as exc:
                thread.error = str(exc)

        thread: Any = threading.Thread(target=write, name=f"writer-{session.id}")
        thread.error = None
        thread.start()
        return thread

    def _raw_persistent(self, session: Session, items: list[Item], records: list[Record]) -> None:
        """The article's persistent case: write every message, half-close, read until EOF."""
        for item, rec in zip(items, records, strict=True):
            rec.t_sent = session.send(item.payload)
            rec.bytes_sent = len(item.payload)
            self.out.say(f"{self._label(item)} sent by Client {session.id}")
        session.shutdown_write()
        self.out.say(f"Socket closing initiated for Client {session.id}")
        expected = b"".join(i.payload for i in items)
        reply = self._read_to_eof(session, len(expected), "Server stopped sending for Client {id}")
        whole = reply == expected
        offset = 0
        for item, rec in zip(items, records, strict=True):
            piece = reply[offset : offset + len(item.payload)]
            rec.t_first_byte = session.time_of_byte(offset)
            rec.t_done = session.time_of_byte(offset + len(item.payload) - 1)
            rec.bytes_received = len(piece)
            rec.crc32 = checksum(piece)
            rec.ok = whole
            if not whole:
                rec.error = (
                    f"reply differs from the concatenated messages "
                    f"({len(reply)} bytes back, {len(expected)} sent)"
                )
            offset += len(item.payload)


def _split(total: int, n: int) -> list[int]:
    return [total // n + (1 if i < total % n else 0) for i in range(n)] if n else []


def run(config: ClientConfig, out: Output) -> Result:
    return Client(config, out).run()
