"""Faults injected on purpose while a mode's client runs, and the account of what they did.

A scenario's `faults:` fire during the traffic phase of the modes they apply to:

    at: {time: S}      S seconds after the client container started
    at: {request: N}   once the server's JSON log shows N requests answered (echo `message`,
                       http `response` events, each written once its answer is sent): the
                       client logs a persistent connection's requests only when the
                       connection ends, the server logs each at once

    kill_server         SIGKILL to the server container: the host is gone, its namespace too
                        (so the capture sidecar in it stops seeing anything)
    pause_server        `docker pause` (cgroup freezer); unpaused after `duration`, or when the
                        client has exited. The kernel still ACKs, nothing answers.
    disconnect_client   the client (or the netns holder whose namespace it shares) leaves the
                        run's network; back after `duration`
    kill_capture        SIGKILL to tcpdump: the pcap stops there (maybe mid-record)
    reset_connections   SIGUSR1 to the server: each connection then ends with a RST after its
                        next answer (SO_LINGER 0) instead of a FIN

Pure: planning (`for_mode`, `due`, `answered`), the account (`account`, `summary_line`).
Thin: `Injector`, a thread that watches the clock and the server log and calls the Docker API.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

POLL_S = 0.05  # how often the injector looks at the clock and the server's log
EFFECTS = {
    "kill_server": "server container killed (SIGKILL)",
    "pause_server": "server container paused (cgroup freezer)",
    "disconnect_client": "client disconnected from the network",
    "kill_capture": "capture sidecar killed (SIGKILL): the pcap ends here",
    "reset_connections": "server switched to resets (SIGUSR1: SO_LINGER 0 after each answer)",
}
UNDO_EFFECTS = {
    "pause_server": "server unpaused",
    "disconnect_client": "client reconnected",
}


@dataclass(frozen=True)
class FaultPlan:
    """One fault as one mode's runner sees it."""

    action: str
    time: float | None = None
    request: int | None = None
    duration: float | None = None

    @property
    def trigger(self) -> str:
        return f"at {self.time:g} s" if self.time is not None else f"after request {self.request}"


def for_mode(faults: Iterable, mode: str) -> tuple[FaultPlan, ...]:
    """The scenario's faults (`lab.scenario.Fault`) that apply to `mode`, as plans."""
    return tuple(
        FaultPlan(f.action, f.at.time, f.at.request, f.duration)
        for f in faults
        if f.mode is None or f.mode == mode
    )


def answered(server_log: str) -> int:
    """Requests the server has answered, from its JSON log (one event per request)."""
    n = 0
    for line in server_log.splitlines():
        if '"event": "message"' not in line and '"event": "response"' not in line:
            continue
        with contextlib.suppress(ValueError):
            if json.loads(line).get("event") in ("message", "response"):
                n += 1
    return n


def due(plan: FaultPlan, elapsed_s: float, answered_n: int) -> bool:
    if plan.time is not None:
        return elapsed_s >= plan.time
    return plan.request is not None and answered_n >= plan.request


# --- The account ----------------------------------------------------------------------------


def _error_kind(error: str | None) -> str:
    """A failed request's error, without the addresses, so failures can be grouped."""
    if not error:
        return "response did not match"
    text = error.lower()
    for needle, kind in (
        ("timed out", "timed out"),
        ("timeout", "timed out"),
        ("refused", "connection refused"),
        ("reset", "connection reset"),
        ("broken pipe", "broken pipe"),
        ("unreachable", "unreachable"),
        ("no route", "unreachable"),
        ("name", "name not resolved"),
        ("short response", "short response"),
        ("closed the connection", "short response"),
    ):
        if needle in text:
            return kind
    return error.split(":")[0][:60]


# What a fault account quotes of the mode's capture figures.
CAPTURE_KEYS = ("connections", "syn", "rst", "retransmissions", "unanswered_syn")


def account(fired: list[dict], records: list[dict], mode_row: dict) -> dict:
    """What the faults did to one mode: the failed requests and how, and what the capture saw.

    `records` are the client's JSON lines, `mode_row` the mode's analysis (may lack a capture).
    """
    requests = [r for r in records if r.get("event") == "request"]
    failed = [r for r in requests if not r.get("ok")]
    how: dict[str, int] = {}
    for r in failed:
        kind = _error_kind(r.get("error"))
        how[kind] = how.get(kind, 0) + 1
    summary = next((r for r in records if r.get("event") == "summary"), None)
    return {
        "requests": len(requests),
        "ok": len(requests) - len(failed),
        "failed": len(failed),
        "failed_requests": [
            {"request": r.get("request"), "conn": r.get("conn"), "error": r.get("error")}
            for r in failed
        ],
        "failures_by_kind": how,
        "client_finished": summary is not None,
        "capture": {k: mode_row.get(k) for k in CAPTURE_KEYS},
    }


def summary_line(mode: str, fired: list[dict], acct: dict) -> str:
    """One line: which faults fired, which requests failed and how, what the capture saw."""
    what = ", ".join(_fault_text(f) for f in fired)
    line = f"{mode}: faults {what}: {acct['failed']} of {acct['requests']} requests failed"
    if acct["failures_by_kind"]:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(acct["failures_by_kind"].items()))
        line += f" ({kinds})"
    if not acct["client_finished"]:
        line += "; the client did not finish"
    cap = acct["capture"]
    if cap.get("connections") is not None:
        line += (
            f"; capture: {cap['connections']} connections, {cap.get('rst') or 0} RST, "
            f"{cap.get('retransmissions') or 0} retransmissions, "
            f"{cap.get('unanswered_syn') or 0} unanswered SYN"
        )
    return line


