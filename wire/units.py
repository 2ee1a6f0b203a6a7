"""Rates and byte sizes as people write them: one parser each, for the lab and the sidecars.

The scenario's `network.rate` is checked by the lab and then handed to `python -m shaper --rate`;
both read it here, so a rate the lab accepts is a rate the shaper applies, bit for bit.

- Rates use tc's decimal units (`kbit` = 1000 bit/s). tc's `bps` means bytes per second, a
  classic mistake, so it is not accepted at all.
- Byte sizes use binary units as Docker's `--memory` does (`14k` = 14336).
"""

from __future__ import annotations

import re

MIN_RATE_BPS = 8_000  # tc cannot shape usefully below 1 kB/s
MAX_RATE_BPS = 100 * 10**9

_RATE_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([kmg]?)bit")
_RATE_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}
_BYTES_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*(?:([kmg])i?)?b?")
_BYTE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
# The same grammars for JSON Schema (ECMA-262 regexes have no inline case flag).
BYTES_SCHEMA_RE = r"^[0-9]+(\.[0-9]+)?\s*([kKmMgG][iI]?)?[bB]?$"
RATE_SCHEMA_RE = r"^[0-9]+(\.[0-9]+)?\s*[kKmMgG]?[bB][iI][tT]$"


def parse_rate(text: str) -> int | None:
    """`20mbit` -> 20_000_000 bits/s; None when `text` is not a rate. No range check."""
    m = _RATE_RE.fullmatch(text.strip().lower())
    if not m:
        return None
    return _saturate(float(m.group(1)) * _RATE_UNITS[m.group(2)])


def require_rate(text: str, lo: int = MIN_RATE_BPS, hi: int = MAX_RATE_BPS) -> int:
    """`parse_rate` for command lines: ValueError (naming the rate) unless a rate in lo..hi."""
    bps = parse_rate(text)
    if bps is None:
        raise ValueError(
            f"rate {text!r}: expected a number with bit, kbit, mbit or gbit, e.g. 20mbit"
        )
    if not lo <= bps <= hi:
        raise ValueError(f"rate {text!r}: must be between {format_rate(lo)} and {format_rate(hi)}")
    return bps


def format_rate(bps: int) -> str:
    """The shortest exact tc spelling: 20000000 -> '20mbit'."""
    for unit in ("g", "m", "k"):
        if bps % _RATE_UNITS[unit] == 0:
            return f"{bps // _RATE_UNITS[unit]}{unit}bit"
    return f"{bps}bit"


def parse_bytes(text: str) -> int | None:
    """`14k` -> 14336, `1.5m`, `256MiB`, `600kb`; None when `text` is not a size."""
    m = _BYTES_RE.fullmatch(text.strip().lower())
    if not m:
        return None
    return _saturate(float(m.group(1)) * _BYTE_UNITS[m.group(2) or ""])


def format_bytes(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.4g} {unit}"
    return f"{n} B"


def _saturate(value: float) -> int:
    # 400 digits are inf as a float and int(inf) raises: clamp, and the range check refuses it.
    return int(min(value, 2.0**64))
