"""DIGITS' training-time data transformations on NCHW float batches (0..255, before mean subtraction).

Everything works on the whole batch at once with tensor ops (no per-sample Python loop), on the batch's
device, and draws all randomness from the ``generator`` passed in, so a seeded generator replays the same
augmentation.  Geometric transforms (flips, 90° rotations, crops) move image labels (segmentation maps,
processing targets: a label batch with the input's height and width) with the input; other labels pass
through untouched.  Order follows DIGITS' TensorFlow pipeline: flip, rotation, noise, hue/saturation/value.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from ..errors import OptionError, TrainingError

FLIPS = ('none', 'fliplr', 'flipud', 'fliplrud')
QUAD_ROTATIONS = ('none', 'rot90', 'rot180', 'rotall')
_QUARTER_TURNS = {'rot90': (0, 1, 3), 'rot180': (0, 2), 'rotall': (0, 1, 2, 3)}


def _in_range(value: object, field: str, high: float) -> None:
    """Reject non-numbers and values outside 0..high with an OptionError naming the field."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not 0.0 <= value <= high:
        raise OptionError(f"{field} must be a number within 0..{high:g}, got {value!r}", field=field)


@dataclass(frozen=True)
class Augmentation:
    """DIGITS' augmentation options (``aug_flip``, ``aug_quad_rot``, ``aug_noise``, ``aug_hsv_*``).

    ``noise`` and the HSV stddevs are in [0, 1] units as in DIGITS; they are scaled to the 0..255 data.
    HSV shifting on 1-channel batches shifts the value (brightness) only: gray pixels have no hue and no
    saturation, and in HSV terms their value is the gray level itself.
    """

    flip: str = 'none'
    quad_rot: str = 'none'
    noise: float = 0.0
    hsv: bool = False
    hsv_h: float = 0.02
    hsv_s: float = 0.04
    hsv_v: float = 0.06

    def __post_init__(self) -> None:
        if self.flip not in FLIPS:
            raise OptionError(f"unknown flip {self.flip!r}: choose one of {', '.join(FLIPS)}", field='flip')
        if self.quad_rot not in QUAD_ROTATIONS:
            raise OptionError(f"unknown quad_rot {self.quad_rot!r}: choose one of {', '.join(QUAD_ROTATIONS)}",
                              field='quad_rot')
        _in_range(self.noise, 'noise', 1.0)
        if not isinstance(self.hsv, bool):
            raise OptionError(f"hsv must be True or False, got {self.hsv!r}", field='hsv')
        for field in ('hsv_h', 'hsv_s', 'hsv_v'):
            _in_range(getattr(self, field), field, 0.5)

    @property
    def hsv_active(self) -> bool:
        """HSV shifting is on and at least one of its stddevs is non-zero."""
        return self.hsv and (self.hsv_h > 0 or self.hsv_s > 0 or self.hsv_v > 0)

    @property
    def active(self) -> bool:
        """Whether :func:`augment` changes anything (lets loaders skip it)."""
        return self.flip != 'none' or self.quad_rot != 'none' or self.noise > 0 or self.hsv_active


def _draw(kind: str, shape: tuple[int, ...], device: torch.device | str, generator: torch.Generator | None,
          high: int = 0) -> Tensor:
    """Random numbers from ``generator`` (drawn on its own device), delivered on ``device``."""
    where = generator.device if generator is not None else device
    if kind == 'rand':
        out = torch.rand(shape, generator=generator, device=where)
    elif kind == 'randn':
        out = torch.randn(shape, generator=generator, device=where)
    else:
        out = torch.randint(0, high, shape, generator=generator, device=where)
    return out.to(device)


def _decide(kind: str, n: int, generator: torch.Generator | None, high: int = 0) -> Tensor:
    """Per-sample decisions, kept on the generator's device (CPU by default) so that picking the chosen
    samples does not wait for an accelerator."""
    return _draw(kind, (n,), generator.device if generator is not None else 'cpu', generator, high)


