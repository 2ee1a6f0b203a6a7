"""A certificate authority per run, and the server's certificate it signs (host only).

Made with the `cryptography` package on the host: the images have no PyPI and need none, since
the server only loads PEM files and the client only trusts a PEM certificate (stdlib `ssl`).

Who gets what:

- the CA's private key exists only in this process's memory (`Authority` holds it; nothing
  writes it): once the run's server certificate is signed it is not needed again, so a run
  folder never holds a key that could sign for another name;
- the server gets its certificate and key in its environment (`server_environment`): the
  containers' root filesystems are read-only, and Docker cannot copy into a tmpfs (`docker
  cp` and put_archive write beneath it: moby/moby#22020, documented in `docker cp`'s page), so
  the server loads the PEM text from memory (server/tls.py: a memfd, no file);
- the client gets the CA certificate only (`client_environment`), which it trusts for the
  name `server` (the server's container name on the run's network).

The environment is in the container's configuration on the Docker host until the container is
removed, as is everything else the runner gives it: a key made for one run and thrown away
with it, signed by a CA whose key is gone.

`write_public` writes what may stay in the run folder: the CA certificate (Wireshark and curl
need it, `curl --cacert`) and the server's certificate. The server's key stays out of it too:
the key log (SSLKEYLOGFILE) is what lets Wireshark read a run's capture.

RSA 2048 by default, as most web servers still use: the certificate's size is part of what a
TLS 1.2 handshake costs on the wire (about 0.9 KB for the leaf alone), and an EC P-256 key
(`key="ec"`) shows how much a smaller one saves.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_NAMES = ("server", "localhost")  # the container's name on the run's network; tests
SERVER_ADDRESSES = ("127.0.0.1", "::1")
KEY_KINDS = ("rsa", "ec")
# The containers' environment variables (the same names as server/tls.py's and client/tls.py's,
# which cannot import lab: a unit test checks they agree)
CERT_ENV, KEY_ENV, CA_ENV = "LAB_TLS_CERT", "LAB_TLS_KEY", "LAB_TLS_CA"
VALID_DAYS = 7  # a run lasts minutes; a week forgives a host clock that is a little off
CLOCK_SLACK = dt.timedelta(hours=1)  # not-before in the past: containers' clocks are the host's


@dataclass(frozen=True)
class Authority:
    """One run's CA and server certificate, as PEM. `ca_key` never leaves this object."""

    ca_cert_pem: bytes
    server_cert_pem: bytes
    server_key_pem: bytes
    names: tuple[str, ...]
    ca_key: object = field(repr=False)

    @property
    def ca_cert_der_len(self) -> int:
        return len(x509.load_pem_x509_certificate(self.ca_cert_pem).public_bytes(_DER))

    @property
    def server_cert_der_len(self) -> int:
        """The leaf certificate's size: what the server's Certificate message carries."""
        return len(x509.load_pem_x509_certificate(self.server_cert_pem).public_bytes(_DER))

    def write_public(self, folder: str | os.PathLike) -> dict[str, Path]:
        """Write the CA certificate and the server's certificate into `folder` (a run folder);
        returns their paths by role. Never the keys."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"ca": out / "tls-ca.pem", "server_cert": out / "tls-server.pem"}
        paths["ca"].write_bytes(self.ca_cert_pem)
        paths["server_cert"].write_bytes(self.server_cert_pem)
        return paths

    def server_environment(self) -> dict[str, str]:
        """What the server's container gets: its certificate and key as PEM text (names: the
        server's `server.tls.CERT_ENV` and `KEY_ENV`)."""
        return {CERT_ENV: self.server_cert_pem.decode(), KEY_ENV: self.server_key_pem.decode()}

    def client_environment(self) -> dict[str, str]:
        """What the client's container gets: the CA certificate only (`client.tls.CA_ENV`)."""
        return {CA_ENV: self.ca_cert_pem.decode()}

    def server_spki_pin(self) -> str:
        """The server certificate's public key as Chromium pins it: the base64 SHA-256 of its
        SubjectPublicKeyInfo (`--ignore-certificate-errors-spki-list`). Chromium's trust store
        is NSS, which the lab leaves alone: the browser trusts the run's server by this pin."""
        cert = x509.load_pem_x509_certificate(self.server_cert_pem)
        spki = cert.public_key().public_bytes(_DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(hashlib.sha256(spki).digest()).decode()


_DER = serialization.Encoding.DER


def _new_key(kind: str):
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unknown key kind {kind!r} (choose from {', '.join(KEY_KINDS)})")


def make_authority(
    names: tuple[str, ...] = SERVER_NAMES,
    addresses: tuple[str, ...] = SERVER_ADDRESSES,
    key: str = "rsa",
    now: dt.datetime | None = None,
    days: int = VALID_DAYS,
) -> Authority:
    """A fresh CA and a server certificate for `names` and `addresses` (subjectAltName), both
    with `key` keys. `now` is for tests (a fixed validity period)."""
    if not names:
        raise ValueError("a server certificate needs at least one name")
    if days < 1:
        raise ValueError("days >= 1 is required")
    now = now or dt.datetime.now(dt.UTC)
    start, end = now - CLOCK_SLACK, now + dt.timedelta(days=days)
    ca_key = _new_key(key)
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "TCP Connection Lab"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"TCP Connection Lab run CA {time.time_ns()}"),
        ]
    )
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = _new_key(key)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return Authority(
        ca_cert_pem=ca_cert.public_bytes(pem),
        server_cert_pem=server_cert.public_bytes(pem),
        server_key_pem=server_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        names=tuple(names),
        ca_key=ca_key,
    )
