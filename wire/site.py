"""A scenario's page as a small web site: bodies a browser accepts, of exactly the stated sizes.

A page is the list of a scenario's resources (name, size, kind). Its first `html` resource is
the document: it references every other resource with real markup (`<link rel=stylesheet>`,
`<script src>`, `<img src>`, `@font-face`, `<iframe>` for further documents, a preload for the
rest), at the URLs the lab's client asks for (`/name?size=N`), so a browser fetches the same
resources the lab's client does. Each body is a valid file of its type padded to its size where
the format allows filler nobody reads: a comment (HTML, CSS, JS), a tEXt chunk (PNG), COM
segments (JPEG), the private data block (WOFF2). Images are PNG, or JPEG for .jpg/.jpeg; fonts
are WOFF2 whatever the extension (browsers tell formats by their bytes). A body too small for
its format, kind `other`, and any (name, size) off the page are `wire.payload`'s hex pattern
as `application/octet-stream`, as before pages existed.

Deterministic (the client checks every byte) and streamed: `chunks` yields the same 64 KiB
pieces as `wire.payload.chunks`, so a 64 MiB image is never built at once and the server's
writes (and so the packets) are those of the hex pattern.
"""

from __future__ import annotations

import hashlib
import re
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache

from wire import payload

KINDS = ("html", "css", "js", "image", "font", "other")  # a scenario's resource kinds
OCTET_STREAM = "application/octet-stream"

_EXTENSION_KINDS = {
    "html": "html", "htm": "html",
    "css": "css",
    "js": "js", "mjs": "js",
    "png": "image", "jpg": "image", "jpeg": "image", "gif": "image", "webp": "image",
    "avif": "image", "svg": "image", "ico": "image", "bmp": "image",
    "woff2": "font", "woff": "font", "ttf": "font", "otf": "font",
}  # fmt: skip
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,128}\Z")  # as wire.http routes them: safe in markup


def kind_of(name: str) -> str:
    """The kind a resource's file extension implies (`other` when it implies none)."""
    return _EXTENSION_KINDS.get(_extension(name), "other")


def _extension(name: str) -> str:
    return name.rpartition(".")[2].lower() if "." in name else ""


@dataclass(frozen=True)
class Resource:
    name: str
    size: int
    kind: str

    @property
    def url(self) -> str:
        """The lab client's request target (wire.http.request_bytes): the page links to it."""
        return f"/{self.name}?size={self.size}"


@dataclass(frozen=True)
class Page:
    """A scenario's resources; `chunks`/`content_type` answer for any (name, size)."""

    resources: tuple[Resource, ...] = ()
    _index: dict[str, Resource] = field(init=False, repr=False, compare=False, hash=False)
    # (name, size) -> its body's plan, for the page's resources only (so at most one each).
    _bodies: dict[tuple[str, int], _Body] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        # A name listed twice (a client may ask twice) is the page's at its first entry only.
        object.__setattr__(self, "_index", {r.name: r for r in reversed(self.resources)})
        object.__setattr__(self, "_bodies", {})

    @property
    def document(self) -> Resource | None:
        """The page's HTML document: its first resource of kind html."""
        return next((r for r in self.resources if r.kind == "html"), None)

    def linked(self) -> list[Resource]:
        """What the document links to: every other resource, each name once."""
        return [r for r in self.resources if self._index[r.name] is r and r is not self.document]

    def sizes(self) -> dict[str, int]:
        """name -> size: what `GET /name` (no ?size=) serves."""
        return {r.name: r.size for r in self.resources}

    def find(self, name: str, size: int) -> Resource | None:
        """The page's resource at exactly this name and size (another size is not the page's)."""
        r = self._index.get(name)
        return r if r is not None and r.size == size else None

    def content_type(self, name: str, size: int) -> str:
        return self._body(name, size)[0]

    def chunks(self, name: str, size: int) -> Iterator[bytes]:
        """The body in pieces of `payload.CHUNK_SIZE` (the last one shorter)."""
        parts = self._body(name, size)[1]
        if parts is None:
            return payload.chunks(name, size)
        return _stream(name, parts, payload.CHUNK_SIZE)

    def _body(self, name: str, size: int) -> _Body:
        resource = self.find(name, size)
        if resource is None:
            return _PATTERN
        body = self._bodies.get((name, size))
        if body is None:  # a race between threads only builds it twice
            body = self._bodies[name, size] = _build_body(self, resource)
        return body

    def body(self, name: str, size: int) -> bytes:
        return b"".join(self.chunks(name, size))


