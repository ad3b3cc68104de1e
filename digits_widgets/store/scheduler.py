"""Sharing the machine between jobs: GPUs by index, CPU training slots and a small dataset pool.

DIGITS' scheduler gave every task the resources it asked for, or left it Waiting until they were free.
Here every job started with a :class:`Request` takes a ticket when it is started (so the queue keeps the
order of the calls) and its thread blocks in :meth:`Scheduler.wait` until the ticket is granted, the job
is aborted, or never. The rules:

- **Strict FIFO per resource.** A waiting job is never overtaken by a later job that wants any of the same
  resources, even one that would fit now; a later job that wants only other resources may start. A request
  for "N GPUs, next available" wants every GPU, so it holds back later GPU jobs until it starts.
  DIGITS let any task that fit start; FIFO is easier to predict (nobody starves behind small jobs).
- **One training per GPU** unless both sides ask to share (``share=True``): a sharing job may join a GPU that
  only sharing jobs use.
- **Pools.** ``cpu_slots`` trainings on the CPU at once (``$DIGITS_CPU_SLOTS``, default 2: two trainings
  already share the cores; more only slow each other down), ``dataset_slots`` dataset jobs at once
  (``$DIGITS_DATASET_SLOTS``, default 2, DIGITS' ``create_db_task_pool``).
- **Freed before the end is written.** ``Job`` releases its grant before it writes Done, Error or Aborted,
  so whoever waited for that status finds the resource free.

The store never imports torch: the GPU count is handed in by the training layer (``detect_gpus``) the first
time a training asks, or set with :func:`configure` (tests use fake counts; nothing here touches CUDA).
One scheduler per process (kernel): two kernels on one machine do not see each other's jobs.
"""
from __future__ import annotations

import itertools
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import OptionError

CPU, GPU, DATASET = "cpu", "gpu", "dataset"
POOLS = (CPU, GPU, DATASET)
DEFAULT_CPU_SLOTS = 2
DEFAULT_DATASET_SLOTS = 2
_POLL = 0.5   # seconds between looks at the abort flag while waiting (an abort also wakes the wait at once)


def _env_int(name: str, default: int) -> int:
    """A positive integer from the environment, else ``default``; a bad value names the variable."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise OptionError(f"${name} must be a whole number of slots (got {text!r})", field=name) from None
    if value < 1:
        raise OptionError(f"${name} must be at least 1 (got {value})", field=name)
    return value


@dataclass(frozen=True)
class Request:
    """What a job needs to run: a CPU training slot, a dataset slot, or GPUs (``gpus`` by index, else
    ``count`` of the next available). ``share``: may run beside other sharing trainings on its GPUs."""

    pool: str = CPU
    gpus: tuple[int, ...] = ()
    count: int = 1
    share: bool = False

    def __post_init__(self) -> None:
        if self.pool not in POOLS:
            raise ValueError(f"unknown resource pool {self.pool!r}")
        object.__setattr__(self, "gpus", tuple(int(i) for i in self.gpus))
        if self.gpus:
            object.__setattr__(self, "count", len(self.gpus))   # by index: the count follows

    def describe(self) -> str:
        """For people: 'GPU 0 and 2', '2 GPUs (next available)', 'a CPU training slot', ..."""
        if self.pool == CPU:
            return "a CPU training slot"
        if self.pool == DATASET:
            return "a dataset slot"
        if self.gpus:
            names = [str(i) for i in self.gpus]
            return ("GPU " if len(names) == 1 else "GPUs ") + (
                names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1])
        return "a GPU (next available)" if self.count == 1 else f"{self.count} GPUs (next available)"


@dataclass(frozen=True)
class Grant:
    """What a job was given: its pool and, for GPU jobs, the GPU indices (as this process numbers them)."""

    pool: str
    gpus: tuple[int, ...] = ()


@dataclass(eq=False)
class Ticket:
    """One job's place in the queue, then its hold on what it was granted."""

    scheduler: "Scheduler"
    job_id: str
    request: Request
    seq: int
    grant: Grant | None = None
    done: bool = False          # released, or cancelled before it was granted
    on_move: Callable[[int | None], None] | None = None   # told its new place when a job ahead leaves the queue

    @property
    def waiting(self) -> bool:
        return self.grant is None and not self.done


