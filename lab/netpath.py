"""Where a run ran and the path between its sides, as the manifest records them. Pure.

On two engines the path is an overlay network: its MTU is smaller than a bridge's (VXLAN
takes 50 bytes of each frame), so the MSS in the SYNs is too, and the base RTT is the LAN's.
The runner probes the RTT and the MTU from the client's namespace before each mode's traffic
(`lab.runner.probe_path`); the MSS comes from the capture's SYNs.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable

from lab.document import EngineRecord, ModeResult, PathRecord

# What an MSS must leave room for in an MTU: IPv4 (20) and TCP (20) headers; timestamps take
# another 12 of each segment but not of the announced MSS.
IP_TCP_HEADERS = 40


def syn_mss(packets: Iterable) -> int | None:
    """The smallest MSS option announced by a SYN or SYN-ACK (lab.capture's `mss`), if any."""
    announced = [p.mss for p in packets if p.mss]
    return min(announced) if announced else None


def path_record(driver: str, probes: Iterable[dict | None], mss: int | None) -> PathRecord:
    """The path from each mode's probe ({base_rtt_ms, mtu}) and the SYNs' MSS."""
    probes = [p for p in probes if p]
    rtts = [p["base_rtt_ms"] for p in probes if p.get("base_rtt_ms") is not None]
    mtus = [p["mtu"] for p in probes if p.get("mtu")]
    return PathRecord(
        network_driver=driver,
        mtu=min(mtus) if mtus else None,
        syn_mss=mss,
        base_rtt_ms=round(statistics.median(rtts), 3) if rtts else None,
    )


def with_clock(path: PathRecord | None, modes: Iterable[ModeResult]) -> PathRecord | None:
    """The path with the clock offset of the mode whose estimate is tightest (lab.clock), when
    the run captured on both ends; on one engine that makes a bridge's path record."""
    clocks = [m.clock for m in modes if m.clock is not None and m.clock.bound_ms is not None]
    if not clocks:
        return path
    best = min(clocks, key=lambda c: c.bound_ms)
    path = path if path is not None else PathRecord(network_driver="bridge")
    path.clock_offset_ms, path.clock_bound_ms = best.offset_ms, best.bound_ms
    return path


def engine_record(url: str, facts: dict, swarm: dict | None = None) -> EngineRecord:
    """An engine as the manifest names it: `facts` from Engine.facts(), `swarm` from
    lab.preflight (node ID, manager) on two engines."""
    record = EngineRecord(
        url=url, engine=facts.get("engine"), api=facts.get("api"), kernel=facts.get("kernel")
    )
    if swarm:
        record.swarm_node = swarm.get("node_id")
        record.manager = swarm.get("manager")
    return record
