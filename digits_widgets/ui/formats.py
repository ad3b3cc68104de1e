"""Status colours: the one map every view colours a job's status with (durations: ``store.durations``)."""
from __future__ import annotations

from ..store.jobs import ABORTED, DONE, ERROR, INITIALIZED, RUNNING, WAITING

STATUS_COLOURS = {DONE: "#2e7d32", RUNNING: "#1565c0", ERROR: "#c62828", ABORTED: "#757575", WAITING: "#6a1b9a",
                  INITIALIZED: "#ef6c00"}
OTHER = "#555"   # a status outside the map


def status_colour(status: str) -> str:
    """The CSS colour of a status (Done green, Running blue, Error red, Aborted grey, ...)."""
    return STATUS_COLOURS.get(status, OTHER)


__all__ = ["STATUS_COLOURS", "status_colour", "OTHER"]
