"""The pieces every config schema is built from: a field with a valid range (``ranged``), the one check
of every range (``check_ranges``), options with a few fixed names (``Choice``), and ``ConfigError``.

A module of its own so that the measurement modules (whose schemas live next to them) and
``bnstudy.config`` (which imports them) can both use it without importing each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, is_dataclass
from enum import Enum
from typing import Any

from omegaconf import MISSING


class ConfigError(ValueError):
    """A config value that cannot work; the message says what to change (the entry point prints it alone)."""


@dataclass(frozen=True)
class Range:
    """Valid values of a numeric field (or of each item of a list field); floats must also be finite."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False  # lo itself excluded
    hi_open: bool = False

    def holds(self, v: float) -> bool:
        if isinstance(v, float) and not math.isfinite(v):
            return False
        return ((self.lo is None or (v > self.lo if self.lo_open else v >= self.lo))
                and (self.hi is None or (v < self.hi if self.hi_open else v <= self.hi)))

    def __str__(self) -> str:
        num = lambda x: str(int(x)) if float(x).is_integer() else f"{x:g}"
        if self.lo is not None and self.hi is not None:
            return f"in {'(' if self.lo_open else '['}{num(self.lo)}, {num(self.hi)}{')' if self.hi_open else ']'}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {num(self.lo)}"
        return f"{'<' if self.hi_open else '<='} {num(self.hi)}"


def ranged(default: Any = MISSING, *, gt: float | None = None, ge: float | None = None, lt: float | None = None,
           le: float | None = None, factory: Any = None) -> Any:
    """A dataclass field whose value (or each item of its list) must lie in the given range."""
    r = Range(gt if gt is not None else ge, lt if lt is not None else le, gt is not None, lt is not None)
    if factory is not None:
        return field(default_factory=factory, metadata={"range": r})
    return field(default=default, metadata={"range": r})


def check_ranges(obj: Any, prefix: str = "") -> None:
    """Raise ``ConfigError`` for the first field of ``obj`` (a config dataclass, walked recursively) that
    is out of its ``ranged`` range, naming it, its value and the range."""
    for f in fields(obj):
        value, key = getattr(obj, f.name), f"{prefix}{f.name}"
        if is_dataclass(value):
            check_ranges(value, f"{key}.")
        r = f.metadata.get("range")
        if r is None or value is None:
            continue
        if isinstance(value, (list, tuple)):
            if not all(r.holds(v) for v in value):
                raise ConfigError(f"{key}={list(value)}: each value must be {r}")
        elif not r.holds(value):
            finite = "a finite number " if isinstance(value, float) and not math.isfinite(value) else ""
            raise ConfigError(f"{key}={value} must be {finite}{r}")


class Choice(str, Enum):
    """An option with a few fixed names: equal to its name as a string, and printed as it."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


Spacing = Choice("Spacing", {"log": "log", "linear": "linear"})
BetaWrt = Choice("BetaWrt", {"weights": "weights", "activations": "activations"})
