"""Builds the lab's images on any machine with a Docker Engine, even one with no registry.

    tcplab/base:<recipe hash>      Debian bookworm + python3, python3-dpkt, python3-h2, tcpdump,
         │                         iproute2, iptables, curl, procps (BASE_PACKAGES); no PyPI
         ├── tcplab/server:<hash>  wire + server, uid 10001
         ├── tcplab/client:<hash>  wire + client, uid 10001
         ├── tcplab/capture:<hash> wire + lab (tcpdump and the in-container analysis)
         ├── tcplab/shaper:<hash>  wire + shaper
         └── tcplab/browser:<hash> + Debian's chromium (apt in the build), wire + client
                                   (client.browser drives it); built only when asked for

The base comes from the first of these that works, and the builder says which:
  1. the image is already there (its tag is a hash of the recipe);
  2. a registry answers: `debian:bookworm-slim` plus apt (lab/images/base.Dockerfile);
  3. `mmdebstrap` (or `debootstrap`) on the host, then `docker import`.
The role images are built through the Engine API from a context assembled in memory from the
installed packages, found by their `__file__`, so it works from a checkout or an installed wheel.
The context has the repository's layout (`wire/...`, `server/...` at its root, the Dockerfile
beside them), so the same Dockerfiles serve docker-compose.yml, whose context is the repository
itself (.dockerignore leaves out what SKIP_DIRS and SKIP_SUFFIXES leave out here).
Each tag is a hash of what goes into the image (Dockerfile, sources, base tag): a code change
rebuilds only the images that contain it, and an unchanged tree builds nothing. Every image also
gets `:latest` (for docker-compose.yml) and the label tcplab.project=1.

Registry-free rules (docs/architecture.md): never `pull=True`, never a `# syntax=` line.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lab import LABELS
from lab.errors import RunError

# progress(message, detail=False): a headline, or (detail=True) a line of build output.
Progress = Callable[..., None]

SUITE = "bookworm"
REGISTRY_IMAGE = "debian:bookworm-slim"
BASE_REPO = "tcplab/base"
BASE_PACKAGES = (
    "python3",
    "python3-dpkt",
    "python3-h2",  # HTTP/2 (server/http2.py, client/http2.py): Debian's, so no PyPI in images
    "tcpdump",
    "iproute2",
    "iptables",
    "curl",
    "procps",
)
# dpkg drops these at install time, in the bootstrap and in any later apt run in the image.
DPKG_TRIM = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/lintian/*",
)
CLEANUP = ("/var/lib/apt/lists/*", "/var/cache/apt/*", "/var/log/*.log", "/var/cache/debconf/*-old")
IMAGE_ENV = (
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG=C.UTF-8",
)
# Bump when the way the base is made changes in a way the lists above do not show.
RECIPE_REVISION = "1"

# role -> packages copied into /opt/tcplab/<package>/, in this order (the Dockerfile's COPY
# lines). A missing package is copied as an empty folder; the role still exists.
ROLES: dict[str, tuple[str, ...]] = {
    "server": ("wire", "server"),
    "client": ("wire", "client"),
    "capture": ("wire", "lab"),
    "shaper": ("wire", "shaper"),
    "browser": ("wire", "client"),
}
# Built only when a scenario (or `lab build --browser`) asks: Chromium makes it ~10x the others.
ON_DEMAND_ROLES = frozenset({"browser"})
# Inside a package, what never goes into an image: caches, and the Dockerfiles themselves
# (so editing server.Dockerfile does not rebuild the capture image, which carries `lab`).
SKIP_DIRS = {"__pycache__", "images"}
SKIP_SUFFIXES = (".pyc", ".pyo")

IMAGES_DIR = Path(__file__).resolve().parent / "images"
TAG_LENGTH = 12
REGISTRY_PROBE_TIMEOUT = 8


# ---------------------------------------------------------------- pure parts (no Docker)


def digest(parts: Iterable[tuple[str, bytes]]) -> str:
    """Content hash of named byte strings: order-independent, and name and content both count."""
    h = hashlib.sha256()
    for name, data in sorted(parts):
        h.update(name.encode() + b"\0" + str(len(data)).encode() + b"\0" + data)
    return h.hexdigest()[:TAG_LENGTH]


def base_recipe() -> str:
    """Everything that decides what the base image holds, as text (hashed into its tag)."""
    dockerfile = (IMAGES_DIR / "base.Dockerfile").read_text()
    return "\n".join(
        [
            f"revision {RECIPE_REVISION}",
            f"suite {SUITE}",
            "packages " + " ".join(BASE_PACKAGES),
            "dpkg " + " ".join(DPKG_TRIM),
            "cleanup " + " ".join(CLEANUP),
            "env " + " ".join(IMAGE_ENV),
            dockerfile,
        ]
    )


def base_ref() -> str:
    return f"{BASE_REPO}:{digest([('recipe', base_recipe().encode())])}"


def package_files(name: str, root: Path) -> Iterator[tuple[str, bytes]]:
    """(path inside the image's code dir, bytes) for every file of package `name` at `root`."""
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part in SKIP_DIRS or part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and not path.name.endswith(SKIP_SUFFIXES):
            yield f"{name}/{rel.as_posix()}", path.read_bytes()


@dataclass(frozen=True)
class Context:
    """A role image's build inputs: its Dockerfile and the code files, by path in the context."""

    role: str
    dockerfile: bytes
    files: tuple[tuple[str, bytes], ...]
    packages: tuple[str, ...]  # the packages found (others were absent)
    base: str

    @property
    def tag(self) -> str:
        parts = [("Dockerfile", self.dockerfile), ("base", self.base.encode())]
        return digest([*parts, *self.files])  # file paths start with their package: no clash

    @property
    def ref(self) -> str:
        return f"tcplab/{self.role}:{self.tag}"

    def tar(self) -> bytes:
        """The build context in the repository's layout: the Dockerfile, then one folder per
        package of the role (empty when the package is missing: every COPY needs its source)."""
        entries = [("Dockerfile", self.dockerfile), *self.files]
        return make_tar(entries, dirs=ROLES[self.role])


def assemble(role: str, dockerfile: bytes, roots: dict[str, Path | None], base: str) -> Context:
    """The context of `role` from package roots (None: not installed, skipped)."""
    files: list[tuple[str, bytes]] = []
    found = []
    for name in ROLES[role]:
        root = roots.get(name)
        if root is None:
            continue
        found.append(name)
        files.extend(package_files(name, root))
    return Context(role, dockerfile, tuple(files), tuple(found), base)


def make_tar(entries: Iterable[tuple[str, bytes]], dirs: Iterable[str] = ()) -> bytes:
    """An uncompressed tar with fixed owners, modes and times: same inputs, same bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in dirs:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def mmdebstrap_command(target: str, hook_dir: Path | None) -> list[str]:
    cmd = ["mmdebstrap", "--variant=minbase", "--include=" + ",".join(BASE_PACKAGES)]
    if hook_dir is not None:
        # Merged /usr by hook instead of the usrmerge package, which drags in perl (~50 MB).
        cmd.append(f"--hook-dir={hook_dir}")
    cmd += [f"--dpkgopt={opt}" for opt in DPKG_TRIM]
    cmd.append("--customize-hook=rm -rf " + " ".join(f'"$1"{p}' for p in CLEANUP))
    return [*cmd, SUITE, target]


# ---------------------------------------------------------------- the shell (Docker, host tools)


def package_roots() -> dict[str, Path | None]:
    """Where each package the roles need is installed, found without importing it."""
    roots: dict[str, Path | None] = {}
    for name in sorted({p for pkgs in ROLES.values() for p in pkgs}):
        spec = importlib.util.find_spec(name)
        locations = list(spec.submodule_search_locations or []) if spec else []
        root = Path(locations[0]) if locations else None
        # A bare directory without __init__.py (a namespace package) is not the package yet.
        roots[name] = root if root is not None and (root / "__init__.py").is_file() else None
    return roots


def default_roles(extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The roles every run needs, plus the on-demand ones asked for, in ROLES' order."""
    wanted = set(extra)
    unknown = wanted - set(ROLES)
    if unknown:
        raise ValueError(f"unknown image roles: {', '.join(sorted(unknown))}")
    return tuple(r for r in ROLES if r not in ON_DEMAND_ROLES or r in wanted)


def contexts(base: str | None = None, roles: Iterable[str] | None = None) -> dict[str, Context]:
    base = base or base_ref()
    roots = package_roots()
    return {
        role: assemble(role, (IMAGES_DIR / f"{role}.Dockerfile").read_bytes(), roots, base)
        for role in (ROLES if roles is None else roles)
    }


def _quiet(message: str, detail: bool = False) -> None:
    pass


def ensure_images(
    progress: Progress | None = None, *, force: bool = False, extra: Iterable[str] = ()
) -> dict[str, str]:
    """role -> image ref for every role a run needs and the on-demand `extra` ones (the
    browser), building what is missing (everything with force)."""
    from lab import docker_util

    say = progress or _quiet
    c = docker_util.client(timeout=docker_util.BUILD_TIMEOUT)
    try:
        base = ensure_base(c, say, force=force)
        return {
            role: _ensure_role(c, ctx, say, force=force)
            for role, ctx in contexts(base, default_roles(extra)).items()
        }
    finally:
        c.close()


def _exists(c, ref: str) -> str | None:
    import docker

    try:
        return c.api.inspect_image(ref)["Id"]
    except docker.errors.ImageNotFound:
        return None


def _tag_latest(c, ref: str, image_id: str) -> None:
    repo = ref.split(":", 1)[0]
    if _exists(c, f"{repo}:latest") != image_id:
        c.api.tag(image_id, repo, "latest", force=True)


def _prune_old_tags(c, ref: str) -> None:
    """Untag (and so free) older base images. Role images are not pruned: an old one costs only
    its code layer, and another process (a run, a test session) may be about to start it."""
    import docker

    repo = ref.split(":", 1)[0]
    for image in c.images.list(name=repo):
        for tag in image.tags:
            if tag.startswith(repo + ":") and tag not in (ref, f"{repo}:latest"):
                # Still used by a container: it stays, and `lab clean --images` gets it later.
                with contextlib.suppress(docker.errors.APIError):
                    c.images.remove(tag, noprune=False)


def ensure_base(c, say: Progress, *, force: bool = False) -> str:
    ref = base_ref()
    image_id = _exists(c, ref)
    if image_id and not force:
        say(f"base     {ref}  (present)")
        _tag_latest(c, ref, image_id)
        return ref
    started = time.monotonic()
    path = _build_base(c, ref, say)
    image_id = _exists(c, ref)
    if image_id is None:
        raise RunError(f"building {ref} ({path}) finished but the image is missing")
    size_mb = c.api.inspect_image(ref)["Size"] / 1e6
    say(f"base     {ref}  built via {path} in {time.monotonic() - started:.0f} s, {size_mb:.0f} MB")
    _tag_latest(c, ref, image_id)
    _prune_old_tags(c, ref)
    return ref


def _build_base(c, ref: str, say: Progress) -> str:
    """Build the base by the first path that works; return that path's name."""
    registry_error = _registry_available(c, say)
    if registry_error is None:
        say(f"base     building {ref} from {REGISTRY_IMAGE} + apt (a registry answered)")
        dockerfile = (IMAGES_DIR / "base.Dockerfile").read_bytes()
        _build(
            c,
            make_tar([("Dockerfile", dockerfile)]),
            ref,
            {"PACKAGES": " ".join(BASE_PACKAGES)},
            {**LABELS, "tcplab.role": "base", "tcplab.base-path": "registry"},
            say,
            nocache=False,
        )
        return f"{REGISTRY_IMAGE} + apt"
    if shutil.which("mmdebstrap"):
        say(f"base     no registry ({registry_error}): building with mmdebstrap + docker import")
        _bootstrap_mmdebstrap(c, ref, say)
        return "mmdebstrap + docker import"
    if shutil.which("debootstrap"):
        say(f"base     no registry ({registry_error}): building with debootstrap + docker import")
        _bootstrap_debootstrap(c, ref, say)
        return "debootstrap + docker import"
    raise RunError(
        f"cannot build {BASE_REPO}: no registry answered ({registry_error}) and neither "
        "mmdebstrap nor debootstrap is installed (on Debian/Ubuntu: apt-get install mmdebstrap)"
    )


def _registry_available(c, say: Progress) -> str | None:
    """None when debian:bookworm-slim is here or can be pulled, else the reason it cannot."""
    from lab import docker_util

    if _exists(c, REGISTRY_IMAGE):
        return None
    say(f"base     asking the engine's registry for {REGISTRY_IMAGE} ...", detail=True)
    # The engine resolves the manifest with its own registry settings (mirrors, proxy); with no
    # network it fails in milliseconds, and the short client timeout bounds a silent drop.
    probe = docker_util.client(timeout=REGISTRY_PROBE_TIMEOUT)
    try:
        probe.api.inspect_distribution(REGISTRY_IMAGE)
    except Exception as exc:
        return _one_line(exc)
    finally:
        probe.close()
    say(f"base     pulling {REGISTRY_IMAGE}", detail=True)
    try:
        repo, tag = REGISTRY_IMAGE.split(":")
        for event in c.api.pull(repo, tag=tag, stream=True, decode=True):
            if "error" in event:
                return _one_line(event["error"])
            say(f"pull     {event.get('status', '')} {event.get('progress', '')}", detail=True)
    except Exception as exc:
        return _one_line(exc)
    return None if _exists(c, REGISTRY_IMAGE) else f"{REGISTRY_IMAGE} missing after pull"


def _one_line(exc: object) -> str:
    text = (getattr(exc, "explanation", None) or str(exc)).strip().splitlines()
    return (text[-1] if text else type(exc).__name__)[:160]


def _import_changes(path_name: str) -> list[str]:
    labels = {**LABELS, "tcplab.role": "base", "tcplab.base-path": path_name}
    return [
        *(f"ENV {kv}" for kv in IMAGE_ENV),
        *(f"LABEL {k}={v}" for k, v in labels.items()),
        'CMD ["/bin/bash"]',
    ]


def _run_logged(cmd: list[str], say: Progress, what: str) -> None:
    """Run a host command, streaming its output as progress detail; RunError with its tail."""
    tail: list[str] = []
    try:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
        )
    except OSError as exc:
        raise RunError(f"{what} could not start: {exc}") from exc
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        if line:
            tail = [*tail[-4:], line]
            say(f"{what}  {line}", detail=True)
    if proc.wait() != 0:
        last = tail[-1] if tail else "no output"
        raise RunError(f"{what} failed (exit {proc.returncode}): {last}")


