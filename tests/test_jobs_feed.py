"""store.jobs_feed: the jobs directory followed by stats, re-reading only the job.json files that changed."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

from digits_widgets.store.jobs import create_job, write_json_atomic
from digits_widgets.store.jobs_feed import JobsFeed


@pytest.fixture
def opened(opened_job_files):
    return opened_job_files


def test_new_jobs_are_added_and_an_unchanged_directory_reads_no_job_json(jobs_root, opened):
    feed = JobsFeed()
    assert not feed.poll() and feed.jobs == {}, "no jobs directory yet: nothing, and no error"
    a = create_job("dataset", "gradients", "a")
    b = create_job("model", "regression", "b", parents=[a.id])
    change = feed.poll()
    assert set(change.added) == {a.id, b.id} and not change.changed and not change.removed
    assert feed.jobs[b.id].parents == [a.id] and feed.jobs[a.id].kind == "dataset"
    opened.clear()
    for _ in range(3):
        assert not feed.poll()
    assert opened == [], "each poll stats the job.json files; none is read again"
    c = create_job("dataset", "gradients", "c")
    opened.clear()
    change = feed.poll()
    assert list(change.added) == [c.id] and not change.changed
    assert [p for p in opened if not p.startswith(str(c.dir))] == [], "only the new job's record is read"


def test_a_job_json_rewritten_by_another_writer_is_picked_up():
    job = create_job("model", "regression", "before")
    feed = JobsFeed()
    feed.poll()
    write_json_atomic(job.path("job.json"), dict(job.record, name="after", notes="from elsewhere"))
    change = feed.poll()
    assert list(change.changed) == [job.id] and not change.added
    assert change.changed[job.id].name == "after" and feed.jobs[job.id].notes == "from elsewhere"
    assert not feed.poll()


def test_a_deleted_job_disappears_and_other_folders_are_no_jobs(jobs_root):
    keep, gone = create_job("dataset", "gradients", "keep"), create_job("dataset", "gradients", "gone")
    (jobs_root / "not-a-job").mkdir()
    (jobs_root / "stray.txt").write_text("x")
    feed = JobsFeed()
    assert set(feed.poll().added) == {keep.id, gone.id}
    shutil.rmtree(gone.dir)
    change = feed.poll()
    assert list(change.removed) == [gone.id] and change.removed[gone.id].name == "gone"
    assert set(feed.jobs) == {keep.id}
    assert not feed.poll()


def test_a_half_written_job_json_is_skipped_until_complete(jobs_root, opened):
    job = create_job("dataset", "gradients", "whole")
    text = (job.dir / "job.json").read_text()
    feed = JobsFeed()
    feed.poll()
    other = jobs_root / "20200101-000000-abcd"
    other.mkdir()
    record = json.loads(text)
    record.update(id=other.name, name="half")
    full = json.dumps(record)
    with open(other / "job.json", "w") as f:   # a writer that does not rename: half of it is there
        f.write(full[: len(full) // 2])
    assert not feed.poll(), "not a job yet, and no error"
    opened.clear()
    assert not feed.poll() and opened == [], "the same half-written file is not parsed again"
    with open(other / "job.json", "w") as f:
        f.write(full)
    change = feed.poll()
    assert list(change.added) == [other.name] and change.added[other.name].name == "half"
    with open(job.dir / "job.json", "w") as f:   # a known job half-rewritten: it stays as it was
        f.write(text[:10])
    assert not feed.poll() and feed.jobs[job.id].name == "whole"
    (job.dir / "job.json").write_text(text.replace('"whole"', '"rewritten"'))
    assert feed.poll().changed[job.id].name == "rewritten"


def test_a_job_this_process_runs_is_its_live_object():
    release = threading.Event()
    job = create_job("dataset", "gradients", "live")
    feed = JobsFeed()
    feed.poll()
    job.start(lambda j: release.wait(30))
    deadline = time.monotonic() + 10
    while job.status != "Running":
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.01)   # polling interval of the start wait
    change = feed.poll()
    assert change.changed[job.id] is job and feed.jobs[job.id].status == "Running"
    release.set()
    assert job.wait(10) == "Done"
    assert feed.poll().changed[job.id] is job and job.status == "Done"


def test_a_job_whose_owner_died_is_settled_and_reported():
    job = create_job("model", "regression", "orphan")
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        record = dict(job.record, owner={"pid": owner.pid, "host": socket.gethostname()})
        record["status_history"] = job.record["status_history"] + [["Running", time.time()]]
        write_json_atomic(job.path("job.json"), record)
        feed = JobsFeed()
        assert feed.poll().added[job.id].status == "Running"
        assert not feed.poll()
    finally:
        owner.kill()
        owner.wait()
    change = feed.poll()
    assert list(change.changed) == [job.id] and change.changed[job.id].status == "Aborted"
    on_disk = json.loads(job.path("job.json").read_text())
    assert on_disk["status_history"][-1][0] == "Aborted" and "is gone" in on_disk["error"]
