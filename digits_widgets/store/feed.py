"""One way to follow a job: its events, whoever runs it, from :func:`job_feed`.

A job run by a thread of this process emits its events itself (``Job.emit``, onto the queues that
``Job.subscribe()`` hands out). A job another process runs (a torchrun launch, a job reopened with
``dw.job(id)`` or after a kernel restart) only writes its directory. :class:`JobFeed` puts the two behind
one interface: ``poll()`` returns the job's queued events and, while no thread of this process feeds the
job (``job.is_owned_here()`` is False), the events that :class:`DirectoryFeed` reads from the directory:

- ``status`` when the job's status changes (as ``job.status`` reads it, so a dead owner reads Aborted),
  ``progress`` when ``job.json``'s progress changes (``job.json`` is re-read each poll, so the job object
  stays current for the view);
- ``metric``: each new line of ``metrics.jsonl`` (``store.tail.Tail``: complete lines only, from an offset);
  a replaced file (a resume trims it) is read again from its start;
- ``log``: each new line of the log file named (``create.log`` for the dataset view), its stamp as ``time``;
- ``gone``: once, when the job's directory was deleted (``error`` says so).

These are the records ``Job.emit`` sends (``job`` and ``time`` set the same way), so a view's handler
cannot tell a thread run from a torchrun run. Like ``subscribe()``, a feed hands out what happens from
its creation on: a view opens its feed first and then reads the directory, so nothing is missed; what
is both read and fed (written in between) costs nothing, since the views' handlers are idempotent, and
the metrics are fed once each: ``backlog()`` reads metrics.jsonl for the view, and a metric is fed only
when it is later, by its time, than the latest of its phase already fed or read. When a thread of this
process stops feeding the job, the directory takes over from where the files are then: the queue
delivered what they hold. A bare :class:`DirectoryFeed` starts at the files' beginning.

The UI pump (``ui/pump.py``) drains a feed as it drains a queue: ``feed.subscribe()`` returns the feed
itself, whose ``get_nowait()`` polls once per drain. A feed has one reader; ``close()`` ends it.
The torchrun launcher (``train/launch.py``) uses a :class:`DirectoryFeed` in its follower thread to
emit the workers' events for whoever subscribed to the job in this process. The jobs directory as a
whole (which jobs came, changed or went: the jobs table) is followed by ``store/jobs_feed.py``.
"""
from __future__ import annotations

import collections
import logging
import queue
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..errors import JobError
from . import events
from .job_record import JOB_FILE
from .tail import Tail

if TYPE_CHECKING:
    from .job import Job

_logger = logging.getLogger(__name__)

METRICS = "metrics.jsonl"     # a model's metrics file (train/records.py writes it)
_STAMP = "%Y-%m-%d %H:%M:%S"  # the stamp ``Job.log`` puts before each log line


def _event(job: "Job", event: events.Event) -> events.Event:
    """``event`` with the fields ``Job.emit`` adds."""
    event.setdefault("job", job.id)
    event.setdefault("time", time.time())
    return event


def _log_event(job: "Job", line: str) -> events.Event:
    try:
        stamp = datetime.strptime(line[:19], _STAMP).timestamp()
    except ValueError:
        return _event(job, events.log(line))   # a traceback's later lines have no stamp
    return _event(job, events.log(line[20:], stamp))


class DirectoryFeed:
    """The events another process's run of ``job`` leaves in its directory, read at each :meth:`poll`."""

    def __init__(self, job: "Job", metrics: str | None = METRICS, log: str | None = None) -> None:
        self.job = job
        self._metrics = Tail(job.path(metrics)) if metrics else None
        self._log = Tail(job.path(log)) if log else None
        self._status: str | None = None
        self._progress: dict | None = None
        self.gone = False

    def skip(self) -> None:
        """Take what the files hold now as already delivered: the next poll reports only later changes."""
        for tail in (self._metrics, self._log):
            if tail is not None:
                tail.read()
        self._reload()
        self._status, self._progress = self.job.status, dict(self.job.progress)

    def _reload(self) -> bool:
        """Re-read job.json into the job; False when the job's directory is gone."""
        try:
            self.job.reload()
        except (JobError, OSError):
            if not self.job.path(JOB_FILE).exists():
                return False
        return True   # unreadable now (it is never half-written: renamed into place): the next poll reads it

    def poll(self) -> list[events.Event]:
        if self.gone:
            return []
        job = self.job
        if not self._reload():
            self.gone = True
            return [_event(job, events.gone(f"The job {job.id} was deleted"))]
        found = []
        status = job.status
        if status != self._status:
            self._status = status
            found.append(_event(job, events.status(status, job.error)))
        if self._metrics is not None:
            found.extend(_event(job, events.metric(record)) for record in self._metrics.records())
        progress = job.progress
        if progress and progress != self._progress:
            self._progress = dict(progress)
            found.append(_event(job, events.progress(progress)))
        if self._log is not None:
            found.extend(_log_event(job, line) for line in self._log.read())
        return found


