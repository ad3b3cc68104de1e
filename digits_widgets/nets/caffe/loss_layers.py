"""Caffe's loss and accuracy layers as PyTorch modules, with Caffe's normalisations and tie rules.

``make_loss_layer(layer, shapes)`` returns the module for one of :data:`LOSS_TYPES` or ``Accuracy``; the label
bottoms are read as Caffe reads them (``static_cast<int>`` for class labels, the same count of values for targets).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import CaffeLayerError

LOSS_TYPES = ('SoftmaxWithLoss', 'EuclideanLoss', 'L1Loss', 'SigmoidCrossEntropyLoss', 'ContrastiveLoss')
FULL, VALID, BATCH_SIZE, NONE = 0, 1, 2, 3   # LossParameter.NormalizationMode


def _label_like(label: Tensor, like: Tensor) -> Tensor:
    if label.numel() != like.numel():
        raise CaffeLayerError(f'the bottoms have {like.numel()} and {label.numel()} values; they must match')
    return label.reshape(like.shape).to(like.dtype)


def _class_labels(label: Tensor, scores: Tensor) -> Tensor:
    """One integer label per sample and position: ``(N,) + spatial``, truncated as Caffe's int cast does."""
    shape = (scores.shape[0],) + tuple(scores.shape[2:])
    if label.numel() != math.prod(shape):
        raise CaffeLayerError(f'the label has {label.numel()} values but the scores {tuple(scores.shape)} need '
                              'one per sample and position')
    return label.reshape(shape).trunc().long()


def _normalizer(mode: int, batch: int, total: int, valid: Tensor | None) -> Tensor | float:
    """Caffe's LossLayer normalizer: FULL, VALID (the non-ignored count), BATCH_SIZE or NONE, at least 1."""
    if mode == FULL:
        return float(max(1, total))
    if mode == VALID:
        return float(max(1, total)) if valid is None else valid.clamp(min=1)
    if mode == BATCH_SIZE:
        return float(max(1, batch))
    return 1.0


def normalization_of(loss_param, default: int) -> int:
    """``normalization`` when set, else the legacy ``normalize`` (VALID / BATCH_SIZE), else ``default``."""
    if loss_param.HasField('normalization'):
        return loss_param.normalization
    if loss_param.HasField('normalize'):
        return VALID if loss_param.normalize else BATCH_SIZE
    return default


class SoftmaxWithLoss(nn.Module):
    """Cross entropy of the softmax along ``axis``; a second top is the probabilities."""

    def __init__(self, ignore_label: int | None, normalization: int, axis: int, ntops: int):
        super().__init__()
        self.ignore_label, self.normalization, self.axis, self.ntops = ignore_label, normalization, axis, ntops

    def forward(self, scores: Tensor, label: Tensor):
        moved = scores.movedim(self.axis, 1) if self.axis % scores.dim() != 1 else scores
        target = _class_labels(label, moved)
        ignore = self.ignore_label if self.ignore_label is not None else -100
        losses = F.cross_entropy(moved, target, ignore_index=ignore, reduction='none')
        valid = (target != ignore).sum() if self.ignore_label is not None else None
        loss = losses.sum() / _normalizer(self.normalization, moved.shape[0], target.numel(), valid)
        if self.ntops > 1:
            return loss, F.softmax(scores, self.axis)
        return loss


class EuclideanLoss(nn.Module):
    """``sum((a - b)^2) / N / 2``."""

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return ((a - _label_like(b, a)) ** 2).sum() / a.shape[0] / 2


class L1Loss(nn.Module):
    """NVcaffe's L1Loss (DIGITS' Caffe): ``sum(|a - b|) / N``, summed over each sample's values like
    EuclideanLoss, which is why the segmentation tutorial trains it at a base rate of 1e-7."""

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return (a - _label_like(b, a)).abs().sum() / a.shape[0]


class MeanAbsolute(nn.Module):
    """The L1 of DIGITS' image-reconstruction ``loss.py``: ``sum(|a - b|) / count``, the mean over every value."""

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return (a - _label_like(b, a)).abs().mean()


class HalfMeanSquare(nn.Module):
    """The L2 of DIGITS' image-reconstruction ``loss.py``: ``sum((a - b)^2) / count / 2`` over every value."""

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return ((a - _label_like(b, a)) ** 2).mean() / 2


# Python layers DIGITS' examples ship (examples/image-reconstruction/loss.py, uploaded as the job's
# digits_python_layers module), built in here since no Caffe Python layer runs: (module, layer) -> module class.
PYTHON_LOSSES = {('digits_python_layers', 'L1'): MeanAbsolute, ('digits_python_layers', 'L2'): HalfMeanSquare}


def python_loss_of(layer) -> type[nn.Module] | None:
    """The built-in module for a ``type: "Python"`` layer that is one of :data:`PYTHON_LOSSES`, else None."""
    if layer.type != 'Python':
        return None
    return PYTHON_LOSSES.get((layer.python_param.module, layer.python_param.layer))


