"""The events a job emits, one record type per kind, and the one constructor of each.

A worker thread (or the feed reading another process's files) builds an event here and hands it to
``Job.emit``, which adds ``job`` (the id) and ``time``; a view's handler gets a batch of them on the main
thread (``ui/pump.py``). They stay plain dicts at run time (``TypedDict``), so the queues, the JSON lines
on disk and docs/ui-contract.md all speak the same shape, but each kind's fields are written down once,
here, and every producer goes through these functions instead of spelling the dict itself.
"""
from __future__ import annotations

from typing import Any, Literal, Mapping, TypedDict, Union

__all__ = ["Event", "StatusEvent", "ProgressEvent", "LogEvent", "MetricEvent", "PausedEvent", "QueueEvent",
           "GoneEvent", "status", "progress", "log", "metric", "paused", "queue", "gone"]


class _Stamped(TypedDict, total=False):
    job: str     # the job's id (``Job.emit`` adds it)
    time: float  # when it happened, seconds since the epoch (``Job.emit`` adds it; a log line's own stamp)


class StatusEvent(_Stamped):
    type: Literal["status"]
    status: str          # Initialized | Waiting | Running | Done | Aborted | Error
    error: str | None


class ProgressEvent(_Stamped):
    type: Literal["progress"]
    done: int
    total: int
    rate: float          # units per second
    eta: float | None    # seconds left, None while unknown
    stage: str


class LogEvent(_Stamped):
    type: Literal["log"]
    line: str


class MetricEvent(_Stamped, total=False):
    """One record of metrics.jsonl; besides these, any other scalar a network reports (its own name)."""
    type: Literal["metric"]
    phase: str           # 'train' | 'val'
    epoch: float
    step: int
    loss: float
    lr: float            # train records
    samples_per_s: float # train records
    accuracy: float      # val records of classification


class PausedEvent(_Stamped):
    type: Literal["paused"]
    paused: bool


class QueueEvent(_Stamped):
    type: Literal["queue"]
    position: int | None  # 1-based place in the scheduler's queue; None once granted
    waiting_for: str      # 'GPU 0', 'a CPU training slot'


class GoneEvent(_Stamped):
    type: Literal["gone"]  # the job's directory was deleted (the feed alone reports it)
    error: str


Event = Union[StatusEvent, ProgressEvent, LogEvent, MetricEvent, PausedEvent, QueueEvent, GoneEvent]


def status(value: str, error: str | None = None) -> StatusEvent:
    return {"type": "status", "status": value, "error": error}


def progress(values: Mapping[str, Any]) -> ProgressEvent:
    """From a job's ``progress`` record (done, total, rate, eta, stage)."""
    return {"type": "progress", **values}  # type: ignore[typeddict-item]


def log(line: str, time: float | None = None) -> LogEvent:
    event: LogEvent = {"type": "log", "line": line}
    if time is not None:
        event["time"] = time
    return event


def metric(record: Mapping[str, Any]) -> MetricEvent:
    """From one metrics.jsonl record."""
    return {"type": "metric", **record}  # type: ignore[typeddict-item]


def paused(on: bool) -> PausedEvent:
    return {"type": "paused", "paused": on}


def queue(position: int | None, waiting_for: str) -> QueueEvent:
    return {"type": "queue", "position": position, "waiting_for": waiting_for}


def gone(error: str) -> GoneEvent:
    return {"type": "gone", "error": error}
