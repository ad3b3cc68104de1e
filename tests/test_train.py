"""Training end to end on tiny data: loss falls, resume is exact, failures read well, files are right."""
from __future__ import annotations

import math
import re
import time

import pytest
import torch

import digits_widgets as dw
from digits_widgets.train import records
from digits_widgets.train.launch import train, wait_for_metrics
from support import TOWER_REGRESSION, gradients_dataset, wait_for_log

REGRESSION = TOWER_REGRESSION

DROPOUT_NET = '''
class Scale(nn.Module):
    def forward(self, x):
        return x * 0.004

model = nn.Sequential(Scale(), nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 2))
loss = nn.MSELoss()
'''


@pytest.fixture
def grads():
    return gradients_dataset("grads", 96, 32)


def _curve(job):
    return [(r["phase"], r["step"], round(r["epoch"], 6), r["loss"], r.get("lr")) for r in job.metrics()]


def test_regression_trains_and_writes_its_files(grads):
    job = train(grads, REGRESSION, "reg", epochs=3, lr=0.01, solver="adam", batch_size=16, seed=1,
                keep_last=2)
    assert job.wait(120) == "Done"
    val = job.metrics("val")
    assert [r["epoch"] for r in val] == [0.0, 1.0, 2.0, 3.0]
    assert val[-1]["loss"] < 0.2 * val[0]["loss"]
    tr = job.metrics("train")
    assert tr and all(r["lr"] > 0 and r["samples_per_s"] > 0 for r in tr)
    assert job.network_source() == REGRESSION
    assert [e for e, _ in job.snapshots()] == [2.0, 3.0], "keep_last=2 keeps the two newest"
    assert (job.dir / "snapshots" / "best.pt").is_file()
    ck = torch.load(job.dir / "checkpoint.pt", weights_only=True)
    assert ck["epoch"] == 3 and set(ck) >= {"model", "optimizer", "scheduler", "rng", "step"}
    snap = torch.load(job.snapshot_path(), weights_only=True)
    assert set(snap["model"]) == {"fc.weight", "fc.bias"}
    assert job.params["options"]["solver"] == "adam" and job.parents == [grads.id]
    assert "val loss" in job.status_line()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(job.dir / "tb"))
    events.Reload()   # what `tensorboard --logdir <job>/tb` reads
    assert {"train/loss", "train/lr", "val/loss"} <= set(events.Tags()["scalars"])
    assert [(e.step, round(e.value, 5)) for e in events.Scalars("val/loss")] == \
        [(r["step"], round(r["loss"], 5)) for r in val]


def test_lr_policy_is_applied_per_step(grads):
    job = train(grads, REGRESSION, "step", epochs=3, lr=0.1, policy="step", step_size=50, gamma=0.1,
                batch_size=16, seed=0, val_interval=0)
    job.wait(120)
    lrs = {round(r["epoch"], 3): r["lr"] for r in job.metrics("train")}
    assert max(lrs.values()) == pytest.approx(0.1) and min(lrs.values()) == pytest.approx(0.01)
    assert not job.metrics("val"), "val_interval=0 turns validation off"
    x, y = dw.lr_curve(0.1, "step", step_size=50, gamma=0.1)
    assert len(x) == 101 and y[49] == pytest.approx(0.1) and y[50] == pytest.approx(0.01)


def test_resume_after_abort_matches_an_uninterrupted_run(grads):
    opts = dict(epochs=5, lr=0.05, solver="sgd", batch_size=16, seed=7, mean="pixel", flip="fliplr")
    ref = train(grads, DROPOUT_NET, "ref", **opts)
    assert ref.wait(120) == "Done"

    job = train(grads, DROPOUT_NET, "cut", **opts)
    q = job.subscribe()
    while True:  # abort as soon as epoch 2 has been validated
        e = q.get(timeout=60)
        if e["type"] == "metric" and e["phase"] == "val" and e["epoch"] >= 2:
            job.abort()
            break
    assert job.wait(60) == "Aborted"
    assert torch.load(job.dir / "checkpoint.pt", weights_only=True)["epoch"] >= 2
    job.resume()
    assert job.wait(120) == "Done"
    assert _curve(job) == _curve(ref)
    assert [s for s, _ in job.status_history][-3:] == ["Waiting", "Running", "Done"]


