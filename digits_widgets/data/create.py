"""The dataset jobs: ``dw.datasets.classification / processing / segmentation / generic / gradients``.

Each call creates a job directory and returns the job at once; the work runs in a background thread
that reports progress (done / total, rate, ETA) and can be aborted. Bad input ends the job in Error
with a message naming the file or field, and whatever it had written is removed first, so no partial
database is ever mistaken for a good one. ``job.wait()`` blocks and re-raises that error. Jobs beyond the
scheduler's dataset pool (``$DIGITS_DATASET_SLOTS``, default 2) wait, Waiting, in submission order.
``generic`` ("Other": existing LMDBs, DIGITS classification DBs with their labels.txt) lives in ``other.py``.
"""
from __future__ import annotations

import random
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DatasetError, ImageError
from ..store.jobs import Job, create_job
from ..store.scheduler import DATASET, Request
from . import generators, images, sources
from .dataset import DatasetJob
from .other import generic
from .writer import Encoded, SplitWriter, encode_entry, remove_outputs, save_mean, write_split

OUTPUTS = ("train_db", "val_db", "test_db", "mean.binaryproto", "mean.png", "labels.txt")
ENCODINGS = ("none", "png", "jpg")
CHANNEL_MODES = {"none": None, "RGB": "RGB", "L": "L"}


def _start(type_: str, name: str, params: dict, work, cleanup: bool = True) -> DatasetJob:
    """Create the job and queue it in the scheduler's dataset pool (DIGITS ran a few at once)."""
    job = create_job("dataset", type_, name, params)
    on_failure = (lambda j: remove_outputs(j, OUTPUTS)) if cleanup else None
    return job.start(lambda j: work(j, **params), on_failure=on_failure, request=Request(DATASET))


def _check_choice(value: object, choices: Sequence, field: str) -> None:
    if value not in choices:
        raise DatasetError(f"{field} must be one of {', '.join(map(str, choices))} (got {value!r})", field=field)


def _size(image_size: int | Sequence[int], field: str = "image_size") -> tuple[int, int]:
    h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if h < 1 or w < 1:
        raise DatasetError(f"{field} must be positive (got {image_size!r})", field=field)
    return int(h), int(w)


# ---- classification ------------------------------------------------------------------------------
def classification(name: str, folder: str | None = None, *, train_list: str | None = None,
                   val_list: str | None = None, test_list: str | None = None,
                   labels_file: str | None = None, list_folder: str | None = None,
                   val_folder: str | None = None, test_folder: str | None = None,
                   image_size: int | tuple[int, int] = (256, 256), channels: int = 3,
                   resize_mode: str = "squash", pct_val: float = 25, pct_test: float = 0,
                   min_per_class: int = 2, max_per_class: int | None = None, encoding: str = "png",
                   shuffle: bool = True, seed: int | None = None,
                   skip_bad_images: bool = False) -> DatasetJob:
    """Images > Classification: class sub-folders (names sorted, ``_`` read as a space) or text lists.

    ``image_size`` is (height, width) or one int; DIGITS' defaults: 256x256 colour, squash, 25% val.
    """
    params = {k: v for k, v in locals().items() if k != "name"}
    return _start("classification", name, params, _run_classification)


