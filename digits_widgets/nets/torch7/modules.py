"""PyTorch modules with the semantics of Torch7 ``nn`` modules that PyTorch has no exact twin for.

Torch7 dimensions are 1-based and count the batch dimension of a batched input (``nn.Concat(2)`` joins
channels of an N x C x H x W batch), so every ``dim`` here is the Lua one, converted once with ``dim - 1``.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ['View', 'Reshape', 'MulConstant', 'AddConstant', 'Concat', 'DepthConcat', 'ConcatTable', 'CAddTable',
           'JoinTable', 'Parallel', 'Softmax', 'Criterion']


def _prod(values: Sequence[int]) -> int:
    return math.prod(int(v) for v in values)


class View(nn.Module):
    """``nn.View(sizes):setNumInputDims(n)``: Torch7's batch rule (nn/View.lua's ``batchsize``). With a -1 and
    no ``numInputDims`` the whole input is one sample; otherwise the dimensions beyond ``numInputDims``, or
    the remainder of the element count, are the batch. Inputs here are always batches, so a batch of one
    stays a batch (Torch7 took a view of exactly one sample's size as an unbatched sample)."""

    def __init__(self, sizes: Sequence[int], num_input_dims: int | None = None) -> None:
        super().__init__()
        self.sizes = tuple(int(s) for s in sizes)
        self.num_input_dims = num_input_dims
        self.num_elements = _prod(s for s in self.sizes if s != -1)

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}, num_input_dims={self.num_input_dims}"

    def forward(self, x: Tensor) -> Tensor:
        ind = x.dim()
        maxdim = self.num_input_dims if self.num_input_dims else ind
        ine = _prod(x.shape[ind - maxdim:]) if maxdim <= ind else x.numel()
        if ine % self.num_elements:
            raise RuntimeError(f"nn.View{self.sizes}: input of shape {tuple(x.shape)} does not hold a whole "
                               f"number of {self.num_elements}-element views")
        if -1 not in self.sizes:   # the batch is what is left over: no Python int, so a trace keeps it dynamic
            return x.reshape(-1, *self.sizes)
        if ind - maxdim == 1:
            return x.reshape(x.shape[0], *self.sizes)
        batch = 1
        batch *= _prod(x.shape[:max(ind - maxdim, 0)])
        if batch == 1 and -1 in self.sizes and (not self.num_input_dims or ind <= self.num_input_dims):
            return x.reshape(self.sizes)
        return x.reshape(batch, *self.sizes)


class Reshape(nn.Module):
    """``nn.Reshape(sizes[, batchMode])``: batched unless the input is exactly one sample (nn/Reshape.lua)."""

    def __init__(self, sizes: Sequence[int], batch_mode: bool | None = None) -> None:
        super().__init__()
        self.sizes = tuple(int(s) for s in sizes)
        self.batch_mode = batch_mode
        self.nelement = _prod(self.sizes)

    def forward(self, x: Tensor) -> Tensor:
        single = self.batch_mode is False or (self.batch_mode is None and x.numel() == self.nelement
                                              and x.shape[0] != 1)
        return x.reshape(self.sizes) if single else x.reshape(x.shape[0], *self.sizes)


class MulConstant(nn.Module):
    def __init__(self, constant: float) -> None:
        super().__init__()
        self.constant = float(constant)

    def extra_repr(self) -> str:
        return f"{self.constant:g}"

    def forward(self, x: Tensor) -> Tensor:
        return x * self.constant


class AddConstant(MulConstant):
    def forward(self, x: Tensor) -> Tensor:
        return x + self.constant


class Softmax(nn.Module):
    """``nn.SoftMax`` / ``nn.LogSoftMax``: over the features of a vector or a batch, over the channels of a
    C x H x W map or an N x C x H x W batch (THNN's rule)."""

    def __init__(self, log: bool) -> None:
        super().__init__()
        self.log = log

    def forward(self, x: Tensor) -> Tensor:
        dim = 0 if x.dim() in (1, 3) else 1
        return F.log_softmax(x, dim) if self.log else F.softmax(x, dim)


class Concat(nn.ModuleList):
    """``nn.Concat(dim)``: each branch sees the input; the outputs are joined along ``dim``."""

    def __init__(self, dim: int, modules: Sequence[nn.Module]) -> None:
        super().__init__(modules)
        self.dim = int(dim) - 1

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([m(x) for m in self], self.dim)


