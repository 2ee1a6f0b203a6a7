"""docker-compose.yml as a user runs it: the demo, the capture's lines and the comparison.

The project name and the pcap folder are this session's own (COMPOSE_PROJECT_NAME,
TCPLAB_COMPOSE_OUT), so a user's `docker compose up` in the same checkout is not disturbed.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from pathlib import Path

import docker
import dpkt
import pytest
from testcontainers.compose import DockerCompose

from tests.integration.conftest import TEST_LABELS, compose_project

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def compose_env(
    monkeypatch, tmp_path: Path, needs_compose_v2: None, lab_images: dict[str, str]
) -> Path:
    out = tmp_path / "compose"
    out.mkdir()
    out.chmod(0o777)  # tcpdump writes as root without CAP_DAC_OVERRIDE
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", compose_project())
    monkeypatch.setenv("TCPLAB_COMPOSE_OUT", str(out))
    return out


def _row(text: str, mode: str) -> list[str]:
    match = re.search(rf"^(?:\S+\s+\|\s+)?{mode}\s+(\d+(?:\s+\d+)+)\s*$", text, re.M)
    assert match, f"no {mode} row in:\n{text}"
    return match.group(1).split()


def _check_comparison(logs: str) -> None:
    # port, connections, SYN, SYN/ACK, FIN, packets, bytes, payload
    np = _row(logs, "non-persistent")
    p = _row(logs, "persistent")
    assert np[:5] == ["3000", "5", "5", "5", "10"], np
    assert p[:5] == ["3001", "1", "1", "1", "2"], p
    assert int(np[5]) > int(p[5]), "more packets without keep-alive"
    assert np[7] == p[7], "the same payload bytes either way"
    assert len(re.findall(r"non-persistent conn \d\s.*:3000\s+\[SYN\]", logs)) == 5
    assert len(re.findall(r"persistent\s+conn 1\s.*:3001\s+\[SYN\]", logs)) == 1


def _syn_count(pcap: Path) -> int:
    with pcap.open("rb") as f:
        return sum(
            1
            for _, buf in dpkt.pcap.Reader(f)
            if isinstance(tcp := dpkt.ethernet.Ethernet(buf).data.data, dpkt.tcp.TCP)
            and tcp.flags & dpkt.tcp.TH_SYN
            and not tcp.flags & dpkt.tcp.TH_ACK
        )


def test_compose_demo_prints_the_comparison(compose_env: Path):
    compose = DockerCompose(REPO, compose_file_name="docker-compose.yml", wait=False)
    client = docker.from_env(timeout=30)
    with compose:
        report = client.containers.list(
            all=True,
            filters={
                "label": [
                    f"com.docker.compose.project={compose_project()}",
                    "com.docker.compose.service=report",
                ]
            },
        )
        assert len(report) == 1
        status = report[0].wait(timeout=120)
        stdout, stderr = compose.get_logs()
        assert status["StatusCode"] == 0, stdout + stderr
        _check_comparison(stdout)
        assert "client: demo done" in stdout
        for name in ("Luffy", "Zoro", "Sanji", "Nami", "Robin"):
            assert name in stdout
    left = client.containers.list(
        all=True, filters={"label": f"com.docker.compose.project={compose_project()}"}
    )
    client.close()
    assert left == [], "docker compose down left containers"
    assert _syn_count(compose_env / "capture.pcap") == 6


def _up_then_down() -> subprocess.CompletedProcess[str]:
    """`docker compose up --abort-on-container-exit` as a user types it, then `down`."""
    cmd = ["docker", "compose", "up", "--abort-on-container-exit"]
    try:
        return subprocess.run(
            cmd, cwd=REPO, capture_output=True, text=True, timeout=180, env=os.environ
        )
    finally:
        subprocess.run(
            ["docker", "compose", "down", "--timeout", "5"],
            cwd=REPO,
            capture_output=True,
            timeout=120,
        )


def test_up_abort_on_container_exit_ends_with_0(compose_env: Path):
    done = _up_then_down()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    _check_comparison(done.stdout)
    assert re.search(r"report\S*\s+exited with code 0", done.stdout + done.stderr)


def _code_tree(client, ref: str) -> str:
    """Every file and folder under /opt/tcplab with its mode, owner and SHA-256."""
    script = (
        "cd /opt/tcplab && find . -exec stat -c '%A %u:%g %n' {} + | sort"
        " && find . -type f -exec sha256sum {} + | sort"
    )
    out = client.containers.run(
        ref, ["-c", script], entrypoint="sh", remove=True, network_mode="none", labels=TEST_LABELS
    )
    return out.decode()


def test_up_builds_a_missing_role_image_like_the_builder(
    compose_env: Path, lab_images: dict[str, str]
):
    """A fresh machine: the base is there (from `python -m lab build` or the registry), the
    server image is not. Compose builds it, from the same Dockerfile and the same files."""
    client = docker.from_env(timeout=60)
    built_by_lab = client.images.get(lab_images["server"]).id
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove("tcplab/server:latest")  # an untag: the hash tag keeps the image
    try:
        done = _up_then_down()
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        _check_comparison(done.stdout)
        built_by_compose = client.images.get("tcplab/server:latest").id
        assert built_by_compose != built_by_lab, "Compose built nothing"
        tree = _code_tree(client, lab_images["server"])
        assert "./server/__main__.py" in tree and "./wire/" in tree
        assert "__pycache__" not in tree and "Dockerfile" not in tree
        assert _code_tree(client, "tcplab/server:latest") == tree
    finally:
        # :latest back on the builder's image, as `python -m lab build` leaves it.
        client.api.tag(built_by_lab, "tcplab/server", "latest", force=True)
        client.close()
