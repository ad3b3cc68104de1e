"""``TrainableNet``: one wrapper so the trainer, and DistributedDataParallel which wraps it, treat every style alike.

``forward(x, y)`` returns a :class:`StepOutput` (output, loss, metrics) whether the network is a ``Tower``
(``'tower'``), a Torch7-style dict (``'torch7'``) or a plain module with a loss (``'module'``). The state dict
carries the user's own parameter names (no ``inner.`` prefix), so snapshots load by those names when
fine-tuning, and a snapshot of the wrapper loads into the bare model and back.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import torch
from torch import Tensor, nn

from ..errors import NetworkError
from . import helpers
from .tower import Tower

__all__ = ['StepOutput', 'TrainableNet', 'default_loss', 'STYLES']

STYLES = ('tower', 'torch7', 'module')
_INNER = 'inner'


class StepOutput(NamedTuple):
    """What one batch gives the trainer. A NamedTuple so DDP and ``torch.utils._pytree`` see the tensors inside.

    ``loss`` is ``None`` when the batch has no labels and the loss needs them; ``metrics`` holds detached
    scalar summaries to chart (``'accuracy'`` is added for classification outputs, per pixel for segmentation).
    """

    output: Tensor
    loss: Tensor | None
    metrics: dict[str, Tensor]


def default_loss(nclasses: int) -> Callable[[Tensor, Tensor], Tensor]:
    """Cross entropy on logits for classification (DIGITS' Torch default was ClassNLL on log-softmax), else MSE."""
    return nn.CrossEntropyLoss() if nclasses > 0 else nn.MSELoss()


def _strip_inner_keys(module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    """state_dict post-hook: ``<prefix>inner.<key>`` → ``<prefix><key>`` (order and metadata kept)."""
    head = prefix + _INNER + '.'
    keys = [k for k in state_dict if k.startswith(head)]
    for key in keys:
        state_dict[prefix + key[len(head):]] = state_dict.pop(key)
    metadata = getattr(state_dict, '_metadata', None)
    if metadata is not None:
        for key in [k for k in metadata if k == prefix + _INNER or k.startswith(head)]:
            value = metadata.pop(key)
            metadata[prefix[:-1] if key == prefix + _INNER else prefix + key[len(head):]] = value


def _add_inner_keys(module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any,
                    strict: bool, missing_keys: list[str], unexpected_keys: list[str],
                    error_msgs: list[str]) -> None:
    """load_state_dict pre-hook: the reverse of :func:`_strip_inner_keys` (``inner.`` keys are accepted too)."""
    head = prefix + _INNER + '.'
    for key in [k for k in state_dict if k.startswith(prefix) and not k.startswith(head)]:
        state_dict[head + key[len(prefix):]] = state_dict.pop(key)
    metadata = getattr(state_dict, '_metadata', None)
    if metadata is not None:
        for key in list(metadata):
            if key == prefix[:-1]:
                target = prefix + _INNER
            elif key.startswith(prefix) and key != prefix + _INNER and not key.startswith(head):
                target = head + key[len(prefix):]
            else:
                continue
            metadata.setdefault(target, metadata[key])


def _as_metric(name: str, value: Any) -> Tensor:
    tensor = value.detach() if isinstance(value, Tensor) else torch.as_tensor(value, dtype=torch.float32)
    if tensor.numel() != 1:
        raise NetworkError(f"The summary {name!r} must be a scalar, got a tensor of shape {tuple(tensor.shape)}")
    return tensor.reshape(())


def _collect(items: Any, metrics: dict[str, Tensor]) -> None:
    """Add summaries given as a dict, a (name, value) pair, or a list of either."""
    if isinstance(items, dict):
        for name, value in items.items():
            metrics[str(name)] = _as_metric(str(name), value)
    elif isinstance(items, tuple) and len(items) == 2 and isinstance(items[0], str):
        metrics[items[0]] = _as_metric(items[0], items[1])
    elif isinstance(items, (list, tuple)):
        for item in items:
            _collect(item, metrics)
    else:
        raise NetworkError(f"A summary must be a ('name', scalar) pair or a dict of them, got {items!r}")


def _split_loss(value: Any, metrics: dict[str, Tensor]) -> Tensor | None:
    """A loss given as a tensor, a ``{'loss': t, ...}`` dict (other keys become metrics), or DIGITS' list of
    ``{'loss': t, 'vars': [...]}`` (multiple optimizers): the losses are summed and ``vars`` is ignored, since
    one optimizer trains every parameter that requires gradients here."""
    if value is None:
        return None
    if isinstance(value, dict):
        if 'loss' not in value:
            raise NetworkError(f"A loss dict needs a 'loss' entry; got keys {sorted(map(str, value))}")
        _collect({k: v for k, v in value.items() if k not in ('loss', 'vars')}, metrics)
        value = value['loss']
    elif isinstance(value, (list, tuple)):
        parts = [_split_loss(item, metrics) for item in value]
        if not parts or any(p is None for p in parts):
            raise NetworkError("A list of losses must hold tensors or {'loss': tensor, 'vars': [...]} dicts")
        value = torch.stack([p.reshape(()) for p in parts]).sum()
    if not isinstance(value, Tensor):
        raise NetworkError(f"The loss must be a tensor, got {type(value).__name__}")
    if value.numel() != 1:
        raise NetworkError(f"The loss must be a scalar tensor, got shape {tuple(value.shape)}: reduce it "
                           "(for example with .mean())")
    return value.reshape(())


class TrainableNet(nn.Module):
    """Uniform wrapper around the user's model (``inner``), for every network style.

    ``'tower'``: ``inner`` is a :class:`Tower`; its ``inference`` is the output and its ``loss`` the loss.
    ``'torch7'`` / ``'module'``: ``output = inner(x)``, ``loss = loss_fn(output, target)`` where ``target`` is
    ``label_hook(x, y)`` when a hook is given (the autoencoder's "label is the input"; it is called with
    ``y=None`` on unlabelled batches, so an images-only dataset still trains), else ``y``. A loss
    module is moved with the net (``.to()``) but is neither trained nor saved: learnable parts belong in the
    model.
    """

    def __init__(self, inner: nn.Module, style: str, loss_fn: Callable[..., Any] | None = None,
                 label_hook: Callable[[Tensor, Tensor | None], Tensor] | None = None, nclasses: int = 0) -> None:
        super().__init__()
        if style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}, got {style!r}")
        if style == 'tower' and not isinstance(inner, Tower):
            raise TypeError(f"the 'tower' style needs a Tower, got {type(inner).__name__}")
        self.inner = inner
        self.style = style
        self.nclasses = int(nclasses)
        # Plain attributes, not submodules: the state dict holds the model's parameters and nothing else.
        object.__setattr__(self, 'label_hook', label_hook)
        if style == 'tower':
            loss_fn = None
        elif loss_fn is None:
            loss_fn = default_loss(nclasses)
        object.__setattr__(self, 'loss_fn', loss_fn)
        self.register_state_dict_post_hook(_strip_inner_keys)
        self.register_load_state_dict_pre_hook(_add_inner_keys)

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> 'TrainableNet':
        super()._apply(fn, recurse)
        if isinstance(self.loss_fn, nn.Module):
            self.loss_fn._apply(fn)
        return self

    def forward(self, x: Tensor, y: Tensor | None = None) -> StepOutput:
        """One batch: the output, the loss (``None`` without labels when the loss needs them) and metrics."""
        metrics: dict[str, Tensor] = {}
        if self.style == 'tower':
            tower = self.inner
            try:
                output = tower(x, y)
                loss = _split_loss(tower.compute_loss(), metrics)
                _collect(tower.summaries, metrics)
            finally:
                tower.end_batch()
        else:
            output = self.inner(x)
            loss = None
            if y is not None or self.label_hook is not None:  # a hook may make the target from x alone
                target = self.label_hook(x, y) if self.label_hook is not None else y
                loss = _split_loss(self.loss_fn(output, target), metrics)
        if not isinstance(output, Tensor):
            raise NetworkError(f"The model must return a tensor, got {type(output).__name__}")
        if ('accuracy' not in metrics and self.nclasses > 0 and y is not None and not y.is_floating_point()
                and output.dim() >= 2 and output.shape[1] == self.nclasses
                and y.shape == output.shape[:1] + output.shape[2:]):
            # one label per row (classification) or per pixel (segmentation: N x C x H x W vs N x H x W)
            metrics['accuracy'] = helpers.classification_accuracy(output.detach(), y)
        return StepOutput(output, loss, metrics)

    def infer(self, x: Tensor) -> Tensor:
        """The output alone, for inference; eval mode and ``no_grad`` are the caller's choice."""
        if self.style == 'tower':
            try:
                return self.inner(x, None)
            finally:
                self.inner.end_batch()
        return self.inner(x)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        """Load by the inner model's names; missing / unexpected keys are reported without ``inner.``."""
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        head = _INNER + '.'
        result.missing_keys[:] = [k[len(head):] if k.startswith(head) else k for k in result.missing_keys]
        result.unexpected_keys[:] = [k[len(head):] if k.startswith(head) else k for k in result.unexpected_keys]
        if strict and (result.missing_keys or result.unexpected_keys):
            problems = []
            if result.missing_keys:
                problems.append('Missing key(s) in state_dict: ' + ', '.join(map(repr, result.missing_keys)))
            if result.unexpected_keys:
                problems.append('Unexpected key(s) in state_dict: '
                                + ', '.join(map(repr, result.unexpected_keys)))
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self.inner).__name__}:\n\t"
                               + '\n\t'.join(problems))
        return result
