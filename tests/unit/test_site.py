"""wire.site: a scenario's page as a web site. Every body has its exact size and is valid for its
type (PNG chunks and CRCs, JPEG segments, HTML that lists every resource, CSS and JS that parse),
the lab's client and server agree on it, and Chromium renders it where Chromium is installed."""

from __future__ import annotations

import io
import re
import shutil
import struct
import subprocess
import tracemalloc
import zlib
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from client import plan
from lab import scenario as lab_scenario
from lab.argv import client_argv, server_argv
from lab.browser import page_timing as browser_timing
from lab.scenario import load_scenario
from server.__main__ import build_parser, config_from_args
from tests.conftest import require
from tests.unit.tcp_harness import live_server, run_client
from wire import http, payload, site

ROOT = Path(__file__).resolve().parents[2]
PAGE10 = load_scenario(ROOT / "scenarios" / "page10.yaml")


def page_of(scenario: lab_scenario.Scenario) -> site.Page:
    """The page exactly as the lab hands it to the server (`--page=` of server_argv)."""
    arg = next(a for a in server_argv(scenario) if a.startswith("--page="))
    return site.parse_page(arg.removeprefix("--page="))


PAGE = page_of(PAGE10)


# --- Readers for the formats (written here from the specifications, not from wire.site) -------


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, data) of every chunk; asserts the signature, the lengths and every CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body), f"bad CRC on {kind!r}"
        chunks.append((kind, body))
        pos += 12 + length
    assert pos == len(data)
    return chunks