def _fault_text(f: dict) -> str:
    if f.get("fired"):
        return f"{f['action']} at {f['at_s']:.2f} s"
    if f.get("error"):
        return f"{f['action']} (could not be injected: {f['error']})"
    return f"{f['action']} (not fired)"


# --- The thin shell: fire faults while the client runs ------------------------------------


class Injector:
    """Fires a mode's faults from a thread while the client runs.

    `targets`: the server, capture and client (or netns holder) containers and the network.
    `stop()` cancels what has not fired, undoes a pause still in force (so the server can be
    stopped and its log read), and returns one dict per fault for the manifest and analysis.
    """

    def __init__(
        self,
        plans: tuple[FaultPlan, ...],
        *,
        server,
        capture,
        client,
        network,
        progress: Callable[[str], None] = lambda _msg: None,
    ) -> None:
        self.plans = plans
        self.server, self.capture, self.client, self.network = server, capture, client, network
        self.progress = progress
        self.t0 = time.monotonic()
        self.events = [{"action": p.action, "trigger": p.trigger, "fired": False} for p in plans]
        self._undo_at: dict[int, float] = {}
        self._stop = threading.Event()
        self._answered = 0
        self._news = threading.Event()  # set by the log follower on each answer
        self._stream = None
        if any(p.request is not None for p in plans):
            # Follow the server's log as it is written: polling `logs()` lagged by several
            # requests on a busy machine, so `request: 3` fired after the tenth.
            self._stream = server.logs(stream=True, follow=True, stdout=True, stderr=False)
            threading.Thread(target=self._follow, name="faults-log", daemon=True).start()
        self._thread = threading.Thread(target=self._loop, name="faults", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        rest = b""
        with contextlib.suppress(Exception):  # the stream ends when the server stops or on stop()
            for chunk in self._stream:
                lines = (rest + chunk).split(b"\n")
                rest = lines.pop()
                n = answered(b"\n".join(lines).decode("utf-8", "replace"))
                if n:
                    self._answered += n
                    self._news.set()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._news.wait(POLL_S)
            self._news.clear()
            pending = [i for i, e in enumerate(self.events) if not e["fired"] and "error" not in e]
            n = self._answered
            for i in pending:
                if due(self.plans[i], self.elapsed(), n):
                    self.events[i]["answered_before"] = n
                    self._fire(i)
            for i, when in list(self._undo_at.items()):
                if self.elapsed() >= when:
                    self._undo(i)
            if not pending and not self._undo_at:
                return

    def _fire(self, i: int) -> None:
        plan, event = self.plans[i], self.events[i]
        event["at_s"] = round(self.elapsed(), 3)
        try:
            getattr(self, "_" + plan.action)()
        except Exception as exc:  # the account says the fault could not be injected
            event["error"] = _one_line(exc)
            return
        event["fired"] = True
        event["done_at_s"] = round(self.elapsed(), 3)  # the engine's call can take a while
        event["effect"] = EFFECTS[plan.action]
        self.progress(f"fault: {plan.action} at {event['at_s']:.2f} s")
        if plan.duration is not None and plan.action in UNDO_EFFECTS:
            self._undo_at[i] = self.elapsed() + plan.duration

    def _undo(self, i: int) -> None:
        self._undo_at.pop(i, None)
        plan, event = self.plans[i], self.events[i]
        try:
            if plan.action == "pause_server":
                self.server.unpause()
            else:
                self.network.connect(self.client)
            event["undone_at_s"] = round(self.elapsed(), 3)
            event["effect"] += f"; {UNDO_EFFECTS[plan.action]}"
        except Exception as exc:
            event["undo_error"] = _one_line(exc)

    def _kill_server(self) -> None:
        self.server.kill()

    def _pause_server(self) -> None:
        self.server.pause()

    def _disconnect_client(self) -> None:
        self.network.disconnect(self.client, force=True)

    def _kill_capture(self) -> None:
        self.capture.kill()

    def _reset_connections(self) -> None:
        self.server.kill(signal="SIGUSR1")

    def stop(self, client_s: float | None = None) -> list[dict]:
        self._stop.set()
        self._news.set()
        self._thread.join(5)
        if self._stream is not None:
            with contextlib.suppress(Exception):
                self._stream.close()
        for i, plan in enumerate(self.plans):
            event = self.events[i]
            if plan.action == "pause_server" and event["fired"] and "undone_at_s" not in event:
                self._undo(i)  # a paused server could not be stopped, nor its log read
            elif plan.action == "disconnect_client":
                self._undo_at.pop(i, None)  # the client is done: nothing to reconnect
            if not event["fired"] and "error" not in event:
                event["not_fired"] = (
                    "the client finished first"
                    if client_s is None
                    else f"the client finished first (after {client_s:.2f} s)"
                )
        return self.events


def _one_line(exc: BaseException) -> str:
    text = getattr(exc, "explanation", None) or str(exc) or type(exc).__name__
    return str(text).strip().splitlines()[0][:200]
