"""job.wait() on the main thread keeps the UI pump running (issue 11, defect 1: charts frozen while a cell waits)."""
from __future__ import annotations

import threading
import time

import pytest

from digits_widgets.store import jobs as J
from digits_widgets.store import waiting
from digits_widgets.ui import pump as pump_mod


@pytest.fixture
def manual_pump(monkeypatch):
    """The module's one pump, in manual mode (no kernel loop: only tick() and the wait hook drain it)."""
    pump = pump_mod.Pump(find_loop=lambda: None)
    monkeypatch.setattr(pump_mod, "_pump", pump)
    assert waiting.get_wait_hook() is pump_mod._wait_hook   # registered by importing the ui pump
    return pump


def _chatty_job(seen: threading.Event, limit: float = 3.0):
    """A job that emits metric events until a watcher has seen some (or ``limit`` seconds pass)."""
    job = J.create_job("model", "generic", "chatty")

    def work(j: J.Job) -> None:
        end = time.monotonic() + limit
        step = 0
        while not seen.is_set() and time.monotonic() < end:
            step += 1
            j.emit({"type": "metric", "phase": "train", "step": step, "loss": 1.0 / step})
            time.sleep(0.02)
        time.sleep(0.3)   # still running a little after the watcher saw its batches
    return job, work


def test_wait_on_main_thread_runs_the_pump_while_the_job_runs(manual_pump):
    seen = threading.Event()
    job, work = _chatty_job(seen)
    batches: list[tuple[int, bool]] = []

    def handler(events: list[dict]) -> None:
        batches.append((len(events), job.is_running()))
        seen.set()

    stop = manual_pump.watch(job, handler)
    try:
        t0 = time.monotonic()
        job.start(work)
        assert job.wait(timeout=10) == J.DONE
        elapsed = time.monotonic() - t0
    finally:
        stop()
    assert batches, "the pump never ran while wait() blocked"
    assert batches[0][1], "the first batch arrived only after the job had ended"
    assert elapsed < 2.5, f"the job waited for its {3.0}s limit: the watcher saw nothing while it ran ({elapsed:.2f}s)"


def test_wait_from_another_thread_does_not_run_the_hook(manual_pump, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(manual_pump, "tick", lambda force=False: calls.append(threading.current_thread().name))
    job = J.create_job("model", "generic", "quiet")
    job.start(lambda j: time.sleep(0.6))
    result: list[str] = []
    waiter = threading.Thread(target=lambda: result.append(job.wait(timeout=10)), name="not-main")
    waiter.start()
    waiter.join(10)
    assert result == [J.DONE]
    assert calls == []


def test_a_failing_hook_never_breaks_wait(monkeypatch):
    def broken() -> None:
        raise RuntimeError("a broken view")
    previous = waiting.set_wait_hook(broken)
    try:
        job = J.create_job("model", "generic", "robust")
        job.start(lambda j: time.sleep(0.5))
        assert job.wait(timeout=10) == J.DONE
        waiting.pumped_sleep(0.3)   # the sliced sleep swallows it too
    finally:
        waiting.set_wait_hook(previous)


def test_wait_times_out_in_slices(manual_pump):
    gate = threading.Event()
    job = J.create_job("model", "generic", "slow")
    job.start(lambda j: gate.wait(5))
    t0 = time.monotonic()
    try:
        assert job.wait(timeout=0.5) in J.ACTIVE
        assert 0.45 <= time.monotonic() - t0 < 1.5
    finally:
        gate.set()
        job.wait(5)
