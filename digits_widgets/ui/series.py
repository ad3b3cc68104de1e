"""Bounded chart series, and the bqplot line that shows one.

bqplot has no append: every change to ``Lines.x``/``Lines.y`` resends both arrays whole, so a chart fed
one point per training step would cost O(N) bytes per update and O(N²) over a run. A
``DecimatedSeries`` keeps at most ``capacity`` points however long the run: it keeps every k-th point
and, when full, drops every other kept point and doubles k. Kept points stay evenly spaced in arrival
order, and the newest point is always shown (as a provisional tail) so the chart never lags.

Validation points (one per validation, typically per epoch) use the same class with a capacity far
above any realistic count, so all of them are kept while the arrays still cannot grow without bound.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from bqplot import Lines

DEFAULT_CAPACITY = 1000


class DecimatedSeries:
    """Points (x, y) tagged with a key (the training step), at most ``capacity`` kept.

    The key lets a resumed run replace what the interrupted run logged after its checkpoint:
    ``truncate(step)`` drops every point whose key is >= step.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY):
        if capacity < 4:
            raise ValueError(f"capacity must be at least 4 (got {capacity})")
        self.capacity = capacity
        self.changed = False     # set by every mutation; the owner clears it after drawing
        self._reset()

    def _reset(self) -> None:
        self.stride = 1          # keep every stride-th arriving point
        self._arrived = 0        # points offered since the last reset
        self._x: list[float] = []
        self._y: list[float] = []
        self._keys: list[float] = []
        self._tail: tuple[float, float, float] | None = None   # newest point when it was not kept

    def __len__(self) -> int:
        return len(self._x) + (self._tail is not None)

    @property
    def last_key(self) -> float | None:
        if self._tail is not None:
            return self._tail[2]
        return self._keys[-1] if self._keys else None

    def add(self, x: float, y: float | None, key: float | None = None) -> None:
        """Offer a point; ``y`` None or not finite is ignored (a metric a phase did not log)."""
        if y is None or not math.isfinite(float(y)):
            return
        key = float(self._arrived if key is None else key)
        point = (float(x), float(y), key)
        if self._arrived % self.stride == 0:
            self._x.append(point[0])
            self._y.append(point[1])
            self._keys.append(point[2])
            self._tail = None
            if len(self._x) >= self.capacity:
                self._x, self._y, self._keys = self._x[::2], self._y[::2], self._keys[::2]
                self.stride *= 2
        else:
            self._tail = point
        self._arrived += 1
        self.changed = True

    def extend(self, points: Sequence[tuple[float, float | None, float | None]]) -> None:
        for x, y, key in points:
            self.add(x, y, key)

    def truncate(self, key: float) -> None:
        """Forget every point with a key >= ``key`` (what a resumed run is about to log again)."""
        keep = next((i for i, k in enumerate(self._keys) if k >= key), len(self._keys))
        if keep < len(self._keys) or self._tail is not None and self._tail[2] >= key:
            del self._x[keep:], self._y[keep:], self._keys[keep:]
            if self._tail is not None and self._tail[2] >= key:
                self._tail = None
            self.changed = True

    def clear(self) -> None:
        self._reset()
        self.changed = True

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """x and y as float64 arrays (bqplot sends them as binary buffers), newest point included."""
        xs, ys = self._x, self._y
        if self._tail is not None:
            xs, ys = xs + [self._tail[0]], ys + [self._tail[1]]
        return np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)


class SeriesLine:
    """A bqplot ``Lines`` mark drawn from a ``DecimatedSeries``: one message per redraw, none if unchanged."""

    def __init__(self, line: Lines, series: DecimatedSeries):
        self.line = line
        self.series = series

    def draw(self, force: bool = False) -> bool:
        """Push the series to the line when it changed; True when a message went out."""
        if not (force or self.series.changed):
            return False
        x, y = self.series.arrays()
        with self.line.hold_sync():   # x and y in one message, never a frame with mismatched lengths
            self.line.x = x
            self.line.y = y
        self.series.changed = False
        return True
