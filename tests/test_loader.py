"""Feeding datasets to PyTorch: in-memory and streamed batches agree, epochs cover every sample once, DDP
shards split them, DIGITS' mean and crop transformations, and LmdbDataset under DataLoader workers."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import digits_widgets as dw
from digits_widgets.data.augment import Augmentation
from digits_widgets.data.loader import BatchLoader, LmdbDataset, SplitData, Transform, mean_tensor
from digits_widgets.data.tutorial_data import write_digit_folders
from digits_widgets.errors import OptionError


@pytest.fixture
def digits(tmp_path):
    write_digit_folders(tmp_path / "d", per_class=6)
    ds = dw.datasets.classification("digits", str(tmp_path / "d"), image_size=28, channels=1, pct_val=0, seed=0)
    ds.wait(60)
    return ds


@pytest.fixture
def triangles(tmp_path):
    tri = dw.generate_triangles(tmp_path / "t", count=40, size=16, grid=2, seed=0)
    ds = dw.datasets.processing("tri", tri["input"], tri["target"], val_percent=0, seed=0)
    ds.wait(60)
    return ds


def split(ds, budget=None) -> SplitData:
    return SplitData(ds.db_path("train"), ds.db_path("train", "labels") if ds.task != "classification" else None,
                     ds.task, budget=budget)


def epoch(loader: BatchLoader) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*loader)
    return torch.cat(xs), torch.cat(ys)


@pytest.mark.parametrize("kind", ["digits", "triangles", "grads"])
def test_streamed_batches_equal_in_memory_batches(kind, request) -> None:
    ds = request.getfixturevalue(kind)
    memory, streamed = split(ds), split(ds, budget=0)
    assert memory.in_memory and not streamed.in_memory
    idx = np.array([5, 0, 3, 3, len(memory) - 1])
    (xm, ym), (xs, ys) = memory.batch(idx), streamed.batch(idx)
    assert xm.dtype == torch.uint8 and xm.shape == (5, *memory.shape)
    assert torch.equal(xm, xs) and torch.equal(ym, ys)
    db = dw.open_db(ds.db_path("train"))
    np.testing.assert_array_equal(xm[1].numpy().reshape(db[0].shape), db[0])   # the DB's own first entry
    expected_y = {"digits": torch.int64, "triangles": torch.uint8, "grads": torch.float32}[kind]
    assert ym.dtype == expected_y


@pytest.mark.parametrize("budget", [None, 0])
def test_an_epoch_covers_every_sample_once_in_a_new_order(digits, budget) -> None:
    data = split(digits, budget)
    loader = BatchLoader(data, 7, Transform(), train=True, seed=3)
    assert len(loader) == -(-len(data) // 7) and loader.samples == len(data)
    loader.set_epoch(0)
    x0, y0 = epoch(loader)
    assert x0.dtype == torch.float32 and x0.shape == (len(data), 1, 28, 28)
    all_x, all_y = data.batch(np.arange(len(data)))
    order = [int(torch.nonzero((all_x.float() == x).flatten(1).all(1))[0]) for x in x0]
    assert sorted(order) == list(range(len(data))), "each sample exactly once"
    assert torch.equal(all_y[order], y0), "labels stay with their images"
    loader.set_epoch(1)
    x1, _ = epoch(loader)
    assert not torch.equal(x0, x1), "reshuffled each epoch"
    loader.set_epoch(0)
    assert torch.equal(epoch(loader)[0], x0), "the same seed and epoch give the same order"


def test_validation_keeps_the_db_order(digits) -> None:
    data = split(digits)
    x, y = epoch(BatchLoader(data, 8, Transform(), train=False))
    all_x, all_y = data.batch(np.arange(len(data)))
    assert torch.equal(x, all_x.float()) and torch.equal(y, all_y)


def test_two_ranks_split_an_epoch_between_them(digits) -> None:
    data = split(digits)
    rows = lambda t: sorted(tuple(r.tolist()) for r in t.flatten(1))   # noqa: E731 - images as sortable rows
    shards = []
    for rank in range(2):
        loader = BatchLoader(data, 4, Transform(), train=True, seed=1, rank=rank, world_size=2)
        loader.set_epoch(2)
        shards.append(epoch(loader)[0])
        assert loader.samples == len(data) // 2
    assert rows(torch.cat(shards)) == rows(data.batch(np.arange(len(data)))[0].float()), \
        "the two shards together are the epoch, each sample once"


def test_mean_image_pixel_and_crop(triangles) -> None:
    data = split(triangles)
    raw, label = data.batch(np.arange(4))
    image_mean = mean_tensor(triangles.mean(), "image", data.shape)
    pixel_mean = mean_tensor(triangles.mean(), "pixel", data.shape)
    assert image_mean.shape == (1, 16, 16) and pixel_mean.shape == (1, 1, 1)
    assert pixel_mean.item() == pytest.approx(float(triangles.mean().mean()), rel=1e-6)
    x, y = Transform(mean=image_mean)(raw, label, train=False)
    assert torch.allclose(x, raw.float() - image_mean) and torch.equal(y, label.float()), \
        "the mean is taken from the input only; image labels become float"
    x, y = Transform(mean=pixel_mean, crop=10)(raw, label, train=False)
    assert x.shape == (4, 1, 10, 10) and y.shape == (4, 1, 10, 10)
    assert torch.allclose(x, raw.float()[:, :, 3:13, 3:13] - pixel_mean), "validation crops the centre"
    assert torch.equal(y, label.float()[:, :, 3:13, 3:13]), "the label image is cropped with its input"
    gen = torch.Generator().manual_seed(0)
    x, y = Transform(crop=10)(raw, label, train=True, generator=gen)
    windows = {(i, j) for i in range(7) for j in range(7)
               if torch.equal(x[0], raw[0, :, i:i + 10, j:j + 10].float())}
    assert len(windows) >= 1
    i, j = windows.pop()
    assert torch.equal(y[0], label[0, :, i:i + 10, j:j + 10].float()), "same random window for the label"
    with pytest.raises(OptionError, match="mean='pixel' or mean='none'"):
        mean_tensor(triangles.mean(), "image", (1, 20, 20))
    with pytest.raises(OptionError, match="mean must be one of"):
        mean_tensor(triangles.mean(), "median", data.shape)


def test_a_fixed_transform_is_applied_once_with_the_same_values(triangles) -> None:
    data, streamed = split(triangles), split(triangles, budget=0)
    mean = mean_tensor(triangles.mean(), "image", data.shape)
    val = BatchLoader(data, 6, Transform(mean=mean, crop=10), train=False)
    assert val._ready is not None, "mean + centre crop draw nothing at random: transformed once"
    x, y = epoch(val)
    xs, ys = epoch(BatchLoader(streamed, 6, Transform(mean=mean, crop=10), train=False))
    assert x.shape == (len(data), 1, 10, 10) and torch.equal(x, xs) and torch.equal(y, ys)
    train = BatchLoader(data, 6, Transform(mean=mean), train=True, seed=2)
    assert train._ready is not None
    train.set_epoch(1)
    again = BatchLoader(streamed, 6, Transform(mean=mean), train=True, seed=2)
    again.set_epoch(1)
    assert all(torch.equal(a, b) for a, b in zip(epoch(train), epoch(again))), "same order, same values"
    for transform in (Transform(mean=mean, crop=10), Transform(augmentation=Augmentation(flip="fliplr"))):
        assert BatchLoader(data, 6, transform, train=True)._ready is None, "random: transformed per batch"
    tight = split(triangles, budget=len(data) * 16 * 16 * 2)   # the uint8 split fits, its float copy does not
    assert tight.in_memory and BatchLoader(tight, 6, Transform(mean=mean), train=False)._ready is None


@pytest.mark.slow
def test_lmdb_dataset_under_dataloader_workers(triangles, digits) -> None:
    dataset = LmdbDataset(triangles.db_path("train"), triangles.db_path("train", "labels"), triangles.task,
                          Transform(mean=mean_tensor(triangles.mean(), "pixel", (1, 16, 16))))
    clone = pickle.loads(pickle.dumps(dataset))
    assert torch.equal(clone[3][0], dataset[3][0])
    alone = list(DataLoader(dataset, batch_size=8, num_workers=0))
    workers = list(DataLoader(dataset, batch_size=8, num_workers=2))   # each worker opens its own LMDB
    assert len(alone) == len(workers) == -(-len(dataset) // 8)
    for (xa, ya), (xw, yw) in zip(alone, workers):
        assert xa.shape[1:] == (1, 16, 16) and xa.dtype == torch.float32 and ya.shape[1:] == (1, 16, 16)
        assert torch.equal(xa, xw) and torch.equal(ya, yw)
    classes = LmdbDataset(digits.db_path("train"), task="classification")
    x, y = next(iter(DataLoader(classes, batch_size=len(classes), num_workers=2)))
    assert x.shape == (len(classes), 1, 28, 28)
    assert sorted(set(y.flatten().tolist())) == list(range(10))
