"""The UI pump: batches per tick, main thread only, survives bad handlers, and works in a real kernel."""
from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time

import ipywidgets as widgets
import pytest

from digits_widgets.ui.pump import Pump, get_pump


class Emitter:
    """A job-like object: anything with subscribe/unsubscribe can be watched."""

    def __init__(self) -> None:
        self.queues: list[queue.SimpleQueue] = []

    def subscribe(self) -> queue.SimpleQueue:
        q: queue.SimpleQueue = queue.SimpleQueue()
        self.queues.append(q)
        return q

    def unsubscribe(self, q: queue.SimpleQueue) -> None:
        self.queues.remove(q)

    def emit(self, **event) -> None:
        for q in list(self.queues):
            q.put(event)


def manual_pump() -> Pump:
    return Pump(find_loop=lambda: None)


def test_get_pump_is_one_per_process_and_idle_outside_a_kernel():
    assert get_pump() is get_pump()
    assert get_pump().loop is None, "no kernel here: the pump waits for tick()"


def test_tick_delivers_each_watch_one_batch_and_skips_empty_queues():
    pump, job = manual_pump(), Emitter()
    batches: list[list[dict]] = []
    stop = pump.watch(job, batches.append)
    for i in range(5):
        job.emit(type="progress", done=i)
    assert pump.tick() == 5
    assert [[e["done"] for e in b] for b in batches] == [[0, 1, 2, 3, 4]]
    assert pump.tick() == 0 and len(batches) == 1, "no events, no call"
    stop()
    assert job.queues == [], "stop() unsubscribes"
    job.emit(type="progress", done=9)
    assert pump.tick() == 0 and len(batches) == 1


def test_a_failing_handler_is_logged_and_the_others_still_run(caplog):
    pump, job = manual_pump(), Emitter()
    got = []

    def broken(events):
        raise ValueError("boom")
    pump.watch(job, broken)
    pump.watch(job, got.extend)
    job.emit(type="log", line="x")
    with caplog.at_level(logging.ERROR, logger="digits_widgets.ui.pump"):
        pump.tick()
    assert [e["line"] for e in got] == ["x"]
    assert "boom" in caplog.text
    job.emit(type="log", line="y")
    pump.tick()
    assert [e["line"] for e in got] == ["x", "y"], "the pump keeps going after a handler failed"


def test_handlers_run_inside_hold_sync_one_message_per_widget(monkeypatch):
    sent = []
    original = widgets.Widget._send
    monkeypatch.setattr(widgets.Widget, "_send",
                        lambda self, msg, buffers=None: (sent.append(msg), original(self, msg, buffers)))
    bar = widgets.IntProgress(max=1000)
    pump, job = manual_pump(), Emitter()

    def handler(events):
        for e in events:   # a careless handler that sets the trait once per event
            bar.value = e["done"]
    pump.watch(job, handler, hold=[bar])
    for i in range(1, 301):
        job.emit(type="progress", done=i)
    sent.clear()
    pump.tick()
    assert len(sent) == 1 and sent[0]["state"] == {"value": 300}


def test_a_round_holds_the_widgets_of_every_watch_together_one_message_per_widget(monkeypatch):
    """Two views (or a view and its catch-up timer) that touch one widget in a round: it still sends once."""
    sent = []
    original = widgets.Widget._send
    monkeypatch.setattr(widgets.Widget, "_send",
                        lambda self, msg, buffers=None: (sent.append(msg), original(self, msg, buffers)))
    shared = widgets.HTML()
    pump, a, b = manual_pump(), Emitter(), Emitter()
    pump.watch(a, lambda events: setattr(shared, "value", f"a{len(events)}"), hold=[shared])
    pump.watch(b, lambda events: setattr(shared, "value", f"a and b{len(events)}"), hold=[shared])
    pump.after(0, lambda: setattr(shared, "description", "timer"), hold=[shared])
    a.emit(type="log")
    b.emit(type="log")
    sent.clear()
    pump.tick()
    assert len(sent) == 1 and sent[0]["state"] == {"value": "a and b1", "description": "timer"}
    sent.clear()
    pump.tick()
    assert sent == [], "nothing changed: nothing sent"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_after_runs_once_on_the_pump_clock_and_can_be_cancelled():
    clock = FakeClock()
    pump = Pump(find_loop=lambda: None, clock=clock)
    calls = []
    pump.after(1.0, lambda: calls.append("late"))
    cancel = pump.after(0.5, lambda: calls.append("cancelled"))
    pump.tick()
    assert calls == [], "not due on the pump's clock"
    cancel()
    clock.now += 1.0
    pump.tick()
    pump.tick()
    clock.now += 5
    pump.tick()
    assert calls == ["late"], "one-shot: it runs once, in the first round it is due"
    assert not pump.active, "a one-shot that ran is no longer scheduled"


