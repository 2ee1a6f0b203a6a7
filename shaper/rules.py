"""iptables and tc command lines for the NFQUEUE method, as argv lists (pure, nothing runs here).

Each change comes as a `Step`: the argv that makes it and the argv that undoes it, so the runner
can remove exactly what it added, in reverse order, when the sidecar stops.

Packet path (the NFQUEUE method, one sidecar in a host's network namespace):

    peer ──► veth eth0 ──► PREROUTING ──► INPUT: -i eth0 -p tcp (--sport|--dport) PORTS
                                              │ -j NFQUEUE --queue-num Q
                                              ▼
                            kernel holds the skb ◄── shaper: verdict ACCEPT at arrival + delay
                                              │                (DROP for a lost packet)
                                              ▼
                                        local socket
    local socket ──► OUTPUT ──► eth0 root qdisc: tbf rate R (only with --rate) ──► peer

Packets are held on INPUT, where they arrive, not on OUTPUT: a packet held on the sender's
OUTPUT stays charged to the sending socket (TCP small queues) and throughput collapses; once it
has crossed the veth into this namespace it belongs to nobody. Matching on both --sport and
--dport queues the lab's TCP packets whichever end of the connection this host is, and `-i
IFACE` keeps loopback traffic out. Rate is shaped on egress (a qdisc cannot shape what arrives).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from wire.units import format_rate

_PORTS = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?$")
MTU_FRAME = 1514


@dataclass(frozen=True)
class Step:
    """One change to the namespace and the command that takes it back."""

    apply: list[str]
    undo: list[str]


def parse_ports(text: str) -> tuple[int, int]:
    """'3000-3010' -> (3000, 3010); '3000' -> (3000, 3000)."""
    m = _PORTS.match(text.strip())
    if not m:
        raise ValueError(f"ports {text!r}: expected PORT or FIRST-LAST, e.g. 3000-3010")
    first = int(m.group(1))
    last = int(m.group(2) or first)
    if not 1 <= first <= last <= 65535:
        raise ValueError(f"ports {text!r}: need 1 <= FIRST <= LAST <= 65535")
    return first, last


def queue_steps(iface: str, ports: tuple[int, int], queue: int) -> list[Step]:
    """Queue the lab's TCP packets arriving on `iface` (either end of a lab port) to `queue`."""
    span = f"{ports[0]}:{ports[1]}"
    steps = []
    for flag in ("--sport", "--dport"):
        spec = ["INPUT", "-i", iface, "-p", "tcp", flag, span]
        spec += ["-j", "NFQUEUE", "--queue-num", str(queue)]
        steps.append(
            Step(
                apply=["iptables", "-w", "5", "-I", *spec],
                undo=["iptables", "-w", "5", "-D", *spec],
            )
        )
    return steps


def tbf_burst(bps: int) -> int:
    """Bucket size in bytes: 2 ms at the rate, at least two full frames (so TBF never stalls)."""
    return max(2 * MTU_FRAME, bps // 8 * 2 // 1000)


def tbf_args(bps: int, latency_ms: int = 100) -> list[str]:
    """`tbf` parameters. A small burst keeps the rate smooth; 100 ms of queue is a bottleneck
    buffer the sender rarely overflows (TCP small queues keep its share of it short)."""
    return [
        "tbf",
        "rate",
        format_rate(bps),
        "burst",
        str(tbf_burst(bps)),
        "latency",
        f"{latency_ms}ms",
    ]


def rate_steps(iface: str, bps: int) -> list[Step]:
    """Shape everything leaving `iface` (the namespace carries only lab traffic) to `bps`."""
    return [
        Step(
            apply=["tc", "qdisc", "add", "dev", iface, "root", "handle", "1:", *tbf_args(bps)],
            undo=["tc", "qdisc", "del", "dev", iface, "root"],
        )
    ]
