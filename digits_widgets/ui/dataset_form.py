"""``dw.DatasetForm()``: DIGITS' "New Dataset" pages as one widget, with a tab per dataset kind.

Fields, labels, defaults and help texts are DIGITS' own (Images > Classification, Processing, Segmentation,
Other, Gradients), so a DIGITS user finds what they know. Unlike DIGITS, every path is checked as it is typed
(exists? how many images, classes, entries?) and the answer sits next to the field; Create stays disabled
while the visible fields of the chosen tab have errors. Create calls the matching ``dw.datasets.*`` function,
the same one code would call, and the form turns into that job's progress view.
"""
from __future__ import annotations

import html
from typing import Callable

import ipywidgets as w

from ..data import classdb, create as datasets
from ..data.dataset import DatasetJob
from ..data.sources import read_labels_file
from ..errors import DigitsError
from ..store.lmdb_db import open_db
from .dataset_view import DatasetView
from .fields import (ERROR, OK, Field, NumberField, Verdict, bool_field, choice_field, class_folder_check,
                     colormap_check, count_text, images_check, list_file_check, lmdb_check, mean_check, path_field,
                     resolve, text_field)

TABS = ("classification", "processing", "segmentation", "other", "gradients")
TITLES = ("Classification", "Processing", "Segmentation", "Other", "Gradients")
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


