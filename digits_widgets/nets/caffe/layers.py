"""Caffe layer types with weights or arithmetic as PyTorch modules, with Caffe's fillers and output sizes.

``make_layer(layer, shapes)`` returns the module for one of :data:`LAYER_TYPES` given its bottoms' shapes; a type
that is not here raises :class:`UnsupportedLayer`. Blob layers (Concat, Slice...) are in ``blob_layers``, losses
and Accuracy in ``loss_layers``.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LAYER_TYPES = ('Convolution', 'Deconvolution', 'InnerProduct', 'Pooling', 'ReLU', 'PReLU', 'Sigmoid', 'TanH',
               'Power', 'Dropout', 'LRN', 'Softmax', 'BatchNorm', 'Scale', 'Bias')
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


class InnerProduct(nn.Module):
    """Caffe's InnerProduct: everything from ``axis`` on is flattened; ``transpose`` stores the weight as
    ``(inputs, outputs)``, as Caffe's blob then is."""

    def __init__(self, inf: int, outf: int, bias: bool, axis: int, transpose: bool):
        super().__init__()
        self.axis, self.transpose = axis, transpose
        self.weight = nn.Parameter(torch.empty((inf, outf) if transpose else (outf, inf)))
        self.bias = nn.Parameter(torch.empty(outf)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x.flatten(self.axis), self.weight.t() if self.transpose else self.weight, self.bias)


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
    """Caffe's BatchNorm: normalisation only (Caffe pairs it with a Scale layer for the affine part).

    ``running_mean`` and ``running_var`` are the statistics in use, Caffe's ``mean / scale_factor`` and
    ``variance / scale_factor`` (both 0 before any training, as in Caffe); ``scale_factor`` is Caffe's third blob,
    the sum of the moving-average weights, kept so that training goes on as Caffe's would: each batch adds its
    mean and its unbiased variance (``m / (m - 1)``) to sums weighted by ``moving_average_fraction``. Training
    normalises with the batch's biased variance; the stored statistics are used in eval mode, or always when
    ``use_global_stats`` is true."""

    def __init__(self, channels: int, eps: float, fraction: float, use_global_stats: bool | None):
        super().__init__()
        self.eps, self.fraction, self.use_global_stats = eps, fraction, use_global_stats
        self.register_buffer('running_mean', torch.zeros(channels))
        self.register_buffer('running_var', torch.zeros(channels))
        self.register_buffer('scale_factor', torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        view = (1, -1) + (1,) * (x.dim() - 2)
        global_stats = (not self.training) if self.use_global_stats is None else self.use_global_stats
        if global_stats:
            mean, var = self.running_mean.reshape(view).to(x.dtype), self.running_var.reshape(view).to(x.dtype)
            return (x - mean) / torch.sqrt(var + self.eps)
        dims = [0] + list(range(2, x.dim()))
        mean = x.mean(dims, keepdim=True)
        var = ((x - mean) ** 2).mean(dims, keepdim=True)
        with torch.no_grad():
            m = x.numel() // x.shape[1]
            correction = m / (m - 1) if m > 1 else 1.0
            kept = self.scale_factor * self.fraction
            total = kept + 1.0
            batch_mean = mean.detach().reshape(-1).to(self.running_mean.dtype)
            batch_var = var.detach().reshape(-1).to(self.running_var.dtype) * correction
            self.running_mean.copy_((self.running_mean * kept + batch_mean) / total)
            self.running_var.copy_((self.running_var * kept + batch_var) / total)
            self.scale_factor.copy_(total)
        return (x - mean) / torch.sqrt(var + self.eps)


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


def _scale_bias(layer, shapes) -> nn.Module:
    t = layer.type
    p = layer.scale_param if t == 'Scale' else layer.bias_param
    scale = t == 'Scale'
    bias_term = scale and p.bias_term
    bias_filler = p.bias_filler if bias_term and p.HasField('bias_filler') else None
    base = shapes[0]
    if len(shapes) == 1:
        return ScaleBias(base, p.axis, p.num_axes, True, scale, p.filler if p.HasField('filler') else None,
                         bias_term, bias_filler)
    if len(shapes) != 2:
        raise CaffeLayerError(f'{t} takes 1 or 2 bottoms, not {len(shapes)}')
    if shapes[1] is None:
        raise CaffeLayerError('the second bottom must come from an earlier layer')
    # the factor is the second bottom, laid over the first from ``axis`` on (num_axes is not used)
    axis = p.axis % len(base)
    if tuple(base[axis:axis + len(shapes[1])]) != tuple(shapes[1]):
        raise CaffeLayerError(f'the second bottom {tuple(shapes[1])} does not match the first {tuple(base)} '
                              f'from axis {axis}')
    return ScaleBias(base, axis, len(shapes[1]), False, scale, None, bias_term, bias_filler)


def _inner_product(layer, shapes) -> nn.Module:
    p = layer.inner_product_param
    if not p.HasField('num_output'):
        raise CaffeLayerError('inner_product_param.num_output is required (DIGITS fills it in with the number '
                              'of classes only for a classification dataset)')
    axis = p.axis % len(shapes[0])
    module = InnerProduct(math.prod(shapes[0][axis:]), p.num_output, p.bias_term, axis, p.transpose)
    fill(module.weight, p.weight_filler if p.HasField('weight_filler') else None)
    if p.bias_term:
        fill(module.bias, p.bias_filler if p.HasField('bias_filler') else None)
    return module


def _pooling(layer) -> nn.Module:
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


def make_layer(layer, shapes: list) -> nn.Module:
    """The module for ``layer`` (a LayerParameter) whose bottoms have ``shapes`` (batch first; None for a blob
    whose shape is not known yet, the label). Blob, loss and accuracy types are in their own modules."""
    t = layer.type
    if t == 'Convolution':
        return _conv(layer, shapes, transpose=False)
    if t == 'Deconvolution':
        return _conv(layer, shapes, transpose=True)
    if t == 'InnerProduct':
        return _inner_product(layer, shapes)
    if t == 'Pooling':
        return _pooling(layer)
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
    if t == 'Softmax':
        return Softmax(layer.softmax_param.axis)
    if t == 'BatchNorm':
        p = layer.batch_norm_param
        return BatchNorm(shapes[0][1], p.eps, p.moving_average_fraction,
                         p.use_global_stats if p.HasField('use_global_stats') else None)
    if t in ('Scale', 'Bias'):
        return _scale_bias(layer, shapes)
    raise UnsupportedLayer(t)
