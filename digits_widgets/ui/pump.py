"""The UI pump: the one place where job events become widget changes, on the kernel's main thread.

Training and dataset threads never touch a widget (ipywidgets' Python-side state has no locks, and
ipykernel 7.0 broke threaded updates outright). They put events on the queues that ``job.subscribe()``
hands out; this pump drains those queues from a timer on the kernel's event loop, at most every
``INTERVAL`` seconds, and hands each watcher its whole batch at once inside ``hold_sync()`` of the widgets
it named, so a burst of 500 metric events costs one message per widget, not 500.

One round, one message per widget: ipywidgets has one comm per widget, so a round cannot be a single
message, but it is at most one per widget. ``tick()`` holds the ``hold`` widgets of every watch that has
events and of every timer that is due, all together for the whole round, so a widget two handlers touch
(or a handler and a catch-up timer, ``after``) still sends once. A widget whose traits end the round
unchanged sends nothing (traitlets does not notify equal values); what changes every round only in ways
no one can see (a progress bar moving less than a pixel, a noisy rate) is for the views to hold back,
and ``after`` lets them show what they held back even when no further event comes.

The clock (``clock``, ``time.monotonic`` by default) times the periodic functions and is what views read
for their own rate limits, so a test or a bench can run a long job on a simulated clock.

Which loop: ipykernel (6 and 7) runs the shell on a tornado ``IOLoop`` wrapping an asyncio loop in the
main thread; ``get_ipython().kernel.io_loop.asyncio_loop`` is that loop, and it is the same object as
``asyncio.get_running_loop()`` seen from a cell (checked against ipykernel 7.4). Callbacks scheduled on
it run between shell messages, so they never race a cell or a button click. Where there is no kernel
(plain Python, a test, a torchrun worker importing ui by accident) the pump schedules nothing and does
its work only when ``tick()`` is called.

The timer is armed only while something is watched or a periodic function is registered, so an idle
kernel does no work. Handler exceptions are logged and swallowed: one broken view must not stop every
other view from updating.

While a cell blocks: the timer cannot fire while a cell runs, so a cell that waits (``job.wait()``,
``wait_for_metrics``, the next cell of a Run All) would freeze the charts. The pump therefore registers
``tick`` as the store's wait hook (``store.waiting``): those waits sleep in 0.2 s slices and drain the
queues between them, on the main thread only (a wait in another thread never runs it). The widget
messages do go out at once: ipykernel hands IOPub sends to its own IOPub thread, not to the blocked
main loop (checked against ipykernel 7.4). Clicks (Abort, Pause) still wait for the cell to end: shell
messages are handled between cells. For a long unrelated user cell (a loop of your own, a
``time.sleep``) nothing can help: no code may update widgets from the main thread while arbitrary user
code runs on it, and other threads must not. The job's files and metrics still advance meanwhile, and
the charts catch up with one batch when the cell ends.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Protocol

from ..store import waiting
from ..store.events import Event

log = logging.getLogger(__name__)

INTERVAL = 0.2          # seconds between drains: ~5 updates a second, under Jupyter's IOPub rate limit
_MIN_DELAY = 0.02       # never spin the loop faster than this for periodic functions


class Watchable(Protocol):
    """What ``Pump.watch`` needs from a job: a queue of later events, and a way to stop receiving them."""

    def subscribe(self) -> "queue.SimpleQueue[dict]": ...

    def unsubscribe(self, q: "queue.SimpleQueue[dict]") -> None: ...


Handler = Callable[[list[Event]], None]   # a batch of events (store.events), oldest first


@dataclass
class _Watch:
    job: Watchable
    queue: "queue.SimpleQueue[dict]"
    handler: Handler
    hold: tuple[Any, ...]


@dataclass
class _Periodic:
    seconds: float
    fn: Callable[[], None]
    due: float
    once: bool = False
    hold: tuple[Any, ...] = ()


def kernel_loop() -> asyncio.AbstractEventLoop | None:
    """The running ipykernel's main-thread event loop, or None outside a kernel."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    io_loop = getattr(getattr(shell, "kernel", None), "io_loop", None)
    loop = getattr(io_loop, "asyncio_loop", None)
    if loop is not None and not loop.is_closed():
        return loop
    kernel = getattr(shell, "kernel", None)  # a plain IPython shell (a terminal, a test) has no kernel loop
    if kernel is not None and threading.current_thread() is threading.main_thread():
        try:   # a kernel without ``io_loop`` (an embedded or future one) still runs cells on a loop
            return asyncio.get_running_loop()
        except RuntimeError:
            return None
    return None


