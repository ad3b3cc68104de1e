"""Images > Other: register existing LMDBs (DIGITS-written ones too) without copying them.

Two kinds of databases come here:

- generic ones: a features DB and, optionally, a label DB whose entries share its keys (DIGITS' generic and
  regression datasets, ``test_lmdb_creator.py``). Without a label DB the images are unlabelled, which is what
  DIGITS' autoencoder tutorial registers (a classification ``train_db`` whose labels it ignores).
- DIGITS classification DBs (``train_db/``, ``val_db/``: the class index is each Datum's ``label``, keys
  ``%08d_<label>``). Give ``labels_file`` (the job's ``labels.txt``; ``True`` reads the one beside the DB) and
  the dataset is a classification dataset: classes from the file, labels from the Datums, and the mean
  found beside the DB when ``mean_file`` is not given. Without ``labels_file`` such a DB is still registered
  as unlabelled images, as DIGITS did, with a note in create.log and the summary saying how to get the
  classes: class names are never guessed, since "0".."N-1" in place of a lost labels.txt would put the wrong
  names on every prediction without a word.

Nothing is ever written next to the user's files, and nothing but job.json and the logs into the job.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import DatasetError, DbError, DigitsError
from ..store.jobs import Job, create_job
from ..store.lmdb_db import LmdbReader, open_db, read_mean
from . import classdb
from .dataset import DatasetJob
from .sources import read_labels_file


def generic(name: str, train_features: str, train_labels: str | None = None, val_features: str | None = None,
            val_labels: str | None = None, mean_file: str | None = None,
            force_same_shape: bool = True, labels_file: str | bool | None = None) -> DatasetJob:
    """Images > Other: register existing LMDBs without copying them.

    ``labels_file`` (a labels.txt path, or ``True`` for the one beside ``train_features``) makes a DIGITS
    classification DB a classification dataset; it cannot be combined with label DBs.
    """
    params = {k: (str(Path(v).expanduser().resolve()) if isinstance(v, (str, Path)) and k != "name" else v)
              for k, v in locals().items() if k != "name"}
    job = create_job("dataset", "generic", name, params, parents=_parent_datasets(params))
    return job.start(lambda j: _run_generic(j, **params))  # never removes anything: the files are the user's


def _parent_datasets(params: dict) -> list[str]:
    """Datasets whose databases this one points into: deleting them would break it."""
    from ..store.jobs import iter_jobs
    paths = [Path(v) for k, v in params.items() if isinstance(v, str)]
    return [j.id for j in iter_jobs() if j.kind == "dataset" and any(j.dir in p.parents for p in paths)]


def _check_db(path: str | None, field: str, force_same_shape: bool):
    if path is None:
        return None, None
    try:
        db = open_db(path)
    except DbError as exc:
        raise DatasetError(f"{field}: {exc}", field=field) from None
    if len(db) == 0:
        raise DatasetError(f"{field}: {path} is empty", field=field)
    try:
        shape = db[0].shape
        if force_same_shape:
            for i in range(1, len(db)):
                if db[i].shape != shape:
                    raise DatasetError(f"{field}: entry {db.key(i)} has shape {db[i].shape}, entry {db.key(0)} "
                                       f"has {shape} (pass force_same_shape=False to allow this)", field=field)
    except DigitsError as exc:
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(f"{field}: {path} holds entries that do not decode: {exc}", field=field) from None
    return db, shape


def _hwc(shape: tuple) -> tuple:
    return tuple(shape) if len(shape) == 3 else (*shape, 1)


def _mean_fits(path: str, feature_shape: tuple) -> str | None:
    """Why the mean file cannot be used with these images, or None when it can."""
    try:
        mean = read_mean(path)
    except DigitsError as exc:
        return str(exc)
    if mean.shape != _hwc(feature_shape):
        return f"mean_file {path} has shape {mean.shape} but the images are {_hwc(feature_shape)}"
    return None


def _run_generic(job: Job, *, train_features, train_labels, val_features, val_labels, mean_file,
                 force_same_shape, labels_file=None) -> None:
    classify = labels_file not in (None, False, "")
    if val_labels and not val_features:
        raise DatasetError("val_labels given without val_features", field="val_features")
    if classify and (train_labels or val_labels):
        which = "train_labels" if train_labels else "val_labels"
        raise DatasetError(f"labels_file names the classes of a classification DB, whose labels are in its "
                           f"Datums, but {which} gives a separate label DB: give one or the other",
                           field="labels_file")
    splits, dbs, feature_shape, label_shape = {}, {}, None, None
    for split, fpath, lpath in (("train", train_features, train_labels), ("val", val_features, val_labels)):
        fdb, fshape = _check_db(fpath, f"{split}_features", force_same_shape)
        if fdb is None:
            continue
        ldb, lshape = _check_db(lpath, f"{split}_labels", force_same_shape)
        if ldb is not None:
            fkeys, lkeys = [fdb.key(i) for i in range(len(fdb))], [ldb.key(i) for i in range(len(ldb))]
            if fkeys != lkeys:
                missing = sorted(set(fkeys) ^ set(lkeys))[:3]
                raise DatasetError(f"{split} features ({len(fkeys)} entries) and labels ({len(lkeys)} entries) "
                                   f"do not have the same keys (e.g. {missing}); each feature needs the label "
                                   "stored under the same key", field=f"{split}_labels")
        if feature_shape is None:
            feature_shape, label_shape = fshape, lshape
        elif force_same_shape and fshape != feature_shape:
            raise DatasetError(f"{split} features have shape {fshape} but train features have {feature_shape}",
                               field=f"{split}_features")
        splits[split] = {"features": fpath, "labels": lpath, "count": len(fdb)}
        dbs[split] = fdb
        job.report_progress(len(splits), 2, split)
    extra: dict = {}
    if classify:
        extra = _classes(job, labels_file, train_features, dbs)
        if not mean_file:
            mean_file = _mean_beside(job, train_features, feature_shape)
    elif not train_labels:
        note = _unlabelled_note(dbs["train"])
        if note:
            job.log(f"NOTE: {note}", "create.log")
            extra["note"] = note
    if mean_file:
        problem = _mean_fits(mean_file, feature_shape)
        if problem:
            raise DatasetError(problem if problem.startswith("mean_file") else f"mean_file: {problem}",
                               field="mean_file")
    fshape = list(_hwc(feature_shape))
    job.update_info(task="classification" if classify else "generic", splits=splits, feature_shape=fshape,
                    label_shape=list(label_shape) if label_shape is not None else None,
                    mean_file=mean_file or None, **extra)


def _classes(job: Job, labels_file, train_features: str, dbs: dict[str, LmdbReader]) -> dict:
    """Class names from the labels file, checked against every Datum label of every split."""
    path = classdb.labels_path(labels_file, train_features)
    names = read_labels_file(path)
    for split, db in dbs.items():
        field = f"{split}_features"
        labels = classdb.read_labels(db, field)
        classdb.check_labels(db, labels, names, path, field)
        if split == "train" and len(set(labels.tolist())) < 2:
            raise DatasetError(f"{field}: every entry of {db.path} has label {int(labels[0])}, and a classifier "
                               "needs at least two classes. A DIGITS generic features DB keeps label 0 in every "
                               "Datum and its labels in a separate DB: give that as train_labels instead of "
                               "labels_file", field=field)
        mismatch = classdb.key_mismatches(db, labels)
        if mismatch is not None:
            job.log(f"WARNING: {mismatch.count} {split} keys name another class than their Datum (e.g. "
                    f"{mismatch.key!r} holds label {mismatch.label}); the Datum's label is used, as in Caffe",
                    "create.log")
    job.log(f"{len(names)} classes from {path}", "create.log")
    return {"labels": names, "labels_file": str(path)}


def _mean_beside(job: Job, train_features: str, feature_shape: tuple) -> str | None:
    """DIGITS' mean.binaryproto beside the train DB (its folder, or the job root above it), if it fits."""
    found = classdb.beside(train_features, classdb.MEAN_NAME)
    if found is None:
        job.log(f"No {classdb.MEAN_NAME} beside {train_features}: train with mean='none', or give mean_file",
                "create.log")
        return None
    problem = _mean_fits(str(found), feature_shape)
    if problem:
        job.log(f"WARNING: not using {found}: {problem}", "create.log")
        return None
    job.log(f"Mean image: {found} (found beside the train DB)", "create.log")
    return str(found)


def _unlabelled_note(db: LmdbReader) -> str | None:
    """What to say when a classification DB is registered without its labels file (None: not one)."""
    if not classdb.carries_classes(db, sample=classdb.SAMPLE):
        return None
    found = classdb.beside(db.path, classdb.LABELS_NAME)
    how = (f"labels_file={str(found)!r} (or labels_file=True)" if found else
           "labels_file=<its labels.txt, one class name per line>")
    return (f"{db.path} looks like a DIGITS classification DB (class labels in its Datums). It is registered "
            f"as unlabelled images (an autoencoder's input, as in DIGITS); to train a classifier on it, give "
            f"{how}")