def _run_classification(job: Job, *, folder, train_list, val_list, test_list, labels_file, list_folder,
                        val_folder, test_folder, image_size, channels, resize_mode, pct_val, pct_test,
                        min_per_class, max_per_class, encoding, shuffle, seed, skip_bad_images) -> None:
    h, w = _size(image_size)
    _check_choice(channels, (1, 3), "channels")
    _check_choice(resize_mode, ("squash", "crop", "fill", "half_crop"), "resize_mode")
    _check_choice(encoding, ENCODINGS, "encoding")
    rng = np.random.default_rng(seed)
    splits: dict[str, list[tuple[str, int]]] = {"train": [], "val": [], "test": []}
    if folder is not None:
        scan = sources.scan_class_folders(folder, min_per_class, max_per_class, field="folder")
        labels = scan.labels
        for label, n in scan.skipped:
            job.log(f"WARNING: class {label!r} skipped: {n} images, fewer than {min_per_class}", "create.log")
        extra_val = val_folder is not None
        split, dropped = sources.split_by_class(scan.items, len(labels), 0 if extra_val else pct_val,
                                                0 if test_folder is not None else pct_test, rng)
        for idx in dropped:
            job.log(f"WARNING: Not enough images for category {labels[idx]!r}: skipped", "create.log")
        labels, split = sources.drop_classes(labels, split, dropped)
        splits.update(split)
        for which, other in (("val", val_folder), ("test", test_folder)):
            if other is not None:
                splits[which] = _items_by_name(job, other, labels, field=f"{which}_folder")
    elif train_list is not None:
        def warn(message: str) -> None:
            job.log(f"WARNING: {message}", "create.log")

        splits["train"] = sources.read_image_list(train_list, list_folder, field="train_list", warn=warn)
        for which, lst in (("val", val_list), ("test", test_list)):
            if lst is not None:
                splits[which] = sources.read_image_list(lst, list_folder, field=f"{which}_list", warn=warn)
        if labels_file is not None:
            labels = sources.read_labels_file(labels_file)
        else:
            top = max(label for items in splits.values() for _, label in items)
            labels = [str(i) for i in range(top + 1)]
        for which, items in splits.items():
            bad = [(p, lab) for p, lab in items if lab >= len(labels)]
            if bad:
                raise DatasetError(f"{which} list has label {bad[0][1]} for {bad[0][0]} but the labels file "
                                   f"names only {len(labels)} classes", field="labels_file")
    else:
        raise DatasetError("Give either a folder of class sub-folders or a train_list text file", field="folder")
    if not splits["train"]:
        raise DatasetError("No training images found", field="folder" if folder else "train_list")
    if shuffle:
        for items in splits.values():
            rng.shuffle(items)  # DIGITS shuffles the lists it writes

    job.path("labels.txt").write_text("".join(f"{label}\n" for label in labels))
    mode = "RGB" if channels == 3 else "L"
    noise_rng = np.random.default_rng(rng.integers(1 << 31))

    def load(item: tuple[str, int]):
        path, label = item
        try:
            arr = images.load_image(path, mode)
        except ImageError as exc:
            if skip_bad_images:
                return None, label, str(exc)
            raise DatasetError(f"{str(exc).rstrip('.')}. Remove the file, or pass skip_bad_images=True to skip "
                               "such files.",
                               field="folder") from None
        return images.resize_image(arr, h, w, resize_mode, rng=noise_rng), label, path

    encode = partial(_encode_or_skip, job, feature_encoding=encoding, label_encoding=None, classification=True)
    info = _write_splits(job, splits, load, encode, with_labels=False, mean_split="train")
    job.update_info(task="classification", labels=labels, **info)


def _items_by_name(job: Job, folder: str, labels: list[str], field: str) -> list[tuple[str, int]]:
    """A separate val/test folder: its classes are looked up by name among the training classes."""
    scan = sources.scan_class_folders(folder, 1, None, field=field)
    index = {name: i for i, name in enumerate(labels)}
    items = []
    for path, local in scan.items:
        name = scan.labels[local]
        if name not in index:
            job.log(f"WARNING: Category {name!r} not found in the training classes. Skipping.", "create.log")
            continue
        items.append((path, index[name]))
    return items


def _encode_or_skip(job: Job, index: int, feature, label, source: str, **kw) -> Encoded | None:
    if feature is None:  # a bad image the user asked us to skip; ``source`` holds the reason
        job.log(f"WARNING: skipped {source}", "create.log")
        return None
    return encode_entry(index, feature, label, source, **kw)


def _write_splits(job: Job, splits: dict[str, list], load, encode, *, with_labels: bool,
                  mean_split: str | None, same_shape: bool = True) -> dict:
    """Write every non-empty split as <split>_db/ (classification) or <split>_db/features|labels."""
    total = sum(len(v) for v in splits.values())
    done, info_splits, feature_shape, label_shape, mean, label_max = 0, {}, None, None, None, -1
    for split, items in splits.items():
        if not items:
            continue
        base = f"{split}_db"
        fpath = f"{base}/features" if with_labels else base
        lpath = f"{base}/labels" if with_labels else None
        writer = SplitWriter(job.path(fpath), job.path(lpath) if lpath else None, same_shape=same_shape,
                             compute_mean=(split == mean_split))
        job.log(f"Writing {len(items)} {split} entries to {fpath}", "create.log")
        done = write_split(job, writer, items, load, encode, done_before=done, total=total, stage=split)
        if writer.count == 0:
            raise DatasetError(f"No {split} images could be written (all were skipped)", field="folder")
        info_splits[split] = {"features": fpath, "labels": lpath, "count": writer.count}
        if feature_shape is None and writer.feature_shape is not None:
            feature_shape = list(writer.feature_shape) + ([1] if len(writer.feature_shape) == 2 else [])
            label_shape = list(writer.label_shape) if writer.label_shape is not None else None
        if split == mean_split:
            mean = writer.mean()
        label_max = max(label_max, writer.label_max)
    info: dict = {"splits": info_splits, "feature_shape": feature_shape, "label_shape": label_shape,
                  "mean_file": None, "label_max": label_max if label_max >= 0 else None}
    if mean is not None:
        info["mean_file"] = save_mean(job, mean, f"{mean_split}_db")
    counts = ", ".join(f"{k} {v['count']}" for k, v in info_splits.items())
    job.log(f"Done: {counts}", "create.log")
    return info