def _bootstrap_mmdebstrap(c, ref: str, say: Progress) -> None:
    hook = Path("/usr/share/mmdebstrap/hooks/merged-usr")
    with tempfile.TemporaryDirectory(prefix="tcplab-base-") as tmp:
        target = str(Path(tmp) / "base.tar")
        cmd = mmdebstrap_command(target, hook if hook.is_dir() else None)
        _run_logged(cmd, say, "mmdebstrap")
        _import(c, target, ref, "mmdebstrap", say)


def _bootstrap_debootstrap(c, ref: str, say: Progress) -> None:
    with tempfile.TemporaryDirectory(prefix="tcplab-base-") as tmp:
        root = Path(tmp) / "root"
        cmd = [
            "debootstrap",
            "--variant=minbase",
            "--merged-usr",
            "--include=" + ",".join(BASE_PACKAGES),
            SUITE,
            str(root),
        ]
        _run_logged(cmd, say, "debootstrap")
        _trim_tree(root)
        target = str(Path(tmp) / "base.tar")
        _run_logged(["tar", "-C", str(root), "-cf", target, "."], say, "tar")
        _import(c, target, ref, "debootstrap", say)


def _trim_tree(root: Path) -> None:
    """After the fact, what DPKG_TRIM and CLEANUP do during an mmdebstrap run."""
    patterns = [r.split("=", 1)[1] for r in DPKG_TRIM if r.startswith("path-exclude")]
    for pattern in [*patterns, *CLEANUP]:
        for p in root.glob(pattern.lstrip("/")):
            if p.is_dir() and not p.is_symlink():
                if p.parent.name == "doc" and (p / "copyright").is_file():
                    for q in p.iterdir():  # keep the licence, drop the rest
                        if q.name != "copyright":
                            shutil.rmtree(q) if q.is_dir() and not q.is_symlink() else q.unlink()
                    continue
                shutil.rmtree(p)
            else:
                p.unlink()


