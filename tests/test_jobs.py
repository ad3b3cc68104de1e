"""The job store: ids, atomic job.json, status history, reopening from disk, deletion rules."""
from __future__ import annotations

import json
import os
import re
import threading
import time

import pytest

import digits_widgets as dw
from digits_widgets.errors import JobError
from digits_widgets.store import jobs as J


def test_ids_dirs_and_job_json(jobs_root):
    job = J.create_job("dataset", "gradients", "grads", {"train_count": 10})
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", job.id)
    assert job.dir == jobs_root / job.id
    rec = json.loads((job.dir / "job.json").read_text())
    assert rec["kind"] == "dataset" and rec["name"] == "grads" and rec["params"] == {"train_count": 10}
    assert rec["status_history"][0][0] == "Initialized"
    assert not list(job.dir.glob(".*.tmp")), "no temporary file left behind"


def test_group_names_are_kept_on_disk(jobs_root):
    job = J.create_job("model", "generic", "net", group="  tutorials ")
    plain = J.create_job("dataset", "gradients", "grads")
    assert job.group == "tutorials" and plain.group == ""
    assert plain.set_group("lab 2") is plain
    J.Job._live.clear()
    assert dw.job(plain.id).group == "lab 2" and dw.job(job.id).group == "tutorials"
    dw.job(plain.id).set_group("")
    assert dw.job(plain.id).reload().group == ""
    old = J.create_job("dataset", "gradients", "older")   # jobs written before groups had their own field
    old.update_info(group="legacy")
    assert dw.job(old.id).group == "legacy"


def test_default_dir_is_digits_jobs_in_cwd(tmp_path, monkeypatch):
    monkeypatch.delenv("DIGITS_JOBS_DIR")
    monkeypatch.chdir(tmp_path)
    assert J.jobs_dir() == tmp_path / "digits-jobs"


def test_status_history_and_reopen_after_restart(jobs_root):
    job = J.create_job("dataset", "gradients", "grads")
    gate = threading.Event()
    job.start(lambda j: gate.wait(5))
    assert job.status in ("Waiting", "Running")
    gate.set()
    assert job.wait(5) == "Done"
    # a "restarted kernel": forget the live object and read the directory again
    J.Job._live.clear()
    again = dw.job(job.id)
    assert again is not job and isinstance(again, dw.DatasetJob)
    assert [s for s, _ in again.status_history] == ["Initialized", "Waiting", "Running", "Done"]
    times = [t for _, t in again.status_history]
    assert times == sorted(times)
    assert dw.job("grads").id == job.id


def test_error_is_recorded_and_reraised(jobs_root):
    job = J.create_job("dataset", "gradients", "bad")
    cleaned = []

    def work(j):
        raise dw.DatasetError("Folder does not exist: /nowhere", field="folder")

    job.start(work, on_failure=lambda j: cleaned.append(j.status))
    with pytest.raises(dw.DatasetError, match="/nowhere"):
        job.wait(5)
    assert job.status == "Error" and "Folder does not exist: /nowhere" in job.error
    assert cleaned == ["Running"], "cleanup runs before the final status is written"
    assert "Folder does not exist" in (job.dir / "job.log").read_text()
    J.Job._live.clear()
    reopened = dw.job(job.id)
    assert reopened.status == "Error" and "/nowhere" in reopened.error
    with pytest.raises(JobError, match="/nowhere"):
        reopened.wait(1)


def test_abort_stops_the_worker(jobs_root):
    job = J.create_job("dataset", "gradients", "long")
    steps = []

    def work(j):
        for i in range(1000):
            j.check_abort()
            steps.append(i)
            time.sleep(0.005)

    job.start(work)
    while not steps:
        time.sleep(0.005)
    job.abort()
    assert job.wait(5) == "Aborted"
    assert len(steps) < 1000


def test_progress_events_and_rate(jobs_root):
    job = J.create_job("dataset", "gradients", "p")
    q = job.subscribe()
    job.report_progress(0, 100, "train")
    time.sleep(0.02)
    job.report_progress(100, 100, "train")
    events = []
    while not q.empty():
        events.append(q.get())
    prog = [e for e in events if e["type"] == "progress"]
    assert prog[-1]["done"] == 100 and prog[-1]["total"] == 100 and prog[-1]["rate"] > 0
    assert json.loads((job.dir / "job.json").read_text())["progress"]["done"] == 100


def test_running_job_of_a_dead_process_reads_as_aborted(jobs_root):
    job = J.create_job("dataset", "gradients", "orphan")
    job.record["status_history"].append(["Running", time.time()])
    job.record["owner"] = {"pid": 2 ** 22 + 12345, "host": os.uname().nodename}
    job.save()
    J.Job._live.clear()
    assert dw.job(job.id).status == "Aborted"


