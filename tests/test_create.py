"""Dataset jobs end to end on small real image files: what they write, and how they fail."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import digits_widgets as dw
from digits_widgets.data import generators
from digits_widgets.store.datum import decode_datum


def _img(path, size=(20, 12), colour=(200, 30, 30), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour if mode == "RGB" else colour[0]).save(path)
    return path


@pytest.fixture
def class_folders(tmp_path):
    root = tmp_path / "classes"
    colours = {"cat": (250, 0, 0), "big_dog": (0, 250, 0), "zebra": (0, 0, 250)}
    for name, colour in colours.items():
        for i in range(8):
            ext = "png" if i % 2 else "jpg"
            _img(root / name / ("sub" if i > 5 else "") / f"{i}.{ext}", size=(20 + i, 12), colour=colour)
    (root / "cat" / "notes.txt").write_text("not an image")
    return root


def test_classification_from_folders(class_folders):
    job = dw.datasets.classification("animals", str(class_folders), image_size=(16, 16), pct_val=25, seed=1)
    assert job.wait(60) == "Done"
    assert job.labels == ["big dog", "cat", "zebra"]
    assert (job.dir / "labels.txt").read_text() == "big dog\ncat\nzebra\n"
    assert job.count("train") + job.count("val") == 24 and job.count("val") == 6
    db = dw.open_db(job.dir / "train_db")
    assert len(db) == job.count("train")
    assert all(len(db.key(i).split("_")[0]) == 8 for i in range(len(db)))
    for i in range(len(db)):
        label = db.label(i)
        assert int(db.key(i).split("_")[1]) == label
        img = db[i]
        assert img.shape == (16, 16, 3)
        expect = {0: 1, 1: 0, 2: 2}[label]  # big dog is green, cat red, zebra blue
        assert img.reshape(-1, 3).mean(0).argmax() == expect
    d = decode_datum(db.raw(0))
    assert d.encoded and d.data[:4] == b"\x89PNG"
    mean = dw.read_mean(job.dir / "mean.binaryproto")
    assert mean.shape == (16, 16, 3)
    assert (job.dir / "mean.png").is_file()
    assert job.feature_shape == (16, 16, 3)
    assert "3 classes" in job.summary()


def test_classification_grayscale_raw_and_text_lists(class_folders, tmp_path):
    lines = [f"{p} {i // 8}" for i, p in enumerate(sorted(class_folders.rglob("*.png")))]
    lst = tmp_path / "train.txt"
    lst.write_text("# path label\n" + "\n".join(lines) + "\n")
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\n")
    job = dw.datasets.classification("lists", train_list=str(lst), labels_file=str(labels), image_size=8,
                                     channels=1, encoding="none", resize_mode="crop")
    assert job.wait(60) == "Done"
    db = job.open_db("train")
    assert len(db) == len(lines) and db[0].shape == (8, 8)
    d = decode_datum(db.raw(0))
    assert not d.encoded and d.channels == 1 and len(d.data) == 64
    assert job.labels == ["a", "b", "c"]


def test_text_list_bad_lines_are_skipped_and_logged(class_folders, tmp_path):
    paths = sorted(class_folders.rglob("*.png"))
    lst = tmp_path / "train.txt"
    lst.write_text("".join(f"{p} {i % 2}\n" for i, p in enumerate(paths[:6])) + f"{paths[0]} dog\n{paths[1]}\n")
    job = dw.datasets.classification("skips", train_list=str(lst), image_size=8, channels=1, pct_val=0)
    assert job.wait(60) == "Done"
    assert len(job.open_db("train")) == 6
    log = job.path("create.log").read_text()
    assert "WARNING" in log and "skipped 2 line(s)" in log and str(lst) in log


def test_text_list_without_a_valid_line_is_refused(class_folders, tmp_path):
    lst = tmp_path / "train.txt"
    lst.write_text(f"{next(class_folders.rglob('*.png'))} dog\n")
    _fails(dw.datasets.classification("nolines", train_list=str(lst), image_size=8), "No images listed")


def test_processing_pairs_split_and_formats(tmp_path):
    out = generators.generate_triangles(tmp_path / "tri", count=40, size=16, grid=2, seed=0)
    job = dw.datasets.processing("tri", out["input"], out["target"], val_percent=10, seed=3)
    assert job.wait(60) == "Done"
    assert (job.count("train"), job.count("val")) == (36, 4)
    f, lab = job.open_db("train", "features"), job.open_db("train", "labels")
    assert [f.key(i) for i in range(len(f))] == [lab.key(i) for i in range(len(lab))]
    assert f.key(0) == "000000000"
    assert decode_datum(f.raw(0)).encoded, "features are PNG by default"
    assert not decode_datum(lab.raw(0)).encoded, "labels are raw by default"
    assert f[0].shape == (16, 16) and lab[0].shape == (16, 16)
    # outlined inputs have fewer black pixels than their filled targets
    assert sum((f[i] == 0).sum() for i in range(len(f))) < sum((lab[i] == 0).sum() for i in range(len(lab)))
    assert dw.read_mean(job.mean_path).shape == (16, 16, 1)
    assert job.info["split_seed"] == 3


def test_segmentation_keeps_palette_and_class_names(tmp_path):
    palette = [0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (768 - 9)
    (tmp_path / "lab").mkdir()
    for i in range(6):
        _img(tmp_path / "feat" / f"{i}.png", size=(8, 8), colour=(i * 40, 0, 0))
        lab = Image.fromarray(np.full((8, 8), i % 3, np.uint8), "P")
        lab.putpalette(palette)
        lab.save(tmp_path / "lab" / f"{i}.png")
    names = tmp_path / "classes.txt"
    names.write_text("background\nred\ngreen\n")
    job = dw.datasets.segmentation("seg", str(tmp_path / "feat"), str(tmp_path / "lab"), val_percent=0,
                                   class_labels_file=str(names))
    assert job.wait(60) == "Done"
    assert job.palette[:9] == palette[:9]
    assert job.class_names == ["background", "red", "green"]
    assert job.info["nclasses"] == 3
    labels = job.open_db("train", "labels")
    assert sorted({int(labels[i][0, 0]) for i in range(len(labels))}) == [0, 1, 2]


def test_gradients_dataset_matches_the_formula():
    job = dw.datasets.gradients("grads", train_count=30, val_count=10, image_size=(12, 10), seed=0)
    assert job.wait(60) == "Done"
    f, lab = job.open_db("val"), job.open_db("val", "labels")
    assert len(f) == 10
    for i in range(len(f)):
        xs, ys = lab[i]
        assert lab[i].dtype == np.float32 and -0.5 <= xs < 0.5 and -0.5 <= ys < 0.5
        np.testing.assert_array_equal(f[i], generators.gradient_image(xs, ys, 12, 10))
    assert job.task == "regression" and job.feature_shape == (12, 10, 1) and job.label_shape == (2,)


def test_generic_registers_existing_lmdbs_without_copying():
    src = dw.datasets.gradients("src", train_count=20, val_count=5, image_size=8, seed=0)
    src.wait(60)
    job = dw.datasets.generic("other", str(src.db_path("train")), str(src.db_path("train", "labels")),
                              str(src.db_path("val")), str(src.db_path("val", "labels")),
                              mean_file=str(src.mean_path))
    assert job.wait(60) == "Done"
    assert job.db_path("train") == src.db_path("train")
    assert not (job.dir / "train_db").exists()
    assert job.count("train") == 20 and job.count("val") == 5
    assert job.parents == [src.id]
    with pytest.raises(dw.JobError, match="Cannot delete"):
        dw.delete(src.id)


# ---- bad input -------------------------------------------------------------------------------------
def _fails(job, *needles):
    with pytest.raises(dw.DigitsError) as err:
        job.wait(60)
    assert job.status == "Error"
    for n in needles:
        assert n in job.error and n in str(err.value)
    leftovers = {p.name for p in job.dir.iterdir()} - {"job.json", "job.log", "create.log"}
    assert leftovers == set(), f"partial outputs left behind: {leftovers}"
    return job


def test_missing_and_empty_folders(tmp_path):
    _fails(dw.datasets.classification("x", str(tmp_path / "nope")), str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    _fails(dw.datasets.classification("x", str(tmp_path / "empty")), "subdirectories")
    _fails(dw.datasets.processing("x", str(tmp_path / "nope"), str(tmp_path / "empty")), "does not exist")
    _fails(dw.datasets.processing("x", str(tmp_path / "empty"), str(tmp_path / "empty")),
           "Unable to find supported images")


def test_class_with_too_few_images(tmp_path):
    for i in range(3):
        _img(tmp_path / "c" / "many" / f"{i}.png")
    _img(tmp_path / "c" / "one" / "0.png")
    _fails(dw.datasets.classification("x", str(tmp_path / "c")), "two valid categories")


def test_truncated_and_non_image_files(class_folders):
    victim = sorted(class_folders.rglob("*.png"))[3]
    victim.write_bytes(victim.read_bytes()[:40])
    job = _fails(dw.datasets.classification("x", str(class_folders), image_size=8), str(victim),
                 "skip_bad_images")
    assert ".." not in job.error.replace(str(victim), "")   # one full stop between sentences
    ok = dw.datasets.classification("y", str(class_folders), image_size=8, skip_bad_images=True)
    assert ok.wait(60) == "Done"
    assert ok.count("train") + ok.count("val") == 23
    assert str(victim) in (ok.dir / "create.log").read_text()
    assert job.id != ok.id


def test_unpaired_and_mismatched_sizes(tmp_path):
    for i in range(4):
        _img(tmp_path / "f" / f"{i}.png", size=(8, 8))
        _img(tmp_path / "l" / f"{i}.png", size=(8, 8), mode="L")
    _img(tmp_path / "l" / "extra.png", size=(8, 8), mode="L")
    _fails(dw.datasets.processing("x", str(tmp_path / "f"), str(tmp_path / "l")),
           "Expect same number of images in feature and label folders (4!=5)")
    (tmp_path / "l" / "extra.png").rename(tmp_path / "l" / "zz.png")
    (tmp_path / "l" / "3.png").unlink()
    _fails(dw.datasets.processing("x", str(tmp_path / "f"), str(tmp_path / "l")),
           "No corresponding feature/label pair found")
    (tmp_path / "l" / "zz.png").unlink()
    _img(tmp_path / "l" / "3.png", size=(8, 8), mode="L")
    _img(tmp_path / "f" / "2.png", size=(9, 8))
    _fails(dw.datasets.processing("x", str(tmp_path / "f"), str(tmp_path / "l"), val_percent=0),
           "Feature shape mismatch")


def test_generic_rejects_non_lmdb_and_different_keys(tmp_path):
    (tmp_path / "plain").mkdir()
    _fails(dw.datasets.generic("x", str(tmp_path / "plain")), "not an LMDB")
    a = dw.datasets.gradients("a", train_count=6, val_count=0, image_size=4, seed=0)
    b = dw.datasets.gradients("b", train_count=7, val_count=0, image_size=4, seed=0)
    a.wait(30), b.wait(30)
    _fails(dw.datasets.generic("x", str(a.db_path("train")), str(b.db_path("train", "labels"))),
           "same keys")
    _fails(dw.datasets.generic("x", str(a.db_path("train")), mean_file=str(tmp_path / "nope.binaryproto")),
           "mean_file")


def test_disk_full_like_write_error(tmp_path, monkeypatch):
    from digits_widgets.store import lmdb_db

    calls = {"n": 0}
    real_put = lmdb_db.LmdbWriter.put

    def failing_put(self, key, value):
        calls["n"] += 1
        if calls["n"] > 15:
            raise dw.DbError(f"Could not write to {self.path}: No space left on device; check free disk space")
        return real_put(self, key, value)

    monkeypatch.setattr(lmdb_db.LmdbWriter, "put", failing_put)
    _fails(dw.datasets.gradients("full", train_count=50, val_count=0, image_size=4), "No space left")


def test_abort_leaves_nothing_that_looks_complete():
    job = dw.datasets.gradients("big", train_count=200000, val_count=0, image_size=32)
    while job.progress.get("done", 0) == 0:
        job.wait(0.02, raise_on_error=False)
    job.abort()
    assert job.wait(30) == "Aborted"
    assert not (job.dir / "train_db").exists()
    assert json.loads((job.dir / "job.json").read_text())["status_history"][-1][0] == "Aborted"
    with pytest.raises(dw.JobError, match="Aborted"):
        job.require_done()
