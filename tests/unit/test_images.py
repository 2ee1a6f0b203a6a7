"""The image builder's pure parts: content tags, build contexts, Dockerfiles, the base recipe."""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import pytest

from lab import images


def _package(root: Path, name: str, files: dict[str, str]) -> Path:
    pkg = root / name
    for rel, text in {"__init__.py": "", **files}.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    return pkg


@pytest.fixture
def roots(tmp_path: Path) -> dict[str, Path | None]:
    return {
        "wire": _package(tmp_path, "wire", {"framing.py": "FRAME = 1\n"}),
        "server": _package(tmp_path, "server", {"__main__.py": "print('server')\n"}),
        "client": _package(tmp_path, "client", {"__main__.py": "print('client')\n"}),
        "lab": _package(tmp_path, "lab", {"analysis.py": "A = 1\n"}),
        "shaper": None,  # not written yet: the role still builds, without code
    }


def _ctx(role: str, roots, base: str = "tcplab/base:0123456789ab") -> images.Context:
    return images.assemble(role, b"ARG BASE\nFROM ${BASE}\n", roots, base)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        pytest.param([("x", b"1"), ("y", b"2")], [("y", b"2"), ("x", b"1")], True, id="order"),
        pytest.param([("x", b"1")], [("x", b"2")], False, id="content"),
        pytest.param([("x", b"1")], [("z", b"1")], False, id="name"),
        pytest.param([("x", b"12"), ("y", b"")], [("x", b"1"), ("y", b"2")], False, id="split"),
    ],
)
def test_digest(a, b, same):
    assert (images.digest(a) == images.digest(b)) is same
    assert re.fullmatch(r"[0-9a-f]{12}", images.digest(a))


def test_context_holds_the_role_packages_only(roots):
    ctx = _ctx("server", roots)
    assert ctx.packages == ("wire", "server")
    names = {name for name, _ in ctx.files}
    assert names == {
        "wire/__init__.py",
        "wire/framing.py",
        "server/__init__.py",
        "server/__main__.py",
    }


def test_context_skips_caches_hidden_files_and_dockerfiles(roots):
    lab = roots["lab"]
    (lab / "__pycache__").mkdir()
    (lab / "__pycache__" / "analysis.cpython-311.pyc").write_bytes(b"\0")
    (lab / "stale.pyc").write_bytes(b"\0")
    (lab / ".hidden").write_text("x")
    (lab / "images").mkdir()
    (lab / "images" / "server.Dockerfile").write_text("FROM x\n")
    names = {name for name, _ in _ctx("capture", roots).files}
    assert names == {"wire/__init__.py", "wire/framing.py", "lab/__init__.py", "lab/analysis.py"}


def test_missing_package_leaves_an_empty_code_dir(roots):
    ctx = _ctx("shaper", roots)
    assert ctx.packages == ("wire",)
    roots["wire"] = None
    empty = _ctx("shaper", roots)
    assert empty.packages == () and empty.files == ()
    with tarfile.open(fileobj=io.BytesIO(empty.tar())) as tar:
        assert tar.getmember("code").isdir()
        assert tar.getnames() == ["code", "Dockerfile"]


def test_tag_follows_exactly_the_inputs(roots):
    before = {role: _ctx(role, roots).tag for role in images.ROLES}
    (roots["server"] / "__main__.py").write_text("print('server v2')\n")
    after = {role: _ctx(role, roots).tag for role in images.ROLES}
    assert after["server"] != before["server"]
    assert {r: t for r, t in after.items() if r != "server"} == {
        r: t for r, t in before.items() if r != "server"
    }
    # Shared code rebuilds every image that carries it; a new base rebuilds them all.
    (roots["wire"] / "framing.py").write_text("FRAME = 2\n")
    wired = {role: _ctx(role, roots).tag for role in images.ROLES}
    assert all(wired[r] != after[r] for r in images.ROLES)
    rebased = {role: _ctx(role, roots, "tcplab/base:ffffffffffff").tag for role in images.ROLES}
    assert all(rebased[r] != wired[r] for r in images.ROLES)


def test_tag_ignores_file_times(roots):
    import os

    tag = _ctx("client", roots).tag
    os.utime(roots["client"] / "__main__.py", (1, 1))
    assert _ctx("client", roots).tag == tag


def test_context_tar_is_reproducible_and_complete(roots):
    ctx = _ctx("client", roots)
    assert ctx.tar() == _ctx("client", roots).tar()
    with tarfile.open(fileobj=io.BytesIO(ctx.tar())) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert tar.extractfile("Dockerfile").read() == ctx.dockerfile
        assert tar.extractfile("code/client/__main__.py").read() == b"print('client')\n"
    assert all(m.mtime == 0 and m.uid == 0 for m in members.values())
    assert ctx.ref == f"tcplab/client:{ctx.tag}"


@pytest.mark.parametrize("role", [pytest.param(r, id=r) for r in [*images.ROLES, "base"]])
def test_dockerfiles_never_contact_a_registry_and_carry_the_label(role):
    text = (images.IMAGES_DIR / f"{role}.Dockerfile").read_text()
    assert not re.search(r"^#\s*syntax\s*=", text, re.M | re.I), "a syntax line pulls an image"
    if role == "base":
        assert "FROM debian:bookworm-slim" in text
        return
    assert re.search(r"^LABEL .*\btcplab\.project=1\b", text, re.M)
    assert re.search(r"^FROM \$\{BASE\}$", text, re.M)
    assert text.rstrip().splitlines()[-1].startswith("COPY code/"), "code last: cheap rebuilds"
    user = re.search(r"^USER (\S+)", text, re.M)
    if role in ("server", "client"):
        assert user and user.group(1).split(":")[0] == "10001"


def test_base_tag_follows_the_recipe(monkeypatch):
    ref = images.base_ref()
    assert re.fullmatch(r"tcplab/base:[0-9a-f]{12}", ref)
    assert images.base_ref() == ref
    monkeypatch.setattr(images, "BASE_PACKAGES", (*images.BASE_PACKAGES, "strace"))
    assert images.base_ref() != ref


def test_base_recipe_names_every_package_the_contract_promises():
    promised = {"python3", "python3-dpkt", "tcpdump", "iproute2", "iptables", "curl", "procps"}
    assert promised <= set(images.BASE_PACKAGES)
    assert not any("pip" in p for p in images.BASE_PACKAGES)


def test_mmdebstrap_command():
    cmd = images.mmdebstrap_command("/tmp/base.tar", Path("/hooks/merged-usr"))
    assert cmd[0] == "mmdebstrap" and cmd[-2:] == ["bookworm", "/tmp/base.tar"]
    assert "--variant=minbase" in cmd
    assert "--include=" + ",".join(images.BASE_PACKAGES) in cmd
    assert "--hook-dir=/hooks/merged-usr" in cmd
    assert "--dpkgopt=path-exclude=/usr/share/man/*" in cmd
    assert not any(a.startswith("--hook-dir") for a in images.mmdebstrap_command("x", None))


def test_package_roots_finds_the_installed_packages():
    found = images.package_roots()
    assert found["lab"] == Path(images.__file__).resolve().parent
    assert found["wire"] is not None and (found["wire"] / "__init__.py").is_file()
