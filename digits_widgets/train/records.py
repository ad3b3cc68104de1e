"""What a training run leaves on disk: metrics.jsonl, snapshots, checkpoint.pt, TensorBoard events.

Every write that another reader depends on goes to a temporary file renamed into place, and every
file loads back with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..store import events
from ..store.feed import METRICS
from ..store.jobs import Job
from ..store.tail import Tail, json_records

CHECKPOINT = "checkpoint.pt"
SNAPSHOTS = "snapshots"
_SNAP_RE = re.compile(r"epoch_(\d+(?:\.\d+)?)\.pt$")


def atomic_save(obj: object, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load(path: Path, map_location: str | torch.device = "cpu") -> dict:
    return torch.load(path, map_location=map_location, weights_only=True)


class MetricsLog:
    """Appends one JSON line per event to metrics.jsonl, tells subscribers, mirrors to TensorBoard.

    TensorBoard gets one event per record holding all its scalars (tags ``train/loss``, ``val/accuracy``,
    ...), handed to its writer thread at most once a second (and at ``close``): small networks log every
    few milliseconds, and waking that thread for each record costs the training thread its GIL.
    """

    TB_EVERY = 1.0   # seconds between hand-offs to TensorBoard's writer thread

    def __init__(self, job: Job, tensorboard: bool = True):
        self.job = job
        self._file = open(job.path(METRICS), "a")
        self._tb = self._summary = None
        self._pending: list[dict] = []
        self._tb_due = 0.0
        if tensorboard:
            try:
                from tensorboard.compat.proto.summary_pb2 import Summary
                from torch.utils.tensorboard.writer import FileWriter
            except ImportError:  # tensorboard is an optional extra
                return
            self._tb, self._summary = FileWriter(str(job.path("tb"))), Summary

    def write(self, record: dict) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        self.job.emit(events.metric(record))
        if self._tb is not None:
            self._pending.append(record)
            now = time.monotonic()
            if now >= self._tb_due:
                self._tb_due = now + self.TB_EVERY
                self._to_tensorboard()

    def _to_tensorboard(self) -> None:
        Value = self._summary.Value
        for record in self._pending:
            values = [Value(tag=f"{record['phase']}/{key}", simple_value=value) for key, value in record.items()
                      if key not in ("phase", "step", "epoch", "time") and isinstance(value, (int, float))]
            self._tb.add_summary(self._summary(value=values), record["step"], record.get("time"))
        self._pending = []

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._to_tensorboard()
            self._tb.close()


def read_metrics(path: Path) -> list[dict]:
    """Every complete line of a metrics file (a line being written right now is skipped)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    return json_records(text.splitlines())


@dataclass
class MetricsTail:
    """Running summary of a metrics.jsonl (last and lowest val loss, last val accuracy) for the jobs table:
    each ``update`` reads only the complete lines appended since the last (``store.tail.Tail``)."""

    last_loss: float | None = None
    min_loss: float | None = None
    accuracy: float | None = None
    _tail: Tail | None = field(default=None, repr=False, compare=False)

    def update(self, path: os.PathLike) -> "MetricsTail":
        if self._tail is None or self._tail.path != Path(path):
            self._tail = Tail(path)
        rows = self._tail.records()
        if self._tail.restarted:   # first read, or replaced (a resume trims it): start over
            self.last_loss = self.min_loss = self.accuracy = None
        for rec in rows:
            if rec.get("phase") == "val" and isinstance(rec.get("loss"), (int, float)):
                self.last_loss = rec["loss"]
                self.min_loss = rec["loss"] if self.min_loss is None else min(self.min_loss, rec["loss"])
                self.accuracy = rec.get("accuracy", self.accuracy)
        return self


def truncate_metrics(path: Path, last_step: int) -> None:
    """Drop what an interrupted run logged after its checkpoint, so a resumed run continues cleanly."""
    kept = [r for r in read_metrics(path) if r.get("step", 0) <= last_step]
    tmp = Path(path).with_name(f".{Path(path).name}.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
    os.replace(tmp, path)


def snapshot_name(epoch: float) -> str:
    return f"epoch_{int(epoch):04d}.pt" if float(epoch).is_integer() else f"epoch_{epoch:07.2f}.pt"


def list_snapshots(job_dir: Path) -> list[tuple[float, Path]]:
    """(epoch, path) of every epoch snapshot, oldest first."""
    found = []
    for p in (Path(job_dir) / SNAPSHOTS).glob("epoch_*.pt"):
        m = _SNAP_RE.search(p.name)
        if m:
            found.append((float(m.group(1)), p))
    return sorted(found)


def save_snapshot(job_dir: Path, state: dict, epoch: float, keep_last: int | None = None) -> Path:
    path = Path(job_dir) / SNAPSHOTS / snapshot_name(epoch)
    atomic_save({"model": state, "epoch": float(epoch)}, path)
    if keep_last:
        for _, old in list_snapshots(job_dir)[:-keep_last]:
            old.unlink(missing_ok=True)
    return path
