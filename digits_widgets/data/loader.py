"""Feeding LMDB datasets to PyTorch: NCHW float batches with DIGITS' transformations.

Two ways in:
- ``LmdbDataset``: a plain ``torch.utils.data.Dataset`` (one sample at a time; each DataLoader worker
  opens its own LMDB environment). Use it with your own DataLoader.
- ``SplitData`` + ``BatchLoader``: what the trainer uses. Small networks make the data path the
  bottleneck, so a split that fits the RAM budget is decoded once into one uint8 tensor and batches are
  gathered by index; a larger split is decoded batch by batch on a prefetch thread. Transformations run
  on whole batches (vectorised), on the training device; on the CPU, one that draws nothing at random
  (mean subtraction, validation's centre crop) is applied once to the whole in-memory split when its
  float copy is small enough.

Order of transformations (as DIGITS' TensorFlow pipeline): uint8 → float → augmentation (flips,
rotations, noise, HSV; on 0..255 data) → mean subtraction (none / image / pixel) → crop (random for
training, centre for validation and inference).
"""
from __future__ import annotations

import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from ..errors import OptionError
from ..store.lmdb_db import LmdbReader, open_db
from .augment import Augmentation, augment, center_crop, random_crop

MEAN_MODES = ("none", "image", "pixel")
LABEL_KINDS = ("none", "class", "vector", "image", "index_image")


