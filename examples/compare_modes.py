"""Run a scenario from Python and print what each connection mode cost, from the packets.

    python examples/compare_modes.py                       # scenarios/page10.yaml
    python examples/compare_modes.py scenarios/page10-wan.yaml --mode http1.0 --mode keepalive

Needs what `python -m lab run` needs (Docker Engine; the images are built on first use).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import lab

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="?", default=str(ROOT / "scenarios" / "page10.yaml"))
    parser.add_argument("--mode", action="append", help="run only this mode (repeatable)")
    args = parser.parse_args(argv)
    try:
        result = lab.run(args.scenario, modes=args.mode, say=print)
    except lab.ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except lab.RunError as exc:
        if exc.result is None:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"the run failed ({exc}); its figures anyway:")
        result = exc.result

    print(f"\n{'mode':<14}{'connections':>12}{'handshake pkts':>16}{'teardown pkts':>15}"
          f"{'page ms':>10}{'model ms':>10}")  # fmt: skip
    for name, mode in result.modes.items():
        page = f"{mode.page_time_s * 1000:.1f}" if mode.page_time_s is not None else "-"
        model = mode.predicted_page_time_s
        print(
            f"{name:<14}{mode.connections:>12}{mode.handshake_packets:>16}"
            f"{mode.teardown_packets:>15}{page:>10}{model * 1000 if model else 0:>10.1f}"
        )
    held = sum(1 for c in result.claims if c.holds)
    print(f"\n{held} of {len(result.claims)} of the article's claims hold; run folder: "
          f"{result.run_dir}")  # fmt: skip
    # The run folder says it all: reading it back gives the same result.
    assert lab.load_run(result.run_dir) == result
    return 0


if __name__ == "__main__":
    sys.exit(main())
