"""Writing a dataset split: features (+ labels) LMDBs in DIGITS' Datum format, with progress and mean.

Loading and encoding images is the slow part; for large images it runs on a small thread pool (Pillow and
zlib release the GIL) while this thread writes to LMDB in order, checks shapes, sums the mean and reports
progress.
"""
from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ..errors import DatasetError
from ..store.datum import array_to_datum, encode_datum
from ..store.jobs import Job
from ..store.lmdb_db import LmdbWriter, classification_key, generic_key, write_mean

CHUNK = 64


@dataclass
class Encoded:
    """One entry ready to write: the decoded feature (for shape checks and the mean) and its bytes."""
    key: str
    feature: np.ndarray
    feature_bytes: bytes
    label: object
    label_bytes: bytes | None
    source: str


def encode_entry(index: int, feature: np.ndarray, label: object, source: str, *,
                 feature_encoding: str | None, label_encoding: str | None, classification: bool) -> Encoded:
    """Datum bytes for one entry: class index inside the feature Datum, or a separate label Datum."""
    enc = None if feature_encoding in (None, "none") else feature_encoding
    if classification:
        key = classification_key(index, int(label))
        fbytes = encode_datum(array_to_datum(feature, label=int(label), encoding=enc))
        return Encoded(key, feature, fbytes, label, None, source)
    key = generic_key(index)
    fbytes = encode_datum(array_to_datum(feature, encoding=enc))
    lbytes = None
    if label is not None:
        larr = np.asarray(label)
        lenc = None if label_encoding in (None, "none") or larr.dtype != np.uint8 else label_encoding
        lbytes = encode_datum(array_to_datum(larr, encoding=lenc))
    return Encoded(key, feature, fbytes, label, lbytes, source)


class SplitWriter:
    """Writes one split's databases and keeps the running sums the dataset summary needs."""

    def __init__(self, features_path: Path, labels_path: Path | None, *, same_shape: bool = True,
                 compute_mean: bool = False):
        self.features = LmdbWriter(features_path)
        self.labels = LmdbWriter(labels_path) if labels_path is not None else None
        self.same_shape = same_shape
        self.compute_mean = compute_mean
        self.feature_shape: tuple[int, ...] | None = None
        self.label_shape: tuple[int, ...] | None = None
        self._first_source = ""
        self._sum: np.ndarray | None = None
        self.count = 0
        self.label_max = -1  # largest value in uint8 label images: segmentation's class count - 1

    def write(self, e: Encoded) -> None:
        shape = e.feature.shape
        if self.feature_shape is None:
            self.feature_shape, self._first_source = shape, e.source
        elif self.same_shape and shape != self.feature_shape:
            raise DatasetError(
                f"Feature shape mismatch (last:{shape}, previous:{self.feature_shape}) for {e.source} "
                f"(first image: {self._first_source}). All images must have the same size here: resize "
                "them first, or disable force_same_shape.", field="feature_folder")
        if e.label_bytes is not None:
            lshape = np.shape(e.label)
            if self.label_shape is None:
                self.label_shape = lshape
            elif self.same_shape and lshape != self.label_shape:
                raise DatasetError(f"Label shape mismatch (last:{lshape}, previous:{self.label_shape}) "
                                   f"for {e.source}", field="label_folder")
            if isinstance(e.label, np.ndarray) and e.label.dtype == np.uint8:
                self.label_max = max(self.label_max, int(e.label.max()))
        if self.compute_mean and shape == self.feature_shape:
            f = e.feature.astype(np.float64)
            self._sum = f if self._sum is None else self._sum + f
        self.features.put(e.key, e.feature_bytes)
        if self.labels is not None and e.label_bytes is not None:
            self.labels.put(e.key, e.label_bytes)
        self.count += 1

    def mean(self) -> np.ndarray | None:
        """DIGITS' mean: the per-pixel average rounded to integers (it stored uint8 values as floats)."""
        if self._sum is None or not self.count:
            return None
        m = np.around(self._sum / self.count)
        return m if m.ndim == 3 else m[:, :, None]

    def close(self) -> None:
        self.features.close()
        if self.labels is not None:
            self.labels.close()


SMALL_IMAGE = 128 * 128  # values per image below which encoding in threads costs more (GIL) than it saves


def write_split(job: Job, writer: SplitWriter, items: Sequence, load: Callable[[object], tuple],
                encode: Callable[[int, np.ndarray, object, str], Encoded | None], *, done_before: int,
                total: int, stage: str, threads: int | None = None) -> int:
    """Load+encode ``items`` and write them in order. Returns the new done count.

    ``load(item)`` returns ``(feature, label, source_name)``; ``encode(index, feature, label, source)``
    returns an ``Encoded``. Large images are loaded and encoded on a thread pool (Pillow and zlib release
    the GIL while they work on them); small ones (the tutorials' 32x32 triangles) in this thread, where the
    per-image Python work would only contend for the GIL. Abort requests are honoured between chunks.
    """
    done = done_before

    def prepare(pair: tuple[int, object]) -> Encoded | None:
        index, item = pair
        feature, label, source = load(item)
        return encode(index, feature, label, source)

    def prepare_all(chunk: list) -> list[Encoded | None]:
        return [prepare(pair) for pair in chunk]

    pool: ThreadPoolExecutor | None = None
    workers = threads or min(4, max(2, os.cpu_count() or 2))
    try:
        for start in range(0, len(items), CHUNK):
            job.check_abort()
            chunk = list(enumerate(items[start:start + CHUNK], start))
            entries: list[Encoded | None] = []
            if start == 0:   # the first image decides: threads for large images only
                entries.append(prepare(chunk.pop(0)))
                if entries[0] is not None and entries[0].feature.size >= SMALL_IMAGE and len(items) > 1:
                    pool = ThreadPoolExecutor(workers, thread_name_prefix="digits-encode")
            if pool is None:
                entries += prepare_all(chunk)
            else:
                step = max(1, -(-len(chunk) // workers))
                for part in pool.map(prepare_all, [chunk[i:i + step] for i in range(0, len(chunk), step)]):
                    entries += part
            for entry in entries:
                if entry is not None:  # None: a bad image skipped on request (already logged)
                    writer.write(entry)
            done += len(entries)
            job.report_progress(done, total, stage)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        writer.close()
    return done


def save_mean(job: Job, mean: np.ndarray, db_dir: str | None = None) -> str:
    """mean.binaryproto (BlobProto, DIGITS layout) and a viewable mean.png in the job directory.

    ``db_dir`` (e.g. ``train_db``) gets a copy of the mean too: DIGITS' classification jobs keep it at the
    root, its generic ones in ``train_db/``, and tools written for either look in their own place.
    """
    write_mean(job.path("mean.binaryproto"), mean, png_path=job.path("mean.png"))
    if db_dir is not None:
        write_mean(job.path(f"{db_dir}/mean.binaryproto"), mean)
    return "mean.binaryproto"


def remove_outputs(job: Job, names: Iterable[str]) -> None:
    """Delete what a failed dataset job wrote, so nothing partial looks like a usable database."""
    for name in names:
        p = job.path(name)
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        elif p.exists():
            p.unlink()