class Pump:
    """Drains watched jobs' event queues on the main thread and calls their handlers with batches."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, interval: float = INTERVAL,
                 find_loop: Callable[[], asyncio.AbstractEventLoop | None] = kernel_loop,
                 clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self.clock = clock
        self._fixed_loop = loop
        self._find_loop = find_loop
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._watches: dict[int, _Watch] = {}
        self._periodic: dict[int, _Periodic] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._ticking = False
        self.ticks = 0          # drains that delivered at least one batch (for tests and diagnostics)

    # ---- the loop --------------------------------------------------------------------------------
    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop the timer runs on; None means manual mode (call ``tick()``)."""
        return self._fixed_loop if self._fixed_loop is not None else self._find_loop()

    @property
    def active(self) -> bool:
        """True while anything is watched or periodic, i.e. while the timer should run."""
        with self._lock:
            return bool(self._watches or self._periodic)

    def _wake(self) -> None:
        """Make sure the timer is armed; safe from any thread (the worker never runs a handler itself)."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._arm, loop)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        """(Re)schedule the timer for the soonest work; runs on the loop's thread only."""
        delay = self._next_delay()
        if self._timer is not None:
            if delay is None or self._timer.when() <= loop.time() + delay + 1e-3:
                return    # already due soon enough (a new watch must not wait for a slow periodic)
            self._timer.cancel()
            self._timer = None
        if delay is not None:
            self._timer = loop.call_later(delay, self._on_timer, loop)

    def _next_delay(self) -> float | None:
        with self._lock:
            delays = [self.interval] if self._watches else []
            now = self.clock()
            delays += [max(p.due - now, _MIN_DELAY) for p in self._periodic.values()]
        return min(delays) if delays else None

    def _on_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        try:
            self.tick()
        except Exception:  # noqa: BLE001 - the pump must outlive anything a tick does
            log.exception("UI pump tick failed")
        finally:
            self._arm(loop)

    # ---- registering -----------------------------------------------------------------------------
    def watch(self, job: Watchable, handler: Handler, hold: Iterable[Any] = ()) -> Callable[[], None]:
        """Call ``handler(events)`` on the main thread with each batch of ``job``'s new events.

        ``hold``: widgets whose changes the handler makes; the pump wraps the call in their
        ``hold_sync()`` so each sends at most one message per batch. Returns ``stop()``.
        """
        q = job.subscribe()
        key = next(self._ids)
        with self._lock:
            self._watches[key] = _Watch(job, q, handler, tuple(hold))
        self._wake()

        def stop() -> None:
            with self._lock:
                watch = self._watches.pop(key, None)
            if watch is not None:
                job.unsubscribe(q)
        return stop

    def every(self, seconds: float, fn: Callable[[], None]) -> Callable[[], None]:
        """Call ``fn()`` on the main thread every ``seconds`` (first call after ``seconds``); returns ``cancel()``."""
        if seconds <= 0:
            raise ValueError(f"every() needs a positive period (got {seconds})")
        return self._schedule(_Periodic(float(seconds), fn, self.clock() + seconds))

    def after(self, seconds: float, fn: Callable[[], None], hold: Iterable[Any] = ()) -> Callable[[], None]:
        """Call ``fn()`` once on the main thread, in the first round at least ``seconds`` from now, inside
        ``hold_sync()`` of ``hold`` (as ``watch``); returns ``cancel()``. For showing what a view held back."""
        return self._schedule(_Periodic(max(0.0, float(seconds)), fn, self.clock() + seconds, True, tuple(hold)))

    def _schedule(self, periodic: _Periodic) -> Callable[[], None]:
        key = next(self._ids)
        with self._lock:
            self._periodic[key] = periodic
        self._wake()

        def cancel() -> None:
            with self._lock:
                self._periodic.pop(key, None)
        return cancel

    # ---- draining --------------------------------------------------------------------------------
    def tick(self, force: bool = False) -> int:
        """Drain every watched queue now and run the periodic functions that are due (all with ``force``).

        Returns the number of events delivered. Must run on the main thread: handlers set widget
        traits. A handler that (indirectly) calls ``tick()`` gets 0 instead of re-entering. Every
        ``hold`` widget of the round is held for the whole round: one message per widget per round.
        """
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("Pump.tick() runs handlers that set widget traits: call it on the main thread")
        if self._ticking:
            return 0
        self._ticking = True
        try:
            with self._lock:
                watches = list(self._watches.items())
            batches = [(key, watch, events) for key, watch in watches if (events := _drain(watch.queue))]
            due = self._take_due(force)
            delivered = 0
            with _hold_round([w for _, watch, _ in batches for w in watch.hold] + [w for p in due for w in p.hold]):
                for key, watch, events in batches:
                    with self._lock:
                        if key not in self._watches:   # stopped by an earlier handler in this tick
                            continue
                    delivered += len(events)
                    self._call(watch.handler, watch.hold, events)
                for p in due:
                    self._call(p.fn, p.hold, None)
            if delivered:
                self.ticks += 1
            return delivered
        finally:
            self._ticking = False

    def _take_due(self, force: bool) -> list[_Periodic]:
        """The timers due now (all with ``force``), rescheduled; one-shot ones are removed."""
        now = self.clock()
        with self._lock:
            due = [(k, p) for k, p in self._periodic.items() if force or p.due <= now]
            for k, p in due:
                if p.once:
                    del self._periodic[k]
                else:
                    p.due = now + p.seconds
        return [p for _, p in due]

    @staticmethod
    def _call(fn: Callable, hold: tuple[Any, ...], events: list[dict] | None) -> None:
        try:
            with contextlib.ExitStack() as stack:
                for widget in hold:
                    stack.enter_context(widget.hold_sync())
                fn() if events is None else fn(events)
        except Exception:  # noqa: BLE001 - logged; the other views keep updating
            log.exception("UI handler %r failed", fn)


@contextlib.contextmanager
def _hold_round(held: list[Any]):
    """``hold_sync()`` of each distinct widget for one round; a send that fails at the end is logged."""
    stack = contextlib.ExitStack()
    seen: set[int] = set()
    for widget in held:
        if id(widget) not in seen:
            seen.add(id(widget))
            stack.enter_context(widget.hold_sync())
    try:
        yield
    finally:
        try:
            stack.close()
        except Exception:  # noqa: BLE001 - the next round tries again; the pump must outlive it
            log.exception("UI pump: sending a round's widget changes failed")


def _drain(q: "queue.SimpleQueue[dict]") -> list[dict]:
    events = []
    while True:
        try:
            events.append(q.get_nowait())
        except queue.Empty:
            return events


_pump: Pump | None = None
_pump_lock = threading.Lock()


def get_pump() -> Pump:
    """The kernel's one pump (created on first use)."""
    global _pump
    with _pump_lock:
        if _pump is None:
            _pump = Pump()
        return _pump


def _wait_hook() -> None:
    """What blocking waits run between slices on the main thread: the timer's work, ``tick()``."""
    if _pump is not None:
        _pump.tick()


waiting.set_wait_hook(_wait_hook)
