"""A trained model job you can test: ``job.infer``, ``job.infer_db``, ``job.classify``, ``job.probe``;
and take away: ``job.download`` (an archive ``dw.load_model`` opens anywhere), ``job.export`` (TorchScript, ONNX).

This is the one model class a user meets (``dw.Model``): ``dw.train``, ``%%digits_model`` and ``dw.job(id)``
hand it out, since it is registered for the model kind. It extends the training half, ``TrainingJob``
(what the trainer and a torchrun worker need), with ``resume`` (the launcher's) and everything a trained
model is for. Predictors are cached per snapshot.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np

from ..errors import JobError
from ..train import launch
from ..train.training_job import TrainingJob
from .predict import Prediction, Predictor, classification_report
from .probes import Probe, probe


class Model(TrainingJob):
    kind = "model"
    tester: ClassVar[Callable[..., Any] | None] = None   # (job, snapshot) → inference panel; set by the package

    def resume(self, network=None, keep_schedule: bool = False, **changes) -> "Model":
        """Continue from checkpoint.pt (after an abort, a crash or a kernel restart), exactly; through the
        scheduler, like a new run. ``changes``: training options (``epochs=60``, which stretches the
        learning-rate policy; ``keep_schedule=True`` keeps the first run's iterations). See
        :func:`digits_widgets.train.launch.resume`."""
        return launch.resume(self, network, keep_schedule, **changes)

    def test(self, snapshot: "str | float | None" = None) -> Any:
        """DIGITS' "Test a single image / a list / a database" panel for this model."""
        if Model.tester is None:
            raise JobError("No inference panel is registered: import digits_widgets (it registers the widgets)")
        return Model.tester(self, snapshot)

    def predictor(self, snapshot: "str | float | None" = None, device: str | None = None) -> Predictor:
        path = self.snapshot_path(snapshot)
        key = (str(path), path.stat().st_mtime_ns, device)
        cache = self.__dict__.setdefault("_predictors", {})
        if key not in cache:
            cache.clear()
            cache[key] = Predictor(self, snapshot, device)
        return cache[key]

    def infer(self, images, snapshot: "str | float | None" = None, resize: bool = True) -> Prediction:
        """Outputs for image paths, arrays or PIL images; ``resize=False`` keeps their own size."""
        return self.predictor(snapshot).predict(images, resize)

    def infer_db(self, db_path: "str | Path | None" = None, limit: int | None = None,
                 snapshot: "str | float | None" = None, resize: bool = True
                 ) -> tuple[Prediction, np.ndarray | None]:
        """Outputs for a DB (default: the dataset's validation features) and the matching labels;
        ``resize=False`` keeps the DB's own image size."""
        return self.predictor(snapshot).predict_db(db_path, limit, resize=resize)

    def classify(self, images, snapshot: "str | float | None" = None, top: int = 5,
                 labels: "list[int] | None" = None, resize: bool = True):
        """Top-``top`` (class, %) per image; with ``labels``, also accuracy and the confusion matrix."""
        pred = self.predictor(snapshot)
        tops = pred.classify(images, top, resize)
        if labels is None:
            return tops
        outputs = pred.predict(images, resize).outputs
        return tops, classification_report(outputs, np.asarray(labels), self.dataset.labels)

    def probe(self, image, snapshot: "str | float | None" = None, resize: bool = True) -> list[Probe]:
        """Every layer's activation and every parameter for one image, with mean, std and histogram."""
        pred = self.predictor(snapshot)
        x = pred.transform(pred.load(image, resize)[None]).to(pred.device)
        return probe(pred.module.inner, lambda t: pred.module.infer(t), x)

    # ---- taking the model elsewhere ------------------------------------------------------------------
    def download(self, path: "str | Path", format: str | None = None, snapshot: "str | float | None" = None,
                 include: "tuple[str, ...]" = ()) -> Path:
        """DIGITS' "Download Model": snapshot, network text, mean file, labels and info.json in one
        ``tar.gz`` or ``zip`` (``path`` a folder: ``<name>-epoch-N.tar.gz`` in it), for ``dw.load_model``.
        ``include=("onnx",)`` adds the ONNX export (``"torchscript"`` the TorchScript one)."""
        from .archive import download
        return download(self, path, format, snapshot, include)

    def export(self, path: "str | Path", format: str = "onnx", snapshot: "str | float | None" = None,
               preprocess: str = "bake") -> Path:
        """The snapshot's network as TorchScript (``format="torchscript"``) or ONNX with a dynamic batch axis.
        ``preprocess="bake"``: the file takes raw 0..255 N×C×H×W images (mean and crop inside);
        ``"separate"``: it takes what the network sees, and ``<stem>.preprocess.json`` says how to get there."""
        from .export import export_predictor
        return export_predictor(self.predictor(snapshot, device="cpu"), path, format, preprocess)
