"""The article's claims, checked against a run's analysis. Pure: a RunResult in, Claims out.

The article counts what a page of N resources costs over HTTP/1.0 (N connections, N handshakes of
3 packets, N teardowns of 4 packets, slow start on every connection) and says keep-alive pays for
one handshake, one teardown and one slow start. Each claim here is generalised from the scenario's
request count and returned as a `lab.document.Claim` (id, mode, claim, holds, observed,
expected, why). `holds` is None when the capture cannot decide (for example the mode was not
run, or every response fits in the initial window so slow start leaves no trace).
"""

from __future__ import annotations

from collections import Counter

from lab import tls
from lab.browser import CONNECTIONS_PER_HOST
from lab.document import Claim, FlightResult, ModeResult, RunResult
from lab.tcp import INITIAL_WINDOW
from wire import protocols

# Below this RTT a round trip is shorter than the server's write of a response: flights show
# the application's pacing, not the congestion window.
LAN_RTT_MS = 2.0


def check_claims(run: RunResult) -> list[Claim]:
    """Every claim that applies to the run's modes, in the article's order."""
    everything = list(run.modes.values())
    # A browser mode loads what the page references, on connections of its own choosing: the
    # article's counts per request are the lab client's; the browser has claims of its own.
    modes = [m for m in everything if m.client != "browser"]
    browsers = [m for m in everything if m.client == "browser"]
    out: list[Claim] = []
    for m in modes:
        if not m.persistent:
            n = request_count(run, m)
            out.append(_connections_claim(m, n, "requests" if run.repeat(m) > 1 else None))
            out += [_handshake_claim(m, n), _teardown_claim(m, n)]
    for m in modes:
        if m.persistent:
            out.append(_keepalive_claim(m, run.parallel(m), request_count(run, m)))
    for m in modes:
        out.append(_slow_start_claim(m, request_count(run, m)))
    out += _tls_claims(run, modes)
    out += [_http2_claim(m, request_count(run, m)) for m in modes if _multiplexed(run, m)]
    out += [_browser_parallel_claim(m) for m in browsers]
    closing = next((m for m in browsers if not m.persistent), None)
    out += [_browser_reuse_claim(m, closing) for m in browsers if m.persistent]
    return out


def request_count(run: RunResult, mode: ModeResult | None = None) -> int | None:
    """Requests the mode was to send (one page of its workload times its `repeat`); without a
    workload in the document, the most requests a mode's client logged."""
    planned = run.planned_requests(mode)
    if planned is not None:
        return planned
    counts = [m.requests for m in run.modes.values() if m.requests]
    return max(counts) if counts else None


# --- the claims ------------------------------------------------------------------------------


def _claim(cid: str, mode: ModeResult, text: str, holds, observed, expected, why: str) -> Claim:
    return Claim(cid, mode.name, text, holds, observed, expected, why)


def _connections_claim(mode: ModeResult, n: int | None, what: str | None = None) -> Claim:
    """`what`: "resources" (a page fetched once, the article's wording) or "requests"."""
    observed = mode.connections
    what = what or "resources"
    text = f"{n} {what} need {n} connections" if n else "one connection per request"
    if n is None or observed is None:
        return _claim("connections", mode, text, None, observed, n, "request count unknown")
    if observed == n:
        why = "each connection carried one request and was closed after its response (HTTP/1.0)"
        return _claim("connections", mode, text, True, observed, n, why)
    conns = mode.per_connection
    reused = [c for c in conns if len(c.requests) > 1]
    if observed > n:
        extra = observed - n
        why = f"{extra} more connection(s) than requests: retried or failed connections"
        refused = sum(1 for c in conns if not c.requests)
        if refused:
            why += f" ({refused} carried no request)"
    elif reused:
        why = (
            f"{len(reused)} connection(s) carried more than one request: the server kept them open"
        )
    else:
        why = f"the capture holds {observed} of {n} connections (capture cut, or requests failed)"
    return _claim("connections", mode, text, False, observed, n, why)


def _handshake_claim(mode: ModeResult, n: int | None) -> Claim:
    observed = mode.handshake_packets
    expected = 3 * n if n else None
    text = f"{n} handshakes = {expected} packets" if n else "a handshake is 3 packets"
    if expected is None or observed is None:
        return _claim("handshakes", mode, text, None, observed, expected, "request count unknown")
    conns = mode.connections or 0
    if observed == expected:
        why = "every handshake was SYN, SYN-ACK, ACK: 3 packets per connection"
        return _claim("handshakes", mode, text, True, observed, expected, why)
    reasons = []
    if conns and conns != n:
        reasons.append(f"{conns} connections instead of {n}")
    per_conn = Counter(c.handshake_packets for c in mode.per_connection)
    odd = {k: v for k, v in per_conn.items() if k not in (3, None)}
    for k, v in sorted(odd.items()):
        reasons.append(f"{v} handshake(s) took {k} packets")
    retrans = sum(c.syn_retransmissions for c in mode.per_connection)
    if retrans:
        reasons.append(f"{retrans} SYN or SYN-ACK retransmission(s)")
    why = "; ".join(reasons) or "the handshake packet count differs from 3 per connection"
    return _claim("handshakes", mode, text, False, observed, expected, why)


