"""`python -m lab clean [--images] [--engine URL]...`: remove what the lab left, by its label.

On the engine of `DOCKER_HOST`, or on each engine named with --engine (a run's other machines):
containers first, on every engine (they hold networks and images, and an overlay network holds
on while any engine has one of its containers), then networks, then with --images the images,
children before parents. It reports what it removed and what it could not.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from lab.engine import APIError, Engine, NotFound
from lab.errors import RunError, UsageError
from lab.placement import engine_url_problem

Attempt = Callable[[str, str, Callable[[], object]], bool]


def run(args: argparse.Namespace) -> int:
    removed: list[str] = []
    failed: list[str] = []

    def attempt(kind: str, name: str, fn: Callable[[], object]) -> bool:
        try:
            fn()
        except NotFound:
            return True  # gone already (e.g. removed with its container)
        except APIError as exc:
            failed.append(f"{kind} {name}: {exc.explanation or exc}")
            return False
        removed.append(f"{kind} {name}")
        return True

    engines = _engines(getattr(args, "engine", None) or [])
    try:
        for engine in engines[1:]:  # the others' containers first: see the docstring
            for ctr in engine.project_containers():
                attempt("container", ctr.name, lambda ctr=ctr: ctr.remove(force=True, v=True))
        for engine in engines:
            _clean(engine, attempt, failed, images=args.images)
    finally:
        for engine in engines:
            engine.close()

    for line in removed:
        print(f"removed {line}")
    print(f"clean: removed {len(removed)} object(s)" if removed else "clean: nothing to remove")
    if failed:
        raise RunError(f"could not remove {len(failed)} object(s): {failed[0]}")
    return 0


def _engines(urls: list[str]) -> list[Engine]:
    """The engines to clean: those named (checked, each answering), else DOCKER_HOST's."""
    if not urls:
        return [Engine.from_env()]
    for url in urls:
        problem = engine_url_problem(url)
        if problem:
            raise UsageError(f"--engine: {problem}")
    engines: list[Engine] = []
    try:
        for url in dict.fromkeys(urls):
            engines.append(Engine.from_url(url))
    except BaseException:
        for engine in engines:
            engine.close()
        raise
    return engines


def _clean(engine: Engine, attempt: Attempt, failed: list[str], *, images: bool) -> None:
    for ctr in engine.project_containers():
        attempt("container", ctr.name, lambda ctr=ctr: ctr.remove(force=True, v=True))
    for net in engine.project_networks():
        attempt("network", net.name, net.remove)
    if images:
        _remove_images(engine, attempt, failed)


def _remove_images(engine: Engine, attempt: Attempt, failed: list[str]) -> None:
    # A base image with children cannot go before them: retry until a pass removes nothing.
    pending = {img.id: img for img in engine.project_images()}
    while pending:
        mark = len(failed)
        progressed = False
        for image_id, img in list(pending.items()):
            name = ", ".join(img.tags) or image_id[7:19]
            if attempt("image", name, lambda i=image_id: engine.remove_image(i)):
                del pending[image_id]
                progressed = True
        if not progressed:
            return
        del failed[mark:]  # a failure that a later pass may fix is not final yet
