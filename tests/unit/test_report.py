"""Reports rendered from a hand-made run folder: a real pcap written with dpkt, hand-made JSON."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import dpkt
import pytest

from lab import report
from lab.document import ModeResult, RunResult

CLIENT_IP, SERVER_IP, SERVER_PORT = "172.20.0.3", "172.20.0.2", 3000
MSS = 1448
RTT = 0.020
SIZES = [("index.html", 14_000), ("app.css", 30_000), ("app.js", 90_000), ("hero.jpg", 250_000)]


def _frame(src, sport, dst, dport, flags, seq, ack, payload=b""):
    tcp = dpkt.tcp.TCP(
        sport=sport,
        dport=dport,
        seq=seq % 2**32,
        ack=ack % 2**32,
        flags=flags,
        win=65535,
        data=payload,
    )
    ip = dpkt.ip.IP(
        src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=dpkt.ip.IP_PROTO_TCP, data=tcp
    )
    ip.len = len(ip)
    eth = dpkt.ethernet.Ethernet(
        src=b"\x02" * 6, dst=b"\x04" * 6, type=dpkt.ethernet.ETH_TYPE_IP, data=ip
    )
    return bytes(eth)


class Conn:
    """One connection as a capture on the server sees it, with slow start in flights per RTT."""

    A = dpkt.tcp.TH_ACK

    def __init__(self, out: list, port: int, t: float, isn_c: int = 1000, isn_s: int = 5000):
        self.out, self.port, self.t = out, port, t
        self.c, self.s = isn_c, isn_s
        self.cwnd = 10
        C, S, A = (CLIENT_IP, port), (SERVER_IP, SERVER_PORT), self.A
        self._send(C, dpkt.tcp.TH_SYN, self.c, 0)
        self._send(S, dpkt.tcp.TH_SYN | A, self.s, self.c + 1, dt=0.00005)
        self.c += 1
        self.s += 1
        self._send(C, A, self.c, self.s, dt=RTT)

    def _send(self, src, flags, seq, ack, payload=b"", dt=0.0):
        self.t += dt
        dst = (SERVER_IP, SERVER_PORT) if src[0] == CLIENT_IP else (CLIENT_IP, self.port)
        self.out.append((self.t, _frame(src[0], src[1], dst[0], dst[1], flags, seq, ack, payload)))

    def get(self, size: int) -> None:
        C, S, A, P = (CLIENT_IP, self.port), (SERVER_IP, SERVER_PORT), self.A, dpkt.tcp.TH_PUSH
        req = b"GET /x HTTP/1.1\r\n\r\n"
        self._send(C, P | A, self.c, self.s, req, dt=0.0002)
        self.c += len(req)
        left = size
        while left:
            for _ in range(self.cwnd):
                n = min(MSS, left)
                self._send(S, A | (P if n == left else 0), self.s, self.c, b"x" * n, dt=0.00002)
                self.s += n
                left -= n
                if not left:
                    break
            self._send(C, A, self.c, self.s, dt=RTT if left else RTT / 2)
            self.cwnd *= 2

    def server_closes(self) -> None:  # HTTP/1.0: FIN, FIN+ACK, ACK (3 packets)
        C, S, A, F = (CLIENT_IP, self.port), (SERVER_IP, SERVER_PORT), self.A, dpkt.tcp.TH_FIN
        self._send(S, F | A, self.s, self.c, dt=0.0001)
        self._send(C, F | A, self.c, self.s + 1, dt=RTT)
        self._send(S, A, self.s + 1, self.c + 1, dt=0.00005)


def write_pcap(path: Path, frames: list) -> None:
    with open(path, "wb") as fh:
        w = dpkt.pcap.Writer(fh)
        for ts, frame in sorted(frames, key=lambda f: f[0]):
            w.writepkt(frame, ts=ts)


def client_log(path: Path, records: list[tuple[str, int, float, int]]) -> None:
    lines = [
        json.dumps(
            {
                "event": "request",
                "conn": i,
                "local_port": port,
                "request": name,
                "t_sent": t,
                "bytes_received": size,
                "ok": True,
            }
        )
        for i, (name, port, t, size) in enumerate(records)
    ]
    path.write_text("\n".join([*lines, json.dumps({"event": "summary"})]) + "\n")


def page4_analysis() -> dict:
    """analysis.json of the hand-made page4 run, as lab.results would write its keys."""
    return {
        "scenario": {
            "name": "page4",
            "description": "Four resources, closing vs keep-alive.",
            "workload": {"resources": [{"name": n, "size": s} for n, s in SIZES]},
            "modes": [
                {"name": "non-persistent", "persistent": False, "parallel": 4},
                {"name": "keep-alive", "persistent": True, "parallel": 1},
            ],
        },
        "modes": [
            {
                "name": "non-persistent",
                "persistent": False,
                "connections": 4,
                "syn": 4,
                "handshake_packets": 12,
                "teardown_packets": 12,
                "packets": 321,
                "bytes": 398765,
                "retransmissions": 0,
                "page_time_s": 0.4321,
                "rtt_ms": 20.05,
                "predicted_page_time_s": 0.4,
                "per_connection": [
                    {
                        "stream": i,
                        "handshake_packets": 3,
                        "teardown_packets": 3,
                        "teardown": "3-packet",
                        "requests": [{"request": n}],
                    }
                    for i, (n, _) in enumerate(SIZES)
                ],
            },
            {
                "name": "keep-alive",
                "persistent": True,
                "connections": 1,
                "syn": 1,
                "handshake_packets": 3,
                "teardown_packets": 3,
                "packets": 300,
                "bytes": 390001,
                "retransmissions": 0,
                "page_time_s": 0.2468,
                "rtt_ms": 20.02,
                "predicted_page_time_s": 0.25,
                "per_connection": [
                    {
                        "stream": 0,
                        "handshake_packets": 3,
                        "teardown_packets": 3,
                        "teardown": "3-packet",
                        "requests": [{"request": n} for n, _ in SIZES],
                    }
                ],
            },
        ],
        "network": {
            "rtt_ms": 20.0,
            "jitter_ms": None,
            "loss_pct": None,
            "rate_bps": 20_000_000,
            "method": "nfqueue delay line",
            "base_rtt_ms": 0.05,
            "rtt_check": {
                "expected_ms": 20.05,
                "tolerance_ms": 2.0,
                "ok": True,
                "modes": [
                    {"mode": "non-persistent", "measured_ms": 20.05, "ok": True},
                    {"mode": "keep-alive", "measured_ms": 20.02, "ok": True},
                ],
            },
        },
    }


def make_run(tmp: Path) -> Path:
    run = tmp / "20260101T000000Z-page4"
    (run / "non-persistent").mkdir(parents=True)
    (run / "keep-alive").mkdir()
    frames: list = []
    for i, (_name, size) in enumerate(SIZES):
        conn = Conn(frames, 40000 + i, 1000.0 + i * 0.001, isn_c=1000 * i, isn_s=7000 * i)
        conn.get(size)
        conn.server_closes()
    write_pcap(run / "non-persistent" / "capture.pcap", frames)
    client_log(
        run / "non-persistent" / "client.jsonl",
        [(n, 40000 + i, 1000.0 + i, s) for i, (n, s) in enumerate(SIZES)],
    )
    frames = []
    conn = Conn(frames, 50000, 2000.0)
    for _name, size in SIZES:
        conn.get(size)
    conn.server_closes()
    write_pcap(run / "keep-alive" / "capture.pcap", frames)
    client_log(
        run / "keep-alive" / "client.jsonl",
        [(n, 50000, 2000.0 + i, s) for i, (n, s) in enumerate(SIZES)],
    )

    analysis = page4_analysis()
    (run / "analysis.json").write_text(json.dumps(analysis))
    manifest = {
        "run_id": run.name,
        "lab_version": "0.1.0",
        "status": "complete",
        "command": "python -m lab run scenarios/page4.yaml",
        "timings_s": {"containers": 3.1, "traffic": 1.2, "drain": 0.6, "analysis": 0.4},
    }
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, list[Path]]:
    run = make_run(tmp_path_factory.mktemp("report"))
    return run, report.build_reports(run)


def test_every_file_is_written(built):
    run, paths = built
    names = {p.relative_to(run).as_posix() for p in paths}
    assert names == {
        "report.md",
        "report.html",
        "charts/waterfall.png",
        "charts/packets-per-category.png",
        "charts/ladder.png",
        "charts/slow-start-stevens.png",
    }
    for p in paths:
        assert p.stat().st_size > 500, p
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths if p.suffix == ".png")


def test_html_is_self_contained(built):
    run, _ = built
    page = (run / "report.html").read_text()
    assert page.count("<svg") == 4
    refs = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', page)
    external = [r for r in refs if not r.startswith("#") and not r.endswith("capture.pcap")]
    assert external == []
    assert not re.search(r"<(script|link|img|iframe)\b", page)
    assert "@import" not in page and "url(http" not in page
    # the only URLs left are the SVG and XLink namespace names, which are never fetched
    urls = set(re.findall(r"https?://[^\"' )<]*", page))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}
    # the pcap links are relative and point at files that exist
    pcaps = [r for r in refs if r.endswith("capture.pcap")]
    assert sorted(pcaps) == ["keep-alive/capture.pcap", "non-persistent/capture.pcap"]
    assert all((run / p).exists() for p in pcaps)
    assert "Wireshark" in page


def test_svg_ids_are_unique_across_charts(built):
    page = (built[0] / "report.html").read_text()
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))
    for target in re.findall(r'href="#([^"]+)"', page):
        assert target in ids


@pytest.mark.parametrize("name", ["report.md", "report.html"])
def test_key_numbers_present(built, name):
    text = (built[0] / name).read_text()
    for needle in [
        "432.1",
        "400.0",
        "+8.0%",
        "246.8",
        "-1.3%",
        "nfqueue delay line",
        "verified: expected 20.05 ± 2.00 ms",
        "RTT +20 ms, rate 20 Mbit/s",
        "4 resources need 4 connections",
        "4 teardowns = 16 packets",
        "differs",
        "holds",
        "How to read this report",
        "3.10",
    ]:
        assert needle in text, needle


def test_claims_in_report_come_from_the_analysis_when_present(tmp_path):
    run = make_run(tmp_path)
    analysis = json.loads((run / "analysis.json").read_text())
    analysis["claims"] = [
        {
            "claim": "a claim only the analysis knows",
            "mode": "x",
            "holds": True,
            "observed": 1,
            "expected": 1,
            "why": "because",
        }
    ]
    (run / "analysis.json").write_text(json.dumps(analysis))
    report.build_reports(run)
    assert "a claim only the analysis knows" in (run / "report.md").read_text()


def test_streams_and_phases_from_the_pcap(built):
    run, _ = built
    streams, total = report.read_details(run / "keep-alive" / "capture.pcap")
    assert len(streams) == total == 1
    exchanges = streams[0].exchanges
    assert [e.nbytes for e in exchanges] == [s for _, s in SIZES]
    np, _ = report.read_details(run / "non-persistent" / "capture.pcap")
    assert [s.client_port for s in np] == [40000, 40001, 40002, 40003]
    ladder = report.ladder_packets(report.pick_ladder_stream(np))
    assert [(p.flags, p.seq, p.ack) for p in ladder[:3]] == [
        ("SYN", 0, None),
        ("SYN, ACK", 0, 1),
        ("ACK", 1, 1),
    ]
    assert [p.flags for p in ladder[-3:]] == ["FIN, ACK", "FIN, ACK", "ACK"]


def test_stevens_fresh_is_slower_than_warm(built):
    run, _ = built
    data = report.load_report_data(run)
    (fresh, fname), (warm, wname) = report.stevens_series(data)
    assert fname.startswith("hero.jpg") and wname.startswith("hero.jpg")
    assert "fresh" in fresh.label and "warm" in warm.label
    assert fresh.points[-1][1] == warm.points[-1][1] == 250_000
    assert fresh.points[-1][0] > warm.points[-1][0] + 2 * RTT * 1000


def test_missing_analysis_is_a_usage_error(tmp_path):
    from lab.errors import UsageError

    with pytest.raises(UsageError, match=r"no analysis\.json"):
        report.build_reports(tmp_path)


def test_packet_counts_add_up_to_the_analysis_total():
    mode = ModeResult(handshake_packets=3, teardown_packets=4, packets=50, data_segments=20)
    mode.pure_acks = 20
    assert report.packet_counts(mode, []) == {
        "handshake": 3,
        "data": 20,
        "pure ACK": 20,
        "teardown": 4,
        "other": 3,
    }


def test_terminal_summary_and_comparison(built):
    from rich.console import Console

    from lab.summary import print_comparison, print_summary

    run, _ = built
    a = RunResult.from_dict(json.loads((run / "analysis.json").read_text()))
    console = Console(record=True, width=160)
    print_summary(a, console, timings={"containers": 3.25, "traffic": 1.5})
    text = console.export_text()
    for needle in [
        "non-persistent",
        "keep-alive",
        "432.1",
        "+8.0%",
        "✗ differs",
        "✓ holds",
        "4 teardowns = 16 packets",
        "containers 3.25 s",
        "total 4.75 s",
    ]:
        assert needle in text, needle
    b = RunResult.from_dict(a.to_dict())
    b.modes["non-persistent"].page_time_s = 0.8642
    console = Console(record=True, width=160)
    print_comparison(a, b, console)
    text = console.export_text()
    assert "864.2" in text and "+100.0%" in text
    assert "Every claim has the same verdict in both runs." in text


def test_a_capture_that_is_not_one_still_gives_the_tables(tmp_path):
    run = make_run(tmp_path)
    (run / "keep-alive" / "capture.pcap").write_bytes(b"not a capture at all")
    paths = report.build_reports(run)
    page = (run / "report.html").read_text()
    assert "246.8" in page  # the keep-alive numbers come from analysis.json
    assert any(p.name == "waterfall.png" for p in paths)  # drawn from the other mode


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(None, "no analysis.json there", id="missing"),
        pytest.param("{not json", "line 1: not valid JSON", id="bad-json"),
        pytest.param('{"x": 1}', 'no "modes" list', id="not-an-analysis"),
    ],
)
def test_compare_refuses_what_is_not_a_run(tmp_path, content, message):
    from lab.commands.compare import load_analysis
    from lab.errors import UsageError

    if content is not None:
        (tmp_path / "analysis.json").write_text(content)
    with pytest.raises(UsageError, match=re.escape(message)):
        load_analysis(str(tmp_path))


def test_lab_report_and_compare_commands(built, capsys):
    from lab.cli import main

    run, _ = built
    assert main(["report", str(run)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(["compare", str(run), str(run / "analysis.json")]) == 0
    assert "Every claim has the same verdict" in capsys.readouterr().out
    assert main(["report", str(run / "nope")]) == 2


def test_compare_says_where_each_run_ran(tmp_path, capsys, monkeypatch):
    """A one-engine run against a two-engine run of the same scenario: the comparison puts
    the engines and the path (bridge, or overlay with its MTU, MSS, base RTT and clocks) side
    by side before the figures."""
    from lab.cli import main
    from lab.document import EngineRecord, Manifest, PathRecord
    from lab.results import write_json_atomic

    one = make_run(tmp_path / "one")
    two = make_run(tmp_path / "two")
    local = EngineRecord(url="local", engine="28.2.2", kernel="6.1.0")
    write_json_atomic(
        one / "manifest.json", Manifest(engines={"server": local, "client": local}).to_dict()
    )
    manifest = Manifest(
        engines={
            "server": EngineRecord(url="tcp://10.0.0.11:2375", engine="28.2.2", manager=True),
            "client": EngineRecord(url="tcp://10.0.0.12:2375", engine="28.2.2"),
        },
        path=PathRecord(
            network_driver="overlay",
            mtu=1450,
            syn_mss=1410,
            base_rtt_ms=0.42,
            clock_offset_ms=0.003,
            clock_bound_ms=0.09,
        ),
    )
    write_json_atomic(two / "manifest.json", manifest.to_dict())
    monkeypatch.setenv("COLUMNS", "200")  # no folding inside the cells
    assert main(["compare", str(one), str(two)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Where each ran" in out
    assert "bridge (one engine)" in out and "overlay, MTU 1450, MSS 1410 announced" in out
    assert "tcp://10.0.0.12:2375" in out and "+0.003 ms" in out