def _import(c, tar_path: str, ref: str, path_name: str, say: Progress) -> None:
    repo, tag = ref.split(":")
    say(f"base     docker import {ref}", detail=True)
    out = c.api.import_image_from_file(
        tar_path, repository=repo, tag=tag, changes=_import_changes(path_name)
    )
    if _exists(c, ref) is None:
        raise RunError(f"docker import of {ref} failed: {_one_line(out)}")


def _build(c, context: bytes, ref: str, buildargs, labels, say: Progress, *, nocache: bool):
    import docker

    try:
        stream = c.api.build(
            fileobj=io.BytesIO(context),
            custom_context=True,
            tag=ref,
            buildargs=buildargs,
            labels=labels,
            rm=True,
            forcerm=True,
            pull=False,  # a registry is never needed for FROM tcplab/base:<tag>
            nocache=nocache,
            decode=True,
        )
        for event in stream:
            if "error" in event:
                raise RunError(f"docker build of {ref} failed: {_one_line(event['error'])}")
            text = event.get("stream", "").strip()
            if text:
                say(f"build    {text}", detail=True)
    except docker.errors.APIError as exc:
        raise RunError(f"docker build of {ref} failed: {_one_line(exc)}") from exc


def _ensure_role(c, ctx: Context, say: Progress, *, force: bool) -> str:
    ref = ctx.ref
    image_id = _exists(c, ref)
    name = f"{ctx.role:<8} {ref}"
    if image_id and not force:
        say(f"{name}  (up to date)")
    else:
        started = time.monotonic()
        # Labels are in the Dockerfile (one cached step; `labels=` would add one per key).
        _build(c, ctx.tar(), ref, {"BASE": ctx.base}, None, say, nocache=force)
        image_id = _exists(c, ref)
        if image_id is None:
            raise RunError(f"docker build of {ref} finished but the image is missing")
        have = ", ".join(ctx.packages) or "no code yet"
        say(f"{name}  built in {time.monotonic() - started:.1f} s ({have})")
    _tag_latest(c, ref, image_id)
    return ref