NO_PAGE = Page()


def parse_page(text: str) -> Page:
    """`name:size[:kind],...` (kind defaults to the extension's), as `page_arg` writes it."""
    resources = []
    for part in (p for p in text.split(",") if p):
        fields = part.split(":")
        if len(fields) not in (2, 3) or not fields[1].isascii() or not fields[1].isdigit():
            raise ValueError(f"expected name:size or name:size:kind, got {part!r}")
        name, size = fields[0], int(fields[1])
        if not _NAME.match(name):
            raise ValueError(f"bad resource name {name!r} (letters, digits, . _ -)")
        kind = fields[2] if len(fields) == 3 else kind_of(name)
        if kind not in KINDS:
            raise ValueError(f"{name}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
        resources.append(Resource(name, size, kind))
    return Page(tuple(resources))


def page_arg(resources: Iterable[tuple[str, int, str]]) -> str:
    """The `parse_page` text of (name, size, kind) triples: the kind only where the extension
    does not imply it, so page10's list reads as it always has (`index.html:14336,...`)."""
    return ",".join(
        f"{name}:{size}" if kind == kind_of(name) else f"{name}:{size}:{kind}"
        for name, size, kind in resources
    )


# --- Bodies: (content type, parts), parts None for the hex pattern ------------------------------
#
# Parts are bytes, or _Fill(n): n bytes of the name's hex pattern. A body is planned once per
# resource of a page: the parts are small (the filler is generated while sending).


@dataclass(frozen=True)
class _Fill:
    n: int


_Part = bytes | _Fill
_Body = tuple[str, tuple[_Part, ...] | None]
_PATTERN: _Body = (OCTET_STREAM, None)


def _build_body(page: Page, r: Resource) -> _Body:
    built = _build(page, r)
    if built is None:  # too small to be a valid file of its kind, or of kind other
        return _PATTERN
    assert sum(_length(p) for p in built[1]) == r.size, r
    return built


def _length(part: _Part) -> int:
    return len(part) if isinstance(part, bytes) else part.n


def _build(page: Page, r: Resource) -> tuple[str, tuple[_Part, ...]] | None:
    if r.kind == "html":
        if r is page.document:
            return _text("text/html; charset=utf-8", _html_forms(page, r), r.size)
        return _text("text/html; charset=utf-8", _subdocument_forms(r), r.size)
    if r.kind == "css":
        return _text("text/css; charset=utf-8", _css_forms(r), r.size)
    if r.kind == "js":
        return _text("text/javascript; charset=utf-8", _js_forms(r), r.size)
    if r.kind == "image":
        if _extension(r.name) in ("jpg", "jpeg"):
            return _jpeg(r)
        return _png(r)
    if r.kind == "font":
        return _woff2(r)
    return None  # other: the hex pattern, as today


def _text(
    content_type: str, forms: list[tuple[bytes, bytes]], size: int
) -> tuple[str, tuple[_Part, ...]]:
    """The first form (before, after) that fits, the filler between them; else spaces, which
    HTML, CSS and JS all read as an empty document."""
    for before, after in forms:
        fill = size - len(before) - len(after)
        if fill >= 0:
            return content_type, (before, _Fill(fill), after)
    return content_type, (b" " * size,)


# --- HTML -------------------------------------------------------------------------------------

# Runs at the load event: what the browser made of the page, into <body data-*> so that
# `chromium --dump-dom` (or any DOM reader) shows it: each image's decoded size, which scripts
# ran, each stylesheet's rule count, each font's status, every resource's Resource Timing, and
# the page's own Navigation Timing (`data-timing`: when DOMContentLoaded ended and when the load
# event began, ms from the navigation's start). Kept short: a small page drops it whole.
_REPORT_SCRIPT = b"""<script>
addEventListener("load", () => {
const d = document.body.dataset, p = performance, j = (a, f) => [...a].map(f).join(" "), b = (u) => u.split("/").pop().split("?")[0];
d.images = j(document.images, (i) => `${i.alt}:${i.naturalWidth}x${i.naturalHeight}`);
d.scripts = (self.tcplab || []).join(" ");
d.stylesheets = j([...document.styleSheets].filter((s) => s.href), (s) => `${b(s.href)}:${s.cssRules.length}`);
d.fonts = j(document.fonts, (f) => `${f.family}:${f.status}`);
d.resources = j(p.getEntriesByType("resource"), (e) => `${b(e.name)}:${e.decodedBodySize}`);
const [n] = p.getEntriesByType("navigation");
if (n) d.timing = j([n.domContentLoadedEventEnd, n.loadEventStart], (t) => t.toFixed(1));
d.loaded = "yes";
});
</script>
"""  # noqa: E501 (one statement a line reads best)


def _font_family(r: Resource) -> str:
    return f"tcplab {r.name}"


def _html_forms(page: Page, doc: Resource) -> list[tuple[bytes, bytes]]:
    others = page.linked()
    by_kind = {k: [r for r in others if r.kind == k] for k in KINDS}
    title = f"TCP Connection Lab: a page of {len(page.resources)} resources"
    head = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{title}</title>",
        *(f'<link rel="stylesheet" href="{r.url}">' for r in by_kind["css"]),
        *(f'<link rel="preload" href="{r.url}" as="fetch" crossorigin>' for r in by_kind["other"]),
    ]
    if by_kind["font"]:
        head.append("<style>")
        for r in by_kind["font"]:
            head.append(f'@font-face {{ font-family: "{_font_family(r)}"; src: url("{r.url}"); }}')
        head.append("</style>")
    body = [
        "</head>",
        "<body>",
        "<h1>TCP Connection Lab</h1>",
        f"<p>This document is {doc.name}, {doc.size} bytes; it loads "
        f"{len(others)} more resources at the sizes of the scenario.</p>",
        # A font is fetched only when some text uses it: a line per font. Its one glyph is
        # the space, so the letters themselves fall back to the system's sans-serif.
        *(
            f'<p style="font-family: &quot;{_font_family(r)}&quot;, sans-serif">'
            f"Set in {r.name}.</p>"
            for r in by_kind["font"]
        ),
        *(f'<img src="{r.url}" alt="{r.name}">' for r in by_kind["image"]),
        *(f'<iframe src="{r.url}" title="{r.name}"></iframe>' for r in by_kind["html"]),
        *(f'<script src="{r.url}"></script>' for r in by_kind["js"]),
    ]
    full = "\n".join(head + body) + "\n"
    end = b"-->\n</body>\n</html>\n"
    minimal = f'<!DOCTYPE html>\n<html lang="en">\n<title>{title}</title>\n<body>\n'
    return [
        (full.encode() + _REPORT_SCRIPT + b"<!--", end),
        (full.encode() + b"<!--", end),  # no room for the report: the page still loads
        (minimal.encode() + b"<!--", end),  # no room for the references: a valid document
        (b"<!DOCTYPE html><!--", b"-->"),
    ]


