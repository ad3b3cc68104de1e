"""DatasetView: progress through the pump, summary and explorer when Done, the error when not, and from disk."""
from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from PIL import Image

import digits_widgets as dw
from digits_widgets.store.jobs import Job, create_job, load_job
from digits_widgets.ui import images
from digits_widgets.ui.dataset_view import DatasetView, eta_text, progress_text, tail
from digits_widgets.ui.pump import get_pump


def _size(png) -> tuple[int, int]:
    return Image.open(io.BytesIO(bytes(png))).size


@pytest.fixture
def gradients_job():
    job = dw.datasets.gradients("grad", train_count=40, val_count=10, image_size=8, seed=3)
    job.wait()
    return job


def test_progress_log_and_stage_arrive_through_the_pump():
    go, reached, release = threading.Event(), threading.Event(), threading.Event()

    def work(job):
        assert go.wait(10)  # the view subscribes first, so every event below reaches it
        job.log("Writing 10 train entries to train_db/features", "create.log")
        job.report_progress(5, 10, "train")
        reached.set()
        assert release.wait(10)
        job.check_abort()

    job = create_job("dataset", "gradients", "slow", {})
    job.start(work)
    view = DatasetView(job)
    assert view.bar.value == 0 and view.progress.value == ""
    go.set()
    assert reached.wait(10)
    assert get_pump().tick() > 0
    assert (view.bar.value, view.bar.max) == (5, 10)
    assert view.progress.value.startswith("5 / 10")
    assert "train" in view.stage.value and "Running" in view.status.value
    assert "Writing 10 train entries" in view.log_box.value
    assert view.abort_button.layout.display != "none"
    view.abort_button.click()  # Abort reaches the worker
    release.set()
    assert job.wait(10) == "Aborted"
    get_pump().tick()
    assert "Aborted" in view.status.value and "aborted" in view.error.value
    assert view.abort_button.layout.display == "none" and view._stop is None  # stopped watching


def test_job_run_elsewhere_is_followed_from_job_json():
    job = create_job("dataset", "gradients", "elsewhere", {})
    job.set_status("Running")  # claimed by a live process, but no thread of this view's job object runs it
    worker = load_job(job.dir)  # a second view of the directory plays the other process
    assert worker is not job
    view = DatasetView(job)
    assert "Running" in view.status.value and view.abort_button.layout.display == "none"
    worker.log("Writing 6 train entries", "create.log")
    worker.report_progress(3, 6, "train")  # the first report is written to job.json at once
    get_pump().tick(force=True)
    assert view.progress.value.startswith("3 / 6") and "Writing 6 train" in view.log_box.value
    worker.set_status("Done")
    get_pump().tick(force=True)
    assert "Done" in view.status.value and view._stop is None


def test_done_job_shows_summary_mean_and_samples(gradients_job):
    view = DatasetView(gradients_job)
    table = view.summary.children[0].value
    assert "<b>train</b></td><td>40 entries" in table and "<b>val</b></td><td>10 entries" in table
    assert "8x8x1 (WxHxC)" in table
    png = bytes(view.mean_image.value)
    assert png.startswith(b"\x89PNG") and min(_size(png)) >= 64  # 8x8 enlarged so the pixels show
    cells = view.samples.children
    assert len(cells) == 8
    captions = [c.children[1].value for c in cells]
    assert all(cap.startswith("<small>#") and "(" in cap for cap in captions)  # slopes (x, y) as labels
    first = gradients_job.samples("train", 0, 1)[0][1]
    assert f"{first[0]:.3f}" in captions[0]


def test_explorer_pages_through_the_db(gradients_job):
    view = DatasetView(gradients_job, page_size=12)
    ex = view.explore()
    assert view.explore() is ex and ex in view.summary.children
    assert ex.split.options == ("train", "val") and ex.pages == 4
    assert ex.where.value.startswith("1–12 of 40") and len(ex.grid.children) == 12 and ex.prev.disabled
    ex.next.click()
    assert ex.where.value.startswith("13–24 of 40") and "#12" in ex.grid.children[0].children[1].value
    for _ in range(5):
        ex.next.click()
    assert ex.where.value.startswith("37–40 of 40") and len(ex.grid.children) == 4 and ex.next.disabled
    ex.prev.click()
    assert ex.page == 2
    ex.split.value = "val"
    assert ex.where.value.startswith("1–10 of 10") and ex.next.disabled


