"""Benchmark: where the threaded server stops keeping up, and how it says no.

    python benchmarks/load_limit.py [--steps 100,250,500,1000,1500,2000] [--requests 20]
                                    [--size 1024] [--max-connections N] [--idle-timeout 60]
                                    [--json FILE]

One server container (HTTP keep-alive on port 3000, the lab's default limits: 512 MiB, 2048
pids, and its own default `--max-connections` 1024 unless given) on an internal network, kept
for the whole ramp so a leak would show as growth from step to step. Its idle timeout is 60 s
as in scenarios/load.yaml: with a thousand client threads under one interpreter lock, a client
thread can leave its connection idle past the default 5 s, and those closes (counted apart as
`idle_closed`) would hide the refusals this benchmark looks for. Per step, a fresh client
container opens N keep-alive connections (its thread pool starts them one by one, so with
few requests each the first ones finish before the last connect: the task count shows how
many were really open at once) and sends `--requests` requests on each (the
lab's client: `--parallel N --repeat N*K`, every response checked byte for byte).

Per step it reports: requests completed and failed, connections the server refused (its log's
`refused` events) against connections the client saw fail, request latency p50/p95 (sent to
last byte), connect p95, requests/s, and the server container's peak memory and task count
(threads) from the engine's stats, sampled every 0.3 s. At the end: the first step with
refusals, the first step that slowed sharply (under 60% of the best requests/s so far, or a
p95 over 1 s and 5x the first step's), and whether the server is still up, never restarted
and never OOM-killed. Exit 0 when the server survived
every step and every failure was a refused connection; 1 otherwise.

Not a test: its figures depend on the machine (2 shared cores here) and go into the README.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib

from lab import hosts
from lab.analysis import percentile
from lab.engine import Engine
from lab.images import ensure_images
from tests.support.stats import StatsSampler

PORT = 3000


def json_lines(raw: bytes) -> list[dict]:
    out = []
    for line in raw.decode("utf-8", "replace").splitlines():
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                out.append(json.loads(line))
    return out


def step_figures(records: list[dict], refused: int) -> dict:
    """One step's row from the client's records and the server's refusals. Pure."""
    requests = [r for r in records if r.get("event") == "request"]
    summary = next((r for r in records if r.get("event") == "summary"), {})
    ok = [r for r in requests if r.get("ok")]
    failed = [r for r in requests if not r.get("ok")]
    latencies = [r["t_done"] - r["t_sent"] for r in ok if r.get("t_done") and r.get("t_sent")]
    connects = {
        r["conn"]: r["t_connected"] - r["t_connect_start"]
        for r in requests
        if r.get("t_connected") and r.get("t_connect_start")
    }
    failed_conns = {r["conn"] for r in failed}
    # A connection the server refused never got a response: all its requests failed.
    answered = {r["conn"] for r in ok}
    errors: dict[str, int] = {}
    for r in failed:
        kind = (r.get("error") or "?").split(":")[0].split(" by ")[0][:40]
        errors[kind] = errors.get(kind, 0) + 1
    elapsed = summary.get("elapsed_s") or 0.0
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    c95 = percentile(list(connects.values()), 95)
    return {
        "completed": len(ok),
        "failed": len(failed),
        "failed_connections": len(failed_conns),
        "failed_after_a_response": len(failed_conns & answered),
        "refused": refused,
        "errors": errors,
        "p50_ms": None if p50 is None else p50 * 1000,
        "p95_ms": None if p95 is None else p95 * 1000,
        "connect_p95_ms": None if c95 is None else c95 * 1000,
        "requests_per_s": len(ok) / elapsed if elapsed else None,
        "elapsed_s": elapsed,
    }


def verdict(rows: list[dict]) -> dict:
    """First step with refusals, and the first that slowed sharply: under 60% of the best
    throughput so far, or a p95 latency over 1 s and 5x the first step's. Pure."""
    refusing = next((r["parallel"] for r in rows if r["refused"]), None)
    slowing = None
    best = 0.0
    first_p95 = rows[0]["p95_ms"] if rows else None
    for row in rows:
        rate, p95 = row["requests_per_s"] or 0.0, row["p95_ms"]
        if best and rate < 0.6 * best:
            slowing = row["parallel"]
            break
        if first_p95 and p95 and p95 > 1000 and p95 > 5 * first_p95:
            slowing = row["parallel"]
            break
        best = max(best, rate)
    clean = all(
        r["failed_connections"] == r["refused"] and not r["failed_after_a_response"] for r in rows
    )
    return {"refuses_from": refusing, "slows_from": slowing, "refusals_clean": clean}


