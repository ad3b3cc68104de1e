"""The scheduler: GPUs by index or count, CPU and dataset pools, strict FIFO per resource, Waiting jobs.

Jobs here are real job directories whose work is a function blocked on an event, run against schedulers
with fake GPU counts: nothing touches CUDA. One test trains two real models on one CPU slot.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import pytest

import digits_widgets as dw
from digits_widgets.store import jobs as J
from digits_widgets.store import scheduler as S
from digits_widgets.store.scheduler import CPU, DATASET, GPU, Request, Scheduler
from digits_widgets.ui.pump import Pump
from digits_widgets.ui.training_panel import TrainingPanel
from support import TOWER_REGRESSION


def until(condition, timeout: float = 10.0, what: str = "the condition") -> None:
    """Wait for ``condition()`` to turn true (a condition wait, polled), or fail saying what never happened."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.01)


class Work:
    """A job's work that runs until released: ``started`` is set when it runs, ``finish`` ends it."""

    def __init__(self, fail: bool = False) -> None:
        self.started, self.finish, self.fail = threading.Event(), threading.Event(), fail

    def __call__(self, job: J.Job) -> None:
        self.started.set()
        while not self.finish.wait(0.02):
            job.check_abort()
        if self.fail:
            raise RuntimeError("the work failed")


def start(sched: Scheduler, name: str, request: Request, work: Work | None = None) -> tuple[J.Job, Work]:
    work = work or Work()
    job = J.create_job("job", "test", name)
    job.start(work, request=request, scheduler=sched)
    return job, work


def history(job: J.Job) -> list[str]:
    return [s for s, _ in job.status_history]


def test_one_training_per_gpu_and_the_next_free_gpu(jobs_root):
    sched = Scheduler(gpus=2, cpu_slots=1)
    a, wa = start(sched, "a", Request(GPU, gpus=(0,)))
    b, wb = start(sched, "b", Request(GPU, gpus=(0,)))
    c, wc = start(sched, "c", Request(GPU, count=1))     # next available: GPU 1, not behind b (GPU 0 only)
    until(wa.started.is_set, what="a starting")
    until(wc.started.is_set, what="c starting on the free GPU")
    assert a.grant.gpus == (0,) and c.grant.gpus == (1,)
    assert b.status == "Waiting" and b.queue_position == 1 and b.waiting_for == "GPU 0"
    assert a.queue_position is None and not wb.started.is_set()
    assert json.loads((c.dir / "job.json").read_text())["resources"] == {"pool": "gpu", "gpus": [1]}
    wa.finish.set()
    assert a.wait(10) == "Done"
    until(wb.started.is_set, what="b starting once GPU 0 is free")
    assert b.grant.gpus == (0,) and b.queue_position is None
    wb.finish.set(), wc.finish.set()
    assert b.wait(10) == c.wait(10) == "Done"
    assert history(b) == ["Initialized", "Waiting", "Running", "Done"]
    assert sched.snapshot()["held"] == {} and sched.snapshot()["waiting"] == []


def test_strict_fifo_a_later_job_that_fits_does_not_overtake(jobs_root):
    sched = Scheduler(gpus=2)
    a, wa = start(sched, "a", Request(GPU, gpus=(0,)))
    b, wb = start(sched, "b", Request(GPU, count=2))    # needs both GPUs: waits for a
    c, wc = start(sched, "c", Request(GPU, gpus=(1,)))  # GPU 1 is free, but b was first and wants it
    until(wa.started.is_set, what="a starting")
    assert (b.queue_position, c.queue_position) == (1, 2)
    assert S.waiting_label(c.queue_position) == "Waiting (2nd in queue)"
    wa.finish.set()
    until(wb.started.is_set, what="b starting on both GPUs")
    assert b.grant.gpus == (0, 1) and c.status == "Waiting" and c.queue_position == 1
    wb.finish.set()
    until(wc.started.is_set, what="c starting after b")
    wc.finish.set()
    assert c.wait(10) == "Done"
    runs = {j.name: dict((s, t) for s, t in j.status_history) for j in (a, b, c)}
    assert runs["a"]["Done"] <= runs["b"]["Running"] and runs["b"]["Done"] <= runs["c"]["Running"]