class DepthConcat(Concat):
    """``nn.DepthConcat(dim)``: like Concat, the smaller spatial maps zero-padded around their centre."""

    def forward(self, x: Tensor) -> Tensor:
        outs = [m(x) for m in self]
        rank = outs[0].dim()
        size = [max(o.shape[d] for o in outs) for d in range(rank)]
        padded = []
        for o in outs:
            pad: list[int] = []
            for d in reversed(range(rank)):
                extra = 0 if d == self.dim else size[d] - o.shape[d]
                pad += [extra // 2, extra - extra // 2]
            padded.append(F.pad(o, pad))
        return torch.cat(padded, self.dim)


class ConcatTable(nn.ModuleList):
    """``nn.ConcatTable``: each branch sees the input; the outputs form a table (a list)."""

    def forward(self, x: Tensor) -> list[Tensor]:
        return [m(x) for m in self]


class CAddTable(nn.Module):
    """``nn.CAddTable``: the element-wise sum of a table of tensors."""

    def forward(self, xs: Sequence[Tensor]) -> Tensor:
        total = xs[0]
        for x in xs[1:]:
            total = total + x
        return total


class JoinTable(nn.Module):
    """``nn.JoinTable(dim[, nInputDims])``: a table of tensors joined along ``dim`` (shifted by one for a
    batch when ``nInputDims`` says the inputs have one more dimension)."""

    def __init__(self, dim: int, n_input_dims: int | None = None) -> None:
        super().__init__()
        self.dim, self.n_input_dims = int(dim), n_input_dims

    def forward(self, xs: Sequence[Tensor]) -> Tensor:
        dim = self.dim + (1 if self.n_input_dims and xs[0].dim() == self.n_input_dims + 1 else 0)
        return torch.cat(list(xs), dim - 1)


class Parallel(nn.ModuleList):
    """``nn.Parallel(inputDim, outputDim)``: module i gets slice i of the input along ``inputDim``; the
    outputs are joined along ``outputDim``."""

    def __init__(self, input_dim: int, output_dim: int, modules: Sequence[nn.Module]) -> None:
        super().__init__(modules)
        self.input_dim, self.output_dim = int(input_dim) - 1, int(output_dim) - 1

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[self.input_dim] != len(self):
            raise RuntimeError(f"nn.Parallel has {len(self)} modules but the input has {x.shape[self.input_dim]} "
                               f"slices along dimension {self.input_dim + 1}")
        return torch.cat([m(x.select(self.input_dim, i)) for i, m in enumerate(self)], self.output_dim)


class Criterion(nn.Module):
    """A Torch7 criterion as a loss ``fn(output, target)``. Regression targets are matched to the output's
    shape when they hold as many elements (Torch7 compared element by element); class targets are 0-based
    here (DIGITS added 1 to the database label for Lua; this version hands the label over as stored)."""

    def __init__(self, kind: str, size_average: bool = True, weights: Tensor | None = None) -> None:
        super().__init__()
        self.kind, self.size_average = kind, size_average
        self.register_buffer('weights', weights, persistent=False)

    def extra_repr(self) -> str:
        return f"{self.kind}, sizeAverage={self.size_average}"

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        reduction = 'mean' if self.size_average else 'sum'
        if self.kind in ('ClassNLLCriterion', 'CrossEntropyCriterion'):
            target = target.long()
            if target.dim() == output.dim():  # N x 1 (x H x W) class labels
                target = target.squeeze(1)
            fn = F.nll_loss if self.kind == 'ClassNLLCriterion' else F.cross_entropy
            return fn(output, target, weight=self.weights, reduction=reduction)
        target = target.to(output.dtype)
        if target.shape != output.shape and target.numel() == output.numel():
            target = target.reshape(output.shape)
        if self.kind == 'MSECriterion':
            return F.mse_loss(output, target, reduction=reduction)
        if self.kind == 'AbsCriterion':
            return F.l1_loss(output, target, reduction=reduction)
        if self.kind == 'SmoothL1Criterion':
            return F.smooth_l1_loss(output, target, reduction=reduction, beta=1.0)
        if self.kind == 'BCECriterion':
            return F.binary_cross_entropy(output, target, weight=self.weights, reduction=reduction)
        raise ValueError(f"unknown criterion {self.kind}")
