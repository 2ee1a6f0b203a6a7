"""`python -m lab clean [--images]`: remove what the lab left behind, found by its label.

Containers first (they hold networks and images), then networks, then with --images the
images, children before parents. It reports what it removed and what it could not.
"""

from __future__ import annotations

import argparse

from lab import docker_util
from lab.errors import RunError


def run(args: argparse.Namespace) -> int:
    import docker

    c = docker_util.client()
    removed: list[str] = []
    failed: list[str] = []

    def attempt(kind: str, name: str, fn) -> bool:
        try:
            fn()
        except docker.errors.NotFound:
            return True  # gone already (e.g. removed with its container)
        except docker.errors.APIError as exc:
            failed.append(f"{kind} {name}: {exc.explanation or exc}")
            return False
        removed.append(f"{kind} {name}")
        return True

    for ctr in docker_util.project_containers(c):
        attempt("container", ctr.name, lambda ctr=ctr: ctr.remove(force=True, v=True))
    for net in docker_util.project_networks(c):
        attempt("network", net.name, net.remove)
    if args.images:
        _remove_images(c, attempt, failed)

    for line in removed:
        print(f"removed {line}")
    print(f"clean: removed {len(removed)} object(s)" if removed else "clean: nothing to remove")
    if failed:
        raise RunError(f"could not remove {len(failed)} object(s): {failed[0]}")
    return 0


def _remove_images(c, attempt, failed: list[str]) -> None:
    # A base image with children cannot go before them: retry until a pass removes nothing.
    pending = {img.id: img for img in docker_util.project_images(c)}
    while pending:
        mark = len(failed)
        progressed = False
        for image_id, img in list(pending.items()):
            name = ", ".join(img.tags) or image_id[7:19]
            if attempt("image", name, lambda i=image_id: c.images.remove(i, force=True)):
                del pending[image_id]
                progressed = True
        if not progressed:
            return
        del failed[mark:]  # a failure that a later pass may fix is not final yet
