"""The delay line's schedule: when each held packet may go, and which ones are lost.

Pure and clock-free: the caller passes the time (seconds, any monotonic clock) and packet ids,
and gets back release times and the ids that are due. The NFQUEUE shell in `shaper.runner`
feeds it packets as the kernel queues them and issues verdicts for what `due()` returns.

Rules, in the order they apply to a packet arriving at time t:
1. loss: dropped with probability `loss`, decided on its own seeded RNG (so the loss pattern of a
   seed does not change when the jitter does);
2. hold: `delay + U(-jitter, +jitter)`, never below zero;
3. order: released no earlier than the packet before it. A real path with jitter keeps TCP's
   segments in order (one queue per link), and reordering would make TCP see phantom losses
   (three duplicate ACKs), so jitter here stretches gaps rather than swapping packets. The cost:
   with jitter the mean hold is a little above `delay`.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Conditions:
    """What the line does to each packet: hold `delay_s` ± `jitter_s`, drop with `loss` (0..1)."""

    delay_s: float = 0.0
    jitter_s: float = 0.0
    loss: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.delay_s <= 60.0:
            raise ValueError(f"delay must be 0..60 s, got {self.delay_s}")
        if not 0.0 <= self.jitter_s <= 60.0:
            raise ValueError(f"jitter must be 0..60 s, got {self.jitter_s}")
        if not 0.0 <= self.loss <= 1.0:
            raise ValueError(f"loss must be a probability 0..1, got {self.loss}")

    @property
    def active(self) -> bool:
        """True when the line changes anything (otherwise no packet needs queueing)."""
        return self.delay_s > 0 or self.jitter_s > 0 or self.loss > 0


def _rng(seed: int | None, stream: str) -> random.Random:
    # String seeds are hashed with SHA-512 by `random`, so they are stable across runs and
    # Python versions; an unseeded line draws from the OS.
    return random.Random() if seed is None else random.Random(f"{seed}:{stream}")


class DelayLine:
    """A FIFO of held packets with a release time each; release times never decrease."""

    def __init__(self, conditions: Conditions, seed: int | None = None) -> None:
        self.conditions = conditions
        self._loss_rng = _rng(seed, "loss")
        self._jitter_rng = _rng(seed, "jitter")
        self._held: deque[tuple[float, int]] = deque()
        self._last_release = float("-inf")
        self.arrived = 0
        self.dropped = 0
        self.released = 0

    def arrive(self, packet_id: int, now: float) -> float | None:
        """Schedule a packet that arrived at `now`: its release time, or None to drop it."""
        self.arrived += 1
        c = self.conditions
        if c.loss > 0 and self._loss_rng.random() < c.loss:
            self.dropped += 1
            return None
        hold = c.delay_s
        if c.jitter_s > 0:
            hold = max(0.0, hold + self._jitter_rng.uniform(-c.jitter_s, c.jitter_s))
        release = max(now + hold, self._last_release)
        self._last_release = release
        self._held.append((release, packet_id))
        return release

    def due(self, now: float) -> list[tuple[int, float]]:
        """Remove and return, in arrival order, the (id, release time) of every packet due."""
        out = []
        held = self._held
        while held and held[0][0] <= now:
            release, packet_id = held.popleft()
            out.append((packet_id, release))
        self.released += len(out)
        return out

    def drain(self) -> list[int]:
        """Remove and return every held id regardless of time (shutdown: let them all go)."""
        ids = [packet_id for _, packet_id in self._held]
        self._held.clear()
        self.released += len(ids)
        return ids

    def next_release(self) -> float | None:
        """When the oldest held packet is due, or None when nothing is held."""
        return self._held[0][0] if self._held else None

    def __len__(self) -> int:
        return len(self._held)
