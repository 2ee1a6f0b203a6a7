"""The report of a load run stays bounded: each pcap is read once, the waterfall draws the
first WATERFALL_ROWS streams of each mode, and lab.analysis describes in detail only those and
the ladder's and Stevens graph's picks. Work is counted, not timed."""

from __future__ import annotations

import json

import pytest

from lab import analysis, capture, charts, report
from lab.document import ModeResult
from tests.unit.big_run import make_big_run

CLOSING, KEEPALIVE = 300, (60, 4)  # both above WATERFALL_ROWS


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    run = make_big_run(tmp_path_factory.mktemp("big") / "run", CLOSING, 3 * 1448, KEEPALIVE)
    counted = {"reads": [], "waterfall": None, "streams": {}}
    patch = pytest.MonkeyPatch()
    read, waterfall, load = capture.read_capture, charts.waterfall, report.load_report_data

    def counting_read(path):
        counted["reads"].append(str(path))
        return read(path)

    def counting_waterfall(modes):
        counted["waterfall"] = list(modes)
        return waterfall(modes)

    def counting_load(*args, **kwargs):
        data = load(*args, **kwargs)
        counted["streams"] = {k: len(v) for k, v in data.streams.items()}
        return data

    patch.setattr(capture, "read_capture", counting_read)
    patch.setattr(charts, "waterfall", counting_waterfall)
    patch.setattr(report, "load_report_data", counting_load)
    try:
        paths = report.build_reports(run)
    finally:
        patch.undo()
    return run, paths, counted


def test_each_pcap_is_read_once(big):
    run, _, counted = big
    assert sorted(counted["reads"]) == sorted(
        str(run / m / "capture.pcap") for m in ("keepalive", "sequential")
    )


def test_the_waterfall_draws_the_first_streams_and_says_how_many_there_were(big):
    run, _, counted = big
    modes = {m.name: m for m in counted["waterfall"]}
    assert {n: (len(m.conns), m.total) for n, m in modes.items()} == {
        "sequential": (report.WATERFALL_ROWS, CLOSING),
        "keepalive": (report.WATERFALL_ROWS, KEEPALIVE[0]),
    }
    assert [c.label.split()[0] for c in modes["sequential"].conns][:3] == ["#0", "#1", "#2"]
    svg = (run / "report.html").read_text()
    assert "first 40 of 300 connections" in svg and "first 40 of 60 connections" in svg


def test_streams_are_built_only_for_what_is_drawn(big):
    _, paths, counted = big
    # the first rows, plus at most the ladder's and the Stevens graph's picks
    assert all(n <= report.WATERFALL_ROWS + 3 for n in counted["streams"].values())
    assert {p.name for p in paths} >= {"waterfall.png", "ladder.png", "slow-start-stevens.png"}


def test_ladder_and_stevens_picks_come_from_per_connection():
    # the shortest complete connection, and the largest response (a later one when warm)
    mode = {
        "per_connection": [
            {
                "stream": 70,
                "syn_packets": 1,
                "t_first_fin": 1.0,
                "data_segments": {"client": 1},
                "packets": 9,
                "flights": [{"burst": 0, "bytes": 100}],
            },
            {
                "stream": 90,
                "syn_packets": 1,
                "t_first_fin": 2.0,
                "data_segments": {"client": 2},
                "packets": 50,
                "flights": [{"burst": 0, "bytes": 900}, {"burst": 1, "bytes": 500}],
            },
            {"stream": 95, "packets": 3, "flights": []},  # no handshake, no data: no pick
        ]
    }
    wanted = report.wanted_streams(ModeResult.from_dict(mode))
    assert wanted == set(range(report.WATERFALL_ROWS)) | {70, 90}


def test_analysis_json_keeps_the_segment_series_of_the_first_connections_only(big):
    run, _, _ = big
    a = json.loads((run / "analysis.json").read_text())
    seq = next(m for m in a["modes"] if m["name"] == "sequential")["per_connection"]
    with_series = [c["stream"] for c in seq if "server_series" in c]
    assert with_series == list(range(analysis.SERIES_CONNECTIONS))
