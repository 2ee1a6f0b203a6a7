"""`python -m lab`: the command line. Argument parsing only; each command lives in its module.

Exit codes (docs/architecture.md): 0 success, 1 the experiment failed, 2 bad input. Errors are
one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from lab.errors import LabError, UsageError


class _Parser(argparse.ArgumentParser):
    # argparse exits 2 on bad arguments already; keep its message to one line plus usage.
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _command(name: str) -> Callable[[argparse.Namespace], int]:
    """Import a command's module only when it runs, so `lab validate` never loads Docker."""

    def run(args: argparse.Namespace) -> int:
        import importlib

        module = importlib.import_module(f"lab.commands.{name}")
        return module.run(args)

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m lab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("run", help="run a scenario: every mode on fresh containers, then report")
    p.add_argument("scenario", help="scenario YAML file, e.g. scenarios/page10.yaml")
    p.add_argument("--out", default="runs", help="parent folder of the run folder (default: runs)")
    p.add_argument(
        "--mode", action="append", default=[], metavar="NAME", help="run only this mode (repeat)"
    )
    p.add_argument(
        "--engine",
        action="append",
        default=[],
        metavar="SIDE=URL",
        help="the Docker engine of one side (server or client): unix://, tcp:// or ssh:// URL; "
        "overrides the scenario's hosts: block (two engines must be in one Swarm)",
    )
    p.set_defaults(func=_command("run"))

    p = sub.add_parser("validate", help="check a scenario file without running it")
    p.add_argument("scenario")
    p.set_defaults(func=_command("validate"))

    p = sub.add_parser("build", help="build the lab's images (no registry needed)")
    p.add_argument("--force", action="store_true", help="rebuild even if the images exist")
    p.add_argument(
        "--browser",
        action="store_true",
        help="also the browser image (headless Chromium; otherwise built when a scenario asks)",
    )
    p.set_defaults(func=_command("build"))

    p = sub.add_parser("analyze", help="analyse any TCP capture (pcap or pcapng)")
    p.add_argument("pcap")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_command("analyze"))

    p = sub.add_parser("report", help="rebuild a run folder's reports from its saved artifacts")
    p.add_argument("run_dir")
    p.set_defaults(func=_command("report"))

    p = sub.add_parser("compare", help="put two runs side by side")
    p.add_argument("run_a")
    p.add_argument("run_b")
    p.set_defaults(func=_command("compare"))

    p = sub.add_parser("clean", help="remove containers, networks (and --images) left by the lab")
    p.add_argument("--images", action="store_true", help="remove the lab's images too")
    p.add_argument(
        "--engine",
        action="append",
        default=[],
        metavar="URL",
        help="clean this Docker engine (unix://, tcp://, ssh://) instead of DOCKER_HOST's; repeat",
    )
    p.set_defaults(func=_command("clean"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except FileNotFoundError as exc:  # a path the user gave that vanished between checks
        print(f"error: {exc.filename}: no such file", file=sys.stderr)
        return UsageError.exit_code