# ---- processing and segmentation (feature image + label image) ----------------------------------
def processing(name: str, feature_folder: str, label_folder: str, val_percent: float = 10,
               val_feature_folder: str | None = None, val_label_folder: str | None = None,
               channel_conversion: str = "none", feature_encoding: str = "png",
               label_encoding: str = "none", force_same_shape: bool = True,
               seed: int | None = None) -> DatasetJob:
    """Images > Processing: pairs of feature and label images with the same name (up to the extension)."""
    params = {k: v for k, v in locals().items() if k != "name"}
    return _start("processing", name, params, _run_pairs)


def segmentation(name: str, feature_folder: str, label_folder: str, val_percent: float = 10,
                 val_feature_folder: str | None = None, val_label_folder: str | None = None,
                 channel_conversion: str = "none", class_labels_file: str | None = None,
                 colormap_method: str = "label", colormap_text_file: str | None = None,
                 feature_encoding: str = "png", label_encoding: str = "none",
                 force_same_shape: bool = True, seed: int | None = None) -> DatasetJob:
    """Images > Segmentation: label images hold class indices (paletted or gray, or RGB + a colour map)."""
    params = {k: v for k, v in locals().items() if k != "name"}
    return _start("segmentation", name, params, _run_pairs)


def _pair_splits(feature_folder, label_folder, val_percent, val_feature_folder, val_label_folder, seed):
    if val_feature_folder is not None or val_label_folder is not None:
        if not (val_feature_folder and val_label_folder):
            raise DatasetError("Give both val_feature_folder and val_label_folder (or neither)",
                               field="val_feature_folder" if not val_feature_folder else "val_label_folder")
        return {"train": sources.pair_folders(feature_folder, label_folder),
                "val": sources.pair_folders(val_feature_folder, val_label_folder), "test": []}
    if not 0 <= val_percent <= 100:
        raise DatasetError(f"val_percent must be between 0 and 100 (got {val_percent})", field="val_percent")
    pairs = sources.pair_folders(feature_folder, label_folder)
    train_idx, val_idx = sources.split_pairs(len(pairs), val_percent, seed)
    return {"train": [pairs[i] for i in train_idx], "val": [pairs[i] for i in val_idx], "test": []}


def _run_pairs(job: Job, *, feature_folder, label_folder, val_percent, val_feature_folder, val_label_folder,
               channel_conversion, feature_encoding, label_encoding, force_same_shape, seed,
               class_labels_file=None, colormap_method=None, colormap_text_file=None) -> None:
    segmenting = job.type == "segmentation"
    _check_choice(channel_conversion, tuple(CHANNEL_MODES), "channel_conversion")
    _check_choice(feature_encoding, ENCODINGS, "feature_encoding")
    _check_choice(label_encoding, ENCODINGS, "label_encoding")
    if seed is None:
        seed = random.randint(0, 1000)  # DIGITS stores a random split seed with the dataset
    splits = _pair_splits(feature_folder, label_folder, val_percent, val_feature_folder, val_label_folder, seed)
    mode = CHANNEL_MODES[channel_conversion]
    extra: dict = {"split_seed": seed}
    if segmenting:
        label_loader, extra_seg = _segmentation_labels(colormap_method, colormap_text_file, class_labels_file)
        extra.update(extra_seg)
    else:
        def label_loader(path: str):
            return images.load_image(path, mode)

    def load(pair: tuple[str, str]):
        fpath, lpath = pair
        return images.load_image(fpath, mode), label_loader(lpath), fpath

    encode = partial(encode_entry, feature_encoding=feature_encoding, label_encoding=label_encoding,
                     classification=False)
    info = _write_splits(job, splits, load, encode, with_labels=True,
                         mean_split="train" if force_same_shape else None, same_shape=force_same_shape)
    if segmenting and extra.get("palette") is None and "palette_box" in extra:
        extra["palette"] = extra["palette_box"][0]
    extra.pop("palette_box", None)
    if segmenting:
        names = extra.get("class_names")
        extra["nclasses"] = max(len(names or []), (info.get("label_max") or 0) + 1)
    job.update_info(task="segmentation" if segmenting else "processing", **info, **extra)


