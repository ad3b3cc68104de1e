"""Arrays from datasets and models → PNG bytes for ``ipywidgets.Image``, with Pillow only.

Database entries come in many shapes (HW gray, HWC colour, HWx1, float means, class-index label maps,
label vectors); the views should not care. ``to_uint8`` turns any image-like array into something Pillow
can save, ``png_bytes`` encodes it, enlarging tiny images (8x8 gradients) with nearest-neighbour so the
pixels stay visible instead of blurring, and ``label_text`` says in words what a non-image label is.
"""
from __future__ import annotations

import io
from typing import Sequence

import numpy as np
from PIL import Image

MIN_SIDE = 64      # tiny images are enlarged to at least this many pixels on their shorter side
MAX_SIDE = 256     # and large ones shrunk, so a page of samples stays light on the wire


def is_image_like(arr: object) -> bool:
    """True for HW or HWC (C in 1, 3, 4) arrays: what can be drawn as a picture rather than printed."""
    a = np.asarray(arr) if isinstance(arr, np.ndarray) else None
    if a is None or a.ndim not in (2, 3) or min(a.shape[:2]) < 2:
        return False
    return a.ndim == 2 or a.shape[2] in (1, 3, 4)


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """HW / HWC uint8 ready for Pillow.

    uint8 passes through; floats already in 0..255 (mean images) are rounded and clipped; anything else
    (16-bit, negative, tiny ranges) is stretched min..max to 0..255 so it is visible at all. HWx1 → HW and
    channels other than 1/3/4 keep only the first, because a picture of channel 0 beats no picture.
    """
    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[2] not in (3, 4):
        a = a[:, :, 0]
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    f = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (float(f.min()), float(f.max())) if f.size else (0.0, 0.0)
    if np.issubdtype(a.dtype, np.floating) and lo >= 0 and hi <= 255 and hi > 1:
        return np.clip(np.rint(f), 0, 255).astype(np.uint8)
    if hi > lo:
        f = (f - lo) * (255.0 / (hi - lo))
    else:
        f = np.zeros_like(f)
    return np.clip(np.rint(f), 0, 255).astype(np.uint8)


def default_palette() -> list[int]:
    """A 768-int palette with well separated colours (class 0 black), for label maps that carry none.

    Bit-reversed channels as in the PASCAL VOC palette: neighbouring class indices get very different colours.
    """
    out: list[int] = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out.extend((r, g, b))
    return out


def to_pil(arr: np.ndarray, palette: Sequence[int] | None = None) -> Image.Image:
    """A Pillow image; with ``palette`` the array is read as class indices (segmentation labels)."""
    if palette is not None:
        a = np.asarray(arr)
        if a.ndim == 3:
            a = a[:, :, 0]
        img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "P")
        img.putpalette((list(palette) + [0] * 768)[:768])
        return img.convert("RGB")
    a = to_uint8(arr)
    mode = "L" if a.ndim == 2 else ("RGBA" if a.shape[2] == 4 else "RGB")
    return Image.fromarray(a, mode)


def fit(img: Image.Image, min_side: int = MIN_SIDE, max_side: int = MAX_SIDE) -> Image.Image:
    """Enlarge by a whole factor (nearest: crisp pixels) or shrink (bilinear) into [min_side, max_side]."""
    w, h = img.size
    if min(w, h) < min_side:
        k = max(1, min(-(-min_side // min(w, h)), max_side // max(w, h)))
        return img.resize((w * k, h * k), Image.NEAREST) if k > 1 else img
    if max(w, h) > max_side:
        s = max_side / max(w, h)
        return img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BILINEAR)
    return img


def png_bytes(arr: np.ndarray, palette: Sequence[int] | None = None, *, min_side: int = MIN_SIDE,
              max_side: int = MAX_SIDE) -> bytes:
    """PNG bytes of an image-like array, sized for a gallery cell."""
    buf = io.BytesIO()
    fit(to_pil(arr, palette), min_side, max_side).save(buf, format="PNG")
    return buf.getvalue()


def grid_png(arrays: Sequence[np.ndarray], cols: int = 4, cell: int = MIN_SIDE, pad: int = 2,
             palette: Sequence[int] | None = None) -> bytes:
    """One PNG tiling ``arrays`` (each fitted into a ``cell`` square) row by row on a white background.

    One image instead of N widgets: cheaper to send when a caption per image is not needed.
    """
    if not arrays:
        raise ValueError("grid_png needs at least one image")
    tiles = [fit(to_pil(a, palette), cell, cell).convert("RGB") for a in arrays]
    rows = -(-len(tiles) // cols)
    sheet = Image.new("RGB", (cols * (cell + pad) + pad, rows * (cell + pad) + pad), (255, 255, 255))
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        x = pad + c * (cell + pad) + (cell - tile.size[0]) // 2
        y = pad + r * (cell + pad) + (cell - tile.size[1]) // 2
        sheet.paste(tile, (x, y))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    return buf.getvalue()


def label_text(label: object, digits: int = 3) -> str:
    """A label in words: a class name as is, a number, or a short vector like ``(0.125, -0.311)``."""
    if label is None:
        return ""
    if isinstance(label, np.ndarray):
        flat = label.ravel()
        if flat.size > 8:
            return f"array {'x'.join(map(str, label.shape))}"
        if np.issubdtype(label.dtype, np.floating):
            vals = ", ".join(f"{v:.{digits}f}" for v in flat)
        else:
            vals = ", ".join(str(int(v)) for v in flat)
        return f"({vals})" if flat.size != 1 else vals
    if isinstance(label, float):
        return f"{label:.{digits}f}"
    return str(label)


def shape_text(shape: Sequence[int] | None) -> str:
    """DIGITS writes shapes as WxHxC; arrays here are (H, W[, C])."""
    if not shape:
        return "?"
    if len(shape) == 1:
        return str(shape[0])
    h, w, *rest = shape
    return "x".join(str(v) for v in (w, h, *(rest or [1])))
