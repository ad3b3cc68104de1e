"""``dw.DatasetForm()``: DIGITS' "New Dataset" pages as one widget, with a tab per dataset kind.

Fields, labels, defaults and help texts are DIGITS' own (Images > Classification, Processing, Segmentation,
Other, Gradients; built in :mod:`.dataset_tabs`), so a DIGITS user finds what they know. Unlike DIGITS, every
path is checked as it is typed (exists? how many images, classes, entries?) and the answer sits next to the
field; Create stays disabled while the visible fields of the chosen tab have errors. Create calls the matching
``dw.datasets.*`` function, the same one code would call, and the form turns into that job's progress view.
"""
from __future__ import annotations

import html
from typing import Callable

import ipywidgets as w

from ..data import create as datasets
from ..data.dataset import DatasetJob
from ..errors import DigitsError
from .checks import ERROR, Verdict
from .dataset_tabs import classification_fields, gradients_fields, other_fields, pair_fields
from .dataset_view import DatasetView
from .fields import Field, text_field

TABS = ("classification", "processing", "segmentation", "other", "gradients")
TITLES = ("Classification", "Processing", "Segmentation", "Other", "Gradients")


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
            "classification": classification_fields, "processing": lambda: pair_fields(False),
            "segmentation": lambda: pair_fields(True), "other": other_fields, "gradients": gradients_fields}
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