def teardown_kinds(mode: ModeResult) -> Counter:
    """How the connections of a mode closed: '3-packet', '4-packet', 'rst', 'simultaneous',
    'half-close' or 'none' (no teardown in the capture)."""
    if mode.teardowns:  # lab.analysis counts them already
        return Counter({_kind_name(k): v for k, v in mode.teardowns.items()})
    return Counter(_kind_name(c.teardown) for c in mode.per_connection)


def _kind_name(kind: str) -> str:
    """lab.analysis' teardown names, with "reset" shown as "rst" as the claims word it."""
    if kind.startswith("3"):
        return "3-packet"
    if kind.startswith("4"):
        return "4-packet"
    if kind in ("reset", "rst"):
        return "rst"
    return kind


def _teardown_claim(mode: ModeResult, n: int | None) -> Claim:
    observed = mode.teardown_packets
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


def _keepalive_claim(mode: ModeResult, parallel: int, n: int | None) -> Claim:
    expected_conns = min(parallel, n) if n else parallel
    if expected_conns == 1:
        text = "persistent: one handshake, one teardown"
    else:
        text = f"persistent: one handshake and one teardown per connection ({expected_conns})"
    conns = mode.connections
    kinds = teardown_kinds(mode)
    teardowns = (
        sum(v for k, v in kinds.items() if k not in ("none", "half-close")) if kinds else None
    )
    hs = mode.handshake_packets
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


def _tls_claims(run: RunResult, modes: list[ModeResult]) -> list[Claim]:
    """Issue 13's claims, from each TLS mode's handshakes as the packets show them (lab.tls):
    TLS 1.3 against the first TLS 1.2 mode that made full handshakes, and every mode that was
    to resume."""
    out: list[Claim] = []
    timed = [m for m in modes if m.tls is not None and m.tls.full_handshakes]
    tls12 = next((m for m in timed if m.tls.versions == ["1.2"]), None)
    for m in timed:
        if tls12 is not None and m.tls.versions == ["1.3"]:
            holds, observed, expected, why = tls.claim_tls13_saves_a_round_trip(
                tls12.tls.to_dict(), m.tls.to_dict()
            )
            text = "TLS 1.3 needs one round trip less than TLS 1.2 per new connection"
            why = f"{why} (against {tls12.name})"
            out.append(_claim("tls13-round-trip", m, text, holds, observed, expected, why))
            break  # one comparison says it; the other 1.3 modes may resume
    for m in modes:
        if m.tls is not None and _resumes(run, m):
            holds, observed, expected, why = tls.claim_resumption_skips_the_certificate(
                m.tls.to_dict()
            )
            text = "resumption skips the certificate"
            out.append(_claim("tls-resumption", m, text, holds, observed, expected, why))
    return out


def _resumes(run: RunResult, mode: ModeResult) -> bool:
    """The scenario asked this mode to resume TLS sessions (its `resume`, else the scenario's)."""
    own = run.mode_spec(mode.name).get("resume")
    return bool(own if own is not None else run.scenario.get("resume"))


def _multiplexed(run: RunResult, mode: ModeResult) -> bool:
    """The mode spoke HTTP/2 (its `protocol:`, else the scenario's: h2 or h2c)."""
    name = run.mode_spec(mode.name).get("protocol") or run.scenario.get("protocol")
    return name in protocols.names() and protocols.get(name).multiplexed


def _http2_claim(mode: ModeResult, n: int | None) -> Claim:
    """HTTP/2 multiplexes the page: one TCP connection (one SYN) carried every request, and
    over TLS its ClientHello offered h2 by ALPN (the server's choice is in clear in TLS 1.2
    only; TLS 1.3 encrypts it, and the client's log says it: every response came on h2)."""
    text = "HTTP/2 fetches the page over one connection"
    conns = mode.connections
    observed = f"{_plural(conns, 'connection')}" if conns is not None else None
    expected = "1 connection" + (f", {n} requests on it" if n else "")
    if conns is None:
        return _claim("http2-one-connection", mode, text, None, observed, expected, "no capture")
    answered = mode.client_ok
    if answered is not None:
        observed = f"{observed}, {answered} requests answered"
    offered = [c.tls.alpn_offered for c in mode.per_connection if c.tls is not None]
    chosen = {c.tls.alpn for c in mode.per_connection if c.tls is not None and c.tls.alpn}
    if conns != 1:
        why = f"{conns} connections in the capture: the page was not multiplexed on one"
        return _claim("http2-one-connection", mode, text, False, observed, expected, why)
    if n is not None and answered is not None and answered != n:
        why = f"{answered} of {n} requests answered on the one connection"
        return _claim("http2-one-connection", mode, text, False, observed, expected, why)
    if offered and not all("h2" in o for o in offered):
        why = f"the ClientHello offered {offered[0]} by ALPN, not h2"
        return _claim("http2-one-connection", mode, text, False, observed, expected, why)
    if chosen - {"h2", tls.ALPN_ENCRYPTED}:
        why = f"the server chose {', '.join(sorted(chosen))} by ALPN, not h2"
        return _claim("http2-one-connection", mode, text, False, observed, expected, why)
    why = f"one handshake, {_plural(n, 'request') if n else 'every request'} as streams of it"
    if offered:
        answer = (
            "the server chose h2 in clear"
            if "h2" in chosen
            else "the server's choice is encrypted (TLS 1.3)"
        )
        why += f"; the ClientHello offered h2 by ALPN and {answer}"
    else:
        why += " (h2c: HTTP/2 in clear, prior knowledge)"
    return _claim("http2-one-connection", mode, text, True, observed, expected, why)


