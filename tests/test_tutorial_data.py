"""The tutorials' own data: digits folders, DIGITS' test_lmdb_creator, degraded image pairs."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import digits_widgets as dw
from digits_widgets.data import tutorial_data as td
from digits_widgets.data.generators import gradient_image


def test_digit_folders_are_28x28_class_folders(tmp_path):
    counts = td.write_digit_folders(tmp_path / "d", per_class=5)
    assert list(counts) == [f"{d}_{n}" for d, n in enumerate(td.DIGIT_NAMES)] and set(counts.values()) == {5}
    img = np.asarray(Image.open(next((tmp_path / "d" / "3_three").iterdir())))
    assert img.shape == (28, 28) and img.max() > 200 and img[:3].max() == 0, "digit centred on black"
    odd_even = td.write_digit_folders(tmp_path / "oe", groups={"even": [0, 2, 4, 6, 8], "odd": [1, 3, 5, 7, 9]},
                                      per_class=100)
    assert odd_even == {"even": 100, "odd": 100}
    with pytest.raises(dw.DatasetError, match="not empty"):
        td.write_digit_folders(tmp_path / "d")


def test_test_lmdbs_register_as_other_dataset(tmp_path):
    paths = td.write_test_lmdbs(tmp_path / "lm", width=12, height=10, train_count=30, val_count=8, seed=0)
    db = dw.open_db(paths["train_images"])
    assert [db.key(i) for i in range(12)] == [str(i) for i in range(12)], "str(i) keys in numeric order"
    labels = dw.open_db(paths["train_labels"])
    np.testing.assert_array_equal(db[5], gradient_image(*labels[5], 10, 12))
    test = np.asarray(Image.open(paths["test_image"]))
    np.testing.assert_array_equal(test, gradient_image(0.5, 0.5, 10, 12))
    job = dw.datasets.generic("other", paths["train_images"], paths["train_labels"], paths["val_images"],
                              paths["val_labels"], mean_file=paths["train_mean"])
    assert job.wait(60) == "Done" and job.count("train") == 30 and job.count("val") == 8


def test_degraded_pairs_are_worse_than_their_targets(tmp_path):
    out = td.write_degraded_pairs(tmp_path / "p", count=6, size=32, seed=0)
    src = sorted((tmp_path / "p" / "source").iterdir())
    tgt = sorted((tmp_path / "p" / "target").iterdir())
    assert [p.name for p in src] == [p.name for p in tgt] and len(src) == 6
    for s, t in zip(src, tgt):
        a, b = np.asarray(Image.open(s), np.float64), np.asarray(Image.open(t), np.float64)
        assert a.shape == b.shape == (32, 32, 3)
        assert 0 < np.abs(a - b).mean() < 40
    assert set(out) == {"source", "target"}
