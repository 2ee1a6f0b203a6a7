"""The model: how long a page should take per mode, from RTT, rate and the resource sizes.

Pure (no I/O). A small discrete-event simulation, segment by segment, of what the lab's hosts do:
TCP slow start on each connection (Linux's Reno, which the lab pins: see lab/hosts.py) and one
bottleneck queue that every connection's data shares. All times are on the client's clock;
`rtt` is the whole round trip (the configured delay plus the path's base RTT) and d = rtt/2 the
one-way delay, the same in both directions (the shapers hold half the RTT at each end).

The path:

- Handshake: one round trip (SYN -> SYN-ACK -> ACK); the request leaves with the final ACK and
  reaches the server d later. Requests, ACKs and the handshake are too small to queue.
- Data, server -> client: every segment carries `mss` payload bytes (1448: a 1500-byte MTU less
  20 IP, 20 TCP and 12 of timestamps), the last of a response fewer. With a rate R, segments
  leave through one FIFO token bucket (tc's tbf: the shapers' egress qdisc): a frame of
  payload + 66 bytes (14 Ethernet + 20 IP + 20 TCP + 12 timestamps, what tbf counts) leaves
  when the bucket holds its size; the bucket fills at R/8 bytes per second up to `burst_bytes`
  (tbf's burst: shaper.rules.tbf_burst, 2 ms at the rate). So back-to-back frames leave
  (payload + 66) x 8 / R apart, from every connection in the order they were sent: the link is
  shared the way a FIFO shares it, and a connection that is waiting for ACKs leaves it to the
  others. A segment reaches the client d after it leaves; its ACK reaches the server d later.
- No loss, no receive-window limit.

The programs (`ProgramCosts`, measured on the run by lab.costs; all zero by default): on a
bridge whose round trip is a few hundredths of a millisecond the page time is the programs' own
work, so the model takes six measured times and puts each where the programs spend it:

- `setup_s`, per connection opened later (the first ones: `opening_s`): after the handshake,
  before the request leaves the client
  (connect() returning, the client's log line, building the request);
- `service_s`, per request: the time the request takes beyond what the network gives it
  (the server reading, parsing, logging and writing the response, the client reading it):
  a response is written `service_s` after its request reached the server (the requests of a
  pipelined batch one `service_s` after another). Each connection pays it on its own: measured
  in the same mode, the time a request waited for another connection's (the programs' threads
  take turns on one interpreter lock) is already in it;
- `turnaround_s`, per request after the first on a keep-alive connection: from a response's
  last byte to the next request leaving;
- `reconnect_s`, per non-persistent connection after a worker's first: from a response's last
  byte to the next connection's SYN (the client waits for the server's FIN, closes, looks the
  server's name up and opens a socket);
- `opening_s` and `stagger_s`: the connections a mode opens at once (its first `parallel`) do
  not send their first requests at once: the client starts a thread and looks the name up for
  each. The first request leaves `opening_s` after the first handshake, the c-th connection's
  c x `stagger_s` later (its SYN c x `stagger_s` after the first SYN; `setup_s` is for the
  connections opened later).

The other costs each connection pays on its own. All are measured in the same mode (on a busy
machine the programs are slower, and the model should say so, not hide it).

The sender (Linux's slow start with no loss, so ssthresh never falls):

- A new connection starts with cwnd = `init_cwnd` segments (10, RFC 6928) and sends while the
  segments in flight are fewer than cwnd.
- Each ACKed segment adds one segment to cwnd (slow start counts bytes acked: RFC 3465, so the
  delayed ACKs' spacing does not slow it), but only while the connection is cwnd-limited
  (Linux's tcp_is_cwnd_limited: it filled cwnd in this window, or cwnd < 2 x the most segments
  it had in flight): a window that a small response does not use does not grow.
- The window is kept between the requests of a keep-alive connection. Linux restarts it after an
  idle period longer than the RTO (tcp_slow_start_after_idle = 1; RTO = srtt + 200 ms of
  minimum variance): cwnd halves per RTO idle, down to init_cwnd. Back-to-back requests idle
  about one rtt, so the window is kept on these pages.

Closed forms this reduces to (no rate, no burst): a response of n segments on a fresh
connection takes the flights 10, 20, 40, ... so f flights with 10 x (2^f - 1) >= n, and

    non-persistent, per request:   T = rtt (handshake) + rtt + (f - 1) x rtt
    keep-alive, one connection:    T = rtt + sum over requests of (1 + extra flights) x rtt,
                                   the window carrying over from one response to the next
    pipelined:                     T = rtt + the flights for all the bytes as one stream

With a rate R the time of the bytes themselves adds (for bytes queued behind each other on the
link, (payload + 66 x segments) x 8 / R); `Prediction.requests` has each request's times.

Modes as the client runs them (client/core.py): non-persistent, k workers take requests from
one queue in order, and a connection's response is complete when its last byte is in (the
server's FIN rides with it) and the worker's next connection starts then; persistent,
requests are dealt round-robin to min(k, n) connections (request i on connection i mod k), one
after another on each, or all at once after the handshake when pipelined.

Hand checks: 10 small responses at 50 ms, sequential: non-persistent 10 x 2 rtt = 1.0 s;
keep-alive rtt + 10 rtt = 0.55 s; pipelined 2 rtt = 0.1 s.

TLS (`TlsCost`): a new connection's ClientHello leaves with TCP's final ACK; the server's first
flight (ServerHello and, in a full handshake, the certificate chain: `flight_bytes`) goes
through the link like data, so at a rate its bytes take their time; the client's request
leaves once the handshake's remaining round trips are done:

    TLS 1.2, full:     2 round trips (the client's Finished, then the server's, then data)
    TLS 1.2, resumed:  1 (the server's Finished comes first; the client's goes with the request)
    TLS 1.3, full:     1
    TLS 1.3, resumed:  1 (a ticket saves the certificate, not a round trip: the standard
                       library has no 0-RTT, see client/tls.py)

So with no rate a new connection costs (1 + TLS's) x rtt before its request, as
`handshake_rtts` = 1 + TLS's would say. With `resume`, a connection resumes when the client
holds a session as it opens it: the client keeps the session of the first connection to read
a whole response (client/tls.py), so the connections a mode opens at once make full
handshakes and those opened later resume; keep-alive connections with `resume` do not open at
once: the first reads a response, then the others open (`stagger_s` apart, each paying
`setup_s`) and resume. The handshake's records do not use the data's
congestion window (a flight of a few KB, acknowledged before the first response).

HTTP/2 (`multiplexed`): one connection, every request sent at once after the handshake, the
responses interleaved on one stream of bytes: for the page's time, pipelining on one
connection (the responses' own order differs, not when the last byte is in).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lab.tcp import DEFAULT_MSS, INITIAL_WINDOW
from wire import protocols

MSS = DEFAULT_MSS  # payload bytes per segment: 1500 MTU - 20 IP - 20 TCP - 12 timestamps
INIT_CWND = INITIAL_WINDOW  # segments (RFC 6928; Linux's TCP_INIT_CWND)
FRAME_OVERHEAD = 66  # bytes tbf counts per segment besides the payload: 14 + 20 + 20 + 12
RTO_MIN_S = 0.2  # Linux's TCP_RTO_MIN: the RTO is srtt plus at least this


@dataclass(frozen=True)
class ProgramCosts:
    """What the lab's own programs add to the network's time, in seconds (see the docstring)."""

    setup_s: float = 0.0  # per new connection: handshake done -> the request leaves
    service_s: float = 0.0  # per request: beyond the network's own time for it
    turnaround_s: float = 0.0  # keep-alive: a response's last byte -> the next request leaves
    reconnect_s: float = 0.0  # non-persistent: a response's last byte -> the next SYN
    stagger_s: float = 0.0  # between the first requests of the connections opened at once
    opening_s: float = 0.0  # connections opened at once: first handshake -> first request

    def __post_init__(self) -> None:
        if min(self.__dict__.values()) < 0:
            raise ValueError("program costs are times: none may be negative")

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


NO_COSTS = ProgramCosts()

# Round trips of the TLS handshake before the request, by (version, resumed)
TLS_ROUND_TRIPS = {("1.2", False): 2, ("1.2", True): 1, ("1.3", False): 1, ("1.3", True): 1}
# The server's first flight in TCP payload bytes, as lab.tls measured it on the recordings in
# tests/data/tls (an RSA 2048 leaf from lab.tlsca): TLS 1.2 ServerHello, Certificate,
# ServerKeyExchange, ServerHelloDone; TLS 1.3 ServerHello, ChangeCipherSpec and the encrypted
# EncryptedExtensions, Certificate, CertificateVerify, Finished; resumed: no certificate.
TLS_FLIGHT_BYTES = {
    ("1.2", False): 1298,
    ("1.2", True): 156,
    ("1.3", False): 1455,
    ("1.3", True): 256,
}


@dataclass(frozen=True)
class TlsCost:
    """What TLS adds to each new connection (see the docstring). `flight_bytes` overrides the
    server's first flight per (version, resumed), e.g. with what lab.tls measured on a run."""

    version: str
    resume: bool = False
    flight_bytes: Mapping[tuple[str, bool], int] | None = None

    def __post_init__(self) -> None:
        if (self.version, False) not in TLS_ROUND_TRIPS:
            raise ValueError(f"unknown TLS version {self.version!r} (choose from 1.2, 1.3)")

    def round_trips(self, resumed: bool) -> int:
        return TLS_ROUND_TRIPS[(self.version, resumed)]

    def flight(self, resumed: bool) -> int:
        table = self.flight_bytes if self.flight_bytes is not None else TLS_FLIGHT_BYTES
        return table.get((self.version, resumed), TLS_FLIGHT_BYTES[(self.version, resumed)])