def _subdocument_forms(r: Resource) -> list[tuple[bytes, bytes]]:
    text = (
        f'<!DOCTYPE html>\n<html lang="en">\n<meta charset="utf-8">\n<title>{r.name}</title>\n'
        f"<body>\n<p>{r.name}: {r.size} bytes.</p>\n<!--"
    )
    return [(text.encode(), b"-->\n</body>\n</html>\n"), (b"<!DOCTYPE html><!--", b"-->")]


# --- CSS and JS ---------------------------------------------------------------------------------


def _color(name: str, salt: str) -> str:
    return "#" + hashlib.sha256(f"{salt}/{name}".encode()).hexdigest()[:6]


def _css_forms(r: Resource) -> list[tuple[bytes, bytes]]:
    slug = re.sub(r"[^A-Za-z0-9_-]", "-", r.name)
    text = (
        f"/* {r.name}: {r.size} bytes of CSS for the TCP Connection Lab's page */\n"
        f":root {{ --tcplab-{slug}: 1; }}\n"
        f"body {{ margin: 2em; line-height: 1.5; }}\n"
        f"h1 {{ color: {_color(r.name, 'h1')}; }}\n"
        f"img {{ margin: 0.5em; border: 2px solid {_color(r.name, 'border')}; }}\n"
    )
    return [(text.encode() + b"/*", b"*/\n"), (b"/*", b"*/")]


def _js_forms(r: Resource) -> list[tuple[bytes, bytes]]:
    # Sets a global a page (or a test) can read to see that it ran.
    text = (
        f"/* {r.name}: {r.size} bytes of JavaScript for the TCP Connection Lab's page */\n"
        f'(self.tcplab = self.tcplab || []).push("{r.name}");\n'
    )
    return [(text.encode() + b"/*", b"*/\n"), (b"/*", b"*/")]


