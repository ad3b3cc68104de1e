"""Caffe layer types as PyTorch modules, with Caffe's fillers and output sizes.

``make_layer(layer, shapes)`` returns the module for one LayerParameter given its bottoms' shapes; a type that
is not here raises :class:`UnsupportedLayer`.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOSS_TYPES = ('SoftmaxWithLoss', 'EuclideanLoss', 'L1Loss', 'SigmoidCrossEntropyLoss')
DATA_TYPES = ('Data', 'Input', 'ImageData', 'HDF5Data', 'MemoryData', 'WindowData', 'DummyData', 'Python_Data')


class UnsupportedLayer(Exception):
    """A layer type this builder does not implement."""


class CaffeLayerError(Exception):
    """A layer whose parameters or input shapes do not fit."""


def fill(tensor: Tensor, filler) -> None:
    """Caffe's fillers; an unset filler is Caffe's default, constant 0."""
    kind = filler.type if filler is not None else 'constant'
    with torch.no_grad():
        fan_in = tensor.numel() / tensor.shape[0] if tensor.dim() > 1 else tensor.numel()
        fan_out = tensor.numel() / tensor.shape[1] if tensor.dim() > 1 else tensor.numel()
        if filler is not None and kind in ('xavier', 'msra'):
            norm = filler.variance_norm
            n = fan_in if norm == 0 else fan_out if norm == 1 else (fan_in + fan_out) / 2
        if kind == 'constant':
            tensor.fill_(filler.value if filler is not None else 0.0)
        elif kind == 'gaussian':
            tensor.normal_(filler.mean, filler.std)
        elif kind == 'uniform':
            tensor.uniform_(filler.min, filler.max)
        elif kind == 'xavier':
            scale = math.sqrt(3.0 / n)
            tensor.uniform_(-scale, scale)
        elif kind == 'msra':
            tensor.normal_(0.0, math.sqrt(2.0 / n))
        elif kind == 'bilinear':  # upsampling kernels for Deconvolution, the same for every channel pair
            if tensor.dim() != 4 or tensor.shape[2] != tensor.shape[3]:
                raise CaffeLayerError('the bilinear filler needs a square 2-D kernel')
            k = tensor.shape[3]
            f = math.ceil(k / 2)
            c = (2 * f - 1 - f % 2) / (2.0 * f)
            axis = 1 - (torch.arange(k, dtype=torch.float64) / f - c).abs()
            tensor.copy_((axis[:, None] * axis[None, :]).to(tensor.dtype).expand_as(tensor))
        else:
            raise CaffeLayerError(f"unsupported filler type {kind!r} (constant, gaussian, uniform, xavier, msra, "
                                  "bilinear)")


def _pair(values: Sequence[int], h, w, has_h: bool, default: int, what: str) -> tuple[int, int]:
    if has_h:
        return int(h), int(w)
    values = list(values)
    if not values:
        return default, default
    if len(values) == 1:
        return int(values[0]), int(values[0])
    if len(values) == 2:
        return int(values[0]), int(values[1])
    raise CaffeLayerError(f"{what} has {len(values)} values; 2-D layers take 1 or 2")


def _conv_geometry(p):
    if p.HasField('kernel_h') != p.HasField('kernel_w'):
        raise CaffeLayerError('kernel_h and kernel_w must be given together')
    kernel = _pair(p.kernel_size, p.kernel_h, p.kernel_w, p.HasField('kernel_h'), 0, 'kernel_size')
    if min(kernel) < 1:
        raise CaffeLayerError('kernel_size (or kernel_h/kernel_w) must be given and positive')
    stride = _pair(p.stride, p.stride_h, p.stride_w, p.HasField('stride_h'), 1, 'stride')
    pad = _pair(p.pad, p.pad_h, p.pad_w, p.HasField('pad_h') or p.HasField('pad_w'), 0, 'pad')
    dilation = _pair(p.dilation, 0, 0, False, 1, 'dilation')
    return kernel, stride, pad, dilation


def _conv(layer, shapes, transpose: bool) -> nn.Module:
    p = layer.convolution_param
    if not p.HasField('num_output'):
        raise CaffeLayerError('convolution_param.num_output is required')
    kernel, stride, pad, dilation = _conv_geometry(p)
    cin, group = shapes[0][1], p.group
    if cin % group or p.num_output % group:
        raise CaffeLayerError(f'group {group} must divide the input channels ({cin}) and num_output '
                              f'({p.num_output})')
    cls = nn.ConvTranspose2d if transpose else nn.Conv2d
    module = cls(cin, p.num_output, kernel, stride, pad, dilation=dilation, groups=group, bias=p.bias_term)
    fill(module.weight, p.weight_filler if p.HasField('weight_filler') else None)
    if p.bias_term:
        fill(module.bias, p.bias_filler if p.HasField('bias_filler') else None)
    return module


class InnerProduct(nn.Linear):
    def __init__(self, inf: int, outf: int, bias: bool, axis: int):
        super().__init__(inf, outf, bias)
        self.axis = axis

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.flatten(self.axis))


def caffe_pool_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Caffe's pooled size: rounded up, then the last window must start inside the image (or its left pad)."""
    out = int(math.ceil((size + 2 * pad - kernel) / stride)) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


