"""The regression corpus (tests/data/corpus, SOURCES.md says where each file comes from):
real captures from other projects, each read stream by stream exactly as tshark reads it.

Needs tshark: under CI=true a missing tshark fails; elsewhere these tests skip and say why.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from lab.capture import read_capture
from tests.support.tshark_compare import differences
from tests.unit.packets import write_samples

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"
SAMPLES = Path(__file__).resolve().parents[1] / "data"
# Files tshark reads and we deliberately do not: each must be named in a warning instead.
NOT_DECODED = {
    "tcpdump--arcnet-rfc1201-arp-icmp-http.pcap": "link type 129 is not decoded",
}
CAPTURES = sorted(p.name for p in CORPUS.iterdir() if p.suffix in (".pcap", ".pcapng"))


@pytest.fixture(scope="module")
def tshark():
    if shutil.which("tshark") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("tshark is missing (CI installs it: apt-get install tshark)")
        pytest.skip("tshark is not installed (apt-get install tshark)")


@pytest.mark.parametrize("name", [n for n in CAPTURES if n not in NOT_DECODED])
def test_corpus_file_reads_as_tshark_reads_it(name, tshark):
    assert differences(str(CORPUS / name)) == []


@pytest.mark.parametrize("name", sorted(NOT_DECODED))
def test_corpus_file_we_do_not_decode_says_why(name):
    capture = read_capture(CORPUS / name)
    assert capture.packets == []
    assert [w for w in capture.warnings if NOT_DECODED[name] in w], capture.warnings


def test_lab_samples_read_as_tshark_reads_them(tmp_path, tshark):
    write_samples(tmp_path)
    for path in sorted(tmp_path.iterdir()):
        assert differences(str(path)) == [], path.name


def test_every_corpus_file_has_its_source():
    listed = (CORPUS / "SOURCES.md").read_text()
    for name in CAPTURES:
        assert f"| `{name}` |" in listed, f"{name} is not in SOURCES.md"
