"""wire.units: the one rate parser (scenario and shaper) and the byte-size parser."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.scenario import Network
from wire.units import (
    MAX_RATE_BPS,
    MIN_RATE_BPS,
    format_bytes,
    format_rate,
    parse_bytes,
    parse_rate,
    require_rate,
)

FUZZ = settings(max_examples=200, deadline=None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("14k", 14 * 1024, id="k"),
        pytest.param("1.5m", 1_572_864, id="decimal-m"),
        pytest.param("256MiB", 256 << 20, id="MiB"),
        pytest.param("600KB", 600 * 1024, id="KB-binary"),
        pytest.param("100", 100, id="bare"),
        pytest.param("5pb", None, id="peta-unknown"),
        pytest.param("-1k", None, id="negative"),
    ],
)
def test_parse_bytes(text: str, expected: int | None) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (14 * 1024, "14 KiB"),
        (602 * 1024, "602 KiB"),
        (1 << 30, "1 GiB"),
    ],
)
def test_format_bytes(n: int, text: str) -> None:
    assert format_bytes(n) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("20mbit", 20_000_000, id="mbit"),
        pytest.param("500kbit", 500_000, id="kbit"),
        pytest.param("1gbit", 1_000_000_000, id="gbit"),
        pytest.param("1.5Mbit", 1_500_000, id="case"),
        pytest.param("20 mbit", 20_000_000, id="space"),
        pytest.param("20mbps", None, id="bytes-per-second-refused"),
        pytest.param("fast", None, id="word"),
        pytest.param("\uff12\uff10mbit", None, id="fullwidth-digits"),
    ],
)
def test_parse_rate(text: str, expected: int | None) -> None:
    assert parse_rate(text) == expected


def test_require_rate_names_the_range() -> None:
    with pytest.raises(ValueError, match="between 8kbit and 100gbit"):
        require_rate("1kbit")
    assert require_rate("8kbit") == MIN_RATE_BPS
    assert require_rate("100gbit") == MAX_RATE_BPS


@FUZZ
@given(
    number=st.one_of(
        st.from_regex(r"[0-9]{1,400}(\.[0-9]{1,20})?", fullmatch=True),
        st.sampled_from(["9" * 400, "0" * 400 + "8", "1" + "0" * 308, "8000", "7999.9"]),
    ),
    unit=st.sampled_from(["bit", "kbit", "mbit", "gbit"]),
)
def test_a_rate_the_scenario_takes_is_the_rate_the_shaper_applies(number: str, unit: str) -> None:
    """The scenario's rate reaches `python -m shaper --rate` as f"{bps}bit" (lab.results): the
    shaper must apply exactly the value the scenario checked, and refuse (ValueError, its exit
    2) exactly what the scenario refuses. '9'*400 once raised OverflowError in both."""
    bps = parse_rate(number + unit)
    assert bps is not None
    in_range = MIN_RATE_BPS <= bps <= MAX_RATE_BPS
    try:
        applied = require_rate(f"{bps}bit")
    except ValueError:
        assert not in_range
    else:
        assert in_range and applied == bps
        assert require_rate(number + unit) == bps
        assert parse_rate(format_rate(bps)) == bps  # the shaper's log spelling reads back


def test_the_scenario_rate_range_is_the_shapers() -> None:
    rate_spec = next(f for f in Network.__dataclass_fields__.values() if f.name == "rate")
    spec = rate_spec.metadata["spec"]
    assert (spec.lo, spec.hi) == (MIN_RATE_BPS, MAX_RATE_BPS)
