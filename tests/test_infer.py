"""Inference with the training transforms, on the tutorials' kinds of models; probes and reports."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import digits_widgets as dw
from digits_widgets.data import tutorial_data as td
from digits_widgets.data.generators import gradient_image
from digits_widgets.infer.probes import stats, tile_channels
from digits_widgets.store.datum import array_to_datum
from digits_widgets.store.lmdb_db import LmdbWriter, generic_key

pytestmark = pytest.mark.slow


@pytest.fixture
def regression(tmp_path):
    paths = td.write_test_lmdbs(tmp_path / "lm", width=16, height=16, train_count=256, val_count=64, seed=0)
    ds = dw.datasets.generic("other", paths["train_images"], paths["train_labels"], paths["val_images"],
                             paths["val_labels"], mean_file=paths["train_mean"])
    ds.wait(60)
    model = dw.train(ds, dw.zoo.source("gradients_regression"), "reg", epochs=12, lr=0.01, solver="adam",
                     batch_size=16, seed=0)
    model.wait(300)
    return model, paths


def test_test_one_predicts_the_slopes(regression):
    model, paths = regression
    out = model.infer(paths["test_image"]).outputs[0]
    assert np.abs(out - 0.5).max() < 0.1, out
    same = model.infer(np.asarray(Image.open(paths["test_image"]))).outputs[0]
    np.testing.assert_allclose(out, same, atol=1e-6)
    big = gradient_image(0.5, 0.5, 40, 40)  # resized to the dataset's 16x16 first, like DIGITS
    assert np.abs(model.infer(big).outputs[0] - 0.5).max() < 0.15


def test_test_db_and_snapshots(regression):
    model, _ = regression
    pred, labels = model.infer_db(limit=10)
    assert pred.outputs.shape == (10, 2) and labels.shape == (10, 2)
    assert np.abs(pred.outputs - labels).mean() < 0.1
    assert pred.names[:3] == ["0", "1", "2"]
    first = model.infer_db(limit=10, snapshot=1)[0].outputs
    assert not np.allclose(first, pred.outputs), "epoch 1 differs from the last epoch"
    assert model.infer_db(limit=10, snapshot="best")[0].outputs.shape == (10, 2)
    with pytest.raises(dw.JobError, match="doesn't exist"):
        model.infer("x.png", snapshot=99)


def test_probes_have_statistics(regression):
    model, paths = regression
    probes = model.probe(paths["test_image"])
    kinds = {(p.name, p.kind) for p in probes}
    assert ("fc", "activation") in kinds and ("fc.weight", "weights") in kinds
    for p in probes:
        counts, edges = p.histogram
        assert len(counts) == 20 and len(edges) == 21 and counts.sum() == p.data.size
        assert p.mean == pytest.approx(float(p.data.mean()), rel=1e-5, abs=1e-6)
    weight = next(p for p in probes if p.name == "fc.weight")
    assert weight.params == 2 * 256 and weight.layer_type == "Linear"
    tiles = tile_channels(np.random.rand(5, 4, 4))
    assert tiles.shape == (2 * 5 - 1, 3 * 5 - 1) and 0 <= tiles.min() and tiles.max() <= 1  # 2 rows of 3
    assert stats(np.zeros(3))[1] == 0


def test_fcn_runs_without_resize_on_a_larger_image(tmp_path):
    tri = dw.generate_triangles(tmp_path / "t", count=48, size=16, grid=3, seed=0)
    ds = dw.datasets.processing("tri", tri["input"], tri["target"], val_percent=25, seed=0)
    ds.wait(60)
    model = dw.train(ds, dw.zoo.source("segmentation_fcn"), "fcn", epochs=1, batch_size=8, mean="image",
                     solver="adam", lr=0.001, seed=0)
    model.wait(300)
    grid = np.asarray(Image.open(tri["grid"]))
    assert grid.shape == (48, 48)
    out = model.infer(tri["grid"], resize=False).outputs
    assert out.shape == (1, 1, 48, 48), "the mean image is resized to the input, DIGITS-style"
    assert model.infer(tri["grid"]).outputs.shape == (1, 1, 16, 16)
    # Test DB on a database of larger images: at their own size with "do not resize", else the dataset's
    with LmdbWriter(tmp_path / "grid_db") as db:
        for i in range(2):
            db.put_datum(generic_key(i), array_to_datum(np.roll(grid, 8 * i, axis=1)))
    pred, labels = model.infer_db(tmp_path / "grid_db", resize=False)
    assert pred.outputs.shape == (2, 1, 48, 48) and labels is None
    np.testing.assert_allclose(pred.outputs[0], out[0], rtol=1e-5, atol=1e-3)
    assert model.infer_db(tmp_path / "grid_db")[0].outputs.shape == (2, 1, 16, 16)


def test_classification_top5_accuracy_and_confusion(tmp_path):
    td.write_digit_folders(tmp_path / "d", per_class=12)
    ds = dw.datasets.classification("digits", str(tmp_path / "d"), image_size=28, channels=1, pct_val=25, seed=0)
    ds.wait(60)
    model = dw.train(ds, dw.zoo.source("lenet"), "lenet", epochs=2, batch_size=16, seed=0)
    model.wait(300)
    files = sorted((tmp_path / "d" / "3_three").iterdir())[:2] + sorted((tmp_path / "d" / "7_seven").iterdir())[:2]
    tops = model.classify([str(f) for f in files])
    assert len(tops) == 4 and all(len(t) == 5 for t in tops)
    assert all(name in ds.labels for name, _ in tops[0]) and sum(p for _, p in tops[0]) <= 100.01
    tops, report = model.classify([str(f) for f in files], labels=[3, 3, 7, 7])
    assert report["confusion"].shape == (10, 10) and report["confusion"].sum() == 4
    assert 0 <= report["accuracy"] <= 1 and report["top5_accuracy"] >= report["accuracy"]
