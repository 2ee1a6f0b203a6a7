"""The lab's images on every engine of a run, without a registry: `docker save` -> `docker load`.

The images are built on the engine of DOCKER_HOST (`lab.images`); a run on other engines needs
them there too. For each engine, the images its side starts that it lacks (or holds under
another image ID) are streamed from the build engine's `docker save` straight into its
`docker load`, through the Engine API, in one archive per engine so the layers the role images
share go once. An engine that already has them costs four image inspections.

    plan()         pure: which refs each engine must receive
    sync_images()  the shell: compare the IDs, stream, report bytes and seconds
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lab.placement import ROLE_SIDES, Side

if TYPE_CHECKING:
    from lab.engine import Engine

Progress = Callable[[str], None]

# The image each container role starts (lab.hosts): the netns holder runs the client's image.
IMAGE_OF_ROLE = {
    "server": "server",
    "capture": "capture",
    "shaper-server": "shaper",
    "client": "client",
    "netns": "client",
    "shaper-client": "shaper",
    "browser": "browser",
    "capture-client": "capture",
}
SHAPER_ROLES = {"shaper-server", "shaper-client"}
BROWSER_ROLES = {"browser"}  # its image is built only for a scenario with a browser mode
PROGRESS_EVERY_S = 1.0
LOAD_TIMEOUT_S = 900  # a load on a slow storage driver (vfs) writes every layer in full


@dataclass(frozen=True)
class Push:
    """Images one engine must receive."""

    target: str  # the engine's name (its URL)
    refs: tuple[str, ...]


def images_for_side(side: Side, shaped: bool, client_capture: bool = False) -> tuple[str, ...]:
    """The image roles (lab.images.ROLES' keys) the containers of one side start."""
    wanted = {
        role
        for role, s in ROLE_SIDES.items()
        if s is side
        and (shaped or role not in SHAPER_ROLES)
        and (client_capture or role != "capture-client")
        and role not in BROWSER_ROLES
    }
    return tuple(sorted({IMAGE_OF_ROLE[role] for role in wanted}))


def plan(
    wanted: Mapping[str, str],
    needs: Mapping[str, Iterable[str]],
    present: Mapping[str, Mapping[str, str | None]],
) -> list[Push]:
    """Which refs each engine must receive.

    `wanted`: ref -> image ID on the build engine; `needs`: engine -> the refs its containers
    start; `present`: engine -> {ref: the ID it holds, or None}. A ref whose ID matches is
    skipped: the same ID is the same content.
    """
    pushes = []
    for target, refs in needs.items():
        have = present.get(target, {})
        missing = tuple(sorted(r for r in set(refs) if have.get(r) != wanted[r]))
        if missing:
            pushes.append(Push(target, missing))
    return pushes


class _Counted:
    """Chunks passed through, with their bytes counted and progress said now and then."""

    def __init__(self, chunks: Iterable[bytes], say: Callable[[int, float], None]) -> None:
        self.chunks, self.say = chunks, say
        self.bytes = 0
        self.started = time.monotonic()

    def __iter__(self) -> Iterator[bytes]:
        last = self.started
        for chunk in self.chunks:
            self.bytes += len(chunk)
            now = time.monotonic()
            if now - last >= PROGRESS_EVERY_S:
                self.say(self.bytes, now - self.started)
                last = now
            yield chunk


def sync_images(
    source: Engine,
    needs: Mapping[Engine, Iterable[str]],
    progress: Progress,
) -> list[dict]:
    """Every engine of `needs` gets the refs it needs from `source`; returns one account per
    engine that received images: {engine, images, bytes, seconds}."""
    targets = {engine.name: engine for engine in needs if engine is not source}
    if not targets:
        return []
    all_refs = sorted({r for refs in needs.values() for r in refs})
    wanted = source.image_ids(all_refs)
    missing = [ref for ref, image_id in wanted.items() if image_id is None]
    if missing:
        raise LookupError(f"the build engine lacks {', '.join(missing)}")
    present = {name: engine.image_ids(all_refs) for name, engine in targets.items()}
    pushes = plan(
        {r: i for r, i in wanted.items() if i},
        {e.name: tuple(refs) for e, refs in needs.items() if e.name in targets},
        present,
    )
    for name in targets.keys() - {p.target for p in pushes}:
        progress(f"images: {name} has them already")
    if not pushes:
        return []

    def push(p: Push) -> dict:
        target = targets[p.target]

        def say(n: int, s: float) -> None:
            progress(f"images: to {p.target}: {n / 1e6:.0f} MB in {s:.0f} s")

        counted = _Counted(source.save_images(list(p.refs)), say)
        target.load_images(counted, timeout=LOAD_TIMEOUT_S)
        seconds = time.monotonic() - counted.started
        progress(f"images: {p.target} loaded {counted.bytes / 1e6:.0f} MB in {seconds:.1f} s")
        return {
            "engine": p.target,
            "images": list(p.refs),
            "bytes": counted.bytes,
            "seconds": round(seconds, 2),
        }

    with ThreadPoolExecutor(max_workers=len(pushes)) as pool:
        return list(pool.map(push, pushes))
