"""Loading, converting and resizing images the way DIGITS did, so datasets built here match DIGITS' own.

Arrays are HWC uint8 RGB or HW uint8 gray (the ``np.array(PIL.Image)`` layout); CHW/BGR is the database's
business, not ours.
"""
from __future__ import annotations

import math
import os

import numpy as np
from PIL import Image

from ..errors import DatasetError, ImageError

# DIGITS' list (.png .jpg .jpeg .bmp .ppm) plus PGM and TIFF, which users asked for.
SUPPORTED_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.ppm', '.pgm', '.tif', '.tiff')

RESIZE_MODES = ('squash', 'crop', 'fill', 'half_crop')

_WHITE_RGB = (255, 255, 255)
_SIXTEEN_BIT_MODES = ('I;16', 'I;16L', 'I;16B', 'I;16N', 'I')


def is_image_file(path: str | os.PathLike) -> bool:
    """True when the name ends with a supported extension (case-insensitive); the content is not checked."""
    return os.fspath(path).lower().endswith(SUPPORTED_EXTENSIONS)


def _open_loaded(path: str | os.PathLike) -> Image.Image:
    """Open and fully decode ``path``; Pillow is lazy, so without load() a truncated file would pass.
    (Leaving the ``with`` block closes the file only; the loaded pixels stay, Pillow >= 10.)"""
    path = os.fspath(path)
    try:
        with Image.open(path) as img:
            img.load()
        return img
    except FileNotFoundError as exc:
        raise ImageError(f'Image file not found: {path}. Check the path and that the file was not moved.') from exc
    except IsADirectoryError as exc:
        raise ImageError(f'Expected an image file but found a folder: {path}.') from exc
    except Image.DecompressionBombError as exc:
        raise ImageError(f'Image is too large to load safely: {path} ({exc}). Downscale it first.') from exc
    except Image.UnidentifiedImageError as exc:
        raise ImageError(f'Not an image (or a format Pillow cannot read): {path}. '
                         f'Remove it or convert it to one of {", ".join(SUPPORTED_EXTENSIONS)}.') from exc
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, ... for damaged files
        raise ImageError(f'Image file is truncated or corrupt: {path} ({type(exc).__name__}: {exc}). '
                         f'Re-export or remove it.') from exc


def _composite_on_white(img: Image.Image, gray: bool) -> Image.Image:
    """Flatten transparency onto white, as DIGITS did (transparent pixels become white)."""
    rgba = img.convert('LA' if gray else 'RGBA')
    base = Image.new('L' if gray else 'RGB', img.size, 255 if gray else _WHITE_RGB)
    base.paste(rgba.convert('L' if gray else 'RGB'), mask=rgba.getchannel('A'))
    return base


def _to_8bit_gray(img: Image.Image) -> Image.Image:
    """16-bit: linear 0..65535 -> 0..255 (rounded, so 8-bit data stored as v*257 comes back exactly).
    'F': clipped to 0..255 and rounded, NaN -> 0. Both give an 'L' image."""
    arr = np.asarray(img, dtype=np.float64)
    if img.mode in _SIXTEEN_BIT_MODES:
        arr = arr * (255.0 / 65535.0)
    arr = np.nan_to_num(arr, nan=0.0, posinf=255.0, neginf=0.0)
    return Image.fromarray(np.rint(np.clip(arr, 0, 255)).astype(np.uint8), mode='L')


def _to_l_or_rgb(img: Image.Image, path: str) -> Image.Image:
    """DIGITS' mode table. 'P' always becomes RGB (even an all-gray palette), as in DIGITS, so channel
    counts match databases DIGITS wrote; ask for mode='L' to get gray."""
    mode = img.mode
    if mode in ('L', 'RGB'):
        return img
    if mode == '1':
        return img.convert('L')
    if mode == 'LA':
        return _composite_on_white(img, gray=True)
    if mode in ('CMYK', 'YCbCr'):
        return img.convert('RGB')
    if mode in ('P', 'PA', 'RGBA'):
        return _composite_on_white(img, gray=False)
    if mode in _SIXTEEN_BIT_MODES or mode == 'F':
        return _to_8bit_gray(img)
    raise ImageError(f'Image mode "{mode}" not supported: {path}. Convert it to RGB or grayscale first.')


def load_image(path: str | os.PathLike, mode: str | None = None) -> np.ndarray:
    """Load ``path`` as HWC uint8 RGB or HW uint8 gray.

    mode None keeps gray as gray and colour as RGB; 'RGB' or 'L' converts (Pillow's ITU-R 601 luma for 'L').
    Transparency is composited on white; 16-bit is scaled by 255/65535; float is clipped to 0..255.
    """
    if mode not in (None, 'RGB', 'L'):
        raise DatasetError(f"Channel conversion must be None, 'RGB' or 'L', got {mode!r}.",
                           field='channel_conversion')
    img = _to_l_or_rgb(_open_loaded(path), os.fspath(path))
    if mode is not None and img.mode != mode:
        img = img.convert(mode)
    return np.array(img, dtype=np.uint8)


def load_label_image(path: str | os.PathLike) -> tuple[np.ndarray, list[int] | None]:
    """Load a segmentation label: 'P' -> (palette indices, 768-int palette); 'L'/'1' -> (values, None)."""
    img = _open_loaded(path)
    if img.mode == 'P':
        palette = list(img.getpalette() or [])
        palette = (palette + [0] * 768)[:768]
        return np.array(img, dtype=np.uint8), palette
    if img.mode in ('L', '1'):
        return np.array(img.convert('L'), dtype=np.uint8), None
    raise ImageError('Labels are expected to be single-channel (paletted or grayscale) images: '
                     f'{os.fspath(path)} has mode "{img.mode}". Save labels as paletted or grayscale PNG.')


