"""The fields of each tab of the dataset form: DIGITS' labels, defaults, help texts and cross-field checks.

One builder per dataset kind (Images > Classification, Processing and Segmentation, Other, Gradients) returns
its fields by key; a builder's checks compare a field with its neighbours (validation plus test percentages,
a label folder's count against its feature folder, a mean image against the training LMDB). They are apart
from :mod:`.dataset_form`, which lays the tabs out, hides what does not apply, and turns the values into the
``dw.datasets`` call, because what each tab asks is DIGITS' page, and the form's wiring is the same for all.
"""
from __future__ import annotations

from typing import Callable

from ..data import classdb
from ..data.sources import read_labels_file
from ..store.lmdb_db import open_db
from .checks import (ERROR, OK, Verdict, class_folder_check, colormap_check, count_text, images_check,
                     list_file_check, lmdb_check, mean_check, resolve)
from .fields import Field, NumberField, bool_field, choice_field, path_field

ENCODINGS = [("None", "none"), ("PNG (lossless)", "png"), ("JPEG (lossy, 90% quality)", "jpg")]
YES_NO = [("Yes", True), ("No", False)]

# DIGITS' tooltips, verbatim where DIGITS had one.
ENCODING_HELP = ("Using either of these compression formats can save disk space, but can also require "
                 "marginally more time for training.")
PCT_HELP = "You can choose to set apart a certain percentage of images from the training images for the {} set."
MIN_HELP = ("You can choose to specify a minimum number of samples per class. If a class has fewer samples than "
            "the specified amount it will be ignored. Leave blank to ignore this feature.")
MAX_HELP = ("You can choose to specify a maximum number of samples per class. If a class has more samples than "
            "the specified amount extra samples will be ignored. Leave blank to ignore this feature.")
LABELS_HELP = ("The 'i'th line of the file should give the string label associated with the '(i-1)'th numeric "
               "label. (E.g. the string label for the numeric label 0 is supposed to be on line 1.)")
FEATURE_HELP = "Indicate a folder full of images."
LABEL_FOLDER_HELP = ("Indicate a folder full of images. For each image in the feature image folder there must be "
                     "one corresponding image in the label image folder. The label image must have the same "
                     "filename except for the extension, which may differ.")
SEG_LABEL_HELP = LABEL_FOLDER_HELP + (" Label images are expected to be single-channel images (paletted or "
                                      "grayscale), or RGB images, in which case the color/class mappings need "
                                      "to be specified through a separate text file.")
CHECK_SHAPE_HELP = "Check that each entry in the database has the same shape (can be time-consuming)"
SAME_SHAPE_HELP = CHECK_SHAPE_HELP + ". Disabling this will also disable mean image computation."
OTHER_LABELS_HELP = ("Optional: for a DIGITS classification DB (the class in each Datum, keys %08d_<label>), its "
                     "labels.txt. " + LABELS_HELP + " Given, the dataset trains classifiers (and a mean.binaryproto "
                     "beside the DB is used when Mean Image is blank); left blank, the images are unlabelled, "
                     "e.g. for an autoencoder.")
LIST_HELP = ("A text file with one '<image path> <integer label>' per line; relative paths are read from the "
             "images folder below, else from the list file's folder.")


