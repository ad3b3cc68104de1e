"""Status colours: the one map every view colours a job's status with, as text and as a progress bar's style.

Durations and ETAs are text of the store (``store.durations``), since headless status lines use them too.
"""
from __future__ import annotations

from ..store.jobs import ABORTED, DONE, ERROR, INITIALIZED, RUNNING, WAITING

STATUS_COLOURS = {DONE: "#2e7d32", RUNNING: "#1565c0", ERROR: "#c62828", ABORTED: "#757575", WAITING: "#6a1b9a",
                  INITIALIZED: "#ef6c00"}
OTHER = "#555"   # a status outside the map
BAR_STYLES = {DONE: "success", ERROR: "danger", ABORTED: "warning"}   # ipywidgets' progress-bar styles


def status_colour(status: str) -> str:
    """The CSS colour of a status (Done green, Running blue, Error red, Aborted grey, ...)."""
    return STATUS_COLOURS.get(status, OTHER)


def bar_style(status: str) -> str:
    """A progress bar's ``bar_style`` for a status: green Done, red Error, orange Aborted, else plain."""
    return BAR_STYLES.get(status, "")


__all__ = ["STATUS_COLOURS", "OTHER", "BAR_STYLES", "status_colour", "bar_style"]