class DatasetForm(w.VBox):
    """DIGITS' dataset forms; ``create()`` (or the Create button) starts the job and shows its progress.

    ``seed`` (no field, as in DIGITS) fixes the random split and shuffling, so a notebook that builds its
    dataset from the form gets the same dataset each run.
    """

    def __init__(self, name: str = "", group: str = "", seed: int | None = None):
        self.seed = seed
        self.name = text_field("Dataset Name", name, required=True)
        self.group = text_field("Group Name", group,
                                help="An optional group name for organization on the main page.")
        builders: dict[str, Callable[[], dict[str, Field]]] = {
            "classification": self._classification, "processing": lambda: self._pairs(False),
            "segmentation": lambda: self._pairs(True), "other": self._other, "gradients": self._gradients}
        self.fields: dict[str, dict[str, Field]] = {t: builders[t]() for t in TABS}
        self.tabs = w.Tab(children=[w.VBox([f.widget for f in self.fields[t].values()]) for t in TABS],
                          titles=TITLES)
        self.create_button = w.Button(description="Create", button_style="primary", icon="check")
        self.status = w.HTML()
        self.job: DatasetJob | None = None
        self.view: DatasetView | None = None
        for tab, fields in self.fields.items():
            for key, f in fields.items():
                f.on_change(lambda _f, tab=tab, key=key: self._changed(tab, key))
        for f in (self.name, self.group):
            f.on_change(lambda _f: self._update())
        for f in self.all_fields():
            f.validate()
        self.tabs.observe(lambda _c: self._update(), names="selected_index")
        self.create_button.on_click(lambda _b: self.create())
        self._update()
        super().__init__([w.HTML("<h3 style='margin:4px 0'>New Image Dataset</h3>"), self.tabs,
                          self.name.widget, self.group.widget, w.HBox([self.create_button, self.status])])

    # ---- the tabs -----------------------------------------------------------------------------------
    def _classification(self) -> dict[str, Field]:
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

    def _pairs(self, segmentation: bool) -> dict[str, Field]:
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

    def _other(self) -> dict[str, Field]:
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

    def _gradients(self) -> dict[str, Field]:
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

    # ---- state ------------------------------------------------------------------------------------
    DEPENDS = {"min_per_class": ("folder", "max_per_class"), "max_per_class": ("folder",),
               "pct_val": ("pct_test",), "folder": ("val_folder", "test_folder"),
               "list_folder": ("train_list", "val_list", "test_list"), "train_list": ("labels_file",),
               "feature_folder": ("label_folder",), "val_feature_folder": ("val_label_folder",),
               "train_features": ("train_labels", "mean_file", "labels_file"), "val_features": ("val_labels",),
               "train_labels": ("labels_file",), "val_labels": ("labels_file",)}

    @property
    def tab(self) -> str:
        """The selected tab's key ('classification', ..., 'gradients')."""
        return TABS[self.tabs.selected_index or 0]

    def select(self, tab: str) -> "DatasetForm":
        self.tabs.selected_index = TABS.index(tab)
        return self

    def all_fields(self) -> list[Field]:
        return [self.name, self.group] + [f for fields in self.fields.values() for f in fields.values()]

    def _hidden(self, tab: str) -> set[str]:
        """Fields that do not apply with the current choices (hidden, neither checked nor sent)."""
        f, hide = self.fields[tab], set()
        if tab == "classification":
            text = {"train_list", "list_folder", "use_val", "val_list", "use_test", "test_list", "labels_file",
                    "shuffle"}
            folder = {"folder", "pct_val", "pct_test", "min_per_class", "max_per_class", "has_val_folder",
                      "val_folder", "has_test_folder", "test_folder"}
            if f["method"].value == "folder":
                hide |= text
                hide.add("pct_val" if f["has_val_folder"].value else "val_folder")
                hide.add("pct_test" if f["has_test_folder"].value else "test_folder")
            else:
                hide |= folder | ({"val_list"} if not f["use_val"].value else set())
                hide |= {"test_list"} if not f["use_test"].value else set()
        elif tab in ("processing", "segmentation"):
            hide |= ({"val_percent"} if f["has_val_folder"].value else {"val_feature_folder", "val_label_folder"})
            if tab == "segmentation" and f["colormap_method"].value != "textfile":
                hide.add("colormap_text_file")
        return hide

    def active(self, tab: str | None = None) -> dict[str, Field]:
        tab = tab or self.tab
        hidden = self._hidden(tab)
        return {k: f for k, f in self.fields[tab].items() if k not in hidden}

    def problems(self) -> list[str]:
        """What stops Create on the selected tab, as "Label: message" lines."""
        found = [self.name] + list(self.active().values())
        return [f"{f.label_text}: {f.error}" for f in found if f.error]

    def _changed(self, tab: str, key: str) -> None:
        for dep in self.DEPENDS.get(key, ()):
            if dep in self.fields[tab]:
                self.fields[tab][dep].validate()
        self._update()

    def _update(self) -> None:
        for tab in TABS:
            hidden = self._hidden(tab)
            for key, f in self.fields[tab].items():
                f.visible = key not in hidden
        problems = self.problems()
        self.create_button.disabled = bool(problems)
        self.create_button.tooltip = "\n".join(problems) or "Create the dataset"
        if not problems:
            self.status.value = ""

    # ---- creating -----------------------------------------------------------------------------------
    def arguments(self, tab: str | None = None) -> tuple[Callable, dict]:
        """The ``dw.datasets`` function for the tab and its keyword arguments from the fields as they are."""
        fn, kw = self._arguments(tab or self.tab)
        if self.seed is not None and fn is not datasets.generic:   # registering LMDBs draws nothing
            kw["seed"] = self.seed
        return fn, kw

    def _arguments(self, tab: str) -> tuple[Callable, dict]:
        v = {k: f.value for k, f in self.active(tab).items()}
        if tab == "classification":
            kw = {"image_size": (v["height"], v["width"]), "channels": v["channels"],
                  "resize_mode": v["resize_mode"], "encoding": v["encoding"]}
            if v["method"] == "folder":
                kw.update(folder=v["folder"], pct_val=0 if v["has_val_folder"] else v["pct_val"],
                          pct_test=0 if v["has_test_folder"] else v["pct_test"],
                          min_per_class=v["min_per_class"] or 1, max_per_class=v["max_per_class"],
                          val_folder=v.get("val_folder"), test_folder=v.get("test_folder"))
            else:
                kw.update(train_list=v["train_list"], val_list=v.get("val_list"), test_list=v.get("test_list"),
                          labels_file=v["labels_file"], list_folder=v["list_folder"], shuffle=v["shuffle"])
            return datasets.classification, kw
        if tab in ("processing", "segmentation"):
            kw = {k: x for k, x in v.items() if k != "has_val_folder"}
            kw.setdefault("val_percent", 0)  # separate validation folders: nothing is split off
            return getattr(datasets, tab), kw
        if tab == "other":
            return datasets.generic, v
        return datasets.gradients, {"train_count": v["train_count"], "val_count": v["val_count"] or 0,
                                    "test_count": v["test_count"] or 0, "image_size": (v["height"], v["width"]),
                                    "feature_encoding": v["feature_encoding"]}

    def _refuse(self, lines: list[str], heading: str = "Cannot create the dataset:") -> None:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
        self.status.value = f'<div style="color:#c62828"><b>{heading}</b><ul>{items}</ul></div>'

    def create(self) -> DatasetJob | None:
        """Check everything again (files may have changed), start the job and show its progress view.

        Returns the job, or None when the form refused (the reasons are next to the fields and the button).
        """
        for f in [self.name, self.group, *self.active().values()]:
            f.validate()
            f.reveal()
        self._update()
        problems = self.problems()
        if problems:
            self._refuse(problems)
            return None
        fn, kwargs = self.arguments()
        try:
            job = fn(self.name.value, **kwargs)
        except DigitsError as exc:
            target = self.active().get(getattr(exc, "field", None) or "")
            if target is not None:
                target.show(Verdict(ERROR, str(exc)))
            self._refuse([str(exc)])
            return None
        except Exception as exc:  # noqa: BLE001 - a form shows what went wrong instead of a traceback
            self._refuse([f"{type(exc).__name__}: {exc}"])
            return None
        if self.group.value:
            job.set_group(self.group.value)  # DIGITS' group name, kept with the job
        self.job = job
        try:
            self.view = DatasetView(job)
        except Exception as exc:  # noqa: BLE001 - the job runs anyway; say why its page is missing
            self._refuse([f"{type(exc).__name__}: {exc}"], f"{job.name} ({job.id}) started, but its view failed:")
            return job
        self.children = (self.view,)
        return job


__all__ = ["DatasetForm", "TABS"]
