"""The training panel: main-thread updates, bounded messages, redraw from disk, following, buttons, PNG."""
from __future__ import annotations

import queue
import socket
import subprocess
import sys
import threading
import time

import ipywidgets as widgets
import numpy as np
import pytest

import digits_widgets as dw
from digits_widgets.store.jobs import create_job, load_job, write_json_atomic
from digits_widgets.ui.pump import Pump
from digits_widgets.ui.series import DecimatedSeries
from digits_widgets.ui.training_panel import TrainingPanel, progress_text
from support import TOWER_REGRESSION

TOWER = TOWER_REGRESSION
BROKEN = TOWER.replace("nn.Linear(c * h * w, 2)", "nn.Linear(3, 2)")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def pump() -> Pump:
    return Pump(find_loop=lambda: None)


def tick_until(pump: Pump, condition, timeout: float = 60.0) -> None:
    """Drain the pump on this (main) thread until ``condition()`` holds; waits on a condition, not a clock."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        pump.tick()
        threading.Event().wait(0.02)
    pump.tick()


# ---- the bounded series ----------------------------------------------------------------------------
def test_decimated_series_stays_bounded_evenly_spaced_and_shows_the_newest_point():
    s = DecimatedSeries(capacity=100)
    for i in range(10_000):
        s.add(i, float(i), i)
    x, y = s.arrays()
    assert len(x) <= 101 and x[-1] == 9999, "bounded, and the newest point is always drawn"
    gaps = np.diff(x[:-1])
    assert (gaps == gaps[0]).all() and gaps[0] == s.stride, "kept points are evenly spaced"
    s.truncate(5000)
    assert s.arrays()[0].max() < 5000 and s.last_key < 5000
    s.add(5000, 1.0, 5000)
    assert s.arrays()[0][-1] == 5000
    s.add(5001, None, 5001)
    s.add(5002, float("nan"), 5002)
    assert s.last_key == 5000, "missing and non-finite values are skipped"


def test_progress_text():
    p = {"done": 12, "total": 24, "eta": 72.4, "stage": "epoch 2/3"}
    assert progress_text(p, 1234.4, 3, running=True) == "epoch 2/3 · 1,234 samples/s · ETA 1:12"
    assert progress_text({"done": 24, "total": 24, "stage": "done"}, None, 3, running=False) == "epoch 3/3"


# ---- threads ------------------------------------------------------------------------------------
def test_widgets_change_only_on_the_main_thread_while_training_runs(grads, pump, monkeypatch):
    changes, sends = [], []
    notify, send = widgets.Widget.notify_change, widgets.Widget._send
    monkeypatch.setattr(widgets.Widget, "notify_change", lambda self, change: (
        changes.append((threading.current_thread(), type(self).__name__, change["name"])), notify(self, change))[1])
    monkeypatch.setattr(widgets.Widget, "_send", lambda self, msg, buffers=None: (
        sends.append(threading.current_thread()), send(self, msg, buffers))[1])
    job = dw.train(grads, TOWER, "m", epochs=3, batch_size=8, lr=0.01, solver="adam", seed=0)
    panel = TrainingPanel(job, pump=pump)
    tick_until(pump, lambda: "Done" in panel.title.value)
    assert changes and sends
    off_main = {(t.name, w, n) for t, w, n in changes if t is not threading.main_thread()}
    assert not off_main, f"widget traits set off the main thread: {off_main}"
    assert all(t is threading.main_thread() for t in sends)
    assert len(panel.lines[1].line.x) == 4, "val at epochs 0, 1, 2, 3"
    assert panel.progress.value == panel.progress.max == 24
    assert panel.abort_button.disabled


# ---- messages -----------------------------------------------------------------------------------
def test_10000_iterations_send_a_bounded_number_of_messages(pump, monkeypatch):
    job = create_job("model", "classification", "synthetic", {"options": {"epochs": 100}})
    panel = TrainingPanel(job, pump=pump)
    assert panel.classification, "no dataset on disk: the model's own type says classification"
    sent = []
    original = widgets.Widget._send
    monkeypatch.setattr(widgets.Widget, "_send",
                        lambda self, msg, buffers=None: (sent.append(type(self).__name__), original(self, msg, buffers)))
    steps, epochs, per_tick = 10_000, 100, 100
    t0 = time.time() - 10_000
    job.emit({"type": "metric", "phase": "val", "epoch": 0.0, "step": 0, "loss": 2.0, "accuracy": 0.1, "time": t0})
    ticks, per_tick_counts = 0, []
    for step in range(1, steps + 1):
        epoch = step / (steps / epochs)
        job.emit({"type": "metric", "phase": "train", "epoch": epoch, "step": step, "loss": 1 / step,
                  "lr": 0.01, "samples_per_s": 500.0, "time": t0 + step})
        job.emit({"type": "progress", "done": step, "total": steps, "rate": 50.0, "eta": (steps - step) / 50,
                  "stage": f"epoch {int(np.ceil(epoch))}/{epochs}"})
        if step % per_tick == 0:
            job.emit({"type": "metric", "phase": "val", "epoch": epoch, "step": step, "loss": 1 / step,
                      "accuracy": min(1.0, step / steps), "time": t0 + step + 0.5})
            job.emit({"type": "log", "line": f"step {step}"})
            before = len(sent)
            pump.tick()
            ticks += 1
            per_tick_counts.append(len(sent) - before)
    assert ticks == 100
    assert max(per_tick_counts) <= 12, f"messages per tick: {max(per_tick_counts)}"
    assert len(sent) <= 12 * ticks, f"{len(sent)} messages for {ticks} ticks"
    job.set_status("Done")   # lines may lag ~1 s under their byte budget; an ended job's charts are complete
    pump.tick()
    train_line, val_line, acc_line, lr_line = (s.line for s in panel.lines)
    assert len(train_line.x) <= 1001 and len(lr_line.x) <= 1001, "per-iteration series are decimated"
    assert train_line.x[-1] == epochs and len(train_line.x) == len(train_line.y)
    assert len(val_line.x) == 101 and len(acc_line.y) == 101, "every validation point is kept"
    assert acc_line.y[-1] == pytest.approx(100.0)
    assert panel.progress.value == steps and "epoch 100/100" in panel.progress_label.value
    assert panel.log_html.value.count("step ") == 10, "the last 10 log lines"


# ---- from disk: restart, finished jobs, errors ------------------------------------------------------
def test_after_a_restart_the_panel_redraws_from_disk_and_shows_the_png(grads, pump):
    job = dw.train(grads, TOWER, "m", epochs=2, batch_size=8, lr=0.01, solver="adam", seed=0)
    assert job.wait(120) == "Done"
    live = TrainingPanel(job, pump=pump)
    dw.store.jobs.Job._live.clear()                    # what a kernel restart forgets
    reopened = dw.job(job.id)
    assert reopened is not job
    panel = TrainingPanel(reopened, pump=pump)
    for a, b in zip(live.lines, panel.lines):
        assert np.array_equal(a.line.x, b.line.x) and np.array_equal(a.line.y, b.line.y)
    assert len(panel.lines[0].line.x) == len(job.metrics("train"))
    assert "Done" in panel.title.value and "Running" in panel.status.value
    assert "Training 2 epochs" in panel.log_html.value
    assert panel.abort_button.disabled and panel.pause_button.disabled and panel.resume_button.disabled
    bundle = panel.curves_bundle()
    assert bundle["image/png"] and panel.png.startswith(PNG_MAGIC)
    assert panel.figure in panel.children, "no PNG output shown yet: the live charts are the curves"
    panel._ipython_display_()                          # the widget and the PNG output: one set of curves
    assert panel.figure not in panel.children and panel.lr_figure not in panel.children
    assert panel.figure.layout.display is None   # removed, not hidden: a hidden bqplot draws negative sizes


def test_an_error_shows_its_message_in_red_and_the_traceback(grads, pump):
    job = dw.train(grads, BROKEN, "broken", epochs=1, batch_size=8)
    assert job.wait(120, raise_on_error=False) == "Error"
    for shown in (job, load_job(job.dir)):           # live (job.exception) and from the logs
        panel = TrainingPanel(shown, pump=pump)
        html = panel.status.value
        assert "color:#c62828" in html and "shapes cannot be multiplied" in html
        assert "<details><summary>Traceback</summary>" in html and "Traceback (most recent call last)" in html


def test_a_job_whose_process_died_shows_why_it_is_aborted(pump):
    job = create_job("model", "regression", "orphan", {"options": {"epochs": 2}})
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(30)
    record = dict(job.record, owner={"pid": gone.pid, "host": socket.gethostname()})
    record["status_history"] = job.record["status_history"] + [["Running", time.time()]]
    write_json_atomic(job.path("job.json"), record)
    panel = TrainingPanel(load_job(job.dir), pump=pump)
    assert "Aborted" in panel.title.value and f"process {gone.pid}" in panel.status.value
    assert "resume it" in panel.status.value


def test_a_job_run_by_another_process_is_followed_through_its_directory(pump):
    job = create_job("model", "regression", "external", {"options": {"epochs": 2}})
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        record = dict(job.record, owner={"pid": owner.pid, "host": socket.gethostname()})
        record["status_history"] = job.record["status_history"] + [["Running", time.time()]]
        write_json_atomic(job.path("job.json"), record)
        reopened = load_job(job.dir)
        assert reopened.is_running() and not reopened.is_owned_here()
        panel = TrainingPanel(reopened, pump=pump)
        with open(job.path("metrics.jsonl"), "a") as f:
            for step in range(1, 5):
                f.write(f'{{"phase": "train", "epoch": {step / 2}, "step": {step}, "loss": {1 / step}, '
                        f'"lr": 0.1, "samples_per_s": 99.0, "time": {time.time()}}}\n')
        tick_until(pump, lambda: len(panel.train_loss) == 4)
        panel.abort_button.click()
        assert job.path("control", "abort").exists(), "Abort reaches the other process through a file"
        record["status_history"].append(["Aborted", time.time()])
        write_json_atomic(job.path("job.json"), record)
        tick_until(pump, lambda: "Aborted" in panel.title.value)
        followers = [t for t in threading.enumerate() if t.name == f"digits-follow-{job.id}"]
        for t in followers:
            t.join(10)
        assert not any(t.is_alive() for t in followers), "the follower ends with the job"
        assert panel.curves_bundle()["image/png"]
    finally:
        owner.kill()
        owner.wait()


def test_pause_resume_and_abort_buttons_while_training_runs(grads, pump):
    job = dw.train(grads, TOWER, "long", epochs=500, batch_size=8, lr=0.01, seed=0)
    panel = TrainingPanel(job, pump=pump)
    tick_until(pump, lambda: job.path("checkpoint.pt").exists())
    panel.pause_button.click()
    assert job.paused and panel.pause_button.disabled and not panel.resume_button.disabled
    assert "(paused)" in panel.title.value
    panel.resume_button.click()
    assert not job.paused and not panel.pause_button.disabled and panel.resume_button.disabled
    panel.abort_button.click()
    tick_until(pump, lambda: "Aborted" in panel.title.value)
    assert not panel.resume_button.disabled, "an aborted job with a checkpoint can be resumed"
    steps = len(job.metrics("train"))
    panel.resume_button.click()                      # job.resume(): same job object, same subscription
    tick_until(pump, lambda: len(job.metrics("train")) > steps + 3)
    panel.abort_button.click()
    tick_until(pump, lambda: "Aborted" in panel.title.value)
    x = panel.lines[0].line.x
    assert (np.diff(x) > 0).all(), "the resumed run replaced what the first logged after its checkpoint"
    assert [s for s, _ in job.status_history].count("Running") == 2


# ---- in a real kernel: the PNG reaches the notebook by display id ----------------------------------
CELL = f'''
import digits_widgets as dw
from IPython.display import display
from digits_widgets.ui.training_panel import TrainingPanel
ds = dw.datasets.gradients("g", train_count=64, val_count=16, image_size=(8, 8), seed=0)
ds.wait(60)
# 30 epochs (about 2 s): long enough that a line outlives its 0.5 s resend interval while it runs
job = dw.train(ds, {TOWER!r}, "m", epochs=30, batch_size=8, lr=0.01, solver="adam", seed=0)
panel = TrainingPanel(job)
display(panel)
print("STATUS", job.status)
'''


def test_in_a_kernel_the_cell_returns_at_once_and_the_png_arrives_when_training_ends():
    from jupyter_client.manager import start_new_kernel
    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=60)
    try:
        msg_id = kc.execute(CELL)
        reply = kc.get_shell_msg(timeout=60)
        assert reply["content"]["status"] == "ok", reply["content"]
        display_id, png, widget_shown, status = None, None, False, ""
        line_updates, deadline = 0, time.monotonic() + 60
        while png is None and time.monotonic() < deadline:
            try:
                msg = kc.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "display_data" and msg["parent_header"].get("msg_id") == msg_id:
                display_id = content.get("transient", {}).get("display_id") or display_id
                widget_shown |= "application/vnd.jupyter.widget-view+json" in content["data"]
            if kind == "stream" and "STATUS" in content["text"]:
                status = content["text"].split("STATUS", 1)[1].strip()
            if kind == "comm_msg" and "x" in content.get("data", {}).get("state", {}):
                line_updates += 1
            if kind == "update_display_data" and "image/png" in content["data"]:
                assert content["transient"]["display_id"] == display_id
                png = content["data"]["image/png"]
        assert status in ("Waiting", "Running"), "the cell returned while training was still running"
        assert widget_shown and display_id and png, "the widget, then an update_display_data with the PNG"
        assert line_updates >= 1, "the charts grew while training ran"
        removed, deadline = False, time.monotonic() + 20
        while not removed and time.monotonic() < deadline:   # the PNG replaces the live charts: curves once
            try:
                msg = kc.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            children = msg["content"].get("data", {}).get("state", {}).get("children") \
                if msg["msg_type"] == "comm_msg" else None
            removed = children is not None and len(children) == 5   # the panel less its two figures
        assert removed, "the live charts (loss and learning rate) leave the panel once the PNG shows"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


@pytest.mark.slow
def test_a_real_torchrun_job_reopened_from_disk_is_followed_live(grads, pump):
    job = dw.train(grads, TOWER, "tr", launcher="torchrun", nproc=1, epochs=3, batch_size=8, lr=0.01, seed=0)
    try:
        reopened = load_job(job.dir)                 # what dw.job(id) gives after a kernel restart
        assert reopened is not job and reopened.process is None
        panel = TrainingPanel(reopened, pump=pump)
        tick_until(pump, lambda: "Done" in panel.title.value or "Error" in panel.title.value, timeout=300)
        assert "Done" in panel.title.value, job.path("torchrun.log").read_text()[-3000:]
        assert len(panel.lines[1].line.x) == 4 and panel.progress.value == panel.progress.max
        assert panel.curves_bundle()["image/png"]
    finally:
        job.abort()
        job.wait(120, raise_on_error=False)
