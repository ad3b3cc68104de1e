"""DIGITS classification LMDBs registered as they are (Images > Other with a labels file).

A DIGITS classification job keeps one LMDB per split (``train_db/``, ``val_db/``), each value a Datum whose
``label`` field is the class index, keys ``'%08d_%d' % (index, label)``; the class names are in
``labels.txt`` at the job root, the mean in ``mean.binaryproto`` there (generic jobs: ``train_db/``). There is
no separate label DB, so registering such a DB as plain "Other" images gives a network no labels. These
helpers find the files DIGITS put beside the DB, read every Datum's label and check it against the names.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DatasetError, DigitsError
from ..store.lmdb_db import LmdbReader

CLASS_KEY = re.compile(r"^\d{8}_(\d+)$")  # tools/create_db.py: '%08d_%d' % (index, label)
LABELS_NAME = "labels.txt"
MEAN_NAME = "mean.binaryproto"
SAMPLE = 64  # entries a quick look reads (form checks): enough to tell a classification DB from a generic one


def beside(db_path: str | Path, name: str) -> Path | None:
    """``name`` in the DB's folder or the folder above it (a DIGITS job root), whichever comes first."""
    folder = Path(db_path)
    for candidate in (folder / name, folder.parent / name):
        if candidate.is_file():
            return candidate
    return None


def labels_path(labels_file: str | Path | bool, train_features: str | Path) -> Path:
    """The labels file to read: the path given, or (``True``) the labels.txt DIGITS wrote beside the DB."""
    if labels_file is True:
        found = beside(train_features, LABELS_NAME)
        if found is None:
            folder = Path(train_features)
            raise DatasetError(f"labels_file=True: no {LABELS_NAME} in {folder} or {folder.parent} (DIGITS writes "
                               "it at the dataset job's root, beside train_db); give its path instead",
                               field="labels_file")
        return found
    return Path(str(labels_file)).expanduser().resolve()


def read_labels(db: LmdbReader, field: str) -> np.ndarray:
    """The ``label`` field of every Datum, in the reader's order."""
    try:
        return np.fromiter((db.label(i) for i in range(len(db))), np.int64, len(db))
    except DigitsError as exc:
        raise DatasetError(f"{field}: {db.path} holds entries that do not decode: {exc}", field=field) from None


def check_labels(db: LmdbReader, labels: np.ndarray, names: list[str], labels_file: Path, field: str) -> None:
    """Refuse a DB whose Datum labels are not class indices of ``names`` (naming the first bad entry)."""
    bad = np.flatnonzero((labels < 0) | (labels >= len(names)))
    if len(bad):
        i, top = int(bad[0]), int(labels.max())
        raise DatasetError(f"{field}: entry {db.key(i)!r} of {db.path} has label {int(labels[i])}, but "
                           f"{labels_file} names only {len(names)} classes (labels 0..{len(names) - 1}); "
                           f"{len(bad)} entries are outside that range, the largest label is {top}. "
                           "Give the labels.txt written with this DB", field=field)


@dataclass(frozen=True)
class KeyMismatch:
    """Entries whose key says one class and whose Datum says another (the Datum wins, as in Caffe)."""
    count: int
    key: str
    label: int


def key_mismatches(db: LmdbReader, labels: np.ndarray) -> KeyMismatch | None:
    """Keys in DIGITS' ``%08d_<label>`` form whose label part differs from the Datum's label."""
    count, first = 0, None
    for i in range(len(db)):
        m = CLASS_KEY.match(db.key(i))
        if m is not None and int(m.group(1)) != labels[i]:
            count += 1
            first = first or (db.key(i), int(labels[i]))
    return KeyMismatch(count, *first) if first else None


def carries_classes(db: LmdbReader, labels: np.ndarray | None = None, sample: int | None = None) -> bool:
    """Whether the Datums look like a classification DB's: a non-zero label, or every key ``%08d_<label>``
    agreeing with its Datum. A DIGITS generic features DB (keys ``%09d``, label 0) does not."""
    n = len(db) if sample is None else min(sample, len(db))
    if n == 0:
        return False
    if labels is None:
        labels = np.array([db.label(i) for i in range(n)], np.int64)
    if np.any(labels[:n] != 0):
        return True
    for i in range(n):
        m = CLASS_KEY.match(db.key(i))
        if m is None or int(m.group(1)) != labels[i]:
            return False
    return True


def describe(db: LmdbReader, sample: int = SAMPLE) -> str | None:
    """A line for a form: what a quick look at the DB says about its class labels (None: none seen)."""
    n = min(sample, len(db))
    labels = np.array([db.label(i) for i in range(n)], np.int64)
    if not carries_classes(db, labels, n):
        return None
    hint = beside(db.path, LABELS_NAME)
    where = f"; {LABELS_NAME} beside it: {hint}" if hint else ""
    return (f"class labels in its Datums (labels {int(labels.min())}..{int(labels.max())} in the first {n} "
            f"entries){where}")
