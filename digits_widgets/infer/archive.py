"""DIGITS' "Download Model": one archive that runs anywhere, and ``load_model`` to run it again.

An archive (``.tar.gz`` or ``.zip``) is flat and holds everything inference needs, so it works with no jobs
directory and no dataset: the snapshot (``epoch_0005.pt``, as in the job), the network text as written
(``network.py``, ``network.prototxt`` or ``network.lua``: PyTorch, Caffe or Torch7), the dataset's
``mean.binaryproto`` (when it has one), ``labels.txt`` (classification) and ``info.json``: the training
options, the dataset's shapes, task, classes and resize mode, the framework, the snapshot's epoch and the
versions of digits_widgets, torch and Python that wrote it. ``load_model`` builds a
:class:`~digits_widgets.infer.predict.Predictor` over a stand-in for the job made of those files, so a loaded
archive predicts exactly as ``job.infer`` did (same transforms, same code).
"""
from __future__ import annotations

import io
import json
import os
import platform
import re
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from .._version import __version__
from ..errors import JobError
from ..nets.torch7.detect import framework_of
from ..store.datum import decode_blobproto
from ..train import records
from ..train.options import TrainOptions
from .predict import Prediction, Predictor

ARCHIVE_FORMATS = ("tar.gz", "zip")
INFO = "info.json"
FORMAT_NAME = "digits_widgets model"
FORMAT_VERSION = 1
NETWORK_FILES = {"pytorch": "network.py", "caffe": "network.prototxt", "torch": "network.lua"}
MEAN_FILE = "mean.binaryproto"
LABELS_FILE = "labels.txt"
EXPORT_FORMATS = {"onnx": "model.onnx", "torchscript": "model.pt"}
_OBJECT_NETWORK = "# This model was given as a Python object"   # what train() writes for a non-text network
_REQUIRED = ("network", "snapshot", "dataset", "options")


def default_archive_name(job: Any, snapshot: "str | float | None" = None, format: str = "tar.gz") -> str:
    """``<name>-epoch-<N>.<format>``, the job's name made safe for a file name."""
    epoch = _epoch_of(job.snapshot_path(snapshot))
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", job.name).strip("._") or job.id
    return f"{stem}-epoch-{epoch:g}.{format}" if epoch is not None else f"{stem}-{job.id}.{format}"


def _epoch_of(snapshot: Path) -> float | None:
    """From the file name (epoch_0005.pt); best.pt says it inside."""
    m = records._SNAP_RE.search(snapshot.name)
    if m:
        return float(m.group(1))
    return records.load(snapshot).get("epoch")


def _format_of(path: Path, format: str | None) -> str:
    if format is None:
        format = "zip" if path.name.endswith(".zip") else "tar.gz"
    if format not in ARCHIVE_FORMATS:
        raise JobError(f"format must be one of {', '.join(ARCHIVE_FORMATS)}, got {format!r}")
    return format


def archive_info(job: Any, snapshot: Path, framework: str) -> dict:
    """info.json: what a reader needs to rebuild the network and its inputs without the jobs."""
    ds = job.dataset
    return {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "created": time.time(),
        "name": job.name, "job_id": job.id, "type": job.type, "framework": framework,
        "network": NETWORK_FILES[framework], "snapshot": snapshot.name,
        "epoch": _epoch_of(snapshot),
        "options": job.options.to_dict(),
        "dataset": {"name": ds.name, "id": ds.id, "task": ds.task, "feature_shape": list(ds.feature_shape),
                    "label_shape": list(ds.label_shape) if ds.label_shape else None,
                    "nclasses": ds.nclasses, "labels": ds.labels, "palette": ds.palette,
                    "class_names": ds.class_names, "resize_mode": ds.params.get("resize_mode", "squash"),
                    "mean_file": MEAN_FILE if ds.mean_path is not None and ds.mean_path.exists() else None},
        "versions": {"digits_widgets": __version__, "torch": torch.__version__,
                     "python": platform.python_version()},
    }


