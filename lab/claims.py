"""The article's claims, checked against a run's analysis. Pure: a dict in, a list of dicts out.

The article counts what a page of N resources costs over HTTP/1.0 (N connections, N handshakes of
3 packets, N teardowns of 4 packets, slow start on every connection) and says keep-alive pays for
one handshake, one teardown and one slow start. Each claim here is generalised from the scenario's
request count and returned as::

    {"id", "mode", "claim", "holds": True | False | None, "observed", "expected", "why"}

`holds` is None when the capture cannot decide (for example the mode was not run, or every
response fits in the initial window so slow start leaves no trace).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

INITIAL_WINDOW = 10  # Linux's initial congestion window, segments (RFC 6928)
# Below this RTT a round trip is shorter than the server's write of a response: flights show
# the application's pacing, not the congestion window.
LAN_RTT_MS = 2.0


def check_claims(analysis: dict) -> list[dict]:
    """Every claim that applies to the run's modes, in the article's order."""
    modes = analysis.get("modes") or []
    closing = [m for m in modes if not m.get("persistent")]
    keepalive = [m for m in modes if m.get("persistent")]
    out: list[dict] = []
    for m in closing:
        n = request_count(analysis, m)
        out.append(_connections_claim(m, n, "requests" if mode_repeat(analysis, m) > 1 else None))
        out += [_handshake_claim(m, n), _teardown_claim(m, n)]
    for m in keepalive:
        out.append(_keepalive_claim(m, mode_parallel(analysis, m), request_count(analysis, m)))
    for m in modes:
        out.append(_slow_start_claim(m, request_count(analysis, m), mode_parallel(analysis, m)))
    return out


# --- what the run was asked to do -------------------------------------------------------------


def request_count(analysis: Mapping[str, Any], mode: Mapping[str, Any] | None = None) -> int | None:
    """How many requests the mode sent: the resources or messages of one page of the scenario
    (or of the mode's own workload) times the mode's `repeat`. Without a mode, one page."""
    sc = analysis.get("scenario") or {}
    own = scenario_mode(analysis, mode.get("name", "")).get("workload") if mode else None
    repeat = mode_repeat(analysis, mode) if mode else 1
    for holder in (own or {}, sc, sc.get("workload") or {}):
        for key in ("resources", "messages", "sizes"):
            items = holder.get(key)
            if isinstance(items, list) and items:
                return len(items) * repeat
    # no workload in the analysis: the most requests a mode's client logged (already repeated)
    counts = [m.get("requests") for m in analysis.get("modes") or []]
    counts = [c if isinstance(c, int) else len(c) for c in counts if c]
    return max(counts) if counts else None


def scenario_mode(analysis: Mapping[str, Any], name: str) -> dict:
    """The scenario's definition of a mode (persistent, parallel, pipeline), or {}."""
    sc = analysis.get("scenario") or {}
    for m in sc.get("modes") or []:
        if isinstance(m, Mapping) and m.get("name") == name:
            return dict(m)
    return {}


def mode_parallel(analysis: Mapping[str, Any], mode: Mapping[str, Any]) -> int:
    """Parallel connections the client was told to open for this mode (default 1)."""
    return _mode_int(analysis, mode, "parallel")


def _mode_int(analysis: Mapping[str, Any], mode: Mapping[str, Any], key: str) -> int:
    for source in (mode, scenario_mode(analysis, mode.get("name", ""))):
        value = source.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 1


def mode_repeat(analysis: Mapping[str, Any], mode: Mapping[str, Any]) -> int:
    """How many times over the mode sent its workload (a scenario mode's `repeat`, default 1)."""
    return _mode_int(analysis, mode, "repeat")


def connections_of(mode: Mapping[str, Any]) -> list[dict]:
    """The mode's per-connection dicts (lab.analysis calls the list `per_connection`)."""
    return list(mode.get("connections_detail") or mode.get("per_connection") or [])


# --- the claims ------------------------------------------------------------------------------


def _claim(cid: str, mode: Mapping, text: str, holds, observed, expected, why: str) -> dict:
    return {
        "id": cid,
        "mode": mode.get("name"),
        "claim": text,
        "holds": holds,
        "observed": observed,
        "expected": expected,
        "why": why,
    }


def _connections_claim(mode: Mapping, n: int | None, what: str | None = None) -> dict:
    """`what`: "resources" (a page fetched once, the article's wording) or "requests"."""
    observed = mode.get("connections")
    what = what or "resources"
    text = f"{n} {what} need {n} connections" if n else "one connection per request"
    if n is None or observed is None:
        return _claim("connections", mode, text, None, observed, n, "request count unknown")
    if observed == n:
        why = "each connection carried one request and was closed after its response (HTTP/1.0)"
        return _claim("connections", mode, text, True, observed, n, why)
    conns = connections_of(mode)
    reused = [c for c in conns if len(_requests(c)) > 1]
    if observed > n:
        extra = observed - n
        why = f"{extra} more connection(s) than requests: retried or failed connections"
        refused = sum(1 for c in conns if not _requests(c))
        if refused:
            why += f" ({refused} carried no request)"
    elif reused:
        why = (
            f"{len(reused)} connection(s) carried more than one request: the server kept them open"
        )
    else:
        why = f"the capture holds {observed} of {n} connections (capture cut, or requests failed)"
    return _claim("connections", mode, text, False, observed, n, why)


def _handshake_claim(mode: Mapping, n: int | None) -> dict:
    observed = mode.get("handshake_packets")
    expected = 3 * n if n else None
    text = f"{n} handshakes = {expected} packets" if n else "a handshake is 3 packets"
    if expected is None or observed is None:
        return _claim("handshakes", mode, text, None, observed, expected, "request count unknown")
    conns = mode.get("connections") or 0
    if observed == expected:
        why = "every handshake was SYN, SYN-ACK, ACK: 3 packets per connection"
        return _claim("handshakes", mode, text, True, observed, expected, why)
    reasons = []
    if conns and conns != n:
        reasons.append(f"{conns} connections instead of {n}")
    per_conn = Counter(_int(c.get("handshake_packets")) for c in connections_of(mode))
    odd = {k: v for k, v in per_conn.items() if k not in (3, None)}
    for k, v in sorted(odd.items()):
        reasons.append(f"{v} handshake(s) took {k} packets")
    retrans = mode.get("syn_retransmissions") or sum(
        _int(c.get("syn_retransmissions")) or 0 for c in connections_of(mode)
    )
    if retrans:
        reasons.append(f"{retrans} SYN or SYN-ACK retransmission(s)")
    why = "; ".join(reasons) or "the handshake packet count differs from 3 per connection"
    return _claim("handshakes", mode, text, False, observed, expected, why)


def teardown_kinds(mode: Mapping) -> Counter:
    """How the connections of a mode closed: '3-packet', '4-packet', 'rst', 'simultaneous',
    'half-close' or 'none' (no teardown in the capture)."""
    counted = mode.get("teardowns")
    if isinstance(counted, Mapping):  # lab.analysis counts them already
        return Counter({_kind_name(k): v for k, v in counted.items()})
    return Counter(_teardown_kind(c) for c in connections_of(mode))


def _kind_name(kind: str) -> str:
    if kind.startswith("3"):
        return "3-packet"
    if kind.startswith("4"):
        return "4-packet"
    if kind in ("reset", "rst"):
        return "rst"
    return kind


def _teardown_kind(conn: Mapping) -> str:
    kind = conn.get("teardown") or conn.get("teardown_kind")
    if isinstance(kind, str):
        return _kind_name(kind)
    if conn.get("rst") and not conn.get("teardown_packets"):
        return "rst"
    packets = _int(conn.get("teardown_packets"))
    if packets in (3, 4):
        return f"{packets}-packet"
    return f"{packets}-packet" if packets else "none"


def _teardown_claim(mode: Mapping, n: int | None) -> dict:
    observed = mode.get("teardown_packets")
    expected = 4 * n if n else None
    text = f"{n} teardowns = {expected} packets" if n else "a teardown is 4 packets"
    if expected is None or observed is None:
        return _claim("teardowns", mode, text, None, observed, expected, "request count unknown")
    if observed == expected:
        why = "every close was FIN, ACK, FIN, ACK: 4 packets per connection"
        return _claim("teardowns", mode, text, True, observed, expected, why)
    kinds = teardown_kinds(mode)
    total = sum(kinds.values())
    parts = []
    if kinds["3-packet"]:
        parts.append(
            f"in {kinds['3-packet']} of {total} connections the second FIN rode on the ACK of the "
            "first (FIN+ACK in one packet), so the teardown took 3 packets, not 4"
        )
    if kinds["4-packet"]:
        parts.append(f"{kinds['4-packet']} took the textbook 4 packets")
    if kinds["rst"]:
        parts.append(f"{kinds['rst']} ended with a RST instead of FINs")
    if kinds["simultaneous"]:
        parts.append(f"{kinds['simultaneous']} closed simultaneously (the FINs crossed)")
    if kinds["half-close"] or kinds["none"]:
        n_open = kinds["half-close"] + kinds["none"]
        parts.append(f"{n_open} have no complete teardown in the capture")
    for k, v in kinds.items():
        if k.endswith("-packet") and k not in ("3-packet", "4-packet"):
            parts.append(f"{v} took {k.split('-')[0]} packets (retransmitted FIN or ACK)")
    why = "; ".join(parts) or f"{observed} teardown packets for {n} connections"
    return _claim("teardowns", mode, text, False, observed, expected, why)


def _keepalive_claim(mode: Mapping, parallel: int, n: int | None) -> dict:
    expected_conns = min(parallel, n) if n else parallel
    if expected_conns == 1:
        text = "persistent: one handshake, one teardown"
    else:
        text = f"persistent: one handshake and one teardown per connection ({expected_conns})"
    conns = mode.get("connections")
    kinds = teardown_kinds(mode)
    teardowns = (
        sum(v for k, v in kinds.items() if k not in ("none", "half-close")) if kinds else None
    )
    hs = mode.get("handshake_packets")
    observed = f"{_plural(conns, 'handshake')}, {_plural(teardowns, 'teardown')}"
    expected = f"{_plural(expected_conns, 'handshake')}, {_plural(expected_conns, 'teardown')}"
    if conns is None:
        return _claim("keepalive", mode, text, None, observed, expected, "no connection count")
    per_conn = (n / conns) if n and conns else None
    carried = f"{n} requests on {conns} connection(s)" if n else f"{conns} connection(s)"
    if conns == expected_conns and (hs is None or hs == 3 * conns):
        why = f"{carried}: each paid one handshake"
        if teardowns is not None and teardowns == conns:
            why += " and one teardown"
        elif teardowns is not None:
            why += f"; {teardowns} teardown(s) in the capture"
        if per_conn and per_conn > 1:
            why += f", about {per_conn:.1f} requests each"
        return _claim("keepalive", mode, text, True, observed, expected, why)
    if conns > expected_conns:
        why = f"{carried}: the connection was not kept for every request"
    elif hs is not None and hs != 3 * conns:
        why = f"{hs} handshake packets for {conns} connection(s) (a SYN was retransmitted?)"
    else:
        why = f"{carried}: fewer connections than the client was told to open"
    return _claim("keepalive", mode, text, False, observed, expected, why)


def _slow_start_claim(mode: Mapping, n: int | None, parallel: int) -> dict:
    """Slow start, read from the server's flights (lab.analysis: one flight per round trip,
    grouped in bursts, one burst per response).

    A new connection starts at the initial window: its first round sends at most 10 segments.
    On a warm keep-alive connection a later response restarts slow start only if the window was
    reset (Linux: net.ipv4.tcp_slow_start_after_idle after an idle RTO). A later response can
    show that only if it needed more than one round (the window, not the data, limited it).
    """
    persistent = bool(mode.get("persistent"))
    conns = connections_of(mode)
    n_conns = mode.get("connections")
    if persistent:
        text = "slow start happens once per connection"
    else:
        text = f"slow start on every connection ({n} times)" if n else "slow start per connection"
    expected = n_conns if n_conns is not None else n
    fresh, over_iw, warm_decided, restarts = 0, 0, 0, 0
    for c in conns:
        bursts = _bursts(c)
        if not bursts:
            continue
        fresh += 1
        if _cwnd(bursts[0][0]) > INITIAL_WINDOW:
            over_iw += 1
        later = [b for b in bursts[1:] if len(b) > 1]
        warm_decided += len(later)
        counted = _int(c.get("slow_start_restarts"))
        restarts += (
            counted
            if counted is not None
            else sum(1 for b in later if _cwnd(b[0]) <= INITIAL_WINDOW)
        )
    if fresh == 0:
        why = "no per-connection flights in the analysis: cannot tell from the capture"
        return _claim("slow_start", mode, text, None, None, expected, why)
    observed = fresh + restarts
    rtt = mode.get("rtt_ms")
    if isinstance(rtt, (int, float)) and rtt < LAN_RTT_MS:
        why = (
            f"at a {rtt:.2f} ms RTT the server's rounds show the application's pacing, not the "
            "window; add network: rtt to the scenario (as page10-wan does) to see slow start"
        )
        return _claim("slow_start", mode, text, None, observed, expected, why)
    if over_iw:
        why = (
            f"{over_iw} new connection(s) sent more than {INITIAL_WINDOW} segments in their "
            "first round: the initial window is larger than RFC 6928's (route initcwnd?)"
        )
        return _claim("slow_start", mode, text, False, observed, expected, why)
    if not persistent:
        why = (
            f"each of the {fresh} connections began at most {INITIAL_WINDOW} segments in its first "
            "round: slow start restarted with every resource"
        )
        return _claim("slow_start", mode, text, fresh == expected, observed, expected, why)
    if restarts:
        why = (
            f"{restarts} later response(s) restarted from the initial window: Linux resets the "
            "window after an idle RTO (net.ipv4.tcp_slow_start_after_idle=1)"
        )
        return _claim("slow_start", mode, text, False, observed, expected, why)
    if warm_decided == 0:
        why = (
            f"{fresh} slow start(s), one per connection; every later response fit in one round, "
            "so the capture cannot show whether the window was kept"
        )
        return _claim("slow_start", mode, text, None, observed, expected, why)
    why = (
        f"{fresh} slow start(s), one per connection; the {warm_decided} later response(s) that "
        "needed several rounds started above the initial window: the window was kept"
    )
    return _claim("slow_start", mode, text, True, observed, expected, why)


# --- tolerant readers of per-connection detail ------------------------------------------------


def _requests(conn: Mapping) -> list:
    reqs = conn.get("requests")
    if isinstance(reqs, list):
        return reqs
    return [reqs] if reqs else []


def _bursts(conn: Mapping) -> list[list[dict]]:
    """The server's flights grouped per response (burst), each burst's rounds in order."""
    flights = conn.get("flights") or []
    if flights and isinstance(flights[0], list):
        return [f for f in flights if f]
    groups: dict[Any, list[dict]] = {}
    for f in flights:
        groups.setdefault(f.get("burst", 0), []).append(f)
    return [groups[k] for k in sorted(groups)]


def _cwnd(flight: Mapping) -> int:
    return _int(flight.get("cwnd_segments")) or _int(flight.get("segments")) or 0


def _plural(n: int | None, noun: str) -> str:
    if n is None:
        return f"? {noun}s"
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def verdict(holds: bool | None) -> str:
    return {True: "holds", False: "differs", None: "can't tell"}[holds]


def summarize(claims: Iterable[dict]) -> Counter:
    return Counter(verdict(c["holds"]) for c in claims)