class Pooling(nn.Module):
    def __init__(self, method: int, kernel, stride, pad, global_pooling: bool):
        super().__init__()
        if method not in (0, 1):
            raise CaffeLayerError('only MAX and AVE pooling are supported (not STOCHASTIC)')
        self.method, self.kernel, self.stride, self.pad, self.global_pooling = (
            method, kernel, stride, pad, global_pooling)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        if self.global_pooling:
            kernel, stride, pad = (h, w), (1, 1), (0, 0)
        else:
            kernel, stride, pad = self.kernel, self.stride, self.pad
        want = (caffe_pool_size(h, kernel[0], stride[0], pad[0]), caffe_pool_size(w, kernel[1], stride[1], pad[1]))
        # Pad on the far side so every Caffe window exists; MAX pads with -inf, AVE with zeros that count in
        # the divisor up to H + pad as Caffe's does, and windows past H + pad are clipped.
        extra = [max(0, (want[i] - 1) * stride[i] + kernel[i] - (x.shape[-2 + i] + 2 * pad[i])) for i in (0, 1)]
        if self.method == 0:
            xp = F.pad(x, (pad[1], pad[1] + extra[1], pad[0], pad[0] + extra[0]), value=-math.inf)
            return F.max_pool2d(xp, kernel, stride)
        xp = F.pad(x, (pad[1], pad[1], pad[0], pad[0]), value=0.0)
        ones = torch.ones_like(xp[:1, :1])
        xp = F.pad(xp, (0, extra[1], 0, extra[0]), value=0.0)
        ones = F.pad(ones, (0, extra[1], 0, extra[0]), value=0.0)
        total = F.avg_pool2d(xp, kernel, stride) * (kernel[0] * kernel[1])
        count = F.avg_pool2d(ones, kernel, stride) * (kernel[0] * kernel[1])
        return total / count


class Power(nn.Module):
    def __init__(self, power: float, scale: float, shift: float):
        super().__init__()
        self.power, self.scale, self.shift = power, scale, shift

    def forward(self, x: Tensor) -> Tensor:
        y = self.shift + self.scale * x
        return y if self.power == 1 else y.pow(self.power)


class LRN(nn.Module):
    def __init__(self, size: int, alpha: float, beta: float, k: float, region: int):
        super().__init__()
        if size % 2 == 0:
            raise CaffeLayerError('LRN local_size must be odd')
        self.size, self.alpha, self.beta, self.k, self.region = size, alpha, beta, k, region

    def forward(self, x: Tensor) -> Tensor:
        n, half = self.size, self.size // 2
        sq = x * x
        if self.region == 0:  # ACROSS_CHANNELS: k + alpha/n * sum over n neighbouring channels
            summed = F.avg_pool3d(F.pad(sq, (0, 0, 0, 0, half, half)).unsqueeze(1), (n, 1, 1), 1).squeeze(1) * n
            return x / (self.k + self.alpha / n * summed).pow(self.beta)
        # WITHIN_CHANNEL: 1 + alpha/n^2 * sum over an n x n window (Caffe's k is not used here)
        summed = F.avg_pool2d(sq, n, 1, half, count_include_pad=True)
        return x / (1 + self.alpha * summed).pow(self.beta)


