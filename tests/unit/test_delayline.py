"""The delay line's schedule, without a kernel: hold times, order under jitter, loss on a seed."""

from __future__ import annotations

import itertools
import math
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shaper.delayline import Conditions, DelayLine


def feed(line: DelayLine, arrivals: list[float]) -> dict[int, float | None]:
    return {i: line.arrive(i, t) for i, t in enumerate(arrivals)}


def test_fixed_delay_holds_each_packet_exactly_that_long() -> None:
    line = DelayLine(Conditions(delay_s=0.020))
    releases = feed(line, [0.0, 0.001, 0.0015, 0.5])
    assert releases == pytest.approx({0: 0.020, 1: 0.021, 2: 0.0215, 3: 0.520})


def test_due_releases_nothing_early_and_everything_on_time() -> None:
    line = DelayLine(Conditions(delay_s=0.010))
    feed(line, [0.0, 0.002, 0.004])
    assert line.next_release() == pytest.approx(0.010)
    assert line.due(0.0099) == []
    assert [pid for pid, _ in line.due(0.012)] == [0, 1]
    assert line.next_release() == pytest.approx(0.014)
    assert [pid for pid, _ in line.due(1.0)] == [2]
    assert line.next_release() is None
    assert len(line) == 0


def test_drain_returns_everything_held_in_order() -> None:
    line = DelayLine(Conditions(delay_s=10.0))
    feed(line, [0.0, 0.1, 0.2])
    assert line.drain() == [0, 1, 2]
    assert len(line) == 0
    assert line.released == 3


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0, max_value=0.05), min_size=1, max_size=300),
    delay=st.floats(min_value=0, max_value=0.2),
    jitter=st.floats(min_value=0, max_value=0.2),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_jitter_never_reorders(gaps: list[float], delay: float, jitter: float, seed: int) -> None:
    line = DelayLine(Conditions(delay_s=delay, jitter_s=jitter), seed=seed)
    arrivals = [sum(gaps[: i + 1]) for i in range(len(gaps))]
    releases = feed(line, arrivals)
    times = [releases[i] for i in range(len(arrivals))]
    assert all(r is not None for r in times)
    assert times == sorted(times), "a later packet was scheduled before an earlier one"
    for arrival, release in zip(arrivals, times, strict=True):
        assert release >= arrival + max(0.0, delay - jitter) - 1e-12  # the shortest hold
    released = [pid for pid, _ in line.due(math.inf)]
    assert released == list(range(len(arrivals)))


def test_jitter_varies_the_hold_around_the_delay() -> None:
    line = DelayLine(Conditions(delay_s=0.050, jitter_s=0.010), seed=7)
    # Arrivals 100 ms apart: far enough that keeping order never stretches a hold.
    holds = [line.arrive(i, i * 0.1) - i * 0.1 for i in range(5000)]
    assert min(holds) >= 0.040 - 1e-9
    assert max(holds) <= 0.060 + 1e-9
    assert statistics.mean(holds) == pytest.approx(0.050, abs=0.0005)
    # Uniform on ±10 ms has a standard deviation of 10/sqrt(3) = 5.77 ms.
    assert statistics.pstdev(holds) == pytest.approx(0.010 / math.sqrt(3), rel=0.05)


def test_jitter_larger_than_the_delay_never_holds_negative_time() -> None:
    line = DelayLine(Conditions(delay_s=0.001, jitter_s=0.010), seed=3)
    holds = [line.arrive(i, i * 1.0) - i * 1.0 for i in range(1000)]
    assert min(holds) == 0.0
    assert max(holds) <= 0.011


@pytest.mark.parametrize(
    ("loss", "seed"),
    [
        pytest.param(0.05, 1, id="5pct-seed1"),
        pytest.param(0.05, 2, id="5pct-seed2"),
        pytest.param(0.01, 1, id="1pct"),
        pytest.param(0.30, 1, id="30pct"),
    ],
)
def test_loss_rate_within_binomial_bounds(loss: float, seed: int) -> None:
    n = 100_000
    line = DelayLine(Conditions(delay_s=0.01, loss=loss), seed=seed)
    dropped = sum(line.arrive(i, i * 1e-4) is None for i in range(n))
    sigma = math.sqrt(n * loss * (1 - loss))
    assert abs(dropped - n * loss) < 5 * sigma, f"{dropped} drops of {n} at p={loss}"
    assert line.dropped == dropped
    assert len(line) == n - dropped


def test_losses_are_not_bunched() -> None:
    # Independent losses: the chance that a packet after a loss is lost again is still ~p.
    line = DelayLine(Conditions(loss=0.05), seed=11)
    lost = [line.arrive(i, float(i)) is None for i in range(100_000)]
    after_loss = [b for a, b in itertools.pairwise(lost) if a]
    assert statistics.mean(after_loss) == pytest.approx(0.05, abs=0.015)


def test_same_seed_same_losses_and_jitter_does_not_change_them() -> None:
    def drops(jitter: float, seed: int) -> list[int]:
        line = DelayLine(Conditions(delay_s=0.02, jitter_s=jitter, loss=0.1), seed=seed)
        return [i for i in range(2000) if line.arrive(i, i * 0.001) is None]

    assert drops(0.0, 42) == drops(0.0, 42)
    assert drops(0.0, 42) == drops(0.005, 42)
    assert drops(0.0, 42) != drops(0.0, 43)


def test_no_loss_drops_nothing() -> None:
    line = DelayLine(Conditions(delay_s=0.0), seed=1)
    assert all(line.arrive(i, float(i)) is not None for i in range(10_000))
    assert not Conditions().active
    assert Conditions(loss=0.01).active


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"delay_s": -0.001}, id="negative-delay"),
        pytest.param({"jitter_s": -1.0}, id="negative-jitter"),
        pytest.param({"loss": 1.5}, id="loss-above-one"),
        pytest.param({"delay_s": float("nan")}, id="nan-delay"),
    ],
)
def test_conditions_refuse_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Conditions(**kwargs)
