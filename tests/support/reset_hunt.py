"""Hunt the keep-alive reset of tests/integration/test_load.py (issue 11, point 8).

Runs one mode of a scenario (by default load-ci's keep-alive mode) again and again on real
containers, as `lab run` does (the load test's runner: it reads the server namespace's reset
counters, tests.support.netstat), with a second capture on the host (`tcpdump -i any`, needs root
and a local engine): it sees every packet on the host side of both veths, so the client's end
as well as the server's. A run whose capture shows a RST keeps its folder (the lab's capture
from the server's namespace, the host's capture, the logs); the others are deleted.

    python -m tests.support.reset_hunt [--runs N] [--mode NAME] [--load THREADS] [--out DIR]

`--load N` keeps N busy-looping processes running on the host meanwhile (a busier machine,
as CI is while other jobs share it). `--drop-acks P` drops that fraction of the pure ACKs
reaching the server (iptables in its namespace, after its capture has seen them): the server
then sends its FIN again, as it would if a busy host's backlog had dropped the client's ACK.
`--rto-min MS` lowers the server's minimum retransmission timeout (a route metric in its
namespace) from 200 ms: an ACK a few milliseconds late is then as late as one 200 ms late on a
stalled host.
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from lab import docker_util
from lab import scenario as sc
from lab.engine import Engine
from lab.images import ensure_images
from lab.placement import Placement
from lab.results import analyze_mode_folder, plans
from tests.integration.test_load import WatchedModeRunner, _reset_kinds

REPO = Path(__file__).resolve().parents[2]


def _spin() -> None:
    while True:
        pass


class DroppingModeRunner(WatchedModeRunner):
    """The load test's runner, dropping a fraction of the pure ACKs that reach the server."""

    drop_acks = 0.0
    rto_min_ms = 0.0

    def start_server_side(self, plan) -> None:
        super().start_server_side(plan)
        self.server.reload()
        pid = str(self.server.attrs["State"]["Pid"])
        if self.rto_min_ms:
            ip = ["nsenter", "-t", pid, "-n", "ip"]
            routes = subprocess.run(
                [*ip, "-o", "route", "show"], check=True, timeout=10, capture_output=True
            ).stdout.decode()
            for route in routes.splitlines():
                change = [*ip, "route", "change", *route.split(), "rto_min", f"{self.rto_min_ms}ms"]
                subprocess.run(change, check=True, timeout=10)
        if not self.drop_acks:
            return
        rule = [
            "nsenter", "-t", pid, "-n", "iptables", "-A", "INPUT", "-p", "tcp",
            "--tcp-flags", "SYN,FIN,RST,ACK,PSH", "ACK", "-m", "length", "--length", "0:64",
            "-m", "statistic", "--mode", "random", "--probability", str(self.drop_acks),
            "-j", "DROP",
        ]  # fmt: skip
        subprocess.run(rule, check=True, timeout=10)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--scenario", default=str(REPO / "scenarios" / "load-ci.yaml"))
    p.add_argument("--mode", default="persistent-200x20")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--load", type=int, default=0)
    p.add_argument("--out", default="/work/reset-runs/hunt")
    p.add_argument("--drop-acks", type=float, default=0.0)
    p.add_argument("--rto-min", type=float, default=0.0)
    args = p.parse_args()
    scenario = sc.load_scenario(Path(args.scenario))
    mode = scenario.mode(args.mode)
    port = scenario.port_of(mode)
    images = ensure_images()
    client = docker_util.client(timeout=120)
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.load)]
    for s in spinners:
        s.start()
    out = Path(args.out)
    total = resets = 0
    try:
        for i in range(args.runs):
            run_dir = out / f"run-{i:03d}"
            if run_dir.exists():
                shutil.rmtree(run_dir)
            run_dir.mkdir(parents=True)
            (plan,) = plans(scenario, [mode], run_dir)
            host_pcap = run_dir / "host.pcap"
            dump = subprocess.Popen(
                ["tcpdump", "-i", "any", "-n", "-s", "128", "-B", "65536", "-w", str(host_pcap),
                 f"tcp port {port}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            time.sleep(0.5)  # tcpdump's socket is open before the first SYN
            run_id = f"resethunt-{uuid.uuid4().hex[:8]}"
            mode_runner = DroppingModeRunner(
                Placement.single(Engine(client)), images, run_id, progress=lambda _m: None
            )
            mode_runner.drop_acks = args.drop_acks
            mode_runner.rto_min_ms = args.rto_min
            try:
                result = mode_runner.run(plan)
                time.sleep(0.5)
            finally:  # stopped on Ctrl-C too
                dump.terminate()
                _, err = dump.communicate(timeout=10)
            (run_dir / "host-tcpdump.log").write_bytes(err)
            a = analyze_mode_folder(plan.folder, (port,)).to_dict()
            total += a["connections"]
            rst = [c for c in a["per_connection"] if c["rst"]]
            line = (
                f"run {i}: client exit {result.client_exit}, {a['connections']} streams, "
                f"{a['fin']} FIN, {a['rst']} RST, {a['retransmissions']} retransmissions; "
                f"server's namespace sent resets {mode_runner.server_resets}"
            )
            print(line, flush=True)
            if rst:
                resets += 1
                kinds = _reset_kinds(plan.folder / "capture.pcap", a)
                print("    not the crossed ACK and FIN (None: it is):", kinds, flush=True)
                for c in rst:
                    print("   ", {k: c.get(k) for k in (
                        "stream", "client_port", "rst_by", "teardown", "teardown_complete",
                        "payload_bytes", "closed_first")}, flush=True)  # fmt: skip
            else:
                shutil.rmtree(run_dir)
    finally:
        for s in spinners:
            s.terminate()
        client.close()
    print(f"{args.runs} runs, {total} connections, {resets} runs with a reset")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