def test_resume_after_a_kernel_restart(grads):
    job = train(grads, REGRESSION, "restart", epochs=2, lr=0.01, batch_size=16, seed=3)
    job.wait(120)
    dw.store.jobs.Job._live.clear()
    again = dw.job(job.id)
    assert again is not job
    again.resume(epochs=4)  # go on for two more epochs from the checkpoint
    assert again.wait(120) == "Done"
    assert [r["epoch"] for r in again.metrics("val")] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_resume_with_more_epochs_says_the_schedule_stretches_or_keeps_it(grads):
    """96 samples, batch 16: 6 steps an epoch. step_size 50% of 2 epochs = step 6; of 4 epochs = step 12."""
    opts = dict(lr=0.1, policy="step", step_size=50, gamma=0.1, batch_size=16, seed=0, val_interval=0)
    stretched = train(grads, REGRESSION, "stretch", epochs=2, **opts)
    assert stretched.wait(120) == "Done"
    kept = train(grads, REGRESSION, "keep", epochs=2, **opts)
    assert kept.wait(120) == "Done"
    stretched.resume(epochs=4)
    kept.resume(epochs=4, keep_schedule=True)
    assert stretched.wait(120) == "Done" and kept.wait(120) == "Done"

    log = (stretched.dir / "train.log").read_text()
    assert re.search(r"WARNING The learning-rate schedule \(step\) now spans 24 iterations instead of 12: .* "
                     r"rate at step 12 is 0\.01 instead of 0\.001 .*keep_schedule=True", log), log
    assert "WARNING" not in (kept.dir / "train.log").read_text()
    lr_after = lambda job: [r["lr"] for r in job.metrics("train") if 12 < r["step"] < 24]   # noqa: E731
    assert lr_after(stretched) and lr_after(stretched) == pytest.approx([0.01] * len(lr_after(stretched)))
    # kept: decays at steps 6 and 12 of the first 12, then stays where the schedule ended
    assert lr_after(kept) and lr_after(kept) == pytest.approx([0.001] * len(lr_after(kept)))
    assert kept.options.schedule_steps == 12
    assert torch.load(kept.dir / "checkpoint.pt", weights_only=True)["first_schedule_steps"] == 12

    from digits_widgets.ui.training_panel import TrainingPanel, run_warnings
    assert run_warnings(stretched) and not run_warnings(kept)
    assert "now spans 24 iterations instead of 12" in TrainingPanel(stretched).status.value
    (kept.dir / "checkpoint.pt").unlink()   # e.g. a job that failed before its first epoch ended
    with pytest.raises(dw.JobError, match="'keep' has no checkpoint, so there is no schedule to keep"):
        kept.resume(keep_schedule=True)


def test_a_dataset_without_labels_is_named_as_the_cause_not_the_network(grads):
    images = dw.datasets.generic("no-labels", str(grads.db_path("train")))   # a DIGITS DB given without labels
    assert images.wait(60) == "Done"
    job = train(images, REGRESSION, "unlabelled", epochs=1, batch_size=16, mean="none")
    with pytest.raises(dw.NetworkError, match="The dataset has no labels .* labels_file="):
        job.wait(120)


def test_divergence_is_reported(grads):
    job = train(grads, REGRESSION, "nan", epochs=2, lr=1e6, batch_size=16, seed=0, mean="none")
    with pytest.raises(dw.TrainingError, match="Model diverged .* Try decreasing your learning rate"):
        job.wait(120)
    assert job.status == "Error"


def test_shape_mismatch_names_the_dataset_shapes(grads):
    bad = "model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))\nloss = nn.MSELoss()\n"
    job = train(grads, bad, "bad", epochs=1, batch_size=16)
    with pytest.raises(dw.NetworkError) as err:
        job.wait(120)
    assert "(16, 3)" in str(err.value) and "(16, 2)" in str(err.value)
    wrong_input = "model = nn.Sequential(nn.Flatten(), nn.Linear(100, 2))\n"
    job = train(grads, wrong_input, "bad2", epochs=1, batch_size=16)
    with pytest.raises(dw.NetworkError, match=r"\(C, H, W\) = \(1, 8, 8\), its labels \(2,\)"):
        job.wait(120)