@dataclass(frozen=True)
class RequestTiming:
    """One request in the model: which connection carried it and when it finished."""

    index: int
    conn: int
    start_s: float  # the request left the client (after the handshake, for a new connection)
    done_s: float  # its last byte reached the client
    flights: int  # server flights (round trips of data) its bytes were sent in


@dataclass(frozen=True)
class Prediction:
    total_s: float  # page time on the client: its first SYN out to the last byte in
    at_server_s: float  # the same as the server's capture sees it (lab's page_time_s): see below
    requests: tuple[RequestTiming, ...]
    connections: int
    handshakes: int
    flights: int  # data flights over all connections
    rtt_s: float
    rate_bps: float | None
    costs: ProgramCosts = NO_COSTS
    mss: int = MSS  # payload bytes per full segment the model sent
    tls_full: int = 0  # TLS handshakes the model made in full
    tls_resumed: int = 0  # and resumed

    def as_dict(self) -> dict[str, Any]:
        extra = {"tls_full": self.tls_full, "tls_resumed": self.tls_resumed}
        return {
            **(extra if self.tls_full or self.tls_resumed else {}),
            "total_s": self.total_s,
            "at_server_s": self.at_server_s,
            "connections": self.connections,
            "handshakes": self.handshakes,
            "flights": self.flights,
            "rtt_s": self.rtt_s,
            "rate_bps": self.rate_bps,
            "mss": self.mss,
            "costs": self.costs.as_dict(),
            "requests": [r.__dict__ for r in self.requests],
        }