def test_trainings_that_ask_to_share_a_gpu_run_together(jobs_root):
    sched = Scheduler(gpus=1)
    a, wa = start(sched, "a", Request(GPU, gpus=(0,), share=True))
    b, wb = start(sched, "b", Request(GPU, count=1, share=True))
    c, wc = start(sched, "c", Request(GPU, gpus=(0,)))   # wants it alone: waits for both
    until(lambda: wa.started.is_set() and wb.started.is_set(), what="both sharing jobs starting")
    assert b.grant.gpus == (0,) and c.status == "Waiting"
    wa.finish.set()
    assert a.wait(10) == "Done" and c.status == "Waiting", "b still holds GPU 0"
    wb.finish.set()
    until(wc.started.is_set, what="c starting alone")
    wc.finish.set()
    assert c.wait(10) == "Done"


def test_dataset_pool_is_its_own(jobs_root):
    sched = Scheduler(gpus=0, cpu_slots=1, dataset_slots=2)
    ds = [start(sched, f"d{i}", Request(DATASET)) for i in range(3)]
    train, wt = start(sched, "t", Request(CPU))
    until(lambda: ds[0][1].started.is_set() and ds[1][1].started.is_set(), what="two dataset jobs starting")
    until(wt.started.is_set, what="the training starting beside a full dataset pool")
    third, w3 = ds[2]
    assert third.status == "Waiting" and third.queue_position == 1 and third.waiting_for == "a dataset slot"
    ds[1][1].finish.set()
    until(w3.started.is_set, what="the third dataset job starting")
    for _, w in ds:
        w.finish.set()
    wt.finish.set()
    assert all(j.wait(10) == "Done" for j, _ in ds) and train.wait(10) == "Done"


def test_abort_of_a_waiting_job_leaves_the_queue_and_never_starts(jobs_root):
    sched = Scheduler(gpus=0, cpu_slots=1)
    a, wa = start(sched, "a", Request(CPU))
    b, wb = start(sched, "b", Request(CPU))
    c, wc = start(sched, "c", Request(CPU))
    until(wa.started.is_set, what="a starting")
    assert (b.queue_position, c.queue_position) == (1, 2)
    events = c.subscribe()
    b.abort()
    assert b.wait(5) == "Aborted"
    moves = []
    while not events.empty():
        e = events.get_nowait()
        moves += [e] if e["type"] == "queue" else []
    assert moves and moves[-1]["position"] == 1, "c's views hear that it moved up"
    assert history(b) == ["Initialized", "Waiting", "Aborted"] and "never started" in b.error
    assert not wb.started.is_set() and c.queue_position == 1 and b.queue_position is None
    wa.finish.set()
    until(wc.started.is_set, what="c starting in b's place")
    wc.finish.set()
    assert c.wait(10) == "Done" and not wb.started.is_set()


def test_wait_on_a_waiting_job_waits_through_waiting(jobs_root):
    sched = Scheduler(gpus=0, cpu_slots=1)
    a, wa = start(sched, "a", Request(CPU))
    b, wb = start(sched, "b", Request(CPU))
    wb.finish.set()    # b's work ends as soon as it runs
    until(wa.started.is_set, what="a starting")
    threading.Thread(target=lambda: (until(lambda: b.status == "Waiting"), wa.finish.set())).start()
    assert b.wait(10) == "Done"
    assert history(b) == ["Initialized", "Waiting", "Running", "Done"]
    assert dict(b.status_history)["Running"] >= dict(a.status_history)["Done"]


