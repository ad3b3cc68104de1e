"""The ``Job`` object: a view of one job directory, and the events it sends to whoever follows it.

A job in memory is a view of its directory (``job.json`` is the truth, see ``store/job_record.py``). This
module holds what every job has, running or not: identity (id, name, notes, group), status (with a dead
owner read as Aborted), saving and reloading the record, the log, progress, and the in-memory event queues
the UI pump drains. The thread that runs a job emits events here and writes what must survive a restart
to ``job.json`` (atomically) and to its log file; how a job is run is :class:`~.job_runner.JobRunner`,
which ``Job`` mixes in. Subclasses (datasets, models) register their ``kind`` by being defined.
"""
from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable

from ..errors import JobError
from . import events
from .job_record import (ABORTED, ACTIVE, JOB_FILE, STATUSES, WAITING, owner_gone, owner_record, read_record,
                         write_json_atomic)
from .job_runner import JobRunner

_PROGRESS_SAVE_INTERVAL = 1.0   # seconds between job.json writes for progress alone
_EVENT_INTERVAL = 0.1           # seconds between progress events (the UI pump draws ~5/s)


class Job(JobRunner):
    """A job directory. Subclasses (datasets, models) add views over the files their kind writes."""

    kind = "job"
    viewer: Callable[["Job"], Any] | None = None   # job → widget; set by the package when widgets load
    _registry: dict[str, type["Job"]] = {}         # kind → class, filled as subclasses are defined

    def __init__(self, directory: Path, record: dict):
        self.dir = Path(directory)
        self.record = record
        self.kind = record.get("kind", self.kind)  # what disk says, even before its class is imported
        self._lock = threading.RLock()
        self._subscribers: list[queue.SimpleQueue] = []
        super().__init__()   # JobRunner: thread, ticket, abort flag
        self._last_progress_save = 0.0
        self._last_progress_event = 0.0
        self._progress_start: tuple[float, int] | None = None

    # ---- kinds -------------------------------------------------------------------------------
    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            Job._registry[cls.kind] = cls

    # ---- identity ------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.record["id"]

    @property
    def name(self) -> str:
        return self.record["name"]

    def rename(self, name: str) -> "Job":
        """Give the job a new name (DIGITS let users edit it), kept in job.json; returns the job."""
        name = str(name or "").strip()
        if not name:
            raise JobError("A job needs a name")
        with self._lock:
            self.record["name"] = name
            self.save()
        return self

    @property
    def notes(self) -> str:
        """Free text about the job (DIGITS' editable notes), kept in job.json ("" when none)."""
        return self.record.get("notes") or ""

    @notes.setter
    def notes(self, text: str) -> None:
        with self._lock:
            self.record["notes"] = str(text or "")
            self.save()

    @property
    def group(self) -> str:
        """DIGITS' optional group name, which gathers jobs on the home page ("" when none)."""
        return self.record.get("group") or self.info.get("group") or ""

    def set_group(self, group: str) -> "Job":
        """Put the job in a group (an empty name takes it out); returns the job."""
        with self._lock:
            self.record["group"] = str(group or "").strip()
            self.info.pop("group", None)
            self.save()
        return self

    @property
    def type(self) -> str:
        """The sub-kind: 'classification', 'processing', 'gradients', ... for datasets."""
        return self.record.get("type", "")

    @property
    def params(self) -> dict:
        return self.record.get("params", {})

    @property
    def info(self) -> dict:
        """What the job found or produced (counts, shapes, paths), filled in while it runs."""
        return self.record.setdefault("info", {})

    @property
    def parents(self) -> list[str]:
        return self.record.get("parents", [])

    @property
    def created(self) -> float:
        return self.record["created"]

    def path(self, *parts: str) -> Path:
        return self.dir.joinpath(*parts)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.name!r} {self.status}>"

    def _ipython_display_(self) -> None:
        """In a notebook a job shows as its widget; in a terminal (or without widgets) as text."""
        from IPython import get_ipython
        from IPython.display import display
        shell = get_ipython()
        in_kernel = shell is not None and getattr(shell, "kernel", None) is not None
        if in_kernel and Job.viewer is not None:
            display(self.show())
        else:
            display(self._text())

    def _text(self) -> Any:
        """Plain-text stand-in for terminals: what ``_repr_pretty_`` would print."""
        from IPython.display import Pretty
        from IPython.lib.pretty import pretty
        return Pretty(pretty(_PlainView(self)))

    def show(self) -> Any:
        """The job's widget (dataset view or training panel), redrawn from disk: also after a restart."""
        if Job.viewer is None:
            raise JobError("No viewer is registered: import digits_widgets (it registers the widgets)")
        return Job.viewer(self)

    # ---- status --------------------------------------------------------------------------------
    @property
    def status(self) -> str:
        status = self.record["status_history"][-1][0]
        if status in ACTIVE and not self.is_owned_here() and not self._owner_alive():
            return ABORTED  # its process died (kernel restart, kill): what it left is incomplete
        return status

    @property
    def status_history(self) -> list[tuple[str, float]]:
        return [tuple(s[:2]) for s in self.record["status_history"]]   # a third item is the reason

    @property
    def error(self) -> str | None:
        return self.record.get("error")

    @property
    def progress(self) -> dict:
        return self.record.get("progress", {})

    def is_running(self) -> bool:
        return self.status in ACTIVE

    def _owner_alive(self) -> bool:
        return owner_gone(self.record.get("owner") or {}) is None

    def settle_orphan(self) -> bool:
        """A job left Running (or Waiting) by a process that died (kernel restart, kill -9) becomes
        Aborted on disk, with the reason in its status history and error, so it can be resumed."""
        with self._lock:
            status = self.record["status_history"][-1][0]
            if status not in ACTIVE or self.is_owned_here():
                return False
            why = owner_gone(self.record.get("owner") or {})
            if why is None:
                return False
            if status == WAITING:   # queued, never started this run: nothing to resume from it
                reason = f"Aborted: the kernel that queued it ended before it started ({why})"
            else:
                reason = (f"Aborted: {why} (kernel restart or kill) while the job was {status}; "
                          "resume it to continue from its last checkpoint")
            self.record["status_history"].append([ABORTED, time.time(), reason])
            self.record["error"] = reason
            try:
                self.save()
            except OSError:
                pass  # a read-only jobs folder: the status property still reads Aborted
        return True

    def set_status(self, status: str, error: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        with self._lock:
            self.record["status_history"].append([status, time.time()])
            if error is not None:
                self.record["error"] = error
            if status in ACTIVE:
                self.record["owner"] = owner_record()
            self.save()
        self.emit(events.status(status, error))

    # ---- persistence --------------------------------------------------------------------------
    def save(self, durable: bool = True) -> None:
        with self._lock:
            write_json_atomic(self.path(JOB_FILE), self.record, durable)

    def reload(self) -> "Job":
        """Re-read job.json (for jobs another process writes, e.g. under torchrun)."""
        with self._lock:
            self.record = read_record(self.dir)
        return self

    def update_info(self, **values: Any) -> None:
        with self._lock:
            self.info.update(values)
            self.save()

    # ---- events for the UI pump -----------------------------------------------------------------
    def subscribe(self) -> queue.SimpleQueue:
        """A queue that receives every event emitted from now on (thread-safe, never blocks the worker)."""
        q: queue.SimpleQueue = queue.SimpleQueue()
        with self._lock:
            self._subscribers.append(q)
        return q

    def unsubscribe(self, q: queue.SimpleQueue) -> None:
        with self._lock:
            if q in self._subscribers:
                self._subscribers.remove(q)

    def emit(self, event: "events.Event") -> None:
        """Hand ``event`` (built by ``store.events``), stamped with the job's id and the time, to every subscriber."""
        event.setdefault("job", self.id)
        event.setdefault("time", time.time())
        for q in list(self._subscribers):
            q.put(event)

    def log(self, line: str, filename: str = "job.log") -> None:
        """Append a line to the job's log file and send it to subscribers."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with self._lock, open(self.path(filename), "a") as f:
            f.write(f"{stamp} {line}\n")
        self.emit(events.log(line))

    def report_progress(self, done: int, total: int, stage: str = "") -> None:
        """Record done/total with rate and ETA; written to job.json at most once a second."""
        now = time.time()
        if self._progress_start is None or done < self._progress_start[1]:
            self._progress_start = (now, done)
        t0, d0 = self._progress_start
        rate = (done - d0) / (now - t0) if now > t0 and done > d0 else 0.0
        eta = (total - done) / rate if rate > 0 and total >= done else None
        progress = {"done": done, "total": total, "rate": rate, "eta": eta, "stage": stage}
        with self._lock:
            self.record["progress"] = progress
            final = total > 0 and done >= total
            if final or now - self._last_progress_save >= _PROGRESS_SAVE_INTERVAL:
                self._last_progress_save = now
                self.save(durable=final)   # a training thread must not wait for the disk every second
        if final or now - self._last_progress_event >= _EVENT_INTERVAL:
            self._last_progress_event = now
            self.emit(events.progress(progress))


class _PlainView:
    """Wraps a job so IPython's pretty printer uses the job's ``_repr_pretty_`` (or its repr)."""

    def __init__(self, job: Job):
        self.job = job

    def _repr_pretty_(self, p, cycle) -> None:
        method = getattr(self.job, "_repr_pretty_", None)
        p.text(repr(self.job)) if method is None else method(p, cycle)
