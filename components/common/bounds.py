"""The allowed range of a numeric parameter, stated once by the parameter's owner.

A component (or the Trainer) declares ``BOUNDS = {name: Bounds(...)}`` beside its
parameters and validates with it; the YAML config (pipeline/config.py) declares the
same ranges by reading that table, so a bound is written in one place.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Bounds:
    """low/high (None: unbounded), each open or closed; integer=True: ints only."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False

    def contains(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True

    def describe(self) -> str:
        """'in [0, 1)', '> 0', '>= 1', ..."""
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return f"{'<' if self.high_open else '<='} {self.high:g}"

    def check(self, field: str, value: Any) -> Any:
        """Returns value; raises ValueError '<field> must be an integer|a number <range>'."""
        kind = "an integer" if self.integer else "a number"
        types_ok = isinstance(value, int) if self.integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not types_ok or not self.contains(value):
            raise ValueError(f"{field} must be {kind} {self.describe()}, got {value!r}")
        return value

    def as_range(self) -> tuple:
        """(low, high, low_open, high_open): the YAML config's range metadata."""
        return (self.low, self.high, self.low_open, self.high_open)
