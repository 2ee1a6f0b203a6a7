"""HTTP wire logic with no sockets: parsing split anywhere, limits, keep-alive rules, bodies."""

from __future__ import annotations

import re

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


H = b"Host: lab\r\n"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        pytest.param(b"GET /\r\n\r\n", 400, id="no-version"),
        pytest.param(b"GET  / HTTP/1.1\r\n" + H + b"\r\n", 400, id="double-space"),
        pytest.param(b"G@T / HTTP/1.1\r\n" + H + b"\r\n", 400, id="bad-method"),
        pytest.param(b"GET / HTTP/1.1\r\n" + H + b"Bad Header: x\r\n\r\n", 400, id="space-in-name"),
        pytest.param(b"GET / HTTP/1.1\r\n" + H + b"NoColon\r\n\r\n", 400, id="no-colon"),
        pytest.param(b"GET / HTTP/3\r\n" + H + b"\r\n", 505, id="http-3"),
        pytest.param(b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505, id="http-2.0"),
        pytest.param(b"GET / HTTP/0.9\r\n\r\n", 505, id="http-0.9"),
        pytest.param(b"GET / HTTP/1.10\r\n" + H + b"\r\n", 505, id="two-digit-minor"),
        pytest.param(b"GET / FTP/1.0\r\n\r\n", 400, id="not-http"),
        # RFC 9112 §3.2: a 1.1 request without Host, any request with two or a bad one: 400.
        pytest.param(b"GET / HTTP/1.1\r\n\r\n", 400, id="1.1-without-host"),
        pytest.param(b"GET / HTTP/1.2\r\n\r\n", 400, id="1.2-without-host"),
        pytest.param(b"GET / HTTP/1.1\r\n" + H + H + b"\r\n", 400, id="two-hosts"),
        pytest.param(b"GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n", 400, id="1.0-two-hosts"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, id="host-with-space"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, id="host-with-slash"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400, id="host-with-userinfo"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400, id="host-unclosed-ipv6"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: a:80:1\r\n\r\n", 400, id="host-two-ports"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: \xe9\r\n\r\n", 400, id="host-not-ascii"),
        # Content is never read: its bytes would be taken for the next request.
        pytest.param(b"GET / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n\r\n", 413, id="body"),
        pytest.param(
            b"GET / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n", 413, id="chunked"
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1\r\n\r\n", 405, id="post-body"
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\n" + H + b"Content-Length: 1x\r\n\r\n", 400, id="bad-length"
        ),
        pytest.param(b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * 101 + b"\r\n", 431, id="too-many"),
        pytest.param(
            b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414, id="long-target"
        ),
    ],
)
def test_malformed_requests_are_refused(data: bytes, status: int) -> None:
    with pytest.raises(HTTPError) as info:
        RequestParser().feed(data)
    assert info.value.status == status


@pytest.mark.parametrize(
    ("data", "version", "host"),
    [
        pytest.param(b"GET / HTTP/1.0\r\n\r\n", "HTTP/1.0", None, id="1.0-needs-no-host"),
        pytest.param(b"GET / HTTP/1.1\r\nHost:\r\n\r\n", "HTTP/1.1", "", id="empty-host"),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: lab:8001\r\n\r\n", "HTTP/1.1", "lab:8001", id="port"
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", "HTTP/1.1", "[::1]:80", id="ipv6"
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: 10.0.0.2\r\n\r\n", "HTTP/1.1", "10.0.0.2", id="ipv4"
        ),
        # RFC 9110 §2.5: a later 1.x is answered as the highest minor version we speak.
        pytest.param(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", "HTTP/1.1", "a", id="1.2-as-1.1"),
        pytest.param(b"GET / HTTP/1.9\r\nHost: a\r\n\r\n", "HTTP/1.1", "a", id="1.9-as-1.1"),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1", "a", id="cl-0"
        ),
    ],
)
def test_requests_that_conform(data: bytes, version: str, host: str | None) -> None:
    (request,) = RequestParser().feed(data)
    assert request.version == version
    assert request.headers.get("host") == host


def test_1_2_keeps_alive_as_1_1_does() -> None:
    (request,) = RequestParser().feed(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n")
    assert http.wants_keep_alive(request)


def test_long_target_is_414_before_its_end_arrives() -> None:
    parser = RequestParser()
    line = b"GET /" + b"a" * (http.MAX_REQUEST_LINE - 5)  # the longest line allowed ...
    assert parser.feed(line) == []  # ... could still end here with its CR LF
    with pytest.raises(HTTPError) as info:
        parser.feed(b"aa")
    assert info.value.status == 414


def test_long_header_is_431_not_414() -> None:
    data = b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"y" * http.MAX_HEAD + b"\r\n\r\n"
    with pytest.raises(HTTPError) as info:
        RequestParser().feed(data)
    assert info.value.status == 431


def test_requests_before_a_refusal_come_first_and_the_parser_stays_refused() -> None:
    parser = RequestParser()
    good = b"GET /a?size=1 HTTP/1.1\r\nHost: a\r\n\r\n"
    got = parser.feed(good + good + b"GET / HTTP/1.1\r\n\r\n" + good)
    assert [r.target for r in got] == ["/a?size=1"] * 2
    assert parser.refusal is not None and parser.refusal.status == 400
    assert parser.pending == 0  # what followed the refusal is dropped, never parsed
    with pytest.raises(HTTPError) as info:
        parser.feed(good)
    assert info.value is parser.refusal


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
    assert http.route(Request("HEAD", target, "HTTP/1.1"), resources) == expected


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
        pytest.param("POST", "/a?size=1", 405, id="post"),
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


def test_http_date_is_imf_fixdate_and_formatted_once_a_second() -> None:
    assert http.http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"  # RFC 9110's example
    assert http.http_date(784111777.9) is http.http_date(784111777.2)  # cached, not re-made
    assert http.http_date(784111778) == "Sun, 06 Nov 1994 08:49:38 GMT"


@pytest.mark.parametrize("status", [200, 404, 405, 414])
def test_every_response_head_has_a_date(status: int) -> None:
    head = http.response_head(status, 5, True, date="Sun, 06 Nov 1994 08:49:37 GMT")
    assert b"\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n" in head
    assert re.search(
        rb"\r\nDate: \w{3}, \d\d \w{3} \d{4} [\d:]{8} GMT\r\n", http.response_head(status, 5, True)
    )


def test_405_says_what_is_allowed() -> None:
    assert b"\r\nAllow: GET, HEAD\r\n" in http.error_response(405, "no")
    assert b"Allow" not in http.error_response(404, "no")


def test_a_refusal_to_a_head_has_the_length_but_no_body() -> None:
    full = http.error_response(404, "no such thing", keep_alive=True)
    head_only = http.error_response(404, "no such thing", keep_alive=True, head_only=True)
    assert full.startswith(head_only) and head_only.endswith(b"\r\n\r\n")
    (response,) = ResponseParser().feed(full)
    assert response.keep_alive and f"Content-Length: {len(response.body)}".encode() in head_only
