"""The jobs panel: both tables, sorting, refresh through the pump, and the row actions."""
from __future__ import annotations

import json
import os
import time

import pytest

import digits_widgets as dw
from digits_widgets.nets import zoo
from digits_widgets.train.launch import wait_for_metrics
from digits_widgets.ui.jobs_panel import Jobs, MetricsTail
from digits_widgets.ui.model_form import ModelForm
from digits_widgets.ui.pump import get_pump


@pytest.fixture
def panel():
    made = []

    def make() -> Jobs:
        made.append(Jobs())
        return made[-1]
    yield make
    for p in made:
        p.close()


def _texts(table, job_id):
    return [c.value for c in table.rows[job_id].cells]


def _train(ds, name, **options):
    return dw.train(ds, zoo.source("gradients_regression"), name, **options)


def test_lists_datasets_and_models(grads, panel):
    job = _train(grads, "net", epochs=1, batch_size=16)
    assert job.wait(60) == "Done"
    jobs = panel()
    assert jobs.datasets.order == [grads.id] and jobs.models.order == [job.id]
    name, status, progress, created, elapsed, last, low, acc, group = _texts(jobs.models, job.id)
    assert "net" in name and "Done" in status and progress == "100%"
    val = [r["loss"] for r in job.metrics("val")]
    assert last == f"{val[-1]:.4g}" and low == f"{min(val):.4g}" and acc == "—" and group == ""
    assert "g" in _texts(jobs.datasets, grads.id)[0]
    buttons = jobs.models.rows[job.id].buttons
    assert buttons["abort"].disabled and buttons["resume"].disabled and not buttons["open"].disabled
    jobs.act("open", job.id)
    assert jobs.detail.children and "net" in jobs.detail.children[0].children[0].value


def test_sorting_by_column_headers(panel):
    made = {}
    for name in ("b", "c", "a"):
        made[name] = dw.datasets.gradients(name, train_count=8, val_count=4, image_size=(4, 4), seed=0)
        made[name].wait(60)
        time.sleep(0.01)
    jobs = panel()
    ids = {n: j.id for n, j in made.items()}
    assert jobs.datasets.order == [ids["a"], ids["c"], ids["b"]], "newest first by default"
    jobs.datasets.sort_by("name")
    assert jobs.datasets.order == [ids["a"], ids["b"], ids["c"]]
    assert jobs.datasets.headers[0].description == "Name ▲"
    jobs.datasets.sort_by("name")
    assert jobs.datasets.order == [ids["c"], ids["b"], ids["a"]]
    assert jobs.datasets.headers[0].description == "Name ▼"
    cells = jobs.datasets.grid.children
    assert cells[len(jobs.datasets.columns) + 1] is jobs.datasets.rows[ids["c"]].cells[0]


def test_group_column_and_filter(grads, panel):
    a = _train(grads, "alpha", start=False, group="sweep <1>")
    b = _train(grads, "beta", start=False)
    c = _train(grads, "gamma", start=False, group="sweep <1>")
    jobs = panel()
    assert _texts(jobs.models, a.id)[-1] == "sweep &lt;1&gt;" and _texts(jobs.models, b.id)[-1] == ""
    jobs.models.sort_by("group")
    assert jobs.models.order[0] == b.id and set(jobs.models.order[1:]) == {a.id, c.id}, "a group's jobs together"
    jobs.filter.value = "SWEEP"   # the text, in any case, in the name or the group
    assert set(jobs.models.order) == {a.id, c.id} and jobs.datasets.order == []
    jobs.filter.value = "bet"
    assert jobs.models.order == [b.id]
    jobs.filter.value = ""
    assert set(jobs.models.order) == {a.id, b.id, c.id} and jobs.datasets.order == [grads.id]


def test_delete_is_refused_with_the_dependent_model_named(grads, panel):
    job = _train(grads, "net", start=False)
    jobs = panel()
    jobs.act("delete", grads.id)
    assert f'Cannot delete &quot;g&quot; because 1 model depends on it: &quot;net&quot; ({job.id})' \
        in jobs.message.value
    assert grads.dir.exists()
    jobs.act("delete", job.id)
    assert jobs.models.rows[job.id].buttons["delete"].description == "Sure?" and job.dir.exists()
    jobs.act("delete", job.id)
    assert not job.dir.exists() and jobs.models.order == []
    jobs.act("delete", grads.id)
    jobs.act("delete", grads.id)
    assert dw.jobs() == [] and jobs.datasets.order == []


