"""What a check says (a :class:`Verdict` at a level) and the checks for the paths DIGITS users type.

The paths are image folders, class folders, text lists, LMDBs, mean files and colour maps; the checks are
shared by the dataset form, the inference panel and any other form that asks for such paths. They are plain
functions of a path, apart from :mod:`.fields` (the widgets that run them as the user types) because they
draw nothing: a check reads the disk and returns a verdict. Scans are capped (``SCAN_CAP`` files) so a huge
folder costs a fraction of a second, and say "100000+" rather than pretending to know.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..data.images import is_image_file
from ..data.sources import list_lines
from ..store.lmdb_db import open_db, read_mean
from .images import shape_text

OK, WARNING, ERROR = "ok", "warning", "error"
SCAN_CAP = 100_000


@dataclass(frozen=True)
class Verdict:
    """What a check found: a level, a sentence for the person, and data other checks may compare against."""
    level: str
    text: str
    data: Any = None


# ---- cheap scans for checks ---------------------------------------------------------------------------
def resolve(path: str) -> str:
    """Relative paths are read from the kernel's working directory (the notebook's folder), '~' expanded."""
    return os.path.abspath(os.path.expanduser(path))


def count_text(n: int, capped: bool, noun: str, plural: str | None = None) -> str:
    """"1 image", "24 images", "100000+ images": a capped count says so."""
    word = noun if n == 1 and not capped else (plural or noun + "s")
    return f"{n}{'+' if capped else ''} {word}"


def folder_problem(path: str, missing: str = "Folder does not exist") -> str | None:
    """DIGITS' messages for a folder that cannot be used, or None."""
    full = resolve(path)
    if not os.path.exists(full):
        return f"{missing}: {full}"
    if not os.path.isdir(full):
        return f"Not a folder: {full}"
    if not os.access(full, os.R_OK | os.X_OK):
        return f"You do not have read access to folder: {full}"
    return None


def count_images(folder: str, cap: int = SCAN_CAP) -> tuple[int, bool]:
    """Supported images under ``folder`` (recursive, symlinks followed once, hidden entries skipped),
    stopping at ``cap``; returns (count, stopped_at_cap)."""
    n, stack, seen = 0, [resolve(folder)], set()
    while stack:
        top = stack.pop()
        try:
            st = os.stat(top)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            entries = list(os.scandir(top))
        except OSError:
            continue
        for e in entries:
            if e.name.startswith("."):
                continue
            try:
                is_dir = e.is_dir()
            except OSError:
                continue
            if is_dir:
                stack.append(e.path)
            elif is_image_file(e.name):
                n += 1
                if n >= cap:
                    return n, True
    return n, False


def images_check(path: str) -> Verdict:
    """A folder full of images: "24 images", with data (count, capped)."""
    problem = folder_problem(path, "Folder does not exist or is not reachable")
    if problem:
        return Verdict(ERROR, problem)
    n, capped = count_images(path)
    if n == 0:
        return Verdict(ERROR, f"Unable to find supported images in {resolve(path)}")
    return Verdict(OK, count_text(n, capped, "image"), (n, capped))


def lmdb_check(path: str) -> Verdict:
    """An existing LMDB: "816 entries, shape 256x256x3 (WxHxC)", with data (entries, shape)."""
    full = resolve(path)
    if not os.path.isdir(full):
        return Verdict(ERROR, "Folder does not exist" if not os.path.exists(full) else f"Not a folder: {full}")
    db = open_db(full)
    try:
        n = len(db)
        if n == 0:
            return Verdict(ERROR, f"{full} is an empty LMDB")
        shape = tuple(db.shape)
    finally:
        db.close()
    layout = " (WxHxC)" if len(shape) > 1 else ""
    return Verdict(OK, f"{count_text(n, False, 'entry', 'entries')}, shape {shape_text(shape)}{layout}", (n, shape))


def mean_check(path: str) -> Verdict:
    """A readable mean.binaryproto: "mean image 256x256x3 (WxHxC)", with data (H, W, C)."""
    full = resolve(path)
    if not os.path.isfile(full):
        return Verdict(ERROR, "File does not exist")
    mean = read_mean(full)
    return Verdict(OK, f"mean image {shape_text(mean.shape)} (WxHxC)", tuple(mean.shape))


