"""What a built network is made of: its layers in the order they ran, their output shapes and parameters.

DIGITS answered "Visualize" with a drawing of the Caffe graph or Torch's ``model:__tostring()``. Here one
batch of zeros runs through the network with forward hooks, so each row shows the output shape the layer
really produced (not one guessed from its arguments) and the parameters it owns. Torch only: no widgets, so
a script or a test can tabulate a network; the model form's Visualize (``ui/network_summary.py``) draws the
table.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from torch import nn

from ..errors import NetworkError
from .built import Network
from .source import network_error

__all__ = ["LayerRow", "NetworkSummary", "summarize"]


@dataclass
class LayerRow:
    """One module that owns parameters or has no children: its path, class, output shape and own parameters."""

    name: str
    type: str
    output_shape: str
    params: int
    trainable: int
    calls: int = 0
    first: int = 0


@dataclass
class NetworkSummary:
    """Rows in the order the layers ran (unused layers last), the totals, and the shape of the output."""

    rows: list[LayerRow]
    total_params: int
    trainable_params: int
    input_shape: tuple[int, int, int]
    output_shape: str
    style: str
    notes: list[str] = field(default_factory=list)


def _shape_text(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return "×".join(str(d) for d in value.shape) or "scalar"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(_shape_text(v) for v in value) + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_shape_text(v)}" for k, v in value.items()) + "}"
    return type(value).__name__


def summarize(network: Network, input_shape: tuple[int, int, int], batch: int = 1,
              name: str = "network") -> NetworkSummary:
    """Run ``batch`` zero images through ``network`` (eval mode, no grad) and tabulate its layers.

    Every parameter is counted once, under the module that owns it, so the rows add up to the model's total
    even when a layer is shared. Layers the forward pass did not reach are listed last as "not used". User
    code failing in inference mode raises a :class:`NetworkError` naming the network ``name``, with the
    user's traceback.
    """
    inner = network.module.inner
    seen: set[int] = set()
    rows: list[LayerRow] = []
    hooks = []
    clock = itertools.count()
    for path, module in inner.named_modules():
        own = [p for p in module.parameters(recurse=False) if id(p) not in seen]
        seen.update(id(p) for p in own)
        is_leaf = next(module.children(), None) is None
        if own or is_leaf:
            row = LayerRow(path or "(model)", type(module).__name__, "not used",
                           sum(p.numel() for p in own), sum(p.numel() for p in own if p.requires_grad))
            rows.append(row)
            hooks.append(module.register_forward_hook(_recorder(row, clock)))
    was_training = network.module.training
    network.module.eval()
    try:
        with torch.no_grad():
            output = network.module.infer(torch.zeros(batch, *input_shape))
    except NetworkError:
        raise
    except Exception as exc:  # noqa: BLE001 - user code failing in inference mode
        raise network_error(f"The network '{name}' failed in inference mode", exc) from None
    finally:
        network.module.train(was_training)
        for h in hooks:
            h.remove()
    rows.sort(key=lambda r: (r.calls == 0, r.first))
    params = {id(p): p for p in network.module.parameters()}
    notes = []
    if network.crop_len:
        notes.append(f"The network asks for a crop of {network.crop_len}.")
    if network.train_batch_size:
        notes.append(f"Its own training batch size: {network.train_batch_size}.")
    return NetworkSummary(rows=rows, total_params=sum(p.numel() for p in params.values()),
                          trainable_params=sum(p.numel() for p in params.values() if p.requires_grad),
                          input_shape=tuple(input_shape), output_shape=_shape_text(output),
                          style=network.style, notes=notes)


def _recorder(row: LayerRow, clock: Iterator[int]) -> Callable[[nn.Module, Any, Any], None]:
    """A forward hook noting its layer's first output shape, when it first ran, and how often it ran."""
    def hook(module: nn.Module, inputs: Any, output: Any) -> None:
        if row.calls == 0:
            row.output_shape = _shape_text(output)
            row.first = next(clock)
        row.calls += 1
    return hook
