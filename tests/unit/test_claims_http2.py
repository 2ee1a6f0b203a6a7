""" "HTTP/2 fetches the page over one connection", checked on hand-made analysis documents."""

from __future__ import annotations

import pytest

from lab import tls
from tests.unit.test_claims import analysis, by_id, check_claims, keepalive_mode


def h2_doc(conns=1, ok=10, offered=("h2",), chosen=tls.ALPN_ENCRYPTED, protocol="h2"):
    mode = keepalive_mode(name="h2", conns=conns, n=10)
    mode["client_ok"] = ok
    for c in mode["per_connection"]:
        if offered is not None:
            c["tls"] = {"alpn_offered": list(offered), "alpn": chosen}
    doc = analysis(mode, keepalive_mode(name="keepalive"), n=10)
    doc["scenario"]["protocol"] = "http"
    doc["scenario"]["modes"][0]["protocol"] = protocol
    return doc


def test_http2_on_one_connection_holds_and_http1_modes_get_no_such_claim():
    claims = check_claims(h2_doc())
    claim = by_id(claims, "http2-one-connection")
    assert claim["mode"] == "h2" and claim["holds"] is True
    assert claim["observed"] == "1 connection, 10 requests answered"
    assert "offered h2 by ALPN" in claim["why"] and "encrypted" in claim["why"]
    assert by_id(claims, "keepalive", "h2")["holds"] is True  # one handshake, one teardown


def test_h2c_needs_no_alpn():
    claim = by_id(check_claims(h2_doc(offered=None, protocol="h2c")), "http2-one-connection")
    assert claim["holds"] is True and "prior knowledge" in claim["why"]


@pytest.mark.parametrize(
    ("over", "needle"),
    [
        ({"conns": 2}, "2 connections in the capture"),
        ({"ok": 7}, "7 of 10 requests answered"),
        ({"offered": ("http/1.1",)}, "offered ['http/1.1']"),
        ({"chosen": "http/1.1"}, "the server chose http/1.1"),
    ],
)
def test_http2_claim_differs_with_a_reason(over, needle):
    claim = by_id(check_claims(h2_doc(**over)), "http2-one-connection")
    assert claim["holds"] is False and needle in claim["why"]
