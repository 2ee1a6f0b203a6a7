"""What the server's and the client's TLS contexts share (stdlib `ssl`): one pinned version, the
one-line setup error, and the ALPN and key log options. `server.tls` adds the certificate and
key, `client.tls` the CA it trusts."""

from __future__ import annotations

import ssl
from collections.abc import Sequence

VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


class TlsSetupError(ValueError):
    """A one-line reason a program cannot speak TLS (bad version, missing or bad PEM)."""


def pinned_context(protocol: int, version: str) -> ssl.SSLContext:
    """A context of `protocol` (ssl.PROTOCOL_TLS_SERVER or _CLIENT) that speaks exactly TLS
    `version`: the minimum and the maximum both, so a mode measures one version."""
    try:
        pinned = VERSIONS[version]
    except KeyError:
        raise TlsSetupError(
            f"unknown TLS version {version!r} (choose from {', '.join(VERSIONS)})"
        ) from None
    ctx = ssl.SSLContext(protocol)
    ctx.minimum_version = ctx.maximum_version = pinned
    return ctx


def with_options(
    ctx: ssl.SSLContext, alpn: Sequence[str] = (), keylog: str | None = None
) -> ssl.SSLContext:
    """`alpn`: the protocols offered (client) or picked from (server), in order of preference;
    `keylog`: where the TLS secrets are appended (SSLKEYLOGFILE format), for Wireshark."""
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if keylog:
        ctx.keylog_filename = keylog
    return ctx