def test_error_job_shows_its_error_in_red():
    job = dw.datasets.gradients("bad", train_count=0)
    view = DatasetView(job)
    assert job.wait(raise_on_error=False) == "Error"
    get_pump().tick()
    assert "Error" in view.status.value
    assert "train_count must be at least 1" in view.error.value and "#c62828" in view.error.value
    assert view.bar.bar_style == "danger" and view.summary.children == ()


def test_finished_job_from_disk_shows_summary_at_once(gradients_job):
    Job._live.clear()  # as after a kernel restart: only the directory is left
    view = DatasetView(gradients_job.id)
    assert view.job is not gradients_job and "Done" in view.status.value
    assert view._stop is None and "40 entries" in view.summary.children[0].value
    assert "Done: train 40, val 10" in view.log_box.value


def test_classification_samples_are_labelled_with_class_names(tmp_path):
    for c, name in enumerate(("cat", "dog")):
        for i in range(4):
            (tmp_path / name).mkdir(exist_ok=True)
            Image.fromarray(np.full((5, 7, 3), 60 * c + i, np.uint8)).save(tmp_path / name / f"{i}.png")
    job = dw.datasets.classification("pets", str(tmp_path), image_size=6, pct_val=25, seed=0)
    job.wait()
    view = DatasetView(job)
    assert "2: cat, dog" in view.summary.children[0].value
    captions = " ".join(c.children[1].value for c in view.samples.children)
    assert "cat" in captions and "dog" in captions


def test_label_images_are_shown_beside_features(tmp_path):
    for i in range(4):
        for folder in ("f", "l"):
            (tmp_path / folder).mkdir(exist_ok=True)
        Image.fromarray(np.full((6, 6, 3), 50 * i, np.uint8)).save(tmp_path / "f" / f"{i}.png")
        lab = Image.fromarray(np.eye(6, dtype=np.uint8), "P")
        lab.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
        lab.save(tmp_path / "l" / f"{i}.png")
    job = dw.datasets.segmentation("seg", str(tmp_path / "f"), str(tmp_path / "l"), val_percent=0, seed=0)
    job.wait()
    view = DatasetView(job)
    cell = view.samples.children[1]
    assert len(cell.children[0].children) == 2  # feature and its label image
    label_png = Image.open(io.BytesIO(bytes(cell.children[0].children[1].value))).convert("RGB")
    assert (255, 0, 0) in {c for _, c in label_png.getcolors()}  # coloured with the dataset's palette


def test_image_helpers():
    mean = np.full((4, 4, 1), 127.6, np.float32)
    assert images.to_uint8(mean).shape == (4, 4) and images.to_uint8(mean)[0, 0] == 128
    assert images.to_uint8(np.array([[0, 1000]], np.uint16)).tolist() == [[0, 255]]
    assert _size(images.png_bytes(np.zeros((8, 16), np.uint8))) == (128, 64)
    assert _size(images.png_bytes(np.zeros((1000, 500, 3), np.uint8))) == (128, 256)
    assert images.label_text(np.array([0.1234, -0.5], np.float32)) == "(0.123, -0.500)"
    assert images.label_text("cat") == "cat" and images.label_text(None) == ""
    assert images.shape_text((256, 128, 3)) == "128x256x3" and images.shape_text((5, 7)) == "7x5x1"
    assert images.is_image_like(np.zeros((4, 4))) and not images.is_image_like(np.zeros(2))
    assert _size(images.grid_png([np.zeros((8, 8))] * 5, cols=4, cell=16, pad=2)) == (74, 38)
    assert len(images.default_palette()) == 768


def test_progress_text_and_tail(tmp_path):
    assert progress_text({"done": 5, "total": 10, "rate": 2.5, "eta": 2.0}) == "5 / 10 · 2.5/s · ETA 2s"
    assert progress_text({"done": 10, "total": 10, "rate": 250.0, "eta": 0.0}) == "10 / 10 · 250/s"
    assert eta_text(3725) == "ETA 1:02:05" and eta_text(65) == "ETA 1:05" and eta_text(None) == ""
    log = tmp_path / "create.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert tail(log, 3) == ["line 97", "line 98", "line 99"]
    assert tail(tmp_path / "missing.log") == []
