"""The training half of a model job, as seen from disk: its options, network text, metrics, snapshots;
pause and abort.

Users meet one class, ``dw.Model`` (``infer/model.py``), which adds testing, download and export to this
one and is registered for the same kind, so ``dw.train`` and ``dw.job(id)`` hand it out. This half is what
the trainer, the launcher and a torchrun worker need, and no more. Resuming is the launcher's
(``train.launch.resume``): starting a run is its job, and keeping it there leaves this module below it.
"""
from __future__ import annotations

from pathlib import Path

from ..data.dataset import DatasetJob
from ..errors import JobError
from ..store import events
from ..store.durations import eta
from ..store.jobs import ACTIVE, WAITING, Job, find_job
from ..store.scheduler import waiting_label
from . import records
from .options import TrainOptions

CONTROL = "control"   # files the kernel writes to steer a torchrun job: control/abort, control/pause


class TrainingJob(Job):
    kind = "model"
    error_log = "train.log"   # a failure's traceback goes beside the trainer's own lines

    def __init__(self, directory: Path, record: dict):
        super().__init__(directory, record)
        self.network_object = None   # a network passed as a Python object (not text), kept for resume
        self.process = None          # the torchrun process, when this kernel started one

    @property
    def options(self) -> TrainOptions:
        return TrainOptions.from_dict(self.params.get("options", {}))

    @property
    def dataset(self) -> DatasetJob:
        return find_job(self.parents[0], kind="dataset")

    def network_source(self) -> str:
        return self.path("network.py").read_text()

    # ---- what training produced ------------------------------------------------------------------
    def metrics(self, phase: str | None = None) -> list[dict]:
        """Every metrics record (``phase`` 'train' or 'val' to filter), as written to metrics.jsonl."""
        rows = records.read_metrics(self.path(records.METRICS))
        return [r for r in rows if phase is None or r.get("phase") == phase]

    def snapshots(self) -> list[tuple[float, Path]]:
        return records.list_snapshots(self.dir)

    def snapshot_path(self, snapshot: "str | float | int | None" = None) -> Path:
        """A snapshot file: None/'last' → the latest, 'best' → lowest val loss, a number → that epoch."""
        snaps = self.snapshots()
        if snapshot in (None, "last"):
            if not snaps:
                raise JobError(f"Model {self.name!r} has no snapshot yet")
            return snaps[-1][1]
        if snapshot == "best":
            best = self.path(records.SNAPSHOTS, "best.pt")
            if not best.exists():
                raise JobError(f"Model {self.name!r} kept no best snapshot (keep_best=False or no validation)")
            return best
        for epoch, path in snaps:
            if abs(epoch - float(snapshot)) < 1e-9:
                return path
        have = ", ".join(f"{e:g}" for e, _ in snaps) or "none"
        raise JobError(f"Pretrained_model for the selected epoch doesn't exist: epoch {snapshot} "
                       f"(snapshots: {have})")

    def export_caffemodel(self, path: "str | Path", snapshot: "str | float | None" = None) -> Path:
        """A snapshot's weights as a Caffe .caffemodel (prototxt networks only), for Caffe or DIGITS to load."""
        from .pretrained import export_job_caffemodel
        return export_job_caffemodel(self, path, snapshot)

    # ---- steering --------------------------------------------------------------------------------
    def _control(self, name: str, on: bool) -> None:
        p = self.path(CONTROL, name)
        if on:
            p.parent.mkdir(exist_ok=True)
            p.touch()
        else:
            p.unlink(missing_ok=True)

    def abort(self) -> None:
        """Stop at the next batch; the last checkpoint stays, so ``resume()`` can go on from it."""
        super().abort()
        self._control("abort", True)

    def pause(self) -> None:
        self._pause_flag(True)

    def unpause(self) -> None:
        self._pause_flag(False)

    def _pause_flag(self, on: bool) -> None:
        self._control("pause", on)
        self.emit(events.paused(on))

    @property
    def paused(self) -> bool:
        return self.path(CONTROL, "pause").exists()

    # ---- text status -----------------------------------------------------------------------------
    def status_line(self) -> str:
        status = self.status
        if status == WAITING and self.waiting_for:   # queued in this kernel's scheduler
            status = f"{waiting_label(self.queue_position)} for {self.waiting_for}"
        parts = [f"Model {self.name!r} ({self.id}) {status}"]
        p = self.progress
        if p.get("total"):
            parts.append(f"{p.get('stage', '')} step {p['done']}/{p['total']}")
            if p.get("eta") and self.status in ACTIVE:
                parts.append(eta(p["eta"]))
        rows = self.metrics()
        train = [r for r in rows if r["phase"] == "train"]
        val = [r for r in rows if r["phase"] == "val"]
        if train:
            parts.append(f"loss {train[-1]['loss']:.4g}")
        if val:
            parts.append(f"val loss {val[-1]['loss']:.4g}")
            if "accuracy" in val[-1]:
                parts.append(f"val accuracy {100 * val[-1]['accuracy']:.2f}%")
        if self.error:
            parts.append(f"\n{self.error}")
        return " | ".join(parts[:1] + [" ".join(parts[1:])]) if len(parts) > 1 else parts[0]

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(self.status_line())