class _Events:
    """A clock and a queue of callbacks; ties run in the order they were scheduled."""

    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()

    def at(self, t: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (t, next(self._seq), fn))

    def run(self) -> None:
        while self._heap:
            self.now, _, fn = heapq.heappop(self._heap)
            fn()


class _Bucket:
    """tbf: a frame goes when the bucket holds its size; the bucket starts full."""

    def __init__(self, rate_bps: float, burst_bytes: float) -> None:
        self.rate = rate_bps / 8.0  # bytes per second
        self.cap = burst_bytes
        self.tokens = burst_bytes
        self.t = 0.0

    def depart(self, t: float, size: int) -> float:
        t = max(t, self.t)  # not before the frame ahead of it
        tokens = min(self.cap, self.tokens + (t - self.t) * self.rate)
        if tokens < size:
            t += (size - tokens) / self.rate
            tokens = size
        self.tokens = tokens - size
        self.t = t
        return t


@dataclass
class _Path:
    events: _Events
    one_way: float
    mss: int
    init_cwnd: int
    rto: float
    bucket: _Bucket | None
    handshake_rtts: int = 1  # TCP's, plus the protocol's own
    costs: ProgramCosts = NO_COSTS
    tls: TlsCost | None = None
    session_at: float | None = None  # when the client first held a TLS session to resume
    on_session: list[Callable[[], None]] = field(default_factory=list)  # run at session_at
    tls_handshakes: dict[bool, int] = field(default_factory=lambda: {False: 0, True: 0})
    flights: set[tuple[int, int]] = field(default_factory=set)  # (conn, round) pairs
    # Segments waiting for the link, per connection, in round-robin order of the connections.
    backlog: dict[int, list[tuple[int, Callable[[float], None]]]] = field(default_factory=dict)
    busy: bool = False

    def serve(self, conn: _Conn, sizes: list[int]) -> None:
        """Requests that reach the server now on one connection: each response is written
        `service_s` after the one before it (the connection's thread serves them in turn)."""
        t = self.events.now
        for size in sizes:
            t += self.costs.service_s
            self.events.at(t, lambda size=size: conn.write(size))

    def send(self, conn: int, payload: int, on_departure: Callable[[float], None]) -> None:
        """Hand a segment to the link; `on_departure(t)` when it leaves for the client."""
        if self.bucket is None:
            on_departure(self.events.now)
            return
        self.backlog.setdefault(conn, []).append((payload, on_departure))
        if not self.busy:
            self.busy = True
            self._next()

    def _next(self) -> None:
        # The connections with segments waiting take turns, one segment each (TSQ keeps about
        # two packets per socket in tbf's FIFO, so a big window cannot crowd the others out).
        if not self.backlog:
            self.busy = False
            return
        conn = next(iter(self.backlog))
        queue = self.backlog.pop(conn)
        payload, on_departure = queue.pop(0)
        if queue:
            self.backlog[conn] = queue  # to the back of the round
        assert self.bucket is not None
        t = self.bucket.depart(self.events.now, payload + FRAME_OVERHEAD)
        self.events.at(t, lambda: (on_departure(t), self._next()))


