"""Benchmark: a warm page10 on two engines in one Swarm against the same run on one engine.

    python benchmarks/swarm_bench.py [--runs 3] [--scenario scenarios/page10.yaml]
                                     [--engine server=URL --engine client=URL]

Without --engine it starts two nodes (Docker engines in containers, tests/integration/nodes.py)
on a private bridge, forms a Swarm, and removes them at the end. One two-engine run first pushes
the images (timed apart: the cold cost); then the one-engine and two-engine runs alternate, so
that both see the same machine. Prints each run's wall time and the lab's phase breakdown, the
medians and their ratio. Target (issue 10): two engines at most 1.5x one engine; pushing every
image to a fresh node under a minute.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lab
from lab.placement import parse_engine_args


def timed(scenario: str, out: str, engines: dict | None) -> tuple[float, dict]:
    started = time.monotonic()
    result = lab.run(scenario, out=out, engines=engines)
    return time.monotonic() - started, result.manifest.timings_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scenario", default="scenarios/page10.yaml")
    parser.add_argument("--engine", action="append", default=[], metavar="SIDE=URL")
    args = parser.parse_args()
    engines = parse_engine_args(args.engine)
    started_nodes = None
    if not engines:
        import docker

        from tests.integration import nodes

        client = docker.from_env(timeout=120)
        started_nodes = (client, f"tcplab-bench-nodes-{int(time.time())}")
        t = time.monotonic()
        server, peer = nodes.start_nodes(client, started_nodes[1], 2, {})
        nodes.form_swarm([server, peer])
        print(f"two nodes in one Swarm in {time.monotonic() - t:.1f} s")
        engines = {"server": server.url, "client": peer.url}
    try:
        with tempfile.TemporaryDirectory(prefix="swarm-bench-") as out:
            seconds, timings = timed(args.scenario, out, engines)
            push = timings.get("image_sync", 0.0)
            print(f"first two-engine run {seconds:.1f} s (image push {push:.1f} s)")
            one, two = [], []
            for i in range(args.runs):
                for label, runs, where in (
                    ("one engine", one, None),
                    ("two engines", two, engines),
                ):
                    seconds, timings = timed(args.scenario, out, where)
                    runs.append(seconds)
                    phases = ", ".join(f"{k} {v:.1f}" for k, v in sorted(timings.items()))
                    print(f"run {i + 1} {label:<12} {seconds:5.1f} s  ({phases})")
        m1, m2 = statistics.median(one), statistics.median(two)
        print(f"median: one engine {m1:.1f} s, two engines {m2:.1f} s, ratio {m2 / m1:.2f}")
    finally:
        if started_nodes:
            nodes.remove_nodes(*started_nodes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