class Concat(nn.Module):
    def __init__(self, axis: int):
        super().__init__()
        self.axis = axis

    def forward(self, *xs: Tensor) -> Tensor:
        return torch.cat(xs, self.axis)


class Eltwise(nn.Module):
    def __init__(self, op: int, coeff: Sequence[float], nbottom: int):
        super().__init__()
        if coeff and (op != 1 or len(coeff) != nbottom):
            raise CaffeLayerError('Eltwise coeff needs operation SUM and one coefficient per bottom')
        self.op, self.coeff = op, list(coeff) or [1.0] * nbottom

    def forward(self, *xs: Tensor) -> Tensor:
        if self.op == 0:
            out = xs[0]
            for x in xs[1:]:
                out = out * x
            return out
        if self.op == 2:
            out = xs[0]
            for x in xs[1:]:
                out = torch.maximum(out, x)
            return out
        return sum(c * x for c, x in zip(self.coeff, xs))


class Flatten(nn.Module):
    def __init__(self, axis: int, end_axis: int):
        super().__init__()
        self.axis, self.end_axis = axis, end_axis

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(self.axis, self.end_axis)


class Softmax(nn.Module):
    def __init__(self, axis: int):
        super().__init__()
        self.axis = axis

    def forward(self, x: Tensor) -> Tensor:
        return F.softmax(x, self.axis)


class ReLU(nn.Module):
    def __init__(self, slope: float):
        super().__init__()
        self.slope = slope

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.slope) if self.slope else F.relu(x)


class PReLU(nn.Module):
    def __init__(self, channels: int, filler):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(channels))
        if filler is None:
            nn.init.constant_(self.weight, 0.25)
        else:
            fill(self.weight, filler)

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight.reshape((1, -1) + (1,) * (x.dim() - 2)) if self.weight.numel() > 1 else self.weight
        return torch.where(x > 0, x, x * w)


class BatchNorm(nn.Module):
    """Caffe's BatchNorm: normalisation only (Caffe pairs it with a Scale layer for the affine part); the
    running statistics are used in eval mode, or always when ``use_global_stats`` is true."""

    def __init__(self, channels: int, eps: float, fraction: float, use_global_stats: bool | None):
        super().__init__()
        self.eps, self.momentum, self.use_global_stats = eps, 1.0 - fraction, use_global_stats
        self.register_buffer('running_mean', torch.zeros(channels))
        self.register_buffer('running_var', torch.ones(channels))

    def forward(self, x: Tensor) -> Tensor:
        global_stats = (not self.training) if self.use_global_stats is None else self.use_global_stats
        return F.batch_norm(x, self.running_mean, self.running_var, None, None, not global_stats,
                            self.momentum, self.eps)


def _span(shape: tuple[int, ...], axis: int, num_axes: int) -> tuple[int, list[int]]:
    axis = axis % len(shape)
    end = len(shape) if num_axes == -1 else axis + num_axes
    if end > len(shape):
        raise CaffeLayerError(f'axis {axis} with num_axes {num_axes} does not fit a {len(shape)}-D bottom')
    return axis, list(shape[axis:end])


class ScaleBias(nn.Module):
    """Caffe's Scale (``x * scale [+ bias]``) and Bias (``x + bias``): the factor is learned, or the second
    bottom when there are two; it spans ``num_axes`` axes from ``axis`` and broadcasts over the rest."""

    def __init__(self, shape: tuple[int, ...], axis: int, num_axes: int, learned: bool, scale: bool,
                 filler, bias_term: bool, bias_filler):
        super().__init__()
        self.axis, param_shape = _span(shape, axis, num_axes)
        self.trailing = len(shape) - self.axis - len(param_shape)
        self.is_scale = scale
        if learned:
            self.weight = nn.Parameter(torch.empty(param_shape))
            if filler is None:
                nn.init.constant_(self.weight, 1.0 if scale else 0.0)
            else:
                fill(self.weight, filler)
        else:
            self.register_parameter('weight', None)
        if bias_term:
            self.bias = nn.Parameter(torch.empty(param_shape))
            fill(self.bias, bias_filler)
        else:
            self.register_parameter('bias', None)

    def _view(self, t: Tensor) -> Tensor:
        return t.reshape(tuple(t.shape) + (1,) * self.trailing)

    def forward(self, x: Tensor, other: Tensor | None = None) -> Tensor:
        factor = self._view(self.weight if other is None else other)
        out = x * factor if self.is_scale else x + factor
        if self.bias is not None:
            out = out + self._view(self.bias)
        return out


