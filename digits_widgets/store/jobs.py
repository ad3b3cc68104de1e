"""Jobs on disk: one directory per job, ``job.json`` as the single source of truth.

Widgets, the training thread and torchrun workers all meet here. A job object in memory is a view of
its directory; the thread that runs a job appends events to in-memory queues (for the UI pump) and
writes what must survive a restart to ``job.json`` (atomically) and to its log file.
"""
from __future__ import annotations

import json
import os
import queue
import secrets
import shutil
import socket
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterator

from .._version import __version__ as version
from ..errors import DigitsError, JobError
from . import waiting
from .scheduler import Grant, Request, Scheduler, Ticket
from .scheduler import default as default_scheduler

INITIALIZED, WAITING, RUNNING, DONE, ABORTED, ERROR = (
    "Initialized", "Waiting", "Running", "Done", "Aborted", "Error")
STATUSES = (INITIALIZED, WAITING, RUNNING, DONE, ABORTED, ERROR)
ACTIVE = frozenset({INITIALIZED, WAITING, RUNNING})
JOB_FILE = "job.json"
_PROGRESS_SAVE_INTERVAL = 1.0   # seconds between job.json writes for progress alone
_EVENT_INTERVAL = 0.1           # seconds between progress events (the UI pump draws ~5/s)


class JobAborted(DigitsError):
    """Raised inside a job's worker when the user asked it to stop."""


def jobs_dir() -> Path:
    """``$DIGITS_JOBS_DIR`` or ``./digits-jobs``, read at each call so tests and notebooks can switch."""
    return Path(os.environ.get("DIGITS_JOBS_DIR") or "digits-jobs").expanduser().resolve()


def new_job_id() -> str:
    """DIGITS' id format, ``YYYYmmdd-HHMMSS-xxxx``: sortable by creation time, unique by its 4 hex digits."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def write_json_atomic(path: Path, data: Any, durable: bool = True) -> None:
    """Write to a temporary file in the same folder and rename it over ``path``: readers never see half.
    ``durable`` also waits for the disk (fsync); progress updates skip that wait, status changes do not."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, default=_json_default)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _proc_stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from field 3 (the state) on, or None where there is no /proc entry to read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
        return stat[stat.rindex(")") + 2:].split()   # after "pid (comm)", which may hold spaces
    except (OSError, ValueError):
        return None


def _process_start(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (/proc/<pid>/stat field 22); None when unknown."""
    fields = _proc_stat(pid)
    try:
        return int(fields[19]) if fields else None
    except (ValueError, IndexError):
        return None


def owner_record() -> dict:
    """Who runs a job: this process, by pid, host and start time (so a reused pid is not taken for it)."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": _process_start(os.getpid())}


def owner_gone(owner: dict) -> str | None:
    """Why the process named in ``owner`` no longer runs (same host only), or None when it may still run."""
    if not owner or owner.get("host") != socket.gethostname():
        return None  # nobody claimed the job yet, or another machine runs it: cannot tell from here
    pid = int(owner.get("pid", -1))
    if not _pid_alive(pid) or (_proc_stat(pid) or ["?"])[0] in ("Z", "X"):   # a zombie has ended too
        return f"its process {pid} on {owner['host']} is gone"
    started, now = owner.get("started"), _process_start(pid)
    if started is not None and now is not None and started != now:
        return f"its process {pid} on {owner['host']} is gone (that pid now belongs to another process)"
    return None


