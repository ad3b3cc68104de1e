"""Real torchrun processes (gloo, CPU): same curve as one process, and a killed job resumes."""
from __future__ import annotations

import os
import signal

import pytest

import digits_widgets as dw
from digits_widgets.train.launch import wait_for_metrics
from support import TOWER_REGRESSION, gradients_dataset

pytestmark = pytest.mark.slow

NET = TOWER_REGRESSION


def _kill_everything_running(job) -> None:
    """SIGKILL torchrun and its workers (a crash, an OOM kill, a pulled plug): no chance to clean up."""
    me = os.getpid()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if int(pid) != me and str(job.dir).encode() in cmd:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def grads():
    return gradients_dataset("grads", 96, 32)


def test_two_processes_follow_the_single_process_curve(grads):
    opts = dict(epochs=3, lr=0.02, solver="sgd", batch_size=16, seed=5, mean="image")
    single = dw.train(grads, NET, "one", **opts)
    double = dw.train(grads, NET, "two", launcher="torchrun", nproc=2, **opts)
    assert single.wait(120) == "Done"
    assert double.wait(300) == "Done", (double.dir / "torchrun.log").read_text()[-3000:]
    a, b = single.metrics("val"), double.metrics("val")
    assert [r["epoch"] for r in a] == [r["epoch"] for r in b] == [0.0, 1.0, 2.0, 3.0]
    for ra, rb in zip(a, b):
        assert rb["loss"] == pytest.approx(ra["loss"], rel=1e-3, abs=1e-6)
    ta, tb = single.metrics("train"), double.metrics("train")
    assert [r["step"] for r in ta] == [r["step"] for r in tb]
    for ra, rb in zip(ta, tb):
        assert rb["loss"] == pytest.approx(ra["loss"], rel=1e-3, abs=1e-6)
    assert "2 processes, backend gloo" in (double.dir / "train.log").read_text()


def test_killed_torchrun_job_resumes_from_its_checkpoint(grads):
    job = dw.train(grads, NET, "killed", launcher="torchrun", nproc=2, epochs=400, lr=0.001, batch_size=16,
                   seed=1, snapshot_interval=0)
    rows = wait_for_metrics(job, 3, "val", timeout=240)
    assert len(rows) >= 3, (job.dir / "torchrun.log").read_text()[-3000:]
    _kill_everything_running(job)
    job.process.wait(30)
    assert job.wait(60, raise_on_error=False) in ("Aborted", "Error")
    done_epochs = dw.store.jobs.Job._live.clear() or dw.job(job.id)
    ck_epoch = __import__("torch").load(job.dir / "checkpoint.pt", weights_only=True)["epoch"]
    assert ck_epoch >= 2
    done_epochs.resume(epochs=ck_epoch + 2)
    assert done_epochs.wait(300) == "Done", (job.dir / "torchrun.log").read_text()[-3000:]
    val_epochs = [r["epoch"] for r in done_epochs.metrics("val")]
    assert val_epochs == [float(e) for e in range(ck_epoch + 3)]


FAILING = NET.replace("        return digits.mse_loss(self.inference, self.y)",
                      "        raise ValueError('the loss is not ready')")


def test_a_failing_network_ends_a_torchrun_job_as_it_ends_a_thread_job(grads):
    """One ending path (JobRunner.run_to_end): Error with the same message and the traceback in train.log."""
    here = dw.train(grads, FAILING, "thread", epochs=1, batch_size=16)
    there = dw.train(grads, FAILING, "torchrun", launcher="torchrun", nproc=2, epochs=1, batch_size=16)
    assert here.wait(60, raise_on_error=False) == "Error"
    assert there.wait(300, raise_on_error=False) == "Error", (there.dir / "torchrun.log").read_text()[-3000:]
    assert here.error.rstrip().endswith("ValueError: the loss is not ready"), here.error[-300:]
    assert there.error.replace("torchrun", "thread") == here.error, "the same message, but for the job's name"
    assert there.process.returncode != 0, "the workers exit 1, so torchrun reports the failure too"
    for job in (here, there):
        log = (job.dir / "train.log").read_text()
        assert " ERROR Traceback" in log and "ValueError: the loss is not ready" in log, log[-2000:]
        assert [s for s, *_ in job.record["status_history"]][-2:] == ["Running", "Error"]
        assert not job.path("control", "abort").exists()