class SigmoidCrossEntropyLoss(nn.Module):
    """The summed binary cross entropy on logits; targets equal to ``ignore_label`` count for nothing.
    Divided by the batch size unless ``loss_param`` says otherwise, as in Caffe 1.0."""

    def __init__(self, ignore_label: int | None, normalization: int):
        super().__init__()
        self.ignore_label, self.normalization = ignore_label, normalization

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        target = _label_like(b, a)
        losses = F.binary_cross_entropy_with_logits(a, target, reduction='none')
        valid = None
        if self.ignore_label is not None:
            keep = target.trunc() != self.ignore_label
            losses = torch.where(keep, losses, torch.zeros_like(losses))
            valid = keep.sum()
        return losses.sum() / _normalizer(self.normalization, a.shape[0], a.numel(), valid)


class ContrastiveLoss(nn.Module):
    """Caffe's ContrastiveLoss on the pairs ``(a, b)`` with ``y`` nonzero for similar pairs:
    ``sum(y d^2 + (1-y) max(margin - d, 0)^2) / N / 2`` with ``d = ||a - b||``; ``legacy_version`` uses
    ``max(margin - d^2, 0)``. The gradient divides by ``d + 1e-4`` as Caffe's does, so equal pairs stay finite."""

    def __init__(self, margin: float, legacy: bool):
        super().__init__()
        self.margin, self.legacy = margin, legacy

    def forward(self, a: Tensor, b: Tensor, y: Tensor) -> Tensor:
        if a.shape != b.shape:
            raise CaffeLayerError(f'the two features have shapes {tuple(a.shape)} and {tuple(b.shape)}')
        n = a.shape[0]
        if y.numel() != n:
            raise CaffeLayerError(f'the similarity label has {y.numel()} values for {n} pairs')
        similar = y.reshape(n).trunc() != 0
        dist_sq = ((a - b) ** 2).reshape(n, -1).sum(1)
        if self.legacy:
            apart = (self.margin - dist_sq).clamp(min=0)
        else:
            root = dist_sq.detach().sqrt()
            dist = root + (dist_sq - dist_sq.detach()) / (2 * (root + 1e-4))   # value d, Caffe's gradient
            apart = (self.margin - dist).clamp(min=0) ** 2
        return torch.where(similar, dist_sq, apart).sum() / n / 2


class Accuracy(nn.Module):
    """Caffe's: a sample is right when fewer than ``top_k`` classes score at least as high as its own class
    (so ties count against it). A second top is the accuracy of each class (0 for a class with no sample)."""

    def __init__(self, top_k: int, axis: int, ignore_label: int | None, ntops: int):
        super().__init__()
        self.top_k, self.axis, self.ignore_label, self.ntops = top_k, axis, ignore_label, ntops

    def forward(self, scores: Tensor, label: Tensor):
        scores = scores.detach()
        if self.axis % scores.dim() != 1:
            scores = scores.movedim(self.axis, 1)
        nclasses = scores.shape[1]
        if self.top_k > nclasses:
            raise CaffeLayerError(f'top_k {self.top_k} is more than the {nclasses} classes')
        target = _class_labels(label, scores).to(scores.device)
        keep = torch.ones_like(target, dtype=torch.bool)
        if self.ignore_label is not None:
            keep = target != self.ignore_label
        safe = torch.where(keep, target, torch.zeros_like(target))
        if bool(((safe < 0) | (safe >= nclasses)).any()):
            raise CaffeLayerError(f'a label is outside 0..{nclasses - 1}')
        own = scores.gather(1, safe.unsqueeze(1))
        right = ((scores >= own).sum(1) <= self.top_k) & keep
        count = keep.sum()
        accuracy = right.sum().float() / count.clamp(min=1)
        if self.ntops == 1:
            return accuracy
        per_class_total = torch.bincount(safe[keep], minlength=nclasses).float()
        per_class_right = torch.bincount(safe[right], minlength=nclasses).float()
        return accuracy, per_class_right / per_class_total.clamp(min=1)


def make_loss_layer(layer, shapes: list) -> nn.Module:
    """The module for a loss or Accuracy LayerParameter."""
    t, lp, ntops = layer.type, layer.loss_param, max(1, len(layer.top))
    ignore = lp.ignore_label if lp.HasField('ignore_label') else None
    nbottoms = {'ContrastiveLoss': 3}.get(t, 2)
    if len(layer.bottom) != nbottoms:
        raise CaffeLayerError(f'{t} takes {nbottoms} bottoms, not {len(layer.bottom)}')
    if ntops > (2 if t in ('SoftmaxWithLoss', 'Accuracy') else 1):
        raise CaffeLayerError(f'{t} makes {"two tops" if t in ("SoftmaxWithLoss", "Accuracy") else "one top"}, '
                              f'not {ntops}')
    if t == 'Python':
        return python_loss_of(layer)()
    if t == 'SoftmaxWithLoss':
        return SoftmaxWithLoss(ignore, normalization_of(lp, VALID), layer.softmax_param.axis, ntops)
    if t == 'EuclideanLoss':
        return EuclideanLoss()
    if t == 'L1Loss':
        return L1Loss()
    if t == 'SigmoidCrossEntropyLoss':
        return SigmoidCrossEntropyLoss(ignore, normalization_of(lp, BATCH_SIZE))
    if t == 'ContrastiveLoss':
        p = layer.contrastive_loss_param
        return ContrastiveLoss(p.margin, p.legacy_version)
    if t == 'Accuracy':
        p = layer.accuracy_param
        return Accuracy(p.top_k, p.axis, p.ignore_label if p.HasField('ignore_label') else None, ntops)
    raise CaffeLayerError(f'{t} is not a loss layer')
