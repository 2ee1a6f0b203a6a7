"""`python -m lab build [--force] [--browser]`: build the images, saying how the base was made."""

from __future__ import annotations

import argparse
import time

from rich.console import Console

from lab import images


def run(args: argparse.Namespace) -> int:
    console = Console(stderr=True, highlight=False)
    started = time.monotonic()
    with console.status("checking the lab's images", spinner="dots") as status:

        def progress(message: str, detail: bool = False) -> None:
            # Build output scrolls past in the spinner line; headlines stay on screen.
            if detail:
                status.update(message[:120])
            else:
                console.print(message, markup=False, soft_wrap=True)

        extra = ["browser"] if getattr(args, "browser", False) else []
        refs = images.ensure_images(progress=progress, force=args.force, extra=extra)
    console.print(f"images ready in {time.monotonic() - started:.1f} s", markup=False)
    for role, ref in refs.items():
        print(f"{role}\t{ref}")
    return 0