def test_abort_a_running_job_then_resume_it(grads, panel):
    job = _train(grads, "long", epochs=2000, batch_size=16)
    wait_for_metrics(job, 2, "val", timeout=60)
    jobs = panel()
    assert not jobs.models.rows[job.id].buttons["abort"].disabled
    jobs.act("abort", job.id)
    assert job.wait(60) == "Aborted"
    get_pump().tick(force=True)
    assert "Aborted" in _texts(jobs.models, job.id)[1]
    resume = jobs.models.rows[job.id].buttons["resume"]
    assert not resume.disabled, "an aborted model with a checkpoint can be resumed"
    done = len(job.metrics("val"))
    jobs.act("resume", job.id)
    assert job.is_running()
    assert jobs.detail.children, "resume opens the job's panel"
    wait_for_metrics(job, done + 2, "val", timeout=60)
    jobs.act("abort", job.id)
    assert job.wait(60) == "Aborted"


def test_clone_opens_a_prefilled_form(grads, panel):
    job = _train(grads, "net", start=False, epochs=7, lr=0.02)
    jobs = panel()
    jobs.act("clone", job.id)
    form = jobs.detail.children[1]
    assert isinstance(form, ModelForm)
    assert (form.fields["epochs"].value, form.fields["lr"].value, form.fields["dataset"].value) == (7, 0.02, grads.id)


def test_refresh_picks_up_new_jobs_and_leaves_unchanged_rows_alone(grads, panel):
    jobs = panel()
    assert jobs.models.order == []
    grid_children = jobs.datasets.grid.children
    cell = jobs.datasets.rows[grads.id].cells[0]
    job = _train(grads, "new", start=False)
    get_pump().tick(force=True)
    assert jobs.models.order == [job.id]
    assert "Initialized" in _texts(jobs.models, job.id)[1]
    assert jobs.datasets.grid.children is grid_children, "nothing changed: the grid is not rebuilt"
    assert jobs.datasets.rows[grads.id].cells[0] is cell
    jobs.close()
    other = _train(grads, "after close", start=False)
    get_pump().tick(force=True)
    assert other.id not in jobs.models.rows, "a closed panel stops refreshing"


def test_metrics_tail_reads_only_what_was_appended(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [{"phase": "train", "loss": 9.0}, {"phase": "val", "loss": 2.0, "accuracy": 0.5},
            {"phase": "val", "loss": 3.0, "accuracy": 0.25}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows[:2]) + '{"phase": "val", "lo')
    tail = MetricsTail().update(path)
    assert (tail.last_loss, tail.min_loss, tail.accuracy) == (2.0, 2.0, 0.5)
    with open(path, "a") as f:
        f.write('ss": 3.0, "accuracy": 0.25}\n')
    tail.update(path)
    assert (tail.last_loss, tail.min_loss, tail.accuracy) == (3.0, 2.0, 0.25)
    tmp = tmp_path / "new.jsonl"   # a resume trims the file by replacing it: the summary starts over
    tmp.write_text(json.dumps(rows[0]) + "\n" + json.dumps(rows[2]) + "\n")
    os.replace(tmp, path)
    tail.update(path)
    assert (tail.last_loss, tail.min_loss, tail.accuracy) == (3.0, 3.0, 0.25)


