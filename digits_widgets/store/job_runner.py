"""Running a job's work in a daemon thread of this process, and everything that only a running job has.

``Job`` (``store/job.py``) mixes in :class:`JobRunner`. It is kept apart because it is the one place where
a job's life is driven: the place in the scheduler's queue, Waiting → Running → Done, Aborted or Error,
the abort flag its worker checks, and waiting for the end. There is one path by which an exception ends
a job (:meth:`JobRunner.run_to_end`, which a torchrun worker runs too): ``JobAborted`` ends it Aborted,
anything else ends it Error with the traceback in its log; and one way a final status is written
(:meth:`JobRunner.end`): the cleanup runs and the resources are released first. ``_live`` holds the jobs this process runs, so ``load_job`` hands back the live
object rather than a second view of the same directory.
"""
from __future__ import annotations

import threading
import time
import traceback
from typing import Callable, Self

from ..errors import DigitsError, JobError
from . import events, waiting
from .job_record import ABORTED, DONE, ERROR, RUNNING, WAITING
from .scheduler import Grant, Request, Scheduler, Ticket
from .scheduler import default as default_scheduler


class JobAborted(DigitsError):
    """Raised inside a job's worker when the user asked it to stop."""


class JobRunner:
    """The running half of ``Job``: a thread (or a follower of another process), a ticket, an abort flag.

    A mixin: it uses the job's ``id``, ``dir``, ``record``, ``_lock``, ``set_status``, ``emit``, ``log``
    and ``reload``, which ``Job`` defines.
    """

    error_log = "job.log"              # the log file a failure's traceback goes to (a model's: train.log)
    _live: dict[str, "JobRunner"] = {}       # the jobs this process runs, by resolved directory
    _live_lock = threading.Lock()

    def __init__(self) -> None:
        self._abort = threading.Event()
        self._thread: threading.Thread | None = None
        self._watcher: threading.Thread | None = None   # follows a job another process runs (torchrun)
        self._ticket: Ticket | None = None    # its place in the scheduler's queue, then its grant
        self.grant: Grant | None = None       # what the scheduler gave its current run
        self.exception: BaseException | None = None

    def is_owned_here(self) -> bool:
        """True when a thread of this process runs the job, or launched it (torchrun) and follows it."""
        return any(t is not None and t.is_alive() for t in (self._thread, self._watcher))

    # ---- the scheduler's queue -----------------------------------------------------------------
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

    # ---- running -------------------------------------------------------------------------------
    def start(self, work: Callable[[Self], None], on_failure: Callable[[Self], None] | None = None,
              request: Request | None = None, scheduler: Scheduler | None = None) -> Self:
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
        with JobRunner._live_lock:
            JobRunner._live[str(self.dir.resolve())] = self
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
            self.emit(events.queue(position, ticket.request.describe()))
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

    def _run(self, work: Callable[[Self], None], on_failure: Callable[[Self], None] | None) -> None:
        if self.wait_for_resources():
            self.set_status(RUNNING)
            self.run_to_end(work, on_failure)

    def run_to_end(self, work: Callable[[Self], None], on_failure: Callable[[Self], None] | None = None,
                   *, writes: bool = True) -> str:
        """The one path by which a job's work ends, for a thread here and a torchrun worker alike: returns
        Done, Aborted (``JobAborted``) or Error (anything else, its traceback in the log) and, when this
        process ``writes`` the job's files (a torchrun's rank 0, a thread), records it with :meth:`end`."""
        message = None
        try:
            work(self)
        except JobAborted:
            status = ABORTED
        except BaseException as exc:  # noqa: BLE001 - every failure must end the job in Error
            self.exception, status = exc, ERROR
            message = str(exc) if isinstance(exc, DigitsError) else f"{type(exc).__name__}: {exc}"
            if writes:
                try:
                    self.log("ERROR " + traceback.format_exc().rstrip(), self.error_log)
                except OSError:
                    pass
        else:
            status = DONE
        if writes:
            self.end(status, message, on_failure if status != DONE else None)
        return status

    def end(self, status: str, error: str | None = None,
            on_failure: Callable[[Self], None] | None = None) -> None:
        """Write a final status, in the one order: the cleanup (``on_failure``: partial databases) first,
        then the scheduler's resources go back, then the status, so whoever sees it sees them free."""
        if on_failure is not None:
            try:
                on_failure(self)
            except Exception as cleanup_exc:  # noqa: BLE001 - report, but keep the original error
                error = f"{error or status}\n(cleanup also failed: {cleanup_exc})"
        self.release_resources()
        self.set_status(status, error=error)

    # ---- stopping and waiting ------------------------------------------------------------------
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
