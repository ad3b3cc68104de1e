"""Finding the images of a dataset: class folders, DIGITS text lists, feature/label folder pairs, and the splits.

Semantics follow DIGITS (tools/parse_folder.py, the Images > Processing extension) so the same folders give the
same classes and split sizes; the differences are noted where they are made.
"""
from __future__ import annotations

import math
import numbers
import os
import re
import warnings
from dataclasses import dataclass, field as dataclass_field
from typing import Callable, Iterable, Iterator

import numpy as np

from ..errors import DatasetError
from .images import is_image_file

_LIST_LINE = re.compile(r'(.+)\s+(\d+)\s*$')
_SHOWN = 5  # how many offending paths an error message names


def _resolve(path: str | os.PathLike) -> str:
    """Absolute path; relative ones are taken from the cwd (a notebook's folder), '~' is expanded."""
    return os.path.abspath(os.path.expanduser(os.fspath(path)))


def _is_whole(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _relative(path: str, root: str) -> str:
    """``os.path.relpath`` for a path found under ``root``, without its cost (it runs per image)."""
    prefix = root if root.endswith(os.sep) else root + os.sep
    return path[len(prefix):] if path.startswith(prefix) else os.path.relpath(path, root)


def list_images(folder: str | os.PathLike, field: str = 'folder') -> list[str]:
    """Supported images under ``folder``, recursively (symlinks followed, each real folder once), as absolute
    paths sorted by relative path. Hidden files and folders (.ipynb_checkpoints, macOS ._ files) are skipped."""
    root = _resolve(folder)
    if not os.path.isdir(root):
        raise DatasetError(f'Folder does not exist: {root}', field=field)
    found: list[tuple[str, str]] = []
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:  # a symlink loop or a second link to the same folder
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames[:] = [d for d in dirnames if not d.startswith('.')]
        for name in filenames:
            if not name.startswith('.') and is_image_file(name):
                full = os.path.join(dirpath, name)
                found.append((_relative(full, root), full))
    return [full for _, full in sorted(found)]


@dataclass
class ClassFolders:
    """What scan_class_folders found: class names, (image path, label index) items, and skipped classes."""
    labels: list[str] = dataclass_field(default_factory=list)
    items: list[tuple[str, int]] = dataclass_field(default_factory=list)
    skipped: list[tuple[str, int]] = dataclass_field(default_factory=list)


def _check_folder(folder: str | os.PathLike, field: str) -> str:
    path = _resolve(folder)
    if not os.path.exists(path):
        raise DatasetError(f'Folder does not exist: {path}', field=field)
    if not os.path.isdir(path):
        raise DatasetError(f'Not a folder: {path}. Give the folder that holds one sub-folder per class.',
                           field=field)
    if not os.access(path, os.R_OK | os.X_OK):
        raise DatasetError(f'You do not have read access to folder: {path}', field=field)
    return path


def scan_class_folders(folder: str | os.PathLike, min_per_class: int = 2, max_per_class: int | None = None,
                       field: str = 'folder') -> ClassFolders:
    """Sub-folders (sorted) are the classes, '_' in names read as spaces; images are found recursively.

    Classes with fewer than ``min_per_class`` images are skipped; ``max_per_class`` keeps the first N in
    sorted order (shuffle later). Hidden sub-folders are not classes. Errors carry field=``field`` or
    ``<field>_min_per_class`` / ``<field>_max_per_class``.
    """
    if not _is_whole(min_per_class) or min_per_class < 1:
        raise DatasetError(f'Minimum samples per class must be at least 1, got {min_per_class!r}.',
                           field=f'{field}_min_per_class')
    if max_per_class is not None and (not _is_whole(max_per_class) or max_per_class < min_per_class):
        raise DatasetError(f'Maximum samples per class ({max_per_class!r}) must be a whole number at least '
                           f'the minimum ({min_per_class}).', field=f'{field}_max_per_class')
    root = _check_folder(folder, field)
    subdirs = sorted(name for name in os.listdir(root)
                     if not name.startswith('.') and os.path.isdir(os.path.join(root, name)))
    if len(subdirs) < 2:
        raise DatasetError(f'Folder must contain at least two subdirectories (one per class): {root} '
                           f'has {len(subdirs)}.', field=field)
    result = ClassFolders()
    for name in subdirs:
        label = name.replace('_', ' ')
        images = list_images(os.path.join(root, name), field=field)
        if max_per_class is not None:
            images = images[:max_per_class]
        if len(images) < min_per_class:
            result.skipped.append((label, len(images)))
            continue
        result.items.extend((path, len(result.labels)) for path in images)
        result.labels.append(label)
    if len(result.labels) < 2:
        skipped = ', '.join(f'"{label}" ({count})' for label, count in result.skipped)
        raise DatasetError(f'Did not find two valid categories in {root}: {len(result.labels)} class(es) kept, '
                           f'skipped {skipped} (need at least {min_per_class} images per class).', field=field)
    return result


def _read_lines(path: str, field: str, what: str) -> list[str]:
    if not os.path.isfile(path):
        raise DatasetError(f'{what} does not exist: {path}', field=field)
    try:
        with open(path, encoding='utf-8-sig') as fh:
            return fh.read().splitlines()
    except UnicodeDecodeError as exc:
        raise DatasetError(f'{what} is not UTF-8 text: {path} ({exc}). Save it as UTF-8.', field=field) from exc
    except OSError as exc:
        raise DatasetError(f'Cannot read {what.lower()} {path}: {exc}', field=field) from exc


@dataclass(frozen=True)
class ListLine:
    """One line of a DIGITS list file that is not blank or a comment. ``image`` (as written, ``~`` expanded)
    and ``label`` are None when the line has no whole-number label >= 0: DIGITS skips such a line."""
    number: int           # 1-based line number
    text: str             # the line, stripped
    image: str | None
    label: int | None


def list_lines(lines: Iterable[str]) -> Iterator[ListLine]:
    """The lines of a DIGITS list file, '<image path> <integer label>', as :class:`ListLine`: the one reading
    of the format, for the dataset job and for the form's check as the user types."""
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith('#'):
            continue
        match = _LIST_LINE.match(line)
        if match is None:
            yield ListLine(number, line, None, None)
        else:
            yield ListLine(number, line, os.path.expanduser(match.group(1).strip()), int(match.group(2)))


def read_image_list(path: str | os.PathLike, folder: str | os.PathLike | None = None,
                    field: str = 'train_list', warn: Callable[[str], None] | None = None) -> list[tuple[str, int]]:
    """Read a DIGITS list file: '<image path> <integer label>' per line, '#' comments and blank lines ignored.

    As in DIGITS, a line without a label, or whose label is not a non-negative whole number, is skipped: one
    warning counts them and names the first few (``warn(message)`` when given, e.g. the job's create.log,
    else :func:`warnings.warn`); the file is refused only when no valid line remains. Relative image paths
    are joined to ``folder`` when given, else to the list file's folder. Every missing image is counted and
    the first five are named in one error.
    """
    list_path = _resolve(path)
    lines = _read_lines(list_path, field, 'Image list file')
    base = _resolve(folder) if folder is not None else os.path.dirname(list_path)
    if folder is not None and not os.path.isdir(base):
        raise DatasetError(f'Images folder for {list_path} does not exist: {base}', field=field)
    items: list[tuple[str, int]] = []
    bad: list[str] = []
    for entry in list_lines(lines):
        if entry.image is None:
            bad.append(f'line {entry.number}: {entry.text!r}')
        else:
            items.append((os.path.normpath(os.path.join(base, entry.image)), entry.label))
    shown_bad = '; '.join(bad[:_SHOWN]) + (f' (and {len(bad) - _SHOWN} more)' if len(bad) > _SHOWN else '')
    if not items:
        why = (f' {len(bad)} line(s) had no valid label: {shown_bad}.' if bad else '')
        raise DatasetError(f'No images listed in {list_path}: each line should be "<image path> <label>", the '
                           f'label a whole number >= 0.{why}', field=field)
    if bad:
        message = (f'{list_path}: skipped {len(bad)} line(s) without a label or with a label that is not a '
                   f'whole number >= 0 (kept {len(items)}): {shown_bad}')
        if warn is not None:
            warn(message)
        else:
            warnings.warn(message, stacklevel=2)
    missing = [p for p, _ in items if not os.path.isfile(p)]
    if missing:
        shown = '; '.join(missing[:_SHOWN])
        more = f' (and {len(missing) - _SHOWN} more)' if len(missing) > _SHOWN else ''
        raise DatasetError(f'{len(missing)} image(s) listed in {list_path} do not exist: {shown}{more}. '
                           f'Fix the paths or give the folder they are relative to.', field=field)
    return items


def read_labels_file(path: str | os.PathLike) -> list[str]:
    """Line i (blank lines skipped, whitespace stripped) is the name of label i."""
    labels_path = _resolve(path)
    labels = [line.strip() for line in _read_lines(labels_path, 'labels_file', 'Labels file') if line.strip()]
    if not labels:
        raise DatasetError(f'Labels file is empty: {labels_path}. Write one class name per line.',
                           field='labels_file')
    return labels


def _round(x: float) -> int:
    """Python 2's round (half away from zero), which DIGITS' split arithmetic used."""
    return int(math.floor(x + 0.5))


def _check_pcts(pct_val: float, pct_test: float, val_field: str, test_field: str) -> None:
    for name, value in ((val_field, pct_val), (test_field, pct_test)):
        if not _is_real(value) or not 0 <= value <= 100:
            raise DatasetError(f'Percentage must be between 0 and 100, got {value!r}.', field=name)
    if pct_val + pct_test > 100:
        raise DatasetError(f'Validation ({pct_val}%) plus test ({pct_test}%) exceeds 100%.', field=test_field)


def three_way_split_indices(size: int, pct_val: float, pct_test: float) -> tuple[int, int]:
    """DIGITS' split of ``size`` shuffled items: returns (val_start, test_start), so train = [:val_start],
    val = [val_start:test_start], test = [test_start:].

    Sizes are rounded (half up); every split asked for (train = 100 - val - test > 0) gets at least one item
    whenever size >= the number of splits asked for.
    """
    _check_pcts(pct_val, pct_test, 'folder_pct_val', 'folder_pct_test')
    if not _is_whole(size) or size < 0:
        raise DatasetError(f'Split size must be a non-negative whole number, got {size!r}.')
    pct_train = 100 - (pct_val + pct_test)
    if size == 0 or pct_train >= 100:
        return size, size
    if pct_val >= 100:
        return 0, size
    if pct_test >= 100:
        return 0, 0
    a = _round(size * pct_train / 100)
    if pct_train and not a:
        a = 1
    b = _round(size * pct_val / 100)
    if a + b > size:
        b = size - a
    if pct_val and not b:
        if a > 1:
            a, b = a - 1, 1
        elif a != size:
            b = 1
    c = size - (a + b)
    if not pct_test and c:  # float rounding must never leave a stray test image nobody asked for
        b, c = b + c, 0
    if pct_test and not c:
        if b > 1:
            b, c = b - 1, 1
        elif a > 1:
            a, c = a - 1, 1
    return a, a + b


def split_by_class(items: list[tuple[str, int]], n_classes: int, pct_val: float, pct_test: float,
                   rng: np.random.Generator) -> tuple[dict[str, list[tuple[str, int]]], list[int]]:
    """Shuffle each class with ``rng`` and split it with three_way_split_indices, class by class.

    Returns ({'train', 'val', 'test'} -> items, dropped class indices). A class with fewer images than splits
    asked for is dropped ("Not enough images for this category"); labels keep their original indices: use
    drop_classes() to renumber them as DIGITS did.
    """
    _check_pcts(pct_val, pct_test, 'folder_pct_val', 'folder_pct_test')
    per_class: list[list[tuple[str, int]]] = [[] for _ in range(n_classes)]
    for path, label in items:
        if not 0 <= label < n_classes:
            raise DatasetError(f'Label {label} of {path} is outside 0..{n_classes - 1}.')
        per_class[label].append((path, label))
    required = sum(1 for pct in (100 - pct_val - pct_test, pct_val, pct_test) if pct > 0)
    splits: dict[str, list[tuple[str, int]]] = {'train': [], 'val': [], 'test': []}
    dropped: list[int] = []
    for label, members in enumerate(per_class):
        if not members or len(members) < required:
            dropped.append(label)
            continue
        shuffled = [members[i] for i in rng.permutation(len(members))]
        a, b = three_way_split_indices(len(shuffled), pct_val, pct_test)
        splits['train'].extend(shuffled[:a])
        splits['val'].extend(shuffled[a:b])
        splits['test'].extend(shuffled[b:])
    return splits, dropped


def drop_classes(labels: list[str], splits: dict[str, list[tuple[str, int]]], dropped: list[int]
                 ) -> tuple[list[str], dict[str, list[tuple[str, int]]]]:
    """Remove ``dropped`` classes from ``labels`` and renumber the split items so indices stay contiguous."""
    gone = set(dropped)
    new_index: dict[int, int] = {}
    kept: list[str] = []
    for old, name in enumerate(labels):
        if old not in gone:
            new_index[old] = len(kept)
            kept.append(name)
    renumbered = {stage: [(path, new_index[label]) for path, label in members if label in new_index]
                  for stage, members in splits.items()}
    return kept, renumbered


def _stem_key(path: str, root: str) -> tuple[str, str]:
    stem, ext = os.path.splitext(_relative(path, root))
    return stem, ext


def _folder_images(folder: str | os.PathLike, field: str) -> tuple[str, list[str]]:
    root = _resolve(folder)
    if not os.path.isdir(root) or not os.access(root, os.R_OK | os.X_OK):
        raise DatasetError(f'Folder does not exist or is not reachable: {root}', field=field)
    images = list_images(root, field=field)
    if not images:
        raise DatasetError(f'Unable to find supported images in {root}', field=field)
    return root, sorted(images, key=lambda p: _stem_key(p, root))


def pair_folders(feature_folder: str | os.PathLike, label_folder: str | os.PathLike) -> list[tuple[str, str]]:
    """Pair every feature image with the label image at the same relative path, extension aside
    (a.png pairs with a.jpg). Both lists are sorted by that stem, so the pairs come back in that order."""
    feature_root, features = _folder_images(feature_folder, 'feature_folder')
    label_root, labels = _folder_images(label_folder, 'label_folder')
    if len(features) != len(labels):
        raise DatasetError(f'Expect same number of images in feature and label folders '
                           f'({len(features)}!={len(labels)}): {feature_root} and {label_root}',
                           field='label_folder')
    pairs: list[tuple[str, str]] = []
    for feature, label in zip(features, labels):
        feature_stem = _stem_key(feature, feature_root)[0]
        label_stem = _stem_key(label, label_root)[0]
        if feature_stem != label_stem:
            raise DatasetError(f'No corresponding feature/label pair found for ({feature_stem},{label_stem}): '
                               f'each image in {feature_root} needs one with the same name (any extension) '
                               f'in {label_root}', field='label_folder')
        pairs.append((feature, label))
    return pairs


def split_pairs(n: int, pct_val: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images > Processing split: indices shuffled once with ``seed``; the first floor(n*pct_val/100) are
    validation, the rest training. Returns (train_indices, val_indices)."""
    if not _is_real(pct_val) or not 0 <= pct_val <= 100:
        raise DatasetError(f'Percentage must be between 0 and 100, got {pct_val!r}.', field='folder_pct_val')
    if not _is_whole(n) or n < 0:
        raise DatasetError(f'Number of pairs must be a non-negative whole number, got {n!r}.')
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(math.floor(n * pct_val / 100))
    return order[n_val:], order[:n_val]
