"""The ``digits`` helper namespace that network cells see, ported from DIGITS' TensorFlow ``utils.py``.

The names and formulas are DIGITS' so that code written for its TensorFlow guide keeps working; only the
tensor layout changes: here batches are **NCHW** (PyTorch's layout), so the channel axis of a batch or of a
single CHW image is dim ``-3``. The layout helpers accept torch tensors and numpy arrays alike.
"""
from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    'STAGE_TRAIN', 'STAGE_VAL', 'STAGE_INF',
    'classification_loss', 'mse_loss', 'l1_loss', 'constrastive_loss', 'contrastive_loss',
    'classification_accuracy', 'classification_accuracy_top_n',
    'nhwc_to_nchw', 'nchw_to_nhwc', 'hwc_to_chw', 'chw_to_hwc', 'bgr_to_rgb', 'rgb_to_bgr',
    'flatten', 'get_available_gpus',
]

STAGE_TRAIN = 'train'
STAGE_VAL = 'val'
STAGE_INF = 'inf'

ArrayT = TypeVar('ArrayT', Tensor, np.ndarray)


def classification_loss(pred: Tensor, y: Tensor) -> Tensor:
    """Mean cross entropy of logits ``pred`` [N, K] against class indices ``y`` [N] (DIGITS' sparse softmax CE)."""
    if y.dim() == pred.dim() - 1 and y.dtype != torch.long:
        y = y.long()  # labels read from a float label DB are still class indices
    return F.cross_entropy(pred, y)


def mse_loss(lhs: Tensor, rhs: Tensor) -> Tensor:
    """``mean((lhs - rhs)^2)``, broadcasting like DIGITS' ``reduce_mean(square(lhs - rhs))``."""
    return torch.mean((lhs - rhs) ** 2)


def l1_loss(lhs: Tensor, rhs: Tensor) -> Tensor:
    """``mean(|lhs - rhs|)``: the L1 objective of the image-reconstruction and segmentation tutorials."""
    return torch.mean(torch.abs(lhs - rhs))


def constrastive_loss(lhs: Tensor, rhs: Tensor, y: Tensor, margin: float = 1.0) -> Tensor:
    """Caffe's contrastive loss without the 1/2, as DIGITS wrote it (the misspelling is DIGITS' own name).

    ``d = sum((lhs - rhs)^2, dim 1)``; loss = ``mean(y*d + (1-y) * max(margin - sqrt(1e-6 + d), 0)^2)``, where
    ``y`` is 1 for similar pairs and 0 for dissimilar ones.
    """
    y = y.to(lhs.dtype)
    d = torch.sum((lhs - rhs) ** 2, dim=1)
    far = torch.clamp(margin - torch.sqrt(1e-6 + d), min=0.0) ** 2
    return torch.mean(y * d + (1.0 - y) * far)


contrastive_loss = constrastive_loss


def classification_accuracy(pred: Tensor, y: Tensor) -> Tensor:
    """Fraction of rows whose arg-max matches the label."""
    return (pred.argmax(dim=1) == y.long()).float().mean()


def classification_accuracy_top_n(pred: Tensor, y: Tensor, n: int) -> Tensor:
    """Fraction of rows whose label is among the ``n`` best scores.

    Ties count in the label's favour, as TensorFlow's ``in_top_k`` (which DIGITS used) does: the label is in the
    top ``n`` when fewer than ``n`` classes score strictly higher.
    """
    target = pred.gather(1, y.long().view(-1, 1))
    higher = (pred > target).sum(dim=1)
    return (higher < n).float().mean()


def _permute(x: ArrayT, order: tuple[int, ...], name: str) -> ArrayT:
    if x.ndim != len(order):
        raise ValueError(f"{name} expects a {len(order)}-D tensor, got shape {tuple(x.shape)}")
    if isinstance(x, np.ndarray):
        return x.transpose(order)
    return x.permute(*order)


def nhwc_to_nchw(x: ArrayT) -> ArrayT:
    """[N, H, W, C] → [N, C, H, W]."""
    return _permute(x, (0, 3, 1, 2), 'nhwc_to_nchw')


def nchw_to_nhwc(x: ArrayT) -> ArrayT:
    """[N, C, H, W] → [N, H, W, C]."""
    return _permute(x, (0, 2, 3, 1), 'nchw_to_nhwc')


def hwc_to_chw(x: ArrayT) -> ArrayT:
    """[H, W, C] → [C, H, W]."""
    return _permute(x, (2, 0, 1), 'hwc_to_chw')


def chw_to_hwc(x: ArrayT) -> ArrayT:
    """[C, H, W] → [H, W, C]."""
    return _permute(x, (1, 2, 0), 'chw_to_hwc')


def _reverse_channels(x: ArrayT, name: str) -> ArrayT:
    if x.ndim < 3:
        raise ValueError(f"{name} expects a CHW image or an NCHW batch (channel axis -3), got shape "
                         f"{tuple(x.shape)}")
    if isinstance(x, np.ndarray):
        return x[..., ::-1, :, :]
    return x.flip(-3)


def bgr_to_rgb(x: ArrayT) -> ArrayT:
    """Reverse the channel axis (dim -3) of a CHW image or an NCHW batch."""
    return _reverse_channels(x, 'bgr_to_rgb')


def rgb_to_bgr(x: ArrayT) -> ArrayT:
    """Reverse the channel axis (dim -3) of a CHW image or an NCHW batch."""
    return _reverse_channels(x, 'rgb_to_bgr')


def flatten(x: Tensor) -> Tensor:
    """[N, ...] → [N, prod(...)], like ``slim.flatten``."""
    return x.reshape(x.shape[0], -1)


def get_available_gpus() -> list[str]:
    """Device names of the visible CUDA GPUs (``'cuda:0'``, ...); empty on a CPU-only machine."""
    return [f'cuda:{i}' for i in range(torch.cuda.device_count())]