class JobFeed:
    """A job's events through one interface, whoever runs it (see the module's docstring)."""

    def __init__(self, job: "Job", metrics: str | None = METRICS, log: str | None = None) -> None:
        self.job = job
        self._queue = job.subscribe()
        self.directory = DirectoryFeed(job, metrics, log)
        self._metrics = metrics
        self._fed_times: dict[str, float] = {}   # phase → time of the latest metric fed or in the backlog
        self._fed_here = job.is_owned_here()
        if not self._fed_here:
            self.directory.skip()   # as a queue: what happens from now on (the view has read the rest)
        self._buffer: collections.deque[events.Event] = collections.deque()
        self._between_drains = True
        self.closed = False

    def poll(self) -> list[events.Event]:
        """The events since the last poll: queued ones, then (no thread here feeds it) the directory's."""
        if self.closed:
            return []
        found = []
        while True:
            try:
                found.append(self._queue.get_nowait())
            except queue.Empty:
                break
        fed_here = self.job.is_owned_here()
        if self._fed_here and not fed_here:
            self.directory.skip()   # its thread has ended: the queue holds all it wrote
        self._fed_here = fed_here
        if not fed_here:
            try:
                found.extend(self.directory.poll())
            except Exception:  # noqa: BLE001 - a full disk, a permission...: the next poll tries again
                _logger.exception("Reading the directory of job %s failed", self.job.id)
        return [e for e in found if e.get("type") != "metric" or self._fresh(e)]

    def backlog(self) -> list[events.Event]:
        """Every metric record on disk now (metrics.jsonl), for a view to draw before what is fed. From
        then on a metric is fed only when it is later (by its ``time``, per phase) than the latest of
        these: one written meanwhile was both read here and queued (or read from the directory)."""
        records = Tail(self.job.path(self._metrics)).records() if self._metrics else []
        self._fed_times = {}
        for record in records:
            self._fresh(record)
        return records

    def _fresh(self, metric: dict) -> bool:
        """False for a metric that was fed already (or is in the backlog); records the latest time."""
        t = float(metric.get("time") or 0.0)
        if not t:
            return True
        phase = metric.get("phase")
        if t <= self._fed_times.get(phase, 0.0):
            return False
        self._fed_times[phase] = t
        return True

    def close(self) -> None:
        """Stop following (idempotent)."""
        if not self.closed:
            self.closed = True
            self.job.unsubscribe(self._queue)
            self._buffer.clear()

    # ---- the pump drains a feed as a queue (``Pump.watch`` wants subscribe / unsubscribe) --------------
    def subscribe(self) -> "JobFeed":
        return self

    def unsubscribe(self, _q: Any) -> None:
        self.close()

    def get_nowait(self) -> dict:
        """The next event; polls once at the start of each drain (a drain ends at ``queue.Empty``)."""
        if not self._buffer and self._between_drains:
            self._between_drains = False
            try:
                self._buffer.extend(self.poll())
            except Exception:  # noqa: BLE001 - a drain must never fail: the pump drains every view at once
                _logger.exception("Following job %s failed this round", self.job.id)
        if not self._buffer:
            self._between_drains = True
            raise queue.Empty
        return self._buffer.popleft()


def job_feed(job: "Job", metrics: str | None = METRICS, log: str | None = None) -> JobFeed:
    """Follow ``job``: ``feed.poll()`` gives its new events, or hand the feed to ``Pump.watch``."""
    return JobFeed(job, metrics, log)


__all__ = ["JobFeed", "DirectoryFeed", "job_feed", "METRICS"]
