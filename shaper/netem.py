"""tc netem command lines (pure), for kernels that have `sch_netem`.

netem works on egress: it delays, jitters and drops what leaves `iface`, so one sidecar adds its
delay to every round trip through this host (requests leave delayed, or responses' ACKs do). A
`tbf` child of netem shapes the rate after the delay, the layout the netem documentation gives.
Unlike the NFQUEUE line, netem's jitter may reorder packets (its queue is sorted by send time).

Detection (`--method auto`): `probe()` adds a 1 ms netem root; if tc accepts it, the probe is
removed and netem is used; if tc answers "Specified qdisc kind is unknown" (these machines, WSL2,
some Docker Desktop kernels) or fails otherwise, the NFQUEUE delay line is used.
"""

from __future__ import annotations

from shaper.rules import Step, tbf_args

NETEM_LIMIT = 10_000  # packets; netem's default 1000 overflows at 100 Mbit/s and tens of ms


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:g}ms"


def netem_args(delay_s: float, jitter_s: float = 0.0, loss: float = 0.0) -> list[str]:
    """`netem` parameters for a hold of delay ± jitter and a random loss probability (0..1)."""
    args = ["netem", "limit", str(NETEM_LIMIT), "delay", _ms(delay_s)]
    if jitter_s > 0:
        args.append(_ms(jitter_s))
    if loss > 0:
        args += ["loss", "random", f"{loss * 100:g}%"]
    return args


def netem_steps(
    iface: str, delay_s: float, jitter_s: float = 0.0, loss: float = 0.0, bps: int | None = None
) -> list[Step]:
    """netem at the root of `iface`, a tbf child when a rate is given; one undo removes both."""
    root = [
        "tc",
        "qdisc",
        "add",
        "dev",
        iface,
        "root",
        "handle",
        "1:",
        *netem_args(delay_s, jitter_s, loss),
    ]
    undo = ["tc", "qdisc", "del", "dev", iface, "root"]
    steps = [Step(apply=root, undo=undo)]
    if bps:
        child = [
            "tc",
            "qdisc",
            "add",
            "dev",
            iface,
            "parent",
            "1:1",
            "handle",
            "10:",
            *tbf_args(bps),
        ]
        # Deleting the root takes the child with it.
        steps.append(Step(apply=child, undo=[]))
    return steps


def probe(iface: str) -> Step:
    """The detection probe: a 1 ms netem root, removed again right after."""
    return Step(
        apply=["tc", "qdisc", "add", "dev", iface, "root", "netem", "delay", "1ms"],
        undo=["tc", "qdisc", "del", "dev", iface, "root"],
    )


def choose_method(requested: str, probe_ok: bool) -> str:
    """'auto' becomes netem when the probe worked, else nfqueue; explicit choices stand."""
    if requested == "auto":
        return "netem" if probe_ok else "nfqueue"
    return requested
