"""Fuzzing the HTTP request handling (issue 6, hostile input): the pure parsers in `wire.http`
and the real server's `serve_http` on loopback.

Properties: a request head, however malformed and however split, gives requests or an
`HTTPError` whose status the server can send (and that status line parses back); nothing else
escapes `RequestParser.feed` or `route`; the parser never holds more than its head limit; what a
client serialises parses back to the same request line and headers. The live server never logs
an internal error and keeps serving after every hostile connection.
"""

from __future__ import annotations

import itertools
import re
import socket
import string
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.tcp_harness import assert_serves, live_server, recv_all
from wire import http
from wire.http import HTTPError, RequestParser, ResponseParser

FUZZ = settings(max_examples=120, deadline=None)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def _refusal_parses_back(exc: HTTPError, version: str = "HTTP/1.1") -> None:
    """What the server sends for `exc` is a well-formed closing response with that status."""
    assert exc.status in http.REASONS, exc.status
    reply = http.error_response(exc.status, str(exc), version)
    (response,) = ResponseParser().feed(reply)
    assert response.status == exc.status
    assert not response.keep_alive
    assert response.wire_len == len(reply)


def _serve(chunks: list[bytes], max_head: int = http.MAX_HEAD) -> list[tuple[str, int]]:
    """What `server.handlers.serve_http` does with the bytes, minus the socket: the routes served,
    stopping at the first refusal (which must be an HTTPError the server can answer)."""
    parser = RequestParser(max_head)
    served = []
    try:
        for chunk in chunks:
            requests = parser.feed(chunk)
            assert parser.pending <= max_head  # a head that never ends is refused, not buffered
            for request in requests:
                http.wants_keep_alive(request)
                name, size = http.route(request, {"index.html": 10}, max_body=1 << 20)
                assert 0 <= size <= 1 << 20
                assert re.fullmatch(r"[A-Za-z0-9._-]{1,128}", name)
                served.append((name, size))
    except HTTPError as exc:
        _refusal_parses_back(exc)
    if parser.refusal is not None:  # the refusal after the last requests the parser gave
        _refusal_parses_back(parser.refusal)
    return served


# --- Strategies: raw garbage, and requests that are nearly right ------------------------------

_TCHAR = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
# Latin-1 without controls, space or DEL: what a request target or header value may hold.
_VISIBLE = "".join(map(chr, [*range(0x21, 0x7F), *range(0xA0, 0x100)]))
tokens = st.text(alphabet=_TCHAR, min_size=1, max_size=12)
hostile_bytes = st.sampled_from(
    [b"", b" ", b"\n", b"\r", b"\x00", b"\xff", b":", b"\t", b"\r\n", b"%", b"?", b"[", b"//"]
)
methods = st.one_of(
    st.sampled_from([b"GET", b"POST", b"HEAD", b"get", b"GET\n", b"G ET", b""]),
    tokens.map(str.encode),
)
size_texts = st.one_of(
    st.integers(min_value=0, max_value=1 << 40).map(str),
    st.sampled_from(["", "-1", "1.5", "0x10", "²", "٣", "१२", "9" * 5000, "0" * 5000 + "7", "1e3"]),
)
names = st.one_of(
    st.from_regex(r"[A-Za-z0-9._-]{1,20}", fullmatch=True),
    st.text(max_size=20),
    st.sampled_from(["..", "../etc/passwd", "%2e%2e%2f", "a%0A", "a%00", "[", "a b"]),
)
targets = st.one_of(
    st.builds(lambda n, s: f"/{n}?size={s}", names, size_texts),
    st.builds(lambda n, s: f"/{quote(n)}?size={quote(s)}", names, size_texts),
    st.sampled_from(["*", "//[x/a?size=1", "http://[::1/a", "/?", "/a?size=1&size=2", "//a"]),
    st.text(max_size=40),
).map(lambda t: t.encode("utf-8", "surrogatepass"))
versions = st.sampled_from(
    [b"HTTP/1.0", b"HTTP/1.1", b"HTTP/2.0", b"HTTP/1.1\n", b"HTTPS/1.1", b"HTTP/1.10", b""]
)
header_lines = st.one_of(
    st.builds(lambda n, v: n.encode() + b": " + v, tokens, st.binary(max_size=30)),
    st.sampled_from(
        [
            b"Connection: close",
            b"Connection: keep-alive",
            b"Content-Length: 5",
            b"Content-Length: 0",
            b"Transfer-Encoding: chunked",
            b"no colon",
            b": empty name",
            b"Bad Name: x",
            b"X\n: y",
        ]
    ),
    hostile_bytes,
)
near_requests = st.builds(
    lambda m, t, v, hs, sep: (
        m + sep + t + sep + v + b"".join(b"\r\n" + h for h in hs) + b"\r\n\r\n"
    ),
    methods,
    targets,
    versions,
    st.lists(header_lines, max_size=6),
    st.sampled_from([b" ", b"  ", b"\t"]),
)
# A good request line around a hostile target reaches `route`, where most of the parsing is.
routable = st.builds(
    lambda t, v: b"GET " + t + b" " + v + b"\r\nHost: a\r\n\r\n", targets, versions
)
streams = st.one_of(
    st.binary(max_size=2048),
    st.lists(routable, min_size=1, max_size=3).map(b"".join),
    st.lists(near_requests, min_size=1, max_size=4).map(b"".join),
    st.builds(lambda r, g: r + g, near_requests, st.binary(max_size=64)),
)
cut_lists = st.lists(st.integers(min_value=0, max_value=1 << 16), max_size=20)