def _browser_parallel_claim(mode: ModeResult) -> Claim:
    """Chromium's socket pool opens at most 6 connections per host for HTTP/1.x: the most
    connections open at once on the capture (SYN to first FIN), per server address and port."""
    limit = CONNECTIONS_PER_HOST
    text = f"a browser opens at most {limit} connections per host"
    account = mode.browser or {}
    per_host = account.get("max_parallel_per_host") or {}
    if not per_host:
        why = account.get("error") or "no connection in the capture"
        return _claim("browser-parallel", mode, text, None, None, f"<= {limit}", why)
    host, most = max(per_host.items(), key=lambda kv: kv[1])
    opened = account.get("connections")
    why = (
        f"at most {most} of its {opened} connection(s) to {host} were open at once "
        "(from each SYN to its first FIN)"
    )
    if most > limit:
        why += f": more than {limit}"
    return _claim("browser-parallel", mode, text, most <= limit, most, f"<= {limit}", why)


def _browser_reuse_claim(mode: ModeResult, closing: ModeResult | None) -> Claim:
    """Every request the browser sent on a connection that had carried one before is a
    handshake the capture does not have: handshakes == requests - reused; in the mode where the
    server closes after every response (when there is one), handshakes == requests."""
    text = "keep-alive saves a handshake per reused connection"
    account = mode.browser or {}
    requests, reused = account.get("requests"), account.get("reused")
    handshakes = account.get("complete_handshakes_used")
    if not requests or reused is None or handshakes is None:
        why = account.get("error") or "no request joined to the capture"
        return _claim("browser-reuse", mode, text, None, None, None, why)
    saved = requests - handshakes
    observed = f"{saved} handshake(s) saved ({3 * saved} packets)"
    expected = f"{reused} (requests on a reused connection)"
    why = f"{requests} requests on {handshakes} connection(s), {reused} on one already open"
    holds = saved == reused and reused > 0
    if closing is not None and closing.browser:
        c_requests = closing.browser.get("requests")
        c_handshakes = closing.browser.get("complete_handshakes_used")
        why += f"; {closing.name}: {c_requests} requests, {c_handshakes} handshakes"
        holds = holds and c_requests == c_handshakes
    if reused == 0:
        why += ": the browser reused no connection"
    return _claim("browser-reuse", mode, text, holds, observed, expected, why)


def _slow_start_claim(mode: ModeResult, n: int | None) -> Claim:
    """Slow start, read from the server's flights (lab.analysis: one flight per round trip,
    grouped in bursts, one burst per response).

    A new connection starts at the initial window: its first round sends at most 10 segments.
    On a warm keep-alive connection a later response restarts slow start only if the window was
    reset (Linux: net.ipv4.tcp_slow_start_after_idle after an idle RTO). A later response can
    show that only if it needed more than one round (the window, not the data, limited it).
    """
    persistent = bool(mode.persistent)
    n_conns = mode.connections
    if persistent:
        text = "slow start happens once per connection"
    else:
        text = f"slow start on every connection ({n} times)" if n else "slow start per connection"
    expected = n_conns if n_conns is not None else n
    fresh, over_iw, warm_decided, restarts = 0, 0, 0, 0
    for c in mode.per_connection:
        bursts = c.bursts()
        if not bursts:
            continue
        fresh += 1
        if _cwnd(bursts[0][0]) > INITIAL_WINDOW:
            over_iw += 1
        later = [b for b in bursts[1:] if len(b) > 1]
        warm_decided += len(later)
        restarts += c.slow_start_restarts
    if fresh == 0:
        why = "no per-connection flights in the analysis: cannot tell from the capture"
        return _claim("slow_start", mode, text, None, None, expected, why)
    observed = fresh + restarts
    rtt = mode.rtt_ms
    if rtt is not None and rtt < LAN_RTT_MS:
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


# --- helpers -------------------------------------------------------------------------------


def _cwnd(flight: FlightResult) -> int:
    return flight.cwnd_segments or flight.segments


def _plural(n: int | None, noun: str) -> str:
    if n is None:
        return f"? {noun}s"
    return f"{n} {noun}" + ("" if n == 1 else "s")