class Job:
    """A job directory. Subclasses (datasets, models) add views over the files their kind writes."""

    kind = "job"
    viewer: Callable[["Job"], Any] | None = None   # job → widget; set by the package when widgets load
    _registry: dict[str, type["Job"]] = {}
    _live: dict[str, "Job"] = {}
    _live_lock = threading.Lock()

    def __init__(self, directory: Path, record: dict):
        self.dir = Path(directory)
        self.record = record
        self.kind = record.get("kind", self.kind)  # what disk says, even before its class is imported
        self._lock = threading.RLock()
        self._subscribers: list[queue.SimpleQueue] = []
        self._abort = threading.Event()
        self._thread: threading.Thread | None = None
        self._watcher: threading.Thread | None = None   # follows a job another process runs (torchrun)
        self._ticket: Ticket | None = None    # its place in the scheduler's queue, then its grant
        self.grant: Grant | None = None       # what the scheduler gave its current run
        self.exception: BaseException | None = None
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

    def is_owned_here(self) -> bool:
        """True when a thread of this process runs the job, or launched it (torchrun) and follows it."""
        return any(t is not None and t.is_alive() for t in (self._thread, self._watcher))

    def _queue_ticket(self) -> Ticket | None:
        """This object's ticket, or (a view made from the directory) the one this kernel queued it with."""
        return self._ticket or default_scheduler().ticket_for(self.id)

    @property
    def queue_position(self) -> int | None:
        """1-based place in this kernel's queue while the job is Waiting for resources, else None."""
        ticket = self._queue_ticket()
        return None if ticket is None else ticket.scheduler.position(ticket)

    @property
    def waiting_for(self) -> str | None:
        """What a queued job waits for ('GPU 0', 'a CPU training slot'), None when it is not queued."""
        ticket = self._queue_ticket()
        return ticket.request.describe() if ticket is not None and ticket.waiting else None

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
        self.emit({"type": "status", "status": status, "error": error})

    # ---- persistence --------------------------------------------------------------------------
    def save(self, durable: bool = True) -> None:
        with self._lock:
            write_json_atomic(self.path(JOB_FILE), self.record, durable)

    def reload(self) -> "Job":
        """Re-read job.json (for jobs another process writes, e.g. under torchrun)."""
        with self._lock:
            self.record = _read_record(self.dir)
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

    def emit(self, event: dict) -> None:
        event.setdefault("job", self.id)
        event.setdefault("time", time.time())
        for q in list(self._subscribers):
            q.put(event)

    def log(self, line: str, filename: str = "job.log") -> None:
        """Append a line to the job's log file and send it to subscribers."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with self._lock, open(self.path(filename), "a") as f:
            f.write(f"{stamp} {line}\n")
        self.emit({"type": "log", "line": line})

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
            self.emit({"type": "progress", **progress})

    # ---- running -------------------------------------------------------------------------------
    def start(self, work: Callable[["Job"], None], on_failure: Callable[["Job"], None] | None = None,
              request: Request | None = None, scheduler: Scheduler | None = None) -> "Job":
        """Run ``work(job)`` in a daemon thread: Waiting → Running → Done, Aborted (JobAborted) or Error.

        With a ``request`` the job takes its place in the scheduler's queue now (so the queue keeps the
        order of the calls) and stays Waiting until it is granted (``job.grant``); an abort meanwhile
        ends it Aborted without starting it. ``on_failure`` and the release of the grant both happen
        before the final status is written, so whatever it removes (partial databases) is gone and the
        resources are free by the time anyone sees Done, Error or Aborted.
        """
        self._abort.clear()
        self.grant = None
        self._ticket = (scheduler or default_scheduler()).submit(self.id, request) if request else None
        with Job._live_lock:
            Job._live[str(self.dir.resolve())] = self
        self.set_status(WAITING)
        self._thread = threading.Thread(target=self._run, args=(work, on_failure),
                                        name=f"digits-job-{self.id}", daemon=True)
        self._thread.start()
        return self

    def wait_for_resources(self) -> bool:
        """Block (in the job's own thread) until the scheduler grants the job's ticket; False when the
        job was aborted first, after writing Aborted with the reason (it never started)."""
        ticket = self._ticket
        if ticket is None:
            return True
        def moved(position: int | None) -> None:
            self.emit({"type": "queue", "position": position, "waiting_for": ticket.request.describe()})
        ticket.on_move = moved
        if ticket.waiting:
            moved(ticket.scheduler.position(ticket))
        grant = ticket.scheduler.wait(ticket, self._abort.is_set)
        if grant is None:
            self.set_status(ABORTED, error=f"Aborted while waiting for {ticket.request.describe()}: "
                                           "it never started")
            return False
        self.grant = grant
        with self._lock:
            self.record["resources"] = {"pool": grant.pool, "gpus": list(grant.gpus)}
        return True

    def release_resources(self) -> None:
        """Give back what the scheduler granted (safe to call twice); done before any final status."""
        ticket = self._ticket
        if ticket is not None:
            ticket.scheduler.release(ticket)

    def _run(self, work: Callable[["Job"], None], on_failure: Callable[["Job"], None] | None) -> None:
        try:
            if not self.wait_for_resources():
                return
            self.set_status(RUNNING)
            work(self)
        except JobAborted:
            self._finish_failed(on_failure, ABORTED, None)
        except BaseException as exc:  # noqa: BLE001 - every failure must end the job in Error
            self.exception = exc
            message = str(exc) if isinstance(exc, DigitsError) else f"{type(exc).__name__}: {exc}"
            try:
                self.log("ERROR " + traceback.format_exc().rstrip())
            except OSError:
                pass
            self._finish_failed(on_failure, ERROR, message)
        else:
            self.release_resources()
            self.set_status(DONE)

    def _finish_failed(self, on_failure: Callable[["Job"], None] | None, status: str,
                       message: str | None) -> None:
        if on_failure is not None:
            try:
                on_failure(self)
            except Exception as cleanup_exc:  # noqa: BLE001 - report, but keep the original error
                message = f"{message or status}\n(cleanup also failed: {cleanup_exc})"
        self.release_resources()
        self.set_status(status, error=message)

    def abort(self) -> None:
        """Ask the worker to stop at its next check (a queued job leaves the queue); returns at once."""
        self._abort.set()
        ticket = self._ticket
        if ticket is not None and ticket.waiting:
            ticket.scheduler.wake()

    def check_abort(self) -> None:
        """Called by workers between units of work."""
        if self._abort.is_set():
            raise JobAborted(f"Job {self.id} was aborted")

    @property
    def abort_requested(self) -> bool:
        return self._abort.is_set()

    def wait(self, timeout: float | None = None, raise_on_error: bool = True) -> str:
        """Block until the job ends (or ``timeout`` passes); re-raise its error when it failed.

        On the kernel's main thread it waits in short slices and runs the UI pump's wait hook between
        them (``store.waiting``), so the job's charts keep updating while a cell waits.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._thread is not None:
            if not waiting.hook_active():
                self._thread.join(timeout)
            while self._thread.is_alive() and (deadline is None or time.monotonic() < deadline):
                left = waiting.SLICE if deadline is None else deadline - time.monotonic()
                self._thread.join(max(0.0, min(waiting.SLICE, left)))
                waiting.run_wait_hook()
        else:
            while self.reload().is_running() and (deadline is None or time.monotonic() < deadline):
                waiting.pumped_sleep(0.2)
            while self._watcher is not None and self._watcher.is_alive() and (
                    deadline is None or time.monotonic() < deadline):
                self._watcher.join(waiting.SLICE)   # it writes the launch's final status (exit code)
                waiting.run_wait_hook()
            self.reload()
        waiting.run_wait_hook()   # the last events (Done, final metrics) reach the widgets before the cell goes on
        status = self.status
        if raise_on_error and status == ERROR:
            if self.exception is not None:
                raise self.exception
            raise JobError(f"Job {self.id} ({self.name}) failed: {self.error}")
        return status


class _PlainView:
    """Wraps a job so IPython's pretty printer uses the job's ``_repr_pretty_`` (or its repr)."""

    def __init__(self, job: Job):
        self.job = job

    def _repr_pretty_(self, p, cycle) -> None:
        method = getattr(self.job, "_repr_pretty_", None)
        p.text(repr(self.job)) if method is None else method(p, cycle)


# ---- the store ---------------------------------------------------------------------------------
def _read_record(directory: Path) -> dict:
    try:
        with open(Path(directory) / JOB_FILE) as f:
            return json.load(f)
    except FileNotFoundError:
        raise JobError(f"No job at {directory} (no {JOB_FILE})") from None
    except json.JSONDecodeError as exc:
        raise JobError(f"{Path(directory) / JOB_FILE} is not valid JSON: {exc}") from None


def create_job(kind: str, type_: str, name: str, params: dict | None = None,
               parents: list[str] | None = None, root: Path | None = None, group: str = "") -> Job:
    """Make a new job directory with its job.json (status Initialized)."""
    if not name or not str(name).strip():
        raise JobError("A job needs a name")
    root = Path(root) if root is not None else jobs_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        while True:
            job_id = new_job_id()
            directory = root / job_id
            try:
                directory.mkdir()
                break
            except FileExistsError:
                continue
    except OSError as exc:
        raise JobError(f"Cannot create a job in the jobs directory {root} ({exc.strerror or exc}): "
                       "make it writable, or set DIGITS_JOBS_DIR to a folder you can write") from None
    record = {
        "id": job_id, "kind": kind, "type": type_, "name": str(name), "group": str(group or "").strip(),
        "params": params or {},
        "parents": list(parents or []), "created": time.time(),
        "status_history": [[INITIALIZED, time.time()]], "error": None, "info": {},
        "versions": {"digits_widgets": version},
    }
    cls = Job._registry.get(kind, Job)
    job = cls(directory, record)
    try:
        job.save()
    except OSError as exc:
        shutil.rmtree(directory, ignore_errors=True)
        raise JobError(f"Cannot write {directory / JOB_FILE} in the jobs directory {root} "
                       f"({exc.strerror or exc}): make it writable, or set DIGITS_JOBS_DIR to a folder "
                       "you can write") from None
    return job


def load_job(directory: Path) -> Job:
    """The live object when this process runs the job, else a fresh view of its directory."""
    key = str(Path(directory).resolve())
    with Job._live_lock:
        live = Job._live.get(key)
    if live is not None:
        return live
    record = _read_record(directory)
    job = Job._registry.get(record.get("kind", ""), Job)(Path(directory), record)
    job.settle_orphan()
    return job


def iter_jobs(root: Path | None = None) -> Iterator[Job]:
    root = Path(root) if root is not None else jobs_dir()
    if not root.is_dir():
        return
    for child in sorted(root.iterdir()):
        if (child / JOB_FILE).is_file():
            try:
                yield load_job(child)
            except JobError:
                continue  # a half-deleted or foreign directory is not a job


def list_jobs(kind: str | None = None, root: Path | None = None) -> list[Job]:
    """All jobs on disk, oldest first."""
    found = [j for j in iter_jobs(root) if kind is None or j.kind == kind]
    return sorted(found, key=lambda j: (j.created, j.id))


def find_job(id_or_name: "str | Job", kind: str | None = None, root: Path | None = None) -> Job:
    """A job by id, by unique name, or by the path of its directory."""
    if isinstance(id_or_name, Job):
        return id_or_name
    key = str(id_or_name)
    root = Path(root) if root is not None else jobs_dir()
    candidates = [Path(key)] if os.sep in key else []
    candidates.append(root / key)
    for cand in candidates:
        if (cand / JOB_FILE).is_file():
            job = load_job(cand)
            if kind is None or job.kind == kind:
                return job
    named = [j for j in iter_jobs(root) if j.name == key and (kind is None or j.kind == kind)]
    if len(named) == 1:
        return named[0]
    what = kind or "job"
    if len(named) > 1:
        ids = ", ".join(j.id for j in named)
        raise JobError(f"Several {what}s are named {key!r} ({ids}): use the id")
    raise JobError(f"No {what} with id or name {key!r} in {root}")


def dependents(job: Job, root: Path | None = None) -> list[Job]:
    """Jobs that name ``job`` as a parent (models trained on a dataset, fine-tunes of a model)."""
    return [j for j in iter_jobs(root) if job.id in j.parents]


def delete_job(id_or_name: "str | Job", root: Path | None = None, timeout: float = 30.0) -> None:
    """Delete a job directory; refused, with their names, while other jobs depend on it."""
    job = find_job(id_or_name, root=root)
    users = dependents(job, root)
    if users:
        names = ", ".join(f'"{u.name}" ({u.id})' for u in users)
        n = len(users)
        noun = "model" if all(u.kind == "model" for u in users) else "job"
        raise JobError(f'Cannot delete "{job.name}" because {n} {noun}{"s" if n > 1 else ""} '
                       f'depend{"" if n > 1 else "s"} on it: {names}')
    if job.is_owned_here():
        job.abort()
        job.wait(timeout, raise_on_error=False)
    with Job._live_lock:
        Job._live.pop(str(job.dir.resolve()), None)
    shutil.rmtree(job.dir)
