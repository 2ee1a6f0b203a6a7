"""What the lab's own programs cost per connection and per request, measured on a run (pure).

On a bridge whose round trip is a few hundredths of a millisecond, a page's time is the server's
and the client's work, not the network's. `measure` reads that work from one mode's capture (each
connection's SYN, first request byte and last response byte on the server's interface) and its
client log (client.jsonl: when each request left and its response's last byte was read), and
gives the model (lab.model.ProgramCosts) six means:

- setup: per connection opened after the first `parallel`, from the SYN to the first request,
  both on the server's interface (they travel the same way, so the path's delays cancel),
  beyond the model's handshake;
- service: per request, the programs' time on it: from leaving the client to its response's
  last byte read (client log), less the time the model gives it on the network alone (its
  `done_s - start_s` without costs): the server's reading, parsing, logging and writing, and
  the client's reading. With one request per connection (non-persistent) the same is read on
  the capture's clock, from the request in to the last byte out, like setup and reconnect, so
  that the client reading its last byte late is not counted twice. Where connections run at
  once, a request's time includes waiting for the others' (one interpreter lock per program);
  charging it per connection was closer, over 37 runs, than a queue that takes one request at
  a time with the busy time shared out: on page10-wan what overlaps is mostly the network's
  noise, which a queue would add up;
- turnaround: per request after the first on a keep-alive connection, from the previous
  response's last byte read to this request leaving (client log);
- reconnect: per non-persistent connection after a worker's first, from the worker's previous
  response's last byte leaving the server to this connection's SYN arriving there, less the
  path's share of a round trip outside the server's end (the model's rtt less the server's
  hold): waiting for the server's FIN, closing, the name lookup, a new socket;
- opening and stagger: the connections the mode opens at once (its first `parallel`): from the
  first SYN to the first of their first requests, beyond the handshake, and the mean gap
  between their first requests.

What this means for the model: service is what the network model does not explain, per
request, so in a mode whose requests go one after another the costs add up to the measured
page time (the model cannot be wrong there, by construction); the test of the network model
is its figure with the network alone (`predicted_network_only_s`) on a path whose delay
dominates, page10-wan. Where connections run at once, the model's structure is what is tested:
each connection's chain, and the programs taking one request at a time.

Why not the server's log, request read to response sent: the server logs a request once it has
read and parsed it, which on page10 was 0.2-0.4 ms after the request reached it (a third of the
server's time), and it logs a response once its last byte is in the socket buffer, which on
page10-wan waits for the client's ACKs (110 ms for a 160 KiB response at 50 ms RTT: the
network's time, which the model counts itself). The client's times bracket all of it. The
client's clock is read after send() returns, which a busy machine can delay (by 2.3 ms once):
the first request of a connection counts from when the capture saw it, if that was earlier.

Means, not medians: the page time is a sum, and a mean times a count keeps the sum. A mean
below zero (the network faster than the model says, within the RTT's noise) counts as zero.
"""

from __future__ import annotations

import heapq
import itertools
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lab.document import ConnectionResult, ModeResult, ProgramCostsResult
from lab.model import ProgramCosts


@dataclass(frozen=True)
class Measured:
    """The means (seconds) and how many samples each came from (0: nothing to measure)."""

    costs: ProgramCosts
    samples: dict[str, int]
    service_range_s: tuple[float, float] | None = None  # the least and most of one request


def as_result(measured: Measured) -> ProgramCostsResult:
    """The document's form (analysis.json's `program_costs`): milliseconds."""
    ms = {f"{k[:-2]}_ms": v * 1000.0 for k, v in measured.costs.as_dict().items()}
    out = ProgramCostsResult(**ms, samples=dict(measured.samples))
    if measured.service_range_s:
        out.service_min_ms, out.service_max_ms = (v * 1000.0 for v in measured.service_range_s)
    return out