def ram_budget() -> int:
    """Bytes a decoded split may take in memory: a quarter of RAM, at most 8 GiB."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 << 30
    return int(min(total // 4, 8 << 30))


def to_nchw(batch: np.ndarray) -> torch.Tensor:
    """Stacked HW / HWC arrays (as LmdbReader returns them) → an NCHW tensor, dtype kept."""
    t = torch.from_numpy(np.ascontiguousarray(batch))
    if t.ndim == 3:
        return t.unsqueeze(1)
    return t.permute(0, 3, 1, 2).contiguous()


def mean_tensor(mean_hwc: np.ndarray | None, mode: str, shape_chw: tuple[int, int, int]) -> torch.Tensor | None:
    """The mean to subtract: C×H×W for 'image', C×1×1 for 'pixel' (DIGITS: the image mean's average)."""
    if mode not in MEAN_MODES:
        raise OptionError(f"mean must be one of {', '.join(MEAN_MODES)} (got {mode!r})", field="mean")
    if mode == "none":
        return None
    if mean_hwc is None:
        raise OptionError(f"mean={mode!r} needs a mean file, and this dataset has none: use mean='none'",
                          field="mean")
    m = torch.from_numpy(np.asarray(mean_hwc, np.float32)).permute(2, 0, 1).contiguous()
    if m.shape[0] != shape_chw[0]:
        raise OptionError(f"The mean file has {m.shape[0]} channels but the images have {shape_chw[0]}",
                          field="mean")
    if mode == "pixel":
        return m.mean(dim=(1, 2), keepdim=True)
    if tuple(m.shape) != tuple(shape_chw):
        raise OptionError(f"The mean image is {tuple(m.shape)} (CxHxW) but the images are {tuple(shape_chw)}; "
                          "use mean='pixel' or mean='none'", field="mean")
    return m


@dataclass
class Transform:
    """DIGITS' data transformations, applied to whole batches."""
    mean: torch.Tensor | None = None
    crop: int | None = None
    augmentation: Augmentation | None = None

    def __call__(self, x: torch.Tensor, y: torch.Tensor | None, train: bool,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = x.float()
        image_label = y is not None and y.ndim == 4
        if image_label and y.dtype == torch.uint8:
            y = y.float()
        if train and self.augmentation is not None and self.augmentation.active:
            x, y = augment(x, y, self.augmentation, generator)
        if self.mean is not None:
            x = x - self.mean.to(x.device)
        if self.crop:
            x, y = random_crop(x, y, self.crop, generator) if train else center_crop(x, y, self.crop)
        return x, y

    def input_shape(self, shape_chw: tuple[int, int, int]) -> tuple[int, int, int]:
        """What the network sees: the image shape after cropping."""
        c, h, w = shape_chw
        return (c, self.crop, self.crop) if self.crop else (c, h, w)


def label_kind_for(task: str, label_db: LmdbReader | None) -> str:
    """How labels come: class index in the Datum, a float vector, an image, or a class-index image."""
    if task == "classification":
        return "class"
    if label_db is None:
        return "none"
    sample = label_db[0]
    if sample.dtype != np.uint8:
        return "vector" if sample.ndim == 1 else "image"
    return "index_image" if task == "segmentation" else "image"


class SplitData:
    """One split (features + labels) ready to be gathered into batches by index."""

    def __init__(self, features: str | Path, labels: str | Path | None = None, task: str = "generic",
                 budget: int | None = None):
        self.features = open_db(features)
        self.labels_db = open_db(labels) if labels else None
        if len(self.features) == 0:
            raise OptionError(f"{features} is empty", field="dataset")
        if self.labels_db is not None and len(self.labels_db) != len(self.features):
            raise OptionError(f"{features} has {len(self.features)} entries but {labels} has "
                              f"{len(self.labels_db)}", field="dataset")
        self.label_kind = label_kind_for(task, self.labels_db)
        first = self.features[0]
        self.shape = (first.shape[2] if first.ndim == 3 else 1, first.shape[0], first.shape[1])  # C, H, W
        self._classes = (np.array([self.features.label(i) for i in range(len(self.features))], np.int64)
                         if self.label_kind == "class" else None)
        need = len(self.features) * first.nbytes * 2  # features, plus room for labels
        self.budget = budget if budget is not None else ram_budget()
        self.in_memory = need <= self.budget
        self._x = self._y = None
        if self.in_memory:
            idx = np.arange(len(self.features))
            self._x, self._y = self._decode(idx)

    def __len__(self) -> int:
        return len(self.features)

    def _decode(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = to_nchw(self.features.read_batch(idx))
        if self.label_kind == "class":
            y = torch.from_numpy(self._classes[idx])
        elif self.label_kind == "none":
            y = None
        else:
            arr = self.labels_db.read_batch(idx)
            if self.label_kind == "vector":
                y = torch.from_numpy(np.ascontiguousarray(arr, np.float32))
            elif self.label_kind == "index_image":
                y = torch.from_numpy(np.ascontiguousarray(arr if arr.ndim == 3 else arr[..., 0])).long()
            else:
                y = to_nchw(arr)
        return x, y

    def transformed(self, transform: "Transform", train: bool,
                    max_bytes: int) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """The whole in-memory split through ``transform`` once (in chunks: the peak stays near one float
        copy), or None when the split is streamed or its float copy would take more than ``max_bytes``."""
        if not self.in_memory:
            return None
        x, y = self._x, self._y
        if x.numel() * 4 + (y.numel() * 4 if y is not None and y.ndim == 4 else 0) > max_bytes:
            return None
        xs, ys = [], []
        for start in range(0, len(x), 4096):
            bx, by = transform(x[start:start + 4096], y[start:start + 4096] if y is not None else None, train)
            xs.append(bx)
            ys.append(by)
        return torch.cat(xs), (torch.cat(ys) if y is not None else None)

    def batch(self, idx: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Raw (untransformed) features and labels of the given entries."""
        if self.in_memory:
            t = torch.as_tensor(idx, dtype=torch.long)   # index_select: ~3x faster than x[t] on CPU
            return (torch.index_select(self._x, 0, t),
                    torch.index_select(self._y, 0, t) if self._y is not None else None)
        return self._decode(np.asarray(idx, np.int64))


class BatchLoader:
    """Batches of one split for one epoch at a time, optionally one shard of it (DDP ranks).

    The order comes from ``torch.utils.data.DistributedSampler`` (with one replica when not
    distributed), so every rank sees its own shard of the same permutation, reseeded each epoch.
    """

    def __init__(self, data: SplitData, batch_size: int, transform: Transform, *, train: bool,
                 seed: int = 0, device: torch.device | str = "cpu", rank: int = 0, world_size: int = 1,
                 label_hook=None):
        if batch_size < 1:
            raise OptionError(f"batch_size must be at least 1 (got {batch_size})", field="batch_size")
        self.data, self.batch_size, self.transform, self.train = data, batch_size, transform, train
        self.device = torch.device(device)
        self.sampler = DistributedSampler(range(len(data)), num_replicas=world_size, rank=rank,
                                          shuffle=train, seed=seed, drop_last=False)
        self.seed = seed
        self.epoch = 0
        self.label_hook = label_hook
        self._pin = self.device.type == "cuda"
        self._ready = self._pretransformed()

    def _pretransformed(self) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """The whole split transformed once, when the transform draws nothing at random and the float
        copy takes at most a quarter of the RAM budget: each batch is then a single gather, as in a bare
        loop over tensors. That is where it pays: small images and small networks, whose steps take well
        under a millisecond. The values are the same as transforming batch by batch (the same
        element-wise operations)."""
        t = self.transform
        if self.device.type != "cpu":   # on a GPU: copy uint8, transform there
            return None
        if self.train and (t.crop or (t.augmentation is not None and t.augmentation.active)):
            return None
        # a quarter of the budget: the uint8 split stays too, and other jobs may be training
        return self.data.transformed(t, self.train, self.data.budget // 4)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return (len(self.sampler) + self.batch_size - 1) // self.batch_size

    @property
    def samples(self) -> int:
        return len(self.sampler)

    def _batches(self) -> Iterator[np.ndarray]:
        order = np.fromiter(iter(self.sampler), dtype=np.int64)
        for start in range(0, len(order), self.batch_size):
            yield order[start:start + self.batch_size]

    def _fetch(self, idx: np.ndarray):
        if self._ready is not None:
            t = torch.as_tensor(idx, dtype=torch.long)
            x, y = self._ready
            x, y = torch.index_select(x, 0, t), (torch.index_select(y, 0, t) if y is not None else None)
        else:
            x, y = self.data.batch(idx)
        if self._pin:
            x = x.pin_memory()
            y = y.pin_memory() if y is not None else None
        return x, y

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        gen = torch.Generator(device=self.device if self.device.type == "cuda" else "cpu")
        gen.manual_seed(self.seed * 100003 + self.epoch)
        source = self._fetch_ahead() if not self.data.in_memory else map(self._fetch, self._batches())
        move = self.device.type != "cpu"   # a no-op .to() still costs microseconds, per batch
        for x, y in source:
            if move:
                x = x.to(self.device, non_blocking=True)
                y = y.to(self.device, non_blocking=True) if y is not None else None
            if self._ready is None:
                x, y = self.transform(x, y, self.train, gen)
            if self.label_hook is not None:
                y = self.label_hook(x, y)
            yield x, y

    def _fetch_ahead(self) -> Iterator:
        """Decode the next batches on a thread while the current one trains."""
        q: queue.Queue = queue.Queue(maxsize=2)
        stop = threading.Event()

        def produce() -> None:
            try:
                for idx in self._batches():
                    if stop.is_set():
                        return
                    q.put(self._fetch(idx))
                q.put(None)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread
                q.put(exc)

        t = threading.Thread(target=produce, daemon=True, name="digits-prefetch")
        t.start()
        try:
            while (item := q.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while t.is_alive():
                try:
                    q.get_nowait()
                except queue.Empty:
                    t.join(0.05)


class LmdbDataset(Dataset):
    """One sample at a time as ``(x CHW float tensor, y)``; safe with ``DataLoader(num_workers > 0)``."""

    def __init__(self, features: str | Path, labels: str | Path | None = None, task: str = "generic",
                 transform: Transform | None = None, train: bool = False):
        self.features = open_db(features)
        self.labels = open_db(labels) if labels else None
        self.kind = label_kind_for(task, self.labels)
        self.transform = transform or Transform()
        self.train = train

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int):
        x = to_nchw(self.features[i][None])
        if self.kind == "class":
            y = torch.tensor([self.features.label(i)])
        elif self.kind == "none":
            y = None
        else:
            arr = self.labels[i][None]
            if self.kind == "vector":
                y = torch.from_numpy(np.asarray(arr, np.float32))
            elif self.kind == "index_image":
                y = torch.from_numpy(arr if arr.ndim == 3 else arr[..., 0]).long()
            else:
                y = to_nchw(arr)
        x, y = self.transform(x, y, self.train)
        return x[0], (y[0] if y is not None else torch.zeros(()))
