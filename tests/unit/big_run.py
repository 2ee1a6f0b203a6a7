"""A load run's folder made by hand: thousands of connections per mode in a real pcap, and the
analysis.json that `lab.results` would write for it (from `lab.analysis` itself).

Used by test_report_scale (a few hundred connections) and, at full size, to time `lab report`:

    PYTHONPATH=. python -c "from tests.unit.big_run import make_big_run; \\
        make_big_run('runs/tmp-big', 10_000, 25 * 1448, (1000, 100))"
    time python -m lab report runs/tmp-big
"""

from __future__ import annotations

import json
from pathlib import Path

from lab import analysis as an
from lab import claims
from lab.document import RunResult
from tests.unit.packets import Flow, conversation, pcap_bytes

SERVER = ("10.0.0.3", 3000)


def closing_packets(connections: int, response: int) -> tuple[list, list[dict]]:
    """One connection per request, one after another (a port is reused every 40,000, with a
    new ISN, as in a load run); the client's request records beside them."""
    packets: list = []
    records = []
    t = 1000.0
    for i in range(connections):
        port = 20000 + i % 40000
        conversation(t, ("10.0.0.2", port), SERVER, response, "close3", 0.001, packets, i * 7919)
        records.append(_record(i, port, t, response))
        t = packets[-1].ts + 0.0005
    return packets, records


def keepalive_packets(connections: int, requests: int, response: int) -> tuple[list, list[dict]]:
    packets: list = []
    records = []
    for c in range(connections):
        port = 60000 + c
        t = 2000.0 + c * 0.0001
        flow = Flow([], ("10.0.0.2", port), SERVER, client_isn=c * 104729)
        flow.handshake(t, 0.001)
        for r in range(requests):
            at = flow.packets[-1].ts + 0.0005
            flow.exchange(at, 100, response, 0.001)
            records.append(_record(c * requests + r, port, at, response))
        flow.close3(flow.packets[-1].ts + 0.0005, "server", 0.001)
        packets += flow.packets
    packets.sort(key=lambda p: p.ts)
    return packets, records


def _record(i: int, port: int, t: float, size: int) -> dict:
    return {
        "event": "request",
        "conn": i,
        "local_port": port,
        "request": "load.bin",
        "t_connect_start": t,
        "t_connected": t + 0.001,
        "t_sent": t + 0.0011,
        "t_first_byte": t + 0.002,
        "t_done": t + 0.003,
        "bytes_received": size,
        "ok": True,
    }


def make_big_run(
    run: str | Path, connections: int, response: int, keepalive: tuple[int, int] = (100, 20)
) -> Path:
    """A run folder with a closing mode of `connections` connections (`response` bytes each)
    and a keep-alive mode of keepalive[0] connections carrying keepalive[1] requests of 1,000
    bytes each; frames cut to 128 bytes as load.yaml's capture does."""
    run = Path(run)
    modes = []
    scenario_modes = []
    for name, persistent, (packets, records), parallel, repeat in (
        ("sequential", False, closing_packets(connections, response), 1, connections),
        (
            "keepalive",
            True,
            keepalive_packets(keepalive[0], keepalive[1], 1000),
            keepalive[0],
            keepalive[0] * keepalive[1],
        ),
    ):
        folder = run / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "capture.pcap").write_bytes(pcap_bytes(packets, snap=128))
        lines = [json.dumps(r) for r in records] + [json.dumps({"event": "summary"})]
        (folder / "client.jsonl").write_text("\n".join(lines) + "\n")
        summary = an.summarize_mode(an.analyze(packets, (SERVER[1],)), records, (SERVER[1],))
        summary.update(name=name, persistent=persistent, parallel=parallel, folder=name)
        modes.append(summary)
        scenario_modes.append(
            {"name": name, "persistent": persistent, "parallel": parallel, "repeat": repeat}
        )
    analysis = {
        "scenario": {
            "name": "big",
            "protocol": "http",
            "workload": {"resources": [{"name": "load.bin", "size": response}]},
            "modes": scenario_modes,
        },
        "modes": modes,
    }
    # as lab.results.analyze_run stores them
    analysis["claims"] = [c.to_dict() for c in claims.check_claims(RunResult.from_dict(analysis))]
    (run / "analysis.json").write_text(json.dumps(analysis))
    (run / "manifest.json").write_text(json.dumps({"run_id": run.name, "status": "complete"}))
    return run
