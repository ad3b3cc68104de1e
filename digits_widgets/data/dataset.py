"""A dataset job as seen from disk: where its databases are, their shapes, mean, labels and palette.

Every kind of dataset (classification, processing, segmentation, gradients, "Other") records the same
``info`` layout in job.json, so the trainer and the views never care which kind made it::

    info = {"task": "classification" | "regression" | "processing" | "segmentation" | "generic",
            "splits": {"train": {"features": PATH, "labels": PATH | None, "count": N}, "val": ..., "test": ...},
            "feature_shape": [H, W, C], "label_shape": [...] | None, "mean_file": PATH | None,
            "labels": [class names] (classification), "palette": [768 ints] | None, "class_names": [...] | None,
            "labels_file": PATH ("Other" classification), "note": a line for the summary | None}

Paths inside the job directory are stored relative to it; "Other" datasets store absolute paths.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import JobError
from ..store.jobs import DONE, Job
from ..store.lmdb_db import LmdbReader, open_db, read_mean

SPLITS = ("train", "val", "test")


class DatasetJob(Job):
    kind = "dataset"

    # ---- locations ------------------------------------------------------------------------------
    def _resolve(self, p: str | None) -> Path | None:
        if not p:
            return None
        path = Path(p)
        return path if path.is_absolute() else self.dir / path

    @property
    def task(self) -> str:
        return self.info.get("task", self.type)

    @property
    def splits(self) -> list[str]:
        """The splits that have images, in train/val/test order."""
        found = self.info.get("splits", {})
        return [s for s in SPLITS if found.get(s, {}).get("count", 0) > 0]

    def count(self, split: str) -> int:
        return int(self.info.get("splits", {}).get(split, {}).get("count", 0))

    def db_path(self, split: str = "train", part: str = "features") -> Path | None:
        """Path of a split's ``features`` or ``labels`` LMDB (None when the dataset has none)."""
        entry = self.info.get("splits", {}).get(split)
        if entry is None:
            return None
        return self._resolve(entry.get(part))

    def open_db(self, split: str = "train", part: str = "features") -> LmdbReader:
        path = self.db_path(split, part)
        if path is None:
            have = ", ".join(self.splits) or "none"
            raise JobError(f"Dataset {self.name!r} has no {split} {part} database (splits: {have})")
        return open_db(path)

    @property
    def mean_path(self) -> Path | None:
        return self._resolve(self.info.get("mean_file"))

    def mean(self) -> np.ndarray | None:
        """The training mean image, HWC float (None when the dataset has no mean file)."""
        path = self.mean_path
        return read_mean(path) if path is not None else None

    # ---- what the data is ----------------------------------------------------------------------
    @property
    def feature_shape(self) -> tuple[int, int, int] | None:
        """(H, W, C) of the feature images."""
        shape = self.info.get("feature_shape")
        return tuple(shape) if shape else None

    @property
    def label_shape(self) -> tuple[int, ...] | None:
        shape = self.info.get("label_shape")
        return tuple(shape) if shape else None

    @property
    def labels(self) -> list[str]:
        """Class names (classification datasets; line i of labels.txt is label i)."""
        return list(self.info.get("labels") or [])

    @property
    def nclasses(self) -> int:
        """Classes a network must output: classification labels, or segmentation's class indices; else 0."""
        if self.task == "classification":
            return len(self.labels)
        return int(self.info.get("nclasses") or 0) if self.task == "segmentation" else 0

    @property
    def palette(self) -> list[int] | None:
        return self.info.get("palette")

    @property
    def class_names(self) -> list[str] | None:
        return self.info.get("class_names")

    def require_done(self) -> "DatasetJob":
        """Refuse to hand out a dataset whose creation did not finish: its databases may be partial."""
        status = self.status
        if status != DONE:
            extra = f": {self.error}" if self.error else ""
            raise JobError(f"Dataset {self.name!r} ({self.id}) is {status}, not Done{extra}")
        return self

    def samples(self, split: str = "train", start: int = 0, count: int = 8) -> list[tuple[np.ndarray, object]]:
        """A page of (image, label) pairs for "Explore the db" views: label is a class name, an array or None."""
        db = self.open_db(split)
        labels_db = self.open_db(split, "labels") if self.db_path(split, "labels") else None
        out = []
        for i in range(start, min(start + count, len(db))):
            if self.task == "classification":
                idx = db.label(i)
                label: object = self.labels[idx] if 0 <= idx < len(self.labels) else idx
            else:
                label = labels_db[i] if labels_db is not None else None
            out.append((db[i], label))
        return out

    def summary(self) -> str:
        """A few lines a person reads: counts per split, shapes, mean, classes."""
        lines = [f"Dataset {self.name!r} ({self.id}) [{self.type}] {self.status}"]
        if self.error:
            lines.append(f"  error: {self.error}")
        for split in SPLITS:
            if self.count(split):
                lines.append(f"  {split}: {self.count(split)} images  ({self.db_path(split)})")
        if self.feature_shape:
            h, w, c = self.feature_shape
            lines.append(f"  image shape: {w}x{h}x{c} (WxHxC)")
        if self.label_shape:
            lines.append(f"  label shape: {tuple(self.label_shape)}")
        if self.labels:
            shown = ", ".join(self.labels[:10]) + (" ..." if len(self.labels) > 10 else "")
            lines.append(f"  {len(self.labels)} classes: {shown}")
        if self.mean_path:
            lines.append(f"  mean: {self.mean_path}")
        if self.info.get("note"):   # e.g. a classification DB registered without its labels.txt
            lines.append(f"  note: {self.info['note']}")
        return "\n".join(lines)

    def _repr_pretty_(self, p, cycle) -> None:  # IPython shows the summary, not the object address
        p.text(self.summary())
