"""How numbers are written in the report's evidence (one place, so every claim writes them alike)."""

from __future__ import annotations

import math

import numpy as np

from bnstudy.runs import fmt_g  # noqa: F401  (one definition: a number in its shortest form, as run labels write it)


def fmt(x: float, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x != 0 and (abs(x) >= 1e4 or abs(x) < 10 ** -digits):
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}f}"


def fmt_step(x: float) -> str:
    return "never" if math.isinf(x) else f"{x:.0f}"


def ratio(a: float, b: float) -> float:
    """a / b; NaN unless both are finite (and not both 0), inf when only b is 0."""
    if not (np.isfinite(a) and np.isfinite(b)) or (a == 0 and b == 0):
        return math.nan
    return math.inf if b == 0 else a / b


def fmt_ratio(r: float) -> str:
    if math.isnan(r):
        return "n/a"
    if math.isinf(r):
        return "inf x"
    return f"{r:.3g}x"