def check_png(data: bytes) -> tuple[int, int]:
    chunks = png_chunks(data)
    kinds = [k for k, _ in chunks]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds
    width, height, depth, colour = struct.unpack(">IIBB", chunks[0][1][:10])
    assert (depth, colour) == (1, 3)  # 1-bit palette: a PLTE before the IDAT
    assert kinds.index(b"PLTE") < kinds.index(b"IDAT")
    pixels = zlib.decompress(b"".join(b for k, b in chunks if k == b"IDAT"))
    assert len(pixels) == height * (1 + (width + 7) // 8)
    return width, height


def jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, payload) up to SOS, then asserts that the scan ends with EOI."""
    assert data[:2] == b"\xff\xd8"
    pos, segments = 2, []
    while True:
        assert data[pos] == 0xFF
        marker = data[pos + 1]
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        segments.append((marker, data[pos + 4 : pos + 2 + length]))
        pos += 2 + length
        if marker == 0xDA:  # SOS: entropy-coded data to the EOI
            assert data[-2:] == b"\xff\xd9"
            assert b"\xff" not in data[pos:-2]  # no marker inside the scan
            return segments


def huffman_table(dht: bytes) -> dict[str, int]:
    """ITU T.81 Annex C: BITS (codes per length) and HUFFVAL as {code bits: symbol}."""
    counts, values = dht[1:17], iter(dht[17:])
    table, code = {}, 0
    for length, count in enumerate(counts, 1):
        for _ in range(count):
            table[format(code, f"0{length}b")] = next(values)
            code += 1
        code <<= 1
    assert all(set(c) != {"1"} for c in table), "an all-ones code is reserved"
    return table


def check_jpeg(data: bytes) -> tuple[int, int]:
    """Segments, then the scan decoded block by block (greyscale, one DC and one AC table):
    exactly the blocks of the frame, and only 1-bits of padding left."""
    segments = jpeg_segments(data)
    sof = next(p for m, p in segments if m == 0xC0)  # baseline
    height, width = struct.unpack(">HH", sof[1:5])
    assert sof[5] == 1  # one component
    tables = {p[0]: huffman_table(p) for m, p in segments if m == 0xC4}
    dc, ac = tables[0x00], tables[0x10]
    sos = data.index(b"\xff\xda")  # the filler is hex text: the first one is the SOS
    scan = data[sos + 2 + struct.unpack(">H", data[sos + 2 : sos + 4])[0] : -2]
    bits = "".join(format(b, "08b") for b in scan)
    pos = 0

    def symbol(table: dict[str, int]) -> int:
        nonlocal pos
        for end in range(pos + 1, min(pos + 17, len(bits) + 1)):
            if bits[pos:end] in table:
                value, pos = table[bits[pos:end]], end
                return value
        raise AssertionError(f"no Huffman code at bit {pos}")

    for _ in range(-(-width // 8) * -(-height // 8)):
        category = symbol(dc)  # the DC difference's category, then that many bits
        pos += category
        k = 1
        while k < 64:
            rs = symbol(ac)
            if rs == 0x00:  # EOB
                break
            k += (rs >> 4) + 1
            pos += rs & 0x0F
    assert set(bits[pos:]) <= {"1"} and len(bits) - pos < 8, "the scan's length is wrong"
    return width, height


def brotli_stored(data: bytes) -> bytes:
    """RFC 7932, the one form a Brotli stream of uncompressed meta-blocks takes here: WBITS 16,
    a meta-block (ISLAST 0, 4 nibbles of MLEN-1, ISUNCOMPRESSED 1), then an empty last one."""
    bits = int.from_bytes(data[:3], "little")
    assert bits & 0b1111 == 0, "WBITS=16, ISLAST=0, MNIBBLES=4"
    length = (bits >> 4 & 0xFFFF) + 1
    assert bits >> 20 == 1, "ISUNCOMPRESSED=1, then zero bits to the byte"
    assert data[3 + length :] == b"\x03", "ISLAST=1, ISLASTEMPTY=1"
    return data[3 : 3 + length]


def woff2_tables(data: bytes) -> dict[bytes, bytes]:
    """W3C WOFF2 section 5 (no transforms, no metadata): the header's lengths and offsets, the
    table directory, the tables out of the Brotli stream, the private block to the end."""
    (signature, flavor, length, count, _, sfnt_size, compressed, *_, priv_offset, priv_length) = (
        struct.unpack(">4sIIHHIIHHIIIII", data[:48])
    )
    assert (signature, flavor, length) == (b"wOF2", 0x00010000, len(data))
    assert sfnt_size >= len(data)  # OTS refuses a file larger than its output
    tags = [b"cmap", b"head", b"hhea", b"hmtx", b"maxp", b"name", b"OS/2", b"post", b"cvt ",
            b"fpgm", b"glyf", b"loca"]  # fmt: skip
    pos, entries = 48, []
    for _ in range(count):
        flags = data[pos]
        tag, version = tags[flags & 0x3F], flags >> 6
        assert version == (3 if tag in (b"glyf", b"loca") else 0)  # the null transforms
        pos, n = pos + 1, 0
        while True:  # UIntBase128
            n, more = n << 7 | data[pos] & 0x7F, data[pos] & 0x80
            pos += 1
            if not more:
                break
        entries.append((tag, n))
    stream = brotli_stored(data[pos : pos + compressed])
    assert priv_offset == pos + compressed + (-(pos + compressed) % 4)
    assert priv_offset + priv_length == len(data) and priv_length > 0
    tables, offset = {}, 0
    for tag, n in entries:
        tables[tag], offset = stream[offset : offset + n], offset + n
    assert offset == len(stream)
    return tables


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []  # (how, url)
        self.title = ""
        self._in: str | None = None
        self.style = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "link":
            self.urls.append((f"link {a.get('rel')}", a["href"] or ""))
        elif tag in ("script", "img", "iframe") and a.get("src"):
            self.urls.append((tag, a["src"] or ""))
        self._in = tag

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "title":
            self.title += data
        elif self._in == "style":
            self.style += data
            self.urls += [("font-face", u) for u in re.findall(r'url\("([^"]+)"\)', data)]


# --- Every body: its size, its type, its validity --------------------------------------------


def test_page10_bodies_have_their_exact_sizes_and_types() -> None:
    types = {r.name: PAGE.content_type(r.name, r.size) for r in PAGE.resources}
    assert types == {
        "index.html": "text/html; charset=utf-8",
        "style.css": "text/css; charset=utf-8",
        "theme.css": "text/css; charset=utf-8",
        "vendor.js": "text/javascript; charset=utf-8",
        "app.js": "text/javascript; charset=utf-8",
        "analytics.js": "text/javascript; charset=utf-8",
        "hero.jpg": "image/jpeg",
        "photo.jpg": "image/jpeg",
        "logo.png": "image/png",
        "text.woff2": "font/woff2",
    }
    for r in PAGE.resources:
        assert len(PAGE.body(r.name, r.size)) == r.size, r.name
    assert check_png(PAGE.body("logo.png", 6 * 1024)) == (32, 32)
    assert check_jpeg(PAGE.body("hero.jpg", 180 * 1024)) == (32, 32)
    assert set(woff2_tables(PAGE.body("text.woff2", 40 * 1024))) == {
        b"OS/2",
        b"cmap",
        b"glyf",
        b"head",
        b"hhea",
        b"hmtx",
        b"loca",
        b"maxp",
        b"name",
        b"post",
    }


def test_the_font_is_the_truetype_font_fonttools_reads() -> None:
    ttlib = pytest.importorskip("fontTools.ttLib")
    font = site.sfnt("tcplab text.woff2")
    tt = ttlib.TTFont(io.BytesIO(font), checkChecksums=2)  # raises on a wrong checksum
    assert tt["maxp"].numGlyphs == 2 and tt["cmap"].getBestCmap() == {0x20: "space"}
    assert tt["name"].getDebugName(1) == "tcplab text.woff2"
    glyph = tt["glyf"][tt.getGlyphOrder()[0]]
    assert (glyph.numberOfContours, glyph.xMin, glyph.yMax) == (1, 50, 700)
    assert tt["OS/2"].version == 4 and tt["post"].formatType == 3.0
    tables = woff2_tables(PAGE.body("text.woff2", 40 * 1024))
    assert tables[b"head"][12:] == tt.reader["head"][12:]  # all but checkSumAdjustment
    assert {t: d for t, d in tables.items() if t != b"head"} == {
        t: tt.reader[t.decode()] for t in tables if t != b"head"
    }


def test_the_document_links_every_other_resource_at_the_clients_urls() -> None:
    links = Links()
    links.feed(PAGE.body("index.html", 14 * 1024).decode("utf-8"))
    assert links.title == "TCP Connection Lab: a page of 10 resources"
    hows = dict((url, how) for how, url in links.urls)
    # The same targets as the lab client's requests (wire.http.request_bytes).
    expected = {f"/{r.name}?size={r.size}" for r in PAGE.resources if r.name != "index.html"}
    assert set(hows) == expected
    assert hows["/style.css?size=24576"] == "link stylesheet"
    assert hows["/vendor.js?size=163840"] == "script"
    assert hows["/logo.png?size=6144"] == "img"
    assert hows["/text.woff2?size=40960"] == "font-face"
    assert "@font-face" in links.style
    request = http.request_bytes("style.css", 24576, "h", True, "HTTP/1.1")
    assert request.startswith(b"GET /style.css?size=24576 HTTP/1.1\r\n")


def test_other_kinds_are_linked_too() -> None:
    page = site.parse_page("home.html:4000,about.html:900,data.bin:100,a:300:js")
    links = Links()
    links.feed(page.body("home.html", 4000).decode())
    assert sorted(links.urls) == [
        ("iframe", "/about.html?size=900"),
        ("link preload", "/data.bin?size=100"),
        ("script", "/a?size=300"),
    ]
    assert page.content_type("a", 300) == "text/javascript; charset=utf-8"  # kind as given
    assert page.body("data.bin", 100) == payload.pattern("data.bin", 100)  # other: as today
    about = page.body("about.html", 900).decode()
    assert "<title>about.html</title>" in about and len(about) == 900


def css_is_sane(text: str) -> None:
    without_comments = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    assert "/*" not in without_comments and "*/" not in without_comments
    assert without_comments.count("{") == without_comments.count("}")
    assert re.fullmatch(r"(\s*[^{}]+\{[^{}]*\})*\s*", without_comments), without_comments


def test_css_and_js_are_a_comment_padded_program() -> None:
    css = PAGE.body("style.css", 24 * 1024).decode()
    css_is_sane(css)
    assert ":root { --tcplab-style-css: 1; }" in css
    js = PAGE.body("app.js", 60 * 1024).decode()
    code = re.sub(r"/\*.*?\*/", "", js, flags=re.S).strip()
    assert code == '(self.tcplab = self.tcplab || []).push("app.js");'


@pytest.mark.skipif(not shutil.which("node"), reason="node is not installed")
def test_js_runs_in_node(tmp_path: Path) -> None:
    scripts = [PAGE.body(r.name, r.size).decode() for r in PAGE.resources if r.kind == "js"]
    program = tmp_path / "page.js"
    program.write_text(
        "globalThis.self = globalThis;\n" + "\n".join(scripts) + "\n"
        "console.log(self.tcplab.join(' '));\n"
    )
    proc = subprocess.run(
        ["node", str(program)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["vendor.js", "app.js", "analytics.js"]


def test_images_decode_with_pillow() -> None:
    image = pytest.importorskip("PIL.Image")
    for name, size, fmt in [("logo.png", 6144, "PNG"), ("hero.jpg", 184320, "JPEG")]:
        with image.open(io.BytesIO(PAGE.body(name, size))) as im:
            im.load()  # decodes every pixel: raises on a broken file
            assert (im.format, im.size) == (fmt, (32, 32))


@pytest.mark.parametrize(
    "name", ["index.html", "more.html", "a.css", "a.js", "a.png", "a.jpg", "a.woff2"]
)
def test_every_size_is_exact_and_small_ones_degrade_validly(name: str) -> None:
    """From 0 bytes up: exact sizes; a format that does not fit falls back to a smaller valid
    form (text kinds), or to the hex pattern as application/octet-stream (images)."""
    before = "" if name == "index.html" else "index.html:2000,"
    after = "" if name != "index.html" else ",x.css:10,y.png:300,z.woff2:5,w.js:7"
    for size in [*range(0, 400), 4095, 65535, 65536, 65537, 65536 * 2 + 3, 200_000]:
        page = site.parse_page(f"{before}{name}:{size}{after}")
        body = page.body(name, size)
        assert len(body) == size, (name, size)
        kind = page.content_type(name, size)
        if kind.startswith("text/html"):
            text = body.decode()
            assert not text.strip() or text.startswith("<!DOCTYPE html>"), text
            assert text.count("<!--") == text.count("-->") <= 1
            if size >= 2000 and name == "index.html":  # room for every reference
                links = Links()
                links.feed(text)
                assert len(links.urls) == 4
        elif kind == "image/png":
            check_png(body)
        elif kind == "image/jpeg":
            check_jpeg(body)
        elif kind == "font/woff2":
            woff2_tables(body)
        elif kind.startswith("text/css"):
            css_is_sane(body.decode())
        elif kind == site.OCTET_STREAM:
            assert name.endswith((".png", ".jpg", ".woff2"))
            assert body == payload.pattern(name, size)
    assert site.parse_page(f"{name}:0").body(name, 0) == b""


def test_jpeg_padding_spans_several_com_segments() -> None:
    jpeg = [
        n
        for n in range(400)
        if site.parse_page(f"p.jpg:{n}").content_type("p.jpg", n) != site.OCTET_STREAM
    ]
    smallest = jpeg[0]
    assert smallest > 100  # below it, the hex pattern
    # COM segments of 3 * 65537 + 2 bytes: three full ones leave 2, too few for a fourth.
    size = smallest - 4 + 3 * 65537 + 2
    body = site.parse_page(f"p.jpg:{size}").body("p.jpg", size)
    assert len(body) == size
    coms = [p for m, p in jpeg_segments(body) if m == 0xFE]
    assert len(coms) == 4 and all(len(c) <= 65533 for c in coms)


def test_off_the_page_is_the_hex_pattern_as_today() -> None:
    for name, size in [("index.html", 1000), ("other.css", 500), ("r1", 20)]:  # size differs
        assert PAGE.body(name, size) == http.body(name, size) == payload.pattern(name, size)
        assert PAGE.content_type(name, size) == site.OCTET_STREAM
    assert site.NO_PAGE.body("index.html", 14336) == payload.pattern("index.html", 14336)


def test_chunks_are_the_hex_patterns_writes_and_64_mib_streams_in_little_memory() -> None:
    for r in PAGE.resources:  # the server writes the same pieces, so the same packets
        got = [len(c) for c in PAGE.chunks(r.name, r.size)]
        assert got == [len(c) for c in payload.chunks(r.name, r.size)], r.name
    size = http.MAX_BODY
    page = site.parse_page(f"big.png:{size}")
    tracemalloc.start()
    try:
        crc, total, head = 0, 0, b""
        for chunk in page.chunks("big.png", size):
            if len(head) < 200:
                head += chunk[:200]
            crc = zlib.crc32(chunk, crc)
            total += len(chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == size and peak < 4 << 20, f"peak {peak} bytes"
    assert head.startswith(b"\x89PNG") and crc == zlib.crc32(page.body("big.png", size))


def test_a_window_is_a_slice_of_the_pattern() -> None:
    for offset, size in [(0, 4096), (1, 65536), (4095, 10), (8192 + 7, 70000), (123, 0)]:
        want = payload.pattern("w", offset + size)[offset:]
        assert payload.window("w", offset, size) == want, (offset, size)


# --- The page on the command lines --------------------------------------------------------------


def test_page_arg_round_trips_with_kinds_only_where_the_extension_does_not_say() -> None:
    triples = [("index.html", 14, "html"), ("a", 5, "js"), ("x.bin", 1, "other")]
    text = site.page_arg(triples)
    assert text == "index.html:14,a:5:js,x.bin:1"
    assert [(r.name, r.size, r.kind) for r in site.parse_page(text).resources] == triples
    for bad in ["a", "a:b", "a:1:video", "a:1:js:x", "../x:1", "a:²"]:
        with pytest.raises(ValueError):
            site.parse_page(bad)


def test_a_name_given_twice_is_the_pages_at_its_first_entry() -> None:
    page = site.parse_page("index.html:3000,a.css:100,a.css:200,index.html:3000")
    links = Links()
    links.feed(page.body("index.html", 3000).decode())
    assert links.urls == [("link stylesheet", "/a.css?size=100")]  # no link to itself
    assert page.content_type("a.css", 200) == site.OCTET_STREAM


def test_lab_kinds_are_site_kinds() -> None:
    assert lab_scenario.KINDS == site.KINDS


def test_server_and_client_get_the_same_page_and_the_requests_do_not_change() -> None:
    srv = server_argv(PAGE10)
    for mode in PAGE10.modes:
        cli = client_argv(PAGE10, mode, "server")
        resources = next(a for a in cli if a.startswith("--resources="))
        assert resources.removeprefix("--resources=") == srv[-1].removeprefix("--page=")
        items = plan.items_from_resources(resources.removeprefix("--resources="), "http")
        p = plan.HttpPlan("length", mode.persistent, "server")
        for item, r in zip(items, PAGE10.workload.resources, strict=True):
            version = "HTTP/1.1" if mode.persistent else "HTTP/1.0"
            assert p.request(item) == http.request_bytes(
                r.name, r.size, "server", mode.persistent, version
            )
    assert PAGE10.workload.byte_sizes() == tuple(r.size for r in PAGE.resources)
    config = config_from_args(build_parser().parse_args(srv))
    assert config.options.page == PAGE
    assert config.options.resources == PAGE.sizes()  # GET /index.html needs no ?size=


def test_echo_scenarios_get_no_page_and_modes_must_share_an_http_page() -> None:
    article = load_scenario(ROOT / "scenarios" / "article.yaml")
    for mode in article.modes:
        assert not any(a.startswith("--page") for a in server_argv(article, mode))
    own = lab_scenario.Workload(resources=(lab_scenario.Resource("a.css", "css", 10),))
    modes = tuple(replace(m, workload=own) if m.name == "keepalive" else m for m in PAGE10.modes)
    s = replace(PAGE10, modes=modes)
    with pytest.raises(ValueError, match="different http workloads"):
        server_argv(s)
    assert server_argv(s, s.mode("keepalive"))[-1] == "--page=a.css:10"


def test_a_bad_page_option_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["--page", "a.png:x"])
    assert exc.value.code == 2
    assert "--page: expected name:size" in capsys.readouterr().err


# --- Over a real socket -------------------------------------------------------------------------

PAGE_TEXT = site.page_arg((r.name, r.size, r.kind) for r in PAGE10.workload.resources)


@pytest.mark.timeout(30)
def test_the_lab_client_checks_types_and_bodies_against_the_page_server() -> None:
    with live_server(protocol="http", modes=("persistent",), page=PAGE) as (_, log, ports):
        result, _ = run_client(ports["persistent"], resources=PAGE_TEXT, protocol="http")
        assert result.ok, result.first_error
        # A server without the page serves the hex pattern: the client notices.
    with live_server(protocol="http", modes=("persistent",)) as (_, _, ports):
        result, _ = run_client(ports["persistent"], resources=PAGE_TEXT, protocol="http")
        assert not result.ok and "Content-Type application/octet-stream" in result.first_error
    assert len(log.events("response")) == len(PAGE.resources)


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    require(path is not None, "chromium is not installed (Debian: apt-get install chromium)")
    return path


@pytest.mark.timeout(90)
@pytest.mark.parametrize("mode", ["non-persistent", "persistent"])
def test_chromium_renders_the_page(mode: str, tmp_path: Path) -> None:
    browser = chromium()
    resources = {r.name: r.size for r in PAGE.resources}
    with live_server(protocol="http", modes=(mode,), page=PAGE, resources=resources) as (
        _,
        log,
        ports,
    ):
        proc = subprocess.run(
            [
                browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                f"--user-data-dir={tmp_path}", "--dump-dom",
                f"http://127.0.0.1:{ports[mode]}/index.html",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert "<title>TCP Connection Lab: a page of 10 resources</title>" in dom
    data = dict(re.findall(r'data-([a-z]+)="([^"]*)"', dom))
    assert data.get("loaded") == "yes", dom[:3000]
    assert data["images"] == "hero.jpg:32x32 photo.jpg:32x32 logo.png:32x32"  # all decoded
    assert data["scripts"] == "vendor.js app.js analytics.js"  # all ran
    assert data["stylesheets"] == "style.css:4 theme.css:4"  # every rule parsed
    assert data["fonts"] == "tcplab text.woff2:loaded"  # OTS took the WOFF2
    fetched = dict(pair.split(":") for pair in data["resources"].split())
    assert fetched == {r.name: str(r.size) for r in PAGE.resources if r.name != "index.html"}
    # the page's own Navigation Timing, as lab.browser reads it from the DOM
    timing = browser_timing(dom)
    assert 0 < timing["dom_content_loaded_ms"] <= timing["load_event_ms"] < 60_000, timing
    served = sorted(e["request"] for e in log.events("response") if e["status"] == 200)
    assert served == sorted(resources)  # every resource once (a missing favicon: a 404)
    connections = len(log.events("accepted"))
    if mode == "non-persistent":  # HTTP/1.0 as the server speaks it: one response each
        assert connections == len(log.events("response"))
    else:  # keep-alive: at most six connections to one host, each reused
        assert 1 <= connections <= 6 < len(served)