def _check_batch(x: Tensor, y: Tensor | None) -> bool:
    """Validate shapes; True when ``y`` is an image label (NHW or NCHW with x's height and width)."""
    if not isinstance(x, Tensor) or x.dim() != 4:
        raise TrainingError(f"augmentation needs an NCHW batch, got shape {tuple(getattr(x, 'shape', ()))}")
    if y is None or y.dim() not in (3, 4) or y.shape[-2:] != x.shape[-2:]:
        return False
    if y.shape[0] != x.shape[0]:
        raise TrainingError(f"label batch has {y.shape[0]} samples but the input batch has {x.shape[0]}")
    return True


def _apply(t: Tensor, chosen: Tensor, fn: Callable[[Tensor], Tensor]) -> Tensor:
    """A copy of ``t`` with ``fn`` applied to the samples where ``chosen`` is true (only those are touched)."""
    index = chosen.nonzero().squeeze(1)
    if index.numel() == 0:
        return t
    index = index.to(t.device)
    out = t.clone()
    out[index] = fn(t[index])
    return out


def _rgb_to_hsv(rgb: Tensor) -> Tensor:
    """(N,3,H,W) RGB in [0,1] → HSV in [0,1] (hue as a fraction of a turn), as ``colorsys`` computes it."""
    maxc, top = rgb.max(1, keepdim=True)
    delta = maxc - rgb.min(1, keepdim=True).values
    # hue sector from the largest channel: (g-b)/d, (b-r)/d + 2, (r-g)/d + 4, in sixths of a turn
    diff = (rgb.roll(-1, 1) - rgb.roll(-2, 1)).gather(1, top)
    has_hue = delta > 0
    hue = torch.where(has_hue, (diff / torch.where(has_hue, delta, 1.0) + 2.0 * top) % 6.0 / 6.0, 0.0)
    sat = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, 1.0), 0.0)
    return torch.cat((hue, sat, maxc), 1)


def _hsv_to_rgb(hsv: Tensor) -> Tensor:
    """Inverse of :func:`_rgb_to_hsv`: channel n of (5, 3, 1) is ``v - v*s*clamp(min(k, 4-k), 0, 1)``."""
    h, s, v = hsv.unbind(1)
    n = torch.tensor((5.0, 3.0, 1.0), device=hsv.device, dtype=hsv.dtype).view(1, 3, 1, 1)
    k = (n + h.unsqueeze(1) * 6.0) % 6.0
    ramp = torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)
    return v.unsqueeze(1) - (v * s).unsqueeze(1) * ramp


def _shift_hsv(x: Tensor, aug: Augmentation, generator: torch.Generator | None) -> Tensor:
    """Per-sample normal shifts of hue (wrapping), saturation and value on a 0..255 batch."""
    n, c = x.shape[:2]
    if c not in (1, 3):
        raise OptionError(f"HSV shifting needs 1-channel (gray) or 3-channel (RGB) images, got {c} channels",
                          field='hsv')
    shifts = _draw('randn', (n, 3), x.device, generator).to(x.dtype)
    shifts = shifts * torch.tensor((aug.hsv_h, aug.hsv_s, aug.hsv_v), device=x.device, dtype=x.dtype)
    if c == 1:
        return x + shifts[:, 2].view(n, 1, 1, 1) * 255.0
    hsv = _rgb_to_hsv(x.clamp(0.0, 255.0) / 255.0)
    h = (hsv[:, 0] + shifts[:, 0].view(n, 1, 1)) % 1.0
    s = (hsv[:, 1] + shifts[:, 1].view(n, 1, 1)).clamp(0.0, 1.0)
    v = (hsv[:, 2] + shifts[:, 2].view(n, 1, 1)).clamp(0.0, 1.0)
    return _hsv_to_rgb(torch.stack((h, s, v), 1)) * 255.0