def classification_fields() -> dict[str, Field]:
    """Images > Classification: class folders or text lists (``method``), resize and encoding."""
    f: dict[str, Field] = {}

    def classes(path: str, min_key: str, max_key: str | None, train: bool) -> Verdict:
        lo = f[min_key].value if min_key in f and isinstance(f[min_key].value, int) else 1
        hi = f[max_key].value if max_key and isinstance(f[max_key].value, int) else None
        known = None if train or f["folder"].data is None else f["folder"].data
        return class_folder_check(path, lo, hi, known)

    def pct_test(v: float) -> Verdict | None:
        pv = f["pct_val"].value
        if isinstance(pv, int) and pv + v > 100:
            return Verdict(ERROR, f"Validation ({pv}%) plus test ({v}%) exceeds 100%.")
        return None

    def max_check(v: int) -> Verdict | None:
        lo = f["min_per_class"].value
        return (Verdict(ERROR, f"Field must be greater than Minimum samples per class ({lo}).")
                if isinstance(lo, int) and v < lo else None)

    def labels_check(path: str) -> Verdict:
        labels = read_labels_file(resolve(path))
        top = f["train_list"].data
        if isinstance(top, int) and top >= len(labels):
            return Verdict(ERROR, f"The training list uses label {top} but this file names only "
                                  f"{len(labels)} classes")
        return Verdict(OK, f"{count_text(len(labels), False, 'class', 'classes')}: "
                           f"{', '.join(labels[:5])}{' ...' if len(labels) > 5 else ''}", labels)

    def listed(path: str) -> Verdict:
        return list_file_check(path, f["list_folder"].value)

    f["method"] = choice_field("Dataset type", [("Folder", "folder"), ("Textfiles", "textfile")], "folder")
    f["folder"] = path_field("Training Images", required=True,
                             check=lambda p: classes(p, "min_per_class", "max_per_class", True),
                             help="Indicate a folder which holds subfolders full of images. Each subfolder "
                                  "should be named according to the desired label for the images that it "
                                  "holds.")
    f["pct_val"] = NumberField("% for validation", 25, min=0, max=100, help=PCT_HELP.format("validation"))
    f["pct_test"] = NumberField("% for testing", 0, min=0, max=100, help=PCT_HELP.format("test"),
                                check=pct_test)
    f["min_per_class"] = NumberField("Minimum samples per class", 2, min=1, required=False, help=MIN_HELP)
    f["max_per_class"] = NumberField("Maximum samples per class", None, min=1, required=False, help=MAX_HELP,
                                     check=max_check)
    f["has_val_folder"] = bool_field("Separate validation images folder")
    f["val_folder"] = path_field("Validation Images", required=True,
                                 check=lambda p: classes(p, "", None, False))
    f["has_test_folder"] = bool_field("Separate test images folder")
    f["test_folder"] = path_field("Test Images", required=True, check=lambda p: classes(p, "", None, False))
    f["train_list"] = path_field("Training images", required=True, check=listed, help=LIST_HELP,
                                 placeholder="/path/to/train.txt")
    f["list_folder"] = path_field("Training images folder", check=images_check,
                                  help="Optional: the folder that relative image paths in the lists start from.")
    f["use_val"] = bool_field("Validation set", True)
    f["val_list"] = path_field("Validation images", required=True, check=listed, help=LIST_HELP,
                               placeholder="/path/to/val.txt")
    f["use_test"] = bool_field("Test set", False)
    f["test_list"] = path_field("Test images", required=True, check=listed, help=LIST_HELP,
                                placeholder="/path/to/test.txt")
    f["labels_file"] = path_field("Labels", required=True, check=labels_check, help=LABELS_HELP,
                                  placeholder="/path/to/labels.txt")
    f["shuffle"] = choice_field("Shuffle lines", YES_NO, True,
                                help="Shuffle the list[s] of images before creating the database.")
    f["channels"] = choice_field("Image Type", [("Grayscale", 1), ("Color", 3)], 3,
                                 help="Color is 3-channel RGB. Grayscale is single channel monochrome.")
    f["width"] = NumberField("Resize Width", 256, min=1)
    f["height"] = NumberField("Resize Height", 256, min=1)
    f["resize_mode"] = choice_field(
        "Resize Transformation", [("Squash", "squash"), ("Crop", "crop"), ("Fill", "fill"),
                                  ("Half crop, half fill", "half_crop")], "squash",
        help="Options for dealing with aspect ratio changes during resize.")
    f["encoding"] = choice_field("Image Encoding", ENCODINGS, "png", help=ENCODING_HELP)
    return f


def pair_fields(segmentation: bool) -> dict[str, Field]:
    """Processing, or Segmentation (``segmentation``: plus class labels and a colour map): feature/label folders."""
    f: dict[str, Field] = {}

    def paired(feature_key: str) -> Callable[[str], Verdict]:
        def check(path: str) -> Verdict:
            mine, theirs = images_check(path), f[feature_key].data
            if mine.level != ERROR and theirs and not (mine.data[1] or theirs[1]) \
                    and mine.data[0] != theirs[0]:
                return Verdict(ERROR, f"Expect same number of images in feature and label folders "
                                      f"({theirs[0]}!={mine.data[0]}): the counts do not match")
            return mine
        return check

    label_help = SEG_LABEL_HELP if segmentation else LABEL_FOLDER_HELP
    f["feature_folder"] = path_field("Feature image folder", required=True, check=images_check,
                                     help=FEATURE_HELP)
    f["label_folder"] = path_field("Label image folder", required=True, check=paired("feature_folder"),
                                   help=label_help)
    f["val_percent"] = NumberField("% for validation", 10, min=0, max=100, help=PCT_HELP.format("validation"))
    f["has_val_folder"] = bool_field("Separate validation images")
    f["val_feature_folder"] = path_field("Validation feature image folder", required=True,
                                         check=images_check, help=FEATURE_HELP)
    f["val_label_folder"] = path_field("Validation label image folder", required=True,
                                       check=paired("val_feature_folder"), help=label_help)
    f["channel_conversion"] = choice_field(
        "Channel conversion", [("RGB", "RGB"), ("Grayscale", "L"), ("None", "none")], "none",
        help="Perform selected channel conversion on feature images. Label images are single channel and "
             "not affected by this parameter." if segmentation else "Perform selected channel conversion.")
    if segmentation:
        f["class_labels_file"] = path_field(
            "Class labels (optional)", help=LABELS_HELP, placeholder="/path/to/labels.txt",
            check=lambda p: Verdict(OK, count_text(len(read_labels_file(resolve(p))), False, "class",
                                                   "classes")))
        f["colormap_method"] = choice_field(
            "Color map specification", [("From label image", "label"), ("From text file", "textfile")],
            "label", help="Specify how to map class IDs to colors. Select 'From label image' to use palette "
                          "or grayscale from label images. For RGB image labels, select 'From text file' "
                          "and provide color map in separate text file.")
        f["colormap_text_file"] = path_field(
            "Color map file", required=True, check=colormap_check, placeholder="/path/to/colormap.txt",
            help="Specify color/class mappings through a text file. Each line in the file should contain "
                 "three space-separated integer values, one for each of the Red, Green, Blue channels. The "
                 "'i'th line of the file should give the color associated with the '(i-1)'th class.")
    f["feature_encoding"] = choice_field("Feature Encoding", ENCODINGS, "png", help=ENCODING_HELP)
    f["label_encoding"] = choice_field("Label Encoding", ENCODINGS, "none", help=ENCODING_HELP)
    f["force_same_shape"] = choice_field("Enforce same shape", YES_NO, True, help=SAME_SHAPE_HELP)
    return f