def test_every_runs_when_due_and_cancel_stops_it():
    pump = manual_pump()
    calls = []
    cancel = pump.every(3600, lambda: calls.append(1))
    pump.tick()
    assert calls == [], "not due yet"
    pump.tick(force=True)
    assert calls == [1]
    cancel()
    pump.tick(force=True)
    assert calls == [1]
    with pytest.raises(ValueError):
        pump.every(0, lambda: None)


def test_tick_refuses_other_threads():
    pump = manual_pump()
    errors = []
    t = threading.Thread(target=lambda: errors.append(pytest.raises(RuntimeError, pump.tick)))
    t.start()
    t.join(10)
    assert errors and "main thread" in str(errors[0].value)


def test_timer_on_an_event_loop_drains_on_the_loop_thread_at_most_5_times_a_second():
    """The kernel case without a kernel: an asyncio loop in the main thread, a worker thread emitting fast."""
    job = Emitter()
    calls: list[tuple[float, threading.Thread, int]] = []
    total = 150

    async def main() -> Pump:
        pump = Pump(loop=asyncio.get_running_loop())
        done = asyncio.Event()

        def handler(events):
            calls.append((time.monotonic(), threading.current_thread(), len(events)))
            if events[-1]["done"] == total:
                done.set()
        stop = pump.watch(job, handler)

        def work():
            for i in range(1, total + 1):
                job.emit(type="progress", done=i)
                time.sleep(0.01)
        threading.Thread(target=work, daemon=True).start()
        await asyncio.wait_for(done.wait(), 20)
        stop()
        while pump._timer is not None:   # the timer stops re-arming once nothing is watched
            await asyncio.sleep(0.05)
        return pump

    pump = asyncio.run(main())
    assert sum(n for *_, n in calls) == total, "every event delivered exactly once"
    assert all(t is threading.main_thread() for _, t, _ in calls)
    span = calls[-1][0] - calls[0][0]
    assert len(calls) <= span / 0.2 + 2, f"{len(calls)} batches in {span:.2f}s: more than ~5 per second"
    assert len(calls) >= 3, "batches arrive while the worker still runs, not all at the end"
    assert not pump.active


# ---- a real kernel ---------------------------------------------------------------------------------
SETUP = "import ipywidgets, queue, threading, time\nfrom digits_widgets.ui.pump import get_pump"
CELL = '''
class Emitter:
    def __init__(self):
        self.queues = []
    def subscribe(self):
        q = queue.SimpleQueue(); self.queues.append(q); return q
    def unsubscribe(self, q):
        self.queues.remove(q)
    def run(self, n, dt):
        for i in range(1, n + 1):
            for q in list(self.queues):
                q.put({"type": "progress", "done": i})
            time.sleep(dt)

bar = ipywidgets.IntProgress(max=200)
em = Emitter()
get_pump().watch(em, lambda events: setattr(bar, "value", events[-1]["done"]), hold=[bar])
threading.Thread(target=em.run, args=(200, 0.01), daemon=True).start()
print("MODEL", bar.model_id, flush=True)
'''


def run_cell(kc, code: str, timeout: float = 60) -> tuple[dict, list[dict]]:
    """Execute ``code``; return its execute_reply and the iopub messages seen until the kernel was idle."""
    msg_id = kc.execute(code)
    reply = kc.get_shell_msg(timeout=timeout)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=timeout)
    seen = []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        seen.append(msg)
        if (msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle"
                and msg["parent_header"].get("msg_id") == msg_id):
            return reply, seen


@pytest.fixture
def kernel():
    from jupyter_client.manager import start_new_kernel
    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=60)
    try:
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_pump_updates_widgets_from_a_real_kernel_while_it_is_idle(kernel):
    reply, _ = run_cell(kernel, SETUP)
    assert reply["content"]["status"] == "ok"
    started = time.monotonic()
    reply, seen = run_cell(kernel, CELL)
    returned = time.monotonic() - started
    assert reply["content"]["status"] == "ok", reply["content"]
    assert returned < 5, f"the cell must return at once (took {returned:.1f}s)"
    text = "".join(m["content"].get("text", "") for m in seen if m["msg_type"] == "stream")
    model_id = text.split("MODEL", 1)[1].split()[0]

    values, times = [], []
    deadline = time.monotonic() + 15
    while (not values or values[-1] < 200) and time.monotonic() < deadline:
        try:
            msg = kernel.get_iopub_msg(timeout=1)
        except queue.Empty:
            continue
        data = msg["content"].get("data", {})
        if (msg["msg_type"] == "comm_msg" and msg["content"].get("comm_id") == model_id
                and data.get("method") == "update" and "value" in data.get("state", {})):
            values.append(data["state"]["value"])
            times.append(time.monotonic())
    assert values and values[-1] == 200, f"updates seen after the cell returned: {values}"
    assert values == sorted(values) and len(values) >= 3, values
    assert values[0] < 200, "the cell returned while the worker still ran; updates came while idle"
    span = times[-1] - times[0]
    assert len(values) <= span / 0.2 + 3, f"{len(values)} updates in {span:.2f}s: more than ~5 per second"