def augment(x: Tensor, y: Tensor | None, aug: Augmentation,
            generator: torch.Generator | None = None) -> tuple[Tensor, Tensor | None]:
    """Apply ``aug`` to a batch; returns new tensors (inputs are never modified).

    ``x`` is NCHW in 0..255 (integer batches are converted to float32); the result is clamped to 0..255.
    ``y`` follows the flips and rotations when it is an image label, else it is returned as is.  When
    ``aug`` is inactive, ``x`` and ``y`` come back unchanged.  90° rotations need square images
    (OptionError naming the shape otherwise).
    """
    image_label = _check_batch(x, y)
    if not aug.active:
        return x, y
    if not x.is_floating_point():
        x = x.float()
    work = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    n, device = x.shape[0], x.device

    if aug.flip != 'none':
        for flip, dim in (('fliplr', -1), ('flipud', -2)):
            if aug.flip in (flip, 'fliplrud'):
                chosen = _decide('rand', n, generator) < 0.5
                work = _apply(work, chosen, lambda t, d=dim: t.flip(d))
                y = _apply(y, chosen, lambda t, d=dim: t.flip(d)) if image_label else y

    if aug.quad_rot != 'none':
        choices = _QUARTER_TURNS[aug.quad_rot]
        if 1 in choices and x.shape[-2] != x.shape[-1]:
            raise OptionError(f"quad_rot {aug.quad_rot!r} turns images by 90° and needs square images, got "
                              f"{x.shape[-2]}x{x.shape[-1]} (HxW); use 'rot180' or crop to a square",
                              field='quad_rot')
        turns = torch.tensor(choices)[_decide('randint', n, generator, high=len(choices)).cpu()]
        for k in choices[1:]:  # quarter turns counter-clockwise in the H, W plane
            def turn(t: Tensor, k: int = k) -> Tensor:
                return torch.rot90(t, k, dims=(-2, -1))
            work = _apply(work, turns == k, turn)
            y = _apply(y, turns == k, turn) if image_label else y

    if aug.noise > 0:
        work = work + _draw('randn', tuple(work.shape), device, generator).to(work.dtype) * (aug.noise * 255.0)
    if aug.hsv_active:
        work = _shift_hsv(work, aug, generator)
    return work.clamp(0.0, 255.0).to(x.dtype), y


def _check_crop(x: Tensor, size: int) -> None:
    """``size`` must be a positive integer no larger than the image (DIGITS' crop_size error)."""
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        raise OptionError(f"crop_size must be an integer >= 1, got {size!r}", field='crop_size')
    height, width = x.shape[-2:]
    if size > height or size > width:
        raise OptionError("crop_size (%d) is larger than the image size (%dx%d)" % (size, width, height),
                          field='crop_size')


def random_crop(x: Tensor, y: Tensor | None, size: int,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor | None]:
    """One random ``size``×``size`` window per sample; an image label is cut at the same window."""
    image_label = _check_batch(x, y)
    _check_crop(x, size)
    n, _, height, width = x.shape
    top = _decide('randint', n, generator, high=height - size + 1).to(x.device)
    left = _decide('randint', n, generator, high=width - size + 1).to(x.device)
    span = torch.arange(size, device=x.device)
    rows = (top[:, None] + span)[:, :, None]   # (N, size, 1)
    cols = (left[:, None] + span)[:, None, :]  # (N, 1, size)
    batch = torch.arange(n, device=x.device)[:, None, None]

    def cut(t: Tensor) -> Tensor:
        if t.dim() == 3:
            return t[batch, rows, cols]
        return t.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()

    return cut(x), (cut(y) if image_label else y)


def center_crop(x: Tensor, y: Tensor | None, size: int) -> tuple[Tensor, Tensor | None]:
    """The central ``size``×``size`` window (validation and inference); an image label is cut alike."""
    image_label = _check_batch(x, y)
    _check_crop(x, size)
    height, width = x.shape[-2:]
    top, left = (height - size) // 2, (width - size) // 2

    def cut(t: Tensor) -> Tensor:
        return t[..., top:top + size, left:left + size]

    return cut(x), (cut(y) if image_label else y)