@FUZZ
@given(data=streams, cuts=cut_lists, max_head=st.sampled_from([64, 512, http.MAX_HEAD]))
def test_any_bytes_give_requests_or_an_answerable_refusal(
    data: bytes, cuts: list[int], max_head: int
) -> None:
    _serve(_split(data, cuts), max_head)


@FUZZ
@given(
    requests=st.lists(
        st.tuples(
            tokens,
            st.text(alphabet=_VISIBLE, min_size=1, max_size=40),
            st.sampled_from(["HTTP/1.0", "HTTP/1.1"]),
            st.dictionaries(
                tokens.filter(
                    lambda n: n.lower() not in ("content-length", "transfer-encoding", "host")
                ),
                st.text(alphabet=_VISIBLE + " \t", max_size=30).map(lambda v: v.strip(" \t")),
                max_size=8,
            ),
        ),
        min_size=1,
        max_size=4,
    ),
    cuts=cut_lists,
)
def test_serialised_requests_parse_back_split_anywhere(requests, cuts: list[int]) -> None:
    wire = b""
    expected = []
    for method, target, version, headers in requests:
        unique = {name.lower(): (name, value) for name, value in headers.items()}
        unique["host"] = ("Host", "lab:8001")  # one valid Host: HTTP/1.1 requires it
        head = f"{method} {target} {version}\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in unique.values()
        )
        wire += (head + "\r\n").encode("latin-1")
        lowered = {key: value for key, (_, value) in unique.items()}
        expected.append((method, target, version, lowered))
    parser = RequestParser()
    got = [r for chunk in _split(wire, cuts) for r in parser.feed(chunk)]
    assert [(r.method, r.target, r.version, r.headers) for r in got] == expected
    assert sum(r.wire_len for r in got) == len(wire)
    assert parser.pending == 0


@FUZZ
@given(
    name=st.from_regex(r"[A-Za-z0-9._-]{1,128}", fullmatch=True),
    size=st.integers(min_value=0, max_value=http.MAX_BODY),
    keep_alive=st.booleans(),
    version=st.sampled_from(["HTTP/1.0", "HTTP/1.1"]),
    cuts=cut_lists,
)
def test_client_request_routes_to_its_name_and_size(name, size, keep_alive, version, cuts) -> None:
    wire = http.request_bytes(name, size, "server", keep_alive, version)
    parser = RequestParser()
    (request,) = [r for chunk in _split(wire, cuts) for r in parser.feed(chunk)]
    assert http.route(request) == (name, size)
    assert http.wants_keep_alive(request) is keep_alive


@FUZZ
@given(
    responses=st.lists(
        st.tuples(
            st.sampled_from(sorted(http.REASONS)),
            st.binary(max_size=300),
            st.booleans(),
            st.sampled_from(["HTTP/1.0", "HTTP/1.1"]),
        ),
        min_size=1,
        max_size=5,
    ),
    cuts=cut_lists,
)
def test_responses_round_trip_split_anywhere(responses, cuts: list[int]) -> None:
    wire = b"".join(
        http.response_head(status, len(body), keep, version) + body
        for status, body, keep, version in responses
    )
    parser = ResponseParser()
    got = [r for chunk in _split(wire, cuts) for r in parser.feed(chunk)]
    assert [(r.status, r.body, r.keep_alive, r.version) for r in got] == [
        (status, body, keep, version) for status, body, keep, version in responses
    ]
    assert parser.pending == 0


@FUZZ
@given(data=st.one_of(st.binary(max_size=2048), streams), cuts=cut_lists)
def test_response_parser_gives_responses_or_http_error(data: bytes, cuts: list[int]) -> None:
    parser = ResponseParser(max_head=512, max_body=1024)
    try:
        for chunk in _split(data, cuts):
            for response in parser.feed(chunk):
                assert len(response.body) <= 1024
            assert parser.pending <= 1024 + 1
    except HTTPError as exc:
        assert exc.status in http.REASONS