def download(job: Any, path: "str | Path", format: str | None = None, snapshot: "str | float | None" = None,
             include: Iterable[str] = ()) -> Path:
    """Write the archive of ``snapshot`` (default: the last) to ``path`` (a folder: the default name in it).

    ``format``: 'tar.gz' or 'zip' (default: from the file name, else tar.gz). ``include``: export formats
    to add, 'onnx' and/or 'torchscript' (``model.onnx`` / ``model.pt`` with the preprocessing baked in, and
    ``model.preprocess.json``). The file is written to a temporary name and renamed into place."""
    path = Path(path)
    snap = job.snapshot_path(snapshot)
    if path.is_dir():
        path = path / default_archive_name(job, snapshot, format or "tar.gz")
    format = _format_of(path, format)
    text = job.network_source()
    framework = framework_of(text)
    info = archive_info(job, snap, framework)
    members: list[tuple[str, bytes]] = [(info["network"], text.encode()), (snap.name, snap.read_bytes())]
    ds = job.dataset
    if info["dataset"]["mean_file"]:
        members.append((MEAN_FILE, ds.mean_path.read_bytes()))
    if ds.task == "classification" and ds.labels:
        members.append((LABELS_FILE, "".join(f"{label}\n" for label in ds.labels).encode()))
    extra = [f for f in include]
    unknown = sorted(set(extra) - set(EXPORT_FORMATS))
    if unknown:
        raise JobError(f"include takes export formats {', '.join(EXPORT_FORMATS)}; got {unknown}")
    if extra:
        from .export import export_predictor
        with tempfile.TemporaryDirectory(prefix="digits-export-") as tmp:
            pred = job.predictor(snapshot, device="cpu")
            for fmt in extra:
                out = export_predictor(pred, Path(tmp) / EXPORT_FORMATS[fmt], fmt, preprocess="bake")
                members.append((out.name, out.read_bytes()))
            sidecar = Path(tmp) / "model.preprocess.json"
            members.append((sidecar.name, sidecar.read_bytes()))
        info["exports"] = {fmt: EXPORT_FORMATS[fmt] for fmt in extra}
    members.insert(0, (INFO, json.dumps(info, indent=1).encode()))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        _write(tmp_path, format, members)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)
    return path


def _write(path: Path, format: str, members: Sequence[tuple[str, bytes]]) -> None:
    now = time.time()
    if format == "zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            for name, data in members:
                z.writestr(name, data)
        return
    with tarfile.open(path, "w:gz") as t:
        for name, data in members:
            entry = tarfile.TarInfo(name)
            entry.size, entry.mtime, entry.mode = len(data), int(now), 0o644
            t.addfile(entry, io.BytesIO(data))


# ---- reading -------------------------------------------------------------------------------------------
def read_archive(path: "str | Path") -> dict[str, bytes]:
    """The archive's files by name (a single top folder, as a re-packed folder has, is dropped)."""
    path = Path(path)
    if not path.is_file():
        raise JobError(f"Model archive {path} does not exist" if not path.exists()
                       else f"Model archive {path} is not a file")
    files: dict[str, bytes] = {}
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                for entry in z.infolist():
                    if not entry.is_dir():
                        files[entry.filename] = z.read(entry)
        elif tarfile.is_tarfile(path):
            with tarfile.open(path) as t:
                for entry in t.getmembers():
                    if entry.isfile():
                        files[entry.name] = t.extractfile(entry).read()
        else:
            raise JobError(f"{path} is not a model archive: it is neither a tar.gz nor a zip file "
                           "(write one with job.download(path))")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise JobError(f"Model archive {path} cannot be read: {exc}") from None
    tops = {name.split("/", 1)[0] for name in files}
    if INFO not in files and len(tops) == 1 and all("/" in name for name in files):
        top = tops.pop() + "/"
        files = {name[len(top):]: data for name, data in files.items()}
    return files


def _read_info(path: Path, files: dict[str, bytes]) -> dict:
    if INFO not in files:
        raise JobError(f"Model archive {path} has no {INFO}, so it is not an archive written by job.download() "
                       f"(it holds: {', '.join(sorted(files)) or 'nothing'})")
    try:
        info = json.loads(files[INFO])
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise JobError(f"{INFO} in model archive {path} is not valid JSON: {exc}") from None
    missing = [k for k in _REQUIRED if not isinstance(info, dict) or k not in info]
    if missing:
        raise JobError(f"{INFO} in model archive {path} lacks {', '.join(missing)}")
    if info.get("format_version", 1) > FORMAT_VERSION:
        raise JobError(f"Model archive {path} has format version {info['format_version']}; this digits_widgets "
                       f"({__version__}) reads up to {FORMAT_VERSION}: upgrade digits_widgets")
    for key in ("network", "snapshot") + (("mean_file",) if info["dataset"].get("mean_file") else ()):
        name = info[key] if key != "mean_file" else info["dataset"][key]
        if name not in files:
            raise JobError(f"Model archive {path} lacks {name} (its {INFO} names it as the {key.replace('_', ' ')})")
    return info


