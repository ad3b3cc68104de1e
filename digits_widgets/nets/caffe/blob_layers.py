"""Caffe layers that combine, split or reshape blobs, with no weights: Concat, Eltwise, Slice, Split, Crop,
Flatten and Reshape. Axes follow Caffe's rules (negative counts from the end; Reshape's 0 copies a dimension and
-1 infers one). Layers with several tops return a tuple, one tensor per top.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from .layers import CaffeLayerError

BLOB_TYPES = ('Concat', 'Eltwise', 'Slice', 'Split', 'Crop', 'Flatten', 'Reshape')
PROD, SUM, MAX = 0, 1, 2   # EltwiseParameter.EltwiseOp


def _axis(axis: int, ndim: int, what: str) -> int:
    if not -ndim <= axis < ndim:
        raise CaffeLayerError(f'{what} {axis} is out of range for a {ndim}-D blob')
    return axis % ndim


class Concat(nn.Module):
    def __init__(self, axis: int):
        super().__init__()
        self.axis = axis

    def forward(self, *xs: Tensor) -> Tensor:
        return torch.cat(xs, _axis(self.axis, xs[0].dim(), 'concat axis'))


class Eltwise(nn.Module):
    """PROD, SUM (with one ``coeff`` per bottom) or MAX of the bottoms. MAX sends the gradient where Caffe's
    mask does: a tie between the first two bottoms goes to the second, a later bottom must be strictly greater."""

    def __init__(self, op: int, coeff: Sequence[float], nbottom: int):
        super().__init__()
        if nbottom < 2:
            raise CaffeLayerError('Eltwise takes at least 2 bottoms')
        if coeff and (op != SUM or len(coeff) != nbottom):
            raise CaffeLayerError('Eltwise coeff needs operation SUM and one coefficient per bottom')
        self.op, self.coeff = op, [float(c) for c in coeff] or [1.0] * nbottom

    def forward(self, *xs: Tensor) -> Tensor:
        if any(x.shape != xs[0].shape for x in xs):
            raise CaffeLayerError(f'Eltwise bottoms must have one shape, not {[tuple(x.shape) for x in xs]}')
        if self.op == PROD:
            out = xs[0]
            for x in xs[1:]:
                out = out * x
            return out
        if self.op == MAX:
            return torch.stack((xs[1], xs[0]) + xs[2:]).max(0).values   # max() picks the first of equals
        out = self.coeff[0] * xs[0]
        for c, x in zip(self.coeff[1:], xs[1:]):
            out = out + c * x
        return out


class Slice(nn.Module):
    """Cuts the bottom along ``axis`` at ``points`` (one fewer than the tops), or into equal parts."""

    def __init__(self, axis: int, points: Sequence[int], ntops: int):
        super().__init__()
        points = [int(p) for p in points]
        if points and len(points) != ntops - 1:
            raise CaffeLayerError(f'Slice has {len(points)} slice_point(s) for {ntops} tops; give one fewer '
                                  'than the tops, or none for equal parts')
        if any(b <= a for a, b in zip([0] + points, points)):
            raise CaffeLayerError(f'slice_point {points} must rise and start above 0')
        self.axis, self.points, self.ntops = axis, points, ntops

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        axis = _axis(self.axis, x.dim(), 'slice axis')
        size = x.shape[axis]
        if self.points:
            if self.points[-1] >= size:
                raise CaffeLayerError(f'slice_point {self.points[-1]} is not inside the {size} values of axis '
                                      f'{axis}')
            bounds = [0] + self.points + [size]
        else:
            if size % self.ntops:
                raise CaffeLayerError(f'axis {axis} has {size} values, which do not split into {self.ntops} '
                                      'equal parts')
            bounds = [i * size // self.ntops for i in range(self.ntops + 1)]
        return tuple(x.narrow(axis, a, b - a) for a, b in zip(bounds, bounds[1:]))


class Split(nn.Module):
    """The bottom, once per top (gradients from every top add up)."""

    def __init__(self, ntops: int):
        super().__init__()
        self.ntops = ntops

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return (x,) * self.ntops


def crop_offsets(offsets: Sequence[int], naxes: int) -> list[int]:
    """Caffe's crop offsets: none (0), one for every cropped axis, or one per axis."""
    offsets = [int(o) for o in offsets]
    if not offsets:
        return [0] * naxes
    if len(offsets) == 1:
        return offsets * naxes
    if len(offsets) != naxes:
        raise CaffeLayerError(f'Crop has {len(offsets)} offsets for {naxes} cropped axes; give 0, 1 or '
                              f'{naxes}')
    return offsets