class _Conn:
    """One connection's server sender and client receiver."""

    def __init__(self, path: _Path, conn_id: int, on_bytes: Callable[[int], None]) -> None:
        self.path = path
        self.id = conn_id
        self.on_bytes = on_bytes  # the client's receive count, after each segment arrives
        self.cwnd = path.init_cwnd
        self.written = 0  # bytes the server application has written
        self.snd_nxt = 0
        self.in_flight: list[int] = []  # each unacked segment's round
        self.received = 0
        self.round = 0  # round of the last segment acked
        self.is_cwnd_limited = False
        self.max_packets_out = 0
        self.cwnd_usage_seq = 0
        self.snd_una = 0
        self.last_send = 0.0
        self.rounds_of: dict[int, int] = {}  # end offset of a segment -> its round

    def write(self, nbytes: int) -> None:
        """The server writes a response (at events.now)."""
        self.written += nbytes
        self._send()

    def _send(self) -> None:
        ev, path = self.path.events, self.path
        now = ev.now
        if self.snd_nxt < self.written and not self.in_flight and now - self.last_send > path.rto:
            restart = min(path.init_cwnd, self.cwnd)  # tcp_cwnd_restart after an idle RTO
            idle = now - self.last_send - path.rto
            while idle > 0 and self.cwnd > restart:
                self.cwnd //= 2
                idle -= path.rto
            self.cwnd = max(self.cwnd, restart)
        sent = 0
        while len(self.in_flight) < self.cwnd and self.snd_nxt < self.written:
            size = min(path.mss, self.written - self.snd_nxt)
            self.snd_nxt += size
            rnd = self.round + 1
            self.in_flight.append(rnd)
            path.flights.add((self.id, rnd))
            end = self.snd_nxt
            self.rounds_of[end] = rnd
            path.send(self.id, size, lambda t, size=size, end=end: self._leave(t, size, end))
            sent += 1
        if sent:
            self.last_send = now
        limited = len(self.in_flight) >= self.cwnd
        # tcp_cwnd_validate: remember, per window, whether cwnd was filled or how much was used
        if (sent or limited) and (
            self.snd_una >= self.cwnd_usage_seq
            or limited
            or (not self.is_cwnd_limited and len(self.in_flight) > self.max_packets_out)
        ):
            self.is_cwnd_limited = limited
            self.max_packets_out = len(self.in_flight)
            self.cwnd_usage_seq = self.snd_nxt

    def _leave(self, t: float, size: int, end: int) -> None:
        self.path.events.at(t + self.path.one_way, lambda: self._arrive(size, end))

    def _arrive(self, size: int, end: int) -> None:
        self.received += size
        ev = self.path.events
        ev.at(ev.now + self.path.one_way, lambda: self._ack(end))
        self.on_bytes(self.received)

    def _ack(self, end: int) -> None:
        self.round = self.in_flight.pop(0)
        self.snd_una = end
        if self.is_cwnd_limited or self.cwnd < 2 * self.max_packets_out:
            self.cwnd += 1  # slow start: one segment per segment acked
        self._send()


