"""`python -m lab validate SCENARIO`: check a scenario file and say what a run would do."""

from __future__ import annotations

import argparse

from lab.scenario import load_scenario
from wire import protocols
from wire.units import format_bytes


def run(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario)  # UsageError (exit 2) on any problem
    workload = scenario.workload
    proto = protocols.get(scenario.protocol)
    page = len(workload.byte_sizes())
    print(
        f"{args.scenario}: ok: {scenario.name} ({scenario.protocol}), "
        f"{_plural(page, 'request')}, {format_bytes(sum(workload.byte_sizes()))}"
    )
    for mode in scenario.modes:
        extra = []
        if mode.protocol is not None and mode.protocol != scenario.protocol:
            extra.append(f"protocol {mode.protocol}")
        if mode.pipeline:
            extra.append("pipelined")
        if proto.has_framing_choice:
            extra.append(f"framing {scenario.framing_of(mode)}")
        own = len(mode.workload.byte_sizes()) if mode.workload is not None else page
        if mode.repeat > 1:  # the workload sent `repeat` times over
            extra.append(f"{_plural(own * mode.repeat, 'request')} ({own} x {mode.repeat:,})")
        elif mode.workload is not None:
            extra.append(_plural(own, "request"))
        tls = scenario.tls_of(mode)
        if tls:
            extra.append(f"TLS {tls}" + (" with resumption" if scenario.resume_of(mode) else ""))
        server = scenario.server_of(mode)  # last: the server's side of the mode
        loops = f" x {server.loops} loops" if server.loops > 1 else ""
        extra.append(f"server {server.concurrency}{loops}")
        # A browser picks its own connections (up to 6 per host): no "N at a time".
        how = "Chromium (browser)" if mode.client == "browser" else f"{mode.parallel} at a time"
        print(f"  mode {mode.name}: {mode.server_mode}, {how}" + "".join(f", {e}" for e in extra))
    net = scenario.network
    if net.shaped:
        parts = [
            f"rtt {net.rtt:g} ms" if net.rtt else "",
            f"jitter {net.jitter:g} ms" if net.jitter else "",
            f"loss {net.loss:g}%" if net.loss else "",
            f"rate {net.rate / 1e6:g} Mbit/s" if net.rate else "",
        ]
        print("  network: " + ", ".join(p for p in parts if p))
    if scenario.capture.on_client:
        print("  capture: on the server and on the client (clock offset, one-way delays)")
    if scenario.faults:
        print(f"  faults: {', '.join(f.action for f in scenario.faults)}")
    return 0


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")
