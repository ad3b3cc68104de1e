"""How long something takes, as text: the one place for the duration and ETA formats.

    clock(3725) == "1:02:05"    clock(65) == "1:05"     clock(12) == "0:12"    the jobs table's Elapsed
    hm(3725) == "1h02m"         hm(72) == "1m12s"                              the training panel's ETA
    eta(65) == "ETA 1:05"       eta(12) == "ETA 12s"    eta(None) == ""        the dataset view's ETA
    eta(72, hm) == "ETA 1m12s"

Seconds are rounded to the nearest whole second. In the store so that headless text (a job's status
line) can use them as well as the widgets.
"""
from __future__ import annotations

import math
from typing import Callable


def clock(seconds: float) -> str:
    """'1:02:05' from an hour on, else '4:05' (minutes:seconds)."""
    s = int(round(seconds))
    h, m, s = s // 3600, s // 60 % 60, s % 60
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def hm(seconds: float) -> str:
    """'1h02m' from an hour on, else '4m05s'."""
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def eta(seconds: float | None, style: Callable[[float], str] = clock) -> str:
    """'ETA ' and the time left in ``style`` ('ETA 12s' under a minute in the clock style); '' when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return ""
    if style is clock and round(seconds) < 60:
        return f"ETA {int(round(seconds))}s"
    return f"ETA {style(seconds)}"


__all__ = ["clock", "hm", "eta"]
