"""Axis tick formats that keep neighbouring ticks apart when a chart spans a narrow band of values."""
from __future__ import annotations

import math


def distinct_tick_format(lo: float, hi: float, ticks: int = 4, least: int = 2, most: int = 5) -> str:
    """A d3 format with just enough significant digits that ``ticks`` ticks over [lo, hi] read differently.

    A decaying learning rate spans 0.0093 to 0.01, a trained layer's outputs 0.5017 to 0.5019: with two
    digits every tick would print "0.01" or "0.5". ``~`` drops trailing zeros, so wide ranges stay short.
    """
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return f".{least}~g"
    spacing = (hi - lo) / max(1, ticks)
    magnitude = max(abs(hi), abs(lo))
    digits = math.ceil(math.log10(magnitude / spacing)) + 1 if magnitude > 0 else least
    return f".{min(max(digits, least), most)}~g"


def nice_ticks(hi: float, count: int = 4) -> list[float]:
    """Ticks from 0 to at most ``hi`` at a round step (1, 2, 2.5 or 5 x 10^k), about ``count`` of them.

    Given to an axis as ``tick_values``: bqplot widens a line's scale by the line's own padding, so ticks
    it spreads over the domain start at "-8.5e-5" even when the scale's ``min`` is 0.
    """
    if not math.isfinite(hi) or hi <= 0:
        return [0.0]
    raw = hi / max(1, count)
    base = 10.0 ** math.floor(math.log10(raw))
    step = next(m * base for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * base >= raw * 0.999)
    n = int(math.floor(hi / step + 1e-9))
    return [round(i * step, 12) for i in range(n + 1)]