# --- Fonts ----------------------------------------------------------------------------------------
#
# A TrueType font of two glyphs (.notdef, a box; space), wrapped in WOFF2: the tables go through
# Brotli as one uncompressed meta-block (RFC 7932 allows it; no Brotli library needed) and the
# filler is the WOFF2 private data block, which decoders skip.

_UNITS = 1000
_CREATED = 3_850_070_400  # 2026-01-01 in seconds since 1904, as the head table counts


def _sfnt_checksum(data: bytes) -> int:
    data += b"\0" * (-len(data) % 4)
    return sum(struct.unpack(f">{len(data) // 4}I", data)) & 0xFFFFFFFF


def _name_table(family: str) -> bytes:
    names = {1: family, 2: "Regular", 3: f"{family} 1.0", 4: family, 5: "Version 1.0",
             6: re.sub(r"[^A-Za-z0-9-]", "-", family)[:63]}  # fmt: skip
    records, strings = b"", b""
    for name_id, text in names.items():
        data = text.encode("utf-16-be")
        records += struct.pack(">6H", 3, 1, 0x409, name_id, len(data), len(strings))
        strings += data
    return struct.pack(">3H", 0, len(names), 6 + len(records)) + records + strings


@lru_cache(maxsize=16)
def sfnt(family: str) -> bytes:
    """The TrueType font (its tables sorted by tag, checksums and checkSumAdjustment set)."""
    box = struct.pack(">hhhhh", 1, 50, 0, 450, 700) + struct.pack(">HH", 3, 0)  # 1 contour
    box += b"\x01" * 4  # four on-curve points, coordinates as int16 deltas
    box += struct.pack(">4h", 50, 0, 400, 0) + struct.pack(">4h", 0, 700, 0, -700)  # clockwise
    glyf = box + b"\0" * (len(box) % 2)
    os2 = struct.pack(
        ">HhHHH10hh10s4I4sHHHhhhHHII5H",
        4, 500, 400, 5, 0, *([100] * 10), 0, b"\0" * 10, 1, 0, 0, 0, b"TCPL", 0x40,
        0x20, 0x20, 800, -200, 0, 800, 200, 1, 0, 500, 700, 0, 0x20, 1,
    )  # fmt: skip
    cmap = struct.pack(">3HHI", 0, 1, 3, 1, 12) + struct.pack(
        ">7H2HH2H2h2H", 4, 32, 0, 4, 4, 1, 0, 0x20, 0xFFFF, 0, 0x20, 0xFFFF, 1 - 0x20, 1, 0, 0
    )  # format 4: U+0020 -> glyph 1, and the closing 0xFFFF segment
    head = struct.pack(
        ">IIIIHHQQhhhhHHhhh", 0x00010000, 0x00010000, 0, 0x5F0F3CF5, 0x000B, _UNITS,
        _CREATED, _CREATED, 50, 0, 450, 700, 0, 8, 2, 0, 0,
    )  # fmt: skip
    hhea = struct.pack(
        ">IhhhHhhhhhh4hhH", 0x00010000, 800, -200, 0, 500, 50, 50, 450, 1, 0, 0,
        0, 0, 0, 0, 0, 2,
    )  # fmt: skip
    tables = {  # sorted by tag, as an sfnt's directory must be
        b"OS/2": os2,
        b"cmap": cmap,
        b"glyf": glyf,
        b"head": head,
        b"hhea": hhea,
        b"hmtx": struct.pack(">4H", 500, 50, 250, 0),  # the box, then the space
        b"loca": struct.pack(">3H", 0, len(glyf) // 2, len(glyf) // 2),
        b"maxp": struct.pack(">IH13H", 0x00010000, 2, 4, 1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0),
        b"name": _name_table(family),
        b"post": struct.pack(">IIhhIIIII", 0x00030000, 0, -100, 50, 0, 0, 0, 0, 0),
    }
    count = len(tables)
    power = 1 << (count.bit_length() - 1)
    header = struct.pack(">IHHHH", 0x00010000, count, power * 16, power.bit_length() - 1,
                         count * 16 - power * 16)  # fmt: skip
    directory, body = b"", b""
    offset = 12 + 16 * count
    for tag, data in tables.items():
        directory += struct.pack(">4sIII", tag, _sfnt_checksum(data), offset + len(body), len(data))
        body += data + b"\0" * (-len(data) % 4)
    font = bytearray(header + directory + body)
    head_offset = (
        12 + 16 * count + sum(len(d) + -len(d) % 4 for t, d in tables.items() if t < b"head")
    )
    adjustment = (0xB1B0AFBA - _sfnt_checksum(bytes(font))) & 0xFFFFFFFF
    font[head_offset + 8 : head_offset + 12] = struct.pack(">I", adjustment)
    return bytes(font)


def _base128(n: int) -> bytes:
    """WOFF2's UIntBase128: 7 bits a byte, most significant first."""
    out = [n & 0x7F]
    while n > 0x7F:
        n >>= 7
        out.append(0x80 | (n & 0x7F))
    return bytes(reversed(out))


def _brotli_stored(data: bytes) -> bytes:
    """A Brotli stream of one uncompressed meta-block, then an empty last one (RFC 7932 9.2):
    WBITS=16 (bit 0), ISLAST=0, MNIBBLES=4, MLEN-1 in 16 bits, ISUNCOMPRESSED=1; pad to a byte."""
    assert 0 < len(data) <= 1 << 16
    bits = 0 | 0 << 1 | 0 << 2 | (len(data) - 1) << 4 | 1 << 20
    return bits.to_bytes(3, "little") + data + b"\x03"  # ISLAST=1, ISLASTEMPTY=1


_WOFF2_TAGS = {b"cmap": 0, b"head": 1, b"hhea": 2, b"hmtx": 3, b"maxp": 4, b"name": 5,
               b"OS/2": 6, b"post": 7, b"glyf": 10, b"loca": 11}  # fmt: skip


@lru_cache(maxsize=16)
def _woff2_head(family: str) -> tuple[bytes, bytes]:
    """The WOFF2 file before its private data block: its header's first 40 bytes (its last 8,
    privOffset and privLength, and the length at 8 depend on the size) and the rest."""
    font = sfnt(family)
    (count,) = struct.unpack(">H", font[4:6])
    directory, stream = b"", b""
    for i in range(count):
        tag, _, offset, length = struct.unpack(">4sIII", font[12 + 16 * i : 28 + 16 * i])
        # glyf and loca stored as they are: transform version 3 (null); the others' 0 is null.
        version = 3 if tag in (b"glyf", b"loca") else 0
        directory += bytes([version << 6 | _WOFF2_TAGS[tag]]) + _base128(length)
        stream += font[offset : offset + length]
    compressed = _brotli_stored(stream)
    rest = directory + compressed
    rest += b"\0" * (-(48 + len(rest)) % 4)  # the private block starts on a 4-byte boundary
    header = struct.pack(
        ">4sIIHHIIHHIII", b"wOF2", 0x00010000, 0, count, 0, len(font), len(compressed),
        1, 0, 0, 0, 0,
    )  # fmt: skip
    return header, rest


def _woff2(r: Resource) -> tuple[str, tuple[_Part, ...]] | None:
    header, rest = _woff2_head(_font_family(r))
    private = 48 + len(rest)
    fill = r.size - private
    if fill < 1:  # the filler is the private block: at least a byte
        return None
    # totalSfntSize (at 16) sizes a decoder's output buffer: OTS (Chromium, Firefox) refuses a
    # file larger than it, so it is at least the file's size, filler included.
    sfnt_size = max(struct.unpack(">I", header[16:20])[0], r.size)
    header = (
        header[:8] + struct.pack(">I", r.size) + header[12:16] + struct.pack(">I", sfnt_size)
        + header[20:] + struct.pack(">II", private, fill)
    )  # fmt: skip
    return "font/woff2", (header + rest, _Fill(fill))


# --- Images -------------------------------------------------------------------------------------

IMAGE_SIDE = 32  # pixels: every image is 32x32, whatever its byte size


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _stored_zlib(data: bytes) -> bytes:
    """A zlib stream of one stored (uncompressed) deflate block: the same bytes whatever the
    zlib version of the host (zlib.compress's output is not promised to be)."""
    assert len(data) < 65536
    block = b"\x01" + struct.pack("<HH", len(data), len(data) ^ 0xFFFF) + data
    return b"\x78\x01" + block + struct.pack(">I", zlib.adler32(data))


@lru_cache(maxsize=256)
def _png_head(name: str) -> bytes:
    """Signature, IHDR, PLTE and IDAT of a 32x32 two-colour image with diagonal stripes."""
    ihdr = struct.pack(">IIBBBBB", IMAGE_SIDE, IMAGE_SIDE, 1, 3, 0, 0, 0)  # 1 bit, palette
    palette = bytes.fromhex(_color(name, "png0")[1:] + _color(name, "png1")[1:])
    rows = []
    for y in range(IMAGE_SIDE):
        bits = "".join(str((x + y) // 4 % 2) for x in range(IMAGE_SIDE))
        rows.append(b"\x00" + int(bits, 2).to_bytes(IMAGE_SIDE // 8, "big"))  # filter: none
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"PLTE", palette)
        + _png_chunk(b"IDAT", _stored_zlib(b"".join(rows)))
    )


_PNG_END = _png_chunk(b"IEND", b"")
_PNG_TEXT = b"tEXtComment\x00"  # a tEXt chunk's type and keyword: its text is the filler


def _png(r: Resource) -> tuple[str, tuple[_Part, ...]] | None:
    head = _png_head(r.name)
    fill = r.size - len(head) - (4 + len(_PNG_TEXT) + 4) - len(_PNG_END)
    if fill < 0:
        return None
    length = struct.pack(">I", len(_PNG_TEXT) - 4 + fill)
    crc = _fill_crc(r.name, fill, zlib.crc32(_PNG_TEXT))  # one pass, once per page resource
    return "image/png", (head + length + _PNG_TEXT, _Fill(fill), struct.pack(">I", crc) + _PNG_END)


def _segment(marker: int, data: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(data) + 2) + data


def _jpeg_parts() -> tuple[bytes, bytes]:
    """A baseline greyscale JPEG of 32x32 mid-grey: every block's DC difference and AC run are
    0, so with one-code Huffman tables (a 1-bit code each) a block is 2 bits, all zero."""
    jfif = _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    dqt = _segment(0xDB, b"\x00" + b"\x01" * 64)
    sof0 = _segment(0xC0, struct.pack(">BHHB", 8, IMAGE_SIDE, IMAGE_SIDE, 1) + b"\x01\x11\x00")
    one_code = b"\x01" + b"\x00" * 15 + b"\x00"  # BITS: one code of length 1; its symbol: 0
    dht = _segment(0xC4, b"\x00" + one_code) + _segment(0xC4, b"\x10" + one_code)
    sos = _segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
    blocks = (IMAGE_SIDE // 8) ** 2
    scan = b"\x00" * (blocks * 2 // 8)
    return b"\xff\xd8" + jfif + dqt + sof0 + dht, sos + scan + b"\xff\xd9"


_JPEG_BEFORE, _JPEG_AFTER = _jpeg_parts()
_COM_MAX = 0xFFFF + 2  # a COM segment on the wire: marker, length and at most 65533 bytes


def _jpeg(r: Resource) -> tuple[str, tuple[_Part, ...]] | None:
    """The filler as COM (comment) segments between the tables and the scan."""
    com = r.size - len(_JPEG_BEFORE) - len(_JPEG_AFTER)
    if com < 4:  # an empty COM segment is 4 bytes
        return None
    count = -(-com // _COM_MAX)
    parts: list[_Part] = [_JPEG_BEFORE]
    for i in range(count):  # sizes as even as can be: each is 4 .. _COM_MAX
        total = com // count + (1 if i < com % count else 0)
        parts += [struct.pack(">BBH", 0xFF, 0xFE, total - 2), _Fill(total - 4)]
    parts.append(_JPEG_AFTER)
    return "image/jpeg", tuple(parts)


# --- Streaming ------------------------------------------------------------------------------------


def _fill_crc(name: str, n: int, crc: int) -> int:
    """CRC-32 continued over n bytes of the name's pattern."""
    for chunk in payload.chunks(name, n):
        crc = zlib.crc32(chunk, crc)
    return crc


def _stream(name: str, parts: tuple[_Part, ...], size: int) -> Iterator[bytes]:
    """The parts regrouped into `size`-byte chunks (the last one shorter): the sender writes
    the same chunks as for the hex pattern. A chunk that is all filler is one cached bytes
    object, as in `payload.chunks`: only the chunks at the parts' edges are copied."""
    buf: list[bytes] = []
    room = size
    for part in parts:
        n = _length(part)
        pos = 0
        while pos < n:
            take = min(room, n - pos)
            if isinstance(part, bytes):
                piece = part[pos : pos + take] if take < n else part
            else:
                piece = payload.window(name, pos, size)
                piece = piece if take == size else piece[:take]
            pos += take
            room -= take
            if room:
                buf.append(piece)
                continue
            yield b"".join((*buf, piece)) if buf else piece
            buf, room = [], size
    if buf:
        yield b"".join(buf)
