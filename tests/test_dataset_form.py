"""DatasetForm: DIGITS' defaults, as-you-type checks next to the fields, and Create → progress view → summary."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import digits_widgets as dw
from digits_widgets.ui.checks import ERROR, OK, WARNING
from digits_widgets.ui.dataset_form import TABS, DatasetForm
from digits_widgets.ui.dataset_view import DatasetView
from digits_widgets.ui.fields import REQUIRED
from digits_widgets.ui.pump import get_pump


def _png(path: Path, value: int = 0, size: int = 6, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    Image.fromarray(np.full(shape, value, np.uint8), mode).save(path)


@pytest.fixture
def class_folder(tmp_path: Path) -> Path:
    """3 classes x 8 images; 'big_cat' is read as the class 'big cat'."""
    root = tmp_path / "classes"
    for c, name in enumerate(("big_cat", "bird", "dog")):
        for i in range(8):
            _png(root / name / f"{i}.png", value=40 * c + i)
    (root / ".ipynb_checkpoints").mkdir()  # hidden: not a class
    return root


@pytest.fixture
def gradients_job():
    job = dw.datasets.gradients("grad", train_count=40, val_count=10, image_size=8, seed=1)
    job.wait()
    return job


def values(form: DatasetForm, tab: str) -> dict:
    return {k: f.value for k, f in form.fields[tab].items()}


def type_into(field, value) -> None:
    field.control.value = str(value)  # what the browser sends when the user types


def test_defaults_match_digits():
    form = DatasetForm()
    assert form.tabs.titles == ("Classification", "Processing", "Segmentation", "Other", "Gradients")
    assert form.tab == "classification" and TABS[4] == "gradients"
    assert form.name.value is None and form.name.required and form.group.value is None
    c = values(form, "classification")
    assert (c["method"], c["pct_val"], c["pct_test"], c["min_per_class"], c["max_per_class"]) == (
        "folder", 25, 0, 2, None)
    assert (c["has_val_folder"], c["has_test_folder"], c["use_val"], c["use_test"], c["shuffle"]) == (
        False, False, True, False, True)
    assert (c["channels"], c["width"], c["height"], c["resize_mode"], c["encoding"]) == (3, 256, 256, "squash", "png")
    assert [v for _, v in form.fields["classification"]["resize_mode"].control.options] == [
        "squash", "crop", "fill", "half_crop"]
    for tab in ("processing", "segmentation"):
        p = values(form, tab)
        assert (p["val_percent"], p["has_val_folder"], p["channel_conversion"], p["feature_encoding"],
                p["label_encoding"], p["force_same_shape"]) == (10, False, "none", "png", "none", True)
    s = values(form, "segmentation")
    assert s["colormap_method"] == "label" and s["class_labels_file"] is None
    o = values(form, "other")
    assert o == {"train_features": None, "train_labels": None, "val_features": None, "val_labels": None,
                 "force_same_shape": True, "mean_file": None, "labels_file": None}
    assert values(form, "gradients") == {"train_count": 1000, "val_count": 250, "test_count": 0, "width": 32,
                                         "height": 32, "feature_encoding": "png"}
    # DIGITS' help texts ride along as tooltips
    assert form.group.control.tooltip == "An optional group name for organization on the main page."
    assert "subfolders full of images" in form.fields["classification"]["folder"].control.tooltip
    assert form.fields["other"]["mean_file"].help == "Path to a .binaryproto file on the server"
    # a fresh form is not a wall of red, but Create waits for the required fields
    assert all(not f.message_text for f in form.all_fields())
    assert form.create_button.disabled


def test_missing_folder_says_does_not_exist(tmp_path):
    form = DatasetForm()
    field = form.fields["classification"]["folder"]
    type_into(field, tmp_path / "nope")
    assert "does not exist" in field.message_text and field.verdict.level == ERROR
    assert "#c62828" in field.message.value  # red, next to the field
    assert form.create_button.disabled
    type_into(form.fields["processing"]["feature_folder"], tmp_path / "nope")
    assert "Folder does not exist or is not reachable" in form.fields["processing"]["feature_folder"].message_text


def test_class_folder_shows_classes_and_images(class_folder, tmp_path):
    form = DatasetForm(name="animals")
    c = form.fields["classification"]
    type_into(c["folder"], class_folder)
    assert c["folder"].message_text == "3 classes, 24 images" and c["folder"].verdict.level == OK
    assert c["folder"].data == ["big cat", "bird", "dog"]
    assert not form.create_button.disabled
    # the minimum per class is applied as it is typed
    for i in range(8, 10):
        _png(class_folder / "dog" / f"{i}.png")
    type_into(c["min_per_class"], 9)
    assert c["folder"].verdict.level == ERROR and "Did not find two valid categories" in c["folder"].message_text
    type_into(c["min_per_class"], 1)
    type_into(c["max_per_class"], 4)
    assert c["folder"].message_text == "3 classes, 12 images"
    (tmp_path / "one").mkdir()
    _png(tmp_path / "one" / "only" / "a.png")
    type_into(c["folder"], tmp_path / "one")
    assert "at least two subdirectories" in c["folder"].message_text
    file = tmp_path / "one" / "only" / "a.png"
    type_into(c["folder"], file)
    assert c["folder"].message_text.startswith("Not a folder")


def test_skipped_classes_warn_and_val_folder_is_compared(class_folder, tmp_path):
    _png(class_folder / "fish" / "0.png")
    form = DatasetForm()
    c = form.fields["classification"]
    type_into(c["folder"], class_folder)
    assert c["folder"].verdict.level == WARNING
    assert c["folder"].message_text.startswith("3 classes, 24 images; skipping 1 with fewer than 2 images: fish")
    c["has_val_folder"].value = True
    assert c["val_folder"].visible and not c["pct_val"].visible
    assert form.create_button.disabled  # the separate folder is now required
    for name in ("dog", "cow"):
        _png(tmp_path / "val" / name / "0.png")
    type_into(c["val_folder"], tmp_path / "val")
    assert c["val_folder"].verdict.level == WARNING and "cow" in c["val_folder"].message_text


def test_number_fields_check_ranges():
    form = DatasetForm(name="x")
    c = form.fields["classification"]
    type_into(c["pct_val"], 150)
    assert c["pct_val"].message_text == "Number must be between 0 and 100."
    type_into(c["pct_val"], "abc")
    assert c["pct_val"].message_text == "Not a valid whole number: 'abc'."
    type_into(c["pct_val"], 80)
    type_into(c["pct_test"], 30)
    assert c["pct_test"].message_text == "Validation (80%) plus test (30%) exceeds 100%."
    type_into(c["pct_val"], 50)  # fixing one fixes the other
    assert c["pct_test"].message_text == ""
    type_into(c["max_per_class"], 1)
    assert "greater than Minimum samples per class" in c["max_per_class"].message_text
    g = form.fields["gradients"]
    type_into(g["train_count"], 0)
    assert g["train_count"].message_text == "Number must be at least 1."
    type_into(g["val_count"], "")
    assert g["val_count"].value is None and g["val_count"].error is None  # optional, as in DIGITS


def test_processing_pair_counts_must_match(tmp_path):
    for i in range(5):
        _png(tmp_path / "features" / f"{i:02d}.png", i)
    for i in range(4):
        _png(tmp_path / "labels" / f"{i:02d}.png", i, mode="L")
    form = DatasetForm(name="pairs").select("processing")
    p = form.fields["processing"]
    type_into(p["feature_folder"], tmp_path / "features")
    assert p["feature_folder"].message_text == "5 images"
    type_into(p["label_folder"], tmp_path / "labels")
    assert p["label_folder"].verdict.level == ERROR
    assert "(5!=4)" in p["label_folder"].message_text and "do not match" in p["label_folder"].message_text
    assert form.create_button.disabled
    _png(tmp_path / "labels" / "04.png", mode="L")
    p["feature_folder"].control.value += "/"  # any edit of the features re-checks the labels too
    assert p["label_folder"].message_text == "5 images" and not form.create_button.disabled
    job = form.create()
    assert job is not None and job.type == "processing"
    job.wait()
    assert job.count("train") + job.count("val") == 5


def test_segmentation_colormap_file_only_when_asked(tmp_path):
    form = DatasetForm().select("segmentation")
    s = form.fields["segmentation"]
    assert not s["colormap_text_file"].visible
    s["colormap_method"].value = "textfile"
    assert s["colormap_text_file"].visible and "Color map file: " + REQUIRED in form.problems()
    cmap = tmp_path / "cmap.txt"
    cmap.write_text("0 0 0\n255 0 0\n")
    type_into(s["colormap_text_file"], cmap)
    assert s["colormap_text_file"].message_text == "2 colours"
    cmap.write_text("0 0\n")
    s["colormap_text_file"].control.value += " "
    assert s["colormap_text_file"].verdict.level == ERROR


def test_lmdb_paths_show_entries_and_shape(gradients_job, tmp_path):
    form = DatasetForm(name="reuse").select("other")
    o = form.fields["other"]
    type_into(o["train_features"], gradients_job.db_path("train"))
    assert o["train_features"].message_text == "40 entries, shape 8x8x1 (WxHxC)"
    type_into(o["train_labels"], gradients_job.db_path("train", "labels"))
    assert o["train_labels"].message_text == "40 entries, shape 2"
    type_into(o["val_labels"], gradients_job.db_path("train", "labels"))
    assert "without Validation Images" in o["val_labels"].message_text
    type_into(o["val_features"], gradients_job.db_path("val"))
    assert "10 labels but 40 images" not in o["val_labels"].message_text
    assert "40 labels but 10 images" in o["val_labels"].message_text  # re-checked when the images changed
    type_into(o["val_labels"], gradients_job.db_path("val", "labels"))
    type_into(o["mean_file"], gradients_job.mean_path)
    assert o["mean_file"].message_text == "mean image 8x8x1 (WxHxC)"
    (tmp_path / "empty").mkdir()
    type_into(o["val_features"], tmp_path / "empty")
    assert "not an LMDB" in o["val_features"].message_text
    type_into(o["val_features"], gradients_job.db_path("val"))
    type_into(o["mean_file"], tmp_path / "none.binaryproto")
    assert o["mean_file"].message_text == "File does not exist"
    type_into(o["mean_file"], gradients_job.mean_path)
    job = form.create()
    assert job is not None and job.wait() == "Done" and job.count("val") == 10


def test_create_refuses_with_messages_next_to_fields(class_folder):
    form = DatasetForm()
    form.create_button.click()  # clicked although disabled (or via code): refuses, says why
    assert form.job is None and form.children[1] is form.tabs
    assert form.name.message_text == REQUIRED
    assert form.fields["classification"]["folder"].message_text == REQUIRED
    assert "Cannot create the dataset" in form.status.value and "Dataset Name" in form.status.value
    assert dw.jobs() == []


def test_gradients_create_shows_progress_then_summary():
    form = DatasetForm()
    form.select("gradients")
    g = form.fields["gradients"]
    for key, value in (("train_count", 40), ("val_count", 10), ("width", 8), ("height", 8)):
        type_into(g[key], value)
    type_into(form.name, "gradients")
    type_into(form.group, "tutorials")
    assert not form.create_button.disabled
    form.create_button.click()
    job, view = form.job, form.view
    assert isinstance(view, DatasetView) and form.children == (view,)
    assert job.type == "gradients" and job.params["image_size"] == (8, 8)
    assert view.bar in view.children[2].children and "Status:" in view.status.value
    job.wait()
    get_pump().tick()
    assert "Done" in view.status.value and view.bar.value == view.bar.max == 50
    assert view.progress.value.startswith("50 / 50")
    table = view.summary.children[0].value
    assert "<b>train</b></td><td>40 entries" in table and "<b>val</b></td><td>10 entries" in table
    assert "8x8x1 (WxHxC)" in table and "tutorials" in table
    assert bytes(view.mean_image.value).startswith(b"\x89PNG")
    assert dw.job("gradients").group == "tutorials"


def test_classification_from_folder_via_form(class_folder):
    form = DatasetForm(name="animals")
    c = form.fields["classification"]
    type_into(c["folder"], class_folder)
    type_into(c["width"], 8)
    type_into(c["height"], 6)
    c["channels"].value = 1
    fn, kwargs = form.arguments()
    assert fn is dw.datasets.classification
    assert kwargs["image_size"] == (6, 8) and kwargs["channels"] == 1 and kwargs["pct_val"] == 25
    assert "seed" not in kwargs, "no seed unless one is given: a new random split each time, as in DIGITS"
    job = form.create()
    job.wait()
    get_pump().tick()
    assert job.labels == ["big cat", "bird", "dog"] and job.feature_shape == (6, 8, 1)
    assert "3: big cat, bird, dog" in form.view.summary.children[0].value


def test_other_tab_registers_a_classification_db_with_its_labels_file(class_folder, tmp_path):
    src = dw.datasets.classification("animals", str(class_folder), image_size=6, pct_val=25, seed=0)
    assert src.wait() == "Done"
    form = DatasetForm(name="animals again").select("other")
    o = form.fields["other"]
    type_into(o["train_features"], src.db_path("train"))
    hint = o["train_features"].message_text
    assert hint.startswith(f"{src.count('train')} entries, shape 6x6x3 (WxHxC); class labels in its Datums")
    assert str(src.dir / "labels.txt") in hint, "the labels.txt DIGITS keeps beside train_db is pointed at"
    short = tmp_path / "short.txt"
    short.write_text("big cat\nbird\n")
    type_into(o["labels_file"], short)
    assert o["labels_file"].verdict.level == ERROR and "label 2" in o["labels_file"].message_text
    assert form.create_button.disabled
    type_into(o["labels_file"], src.dir / "labels.txt")
    assert o["labels_file"].message_text == "3 classes: big cat, bird, dog"
    type_into(o["train_labels"], src.db_path("val"))
    assert "clear the Labels LMDB fields" in o["labels_file"].message_text   # re-checked when labels change
    type_into(o["train_labels"], "")
    assert o["labels_file"].verdict.level == OK and not form.problems()
    fn, kw = form.arguments()
    assert fn is dw.datasets.generic and kw["labels_file"] == str(src.dir / "labels.txt")
    job = form.create()
    assert job is not None and job.wait() == "Done"
    assert job.task == "classification" and job.labels == ["big cat", "bird", "dog"]
    assert job.mean_path == src.dir / "train_db" / "mean.binaryproto", "Mean Image blank: the one beside the DB"


def test_a_seeded_form_makes_the_same_split_each_time(class_folder):
    keys = []
    for _ in range(2):
        form = DatasetForm(name="animals", seed=4)
        type_into(form.fields["classification"]["folder"], class_folder)
        assert form.arguments()[1]["seed"] == 4
        assert "seed" not in form.arguments("other")[1], "registering existing LMDBs draws nothing"
        job = form.create()
        job.wait()
        db = dw.open_db(job.db_path("val"))
        keys.append([(db.key(i), db[i].tobytes()) for i in range(len(db))])
    assert keys[0] == keys[1] and keys[0]


def test_textfile_method(class_folder, tmp_path):
    lines = [f"{p.relative_to(class_folder)} {i}" for i, d in enumerate(("big_cat", "bird", "dog"))
             for p in sorted((class_folder / d).glob("*.png"))]
    (tmp_path / "train.txt").write_text("\n".join(lines[::2]) + "\n")
    (tmp_path / "val.txt").write_text("\n".join(lines[1::2]) + "\n")
    (tmp_path / "labels.txt").write_text("cat\n")
    form = DatasetForm(name="listed")
    c = form.fields["classification"]
    c["method"].value = "textfile"
    assert c["train_list"].visible and not c["folder"].visible
    type_into(c["train_list"], tmp_path / "train.txt")
    assert "Image not found" in c["train_list"].message_text
    type_into(c["list_folder"], class_folder)
    assert c["train_list"].message_text == "12 images listed, labels 0..2"
    type_into(c["labels_file"], tmp_path / "labels.txt")
    assert "uses label 2 but this file names only 1 classes" in c["labels_file"].message_text
    (tmp_path / "labels.txt").write_text("cat\nbird\ndog\n")
    c["labels_file"].control.value += " "
    assert c["labels_file"].message_text == "3 classes: cat, bird, dog"
    assert "Validation images: " + REQUIRED in form.problems()
    type_into(c["val_list"], tmp_path / "val.txt")
    assert form.problems() == []
    fn, kwargs = form.arguments()
    assert kwargs["train_list"].endswith("train.txt") and kwargs["test_list"] is None and kwargs["shuffle"]


def test_list_file_check_warns_about_lines_without_a_valid_label(tmp_path):
    from digits_widgets.ui.checks import ERROR, WARNING, list_file_check
    (tmp_path / "a.png").write_bytes(b"")
    listing = tmp_path / "train.txt"
    listing.write_text("a.png 0\na.png cat\na.png -1\na.png 1\n")
    verdict = list_file_check(str(listing), None)
    assert verdict.level == WARNING and "2 line(s)" in verdict.text and "line 2" in verdict.text
    listing.write_text("a.png cat\n")
    assert list_file_check(str(listing), None).level == ERROR


def test_help_marks_render_without_the_circled_i_glyph():
    """U+24D8 is not in Debian's default fonts (an empty box): every help mark is a CSS circle around an "i"."""
    from digits_widgets.ui.fields import HELP_MARK

    form = DatasetForm()
    labels = [f.label.value for tab in TABS for f in form.fields[tab].values()]
    marks = [v for v in labels if "cursor:help" in v]
    assert marks and all(HELP_MARK in v for v in marks)
    text = " ".join(labels).lower()
    assert "\u24d8" not in text and "&#9432;" not in text and "&#x24d8;" not in text
