"""How long something takes, as text: the one place for the duration and ETA formats.

    clock(3725) == "1:02:05"    clock(65) == "1:05"     clock(12) == "0:12"    the jobs table's Elapsed
    eta(3725) == "ETA 1:02:05"  eta(72) == "ETA 1:12"   eta(12) == "ETA 12s"   every ETA: the dataset view,
    eta(None) == ""                                                            the training panel, status lines

One ETA style everywhere, so a dataset and a model that both have a minute left say it the same way.
Seconds are rounded to the nearest whole second. In the store so that headless text (a job's status
line) can use them as well as the widgets.
"""
from __future__ import annotations

import math


def clock(seconds: float) -> str:
    """'1:02:05' from an hour on, else '4:05' (minutes:seconds)."""
    s = int(round(seconds))
    h, m, s = s // 3600, s // 60 % 60, s % 60
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def eta(seconds: float | None) -> str:
    """'ETA ' and the time left as a :func:`clock` ('ETA 12s' under a minute); '' when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return ""
    if round(seconds) < 60:
        return f"ETA {int(round(seconds))}s"
    return f"ETA {clock(seconds)}"


__all__ = ["clock", "eta"]