def other_fields() -> dict[str, Field]:
    """Other: existing LMDBs of images and of labels, registered where they are."""
    f: dict[str, Field] = {}

    def labels_of(feature_key: str) -> Callable[[str], Verdict]:
        def check(path: str) -> Verdict:
            if feature_key == "val_features" and f["val_features"].blank:
                return Verdict(ERROR, "Validation Labels given without Validation Images")
            mine, theirs = lmdb_check(path), f[feature_key].data
            if mine.level != ERROR and theirs and mine.data[0] != theirs[0]:
                return Verdict(ERROR, f"{mine.data[0]} labels but {theirs[0]} images: each image needs a label")
            return mine
        return check

    def mean_of(path: str) -> Verdict:
        mine, theirs = mean_check(path), f["train_features"].data
        if mine.level != ERROR and theirs:
            hwc = tuple(theirs[1]) if len(theirs[1]) == 3 else (*theirs[1], 1)
            if tuple(mine.data) != hwc:
                return Verdict(ERROR, f"{mine.text}, but the training images are "
                                      f"{hwc[1]}x{hwc[0]}x{hwc[2]}")
        return mine

    def classes_of(path: str) -> Verdict:
        """Training Images, plus what its Datums say: a DIGITS classification DB wants its labels.txt."""
        mine = lmdb_check(path)
        if mine.level == ERROR:
            return mine
        db = open_db(resolve(path))
        try:
            hint = classdb.describe(db)
        finally:
            db.close()
        return Verdict(mine.level, f"{mine.text}; {hint}", mine.data) if hint else mine

    def labels_file_check(path: str) -> Verdict:
        if not (f["train_labels"].blank and f["val_labels"].blank):
            return Verdict(ERROR, "A labels file is for a classification DB, whose labels are in its Datums; "
                                  "clear the Labels LMDB fields, or this one")
        names = read_labels_file(resolve(path))
        if f["train_features"].data:
            db = open_db(resolve(f["train_features"].value))
            try:
                top = max(db.label(i) for i in range(min(classdb.SAMPLE, len(db))))
            finally:
                db.close()
            if top >= len(names):
                return Verdict(ERROR, f"The training DB has label {top} but this file names only "
                                      f"{len(names)} classes")
        return Verdict(OK, f"{count_text(len(names), False, 'class', 'classes')}: "
                           f"{', '.join(names[:5])}{' ...' if len(names) > 5 else ''}", names)

    lmdb = "/path/to/train_db"
    f["train_features"] = path_field("Training Images", required=True, check=classes_of, placeholder=lmdb,
                                     help="An LMDB of images (a folder holding data.mdb).")
    f["train_labels"] = path_field("Training Labels", check=labels_of("train_features"), placeholder=lmdb,
                                   help="Optional: an LMDB of labels, one under each image's key.")
    f["val_features"] = path_field("Validation Images", check=lmdb_check, placeholder=lmdb)
    f["val_labels"] = path_field("Validation Labels", check=labels_of("val_features"), placeholder=lmdb)
    f["labels_file"] = path_field("Labels file (classification)", check=labels_file_check,
                                  placeholder="/path/to/labels.txt", help=OTHER_LABELS_HELP)
    f["force_same_shape"] = choice_field("Enforce same shape", YES_NO, True, help=CHECK_SHAPE_HELP)
    f["mean_file"] = path_field("Mean Image", check=mean_of, placeholder="/path/to/mean.binaryproto",
                                help="Path to a .binaryproto file on the server")
    return f


def gradients_fields() -> dict[str, Field]:
    """Gradients: how many synthetic gradient images of which size."""
    return {
        "train_count": NumberField("Train Image count", 1000, min=1,
                                   help="Number of images to create in training set"),
        "val_count": NumberField("Validation Image count", 250, min=0, required=False,
                                 help="Number of images to create in validation set"),
        "test_count": NumberField("Test Image count", 0, min=0, required=False,
                                  help="Number of images to create in test set"),
        "width": NumberField("Image Width", 32, min=1),
        "height": NumberField("Image Height", 32, min=1),
        "feature_encoding": choice_field("Feature Encoding", ENCODINGS, "png", help=ENCODING_HELP),
    }