@pytest.mark.parametrize("fail", [False, True])
def test_resources_are_free_before_the_final_status_is_written(jobs_root, fail):
    sched = Scheduler(gpus=1)
    a, wa = start(sched, "a", Request(GPU, gpus=(0,)), Work(fail=fail))
    b, wb = start(sched, "b", Request(GPU, gpus=(0,)))
    seen = {}
    original = a.set_status

    def spy(status, error=None):
        if status in ("Done", "Error", "Aborted"):
            seen[status] = sched.snapshot()
        original(status, error)
    a.set_status = spy
    until(wa.started.is_set, what="a starting")
    wa.finish.set()
    assert a.wait(10, raise_on_error=False) == ("Error" if fail else "Done")
    final = seen["Error" if fail else "Done"]
    assert a.id not in final["held"] and final["held"][b.id].gpus == (0,), "b had GPU 0 before a's end was written"
    b.abort()
    assert b.wait(10) == "Aborted"
    assert sched.snapshot()["held"] == {}


def test_an_aborted_running_job_frees_its_gpu(jobs_root):
    sched = Scheduler(gpus=1)
    a, wa = start(sched, "a", Request(GPU, gpus=(0,)))
    until(wa.started.is_set, what="a starting")
    a.abort()
    assert a.wait(10) == "Aborted" and sched.snapshot()["held"] == {}
    b, wb = start(sched, "b", Request(GPU, gpus=(0,)))
    assert b.queue_position is None, "granted at once"
    wb.finish.set()
    assert b.wait(10) == "Done"


def test_requests_that_can_never_be_granted_are_refused_at_once(jobs_root):
    sched = Scheduler(gpus=2)
    with pytest.raises(dw.OptionError, match=r"GPU 5 does not exist: this machine has 2 GPUs \(0-1\)") as err:
        sched.submit("x", Request(GPU, gpus=(0, 5)))
    assert err.value.field == "gpus"
    with pytest.raises(dw.OptionError, match="asks for 3 GPUs but this machine has 2"):
        sched.submit("x", Request(GPU, count=3))
    assert sched.snapshot()["waiting"] == []


def test_more_slots_start_waiting_jobs_and_the_environment_sets_the_defaults(jobs_root, monkeypatch):
    sched = Scheduler(gpus=0, cpu_slots=1)
    a, wa = start(sched, "a", Request(CPU))
    b, wb = start(sched, "b", Request(CPU))
    until(wa.started.is_set, what="a starting")
    assert b.status == "Waiting"
    sched.configure(cpu_slots=2)
    until(wb.started.is_set, what="b starting in the new slot")
    wa.finish.set(), wb.finish.set()
    assert a.wait(10) == b.wait(10) == "Done"
    monkeypatch.setenv("DIGITS_CPU_SLOTS", "3")
    monkeypatch.delenv("DIGITS_DATASET_SLOTS", raising=False)
    fresh = Scheduler()
    assert (fresh.cpu_slots, fresh.dataset_slots) == (3, S.DEFAULT_DATASET_SLOTS)
    assert fresh.gpu_count() == 0 and fresh.gpu_count(lambda: 4) == 4 and fresh.gpu_count(lambda: 9) == 4
    monkeypatch.setenv("DIGITS_CPU_SLOTS", "many")
    with pytest.raises(dw.OptionError, match=r"\$DIGITS_CPU_SLOTS must be a whole number"):
        Scheduler()


def test_a_view_made_from_the_directory_knows_the_place_in_this_kernels_queue(jobs_root):
    previous = S.install(Scheduler(gpus=0, cpu_slots=1))
    try:
        a, wa = start(S.default(), "a", Request(CPU))
        b, wb = start(S.default(), "b", Request(CPU))
        view = J.Job(b.dir, J._read_record(b.dir))   # what a torchrun job's dw.job(id) is: not the live object
        assert view is not b and (view.queue_position, view.waiting_for) == (1, "a CPU training slot")
        wa.finish.set(), wb.finish.set()
        assert b.wait(10) == "Done" and view.queue_position is None and view.waiting_for is None
    finally:
        S.install(previous)