# --- Regressions: inputs fuzzing found that escaped as ValueError (an "internal error") --------


@pytest.mark.parametrize(
    ("target", "status"),
    [
        pytest.param("/a?size=%C2%B2", 400, id="superscript-two-isdigit-but-not-int"),
        pytest.param("/a?size=%D9%A3", 400, id="arabic-indic-digit"),
        pytest.param("/a?size=" + "9" * 5000, 413, id="5000-digits-over-int-str-limit"),
        pytest.param("//[x/a?size=1", 400, id="unclosed-ipv6-authority"),
        pytest.param("/a%0A?size=1", 404, id="name-with-trailing-newline"),
    ],
)
def test_route_refuses_with_a_status(target: str, status: int) -> None:
    with pytest.raises(HTTPError) as info:
        http.route(http.Request("GET", target, "HTTP/1.1"))
    assert info.value.status == status
    _refusal_parses_back(info.value)


def test_route_reads_leading_zeros_past_the_int_limit() -> None:
    assert http.route(http.Request("GET", "/a?size=" + "0" * 5000 + "7", "HTTP/1.1")) == ("a", 7)


@pytest.mark.parametrize(
    ("head", "status"),
    [
        pytest.param(b"GET\n /a?size=1 HTTP/1.1", 400, id="method-with-newline"),
        pytest.param(b"GET /a?size=1 HTTP/1.1\n", 505, id="version-with-newline"),
        pytest.param(b"GET /a?size=1 HTTP/1.1\r\nHost\n: x", 400, id="header-name-with-newline"),
    ],
)
def test_a_bare_newline_is_not_part_of_a_token(head: bytes, status: int) -> None:
    with pytest.raises(HTTPError) as info:
        http.parse_request_head(head)
    assert info.value.status == status


@pytest.mark.parametrize(
    ("length", "status"),
    [
        pytest.param("²".encode("latin-1"), 400, id="superscript-two"),
        pytest.param(b"9" * 5000, 413, id="5000-digits"),
    ],
)
def test_response_content_length_is_checked_as_ascii_digits(length: bytes, status: int) -> None:
    with pytest.raises(HTTPError) as info:
        ResponseParser().feed(b"HTTP/1.1 200 OK\r\nContent-Length: " + length + b"\r\n\r\n")
    assert info.value.status == status


def test_response_content_length_with_leading_zeros_past_the_int_limit() -> None:
    wire = b"HTTP/1.1 200 OK\r\nContent-Length: " + b"0" * 5000 + b"3\r\n\r\nabc"
    (response,) = ResponseParser().feed(wire)
    assert response.body == b"abc"


# --- The real server on loopback ---------------------------------------------------------------


@pytest.fixture(scope="module")
def server():
    with live_server(
        protocol="http", read_timeout=0.5, idle_timeout=1.0, max_body=4096, max_connections=16
    ) as running:
        yield running


@pytest.mark.timeout(60)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=streams, mode=st.sampled_from(["persistent", "non-persistent"]))
def test_live_server_answers_hostile_requests_and_keeps_serving(server, data: bytes, mode) -> None:
    _, log, ports = server
    with socket.create_connection(("127.0.0.1", ports[mode]), timeout=5) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        reply = recv_all(sock)
    parser = ResponseParser(max_body=4096)
    responses = parser.feed(reply)
    assert parser.pending == 0, reply[-200:]  # whole responses only
    assert all(r.status in http.REASONS for r in responses)
    errors = [e["reason"] for e in log.events("error")]
    assert not [r for r in errors if r.startswith("internal error")], errors[-3:]


def test_live_server_serves_after_the_fuzzing(server) -> None:
    _, log, ports = server
    assert_serves(ports["persistent"], "http")
    assert not [e for e in log.events("error") if e["reason"].startswith("internal error")]


@pytest.mark.parametrize(
    ("target", "status"),
    [
        pytest.param(b"/a?size=%C2%B2", 400, id="superscript-two"),
        pytest.param(b"/a?size=" + b"9" * 5000, 413, id="5000-digits"),
        pytest.param(b"//[x/a?size=1", 400, id="unclosed-ipv6-authority"),
    ],
)
def test_live_server_answers_what_used_to_be_an_internal_error(server, target, status) -> None:
    """Before the fix each of these cost the connection with no answer ("internal error")."""
    _, log, ports = server
    with socket.create_connection(("127.0.0.1", ports["persistent"]), timeout=5) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        reply = recv_all(sock)
    assert reply.startswith(f"HTTP/1.1 {status} ".encode()), reply[:80]
    assert not [e for e in log.events("error") if e["reason"].startswith("internal error")]
