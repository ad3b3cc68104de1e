"""Loading pretrained weights by parameter name: DIGITS' "freezing by renaming", done honestly.

Tensors whose name and shape match are loaded; the rest keep their fresh initialisation and are listed
in the report, so renaming (or reshaping) a layer is how you ask for it to be retrained. A Caffe
``.caffemodel`` loads into a prototxt network by layer name as Caffe did (a reshaped same-named layer is an
error there, as in DIGITS), and a model job's snapshot exports back to one.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import JobError, OptionError
from ..nets.caffe.weights import CaffemodelError, export_caffemodel, load_caffemodel, looks_like_caffemodel
from ..store.jobs import find_job
from . import records


def resolve_snapshot(source: str) -> Path:
    """A snapshot path, or a model job (id or name, optionally ``JOB:EPOCH`` / ``JOB:best``) → its file."""
    path = Path(source).expanduser()
    if path.is_file():
        return path
    ref, _, which = str(source).partition(":")
    try:
        job = find_job(ref, kind="model")
    except JobError:
        raise OptionError(f"pretrained: {source!r} is neither a snapshot file nor a model job",
                          field="pretrained") from None
    if which in ("", "last", "best"):
        return job.snapshot_path(which or None)
    try:
        return job.snapshot_path(float(which))
    except ValueError:
        raise OptionError(f"pretrained: {which!r} is not an epoch, 'last' or 'best'", field="pretrained") from None


def load_pretrained(model: nn.Module, source: str) -> str:
    """Copy matching tensors from a snapshot (or a Caffe caffemodel) into ``model``; return a report of what
    was loaded and skipped."""
    path = resolve_snapshot(source)
    if looks_like_caffemodel(path):
        try:
            return str(load_caffemodel(model, path))
        except CaffemodelError as exc:
            raise OptionError(f"pretrained: {exc}", field="pretrained") from None
    state = records.load(path)
    state = state.get("model", state)
    own = model.state_dict()
    loadable, skipped = {}, []
    for name, tensor in state.items():
        if name not in own:
            skipped.append(f"{name} (not in this network)")
        elif own[name].shape != tensor.shape:
            skipped.append(f"{name} (shape {tuple(tensor.shape)} in the snapshot, {tuple(own[name].shape)} here)")
        else:
            loadable[name] = tensor
    fresh = [n for n in own if n not in loadable]
    with torch.no_grad():
        for name, tensor in loadable.items():
            own[name].copy_(tensor)
    lines = [f"Loaded {len(loadable)} of {len(own)} tensors from {path}"]
    if skipped:
        lines.append("Skipped from the snapshot: " + ", ".join(skipped))
    if fresh:
        lines.append("Freshly initialised (not in the snapshot): " + ", ".join(fresh))
    return "\n".join(lines)


def export_job_caffemodel(job, path: str | Path, snapshot: "str | float | None" = None) -> Path:
    """A model job's snapshot (``None``: the last) written as a Caffe .caffemodel; the job's network must be
    Caffe prototxt. The network is rebuilt for the job's dataset as training built it (train.setup)."""
    from .setup import setup_for_job

    net = setup_for_job(job).tuned().network
    state = records.load(job.snapshot_path(snapshot))
    net.module.load_state_dict(state.get("model", state))
    try:
        return export_caffemodel(net, path)
    except CaffemodelError as exc:
        raise JobError(f"Model {job.name!r} cannot be exported as a caffemodel: {exc}") from None