def test_listing_and_delete_rules(jobs_root):
    ds = J.create_job("dataset", "gradients", "data")
    model = J.create_job("model", "regression", "net", parents=[ds.id])
    assert [j.id for j in dw.jobs()] == [ds.id, model.id]
    assert [j.id for j in dw.jobs("dataset")] == [ds.id]
    with pytest.raises(JobError, match=r'Cannot delete "data" because 1 model depends on it: "net"'):
        dw.delete(ds.id)
    assert ds.dir.exists()
    dw.delete(model.id)
    dw.delete("data")
    assert dw.jobs() == []
    with pytest.raises(JobError, match="No job"):
        dw.job("data")


def test_ambiguous_name_asks_for_the_id(jobs_root):
    a = J.create_job("dataset", "gradients", "same")
    b = J.create_job("dataset", "gradients", "same")
    with pytest.raises(JobError, match="Several"):
        dw.job("same")
    assert dw.job(b.id).id == b.id and dw.job(a.id).id == a.id


def test_unwritable_jobs_dir_says_which_and_what_to_do(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    root = blocker / "jobs"   # its parent is a file: creating it really fails, also as root
    monkeypatch.setenv("DIGITS_JOBS_DIR", str(root))
    with pytest.raises(JobError) as info:
        J.create_job("dataset", "gradients", "g")
    text = str(info.value)
    assert str(root) in text and "DIGITS_JOBS_DIR" in text and not text.endswith("..")
    with pytest.raises(JobError, match="DIGITS_JOBS_DIR"):
        dw.datasets.gradients("g", train_count=8, val_count=2, image_size=4)


_OWNER_SCRIPT = """
import sys, time
from digits_widgets.store import jobs as J
import digits_widgets.train.training_job  # noqa: F401 - registers the model kind
job = J.create_job("model", "classification", "orphaned-net")
job.start(lambda j: time.sleep(600))
while J._read_record(job.dir)["status_history"][-1][0] != "Running":
    time.sleep(0.02)
print(job.id, flush=True)
time.sleep(600)
"""


def test_job_of_a_killed_kernel_is_aborted_on_disk_and_resumable(jobs_root):
    import signal
    import subprocess
    import sys

    from digits_widgets.train import records
    from digits_widgets.ui.jobs_panel import job_values

    proc = subprocess.Popen([sys.executable, "-c", _OWNER_SCRIPT], stdout=subprocess.PIPE, text=True)
    try:
        job_id = proc.stdout.readline().strip()
        assert job_id, "the owner process did not start its job"
        running = json.loads((jobs_root / job_id / "job.json").read_text())
        assert running["status_history"][-1][0] == "Running"
        assert running["owner"]["pid"] == proc.pid and running["owner"]["started"] is not None
        assert dw.job(job_id).status == "Running"   # its owner still runs: left alone
    finally:
        proc.send_signal(signal.SIGKILL)
    deadline = time.time() + 10
    while J._proc_stat(proc.pid) and J._proc_stat(proc.pid)[0] != "Z" and time.time() < deadline:
        time.sleep(0.02)
    assert dw.job(job_id).status == "Aborted", "a killed owner not yet reaped (a zombie) has ended too"
    proc.wait(10)
    job = dw.job(job_id)
    assert job.status == "Aborted" and not job.is_running()
    on_disk = json.loads((job.dir / "job.json").read_text())
    last = on_disk["status_history"][-1]
    assert last[0] == "Aborted" and str(proc.pid) in last[2] and "resume" in last[2]
    assert job.status_history[-1][0] == "Aborted" and len(job.status_history[-1]) == 2
    assert [j.status for j in dw.jobs()] == ["Aborted"]
    job.path(records.CHECKPOINT).write_bytes(b"")   # what a run that got past its first epoch leaves
    assert job_values(job, time.time())["can_resume"]


def test_a_reused_pid_is_not_taken_for_the_owner(jobs_root):
    job = J.create_job("dataset", "gradients", "reused")
    job.record["status_history"].append(["Running", time.time()])
    job.record["owner"] = dict(J.owner_record(), started=J.owner_record()["started"] - 1)  # same pid, older start
    job.save()
    J.Job._live.clear()
    assert dw.job(job.id).status == "Aborted"
    assert "another process" in dw.job(job.id).error


def test_rename_and_notes_round_trip_through_job_json(jobs_root):
    from digits_widgets.store.jobs import Job, create_job
    job = create_job("job", "t", "first name")
    job.rename("second name")
    job.notes = "tried lr 0.01"
    Job._live.clear()
    again = dw.job(job.id)
    assert (again.name, again.notes) == ("second name", "tried lr 0.01")
    with pytest.raises(dw.JobError):
        again.rename("  ")