def _segmentation_labels(colormap_method: str, colormap_text_file: str | None, class_labels_file: str | None):
    """A label loader returning class-index images, and what the segmentation view needs later."""
    _check_choice(colormap_method, ("label", "textfile"), "colormap_method")
    extra: dict = {"class_names": sources.read_labels_file(class_labels_file) if class_labels_file else None}
    if colormap_method == "textfile":
        if not colormap_text_file:
            raise DatasetError("colormap_text_file is required when colormap_method='textfile'",
                               field="colormap_text_file")
        colours = _read_colormap(colormap_text_file)
        extra["palette"] = [c for rgb in colours for c in rgb] + [0] * (768 - 3 * len(colours))
        lookup = {tuple(rgb): i for i, rgb in enumerate(colours)}

        def load_rgb(path: str) -> np.ndarray:
            rgb = images.load_image(path, "RGB")
            flat = rgb.reshape(-1, 3)
            uniq, inverse = np.unique(flat, axis=0, return_inverse=True)
            idx = np.empty(len(uniq), np.uint8)
            for k, colour in enumerate(map(tuple, uniq)):
                if colour not in lookup:
                    raise DatasetError(f"Colour {colour} in {path} is not in the colour map "
                                       f"{colormap_text_file}", field="colormap_text_file")
                idx[k] = lookup[colour]
            return idx[inverse.ravel()].reshape(rgb.shape[:2])
        return load_rgb, extra

    box: list = [None]  # the first label image's palette, which all others must share
    extra["palette_box"] = box

    def load_label(path: str) -> np.ndarray:
        arr, palette = images.load_label_image(path)
        if palette is not None:
            if box[0] is None:
                box[0] = list(palette)
            elif list(palette) != box[0]:
                raise DatasetError(f"All label images must use the same palette: {path} differs from the "
                                   "first label image", field="label_folder")
        return arr
    return load_label, extra


def _read_colormap(path: str) -> list[tuple[int, int, int]]:
    try:
        lines = [ln.split() for ln in Path(path).read_text().splitlines() if ln.strip()]
    except OSError as exc:
        raise DatasetError(f"Cannot read colour map {path}: {exc.strerror}", field="colormap_text_file") from None
    try:
        colours = [(int(r), int(g), int(b)) for r, g, b in lines]
    except ValueError:
        raise DatasetError(f"Colour map {path} must have one 'R G B' line per class", field="colormap_text_file") from None
    if not colours or len(colours) > 256:
        raise DatasetError(f"Colour map {path} must name 1 to 256 classes", field="colormap_text_file")
    return colours


# ---- gradients -----------------------------------------------------------------------------------
def gradients(name: str, train_count: int = 1000, val_count: int = 250, test_count: int = 0,
              image_size: int | tuple[int, int] = (32, 32), seed: int | None = None,
              feature_encoding: str = "png") -> DatasetJob:
    """Images > Gradients: gray gradient images labelled with their two slopes (a regression dataset)."""
    params = {k: v for k, v in locals().items() if k != "name"}
    return _start("gradients", name, params, _run_gradients)


def _run_gradients(job: Job, *, train_count, val_count, test_count, image_size, seed, feature_encoding) -> None:
    h, w = _size(image_size)
    _check_choice(feature_encoding, ENCODINGS, "feature_encoding")
    for field, n, least in (("train_count", train_count, 1), ("val_count", val_count, 0),
                            ("test_count", test_count, 0)):
        if int(n) < least:
            raise DatasetError(f"{field} must be at least {least} (got {n})", field=field)
    rng = np.random.default_rng(seed)
    splits = {s: [(s, i, tuple(map(float, sl))) for i, sl in enumerate(generators.random_slopes(int(n), rng))]
              for s, n in (("train", train_count), ("val", val_count), ("test", test_count))}

    def load(item):
        split, i, (xs, ys) = item
        return (generators.gradient_image(xs, ys, h, w), np.array([xs, ys], np.float32),
                f"{split} #{i} slopes ({xs:.3f}, {ys:.3f})")

    encode = partial(encode_entry, feature_encoding=feature_encoding, label_encoding=None, classification=False)
    info = _write_splits(job, splits, load, encode, with_labels=True, mean_split="train")
    job.update_info(task="regression", **info)


def generate_triangles(out_dir: str, count: int = 10000, size: int = 32, grid: int = 10,
                       seed: int | None = None) -> dict[str, str]:
    """The binary segmentation tutorial's images (see ``generators.generate_triangles``)."""
    return generators.generate_triangles(out_dir, count=count, size=size, grid=grid, seed=seed)


__all__ = ["classification", "processing", "segmentation", "gradients", "generic", "generate_triangles"]