def _time(record: Mapping[str, Any], key: str) -> float | None:
    value = record.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _usable(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Answered requests with the times every measure needs."""
    out = []
    for r in records:
        if r.get("event", "request") != "request" or not r.get("ok"):
            continue
        if _time(r, "t_sent") is not None and _time(r, "t_done") is not None:
            out.append(r)
    return out


def _mean(values: Sequence[float]) -> float:
    return max(0.0, statistics.fmean(values)) if values else 0.0


def measure(
    records: Iterable[Mapping[str, Any]],
    connections: Sequence[ConnectionResult],
    *,
    persistent: bool,
    parallel: int = 1,
    pipeline: bool = False,
    model_rtt_s: float,
    model_handshake_s: float,
    server_hold_s: float = 0.0,
    model_latency_s: Mapping[int, float] | None = None,
) -> Measured:
    """One mode's program costs from its client records (client.jsonl's request lines) and its
    connections as the capture read them.

    `model_rtt_s` is the model's round trip, `model_handshake_s` what it charges a new
    connection before its request leaves, `server_hold_s` the delay the server's end holds
    (lab.model.server_hold_s), `model_latency_s` the model's network-only latency of each
    request by its 0-based position in the workload (request_id - 1; None: no service).
    """
    opened = sorted(
        (c for c in connections if c.t_syn is not None and c.t_first_client_byte is not None),
        key=lambda c: c.t_syn,
    )
    setup = [c.t_first_client_byte - c.t_syn - model_handshake_s for c in opened]
    k = max(1, min(parallel, len(opened)))
    at_once = sorted(c.t_first_client_byte for c in opened[:k])
    stagger = [b - a for a, b in itertools.pairwise(at_once)]  # their mean: (last - first)/(k-1)
    opening = [at_once[0] - opened[0].t_syn - model_handshake_s] if opened else []
    setup = setup[k:]  # the connections opened later (the first ones' is the opening)
    reconnect: list[float] = []
    if not persistent:
        reconnect = _reconnects(opened, parallel, model_rtt_s - server_hold_s)

    by_conn: dict[Any, list[dict[str, Any]]] = {}
    for r in _usable(records):
        by_conn.setdefault((r.get("conn"), r.get("local_port")), []).append(dict(r))
    by_port = {c.client_port: c for c in opened}
    turnaround: list[float] = []
    service: list[float] = []
    for (_, port), rs in by_conn.items():
        spans = []  # each request's time in the programs' hands: leaving to beyond the network
        rs.sort(key=lambda r: r["t_sent"])
        c = by_port.get(port)
        if c is not None:
            # The client reads its clock after send() returns, and a busy machine can deschedule
            # it in between (2.3 ms once): a request cannot reach the server before it left.
            rs[0]["t_sent"] = min(rs[0]["t_sent"], c.t_first_client_byte)
        if persistent and not pipeline:
            turnaround += [b["t_sent"] - a["t_done"] for a, b in itertools.pairwise(rs)]
        for r in rs if model_latency_s is not None else ():
            index = r.get("request_id")
            if not isinstance(index, int) or (index - 1) not in model_latency_s:
                continue
            latency = model_latency_s[index - 1]
            if not persistent and c is not None and c.t_last_server_byte is not None:
                # One request per connection: on the capture's clock, like setup and reconnect,
                # so the client reading its last byte late is not counted twice. Request in to
                # last byte out spans the server's hold, the programs' time and the response's
                # time on the wire after its first byte (the model's latency less a round trip).
                end = c.t_last_server_byte - server_hold_s - (latency - model_rtt_s)
                spans.append((c.t_first_client_byte, end))
            else:
                spans.append((r["t_sent"], r["t_done"] - latency))
        service += _in_turn(spans)

    values = {
        "setup": setup,
        "service": service,
        "turnaround": turnaround,
        "reconnect": reconnect,
        "stagger": stagger,
        "opening": opening,
    }
    costs = ProgramCosts(**{f"{k}_s": _mean(v) for k, v in values.items()})
    spread = (max(0.0, min(service)), max(0.0, max(service))) if service else None
    return Measured(costs, {k: len(v) for k, v in values.items()}, spread)


def _in_turn(spans: list[tuple[float, float]]) -> list[float]:
    """One connection's requests, served in turn by its thread: each from when it arrived or
    the one before it was done (the later) to when it was done. Requests one after another
    keep their whole time; a pipelined batch (sent together, done one after another) is not
    counted as k overlapping waits."""
    service = []
    free = float("-inf")
    for arrived, done in sorted(spans, key=lambda s: s[1]):
        service.append(done - max(arrived, free))
        free = max(free, done)
    return service


def _reconnects(opened: Sequence[ConnectionResult], parallel: int, path_s: float) -> list[float]:
    """Non-persistent: each connection after the first `parallel` follows the worker that
    finished first (the client's workers take the next request when they are free); the gap is
    that worker's last response byte leaving the server to this SYN arriving, less `path_s`
    (server to client and back, outside the server's end)."""
    free: list[float] = []  # when each busy worker's last response byte left the server
    gaps = []
    for c in opened:
        if len(free) >= max(1, parallel):
            gaps.append(c.t_syn - heapq.heappop(free) - path_s)
        heapq.heappush(free, c.t_last_server_byte if c.t_last_server_byte else c.t_syn)
    return gaps


# --- how close the model should be, and why it is not ------------------------------------------

NETWORK_BAND_PCT = 5.0  # the network's time dominates: the model simulates it segment by segment
PROGRAM_BAND_PCT = 25.0  # the programs' time dominates: means of times that vary run to run
BUSY_FACTOR = 3.0  # a mode whose requests cost this many times another mode's: contention


def band_pct(predicted_s: float, network_only_s: float) -> float:
    """How close the prediction is meant to be: 5% where the network's own time is at least
    half of it, 25% where the programs' measured times make up most of it."""
    return NETWORK_BAND_PCT if network_only_s >= 0.5 * predicted_s else PROGRAM_BAND_PCT


def _losses(mode: ModeResult) -> str | None:
    """What the capture shows lost and sent again, in words (None: nothing)."""
    resent = mode.data_resends
    syns = sum(c.syn_retransmissions for c in mode.per_connection)
    parts = [f"data segments resent: {resent}"] if resent else []
    parts += [f"SYNs sent again: {syns}"] if syns else []
    return ", ".join(parts) or None


def explain(
    mode: ModeResult, others: Sequence[ModeResult], parallel: int, band: float
) -> str | None:
    """Why a mode's page time is outside the model's band, in words; inside it, None, or a
    caution when the capture shows loss: the programs' times the model charges were measured on
    this mode, so they include the waits for the resends and the model matches by construction
    (`lab.summary.error_cell` still shows the percentage then)."""
    error = mode.prediction_error_pct
    losses = _losses(mode)
    if error is None or abs(error) <= band:
        if error is None or not losses:
            return None
        note = (
            f"inside its band by construction ({losses}): the model assumes no loss, but the "
            "programs' times it charges were measured on this mode, waits for the resends "
            "included"
        )
        alone = mode.predicted_network_only_s
        if alone:
            note += f"; the network alone, as the model sees it, takes {alone * 1e3:.1f} ms"
        return note
    side = "slower" if error > 0 else "faster"
    head = f"{abs(error):.0f}% {side} than predicted (the model's band here is ±{band:.0f}%): "
    reasons = []
    if losses:
        reasons.append(f"the model assumes no loss ({losses})")
    alone, measured = mode.predicted_network_only_s, mode.page_time_s
    if alone and measured and alone > measured:
        reasons.append(
            f"the network alone, as the model simulates it, already takes {alone * 1e3:.1f} ms, "
            f"more than the {measured * 1e3:.1f} ms measured"
            + (f": its {parallel} connections share the path differently" if parallel > 1 else "")
        )
    costs = mode.program_costs
    if costs and costs.samples.get("service"):
        if parallel > 1 and costs.service_max_ms is not None:
            reasons.append(
                f"{parallel} connections at once wait for the slowest, and the programs' time "
                f"per request ranged from {costs.service_min_ms:.1f} to "
                f"{costs.service_max_ms:.1f} ms around the mean of {costs.service_ms:.1f} ms "
                "the model charges each"
            )
        calm = [
            (o.program_costs.service_ms, o.name)
            for o in others
            if o.name != mode.name and o.program_costs and o.program_costs.samples.get("service")
        ]
        least = min(calm, default=None)
        if least and costs.service_ms >= BUSY_FACTOR * max(least[0], 1e-3):
            why = (
                f"with {parallel} connections at once the programs' threads hand their "
                "interpreter lock back and forth, and other work on the machine slows them"
                if parallel > 1
                else "other work on the machine slowed the programs"
            )
            reasons.append(
                f"that mean is {costs.service_ms / max(least[0], 1e-3):.0f}x {least[1]}'s "
                f"{least[0]:.1f} ms: {why}"
            )
    if not reasons:
        reasons.append(
            "the programs' times varied within the mode more than their means capture "
            "(a run with `repeats` shows the spread)"
        )
    return head + "; ".join(reasons)
