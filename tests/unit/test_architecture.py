"""The import rules of docs/architecture.md, checked on the source: what runs in a container
imports only what its image has, and the pure parts of `lab` never import a shell's library."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STDLIB = set(sys.stdlib_module_names)
HEAVY = {"docker", "rich", "matplotlib", "requests", "yaml", "testcontainers"}
# Container packages: what each may import besides the standard library.
# HTTP/2's server and client halves use `h2`, which the images get from Debian (python3-h2).
CONTAINER_PACKAGES = {
    "wire": {"wire"},
    "server": {"wire", "server", "h2"},
    "client": {"wire", "client", "h2"},
    "shaper": {"wire", "shaper"},
}
# Pure lab modules (files or packages): no Docker, no terminal, no charts, no YAML.
PURE = [
    "document", "capture", "frames", "analysis", "tcp", "claims", "model", "costs",
    "compose_demo", "placement", "hosts", "preflight", "netpath", "clock", "browser", "tls",
]  # fmt: skip


def imported_roots(path: Path) -> set[str]:
    """Top-level names of every module a file imports, at any depth of the file."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def files_of(name: str) -> list[Path]:
    base = ROOT / "lab" / name
    if base.is_dir():
        return sorted(base.rglob("*.py"))
    return [base.with_suffix(".py")] if base.with_suffix(".py").exists() else []


@pytest.mark.parametrize("package", sorted(CONTAINER_PACKAGES))
def test_container_packages_import_the_standard_library_and_wire_only(package):
    allowed = STDLIB | CONTAINER_PACKAGES[package]
    for path in sorted((ROOT / package).rglob("*.py")):
        extra = imported_roots(path) - allowed
        assert not extra, f"{path.relative_to(ROOT)} imports {sorted(extra)}"


@pytest.mark.parametrize("module", PURE)
def test_pure_lab_modules_import_no_shell_library(module):
    paths = files_of(module)
    assert paths, f"lab/{module} is gone: update docs/architecture.md and this list"
    for path in paths:
        heavy = imported_roots(path) & HEAVY
        assert not heavy, f"{path.relative_to(ROOT)} imports {sorted(heavy)}"
