"""Looking inside a network for one input: every layer's activation and every parameter, with statistics.

DIGITS' "Show visualizations and statistics" listed, per layer, the data shape, mean, standard deviation,
a 20-bin histogram and a tiled image. Forward hooks on the leaf modules collect the activations of one
forward pass; parameters come from ``named_parameters`` under the user's own names.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass
class Probe:
    name: str            # module path (activations) or parameter name (weights)
    kind: str            # "activation" | "weights"
    layer_type: str      # nn.Module class name
    shape: tuple         # without the batch dimension for activations
    data: np.ndarray     # float32 values (first sample for activations)
    mean: float
    std: float
    histogram: tuple[np.ndarray, np.ndarray]   # (counts[20], edges[21])
    params: int = 0      # learned parameters of the layer (activations) or of the tensor (weights)


def stats(values: np.ndarray, bins: int = 20) -> tuple[float, float, tuple[np.ndarray, np.ndarray]]:
    flat = values.astype(np.float64).ravel()
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return float("nan"), float("nan"), (np.zeros(bins, np.int64), np.linspace(0, 1, bins + 1))
    lo, hi = float(flat.min()), float(flat.max())
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(flat, bins=bins, range=(lo, hi))
    return float(flat.mean()), float(flat.std()), (counts, edges)


def _leaf_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if n and not list(m.children())]


@torch.no_grad()
def probe(model: nn.Module, forward, x: torch.Tensor) -> list[Probe]:
    """Activations of every leaf module for ``forward(x)`` (first sample), then every parameter tensor."""
    records: list[Probe] = []
    hooks = []

    def hook(name: str, module: nn.Module):
        def fn(_mod, _inp, out):
            if isinstance(out, (tuple, list)):
                out = out[0]
            if not isinstance(out, torch.Tensor):
                return
            data = out.detach()[0].float().cpu().numpy()
            mean, std, hist = stats(data)
            params = sum(p.numel() for p in module.parameters(recurse=False))
            records.append(Probe(name, "activation", type(module).__name__, tuple(data.shape), data, mean, std,
                                 hist, params))
        return fn

    for name, module in _leaf_modules(model):
        hooks.append(module.register_forward_hook(hook(name, module)))
    try:
        forward(x[:1])
    finally:
        for h in hooks:
            h.remove()
    owners = {f"{n}.{p}" if n else p: type(m).__name__
              for n, m in model.named_modules() for p, _ in m.named_parameters(recurse=False)}
    for name, p in model.named_parameters():
        data = p.detach().float().cpu().numpy()
        mean, std, hist = stats(data)
        records.append(Probe(name, "weights", owners.get(name, ""), tuple(data.shape), data, mean, std, hist,
                             p.numel()))
    return records


def tile_channels(data: np.ndarray, max_tiles: int = 64, pad: int = 1) -> np.ndarray:
    """C×H×W (or a weight tensor O×I×kH×kW) → one 2-D float image of tiles, each normalised to [0, 1]:
    DIGITS' get_layer_vis_square."""
    if data.ndim == 4:
        data = data[:, 0] if data.shape[1] != 3 else data.transpose(0, 2, 3, 1).mean(-1)
    if data.ndim == 1:
        side = int(np.ceil(np.sqrt(data.size)))
        sq = np.full(side * side, np.nan)
        sq[:data.size] = data
        data = sq.reshape(1, side, side)
    if data.ndim == 2:
        data = data[None]
    data = data[:max_tiles].astype(np.float64)
    n, h, w = data.shape
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    out = np.zeros((rows * (h + pad) - pad, cols * (w + pad) - pad))
    for i, tile in enumerate(data):
        finite = tile[np.isfinite(tile)]
        lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
        norm = (tile - lo) / (hi - lo) if hi > lo else np.zeros_like(tile)
        r, c = divmod(i, cols)
        out[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = np.nan_to_num(norm)
    return out