class Reshape(nn.Module):
    def __init__(self, dims: Sequence[int], axis: int, num_axes: int):
        super().__init__()
        self.dims, self.axis, self.num_axes = [int(d) for d in dims], axis, num_axes

    def forward(self, x: Tensor) -> Tensor:
        shape = list(x.shape)
        axis = self.axis % (len(shape) + 1) if self.axis < 0 else self.axis
        end = len(shape) if self.num_axes == -1 else axis + self.num_axes
        new = [shape[axis + i] if d == 0 else d for i, d in enumerate(self.dims)]
        return x.reshape(shape[:axis] + new + shape[end:])


def _label_like(label: Tensor, like: Tensor) -> Tensor:
    if label.numel() != like.numel():
        raise CaffeLayerError(f'the bottoms have {like.numel()} and {label.numel()} values; they must match')
    return label.reshape(like.shape).to(like.dtype)


class SoftmaxWithLoss(nn.Module):
    def __init__(self, ignore_label: int | None, normalization: int, axis: int):
        super().__init__()
        self.ignore_label, self.normalization, self.axis = ignore_label, normalization, axis

    def forward(self, scores: Tensor, label: Tensor) -> Tensor:
        if self.axis != 1:
            scores = scores.movedim(self.axis, 1)
        target = label.reshape((scores.shape[0],) + tuple(scores.shape[2:])).long()
        ignore = self.ignore_label if self.ignore_label is not None else -100
        losses = F.cross_entropy(scores, target, ignore_index=ignore, reduction='none')
        if self.normalization == 0:  # FULL
            return losses.sum() / target.numel()
        if self.normalization == 2:  # BATCH_SIZE
            return losses.sum() / scores.shape[0]
        if self.normalization == 3:  # NONE
            return losses.sum()
        valid = (target != ignore).sum().clamp(min=1)
        return losses.sum() / valid


class EuclideanLoss(nn.Module):
    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return ((a - _label_like(b, a)) ** 2).sum() / a.shape[0] / 2


class L1Loss(nn.Module):
    """NVcaffe's L1Loss: the mean absolute difference over every value."""

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return (a - _label_like(b, a)).abs().mean()


class SigmoidCrossEntropyLoss(nn.Module):
    """Caffe's: the summed binary cross entropy on logits, divided by the batch size."""

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(a, _label_like(b, a), reduction='sum') / a.shape[0]


class Accuracy(nn.Module):
    def __init__(self, top_k: int, axis: int, ignore_label: int | None):
        super().__init__()
        self.top_k, self.axis, self.ignore_label = top_k, axis, ignore_label

    def forward(self, scores: Tensor, label: Tensor) -> Tensor:
        scores = scores.detach()
        if self.axis != 1:
            scores = scores.movedim(self.axis, 1)
        target = label.reshape((scores.shape[0],) + tuple(scores.shape[2:])).long()
        top = scores.topk(self.top_k, dim=1).indices
        hit = (top == target.unsqueeze(1)).any(dim=1)
        if self.ignore_label is not None:
            keep = target != self.ignore_label
            return hit[keep].float().mean() if keep.any() else hit.float().sum() * 0
        return hit.float().mean()


