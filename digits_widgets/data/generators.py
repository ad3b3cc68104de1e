"""The tutorials' synthetic data: the gradients regression images and the binary-segmentation triangles.

Formulas follow DIGITS' image-gradients plug-in and examples/binary-segmentation/create_images.py, but with a
seedable numpy Generator, and without the script's habit of deleting whatever folder it was given.
"""
from __future__ import annotations

import json
import os
import re

import numpy as np
from PIL import Image, ImageDraw

from ..errors import DatasetError

MARKER = '.digits_triangles'
_PNG_NAME = re.compile(r'^\d{8}\.png$')


def gradient_image(xslope: float, yslope: float, height: int, width: int) -> np.ndarray:
    """HW uint8 image a*(x - W//2) + b*(y - H//2) + 127.5 with a = xslope*255/W, b = yslope*255/H.

    W//2 and H//2 are integer halves, as in the plug-in (Python 2 int division); truncated to uint8 like its
    astype, after clipping to 0..255 so float error at the extremes cannot wrap around.
    """
    if height < 1 or width < 1:
        raise DatasetError(f'Gradient images need a positive size, got {height}x{width}.',
                           field='image_height' if height < 1 else 'image_width')
    yy, xx = np.mgrid[:height, :width].astype(np.float64)
    a = float(xslope) * 255 / width
    b = float(yslope) * 255 / height
    image = a * (xx - width // 2) + b * (yy - height // 2) + 127.5
    return np.clip(image, 0, 255).astype(np.uint8)


def random_slopes(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 2) float32 (xslope, yslope) uniform in [-0.5, 0.5), drawn in float32 so 0.5 is never reached."""
    return rng.random((n, 2), dtype=np.float32) - np.float32(0.5)


def _foreign_entries(out_dir: str) -> list[str]:
    """Entries of ``out_dir`` that generate_triangles did not write (symlinks always count as foreign)."""
    names = os.listdir(out_dir)
    if MARKER not in names:  # without our marker nothing here is known to be ours; empty folders are harmless
        return sorted(n for n in names if not (n in ('input', 'target') and _is_empty_dir(out_dir, n)))
    foreign: list[str] = []
    for name in sorted(names):
        path = os.path.join(out_dir, name)
        if os.path.islink(path):
            foreign.append(name)
        elif name in ('input', 'target') and os.path.isdir(path):
            for child in sorted(os.listdir(path)):
                child_path = os.path.join(path, child)
                if not (_PNG_NAME.match(child) and os.path.isfile(child_path)
                        and not os.path.islink(child_path)):
                    foreign.append(f'{name}/{child}')
        elif not (name in ('grid.png', MARKER) and os.path.isfile(path)):
            foreign.append(name)
    return foreign


def _is_empty_dir(parent: str, name: str) -> bool:
    path = os.path.join(parent, name)
    return os.path.isdir(path) and not os.path.islink(path) and not os.listdir(path)


def _clear_own_output(out_dir: str) -> None:
    """Remove only what an earlier generate_triangles wrote (checked by _foreign_entries first). The marker
    stays, so a run interrupted here is still recognised as ours; it is rewritten next."""
    for sub in ('input', 'target'):
        folder = os.path.join(out_dir, sub)
        if os.path.isdir(folder):
            for child in os.listdir(folder):
                os.remove(os.path.join(folder, child))
    grid_path = os.path.join(out_dir, 'grid.png')
    if os.path.isfile(grid_path):
        os.remove(grid_path)


def _prepare(out_dir: str) -> None:
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        raise DatasetError(f'Output folder is a file: {out_dir}. Choose a new or empty folder.', field='out_dir')
    if os.path.isdir(out_dir):
        foreign = _foreign_entries(out_dir)
        if foreign:
            shown = ', '.join(foreign[:10]) + (f' (and {len(foreign) - 10} more)' if len(foreign) > 10 else '')
            raise DatasetError(f'Output folder {out_dir} holds files generate_triangles did not write: {shown}. '
                               f'Nothing was changed; choose a new or empty folder.', field='out_dir')
        _clear_own_output(out_dir)
    os.makedirs(os.path.join(out_dir, 'input'), exist_ok=True)
    os.makedirs(os.path.join(out_dir, 'target'), exist_ok=True)


def generate_triangles(out_dir: str | os.PathLike, count: int = 10000, size: int = 32, grid: int = 10,
                       seed: int | None = None) -> dict[str, str]:
    """Write the segmentation tutorial's data: input/%08d.png (outlined black triangle on white), target/%08d.png
    (the same triangle filled) and grid.png (grid x grid cells, one outlined triangle each).

    An existing ``out_dir`` is reused only if it holds nothing but our own earlier output (recognised by the
    '.digits_triangles' marker); otherwise DatasetError and nothing is touched. Returns absolute paths
    {'input', 'target', 'grid'}.
    """
    for name, value, least in (('image_count', count, 1), ('image_size', size, 1), ('grid_size', grid, 1)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < least:
            raise DatasetError(f'{name} must be a whole number >= {least}, got {value!r}.', field=name)
    out_dir = os.path.abspath(os.path.expanduser(os.fspath(out_dir)))
    _prepare(out_dir)
    with open(os.path.join(out_dir, MARKER), 'w', encoding='utf-8') as fh:  # first, so partial runs are ours
        json.dump({'generator': 'digits_widgets.data.generators.generate_triangles', 'count': int(count),
                   'size': int(size), 'grid': int(grid), 'seed': seed}, fh)
    rng = np.random.default_rng(seed)
    input_dir, target_dir = os.path.join(out_dir, 'input'), os.path.join(out_dir, 'target')
    coords = rng.uniform(size=(count, 6)) * size
    blank = Image.new('L', (size, size), 255)
    for idx, triangle in enumerate(coords.tolist()):
        outlined, filled = blank.copy(), blank.copy()
        ImageDraw.Draw(outlined).polygon(triangle, outline=0)
        fill = ImageDraw.Draw(filled)
        fill.polygon(triangle, fill=0)
        # Pillow >= 9 skips the stroke when outline == fill; DIGITS' Pillow drew both, so stroke explicitly
        # and the target covers every outline pixel of the input.
        fill.polygon(triangle, outline=0)
        outlined.save(os.path.join(input_dir, f'{idx:08d}.png'))
        filled.save(os.path.join(target_dir, f'{idx:08d}.png'))
    grid_path = os.path.join(out_dir, 'grid.png')
    _draw_grid(rng, size, grid).save(grid_path)
    return {'input': input_dir, 'target': target_dir, 'grid': grid_path}


def _draw_grid(rng: np.random.Generator, size: int, grid: int) -> Image.Image:
    """One outlined triangle per cell; cell (x, y) is shifted by (x*size, y*size), as in create_images.py."""
    image = Image.new('L', (grid * size, grid * size), 255)
    draw = ImageDraw.Draw(image)
    coords = rng.uniform(size=(grid, grid, 3, 2)) * size
    for x in range(grid):
        for y in range(grid):
            triangle = coords[x, y] + np.array([x * size, y * size])
            draw.polygon(triangle.reshape(6).tolist(), outline=0)
    return image
