"""The model: how long a page should take per mode, from RTT, rate and the resource sizes.

Pure (no I/O). It simulates TCP's slow start flight by flight, which is what makes
non-persistent connections slow on a long path, and shares the bottleneck rate among the
connections that are open at the time.

Per connection (all times on the client's clock; `rtt` is the whole round trip, the configured
delay plus the path's base RTT):

- Handshake: one round trip (SYN -> SYN-ACK -> ACK); the request leaves with the final ACK.
- Request: reaches the server rtt/2 later; the last response byte reaches the client rtt/2
  after the server sends it. So a response that fits the window costs exactly one rtt.
- Slow start: the server starts with `init_cwnd` segments (Linux: 10, RFC 6928) of `mss`
  payload bytes (1448 with timestamps on a 1500-byte MTU). It sends one window (a *flight*),
  waits one rtt for its ACKs, and grows the window by the segments acknowledged (Linux counts
  bytes acked, so delayed ACKs do not slow this): the window doubles per round trip, as long as
  the flight used more than half of it (Linux's `tcp_is_cwnd_limited`).
- Rate: a connection's share is `rate / n`, n the connections open when it sends. Once the window
  holds its share's bandwidth-delay product (share x rtt), the pipe is full: the rest streams at
  the share, re-evaluated every rtt so a connection speeds up when others finish.
  The last flight's bytes take `bytes x 8 / share` to serialise.
- No loss, no receive-window limit, no queueing delay at the bottleneck.

Modes:

- Non-persistent: every request pays a handshake and starts from `init_cwnd`; a connection
  closes as soon as its response is in (the server sends the first FIN with the data: teardown is
  off the critical path). With `parallel` k, k workers take requests from one queue in order,
  as the client's thread pool does.
  time per request = 2 rtt + (flights - 1) x rtt + serialisation.
- Persistent: one handshake per connection; its window carries over to the next request.
  Requests are dealt round-robin to min(k, n) connections (request i on connection i mod k,
  as the client does) and go one after another on each. Linux resets the window after an idle
  period longer than the RTO (`net.ipv4.tcp_slow_start_after_idle` = 1 by default), but the RTO
  is at least 200 ms and back-to-back requests idle one rtt, so the window is kept here.
  time = rtt + sum over requests of (rtt + (flights - 1) x rtt + serialisation).
- Pipelined: all of a connection's requests leave right after its handshake; the server
  answers them back to back, one continuous stream: one rtt plus the flights for all the bytes.

Hand checks: 10 small responses at 50 ms, sequential: non-persistent 10 x 2 rtt = 1.0 s;
keep-alive rtt + 10 rtt = 0.55 s; pipelined 2 rtt = 0.1 s.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

MSS = 1448  # payload bytes per segment: 1500 MTU - 20 IP - 20 TCP - 12 timestamps
INIT_CWND = 10  # segments (RFC 6928; Linux's TCP_INIT_CWND)
HTTP_HEAD_BYTES = 110  # about what our server's response head adds to each body


@dataclass(frozen=True)
class RequestTiming:
    """One request in the model: which connection carried it and when it finished."""

    index: int
    conn: int
    start_s: float  # the request left the client (after the handshake, for a new connection)
    done_s: float  # its last byte reached the client
    flights: int  # server flights (round trips of data) it took, whole or shared


@dataclass(frozen=True)
class Prediction:
    total_s: float  # page time: first SYN to the last byte of the last response
    requests: tuple[RequestTiming, ...]
    connections: int
    handshakes: int
    flights: int  # data flights over all connections
    rtt_s: float
    rate_bps: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "total_s": self.total_s,
            "connections": self.connections,
            "handshakes": self.handshakes,
            "flights": self.flights,
            "rtt_s": self.rtt_s,
            "rate_bps": self.rate_bps,
            "requests": [r.__dict__ for r in self.requests],
        }


@dataclass
class _Sim:
    rtt: float
    rate: float | None
    mss: int
    init_cwnd: int
    now: float = 0.0
    alive: set[int] = field(default_factory=set)
    timings: list[RequestTiming] = field(default_factory=list)
    flights: int = 0

    def share(self) -> float | None:
        if self.rate is None:
            return None
        return self.rate / max(1, len(self.alive))


def _stream(
    sim: _Sim,
    cwnd: list[int],
    flights: list[int],
    ends: Sequence[int],
    on_done: Callable[[int, float], None],
) -> Generator[float, None, None]:
    """Send one byte stream from the server, starting at sim.now (when the request arrived);
    call `on_done(offset, t)` when each cumulative offset in `ends` reaches the client.
    `cwnd` and `flights` are one-element lists: the caller keeps the window between streams."""
    total = ends[-1] if ends else 0
    sent = 0
    pending = list(ends)
    while pending:
        share = sim.share()
        capacity = cwnd[0] * sim.mss
        bdp = math.inf if share is None else share * sim.rtt / 8
        pipe_full = capacity >= bdp
        # A full pipe streams in slices of about one rtt (at least 64 segments, so a tiny
        # bandwidth-delay product cannot make this loop crawl), re-reading the share each time.
        chunk = min(total - sent, max(int(bdp), 64 * sim.mss) if pipe_full else capacity)
        start = sim.now
        sim.flights += 1
        flights[0] += 1
        while pending and pending[0] <= sent + chunk:
            b = pending.pop(0)
            ser = 0.0 if share is None else (b - sent) * 8 / share
            on_done(b, start + ser + sim.rtt / 2)
        segs = math.ceil(chunk / sim.mss) if chunk else 0
        sent += chunk
        if 2 * segs > cwnd[0]:  # cwnd-limited: slow start grows by what was acknowledged
            cwnd[0] += segs
        if not pending:
            end = start + (0.0 if share is None else chunk * 8 / share)
            yield end
            return
        if pipe_full:
            yield start + chunk * 8 / share  # the link was busy all along: the next slice
        else:
            yield start + sim.rtt  # wait for this flight's ACKs


def _persistent_conn(
    sim: _Sim, conn: int, sizes: Sequence[int], items: list[int], pipeline: bool
) -> Generator[float, None, None]:
    sim.alive.add(conn)
    yield sim.now + sim.rtt  # handshake
    cwnd = [sim.init_cwnd]
    groups = [items] if pipeline else [[i] for i in items]
    for group in groups:
        sent_at = sim.now
        ends = list(itertools.accumulate(sizes[i] for i in group))
        flights = [0]
        done: dict[int, float] = {}
        yield sim.now + sim.rtt / 2  # the request(s) reach the server
        yield from _stream(sim, cwnd, flights, ends, done.__setitem__)
        for i, end in zip(group, ends, strict=True):
            sim.timings.append(RequestTiming(i, conn, sent_at, done[end], flights[0]))
        yield max(done.values())  # the client has the last response: next request
    sim.alive.discard(conn)


def _non_persistent_worker(
    sim: _Sim, worker: int, sizes: Sequence[int], queue: list[int], conns: itertools.count
) -> Generator[float, None, None]:
    while queue:
        i = queue.pop(0)
        conn = next(conns)
        sim.alive.add(conn)
        yield sim.now + sim.rtt  # handshake
        sent_at = sim.now
        cwnd = [sim.init_cwnd]  # a new connection starts slow start again
        flights = [0]
        done: dict[int, float] = {}
        yield sim.now + sim.rtt / 2
        yield from _stream(sim, cwnd, flights, [sizes[i]], done.__setitem__)
        sim.timings.append(RequestTiming(i, conn, sent_at, done[sizes[i]], flights[0]))
        yield done[sizes[i]]  # teardown is off the critical path: the next connection starts now
        sim.alive.discard(conn)


def predict_page_time(
    sizes: Sequence[int],
    persistent: bool,
    parallel: int = 1,
    pipeline: bool = False,
    rtt_s: float = 0.0,
    rate_bps: float | None = None,
    mss: int = MSS,
    init_cwnd: int = INIT_CWND,
) -> Prediction:
    """Predicted time to fetch responses of `sizes` bytes (in request order) in one mode."""
    if pipeline and not persistent:
        raise ValueError("pipelining needs a persistent connection")
    if parallel < 1 or rtt_s < 0 or (rate_bps is not None and rate_bps <= 0) or mss < 1:
        raise ValueError("parallel >= 1, rtt >= 0, rate > 0 and mss >= 1 are required")
    sim = _Sim(rtt=rtt_s, rate=rate_bps, mss=mss, init_cwnd=init_cwnd)
    n = len(sizes)
    procs: list[Generator[float, None, None]] = []
    if persistent:
        k = max(1, min(parallel, n))
        for c in range(k):
            items = list(range(c, n, k))
            if items:
                procs.append(_persistent_conn(sim, c, sizes, items, pipeline))
    else:
        queue = list(range(n))
        conns = itertools.count()
        procs = [
            _non_persistent_worker(sim, w, sizes, queue, conns) for w in range(min(parallel, n))
        ]
    # Start every connection (so each counts in the rate share from time 0), then run the
    # processes in time order; ties go to the lower process, as they were created.
    heap = [(next(proc), pid) for pid, proc in enumerate(procs)]
    heapq.heapify(heap)
    while heap:
        t, pid = heapq.heappop(heap)
        sim.now = t
        with contextlib.suppress(StopIteration):
            heapq.heappush(heap, (next(procs[pid]), pid))
    timings = tuple(sorted(sim.timings, key=lambda r: r.index))
    n_conns = len({r.conn for r in timings})
    return Prediction(
        total_s=max((r.done_s for r in timings), default=0.0),
        requests=timings,
        connections=n_conns,
        handshakes=n_conns,
        flights=sim.flights,
        rtt_s=rtt_s,
        rate_bps=rate_bps,
    )


def response_sizes(scenario: Any, mode: Any) -> list[int]:
    """Bytes each response puts on the wire: the body, plus the head for http."""
    sizes = scenario.workload_of(mode).byte_sizes()
    if scenario.protocol == "http":
        return [s + HTTP_HEAD_BYTES for s in sizes]
    return list(sizes)


def predict_scenario(
    scenario: Any, base_rtt_s: float = 0.0, modes: Sequence[Any] | None = None
) -> dict[str, Prediction]:
    """The prediction for each mode of a `lab.scenario.Scenario` under its `network:` block.

    `base_rtt_s` is the path's own round trip (measured on the bridge, a fraction of a ms),
    added to the configured rtt.
    """
    net = scenario.network
    rtt_s = base_rtt_s + (net.rtt or 0.0) / 1000.0
    out = {}
    for mode in modes if modes is not None else scenario.modes:
        out[mode.name] = predict_page_time(
            response_sizes(scenario, mode),
            persistent=mode.persistent,
            parallel=mode.parallel,
            pipeline=mode.pipeline,
            rtt_s=rtt_s,
            rate_bps=net.rate,
        )
    return out


def error_percent(predicted_s: float, measured_s: float) -> float | None:
    """How far the measurement is from the model, in percent of the prediction."""
    if predicted_s <= 0:
        return None
    return (measured_s - predicted_s) / predicted_s * 100.0
