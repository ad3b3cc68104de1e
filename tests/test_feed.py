"""store.feed: one way to follow a job, whether a thread here runs it or another process writes its directory."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time

import pytest

from digits_widgets.store.feed import DirectoryFeed, job_feed
from digits_widgets.store.jobs import create_job, load_job, write_json_atomic
from digits_widgets.ui.pump import Pump


def _types(events):
    return [e["type"] for e in events]


@pytest.fixture
def elsewhere():
    """A job that a live process of its own claims (Running), and a second view of it that plays that process."""
    job = create_job("model", "regression", "elsewhere", {"options": {"epochs": 2}})
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    record = dict(job.record, owner={"pid": owner.pid, "host": socket.gethostname()})
    record["status_history"] = job.record["status_history"] + [["Running", time.time()]]
    write_json_atomic(job.path("job.json"), record)
    try:
        yield load_job(job.dir), record
    finally:
        owner.kill()
        owner.wait()


def _metric(step: int) -> str:
    return json.dumps({"phase": "train", "epoch": step / 2, "step": step, "loss": 1 / step, "time": 1e9 + step}) + "\n"


def test_a_thread_run_is_fed_from_its_queue_alone():
    go, done = threading.Event(), threading.Event()

    def work(j):
        assert go.wait(10)
        j.path("metrics.jsonl").write_text(_metric(1))   # on disk too: a thread's feed must not repeat it
        j.emit({"type": "metric", **json.loads(_metric(1))})
        j.report_progress(1, 2)
        done.set()

    job = create_job("model", "regression", "here", {})
    job.start(work)
    feed = job_feed(job)
    go.set()
    assert done.wait(10) and job.wait(10) == "Done"
    events = feed.poll()
    assert _types(events).count("metric") == 1 and "progress" in _types(events)
    assert events[-1] == {**events[-1], "type": "status", "status": "Done"}
    assert feed.poll() == [], "the thread has ended: the directory takes over from where it is, with nothing new"
    job.path("metrics.jsonl").open("a").write(_metric(2))
    assert [e["step"] for e in feed.poll()] == [2], "what is written later (another process) is fed"
    feed.close()
    assert feed.poll() == []


def test_a_job_run_elsewhere_is_fed_from_its_directory_from_now_on(elsewhere):
    job, record = elsewhere
    job.path("metrics.jsonl").write_text(_metric(1))
    feed = job_feed(job)
    assert feed.poll() == [], "like subscribe(): what was there before the feed opened is the view's to read"
    with job.path("metrics.jsonl").open("a") as f:
        f.write(_metric(2) + _metric(3)[:10])   # a line being written waits for the next poll
    record["progress"] = {"done": 2, "total": 8, "rate": 1.0, "eta": 6.0, "stage": "epoch 1/2"}
    write_json_atomic(job.path("job.json"), record)
    events = feed.poll()
    assert _types(events) == ["metric", "progress"]
    assert events[0]["step"] == 2 and events[0]["time"] == 1e9 + 2 and events[0]["job"] == job.id
    assert events[1]["done"] == 2 and job.progress["done"] == 2, "the job object is kept current"
    assert feed.poll() == [], "an unchanged progress is not sent again"
    with job.path("metrics.jsonl").open("a") as f:
        f.write(_metric(3)[10:])
    record["status_history"].append(["Done", time.time()])
    write_json_atomic(job.path("job.json"), record)
    events = feed.poll()
    assert _types(events) == ["status", "metric"] and events[0]["status"] == "Done" and events[1]["step"] == 3


def test_a_replaced_metrics_file_is_read_again_and_a_dead_owner_reads_aborted(elsewhere):
    job, record = elsewhere
    job.path("metrics.jsonl").write_text(_metric(1) + _metric(2))
    feed = job_feed(job)
    tmp = job.path(".metrics.tmp")
    tmp.write_text(_metric(1))
    tmp.replace(job.path("metrics.jsonl"))   # a resume trims the file by replacing it
    assert [e["step"] for e in feed.poll()] == [1]
    record["owner"] = {"pid": 2 ** 22 + 12345, "host": socket.gethostname()}   # no such process
    write_json_atomic(job.path("job.json"), record)
    events = feed.poll()
    assert _types(events) == ["status"] and events[0]["status"] == "Aborted"


def test_a_log_file_is_fed_line_by_line_with_its_stamps():
    job = create_job("dataset", "gradients", "logs", {})
    job.set_status("Running")   # a live owner (this process), but no thread of this object runs it
    feed = job_feed(job, metrics=None, log="create.log")
    worker = load_job(job.dir)
    worker.log("Writing 6 train entries", "create.log")
    (event,) = feed.poll()
    assert event["type"] == "log" and event["line"] == "Writing 6 train entries"
    assert abs(event["time"] - time.time()) < 5


def test_a_deleted_job_is_gone_once():
    import shutil
    job = create_job("dataset", "gradients", "deleted", {})
    job.set_status("Running")
    feed = job_feed(job)
    shutil.rmtree(job.dir)
    (event,) = feed.poll()
    assert event["type"] == "gone" and job.id in event["error"]
    assert feed.poll() == []


def test_a_bare_directory_feed_starts_at_the_beginning(elsewhere):
    job, _ = elsewhere
    job.path("metrics.jsonl").write_text(_metric(1))
    events = DirectoryFeed(job).poll()
    assert _types(events) == ["status", "metric"] and events[0]["status"] == "Running"


def test_the_pump_drains_a_feed_as_a_queue_polling_once_a_round(elsewhere):
    job, _ = elsewhere
    pump = Pump(find_loop=lambda: None)
    feed = job_feed(job)
    polls, batches = [], []
    real = feed.poll
    feed.poll = lambda: polls.append(1) or real()
    stop = pump.watch(feed, batches.append)
    job.emit({"type": "log", "line": "queued"})   # a feed carries the job's queue too
    job.path("metrics.jsonl").write_text(_metric(1) + _metric(2))
    assert pump.tick() == 3 and len(polls) == 1
    assert _types(batches[0]) == ["log", "metric", "metric"]
    assert pump.tick() == 0 and len(polls) == 2
    stop()
    assert feed.closed and job._subscribers == []


def test_tail_records_parses_new_json_lines_and_skips_bad_ones(tmp_path):
    from digits_widgets.store.tail import Tail
    path = tmp_path / "metrics.jsonl"
    path.write_text(_metric(1) + "not json\n" + _metric(2)[:5])
    tail = Tail(path)
    assert [r["step"] for r in tail.records()] == [1]
    with path.open("a") as f:
        f.write(_metric(2)[5:])
    assert [r["step"] for r in tail.records()] == [2] and not tail.restarted


def test_the_backlog_is_what_is_on_disk_and_a_metric_is_fed_once():
    job = create_job("model", "regression", "backlog", {})
    feed = job_feed(job)
    job.path("metrics.jsonl").write_text(_metric(1) + _metric(2))   # written, and queued meanwhile
    for step in (1, 2):
        job.emit({"type": "metric", **json.loads(_metric(step))})
    assert [r["step"] for r in feed.backlog()] == [1, 2]
    job.emit({"type": "metric", **json.loads(_metric(3))})
    job.emit({"type": "metric", "phase": "val", "epoch": 1.0, "step": 2, "loss": 0.5, "time": 1e9 + 2})
    events = feed.poll()
    assert [(e["phase"], e["step"]) for e in events] == [("train", 3), ("val", 2)], "per phase, by time"
    job.emit({"type": "metric", **json.loads(_metric(3))})
    assert feed.poll() == [], "fed already"


def test_a_failing_directory_read_loses_no_queued_event_and_the_next_poll_tries_again(elsewhere):
    job, _ = elsewhere
    feed = job_feed(job)
    real = feed.directory.poll

    def broken():
        raise OSError("disk gone for a moment")
    feed.directory.poll = broken
    job.emit({"type": "log", "line": "queued"})
    assert _types(feed.poll()) == ["log"]
    feed.directory.poll = real
    job.path("metrics.jsonl").write_text(_metric(1))
    assert _types(feed.poll()) == ["metric"]
