"""atheris harness for the HTTP request handling (`wire.http`, as `server.handlers.serve_http`
uses it) and the client's response parser.

    python fuzz/http_fuzz.py -atheris_runs=200000      # or -max_total_time=60
    mkdir -p /tmp/fz && python fuzz/http_fuzz.py /tmp/fz fuzz/corpus/http -max_total_time=60
    # (libFuzzer adds new inputs to the first folder: keep it out of the seeds)

The first byte chooses the head limit and how the rest is split into reads. Properties: only
`HTTPError` escapes the parsers and `route`, with a status the server can send (its error
response parses back); a parser never holds more than its limit; a client's request for a
valid name routes back to that name and size. `TestOneInput` needs no atheris.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wire import http
from wire.http import HTTPError, RequestParser, ResponseParser

MAX_BODY = 1 << 20
_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")


def _chunks(data: bytes, seed: int) -> list[bytes]:
    out, at, i = [], 0, 0
    while at < len(data):
        size = 1 + (seed * (i + 5) + i * i) % 211
        out.append(data[at : at + size])
        at += size
        i += 1
    return out


def _check_refusal(exc: HTTPError) -> None:
    assert exc.status in http.REASONS, exc.status
    reply = http.error_response(exc.status, str(exc), "HTTP/1.1")
    (response,) = ResponseParser().feed(reply)
    assert response.status == exc.status and not response.keep_alive


def _serve(chunks: list[bytes], max_head: int) -> None:
    parser = RequestParser(max_head)
    try:
        for chunk in chunks:
            requests = parser.feed(chunk)
            assert parser.pending <= max_head, (parser.pending, max_head)
            for request in requests:
                http.wants_keep_alive(request)
                name, size = http.route(request, {"index.html": 10}, MAX_BODY)
                assert _NAME.fullmatch(name), name
                assert 0 <= size <= MAX_BODY
    except HTTPError as exc:
        _check_refusal(exc)


def _responses(chunks: list[bytes]) -> None:
    parser = ResponseParser(max_head=512, max_body=4096)
    try:
        for chunk in chunks:
            for response in parser.feed(chunk):
                assert len(response.body) <= 4096
            assert parser.pending <= 4096 + 1
    except HTTPError as exc:
        assert exc.status in http.REASONS


def _client_round_trip(body: bytes, seed: int) -> None:
    name = "".join(c for c in body.decode("latin-1") if _NAME.fullmatch(c))[:128]
    if not name:
        return
    size = int.from_bytes(body[:4].ljust(4, b"\0"), "big") % (MAX_BODY + 1)
    keep_alive = bool(seed & 1)
    version = "HTTP/1.1" if seed & 2 else "HTTP/1.0"
    wire = http.request_bytes(name, size, "server", keep_alive, version)
    parser = RequestParser()
    (request,) = [r for chunk in _chunks(wire, seed) for r in parser.feed(chunk)]
    assert http.route(request, None, MAX_BODY) == (name, size)
    assert http.wants_keep_alive(request) is keep_alive


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    seed, body = data[0], data[1:]
    max_head = (64, 512, http.MAX_HEAD)[seed % 3]
    chunks = _chunks(body, seed)
    _serve(chunks, max_head)
    _responses(chunks)
    _client_round_trip(body, seed)


def main() -> None:
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
