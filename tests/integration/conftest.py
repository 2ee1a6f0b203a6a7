"""Integration fixtures: the lab's images, built once, and a clean engine at the end.

`lab_images` builds with the same builder as `python -m lab build` (cached after the first
time). At session end every container and network labelled tcplab.project=1 that appeared during
the session is removed, and the session fails if there was any: tests clean up after themselves,
and this is the check. Images stay (the next session reuses them).

In CI (a fresh engine, this session alone) that is everything new. Elsewhere several people
may share one engine, so only what this session made is touched: testcontainers' session label,
or the compose test's project name.
"""

from __future__ import annotations

import subprocess
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from testcontainers.core.labels import LABEL_SESSION_ID, SESSION_ID

from lab import LABELS
from lab.engine import Engine
from lab.images import ensure_images
from tests.conftest import IN_CI, docker_available

# Labels for every container and network a test makes directly.
TEST_LABELS = {**LABELS, "tcplab.test": "1"}


def decrypted_requests(folder: Path, port: int, h2: bool) -> list[str]:
    """The request paths tshark reads from a TLS mode's capture with the mode's key log: an
    independent check that the key log decrypts it (HTTP/2: each request is a HEADERS frame,
    type 1, whose :path tshark decodes with HPACK)."""
    wanted = (
        ["-Y", 'http2.type == 1 && http2.header.name == ":path"', "-e", "http2.headers.path"]
        if h2
        else ["-Y", "http.request", "-e", "http.request.uri"]
    )
    done = subprocess.run(
        ["tshark", "-r", str(folder / "capture.pcap"), "-o",
         f"tls.keylog_file:{folder / 'tls-keys.log'}", "-d", f"tcp.port=={port},tls",
         "-T", "fields", *wanted],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return ",".join(done.stdout.split()).split(",")


def compose_project() -> str:
    """The Compose project name the compose test uses: unique to this session."""
    return f"tcplab-test-{SESSION_ID[:8]}"


@pytest.fixture(scope="session")
def lab_images(needs_docker: None) -> dict[str, str]:
    started = time.monotonic()
    refs = ensure_images()
    print(f"\nlab images ready in {time.monotonic() - started:.1f} s: {refs}")
    return refs


def _objects(client) -> dict[str, dict[str, dict]]:
    engine = Engine(client)
    containers = engine.project_containers()
    networks = engine.project_networks()
    return {
        "container": {c.id: {**c.labels, "name": c.name} for c in containers},
        "network": {n.id: {**(n.attrs.get("Labels") or {}), "name": n.name} for n in networks},
    }


@pytest.fixture(scope="session", autouse=True)
def no_lab_leftovers() -> Iterator[None]:
    ok, _ = docker_available()
    if not ok:
        yield
        return
    client = docker.from_env(timeout=30)
    before = _objects(client)
    yield

    leaked: list[str] = []
    others: list[str] = []
    for kind, found in _objects(client).items():
        for obj_id, labels in found.items():
            if obj_id in before[kind]:
                continue
            ours = labels.get(LABEL_SESSION_ID) == SESSION_ID or (
                labels.get("com.docker.compose.project") == compose_project()
            )
            if not IN_CI and not ours:
                others.append(f"{kind} {labels['name']}")
                continue
            leaked.append(f"{kind} {labels.get('name', obj_id[:12])}")
            try:
                if kind == "container":
                    client.containers.get(obj_id).remove(force=True, v=True)
                else:
                    client.networks.get(obj_id).remove()
            except docker.errors.NotFound:
                pass
    if others:
        warnings.warn(f"lab objects of someone else left alone: {others}", stacklevel=1)
    remaining = {k: set(v) - set(before[k]) for k, v in _objects(client).items()}
    client.close()
    assert not leaked, f"tests left lab objects behind (now removed): {leaked}"
    if IN_CI:
        assert not any(remaining.values()), f"lab objects could not be removed: {remaining}"