def test_ordinals():
    assert [S.ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th"]
    assert S.waiting_label(None) == "Waiting"


_QUEUER = """
import threading
from digits_widgets.store import jobs as J
from digits_widgets.store.scheduler import CPU, Request, Scheduler
sched = Scheduler(gpus=0, cpu_slots=1)
hold = threading.Event()
first = J.create_job("job", "test", "first")
first.start(lambda j: hold.wait(), request=Request(CPU), scheduler=sched)
queued = J.create_job("job", "test", "queued")
queued.start(lambda j: None, request=Request(CPU), scheduler=sched)
assert queued.queue_position == 1
print(queued.id, flush=True)
hold.wait()
"""


def test_a_job_queued_by_a_kernel_that_died_reads_aborted_with_the_reason(jobs_root):
    proc = subprocess.Popen([sys.executable, "-c", _QUEUER], stdout=subprocess.PIPE, text=True)
    try:
        job_id = proc.stdout.readline().strip()
        assert job_id, "the queueing process did not queue its job"
        assert dw.job(job_id).status == "Waiting"   # its kernel still runs: left alone
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    J.Job._live.clear()
    job = dw.job(job_id)
    assert job.status == "Aborted" and "Running" not in history(job)
    last = json.loads((job.dir / "job.json").read_text())["status_history"][-1]
    assert last[0] == "Aborted" and "the kernel that queued it ended before it started" in last[2]
    assert str(proc.pid) in last[2]


# ---- the training layer: what a training asks for (fake GPU counts, no CUDA) -------------------------
@pytest.fixture
def fake_gpus():
    """Install a scheduler that believes in 4 GPUs; the real default comes back afterwards."""
    previous = S.install(Scheduler(gpus=4))
    yield S.default()
    S.install(previous)


def test_training_requests(fake_gpus):
    from digits_widgets.train.launch import resource_request, visible_devices
    from digits_widgets.train.options import TrainOptions as T

    assert resource_request(T()) == Request(GPU, count=1)
    assert resource_request(T(gpus=[0, 2])) == Request(GPU, gpus=(0, 2))
    assert resource_request(T(device="cuda:0,1")) == Request(GPU, gpus=(0, 1))
    assert resource_request(T(device="cuda:3", share_gpus=True)) == Request(GPU, gpus=(3,), share=True)
    assert resource_request(T(gpus=2)) == Request(GPU, count=2)
    assert resource_request(T(launcher="torchrun", nproc=3)) == Request(GPU, count=3)
    assert resource_request(T(device="cpu", gpus=[0, 1])) == Request(CPU)
    assert T(gpus=[0, 2]).use_torchrun and not T(gpus=[2]).use_torchrun
    fake_gpus.configure(gpus=0)
    assert resource_request(T(gpus=[0, 1])) == Request(CPU), "no GPUs: a CPU slot, as DIGITS"
    assert visible_devices((0, 2), {}) == "0,2"
    assert visible_devices((0, 2), {"CUDA_VISIBLE_DEVICES": "4,5,6"}) == "4,6", "mapped through the kernel's own"


def test_a_gpu_that_does_not_exist_is_refused_before_any_job(fake_gpus):
    with pytest.raises(dw.OptionError, match="GPU 7 does not exist: this machine has 4 GPUs") as err:
        dw.train("no dataset needed", TOWER_REGRESSION, gpus=[1, 7])
    assert err.value.field == "gpus" and dw.jobs() == []
    with pytest.raises(dw.OptionError, match="gpus"):
        dw.train("no dataset needed", TOWER_REGRESSION, device="cuda:0", gpus=[1])


def test_the_magic_reads_gpus_as_a_count_or_indices():
    from IPython.core.error import UsageError

    from digits_widgets.magic import parse_arguments

    assert parse_arguments("m --dataset d --gpus 0,2")[3] == {"gpus": (0, 2)}
    assert parse_arguments("m --dataset d --gpus 2")[3] == {"gpus": 2}
    assert parse_arguments("m --dataset d --gpus 2, --share-gpus")[3] == {"gpus": (2,), "share_gpus": True}
    with pytest.raises(UsageError, match="--gpus.*comma-separated GPU indices"):
        parse_arguments("m --dataset d --gpus a,b")


# ---- two real trainings on one CPU slot ------------------------------------------------------------
def test_two_trainings_on_one_cpu_slot_run_one_after_the_other(grads):
    previous = S.install(Scheduler(gpus=0, cpu_slots=1))
    try:
        opts = dict(epochs=4, lr=0.01, batch_size=16, seed=0, device="cpu")
        later = dw.train(grads, TOWER_REGRESSION, "later", start=False, **opts)
        first = dw.train(grads, TOWER_REGRESSION, "first", **opts)
        second = dw.train(grads, TOWER_REGRESSION, "second", **opts)
        assert second.status == "Waiting" and second.queue_position == 1
        assert "Waiting (1st in queue) for a CPU training slot" in second.status_line()
        extra = dw.train(grads, TOWER_REGRESSION, "extra", **opts)
        later.resume()                       # a resume queues like a new run
        assert later.status == "Waiting" and later.queue_position == 3
        pump = Pump(find_loop=lambda: None)
        panel = TrainingPanel(later, pump=pump)
        assert "Waiting (3rd in queue)" in panel.title.value
        extra.abort()                        # later moves up: its panel hears it through the queue event
        deadline = time.monotonic() + 10
        while "Waiting (2nd in queue)" not in panel.title.value:
            assert time.monotonic() < deadline, panel.title.value
            pump.tick()
            time.sleep(0.02)   # polling interval of a condition wait
        later.abort()
        assert later.wait(30) == extra.wait(30) == "Aborted" and "never started" in later.error
        assert first.wait(120) == "Done" and second.wait(120) == "Done"
        a = {s: t for s, t in json.loads((first.dir / "job.json").read_text())["status_history"]}
        b = {s: t for s, t in json.loads((second.dir / "job.json").read_text())["status_history"]}
        assert b["Waiting"] < a["Done"] <= b["Running"] < b["Done"], "second waited until first ended"
        assert [r["epoch"] for r in second.metrics("val")] == [0.0, 1.0, 2.0, 3.0, 4.0]
        assert [s for s, _ in later.status_history] == ["Initialized", "Waiting", "Aborted"]
    finally:
        S.install(previous)


# ---- the model form's GPU picker (DIGITS' "Select which GPU[s] you would like to use") ------------------
def test_the_gpu_picker_is_hidden_without_gpus(grads, monkeypatch):
    import torch

    from digits_widgets.ui.model_form import ModelForm

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    form = ModelForm(dataset=grads)
    assert not form.fields["select_gpus"].visible and not form.fields["share_gpus"].visible
    assert form.fields["select_gpus"].control.options == ()
    form.fields["name"].value = "m"
    assert form.options()["gpus"] == 1 and form.options()["share_gpus"] is False


def test_the_gpu_picker_chooses_gpus_by_index_and_a_clone_keeps_them(grads, monkeypatch, fake_gpus):
    import torch

    from digits_widgets.ui.model_form import ModelForm

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)   # a fake count: nothing here touches CUDA
    form = ModelForm(dataset=grads)
    picker = form.fields["select_gpus"]
    assert picker.visible and form.fields["share_gpus"].visible
    assert [i for _, i in picker.control.options] == [0, 1, 2]
    assert "won't start until all of the chosen GPUs are available" in picker.help
    picker.control.value = (0, 2)
    form.fields["share_gpus"].control.value = True
    opts = form.options()
    assert opts["gpus"] == [0, 2] and opts["share_gpus"] is True, "the picked GPUs win over the count"
    picker.control.value = ()
    form.fields["gpus"].control.value = "2"
    assert form.options()["gpus"] == 2, "nothing picked: the count (next available)"
    job = dw.train(grads, TOWER_REGRESSION, "picked", start=False, gpus=[0, 2], share_gpus=True)
    clone = ModelForm(clone=job)
    assert clone.fields["select_gpus"].control.value == (0, 2) and clone.fields["gpus"].value == 1
    assert clone.fields["share_gpus"].value is True and clone.options()["gpus"] == [0, 2]
