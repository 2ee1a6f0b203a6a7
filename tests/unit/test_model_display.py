"""How the prediction and its error are shown: a percentage inside the model's band, words
outside it (lab.summary, lab.report.render)."""

from __future__ import annotations

import io

from rich.console import Console

from lab.document import ModeResult, ProgramCostsResult, RunResult
from lab.report.render import cost_rows, prediction_rows
from lab.summary import error_cell, modes_table, print_summary

NOTE = "29% slower than predicted (the model's band here is ±25%): 6 connections at once ..."


def run() -> RunResult:
    costs = ProgramCostsResult(setup_ms=0.3, service_ms=0.6, reconnect_ms=2.0)
    costs.samples = {"setup": 9, "service": 10, "reconnect": 9, "stagger": 0}
    inside = ModeResult(
        name="http1.0", page_time_s=0.0228, predicted_page_time_s=0.0225,
        predicted_network_only_s=0.0011, prediction_error_pct=1.3, prediction_band_pct=25.0,
        program_costs=costs,
    )  # fmt: skip
    outside = ModeResult(
        name="keepalive-6", page_time_s=0.024, predicted_page_time_s=0.0186,
        predicted_network_only_s=0.0002, prediction_error_pct=29.0, prediction_band_pct=25.0,
        prediction_note=NOTE,
    )  # fmt: skip
    return RunResult(modes={"http1.0": inside, "keepalive-6": outside})


def test_inside_the_band_a_percentage_outside_it_words() -> None:
    r = run()
    assert error_cell(r.modes["http1.0"]) == 1.3
    assert error_cell(r.modes["keepalive-6"]) == "outside ±25%"
    headers, rows = prediction_rows(r)
    assert headers == [
        "mode", "measured (ms)", "network alone (ms)", "predicted (ms)", "error", "why"
    ]  # fmt: skip
    assert rows[0] == ["http1.0", "22.8", "1.1", "22.5", "+1.3%", ""]
    assert rows[1][4:] == ["outside ±25%", NOTE]


def test_the_costs_table_says_what_was_measured() -> None:
    headers, rows = cost_rows(run())
    assert headers[1:] == [
        "opening (ms)", "stagger (ms)", "setup (ms)", "service (ms)", "turnaround (ms)",
        "reconnect (ms)",
    ]  # fmt: skip
    assert rows == [["http1.0", "–", "–", "0.30 ×9", "0.60 ×10", "–", "2.00 ×9"]]


def test_the_terminal_prints_the_note_under_the_table() -> None:
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    console.print(modes_table(run()))
    print_summary(run(), console, timings={})
    text = out.getvalue()
    assert "outside ±25%" in text and "+1.3%" in text
    assert "predicted, network alone (ms)" in text
    assert f"model, keepalive-6: {NOTE}" in text
