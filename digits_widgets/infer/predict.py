"""Running a trained model on new images with exactly the training transforms.

DIGITS users' most common complaint about using a model outside DIGITS was results that differ (mean
file, channel order, resize, crop). Here inference rebuilds the network from the job's own network.py as
training built it (``train.setup``: the same crop, class maps, ``ngpus`` and fine-tune hook), loads a
snapshot by name, and applies the dataset's channels, size and resize mode, the job's mean subtraction and
centre crop, the same code path as validation.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..data.dataset import DatasetJob
from ..data.images import convert_channels, load_image, resize_image
from ..data.loader import SplitData, Transform, mean_tensor
from ..errors import OptionError
from ..store.lmdb_db import open_db
from ..train import records
from ..train.training_job import TrainingJob
from ..train.setup import setup_for_job

ImageLike = "str | Path | np.ndarray | Image.Image"


@dataclass
class Prediction:
    """Outputs of one batch of inputs, with what a view needs to draw them."""
    inputs: np.ndarray            # the images as given to the transforms: N×H×W(×C) uint8
    tensors: torch.Tensor         # what the network saw (after mean subtraction and crop), NCHW float
    outputs: np.ndarray           # network outputs, N×...
    names: list[str]              # file names, DB keys or "#i"


class Predictor:
    """A model job's network with a snapshot's weights, ready for inference on CPU or CUDA.

    ``state`` is the snapshot's contents when they do not come from the job's directory (a downloaded
    archive opened by ``dw.load_model``, whose job stands in for the model job); else the snapshot is read.
    """

    def __init__(self, job: TrainingJob, snapshot: "str | float | None" = None, device: str | None = None,
                 state: dict | None = None):
        self.job = job
        self.dataset: DatasetJob = job.dataset
        self.options = job.options
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        h, w, c = self.dataset.feature_shape
        self.shape = (c, h, w)
        self.mean_mode = self.options.mean
        mean_hwc = self.dataset.mean() if self.mean_mode != "none" else None
        self.mean = mean_tensor(mean_hwc, self.mean_mode, self.shape)
        # the network as training built it (its ngpus, crop, class maps), and fine-tuned when it was
        self.setup = setup_for_job(job, self.options).tuned()
        self.network, self.nclasses, self.crop = self.setup.network, self.setup.nclasses, self.setup.crop
        self.snapshot_path = job.snapshot_path(snapshot)
        if state is None:
            state = records.load(self.snapshot_path)
        self.module = self.network.module
        self.module.load_state_dict(state.get("model", state))
        self.module.to(self.device).eval()

    # ---- inputs --------------------------------------------------------------------------------
    def load(self, image: ImageLike, resize: bool = True) -> np.ndarray:
        """One image as the dataset stores them: its channels, and its size unless ``resize=False``."""
        c, h, w = self.shape
        if isinstance(image, (str, Path)):
            arr = load_image(image, "L" if c == 1 else "RGB")
        else:
            arr = np.asarray(image)
            if arr.dtype != np.uint8:
                arr = np.clip(arr, 0, 255).astype(np.uint8)
            arr = convert_channels(arr, c)
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        if resize and arr.shape[:2] != (h, w):
            mode = self.dataset.params.get("resize_mode", "squash")
            arr = resize_image(arr, h, w, mode if mode in ("squash", "crop", "fill", "half_crop") else "squash")
        return arr

    def transform(self, batch: np.ndarray) -> torch.Tensor:
        """uint8 N×H×W(×C) → NCHW float after mean subtraction and centre crop, as in validation."""
        x = torch.from_numpy(np.array(batch, dtype=np.float32))   # a writable copy: decoded images may be read-only
        x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
        mean = self.mean
        if mean is not None and mean.shape[1:] != x.shape[2:] and mean.shape[1] > 1:
            # "Do not resize input image(s)": DIGITS resized the mean image to the input's size
            mean = F.interpolate(mean[None], size=tuple(x.shape[2:]), mode="bilinear", align_corners=False)[0]
        x, _ = Transform(mean, self.crop if self.crop and min(x.shape[2:]) >= self.crop else None)(
            x, None, train=False)
        return x

    # ---- running -------------------------------------------------------------------------------
    @torch.no_grad()
    def run(self, x: torch.Tensor) -> torch.Tensor:
        return self.module.infer(x.to(self.device)).float().cpu()

    def predict(self, images: Sequence[ImageLike] | ImageLike, resize: bool = True,
                batch_size: int = 64) -> Prediction:
        if isinstance(images, np.ndarray):
            c = self.shape[0]
            many = images.ndim == 4 or (images.ndim == 3 and c == 1 and images.shape[2] != 1 and images.shape[2] != 3)
            images = list(images) if many else [images]   # N×H×W(×C) batches, else one image
        elif isinstance(images, (str, Path, Image.Image)):
            images = [images]
        arrays = [self.load(im, resize) for im in images]
        names = [Path(im).name if isinstance(im, (str, Path)) else f"#{i}" for i, im in enumerate(images)]
        if not arrays:
            raise OptionError("No images to test", field="images")
        shapes = {a.shape for a in arrays}
        if len(shapes) > 1:
            raise OptionError(f"With resize=False all images must have one size, got {sorted(shapes)}",
                              field="resize")
        stack = np.stack(arrays)
        tensors, outputs = [], []
        for s in range(0, len(stack), batch_size):
            x = self.transform(stack[s:s + batch_size])
            tensors.append(x)
            outputs.append(self.run(x))
        return Prediction(stack, torch.cat(tensors), torch.cat(outputs).numpy(), names)

    def predict_db(self, db_path: str | Path | None = None, limit: int | None = None,
                   batch_size: int = 64, resize: bool = True) -> tuple[Prediction, np.ndarray | None]:
        """Outputs for the first ``limit`` entries of a DB (default: the dataset's validation features)
        and their labels when the dataset has them (class indices, vectors or label images).
        ``resize=False`` feeds a DB of another image size at its own size, as ``predict`` does."""
        if db_path is None:
            split = "val" if self.dataset.count("val") else "train"
            db_path, labels_path = self.dataset.db_path(split), self.dataset.db_path(split, "labels")
        else:
            labels_path = None
            db_path = Path(db_path)
            for split in ("train", "val", "test"):
                if self.dataset.db_path(split) == db_path:
                    labels_path = self.dataset.db_path(split, "labels")
        data = SplitData(db_path, labels_path, self.dataset.task, budget=0)
        n = len(data) if limit is None else min(limit, len(data))
        db = open_db(db_path)
        inputs = db.read_batch(range(n))
        pred = self.predict(list(inputs), resize=resize, batch_size=batch_size)
        pred.names = [db.key(i) for i in range(n)]
        _, y = data.batch(np.arange(n))
        return pred, (y.numpy() if y is not None else None)

    def classify(self, images: Sequence[ImageLike] | ImageLike, top: int = 5,
                 resize: bool = True) -> list[list[tuple[str, float]]]:
        """Top classes with probabilities in percent, as DIGITS' classify_one showed them."""
        pred = self.predict(images, resize)
        probs = torch.softmax(torch.from_numpy(pred.outputs), 1)
        labels = self.dataset.labels or [str(i) for i in range(probs.shape[1])]
        out = []
        for row in probs:
            p, idx = row.topk(min(top, len(row)))
            out.append([(labels[i], round(100 * float(v), 2)) for v, i in zip(p, idx)])
        return out


def classification_report(outputs: np.ndarray, labels: np.ndarray, class_names: Iterable[str]) -> dict:
    """Top-1 / top-5 accuracy, per-class accuracy and the confusion matrix (rows: truth, columns: predicted)."""
    names = list(class_names)
    k = outputs.shape[1]
    pred = outputs.argmax(1)
    top5 = np.argsort(-outputs, 1)[:, :5]
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (labels, pred), 1)
    per_class = {names[i] if i < len(names) else str(i): float(confusion[i, i] / confusion[i].sum())
                 for i in range(k) if confusion[i].sum()}
    return {"accuracy": float((pred == labels).mean()), "top5_accuracy": float((top5 == labels[:, None]).any(1).mean()),
            "per_class": per_class, "confusion": confusion, "classes": names}