def convert_channels(arr: np.ndarray, channels: int) -> np.ndarray:
    """1: colour -> gray with DIGITS' weights (0.299, 0.587, 0.114), rounded; 3: gray -> RGB by repeating.
    Gray comes out HW; an array that already has the right channels is returned as it is."""
    if channels not in (1, 3):
        raise DatasetError(f'Image type must be 1 (grayscale) or 3 (color) channels, got {channels!r}.',
                           field='resize_channels')
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        return arr if channels == 1 else np.repeat(arr[:, :, np.newaxis], 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] == 3:
        if channels == 3:
            return arr
        gray = np.dot(arr.astype(np.float64), [0.299, 0.587, 0.114])
        return np.clip(np.rint(gray), 0, 255).astype(np.uint8)
    raise DatasetError(f'Expected an HW gray or HWx3 colour image, got an array of shape {arr.shape}.')


def _round(x: float) -> int:
    """Python 2's round (half away from zero), which DIGITS' size arithmetic used."""
    return int(math.floor(x + 0.5))


def _pil_resize(arr: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of HW or HWC uint8; channels other than 3 are resized one by one as 'L'."""
    if arr.shape[0] == height and arr.shape[1] == width:
        return arr
    if arr.ndim == 2:
        return np.asarray(Image.fromarray(arr, 'L').resize((width, height), Image.BILINEAR))
    if arr.shape[2] == 3:
        return np.asarray(Image.fromarray(arr, 'RGB').resize((width, height), Image.BILINEAR))
    planes = [_pil_resize(np.ascontiguousarray(arr[:, :, c]), height, width) for c in range(arr.shape[2])]
    return np.stack(planes, axis=2)


def _check_resize_args(arr: np.ndarray, height: int, width: int, mode: str) -> None:
    if mode not in RESIZE_MODES:
        raise DatasetError(f'Unknown resize mode {mode!r}; choose one of: {", ".join(RESIZE_MODES)}.',
                           field='resize_mode')
    for name, value in (('resize_height', height), ('resize_width', width)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise DatasetError(f'{name} must be a positive whole number of pixels, got {value!r}.', field=name)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise DatasetError(f'resize_image expects a non-empty uint8 HW or HWC array, '
                           f'got dtype {arr.dtype} and shape {arr.shape}.')


def resize_image(arr: np.ndarray, height: int, width: int, mode: str = 'squash',
                 rng: np.random.Generator | None = None) -> np.ndarray:
    """Resize to (height, width) with DIGITS' four modes (squash, crop, fill, half_crop), Pillow bilinear.

    fill/half_crop pad with uniform noise in 0..254 (DIGITS' randint(0, 255)); as in DIGITS one noise block
    is drawn and used on both sides. Same size in -> the input array itself.
    """
    arr = np.asarray(arr)
    _check_resize_args(arr, height, width, mode)
    h, w = arr.shape[:2]
    if h == height and w == width:
        return arr
    width_ratio = w / width
    height_ratio = h / height
    if mode == 'squash' or width_ratio == height_ratio:
        return _pil_resize(arr, height, width)
    wider = width_ratio > height_ratio  # relatively wider than the target
    if mode == 'crop':
        if wider:
            resized = _pil_resize(arr, height, _round(w / height_ratio))
            start = _round((resized.shape[1] - width) / 2.0)
            return resized[:, start:start + width]
        resized = _pil_resize(arr, _round(h / width_ratio), width)
        start = _round((resized.shape[0] - height) / 2.0)
        return resized[start:start + height, :]
    if mode == 'fill':
        if wider:
            rh = _even_gap(max(1, _round(h / width_ratio)), height)
            resized = _pil_resize(arr, rh, width)
        else:
            rw = _even_gap(max(1, _round(w / height_ratio)), width)
            resized = _pil_resize(arr, height, rw)
    else:  # half_crop
        ratio = (width_ratio + height_ratio) / 2.0
        rw, rh = max(1, _round(w / ratio)), max(1, _round(h / ratio))
        if wider:
            resized = _pil_resize(arr, _even_gap(rh, height), rw)
            start = _round((resized.shape[1] - width) / 2.0)
            resized = resized[:, start:start + width]
        else:
            resized = _pil_resize(arr, rh, _even_gap(rw, width))
            start = _round((resized.shape[0] - height) / 2.0)
            resized = resized[start:start + height, :]
    return _pad_with_noise(resized, height, width, wider, rng)


def _even_gap(size: int, target: int) -> int:
    """Grow ``size`` by one when needed so the padding (target - size) splits evenly on both sides."""
    return size + 1 if (target - size) % 2 == 1 else size


def _pad_with_noise(img: np.ndarray, height: int, width: int, wider: bool,
                    rng: np.random.Generator | None) -> np.ndarray:
    rng = rng if rng is not None else np.random.default_rng()
    axis = 0 if wider else 1
    pad = ((height - img.shape[0]) if wider else (width - img.shape[1])) // 2
    shape = list(img.shape)
    shape[axis] = pad
    noise = rng.integers(0, 255, size=tuple(shape), dtype=np.uint8)
    return np.concatenate((noise, img, noise), axis=axis)