def file_check(path: str) -> Verdict | None:
    """DIGITS' "File does not exist" for a path that is not a readable file, else None."""
    full = resolve(path)
    if not os.path.isfile(full):
        return Verdict(ERROR, f"File does not exist: {full}")
    if not os.access(full, os.R_OK):
        return Verdict(ERROR, f"You do not have read access to file: {full}")
    return None


def class_folder_check(path: str, min_per_class: int = 1, max_per_class: int | None = None,
                       train_classes: list[str] | None = None) -> Verdict:
    """Sub-folders are classes: "3 classes, 24 images" (data: kept class names), DIGITS' errors otherwise."""
    problem = folder_problem(path)
    if problem:
        return Verdict(ERROR, problem)
    root = resolve(path)
    subdirs = sorted(e.name for e in os.scandir(root) if not e.name.startswith(".") and e.is_dir())
    if len(subdirs) < 2:
        return Verdict(ERROR, f"Folder must contain at least two subdirectories (one per class): {root} has "
                              f"{len(subdirs)}")
    counts: dict[str, int] = {}
    budget = SCAN_CAP
    for name in subdirs:
        n, hit = count_images(os.path.join(root, name), cap=budget)
        counts[name.replace("_", " ")] = n  # DIGITS reads '_' in folder names as a space
        budget -= n
        if hit or budget <= 0:
            return Verdict(OK, f"{len(subdirs)} class folders, {SCAN_CAP}+ images")
    lo = max(1, min_per_class or 1)
    kept = {k: (min(n, max_per_class) if max_per_class else n) for k, n in counts.items() if n >= lo}
    if len(kept) < 2:
        return Verdict(ERROR, f"Did not find two valid categories in {root}: {len(kept)} class(es) have at "
                              f"least {lo} image(s)")
    notes, level = [], OK
    skipped = [k for k in counts if k not in kept]
    if skipped:
        level = WARNING
        notes.append(f"skipping {len(skipped)} with fewer than {lo} images: {', '.join(skipped[:3])}"
                     + (" ..." if len(skipped) > 3 else ""))
    if train_classes is not None:
        unknown = [k for k in kept if k not in train_classes]
        if unknown:
            level = WARNING
            notes.append(f"not among the training classes (skipped): {', '.join(unknown[:3])}")
    text = f"{len(kept)} classes, {count_text(sum(kept.values()), False, 'image')}"
    return Verdict(level, text + (f"; {'; '.join(notes)}" if notes else ""), list(kept))


def list_file_check(path: str, folder: str | None) -> Verdict:
    """A DIGITS text list: counts lines, checks their format and that the first few images exist."""
    bad = file_check(path)
    if bad:
        return bad
    full = resolve(path)
    base = resolve(folder) if folder else os.path.dirname(full)
    n, top, capped, missing = 0, -1, False, None
    skipped: list[str] = []   # DIGITS skips lines without a valid label (the dataset job warns and counts them)
    with open(full, encoding="utf-8-sig", errors="replace") as fh:
        for entry in list_lines(fh):
            if entry.image is None:
                skipped.append(f"line {entry.number}: {entry.text[:60]!r}")
                continue
            n, top = n + 1, max(top, entry.label)
            image = os.path.join(base, entry.image)
            if n <= 5 and missing is None and not os.path.isfile(image):
                missing = image
            if n >= SCAN_CAP:
                capped = True
                break
    if n == 0:
        why = f" ({skipped[0]} has no whole-number label >= 0)" if skipped else ""
        return Verdict(ERROR, f'No images listed: each line should be "<image path> <label>"{why}')
    if missing:
        return Verdict(ERROR, f"Image not found: {missing} (relative paths are read from {base})")
    text = f"{count_text(n, capped, 'image')} listed, labels 0..{top}"
    if skipped:
        return Verdict(WARNING, f"{text}; {len(skipped)} line(s) without a valid label will be skipped, "
                                f"first {skipped[0]}", top)
    return Verdict(OK, text, top)


def colormap_check(path: str) -> Verdict:
    """One 'R G B' line per class."""
    bad = file_check(path)
    if bad:
        return bad
    with open(resolve(path), errors="replace") as fh:
        rows = [ln.split() for ln in fh.read(1 << 20).splitlines() if ln.strip()]
    if not rows or len(rows) > 256 or any(len(r) != 3 or not all(v.isdigit() and int(v) < 256 for v in r)
                                          for r in rows):
        return Verdict(ERROR, "Expected 1 to 256 lines of three integers 0..255 ('R G B' per class)")
    return Verdict(OK, count_text(len(rows), False, "colour"))

