"""The model on the bare bridge (issue 11, point 3): page10's page time is the programs' own
work, which the model measures per mode (lab.costs) and adds to the network's. Every mode is
predicted within 25%, or says in words why not.

In the 22 runs of page10 made while writing this, on a shared 2-core machine with a load average
of 4-8 from other work, the sequential modes (http1.0, keepalive) came within 2.6% every time;
keepalive-6, six connections at once, within 25% in 19 (the others +28%, +30%, +32%, each with
its note). So the test holds the sequential modes to 25% and lets keepalive-6 either meet it
or say why not: it is not stable enough here to demand.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.integration.test_network import run_scenario

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PAGE10 = REPO / "scenarios" / "page10.yaml"


def test_page10_is_predicted_within_25_percent(needs_docker, lab_images, tmp_path: Path) -> None:
    analysis = run_scenario(tmp_path, yaml.safe_load(PAGE10.read_text()))
    modes = {m["name"]: m for m in analysis["modes"]}
    for name, m in modes.items():
        costs, parallel = m["program_costs"], m["parallel"]
        assert costs["samples"]["opening"] == 1, name  # the connections opened at once
        assert costs["samples"]["setup"] == m["connections"] - parallel, name  # the later ones
        assert costs["samples"]["service"] == 10, name  # one per request
        # on the bridge the network alone explains a few percent of the page at most
        assert m["predicted_network_only_s"] < 0.25 * m["page_time_s"], name
        assert m["prediction_band_pct"] == 25.0, name
    for name in ("http1.0", "keepalive"):
        assert abs(modes[name]["prediction_error_pct"]) <= 25.0, modes[name]
        assert "prediction_note" not in modes[name]
    parallel = modes["keepalive-6"]
    if abs(parallel["prediction_error_pct"]) > 25.0:
        assert "6 connections at once" in parallel["prediction_note"], parallel
    assert modes["http1.0"]["program_costs"]["reconnect_ms"] > 0  # 9 reconnects between 10