# ---- the scheduler's queue, and a job's name and notes ------------------------------------------------
def _until(condition, timeout: float = 10.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(0.01)   # polling interval of a condition wait


def test_waiting_jobs_show_their_place_in_the_queue(panel):
    import threading

    from digits_widgets.store.jobs import create_job
    from digits_widgets.store.scheduler import DATASET, Request, Scheduler

    sched = Scheduler(gpus=0, dataset_slots=1)
    release = threading.Event()
    made = []
    for name in ("first", "second", "third"):
        job = create_job("dataset", "gradients", name)
        job.start(lambda j: release.wait(30), request=Request(DATASET), scheduler=sched)
        made.append(job)
    first, second, third = made
    _until(lambda: first.status == "Running", what="the first job starting")
    jobs = panel()
    assert "Running" in _texts(jobs.datasets, first.id)[1]
    status = _texts(jobs.datasets, second.id)[1]
    assert "Waiting (1st in queue)" in status and "#6a1b9a" in status and 'title="Waiting for a dataset slot"' in status
    assert "Waiting (2nd in queue)" in _texts(jobs.datasets, third.id)[1]
    assert not jobs.datasets.rows[second.id].buttons["abort"].disabled, "a queued job can be aborted"
    jobs.act("abort", second.id)
    assert second.wait(10) == "Aborted" and "never started" in second.error
    jobs.refresh()
    assert "Aborted" in _texts(jobs.datasets, second.id)[1]
    assert "Waiting (1st in queue)" in _texts(jobs.datasets, third.id)[1], "third moved up"
    release.set()
    assert first.wait(10) == "Done" and third.wait(10) == "Done"
    get_pump().tick(force=True)
    assert "Done" in _texts(jobs.datasets, third.id)[1]


def test_open_job_name_and_notes_are_edited_into_job_json(grads, panel):
    job = _train(grads, "net", start=False)
    jobs = panel()
    jobs.act("open", job.id)
    editor = jobs.editor
    assert editor is not None and jobs.detail.children[1] is editor
    assert (editor.name.value, editor.notes.value) == ("net", "")
    editor.name.value = "  lenet, lr 0.02  "
    editor.notes.value = "lr 0.01 diverged after epoch 3"
    editor.save.click()
    record = json.loads((job.dir / "job.json").read_text())
    assert (record["name"], record["notes"]) == ("lenet, lr 0.02", "lr 0.01 diverged after epoch 3")
    assert editor.name.value == "lenet, lr 0.02" and "Saved" in editor.message.value
    assert "lenet, lr 0.02" in _texts(jobs.models, job.id)[0], "the table shows the new name at once"
    assert "lenet, lr 0.02" in jobs.detail.children[0].children[0].value
    editor.name.value = "   "
    editor.save.click()
    assert "A job needs a name" in editor.message.value
    assert json.loads((job.dir / "job.json").read_text())["name"] == "lenet, lr 0.02", "a refused name changes nothing"
    jobs.act("open", grads.id)   # datasets have them too
    jobs.editor.notes.value = "64 train, 16 val"
    jobs.editor.save.click()
    assert json.loads((grads.dir / "job.json").read_text())["notes"] == "64 train, 16 val"
    jobs.act("clone", job.id)
    assert jobs.editor is None and isinstance(jobs.detail.children[1], ModelForm), "a form is no job: no editor"


# ---- the jobs directory through its feed: an idle table reads no job.json, a running row still ticks ---------
def test_an_idle_refresh_reads_no_job_json_and_leaves_rows_alone(grads, panel, opened_job_files):
    job = _train(grads, "idle", start=False)
    jobs = panel()
    texts = {i: t.rows[i].texts for t in (jobs.datasets, jobs.models) for i in t.rows}
    opened = opened_job_files
    opened.clear()
    for _ in range(3):
        jobs.refresh()
    assert opened == [], "nothing changed: each job.json is stat'ed, none parsed"
    assert all(t.rows[i].texts is texts[i] for t in (jobs.datasets, jobs.models) for i in t.rows), \
        "unchanged rows are not recomputed"
    record = json.loads((job.dir / "job.json").read_text())
    (job.dir / "job.json").write_text(json.dumps(dict(record, name="renamed elsewhere")))
    opened.clear()
    jobs.refresh()
    assert opened == [str(job.dir / "job.json")], "only the changed job's record is read"
    assert "renamed elsewhere" in _texts(jobs.models, job.id)[0]
    assert jobs.datasets.rows[grads.id].texts is texts[grads.id]


def test_a_running_jobs_elapsed_ticks_without_job_json_changing(panel):
    import threading

    from digits_widgets.store.jobs import create_job

    release = threading.Event()
    job = create_job("dataset", "gradients", "slow")
    job.start(lambda j: release.wait(30))
    _until(lambda: job.status == "Running", what="the job starting")
    try:
        jobs = panel()
        before = _texts(jobs.datasets, job.id)[4]
        time.sleep(1.1)   # Elapsed shows whole seconds
        jobs.refresh()
        assert _texts(jobs.datasets, job.id)[4] != before, "Elapsed of a running job moves each refresh"
    finally:
        release.set()
    assert job.wait(10) == "Done"
    jobs.refresh()
    assert "Done" in _texts(jobs.datasets, job.id)[1]