def test_runtime_error_in_network_shows_cell_lines(grads):
    src = REGRESSION.replace("return digits.mse_loss", "undefined_name\n        return digits.mse_loss")
    job = train(grads, src, "typo", epochs=1, batch_size=16)
    with pytest.raises(dw.NetworkError) as err:
        job.wait(120)
    text = str(err.value)
    assert "undefined_name" in text and "line 11" in text


def test_pretrained_and_freeze(grads):
    base = train(grads, DROPOUT_NET, "base", epochs=2, lr=0.05, batch_size=16, seed=0)
    base.wait(120)
    # the last layer renamed by shape: 2 → 3 outputs is not loaded; everything before it is frozen
    tuned_src = DROPOUT_NET.replace("nn.Linear(32, 2))", "nn.Linear(32, 2))\nmodel[5] = nn.Linear(32, 2)")
    tuned = train(grads, tuned_src, "tuned", epochs=2, lr=0.05, batch_size=16, seed=0,
                  pretrained=base.id, freeze=r"^2\.")
    assert tuned.wait(120) == "Done"
    before = torch.load(base.snapshot_path(), weights_only=True)["model"]
    after = torch.load(tuned.snapshot_path(), weights_only=True)["model"]
    assert torch.equal(before["2.weight"], after["2.weight"]), "frozen layer unchanged"
    assert not torch.equal(before["5.weight"], after["5.weight"]), "unfrozen layer trained"
    log = (tuned.dir / "train.log").read_text()
    assert "Loaded 4 of 4 tensors" in log and "Frozen 2 parameter tensors" in log
    renamed = DROPOUT_NET.replace("nn.Linear(32, 2))", "nn.Linear(32, 2))\nmodel.add_module('head', "
                                  "nn.Linear(2, 2))")
    job = train(grads, renamed, "renamed", epochs=1, batch_size=16, pretrained=f"{base.id}:2")
    assert job.wait(120) == "Done"
    assert "Freshly initialised (not in the snapshot): head.weight, head.bias" in (job.dir / "train.log").read_text()


def test_early_stopping_and_pause(grads):
    job = train(grads, REGRESSION, "early", epochs=50, lr=0.0, batch_size=16, early_stopping=2)
    assert job.wait(120) == "Done"
    assert len(job.metrics("val")) == 4, "no improvement at lr 0: stops after 2 stale validations"
    assert "Early stopping" in (job.dir / "train.log").read_text()

    slow = train(grads, REGRESSION, "pause", epochs=200, lr=0.001, batch_size=16, val_interval=0)
    wait_for_metrics(slow, 1, "train")
    slow.pause()
    paused = wait_for_log(slow, r"Paused at epoch [\d.]+ \(step (\d+)\)")
    n = len(slow.metrics("train"))
    assert slow.metrics("train")[-1]["step"] == int(paused.group(1)), "stopped right after its last record"
    time.sleep(1.0)  # an observation window: five looks at the pause file, no step taken
    assert len(slow.metrics("train")) == n, "no progress while paused"
    slow.unpause()
    wait_for_metrics(slow, n + 2, "train")
    assert re.search(r"Unpaused at epoch", (slow.dir / "train.log").read_text())
    slow.abort()
    assert slow.wait(60) == "Aborted"


def test_options_are_checked():
    with pytest.raises(dw.OptionError, match="solver") as err:
        dw.train("nothing", REGRESSION, solver="foo")
    assert err.value.field == "solver" or "No dataset" in str(err.value)
    ds = dw.datasets.gradients("g", train_count=8, val_count=0, image_size=4)
    ds.wait(30)
    with pytest.raises(dw.OptionError) as err:
        dw.train(ds, REGRESSION, policy="multistep", stepvalues="50,oops")
    assert err.value.field == "stepvalues"
    assert not math.isnan(dw.lr_curve()[1][0])


def test_autoencoder_trains_on_images_without_labels():
    src = dw.datasets.gradients("g28", train_count=64, val_count=16, image_size=(28, 28), seed=0)
    src.wait(60)
    ds = dw.datasets.generic("images only", str(src.db_path("train")), val_features=str(src.db_path("val")),
                             mean_file=str(src.mean_path))
    ds.wait(60)
    job = train(ds, dw.zoo.source("autoencoder"), "ae", epochs=3, lr=0.01, seed=0)
    assert job.wait(120) == "Done"
    val = job.metrics("val")
    assert val[-1]["loss"] < val[0]["loss"], "label = input: the reconstruction improves"