def _ignore(received: int) -> None:
    pass


_Fetch = Callable[[_Conn, list[int], Callable[[], None]], None]  # a request (or batch), then


def _one_after_another(
    path: _Path,
    fetch: _Fetch,
    conn: _Conn,
    groups: list[list[int]],
) -> Callable[[], None]:
    """A keep-alive connection's loop: the next request (or batch) once the last is in and the
    client has turned around."""

    def first() -> None:
        fetch(conn, groups.pop(0), step)

    def step() -> None:
        if groups:
            path.events.at(path.events.now + path.costs.turnaround_s, first)

    return first


def _handshake_then(path: _Path, fn: Callable[[], None], setup: float, conn: int = -1) -> None:
    """A new connection: the handshake's round trips, then the client's setup, then `fn`."""
    events, rtt = path.events, 2 * path.one_way
    if path.tls is None:
        events.at(events.now + rtt * path.handshake_rtts + setup, fn)
        return
    tls = path.tls
    resumed = tls.resume and path.session_at is not None and path.session_at <= events.now
    path.tls_handshakes[resumed] += 1
    rest = tls.round_trips(resumed) - 1  # round trips after the server's first flight
    flight = tls.flight(resumed)
    segments = max(1, -(-flight // path.mss))
    left = [segments]

    def flight_in(t: float) -> None:  # a segment of the server's flight left the server
        left[0] -= 1
        if not left[0]:
            events.at(t + path.one_way + rest * rtt + setup, fn)

    def server_answers() -> None:  # the ClientHello (with TCP's final ACK) reached the server
        for i in range(segments):
            size = min(path.mss, flight - i * path.mss) if flight else 0
            path.send(conn, size, flight_in)

    # the ClientHello leaves with TCP's final ACK, one round trip (and any other protocol
    # handshake's) after the SYN, and reaches the server a one-way delay later
    events.at(events.now + rtt * path.handshake_rtts + path.one_way, server_answers)


def _check_inputs(persistent, parallel, pipeline, rtt_s, rate_bps, mss, init_cwnd) -> None:
    if pipeline and not persistent:
        raise ValueError("pipelining needs a persistent connection")
    if parallel < 1 or rtt_s < 0 or (rate_bps is not None and rate_bps <= 0) or mss < 1:
        raise ValueError("parallel >= 1, rtt >= 0, rate > 0 and mss >= 1 are required")
    if init_cwnd < 1:
        raise ValueError("init_cwnd >= 1 is required")


def predict_page_time(
    sizes: Sequence[int],
    persistent: bool,
    parallel: int = 1,
    pipeline: bool = False,
    rtt_s: float = 0.0,
    rate_bps: float | None = None,
    mss: int = MSS,
    init_cwnd: int = INIT_CWND,
    burst_bytes: int = 0,
    handshake_rtts: int = 1,
    costs: ProgramCosts = NO_COSTS,
    server_hold_s: float = 0.0,
    tls: TlsCost | None = None,
    multiplexed: bool = False,
) -> Prediction:
    """Predicted time to fetch responses of `sizes` bytes (in request order) in one mode.

    `burst_bytes` is the bottleneck's token bucket; it holds at least one full frame
    (mss + 66), as tbf's must, and starts full. `handshake_rtts` is what a new connection costs
    before its first request: 1 for TCP's, plus the protocol's own handshake. `costs` are the
    programs' measured times (none by default: the network alone).

    `at_server_s` is the page time where the lab measures it, on the server's interface: from
    the first SYN arriving there to the last byte leaving. The capture sees the SYN one trip
    from the client to the server's interface late and the last byte one trip from there to
    the client early: a round trip less `server_hold_s`, the delay the server's end holds
    (half the configured delay on a shaped network; 25 ms on page10-wan; 0 on the bridge).

    `tls`: each new connection's TLS handshake (see the docstring; `handshake_rtts` stays
    TCP's). `multiplexed`: HTTP/2, every request on one connection at once.
    """
    if multiplexed:
        persistent, parallel, pipeline = True, 1, True
    _check_inputs(persistent, parallel, pipeline, rtt_s, rate_bps, mss, init_cwnd)
    if burst_bytes < 0 or handshake_rtts < 1:
        raise ValueError("burst_bytes >= 0 and handshake_rtts >= 1 are required")
    if not 0 <= server_hold_s <= rtt_s:
        raise ValueError("the server's hold is part of the round trip: 0 <= hold <= rtt")
    events = _Events()
    frame = mss + FRAME_OVERHEAD
    bucket = None if rate_bps is None else _Bucket(rate_bps, max(burst_bytes, frame))
    path = _Path(
        events, rtt_s / 2, mss, init_cwnd, rtt_s + RTO_MIN_S, bucket, handshake_rtts, costs, tls
    )
    timings: list[RequestTiming] = []

    def fetch(conn: _Conn, group: list[int], then: Callable[[], None]) -> None:
        """Send the requests of `group` now (one, or a pipelined batch); `then` when all are in."""
        sent_at = events.now
        base = conn.written
        offsets = list(itertools.accumulate((sizes[i] for i in group), initial=base))
        pending = list(zip(group, offsets, offsets[1:], strict=False))

        def on_bytes(received: int) -> None:
            while pending and received >= pending[0][2]:
                if path.session_at is None:  # the client keeps the first session it can
                    path.session_at = events.now
                    for opens in path.on_session:
                        opens()
                i, start, end = pending.pop(0)
                rounds = [r for e, r in conn.rounds_of.items() if start < e <= end]
                flights = max(rounds) - min(rounds) + 1 if rounds else 0
                timings.append(RequestTiming(i, conn.id, sent_at, events.now, flights))
            if not pending:
                conn.on_bytes = _ignore
                then()

        conn.on_bytes = on_bytes
        ends = offsets[1:]
        service = costs.service_s
        if ends[-1] == base:  # nothing to send: the (empty) responses arrive with the request
            wait = 2 * path.one_way + service * len(group)
            events.at(events.now + wait, lambda: on_bytes(conn.received))
        elif service == 0:  # the whole batch at once, as one write
            events.at(events.now + path.one_way, lambda: conn.write(ends[-1] - base))
        else:
            sizes_of = [end - start for start, end in zip(offsets, ends, strict=False)]
            events.at(events.now + path.one_way, lambda: path.serve(conn, sizes_of))

    _open_connections(path, fetch, len(sizes), persistent, parallel, pipeline)
    events.run()
    timings.sort(key=lambda r: r.index)
    n_conns = len({r.conn for r in timings})
    total = max((r.done_s for r in timings), default=0.0)
    return Prediction(
        total_s=total,
        at_server_s=max(0.0, total - (rtt_s - server_hold_s)),
        requests=tuple(timings),
        connections=n_conns,
        handshakes=n_conns,
        flights=len(path.flights),
        rtt_s=rtt_s,
        rate_bps=rate_bps,
        costs=costs,
        mss=mss,
        tls_full=path.tls_handshakes[False],
        tls_resumed=path.tls_handshakes[True],
    )


def _open_connections(
    path: _Path, fetch: _Fetch, n: int, persistent: bool, parallel: int, pipeline: bool
) -> None:
    """Schedule the mode's connections as the client opens them (see the module docstring)."""

    def opening(fn: Callable[[], None], conn: int) -> None:  # a connection opened at once
        _handshake_then(path, fn, path.costs.opening_s, conn)

    if persistent:
        k = max(1, min(parallel, n))
        # resuming, the client opens the others once the first has read a response (and so
        # holds a session: client/core.py), one `stagger_s` apart
        wait = path.tls is not None and path.tls.resume and k > 1
        for c in range(k):
            items = list(range(c, n, k))
            if not items:
                continue
            groups = [items] if pipeline else [[i] for i in items]
            loop = _one_after_another(path, fetch, _Conn(path, c, _ignore), groups)
            if wait and c > 0:
                path.on_session.append(
                    lambda loop=loop, c=c: path.events.at(
                        path.events.now + (c - 1) * path.costs.stagger_s,
                        lambda: _handshake_then(path, loop, path.costs.setup_s, c),
                    )
                )
                continue
            path.events.at(c * path.costs.stagger_s, lambda loop=loop, c=c: opening(loop, c))
        return
    queue = list(range(n))
    conn_ids = itertools.count()

    def worker(first: bool = False) -> None:
        if queue:
            conn = _Conn(path, next(conn_ids), _ignore)
            i = queue.pop(0)
            then = lambda: fetch(conn, [i], next_connection)  # noqa: E731
            if first:
                opening(then, conn.id)
            else:
                _handshake_then(path, then, path.costs.setup_s, conn.id)

    def next_connection() -> None:  # the worker's next SYN, once the client has reconnected
        path.events.at(path.events.now + path.costs.reconnect_s, worker)

    for w in range(min(parallel, n)):
        path.events.at(w * path.costs.stagger_s, lambda: worker(first=True))


def response_sizes(scenario: Any, mode: Any) -> list[int]:
    """Bytes each response puts on the wire: the body, plus the protocol's head (http's)."""
    head = protocols.get(protocol_of(scenario, mode)).head_bytes
    sizes = scenario.workload_of(mode).byte_sizes() * getattr(mode, "repeat", 1)
    return [s + head for s in sizes]


def predict_scenario(
    scenario: Any,
    base_rtt_s: float = 0.0,
    modes: Sequence[Any] | None = None,
    costs: Mapping[str, ProgramCosts] | None = None,
    rtts: Mapping[str, float] | None = None,
    mss: int | None = None,
) -> dict[str, Prediction]:
    """The prediction for each mode of a `lab.scenario.Scenario` under its `network:` block.

    `base_rtt_s` is the path's own round trip (measured on the bridge, a fraction of a ms),
    added to the configured rtt. The bucket is the one the shapers give tbf. `costs` are the
    programs' measured times per mode name (a mode without any: the network alone); `rtts`
    the round trip the handshakes measured, per mode, used instead (the shapers' delay line
    adds 0.3-0.6 ms per hold to the configured delay: 51-53 ms for 50); `mss` the segment size
    the capture measured (1398 on a Swarm overlay's 1450-byte MTU), else MSS.
    """
    from shaper.rules import tbf_burst  # lazy: the capture image ships lab without shaper

    net = scenario.network
    rtt_s = base_rtt_s + (net.rtt or 0.0) / 1000.0
    burst = tbf_burst(int(net.rate)) if net.rate else 0
    out = {}
    for mode in modes if modes is not None else scenario.modes:
        out[mode.name] = predict_page_time(
            response_sizes(scenario, mode),
            persistent=mode.persistent,
            parallel=mode.parallel,
            pipeline=pipelined(scenario, mode),
            rtt_s=max((rtts or {}).get(mode.name, rtt_s), server_hold_s(scenario)),
            rate_bps=net.rate,
            burst_bytes=burst,
            handshake_rtts=handshake_round_trips(scenario, mode),
            costs=(costs or {}).get(mode.name, NO_COSTS),
            server_hold_s=server_hold_s(scenario),
            mss=mss or MSS,
            tls=tls_cost(scenario, mode),
            multiplexed=multiplexed(scenario, mode),
        )
    return out


def tls_cost(scenario: Any, mode: Any) -> TlsCost | None:
    """The mode's TLS (its `tls:` and `resume:`, else the scenario's), or None for plain TCP."""
    version = getattr(mode, "tls", None) or getattr(scenario, "tls", None)
    if not version:
        return None
    resume = getattr(mode, "resume", None)
    if resume is None:
        resume = getattr(scenario, "resume", False)
    return TlsCost(str(version), bool(resume))


def protocol_of(scenario: Any, mode: Any) -> str:
    """The mode's protocol (its `protocol:`, else the scenario's)."""
    return getattr(mode, "protocol", None) or scenario.protocol


def multiplexed(scenario: Any, mode: Any) -> bool:
    """Whether the mode's requests share one connection at once (HTTP/2: h2 and h2c)."""
    return protocols.get(protocol_of(scenario, mode)).multiplexed


def pipelined(scenario: Any, mode: Any) -> bool:
    """Whether the client sends all of a connection's requests at once: pipelining, or the
    article's raw persistent echo (write every message, half-close, read until EOF)."""
    framing = getattr(mode, "framing", None) or getattr(scenario, "framing", None)
    if multiplexed(scenario, mode):  # HTTP/2's streams: every request at once, as pipelining
        return True
    return bool(mode.pipeline or (mode.persistent and framing == "raw"))


def handshake_round_trips(scenario: Any, mode: Any = None) -> int:
    """Round trips before a new connection's first request: TCP's, plus the protocol's own."""
    name = protocol_of(scenario, mode) if mode is not None else scenario.protocol
    return 1 + protocols.get(name).handshake_round_trips


def server_hold_s(scenario: Any) -> float:
    """The delay the server's end of the path holds per round trip: the shapers hold half the
    configured RTT at each end (shaper.placement), the bare bridge nothing."""
    return (scenario.network.rtt or 0.0) / 2000.0


def error_percent(predicted_s: float, measured_s: float) -> float | None:
    """How far the measurement is from the model, in percent of the prediction."""
    if predicted_s <= 0:
        return None
    return (measured_s - predicted_s) / predicted_s * 100.0
