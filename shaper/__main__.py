"""`python -m shaper`: apply network conditions in this namespace until SIGTERM/SIGINT.

Prints `shaper ready method=<netem|nfqueue> ...` once every rule and qdisc is in place (the
orchestrator waits for that line). On SIGTERM or SIGINT it removes exactly what it added, lets
any held packet go, prints `shaper stopped ...` and exits 0 (1 if something could not be removed).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from shaper import netem, rules, runner
from shaper.delayline import Conditions, DelayLine
from wire import units


def _nonneg(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m shaper",
        description="Add round-trip time, jitter, loss and a rate limit to the lab's TCP traffic "
        "in this network namespace (run as a sidecar sharing the lab host's namespace).",
    )
    p.add_argument(
        "--rtt",
        type=_nonneg,
        default=0.0,
        metavar="MS",
        help="round-trip time this sidecar adds (one sidecar per end: half each)",
    )
    p.add_argument(
        "--jitter",
        type=_nonneg,
        default=0.0,
        metavar="MS",
        help="± uniform variation of the hold; never reorders (nfqueue)",
    )
    p.add_argument(
        "--loss",
        type=_nonneg,
        default=0.0,
        metavar="PCT",
        help="percent of the lab's packets dropped, at random on --seed",
    )
    p.add_argument("--rate", default=None, help="egress rate limit, e.g. 20mbit (tbf)")
    p.add_argument("--method", choices=("auto", "netem", "nfqueue"), default="auto")
    p.add_argument("--iface", default="eth0")
    p.add_argument("--ports", default="3000-3010", help="lab TCP ports, PORT or FIRST-LAST")
    p.add_argument("--queue", type=int, default=0, help="NFQUEUE number (0..65535)")
    p.add_argument("--seed", type=int, default=None, help="seed of the loss and jitter RNGs")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        conditions = Conditions(args.rtt / 1000, args.jitter / 1000, args.loss / 100)
        bps = units.require_rate(args.rate) if args.rate else None
        ports = rules.parse_ports(args.ports)
        if not 0 <= args.queue <= 65535:
            raise ValueError(f"queue {args.queue}: must be 0..65535")
    except ValueError as exc:
        print(f"shaper: error: {exc}", file=sys.stderr)
        return 2

    # Signals only set a byte on a pipe, which the loop's select() sees; nothing is torn down
    # from inside a signal handler.
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)

    method = args.method
    if method == "auto":
        method = netem.choose_method("auto", runner.probe_ok(netem.probe(args.iface)))

    queue_changes = runner.Changes()  # iptables: removed first, so held packets can drain
    tc_changes = runner.Changes()
    qsock = None
    line = DelayLine(conditions, seed=args.seed)
    stats = runner.Stats()
    status = 0
    try:
        if method == "netem":
            if conditions.active:
                for step in netem.netem_steps(
                    args.iface, conditions.delay_s, conditions.jitter_s, conditions.loss, bps
                ):
                    tc_changes.apply(step)
            elif bps:
                for step in rules.rate_steps(args.iface, bps):
                    tc_changes.apply(step)
        else:
            if bps:
                for step in rules.rate_steps(args.iface, bps):
                    tc_changes.apply(step)
            if conditions.active:
                # Bind before the rules exist, so no packet is ever queued with nobody to read it.
                qsock = runner.QueueSocket(args.queue, gso=conditions.loss == 0)
                for step in rules.queue_steps(args.iface, ports, args.queue):
                    queue_changes.apply(step)
        runner.say(
            f"shaper ready method={method} rtt_ms={args.rtt:g} jitter_ms={args.jitter:g} "
            f"loss_pct={args.loss:g} rate={units.format_rate(bps) if bps else 'none'} "
            f"iface={args.iface} ports={ports[0]}-{ports[1]} queue={args.queue} "
            f"seed={args.seed if args.seed is not None else 'random'}"
        )
        if qsock is not None:
            runner.serve(line, qsock, wake_r, stats)
        else:
            os.read(wake_r, 1)  # nothing to do in userspace: wait for a signal
    except (runner.ShaperError, OSError) as exc:
        runner.warn(f"error: {exc}")
        status = 1
    finally:
        errors = queue_changes.undo()
        if qsock is not None:
            try:
                runner.release_all(line, qsock)
            except OSError as exc:
                errors.append(f"releasing held packets: {exc}")
            qsock.close()
        errors += tc_changes.undo()
        for err in errors:
            runner.warn(f"cleanup: {err}")
        if errors:
            status = 1
    runner.say(f"shaper stopped method={method} {stats.summary()}")
    return status


if __name__ == "__main__":
    sys.exit(main())
