"""HTTP wire logic with no sockets: parsing split anywhere, limits, keep-alive rules, bodies."""

from __future__ import annotations

import pytest

from wire import http, payload
from wire.http import HTTPError, Request, RequestParser, ResponseParser

TWO_REQUESTS = (
    b"GET /index?size=10 HTTP/1.1\r\nHost: lab\r\nConnection: keep-alive\r\n\r\n"
    b"GET /logo HTTP/1.0\r\nHost: lab\r\n\r\n"
)


@pytest.mark.parametrize(
    "cut", [pytest.param(i, id=f"split-at-{i}") for i in range(0, len(TWO_REQUESTS) + 1, 3)]
)
def test_pipelined_requests_split_anywhere(cut: int) -> None:
    parser = RequestParser()
    got = parser.feed(TWO_REQUESTS[:cut]) + parser.feed(TWO_REQUESTS[cut:])
    assert [(r.method, r.target, r.version) for r in got] == [
        ("GET", "/index?size=10", "HTTP/1.1"),
        ("GET", "/logo", "HTTP/1.0"),
    ]
    assert got[0].headers == {"host": "lab", "connection": "keep-alive"}
    assert sum(r.wire_len for r in got) == len(TWO_REQUESTS)
    assert parser.pending == 0


@pytest.mark.parametrize(
    ("data", "status"),
    [
        pytest.param(b"GET /\r\n\r\n", 400, id="no-version"),
        pytest.param(b"GET  / HTTP/1.1\r\n\r\n", 400, id="double-space"),
        pytest.param(b"G@T / HTTP/1.1\r\n\r\n", 400, id="bad-method"),
        pytest.param(b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400, id="space-in-name"),
        pytest.param(b"GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400, id="no-colon"),
        pytest.param(b"GET / HTTP/3\r\n\r\n", 505, id="http-3"),
        pytest.param(b"GET / FTP/1.0\r\n\r\n", 400, id="not-http"),
        pytest.param(b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\n", 400, id="request-body"),
        pytest.param(b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 400, id="chunked"),
        pytest.param(b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * 101 + b"\r\n", 431, id="too-many"),
    ],
)
def test_malformed_requests_are_refused(data: bytes, status: int) -> None:
    with pytest.raises(HTTPError) as info:
        RequestParser().feed(data)
    assert info.value.status == status


def test_head_size_is_capped_before_the_blank_line_arrives() -> None:
    parser = RequestParser(max_head=100)
    with pytest.raises(HTTPError) as info:
        parser.feed(b"GET / HTTP/1.1\r\nX: " + b"a" * 200)  # no end of head yet
    assert info.value.status == 431


@pytest.mark.parametrize(
    ("version", "connection", "keep"),
    [
        pytest.param("HTTP/1.1", None, True, id="1.1-default-persists"),
        pytest.param("HTTP/1.1", "close", False, id="1.1-close"),
        pytest.param("HTTP/1.1", "Keep-Alive, Close", False, id="1.1-close-wins"),
        pytest.param("HTTP/1.0", None, False, id="1.0-default-closes"),
        pytest.param("HTTP/1.0", "keep-alive", True, id="1.0-keep-alive"),
    ],
)
def test_keep_alive_rules(version: str, connection: str | None, keep: bool) -> None:
    headers = {"connection": connection} if connection else {}
    assert http.wants_keep_alive(Request("GET", "/", version, headers)) is keep


@pytest.mark.parametrize(
    ("target", "resources", "expected"),
    [
        pytest.param("/index?size=10", None, ("index", 10), id="size"),
        pytest.param("/logo", {"logo": 77}, ("logo", 77), id="named"),
        pytest.param("/logo?size=5", {"logo": 77}, ("logo", 5), id="size-overrides"),
        pytest.param("/a.b-c_d?size=0", None, ("a.b-c_d", 0), id="empty"),
    ],
)
def test_route(target: str, resources: dict | None, expected: tuple[str, int]) -> None:
    assert http.route(Request("GET", target, "HTTP/1.1"), resources) == expected


@pytest.mark.parametrize(
    ("method", "target", "status"),
    [
        pytest.param("GET", "/logo", 404, id="unknown"),
        pytest.param("GET", "/", 404, id="root"),
        pytest.param("GET", "/../etc/passwd?size=1", 404, id="traversal"),
        pytest.param("GET", "/a?size=-1", 400, id="negative"),
        pytest.param("GET", "/a?size=1e3", 400, id="not-an-integer"),
        pytest.param("GET", f"/a?size={http.MAX_BODY + 1}", 413, id="over-max"),
        pytest.param("DELETE", "/a?size=1", 405, id="method"),
    ],
)
def test_route_refusals(method: str, target: str, status: int) -> None:
    with pytest.raises(HTTPError) as info:
        http.route(Request(method, target, "HTTP/1.1"))
    assert info.value.status == status


def test_body_is_deterministic_sized_and_named() -> None:
    assert http.body("index", 10_000) == http.body("index", 10_000)
    assert len(http.body("index", 100_003)) == 100_003
    assert http.body("index", 5000) != http.body("logo", 5000)
    assert http.body("index", 5000)[:100] == http.body("index", 100)
    assert b"".join(http.body_chunks("x", 200_000)) == http.body("x", 200_000)
    assert http.body("x", 0) == b""
    assert http.body("x", 300).isascii()


def test_echo_payloads_differ_per_message() -> None:
    (a, pa), (b, pb) = payload.sized_messages([100, 100])
    assert a != b
    assert pa != pb
    assert len(pa) == 100


def test_response_round_trip_split_anywhere() -> None:
    stream = (
        http.response_head(200, 300, True) + http.body("a", 300) + http.error_response(404, "no")
    )
    for cut in range(0, len(stream) + 1, 7):
        parser = ResponseParser()
        got = parser.feed(stream[:cut]) + parser.feed(stream[cut:])
        assert [r.status for r in got] == [200, 404]
        assert got[0].body == http.body("a", 300)
        assert got[0].keep_alive is True
        assert got[1].keep_alive is False
        assert sum(r.wire_len for r in got) == len(stream)


def test_request_bytes_parse_back() -> None:
    data = http.request_bytes("logo", 5, "lab:80", keep_alive=False, version="HTTP/1.0")
    (request,) = RequestParser().feed(data)
    assert http.route(request) == ("logo", 5)
    assert not http.wants_keep_alive(request)


def test_response_without_content_length_is_refused() -> None:
    with pytest.raises(HTTPError):
        ResponseParser().feed(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nxyz")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "index 100\n# comment\n\nlogo 5  # trailing\n", {"index": 100, "logo": 5}, id="lines"
        ),
        pytest.param('{"index": 100, "logo": 5}', {"index": 100, "logo": 5}, id="json"),
    ],
)
def test_load_resources(text: str, expected: dict[str, int]) -> None:
    assert http.load_resources(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("index\n", id="no-size"),
        pytest.param("index ten\n", id="not-a-number"),
        pytest.param("../x 10\n", id="bad-name"),
        pytest.param(f"big {http.MAX_BODY + 1}\n", id="too-big"),
        pytest.param('{"a": true}', id="json-bool"),
    ],
)
def test_load_resources_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        http.load_resources(text)
