"""What every network builder produces and checks: the :class:`Network` record, the input-shape check, the
build's dry run and the Torch7-style settings dict.

These live below the builders so imports point one way: ``network.py`` (the dispatcher, ``build_network``)
and the framework builders (``caffe/``, ``torch7/``) all import this module, and it imports none of them.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..errors import NetworkError
from .source import format_user_traceback, network_error
from .trainable import StepOutput, TrainableNet

__all__ = ['Network', 'check_input_shape', 'dry_run', 'torch7_settings', 'callable_or_none']

_TORCH7_KEYS = {
    'model': 'model', 'loss': 'loss', 'label_hook': 'label_hook', 'labelHook': 'label_hook',
    'train_batch_size': 'train_batch_size', 'trainBatchSize': 'train_batch_size',
    'validation_batch_size': 'validation_batch_size', 'validationBatchSize': 'validation_batch_size',
    'crop_len': 'crop_len', 'croplen': 'crop_len', 'fine_tune_hook': 'fine_tune_hook',
    'fineTuneHook': 'fine_tune_hook',
    # Torch7 wrapped models in DataParallelTable unless told not to; we never do, so the flag means nothing.
    'disableAutoDataParallelism': None, 'disable_auto_data_parallelism': None,
}


@dataclass
class Network:
    """A built network and the settings it asked for (``None`` = the form's value)."""

    module: TrainableNet
    style: str
    train_batch_size: int | None = None
    validation_batch_size: int | None = None
    crop_len: int | None = None
    fine_tune_hook: Callable[[nn.Module], nn.Module] | None = None
    source: str | None = None

    def first_batch(self, x: Tensor, y: Tensor | None = None) -> StepOutput:
        """Run one batch the way training does; an exception of user code becomes a NetworkError with its
        traceback that names the batch's shapes (and the output's, when only the loss failed), since the
        first real batch is where shapes meet the dataset's labels."""
        try:
            return self.module(x, y)
        except NetworkError:
            raise
        except Exception as exc:  # noqa: BLE001 - user code: report it with the shapes and its traceback
            yshape = tuple(y.shape) if y is not None else None
            try:  # when only the loss failed, the output's shape is the useful clue
                with torch.no_grad():
                    produced = f", network output {tuple(self.module.infer(x).shape)}"
            except Exception:  # noqa: BLE001 - the forward pass itself fails: nothing more to say
                produced = ""
            raise NetworkError(f"The network does not fit the dataset: input batch {tuple(x.shape)} (N, C, H, W), "
                               f"labels {yshape}{produced}; it failed with {type(exc).__name__}: {exc}",
                               format_user_traceback(exc)) from None

    def apply_fine_tune_hook(self) -> 'Network':
        """A Network around ``fine_tune_hook(inner)`` (Torch7's ``fineTuneHook``), with the same loss and label
        hook; call it after loading the pretrained snapshot. Without a hook, ``self``."""
        if self.fine_tune_hook is None:
            return self
        net = self.module
        try:
            inner = self.fine_tune_hook(net.inner)
        except Exception as exc:  # noqa: BLE001
            raise network_error('The fine_tune_hook failed', exc) from None
        if not isinstance(inner, nn.Module):
            raise NetworkError(f"fine_tune_hook must return an nn.Module, got {type(inner).__name__}")
        module = TrainableNet(inner, net.style, net.loss_fn, net.label_hook, net.nclasses)
        module.train(net.training)
        return replace(self, module=module, fine_tune_hook=None)


def check_input_shape(input_shape: Any) -> tuple[int, int, int]:
    """``input_shape`` as a ``(C, H, W)`` tuple of ints; NetworkError unless it is three positive sizes."""
    try:
        shape = tuple(int(v) for v in input_shape)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise NetworkError(f"input_shape must be (C, H, W) with positive sizes, got {input_shape!r}")
    return shape  # type: ignore[return-value]


def _positive_int(value: Any, key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise NetworkError(f"'{key}' must be a positive integer, got {value!r}")
    return value


def callable_or_none(value: Any, key: str) -> Any:
    """``value`` when it is ``None`` or callable (a loss or hook the user gave), else NetworkError naming ``key``."""
    if value is not None and not callable(value):
        raise NetworkError(f"'{key}' must be callable, got {type(value).__name__}")
    return value


def torch7_settings(result: Any) -> dict[str, Any]:
    """Normalise the dict a Torch7-style ``network(params)`` returns (Lua camelCase keys accepted), whether it
    came from a Python function or from Lua: the model, loss and hooks checked, the sizes positive ints."""
    if isinstance(result, nn.Module):
        result = {'model': result}
    if not isinstance(result, dict):
        raise NetworkError("network(params) must return a dict with at least 'model' (an nn.Module), got "
                           f"{type(result).__name__}")
    unknown = sorted(str(k) for k in result if k not in _TORCH7_KEYS)
    if unknown:
        raise NetworkError(f"network(params) returned unknown key(s) {unknown}; accepted keys: "
                           f"{', '.join(sorted(k for k, v in _TORCH7_KEYS.items() if v))}")
    settings = {_TORCH7_KEYS[k]: v for k, v in result.items() if _TORCH7_KEYS[k]}
    if not isinstance(settings.get('model'), nn.Module):
        raise NetworkError("network(params) must return a dict whose 'model' is an nn.Module, got "
                           f"{type(settings.get('model')).__name__}")
    for key in ('loss', 'label_hook', 'fine_tune_hook'):
        callable_or_none(settings.get(key), key)
    for key in ('train_batch_size', 'validation_batch_size', 'crop_len'):
        settings[key] = _positive_int(settings.get(key), key)
    return settings


def _dry_labels(nclasses: int, label_shape: tuple[int, ...] | None) -> Tensor | None:
    """The dry run's labels: class indices for classification (one per sample, or an H x W class map per
    sample when ``label_shape`` is a map, as segmentation's), else none."""
    if nclasses <= 0:
        return None
    shape = tuple(int(v) for v in label_shape or ())
    if len(shape) == 3 and shape[-1] == 1:  # H x W x 1 as a label image is stored: one class map
        shape = shape[:2]
    return torch.zeros(2, *shape, dtype=torch.long)


def dry_run(net: TrainableNet, input_shape: tuple[int, int, int], nclasses: int,
            label_shape: tuple[int, ...] | None = None) -> None:
    """One eval-mode batch of zeros (labels too for classification and segmentation, of the dataset's
    label shape): lazily created layers come into being, and shape errors show before any training starts."""
    x = torch.zeros(2, *input_shape)
    y = _dry_labels(nclasses, label_shape)
    was_training = net.training
    net.eval()
    try:
        net(x, y)
    finally:
        net.train(was_training)
