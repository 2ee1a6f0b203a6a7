"""atheris harness for the scenario loader (`lab.scenario.parse_scenario`).

    python fuzz/scenario_fuzz.py -atheris_runs=200000      # or -max_total_time=60
    mkdir -p /tmp/fz && python fuzz/scenario_fuzz.py /tmp/fz fuzz/corpus/scenario -max_total_time=60
    # (libFuzzer adds new inputs to the first folder: keep it out of the seeds)

Odd first byte: the rest is a whole file. Even: the rest is spliced as the value of one field
of a good scenario (the first byte picks which), so fuzzing reaches the field checks instead of
stopping at YAML syntax. Properties: a `Scenario` or one one-line `UsageError`, nothing else;
what loads dumps and loads back equal; its names give container names Docker accepts and
folders inside the run folder. `TestOneInput` needs no atheris.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab import hosts
from lab.errors import UsageError
from lab.scenario import dump_yaml, parse_scenario

DOCKER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")

TEMPLATE = """\
name: {name}
protocol: {protocol}
description: {description}
workload:
  resources:
    - {{name: {resource}, kind: html, size: {size}}}
    - {{name: b.css, kind: css, size: 2k}}
modes:
  - {{name: {mode}, persistent: false, parallel: {parallel}}}
  - {{name: keepalive, persistent: true, pipeline: true}}
network: {{rtt: {rtt}, rate: {rate}, loss: 1}}
limits: {{memory: {memory}, pids: 512}}
timeouts: {{connect: {connect}}}
faults:
  - {{action: pause_server, at: {{request: {request}}}, duration: 1}}
"""
DEFAULTS = {
    "name": "fuzz",
    "protocol": "http",
    "description": "x",
    "resource": "index.html",
    "size": "14k",
    "mode": "http1.0",
    "parallel": "2",
    "rtt": "20",
    "rate": "20mbit",
    "memory": "256m",
    "connect": "5",
    "request": "1",
}
FIELDS = sorted(DEFAULTS)


def _text(data: bytes) -> str | None:
    if not data:
        return None
    try:
        body = data[1:].decode("utf-8")
    except UnicodeDecodeError:
        return None  # load_scenario refuses it before parsing ("not UTF-8 text")
    if data[0] % 2:
        return body
    values = dict(DEFAULTS)
    values[FIELDS[(data[0] // 2) % len(FIELDS)]] = body
    return TEMPLATE.format(**values)


def TestOneInput(data: bytes) -> None:
    text = _text(data)
    if text is None:
        return
    try:
        scenario = parse_scenario(text, "fuzz.yaml")
    except UsageError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("fuzz.yaml"), str(exc)
        return
    assert parse_scenario(dump_yaml(scenario)) == scenario
    run_dir = Path("/runs") / f"20260101T000000Z-{scenario.name}"
    assert run_dir.parent == Path("/runs") and ".." not in run_dir.parts
    for mode in scenario.modes:
        folder = run_dir / mode.name
        assert folder.parent == run_dir and mode.name not in (".", ".."), mode.name
        spec = hosts.server_spec(
            image="i", run_id=run_dir.name, mode=mode.name, network="n", command=[],
            limits=hosts.Limits(),
        )  # fmt: skip
        assert DOCKER_NAME.fullmatch(spec["name"]), spec["name"]


def main() -> None:
    import atheris  # lazy: only a fuzzing run needs it; the unit tests import this file

    atheris.instrument_all()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
