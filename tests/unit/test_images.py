"""The image builder's pure parts: content tags, build contexts, Dockerfiles, the base recipe."""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Iterable
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


def test_missing_package_leaves_an_empty_folder(roots):
    ctx = _ctx("shaper", roots)
    assert ctx.packages == ("wire",)
    with tarfile.open(fileobj=io.BytesIO(ctx.tar())) as tar:
        assert tar.getmember("shaper").isdir()  # the Dockerfile's COPY shaper/ needs it
        assert "wire/framing.py" in tar.getnames()
    roots["wire"] = None
    empty = _ctx("shaper", roots)
    assert empty.packages == () and empty.files == ()
    with tarfile.open(fileobj=io.BytesIO(empty.tar())) as tar:
        assert all(tar.getmember(p).isdir() for p in ("wire", "shaper"))
        assert tar.getnames() == ["wire", "shaper", "Dockerfile"]


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
        # The repository's layout, as docker-compose.yml's context has it.
        assert tar.extractfile("client/__main__.py").read() == b"print('client')\n"
        assert tar.extractfile("wire/framing.py").read() == b"FRAME = 1\n"
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
    assert re.search(r"^ARG BASE=tcplab/base:latest$", text, re.M), "the base Compose expects"
    # The code last (cheap rebuilds), one COPY per package of ROLES, from the repository layout.
    packages = images.ROLES[role]
    copies = [f"COPY {p}/ /opt/tcplab/{p}/" for p in packages]
    assert text.rstrip().splitlines()[-len(packages) :] == copies
    assert len(re.findall(r"^(?:COPY|ADD) ", text, re.M)) == len(packages)
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
    promised = {
        "python3",
        "python3-dpkt",
        "python3-h2",
        "tcpdump",
        "iproute2",
        "iptables",
        "curl",
        "procps",
    }
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


# ------------------------------------------------ docker-compose.yml builds with the same recipe

REPO = Path(images.__file__).resolve().parents[1]
COMPOSE_BASE = "${TCPLAB_BASE:-tcplab/base:latest}"


def test_compose_builds_every_image_it_runs_and_pulls_none():
    import yaml

    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    built: dict[str, dict] = {}
    for name, svc in services.items():
        assert svc.get("pull_policy") == "never", f"{name}: a registry's tcplab/* never runs"
        if "build" in svc:
            built[svc["image"]] = svc["build"]
    assert {svc["image"] for svc in services.values()} == set(built)
    for image, build in built.items():
        if image == COMPOSE_BASE:
            continue
        role = re.fullmatch(r"tcplab/(\w+):latest", image).group(1)
        assert role in images.ROLES
        assert build["context"] == "."
        assert build["dockerfile"] == f"lab/images/{role}.Dockerfile"
        assert (REPO / build["dockerfile"]).is_file()
        assert build["args"] == {"BASE": COMPOSE_BASE}
    # The role images wait for the base (Compose builds in depends_on order).
    for name in ("server", "client", "capture"):
        assert services[name]["depends_on"]["base"] == {"condition": "service_started"}


def test_compose_base_is_the_builders_registry_recipe_and_never_runs():
    import yaml

    base = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["base"]
    assert base["image"] == COMPOSE_BASE
    assert f"{images.BASE_REPO}:latest" in COMPOSE_BASE  # the tag ensure_base gives the base
    assert base["scale"] == 0
    assert (REPO / base["build"]["context"] / base["build"]["dockerfile"]).samefile(
        images.IMAGES_DIR / "base.Dockerfile"
    )
    assert tuple(base["build"]["args"]["PACKAGES"].split()) == images.BASE_PACKAGES
    assert base["build"]["labels"]["tcplab.project"] == "1"


def _dockerignore(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    """(is an exception `!`, regex) per line, with Docker's rules: `*` and `?` stop at `/`,
    `**` crosses folders."""
    rules = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        pattern, out, i = line.lstrip("!").strip("/"), "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out, i = out + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                out, i = out + ".*", i + 2
            else:
                out += {"*": "[^/]*", "?": "[^/]"}.get(pattern[i], re.escape(pattern[i]))
                i += 1
        rules.append((keep, re.compile(out)))
    return rules


def _sent(rules, rel: str) -> bool:
    """Whether Docker sends `rel`: the last rule matching it or a folder above it decides."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    sent = True
    for keep, regex in rules:
        if any(regex.fullmatch(p) for p in prefixes):
            sent = keep
    return sent


def _context_files(root: Path, rules, under: Iterable[str] = (".",)) -> set[str]:
    paths = (p for d in under for p in (root / d).rglob("*") if p.is_file())
    return {rel for p in paths if _sent(rules, rel := p.relative_to(root).as_posix())}


def _builder_files(root: Path) -> set[str]:
    packages = {p for pkgs in images.ROLES.values() for p in pkgs}
    return {name for p in packages for name, _ in images.package_files(p, root / p)}


def test_dockerignore_sends_what_the_builder_copies(tmp_path: Path):
    rules = _dockerignore((REPO / ".dockerignore").read_text())
    junk = {
        "__pycache__/m.cpython-311.pyc": "",
        "sub/__pycache__/m.pyc": "",
        "stale.pyc": "",
        "old.pyo": "",
        ".hidden": "",
        ".cache/x": "",
        "images/server.Dockerfile": "FROM x\n",
    }
    for package in {p for pkgs in images.ROLES.values() for p in pkgs}:
        _package(tmp_path, package, {"m.py": "", "sub/n.py": "", "py.typed": "", **junk})
    for rel in ("tests/test_x.py", "runs/r/capture.pcap", ".git/HEAD", "README.md", "x.egg-info/P"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    assert _context_files(tmp_path, rules) == _builder_files(tmp_path)
    assert "wire/sub/n.py" in _builder_files(tmp_path)
    # And the checkout's packages, whatever caches the tests have left in them (not the whole
    # checkout: a virtualenv or old runs can hold many thousands of files).
    packages = sorted({p for pkgs in images.ROLES.values() for p in pkgs})
    assert _context_files(REPO, rules, packages) == _builder_files(REPO)