class ArchivedDataset:
    """What a Predictor reads of a dataset job, from info.json; the databases stay with the dataset."""

    def __init__(self, info: dict, mean: bytes | None):
        self.info = info
        self.name, self.id = info.get("name", "dataset"), info.get("id", "")
        self.task = info.get("task", "generic")
        self.feature_shape = tuple(info["feature_shape"])
        self.label_shape = tuple(info["label_shape"]) if info.get("label_shape") else None
        self.labels = list(info.get("labels") or [])
        self.nclasses = int(info.get("nclasses") or 0)
        self.palette, self.class_names = info.get("palette"), info.get("class_names")
        self.params = {"resize_mode": info.get("resize_mode", "squash")}
        self._mean = mean

    def mean(self) -> np.ndarray | None:
        return decode_blobproto(self._mean) if self._mean is not None else None

    def count(self, split: str) -> int:
        return 0

    def db_path(self, split: str = "train", part: str = "features") -> None:
        return None


class ArchivedModel:
    """A downloaded model opened again: it predicts as the model job it came from did (``infer``,
    ``classify``, ``infer_db`` on a DB path, ``export``), standing in for that job to its Predictor."""

    network_object = None

    def __init__(self, path: "str | Path", network: Any = None):
        self.archive = Path(path)
        files = read_archive(self.archive)
        self.info = _read_info(self.archive, files)
        self.name = self.info.get("name", self.archive.name)
        self.id = self.info.get("job_id", "")
        self.type = self.info.get("type", "")
        self.epoch = self.info.get("epoch")
        self.framework = self.info.get("framework") or "pytorch"
        self._text = files[self.info["network"]].decode()
        if network is not None:
            self.network_object = network
        elif self._text.startswith(_OBJECT_NETWORK):
            raise JobError(f"The network of model archive {self.archive} was given as a Python object, not as "
                           "text, so the archive cannot rebuild it: pass it, dw.load_model(path, network=...)")
        try:
            self._state = torch.load(io.BytesIO(files[self.info["snapshot"]]), map_location="cpu",
                                     weights_only=True)
        except Exception as exc:  # noqa: BLE001 - a truncated or foreign file: say which
            raise JobError(f"The snapshot {self.info['snapshot']} in model archive {self.archive} does not "
                           f"load: {exc}") from None
        mean_name = self.info["dataset"].get("mean_file")
        self.dataset = ArchivedDataset(self.info["dataset"], files[mean_name] if mean_name else None)
        self._predictors: dict[str | None, Predictor] = {}

    @property
    def options(self) -> TrainOptions:
        return TrainOptions.from_dict(self.info["options"])

    def network_source(self) -> str:
        return self._text

    def snapshot_path(self, snapshot: "str | float | None" = None) -> Path:
        """Where the one snapshot the archive holds came from (inside the archive)."""
        if snapshot not in (None, "last") and not (self.epoch is not None and isinstance(snapshot, (int, float))
                                                   and abs(float(snapshot) - self.epoch) < 1e-9):
            raise JobError(f"Model archive {self.archive} holds only the snapshot of epoch {self.epoch}, "
                           f"not {snapshot!r}")
        return self.archive / self.info["snapshot"]

    def predictor(self, device: str | None = None) -> Predictor:
        if device not in self._predictors:
            self._predictors[device] = Predictor(self, None, device, state=self._state)
        return self._predictors[device]

    def infer(self, images, resize: bool = True) -> Prediction:
        """Outputs for image paths, arrays or PIL images, as ``job.infer``."""
        return self.predictor().predict(images, resize)

    def classify(self, images, top: int = 5, resize: bool = True) -> list[list[tuple[str, float]]]:
        return self.predictor().classify(images, top, resize)

    def infer_db(self, db_path: "str | Path", limit: int | None = None, resize: bool = True) -> Prediction:
        """Outputs for the first ``limit`` entries of an LMDB of images (its labels stay with the dataset)."""
        return self.predictor().predict_db(db_path, limit, resize=resize)[0]

    def export(self, path: "str | Path", format: str = "onnx", preprocess: str = "bake") -> Path:
        """TorchScript or ONNX of this model, as ``job.export``."""
        from .export import export_predictor
        return export_predictor(self.predictor("cpu"), path, format, preprocess)

    def __repr__(self) -> str:
        return (f"<ArchivedModel {self.name!r} ({self.framework}, epoch {self.epoch:g}) from {self.archive}>"
                if self.epoch is not None else f"<ArchivedModel {self.name!r} from {self.archive}>")


def load_model(path: "str | Path", network: Any = None) -> ArchivedModel:
    """Open an archive written by ``job.download()`` for inference, anywhere: no jobs directory, no dataset.

    ``network``: the network object, for a model trained from a Python object rather than text."""
    return ArchivedModel(path, network)