def run(args: argparse.Namespace) -> int:
    images = ensure_images()
    engine = Engine.from_env(timeout=120)
    run_id = f"loadlimit-{uuid.uuid4().hex[:8]}"
    network = server = None
    containers = []
    rows: list[dict] = []
    try:
        network = engine.create_network(hosts.network_spec(run_id=run_id, mode="limit"))
        server_argv = ["--host", "0.0.0.0", "--listen", f"{PORT}:persistent", "--protocol",
                       "http", "--log-format", "json", "--read-timeout", "30",
                       "--idle-timeout", str(args.idle_timeout)]  # fmt: skip
        if args.max_connections:
            server_argv += ["--max-connections", str(args.max_connections)]
        server = engine.start(
            hosts.server_spec(
                image=images["server"], run_id=run_id, mode="limit", network=network.name,
                command=server_argv, limits=hosts.Limits(),
            )
        )  # fmt: skip
        containers.append(server)
        engine.wait_for_log(server, '"event": "listening"', 30, "the server")
        for n in args.steps:
            row = _step(engine, images["client"], run_id, network, server, n, args)
            rows.append(row)
            _print_row(row)
            if row["server_status"] != "running":
                break
        info = engine.inspect(server)
        state = info["State"]
        outcome = {
            "machine": f"{platform.node()} {platform.machine()}, "
            f"{len(os.sched_getaffinity(0))} cores, {platform.release()}",
            "server_max_connections": args.max_connections or 1024,
            "server_idle_timeout_s": args.idle_timeout,
            "requests_per_connection": args.requests,
            "size": args.size,
            "steps": rows,
            "server_running": state["Running"],
            "restart_count": info["RestartCount"],
            "oom_killed": state["OOMKilled"],
            "memory_limit": info["HostConfig"]["Memory"],
            "pids_limit": info["HostConfig"]["PidsLimit"],
            "listening_lines": server.logs().decode("utf-8", "replace").count('"listening"'),
            **verdict(rows),
        }
    finally:
        engine.remove_containers(containers)
        if network is not None:
            engine.remove_network(network)
        engine.close()
    _print_outcome(outcome)
    if args.json:
        Path(args.json).write_text(json.dumps(outcome, indent=2) + "\n")
    survived = (
        outcome["server_running"]
        and outcome["restart_count"] == 0
        and not outcome["oom_killed"]
        and outcome["listening_lines"] == 1
    )
    return 0 if survived and outcome["refusals_clean"] else 1


def _step(engine: Engine, image: str, run_id: str, network, server, n: int, args) -> dict:
    """One step of the ramp: a fresh client with `n` keep-alive connections against the server."""
    before = _server_counts(server)
    sampler = StatsSampler(engine.client.api, server.id, every=0.3)
    client_argv = [
        "--host", "server", "--port", str(PORT), "--protocol", "http",
        "--mode", "persistent", f"--resources=load.bin:{args.size}",
        "--parallel", str(n), "--repeat", str(n * args.requests),
        "--connect-timeout", "10", "--timeout", "30", "--log-format", "json",
    ]  # fmt: skip
    # The client's own pids limit must not be what fails: a thread per connection.
    client = engine.start(
        hosts.client_spec(
            image=image, run_id=run_id, mode=f"limit-{n}", command=client_argv,
            network=network.name, limits=hosts.Limits(pids=max(hosts.DEFAULT_PIDS, n + 256)),
        )
    )  # fmt: skip
    try:
        exit_code = engine.wait(client, args.step_timeout)
        records = json_lines(engine.logs(client, stderr=False))
        time.sleep(1.0)  # let the server's handler threads finish before the next step
    finally:
        stats = sampler.stop()
        engine.remove_containers([client])
    row = {"parallel": n, "client_exit": exit_code}
    after = _server_counts(server)
    row |= step_figures(records, after["refused"] - before["refused"])
    row["idle_closed"] = after["idle"] - before["idle"]
    row |= stats
    row["server_status"] = engine.state(server).status
    return row


def _server_counts(server) -> dict[str, int]:
    logs = server.logs(stdout=True, stderr=False)
    return {"refused": logs.count(b'"event": "refused"'), "idle": logs.count(b"idle timeout")}


def _fmt(x, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def _print_row(r: dict) -> None:
    print(
        f"{r['parallel']:>6} conns: {r['completed']:>7} ok {r['failed']:>6} failed "
        f"({r['failed_connections']} conns) refused {r['refused']:>5} idle-closed "
        f"{r['idle_closed']}  "
        f"p50 {_fmt(r['p50_ms'])} ms p95 {_fmt(r['p95_ms'])} ms connect p95 "
        f"{_fmt(r['connect_p95_ms'])} ms  {_fmt(r['requests_per_s'], '.0f')} req/s  "
        f"server {r['memory_peak'] / 2**20:.1f} MiB {r['pids_peak']} tasks  "
        f"{r['errors'] or ''}",
        flush=True,
    )


def _print_outcome(o: dict) -> None:
    print(
        f"\nmachine: {o['machine']}; server --max-connections {o['server_max_connections']}, "
        f"limits {o['memory_limit'] / 2**20:.0f} MiB / {o['pids_limit']} pids\n"
        f"refuses from: {o['refuses_from'] or 'never'} connections; slows sharply from: "
        f"{o['slows_from'] or 'never'}; refusals clean (every failed connection was one the "
        f"server logged as refused, none failed after an answer): {o['refusals_clean']}\n"
        f"server still running: {o['server_running']}, restarts {o['restart_count']}, "
        f"OOM-killed {o['oom_killed']}, 'listening' lines {o['listening_lines']}"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--steps",
        default="100,250,500,1000,1500,2000",
        type=lambda s: [int(x) for x in s.split(",") if x],
        help="concurrent keep-alive connections per step",
    )
    p.add_argument("--requests", type=int, default=20, help="requests per connection")
    p.add_argument("--size", type=int, default=1024, help="response body bytes")
    p.add_argument(
        "--max-connections", type=int, default=None, help="server's limit (default: its own)"
    )
    p.add_argument("--idle-timeout", type=float, default=60.0, help="server's, seconds")
    p.add_argument("--step-timeout", type=float, default=600.0, help="seconds per step")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    return run(p.parse_args())


if __name__ == "__main__":
    sys.exit(main())
