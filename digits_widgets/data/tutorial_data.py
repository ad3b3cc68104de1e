"""Data the tutorials make for themselves: nothing can be downloaded at run time.

- ``write_digit_folders``: real handwritten digits that ship with scikit-learn (1797 8x8 scans), upscaled
  to 28x28 and written as class folders of PNGs: an MNIST stand-in for the autoencoder and LeNet tutorials.
- ``write_test_lmdbs``: DIGITS' ``test_lmdb_creator.py`` (regression tutorial): four LMDBs, mean files and
  ``test.png`` with slopes (0.5, 0.5).
- ``write_degraded_pairs``: source/target folders for image reconstruction (heavy JPEG and/or blur by
  down-and-up scaling of the same image).
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from ..errors import DatasetError
from ..store.datum import array_to_datum, encode_datum
from ..store.lmdb_db import LmdbWriter, write_mean
from .generators import gradient_image, random_slopes

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _refuse_existing(path: Path) -> None:
    if path.exists() and any(path.iterdir()):
        raise DatasetError(f"{path} already exists and is not empty: choose a new folder", field="out_dir")


def load_digits_28() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's handwritten digits as (N, 28, 28) uint8 images (white digit on black) and labels."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DatasetError("The digits tutorials need scikit-learn (pip install scikit-learn): its "
                           "handwritten digits ship inside the package") from None
    digits = load_digits()
    small = np.clip(digits.images * (255.0 / 16.0), 0, 255).astype(np.uint8)
    big = np.stack([np.asarray(Image.fromarray(im).resize((20, 20), Image.BICUBIC)) for im in small])
    out = np.zeros((len(big), 28, 28), np.uint8)
    out[:, 4:24, 4:24] = big  # MNIST centres a 20x20 digit in a 28x28 frame
    return out, digits.target.astype(np.int64)


def write_digit_folders(out_dir: str | os.PathLike, groups: dict[str, list[int]] | None = None,
                        per_class: int | None = None) -> dict[str, int]:
    """Write ``out_dir/<class>/<n>.png``; ``groups`` maps folder names to digits (default one per digit).

    ``groups={'even': [0, 2, 4, 6, 8], 'odd': [1, 3, 5, 7, 9]}`` gives DIGITS' fine-tuning dataset.
    Returns images written per folder.
    """
    out = Path(out_dir)
    _refuse_existing(out)
    images, labels = load_digits_28()
    groups = groups or {f"{d}_{name}": [d] for d, name in enumerate(DIGIT_NAMES)}
    counts = {}
    for folder, members in groups.items():
        idx = np.flatnonzero(np.isin(labels, members))[:per_class]
        (out / folder).mkdir(parents=True, exist_ok=True)
        for i in idx:
            Image.fromarray(images[i]).save(out / folder / f"{i:05d}.png")
        counts[folder] = len(idx)
    return counts


def write_test_lmdbs(out_dir: str | os.PathLike, width: int = 10, height: int = 10, train_count: int = 100,
                     val_count: int = 250, seed: int | None = None) -> dict[str, str]:
    """DIGITS' test_lmdb_creator.py: train/val image and label LMDBs (keys ``str(i)``), means, test.png."""
    out = Path(out_dir)
    _refuse_existing(out)
    rng = np.random.default_rng(seed)
    paths = {}
    for stage, count in (("train", train_count), ("val", val_count)):
        slopes = random_slopes(count, rng)
        total = np.zeros((height, width), np.float64)
        with LmdbWriter(out / f"{stage}_images") as images, LmdbWriter(out / f"{stage}_labels") as labels:
            for i, (xs, ys) in enumerate(slopes):
                img = gradient_image(float(xs), float(ys), height, width)
                total += img
                images.put(str(i), encode_datum(array_to_datum(img, encoding="png")))
                labels.put(str(i), encode_datum(array_to_datum(np.array([xs, ys], np.float32))))
        mean = np.around(total / max(count, 1))
        write_mean(out / f"{stage}_mean.binaryproto", mean, png_path=out / f"{stage}_mean.png")
        paths.update({f"{stage}_images": str(out / f"{stage}_images"), f"{stage}_labels": str(out / f"{stage}_labels"),
                      f"{stage}_mean": str(out / f"{stage}_mean.binaryproto")})
    Image.fromarray(gradient_image(0.5, 0.5, height, width)).save(out / "test.png")
    paths["test_image"] = str(out / "test.png")
    return paths


def degrade(image: Image.Image, jpeg_quality: int | None = 10, blur_factor: int | None = 2) -> Image.Image:
    """A worse copy of the same size: down-and-up scaling (blur) and/or a heavy JPEG round trip."""
    out = image
    if blur_factor and blur_factor > 1:
        small = out.resize((max(1, out.width // blur_factor), max(1, out.height // blur_factor)), Image.BICUBIC)
        out = small.resize(out.size, Image.BICUBIC)
    if jpeg_quality:
        buf = io.BytesIO()
        out.convert("RGB").save(buf, "JPEG", quality=jpeg_quality)
        out = Image.open(io.BytesIO(buf.getvalue())).convert(image.mode)
    return out


def textured_image(rng: np.random.Generator, size: int = 64) -> Image.Image:
    """A colourful synthetic image with edges and smooth areas (shapes on a gradient), for reconstruction."""
    from PIL import ImageDraw
    yy, xx = np.mgrid[:size, :size] / size
    base = np.stack([xx, yy, 1 - xx], -1) * rng.uniform(80, 200, 3) + rng.uniform(0, 50, 3)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(4, 9))):
        x0, y0 = (int(v) for v in rng.integers(0, size, 2))
        w, h = (int(v) for v in rng.integers(4, size // 2, 2))
        x1, y1 = x0 + w, y0 + h
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = rng.integers(3)
        if shape == 0:
            draw.ellipse([x0, y0, x1, y1], fill=colour)
        elif shape == 1:
            draw.rectangle([x0, y0, x1, y1], fill=colour)
        else:
            draw.line([x0, y0, x1, y1], fill=colour, width=int(rng.integers(1, 4)))
    return img.filter(ImageFilter.SMOOTH)


def write_degraded_pairs(out_dir: str | os.PathLike, count: int = 200, size: int = 64, jpeg_quality: int | None = 10,
                         blur_factor: int | None = 2, seed: int | None = None) -> dict[str, str]:
    """``source/%05d.png`` (degraded) and ``target/%05d.png`` (original) for an Images > Processing dataset."""
    out = Path(out_dir)
    _refuse_existing(out)
    rng = np.random.default_rng(seed)
    (out / "source").mkdir(parents=True)
    (out / "target").mkdir()
    for i in range(count):
        original = textured_image(rng, size)
        original.save(out / "target" / f"{i:05d}.png")
        degrade(original, jpeg_quality, blur_factor).save(out / "source" / f"{i:05d}.png")
    return {"source": str(out / "source"), "target": str(out / "target")}
