"""One-line checks of a standalone reference's parameters (kolmogorov, rayleigh_taylor)."""

from __future__ import annotations

import numpy as np


def number(name: str, value, low: float, high: float, low_open: bool = False) -> float:
    allowed = f"a number in {'(' if low_open else '['}{low:g}, {high:g}]"
    try:
        x = float("nan") if isinstance(value, (bool, str)) else float(value)
    except (TypeError, ValueError):
        x = float("nan")
    if not ((low < x if low_open else low <= x) and x <= high):
        raise ValueError(f"{name} must be {allowed}; got {value!r}")
    return x


def integer(name: str, value, low: int, high: int, even: bool = False) -> int:
    ok = (not isinstance(value, bool) and isinstance(value, (int, np.integer))
          and low <= value <= high and not (even and value % 2))
    if not ok:
        raise ValueError(f"{name} must be {'an even' if even else 'an'} integer in [{low}, {high}]; got {value!r}")
    return int(value)
