"""Where a number may lie: the ranges the config checks every numeric setting against."""

from __future__ import annotations

import math
import typing


class Interval(typing.NamedTuple):
    """Where a number may lie; ``None`` is unbounded on that side."""

    low: float | None
    high: float | None = None
    low_closed: bool = True
    high_closed: bool = True

    def __contains__(self, value: object) -> bool:
        try:
            v = float(value)  # type: ignore[arg-type]
        except OverflowError:  # an integer beyond any float
            return False
        if not math.isfinite(v):
            return False
        above = self.low is None or (v >= self.low if self.low_closed else v > self.low)
        below = self.high is None or (v <= self.high if self.high_closed else v < self.high)
        return above and below

    def __str__(self) -> str:
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"{'[' if self.low_closed else '('}{low}, {high}{']' if self.high_closed else ')'}"


AT_LEAST_1, AT_LEAST_0, POSITIVE = Interval(1), Interval(0), Interval(0, None, False)
UNIT, PROBABILITY_OPEN = Interval(0, 1), Interval(0, 1, False, False)