class Scheduler:
    """Hands out resources to jobs, first come first served per resource (see the module's notes).

    ``gpus``: how many GPUs (None: ask ``detect_gpus`` at the first GPU question); ``cpu_slots``,
    ``dataset_slots``: pool sizes (None: ``$DIGITS_CPU_SLOTS`` / ``$DIGITS_DATASET_SLOTS`` or 2).
    """

    def __init__(self, gpus: int | None = None, cpu_slots: int | None = None,
                 dataset_slots: int | None = None) -> None:
        self._cond = threading.Condition()
        self._seq = itertools.count(1)
        self._tickets: list[Ticket] = []      # waiting and held, in submission order
        self._gpus: int | None = None
        self.configure(gpus=gpus,
                       cpu_slots=cpu_slots if cpu_slots is not None else _env_int("DIGITS_CPU_SLOTS",
                                                                                  DEFAULT_CPU_SLOTS),
                       dataset_slots=dataset_slots if dataset_slots is not None else _env_int(
                           "DIGITS_DATASET_SLOTS", DEFAULT_DATASET_SLOTS))

    # ---- resources -------------------------------------------------------------------------------
    def configure(self, gpus: int | None = None, cpu_slots: int | None = None,
                  dataset_slots: int | None = None) -> "Scheduler":
        """Change the resources (None leaves one as it is); waiting jobs that now fit start."""
        for name, value in (("gpus", gpus), ("cpu_slots", cpu_slots), ("dataset_slots", dataset_slots)):
            if value is not None and (not isinstance(value, int) or value < (0 if name == "gpus" else 1)):
                raise OptionError(f"{name} must be a whole number, at least {0 if name == 'gpus' else 1} "
                                  f"(got {value!r})", field=name)
        with self._cond:
            if gpus is not None:
                self._gpus = gpus
            if cpu_slots is not None:
                self.cpu_slots = cpu_slots
            if dataset_slots is not None:
                self.dataset_slots = dataset_slots
            self._dispatch()
        return self

    def gpu_count(self, detect: Callable[[], int] | None = None) -> int:
        """How many GPUs there are; the first call with ``detect`` asks it (the training layer passes
        ``torch.cuda.device_count``) when no count was configured. 0 when unknown and not detectable."""
        with self._cond:
            if self._gpus is None and detect is not None:
                self._gpus = int(detect())
            return self._gpus or 0

    def check(self, request: Request) -> None:
        """Refuse at once a request that could never be granted here (OptionError naming the option)."""
        if request.pool != GPU:
            return
        n = self.gpu_count()
        have = f"this machine has {n} GPU{'s' if n != 1 else ''}" + (f" (0-{n - 1})" if n > 1 else "")
        missing = [i for i in request.gpus if not 0 <= i < n]
        if missing:
            raise OptionError(f"GPU {', '.join(map(str, missing))} does not exist: {have}", field="gpus")
        if len(set(request.gpus)) != len(request.gpus):
            raise OptionError(f"gpus lists a GPU twice ({list(request.gpus)})", field="gpus")
        if not request.gpus and not 1 <= request.count <= n:
            raise OptionError(f"The training asks for {request.count} GPUs but {have}", field="gpus")

    # ---- the queue -------------------------------------------------------------------------------
    def submit(self, job_id: str, request: Request) -> Ticket:
        """Take a place in the queue (granted at once when the resources are free and nobody waits)."""
        self.check(request)
        with self._cond:
            ticket = Ticket(self, job_id, request, next(self._seq))
            self._tickets.append(ticket)
            self._dispatch()
            return ticket

    def wait(self, ticket: Ticket, cancelled: Callable[[], bool] = lambda: False,
             timeout: float | None = None) -> Grant | None:
        """Block until ``ticket`` is granted (returns the grant) or ``cancelled()`` turns true or the
        ``timeout`` passes (returns None, and the ticket leaves the queue)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if cancelled() or ticket.done or (deadline is not None and time.monotonic() >= deadline):
                    self._drop(ticket)
                    return None
                if ticket.grant is not None:
                    return ticket.grant
                left = _POLL if deadline is None else min(_POLL, max(0.0, deadline - time.monotonic()))
                self._cond.wait(left)

    def release(self, ticket: Ticket | None) -> None:
        """Give back what ``ticket`` holds (or leave the queue); safe to call twice."""
        if ticket is None:
            return
        with self._cond:
            self._drop(ticket)

    def wake(self) -> None:
        """Make waiting threads look at their abort flags now (``Job.abort`` calls it)."""
        with self._cond:
            self._cond.notify_all()

    def position(self, ticket: Ticket | None) -> int | None:
        """1-based place among the waiting jobs that want any of the same resources; None once granted."""
        with self._cond:
            if ticket is None or not ticket.waiting:
                return None
            ahead = [t for t in self._tickets if t.waiting and t.seq < ticket.seq
                     and self._conflict(t.request, ticket.request)]
            return len(ahead) + 1

    def ticket_for(self, job_id: str) -> Ticket | None:
        """The ticket a job holds or waits with (for views of the job made from its directory)."""
        with self._cond:
            return next((t for t in reversed(self._tickets) if t.job_id == job_id), None)

    def snapshot(self) -> dict[str, Any]:
        """Who holds what and who waits, for people and tests: {'held': {job: grant}, 'waiting': [jobs]}."""
        with self._cond:
            return {"held": {t.job_id: t.grant for t in self._tickets if t.grant is not None},
                    "waiting": [t.job_id for t in self._tickets if t.waiting],
                    "gpus": self._gpus or 0, "cpu_slots": self.cpu_slots, "dataset_slots": self.dataset_slots}

    # ---- granting (under the lock) -----------------------------------------------------------------
    def _drop(self, ticket: Ticket) -> None:
        ticket.done = True
        if ticket in self._tickets:
            self._tickets.remove(ticket)
            self._dispatch()
            for t in self._tickets:
                if t.waiting and t.on_move is not None:
                    t.on_move(self.position(t))   # the job's event for its views (it must not block)
        self._cond.notify_all()

    @staticmethod
    def _conflict(a: Request, b: Request) -> bool:
        """Do two requests want some resource in common (so the later must wait behind the earlier)?"""
        if a.pool != b.pool:
            return False
        if a.pool != GPU or not a.gpus or not b.gpus:
            return True
        return bool(set(a.gpus) & set(b.gpus))

    def _free_gpus(self, share: bool) -> list[int]:
        """GPUs a new training may use now, least used first: unused ones, or (sharing) ones that only
        sharing trainings use."""
        users: dict[int, list[Ticket]] = {i: [] for i in range(self._gpus or 0)}
        for t in self._tickets:
            if t.grant is not None:
                for i in t.grant.gpus:
                    users.setdefault(i, []).append(t)
        ok = [i for i, held in users.items()
              if not held or (share and all(t.request.share for t in held))]
        return sorted(ok, key=lambda i: (len(users[i]), i))

    def _dispatch(self) -> None:
        """Grant waiting tickets in submission order. A ticket that cannot start holds back later ones that
        want any of its resources: its pool (CPU, dataset), its GPUs by index, or, for "N GPUs, next
        available", every GPU; a later count request may still take GPUs that no earlier waiter named."""
        used = {CPU: 0, DATASET: 0}
        for t in self._tickets:
            if t.grant is not None and t.grant.pool in used:
                used[t.grant.pool] += 1
        limits = {CPU: self.cpu_slots, DATASET: self.dataset_slots}
        blocked_pools: set[str] = set()
        named: set[int] = set()       # GPUs that earlier waiting tickets asked for by index
        any_gpu = False               # an earlier "next available" ticket waits: it may want any GPU
        granted = False
        for t in self._tickets:
            if not t.waiting:
                continue
            req, grant = t.request, None
            if req.pool in limits:
                if req.pool not in blocked_pools and used[req.pool] < limits[req.pool]:
                    used[req.pool] += 1
                    grant = Grant(req.pool)
                else:
                    blocked_pools.add(req.pool)
            elif req.gpus:
                free = self._free_gpus(req.share)
                if not any_gpu and not named & set(req.gpus) and all(i in free for i in req.gpus):
                    grant = Grant(GPU, req.gpus)
                else:
                    named |= set(req.gpus)
            else:
                free = [i for i in self._free_gpus(req.share) if i not in named]
                if not any_gpu and len(free) >= req.count:
                    grant = Grant(GPU, tuple(sorted(free[:req.count])))
                else:
                    any_gpu = True
            if grant is not None:
                t.grant, granted = grant, True
        if granted:
            self._cond.notify_all()


def ordinal(n: int) -> str:
    """1 → '1st', 2 → '2nd', 11 → '11th', 23 → '23rd'."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def waiting_label(position: int | None) -> str:
    """How a queued job's status reads: 'Waiting (2nd in queue)', or 'Waiting' when not known."""
    return f"Waiting ({ordinal(position)} in queue)" if position else "Waiting"


_default: Scheduler | None = None
_default_lock = threading.Lock()


def default() -> Scheduler:
    """This process's scheduler, made at first use from the environment."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Scheduler()
        return _default


def install(scheduler: Scheduler | None) -> Scheduler | None:
    """Use ``scheduler`` from now on (None: a fresh default at next use); returns the previous one."""
    global _default
    with _default_lock:
        previous, _default = _default, scheduler
        return previous


def configure(gpus: int | None = None, cpu_slots: int | None = None,
              dataset_slots: int | None = None) -> Scheduler:
    """``digits_widgets.store.scheduler.configure(cpu_slots=1)``: resize this process's pools (None keeps one)."""
    return default().configure(gpus=gpus, cpu_slots=cpu_slots, dataset_slots=dataset_slots)