def make_layer(layer, shapes: list[tuple[int, ...]]) -> nn.Module:
    """The module for ``layer`` whose bottoms have ``shapes`` (batch first)."""
    t = layer.type
    if t == 'Convolution':
        return _conv(layer, shapes, transpose=False)
    if t == 'Deconvolution':
        return _conv(layer, shapes, transpose=True)
    if t == 'InnerProduct':
        p = layer.inner_product_param
        if not p.HasField('num_output'):
            raise CaffeLayerError('inner_product_param.num_output is required')
        if p.transpose:
            raise CaffeLayerError('inner_product_param.transpose is not supported')
        axis = p.axis % len(shapes[0])
        module = InnerProduct(math.prod(shapes[0][axis:]), p.num_output, p.bias_term, axis)
        fill(module.weight, p.weight_filler if p.HasField('weight_filler') else None)
        if p.bias_term:
            fill(module.bias, p.bias_filler if p.HasField('bias_filler') else None)
        return module
    if t == 'Pooling':
        p = layer.pooling_param
        if p.global_pooling:
            return Pooling(p.pool, (1, 1), (1, 1), (0, 0), True)
        kernel = _pair([p.kernel_size] if p.HasField('kernel_size') else [], p.kernel_h, p.kernel_w,
                       p.HasField('kernel_h'), 0, 'kernel_size')
        if min(kernel) < 1:
            raise CaffeLayerError('pooling_param needs kernel_size (or kernel_h/kernel_w) or global_pooling')
        stride = _pair([p.stride], p.stride_h, p.stride_w, p.HasField('stride_h'), 1, 'stride')
        pad = _pair([p.pad], p.pad_h, p.pad_w, p.HasField('pad_h') or p.HasField('pad_w'), 0, 'pad')
        if pad[0] >= kernel[0] or pad[1] >= kernel[1]:
            raise CaffeLayerError('pooling pad must be smaller than the kernel')
        return Pooling(p.pool, kernel, stride, pad, False)
    if t == 'ReLU':
        return ReLU(layer.relu_param.negative_slope)
    if t == 'PReLU':
        p = layer.prelu_param
        return PReLU(1 if p.channel_shared else shapes[0][1], p.filler if p.HasField('filler') else None)
    if t == 'Sigmoid':
        return nn.Sigmoid()
    if t == 'TanH':
        return nn.Tanh()
    if t == 'Power':
        p = layer.power_param
        return Power(p.power, p.scale, p.shift)
    if t == 'Dropout':
        return nn.Dropout(layer.dropout_param.dropout_ratio)
    if t == 'LRN':
        p = layer.lrn_param
        return LRN(p.local_size, p.alpha, p.beta, p.k, p.norm_region)
    if t == 'Concat':
        p = layer.concat_param
        return Concat(p.axis if p.HasField('axis') or not p.HasField('concat_dim') else p.concat_dim)
    if t == 'Eltwise':
        p = layer.eltwise_param
        return Eltwise(p.operation, p.coeff, len(layer.bottom))
    if t == 'Flatten':
        return Flatten(layer.flatten_param.axis, layer.flatten_param.end_axis)
    if t == 'Softmax':
        return Softmax(layer.softmax_param.axis)
    if t == 'SoftmaxWithLoss':
        lp = layer.loss_param
        return SoftmaxWithLoss(lp.ignore_label if lp.HasField('ignore_label') else None,
                               lp.normalization if lp.HasField('normalization') or not lp.HasField('normalize')
                               else (1 if lp.normalize else 2), layer.softmax_param.axis)
    if t == 'EuclideanLoss':
        return EuclideanLoss()
    if t == 'L1Loss':
        return L1Loss()
    if t == 'SigmoidCrossEntropyLoss':
        return SigmoidCrossEntropyLoss()
    if t == 'Accuracy':
        p = layer.accuracy_param
        return Accuracy(p.top_k, p.axis, p.ignore_label if p.HasField('ignore_label') else None)
    if t == 'BatchNorm':
        p = layer.batch_norm_param
        return BatchNorm(shapes[0][1], p.eps, p.moving_average_fraction,
                         p.use_global_stats if p.HasField('use_global_stats') else None)
    if t in ('Scale', 'Bias'):
        p = layer.scale_param if t == 'Scale' else layer.bias_param
        learned = len(shapes) == 1
        if not learned and shapes[1] is None:
            raise CaffeLayerError('the second bottom must come from an earlier layer')
        base = shapes[0]
        if not learned:  # the factor's shape comes from the second bottom, at ``axis`` of the first
            axis = p.axis % len(base)
            return ScaleBias(base, axis, len(shapes[1]), False, t == 'Scale', None,
                             t == 'Scale' and p.bias_term, getattr(p, 'bias_filler', None))
        return ScaleBias(base, p.axis, p.num_axes, True, t == 'Scale', p.filler if p.HasField('filler') else None,
                         t == 'Scale' and p.bias_term,
                         p.bias_filler if t == 'Scale' and p.HasField('bias_filler') else None)
    if t == 'Reshape':
        p = layer.reshape_param
        return Reshape(p.shape.dim, p.axis, p.num_axes)
    raise UnsupportedLayer(t)
