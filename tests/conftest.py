"""Shared test policy: what to do when Docker (or Compose v2, or tcpdump) is missing.

Off CI, a test that needs a prerequisite skips with the reason. In CI (`CI=true`) a missing
prerequisite is a failure, never a skip: a green CI must mean the integration tests ran.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# testcontainers' reaper (Ryuk) is an image to pull, and nothing can be pulled here: the tests
# clean up by label instead (see tests/integration/conftest.py).
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")


def require(ok: bool, reason: str) -> None:
    """Skip (off CI) or fail (in CI) when a prerequisite is missing."""
    if ok:
        return
    if IN_CI:
        pytest.fail(f"CI prerequisite missing: {reason}", pytrace=False)
    pytest.skip(reason)


def docker_available() -> tuple[bool, str]:
    try:
        import docker

        client = docker.from_env(timeout=10)
        client.ping()
        client.close()
        return True, ""
    except Exception as exc:  # any failure to reach the engine means "no Docker" here
        return False, f"Docker Engine not reachable ({type(exc).__name__}: {exc})"


def compose_v2_available() -> tuple[bool, str]:
    if shutil.which("docker") is None:
        return False, "docker CLI not found"
    try:
        out = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"docker compose version failed: {exc}"
    if out.returncode != 0:
        return False, "Compose v2 (`docker compose`) is not installed"
    return True, ""


@pytest.fixture(scope="session")
def needs_docker() -> None:
    ok, reason = docker_available()
    require(ok, reason)


@pytest.fixture(scope="session")
def needs_compose_v2() -> None:
    ok, reason = compose_v2_available()
    require(ok, reason)


@pytest.fixture(scope="session")
def needs_curl() -> None:
    require(shutil.which("curl") is not None, "curl not installed")


@pytest.fixture(scope="session")
def needs_tshark() -> None:
    require(shutil.which("tshark") is not None, "tshark not installed")
