"""Bounded chart series, and the bqplot line that shows one.

bqplot has no append: every change to ``Lines.x``/``Lines.y`` resends both arrays whole, so a chart fed
one point per training step would cost O(N) bytes per update and O(N²) over a run. A
``DecimatedSeries`` keeps at most ``capacity`` points however long the run: it keeps every k-th point
and, when full, drops every other kept point and doubles k. Kept points stay evenly spaced in arrival
order, and the newest point is always shown (as a provisional tail) so the chart never lags.

Validation points (one per validation, typically per epoch) use the same class with a capacity far
above any realistic count, so all of them are kept while the arrays still cannot grow without bound.

Bounded arrays alone still cost 16 bytes (two float64) per point per line per pump round: 16 KB per
full line, five times a second, for as long as the run lasts. So a line is sent as float32 (8 bytes a
point: 7 significant digits, far finer than a pixel of any chart), and ``LineSchedule`` therefore resends a view's lines
within a byte budget (``ByteBudget``, a token bucket, ``DEFAULT_BYTES_PER_S`` per panel): while the arrays
are small every changed line goes every round; as they grow, each line's resend interval grows with its
size, so bytes per second stay under the budget however long the run. At the default budget and capacity
a line still shows its newest point within about a second.
"""
from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import numpy as np
from bqplot import Lines

DEFAULT_CAPACITY = 1000
DEFAULT_BYTES_PER_S = 32 * 1024   # per panel: ~4 full 1000-point float32 lines (8 KB each) a second
LINE_EVERY = 0.5                  # seconds between resends of one line: twice a second draws a smooth curve
MESSAGE_OVERHEAD = 256            # the JSON around a Lines update's two buffers (measured: ~180 bytes)


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
        self.sent_at = -math.inf   # clock time of the last redraw: the longest-waiting line goes first

    def cost(self) -> int:
        """Bytes the next redraw sends: x and y as float32 buffers, plus the message around them."""
        return 8 * len(self.series) + MESSAGE_OVERHEAD

    def draw(self, force: bool = False) -> bool:
        """Push the series to the line when it changed; True when a message went out."""
        if not (force or self.series.changed):
            return False
        x, y = (a.astype(np.float32) for a in self.series.arrays())   # what the browser draws anyway
        with self.line.hold_sync():   # x and y in one message, never a frame with mismatched lengths
            self.line.x = x
            self.line.y = y
        self.series.changed = False
        return True


class ByteBudget:
    """A token bucket: on average at most ``bytes_per_s``, in bursts of at most ``burst_s`` seconds' worth.

    A message larger than the burst may still go once the bucket is full; it then leaves a debt that
    later messages wait out, so over any span T the bytes spent stay under ``burst + rate * T + one
    message``: bounded, however long the run.
    """

    def __init__(self, bytes_per_s: float, clock: Callable[[], float] = time.monotonic, burst_s: float = 1.0):
        if not bytes_per_s > 0 or not burst_s > 0:
            raise ValueError(f"a byte budget needs a positive rate and burst (got {bytes_per_s}, {burst_s})")
        self.rate = float(bytes_per_s)
        self.burst = self.rate * burst_s
        self.clock = clock
        self._tokens = self.burst
        self._at = clock()

    def _refill(self) -> None:
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + max(0.0, now - self._at) * self.rate)
        self._at = now

    def wait(self, cost: float) -> float:
        """Seconds until ``cost`` bytes may be spent (0 when they may now)."""
        self._refill()
        return max(0.0, (min(cost, self.burst) - self._tokens) / self.rate)

    def try_spend(self, cost: float) -> bool:
        """Spend ``cost`` bytes if the budget allows it now; False (nothing spent) otherwise."""
        if self.wait(cost) > 0:
            return False
        self._tokens -= cost
        return True

    def charge(self, cost: float) -> None:
        """Spend ``cost`` bytes that went out regardless (a forced redraw): later messages wait it out."""
        self._refill()
        self._tokens -= cost


class LineSchedule:
    """Which of a view's lines to resend this round: the changed ones the byte budget allows.

    Lines go oldest-sent first and stop at the first one the budget refuses, so a large line is never
    starved by small ones that change every round. A line also waits ``min_interval`` after its last
    send: a fast run changes every line every round, and five redraws a second draw no better curve
    than two. ``bytes_per_s`` None means neither: every changed line goes every round (what the panel
    did before). A forced draw (first draw, job ended) sends every
    line whatever the budget says, so the final state is always complete, and is charged to the budget.
    """

    def __init__(self, lines: Sequence[SeriesLine], bytes_per_s: float | None = DEFAULT_BYTES_PER_S,
                 clock: Callable[[], float] = time.monotonic, min_interval: float = LINE_EVERY):
        self.lines = list(lines)
        self.clock = clock
        self.budget = None if bytes_per_s is None else ByteBudget(bytes_per_s, clock)
        self.min_interval = 0.0 if bytes_per_s is None else min_interval

    def draw(self, force: bool = False) -> float | None:
        """Redraw what is due; returns seconds until a held-back line may go, None when none is held back."""
        now = self.clock()
        pending = sorted((line for line in self.lines if force or line.series.changed), key=lambda l: l.sent_at)
        for line in pending:
            cost = line.cost()
            if not force and now < line.sent_at + self.min_interval:   # so are all after it (sorted)
                return line.sent_at + self.min_interval - now
            if self.budget is not None and not force and not self.budget.try_spend(cost):
                return max(self.budget.wait(cost), 1e-3)
            if force and self.budget is not None:
                self.budget.charge(cost)
            line.draw(force)
            line.sent_at = now
        return None