class Crop(nn.Module):
    """The first bottom cut to the second's shape on every axis from ``axis`` on, starting at ``offset``."""

    def __init__(self, axis: int, offsets: Sequence[int]):
        super().__init__()
        self.axis, self.offsets = axis, list(offsets)

    def forward(self, x: Tensor, like: Tensor) -> Tensor:
        if x.dim() != like.dim():
            raise CaffeLayerError(f'Crop bottoms must have as many axes ({x.dim()} and {like.dim()})')
        start = _axis(self.axis, x.dim(), 'crop axis')
        for i, off in enumerate(crop_offsets(self.offsets, x.dim() - start)):
            d, size = start + i, like.shape[start + i]
            if off + size > x.shape[d]:
                raise CaffeLayerError(f'cropping {size} values at offset {off} does not fit the {x.shape[d]} '
                                      f'values of axis {d}')
            x = x.narrow(d, off, size)
        return x


class Flatten(nn.Module):
    def __init__(self, axis: int, end_axis: int):
        super().__init__()
        self.axis, self.end_axis = axis, end_axis

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(self.axis, self.end_axis)


class Reshape(nn.Module):
    """Replaces the axes ``axis .. axis + num_axes`` (all the rest for -1) with ``dims``; a 0 keeps the bottom's
    dimension at that place and one -1 takes what is left."""

    def __init__(self, dims: Sequence[int], axis: int, num_axes: int):
        super().__init__()
        self.dims, self.axis, self.num_axes = [int(d) for d in dims], axis, num_axes
        if sum(d == -1 for d in self.dims) > 1:
            raise CaffeLayerError('reshape_param.shape may infer only one dimension (-1)')
        if any(d < -1 for d in self.dims):
            raise CaffeLayerError(f'reshape_param.shape has a dimension below -1: {self.dims}')

    def forward(self, x: Tensor) -> Tensor:
        shape = list(x.shape)
        axis = self.axis + len(shape) + 1 if self.axis < 0 else self.axis
        end = len(shape) if self.num_axes == -1 else axis + self.num_axes
        if not 0 <= axis <= end <= len(shape):
            raise CaffeLayerError(f'axis {self.axis} and num_axes {self.num_axes} do not fit a {len(shape)}-D blob')
        if any(d == 0 and axis + i >= end for i, d in enumerate(self.dims)):
            raise CaffeLayerError('a 0 in reshape_param.shape has no bottom dimension to copy')
        new = [shape[axis + i] if d == 0 else d for i, d in enumerate(self.dims)]
        return x.reshape(shape[:axis] + new + shape[end:])


def make_blob_layer(layer, shapes: list) -> nn.Module:
    """The module for one of :data:`BLOB_TYPES`."""
    t, ntops = layer.type, len(layer.top)
    if t == 'Concat':
        p = layer.concat_param
        return Concat(p.axis if p.HasField('axis') or not p.HasField('concat_dim') else p.concat_dim)
    if t == 'Eltwise':
        p = layer.eltwise_param
        return Eltwise(p.operation, p.coeff, len(layer.bottom))
    if t == 'Slice':
        p = layer.slice_param
        if p.HasField('axis') and p.HasField('slice_dim'):
            raise CaffeLayerError('give slice_param axis or slice_dim, not both')
        if ntops < 1:
            raise CaffeLayerError('Slice needs at least one top')
        return Slice(p.slice_dim if p.HasField('slice_dim') else p.axis, p.slice_point, ntops)
    if t == 'Split':
        if ntops < 1:
            raise CaffeLayerError('Split needs at least one top')
        return Split(ntops)
    if t == 'Crop':
        if len(layer.bottom) != 2:
            raise CaffeLayerError('Crop takes 2 bottoms: the blob to crop and one of the wanted shape')
        p = layer.crop_param
        if shapes[0] is not None:
            start = _axis(p.axis, len(shapes[0]), 'crop axis')
            crop_offsets(p.offset, len(shapes[0]) - start)
        return Crop(p.axis, p.offset)
    if t == 'Flatten':
        return Flatten(layer.flatten_param.axis, layer.flatten_param.end_axis)
    if t == 'Reshape':
        p = layer.reshape_param
        return Reshape(p.shape.dim, p.axis, p.num_axes)
    raise CaffeLayerError(f'{t} is not a blob layer')
