"""``dw.ModelForm()``: DIGITS' "New Image Model" page as a widget.

The fields, labels, choices and defaults are DIGITS' (inventory section 3), read from the schema of
:class:`TrainOptions` (``train/option_schema.py``: the form picks only the widget and DIGITS' row order, and
shows any other option the schema marks for the form in its group's box). The values they produce are
the keyword arguments of :func:`digits_widgets.train.launch.train`, checked by :class:`TrainOptions` itself,
so the form never accepts what training would refuse: an :class:`OptionError` names its field and the message
is shown next to that field. Create replaces the form with the job's training panel, as DIGITS redirected to
the new model's page.

The network is DIGITS' three tabs: Standard Networks (LeNet, AlexNet and GoogLeNet also in DIGITS' Caffe and
Torch versions), Previous Networks (fine-tuning from a snapshot) and Custom Network (PyTorch, Caffe and Torch
sub-tabs, :mod:`.custom_network`; "Use the %%digits_model cell" copies the kernel's latest cell there), in
:mod:`.network_tabs`.

Not here: DIGITS' comma-separated learning rates and batch sizes (one job per combination).
"""
from __future__ import annotations

import html
import re
from typing import Any

import ipywidgets as widgets
import torch

from .. import api
from ..errors import DigitsError, OptionError
from ..nets import zoo
from ..store.jobs import DONE, find_job
from ..train.launch import train
from ..train import options as train_options
from ..train.options import DATA, HARDWARE, OPTION_NAMES, PRETRAINED, TrainOptions
from ..train.pretrained import resolve_snapshot
from ..train.setup import dataset_shapes, gpus_for
from . import panel_for
from .checks import ERROR, OK, Verdict
from .fields import Field, choice_field, text_field
from .lr_preview import POLICY_PARAMS, LrPolicyEditor, option_field
from .network_summary import NetworkSummaryView
from .network_tabs import CUSTOM, PREVIOUS, STANDARD, NetworkTabs  # noqa: F401 - the tab indices, all three

__all__ = ["ModelForm", "TASK_KINDS", "standard_networks", "input_shape_of", "gpu_choices"]

# Which standard networks fit a dataset's task (zoo kinds). DIGITS offered standard networks to classification
# only; the tutorials' networks extend that to the other tasks.
TASK_KINDS = {"classification": ("classification", "autoencoder"), "regression": ("regression",),
              "processing": ("processing",), "segmentation": ("processing",),
              "generic": ("regression", "autoencoder", "processing")}
# The rows of DIGITS' boxes in its order (labels, help, bounds and choices come from TrainOptions' schema)
SOLVER_ROWS = ("epochs", "snapshot_interval", "val_interval", "seed", "batch_size", "batch_accumulation", "solver",
               "rms_decay", "lr", "shuffle")
DATA_ROWS = ("mean", "crop", "flip", "quad_rot", "noise", "hsv", "hsv_h", "hsv_s", "hsv_v")
HARDWARE_ROWS = ("device", "gpus", "select_gpus", "share_gpus", "pretrained", "freeze")
ALL_ROWS = {*SOLVER_ROWS, *DATA_ROWS, *HARDWARE_ROWS}
LR_OPTIONS = ("policy", *POLICY_PARAMS)   # the learning-rate editor's own fields
D = {name: f.default for name, f in TrainOptions.__dataclass_fields__.items()}


def standard_networks(task: str | None) -> list[str]:
    """Names of the zoo networks offered for a dataset task (all of them when there is no dataset)."""
    kinds = TASK_KINDS.get(task or "", zoo.KINDS)
    return [n for n in zoo.names() if zoo.STANDARD[n].kind in kinds]


def input_shape_of(dataset: Any, crop: int | None = None) -> tuple[tuple[int, int, int], int]:
    """``((C, H, W), nclasses)`` as the trainer will build the network for this dataset."""
    if not dataset.feature_shape:
        raise OptionError(f"Dataset {dataset.name!r} has no image shape yet: wait until it is created",
                          field="dataset")
    (c, h, w), nclasses, _ = dataset_shapes(dataset)
    return (c, crop or h, crop or w), nclasses


def gpu_choices(at_least: int = 0) -> list[tuple[str, int]]:
    """DIGITS' GPU list, '#0 - NVIDIA H200 (140 GiB)', by the index the scheduler uses (``at_least``
    entries even on a machine with fewer, so a clone shows what its job asked for)."""
    found = []
    for i in range(max(torch.cuda.device_count(), at_least)):
        try:
            p = torch.cuda.get_device_properties(i)
            found.append((f"#{i} - {p.name} ({p.total_memory / 2 ** 30:.0f} GiB)", i))
        except Exception:  # noqa: BLE001 - not a device here (a clone from a bigger machine, a test)
            found.append((f"#{i}", i))
    return found


def _pretrained_check(value: str) -> Verdict:
    return Verdict(OK, f"found {resolve_snapshot(value).name}")


def _regex_check(value: str) -> Verdict | None:
    try:
        re.compile(value)
    except re.error as exc:
        return Verdict(ERROR, f"Not a valid regular expression: {exc}")
    return None


_EXTRA = {"pretrained": {"check": _pretrained_check}, "freeze": {"check": _regex_check}}   # checks as one types


class ModelForm(NetworkTabs, widgets.VBox):
    """New model form. ``fields`` maps TrainOptions names (plus ``dataset`` and ``name``) to form fields.

    ``dataset``: a dataset job, id or name to preselect. ``clone``: a model job whose options, network and
    dataset fill the form (DIGITS' "Clone Job"). After a successful :meth:`create`, ``job`` is the new job and
    the form's only child is its training panel.
    """

    def __init__(self, dataset: Any = None, clone: Any = None) -> None:
        super().__init__()
        self.job = None
        self._extra: dict[str, Any] = {}      # options of a clone the form has no field for
        clone = find_job(clone, kind="model") if clone is not None else None
        ds = find_job(dataset, kind="dataset") if dataset is not None else (clone.dataset if clone else None)
        f = self.fields = {"dataset": choice_field("Select Dataset", self._dataset_choices(ds), ds.id if ds else None,
                                                   help="Datasets that are done or still being created.")}
        self._schema = [o for o in train_options.option_schema() if o.form and o.name not in LR_OPTIONS]
        for o in self._schema:   # labels, help, bounds and choices from TrainOptions; the widget from here
            f[o.name] = (choice_field(o.label, self._devices(o.default), o.default, help=o.help)
                         if o.name == "device" else option_field(o, **_EXTRA.get(o.name, {})))
        f["select_gpus"] = Field("Select GPU[s]", widgets.SelectMultiple(
            options=gpu_choices(), rows=min(4, max(1, torch.cuda.device_count())),
            layout=widgets.Layout(width="260px")), help=(
            "Select which GPU[s] you would like to use (instead of the count). The job won't start "
            "until all of the chosen GPUs are available."))
        f["name"] = text_field("Model Name", required=True, help="A name to find the model by.")
        f["group"] = text_field("Group Name", help="An optional group name for organization on the main page.")
        self.lr_editor = LrPolicyEditor(f["lr"], D["policy"])
        f.update(self.lr_editor.fields)
        self.show_advanced = widgets.Checkbox(description="Show advanced learning rate options", indent=False)
        self.lr_editor.layout.display = "none"
        self.show_advanced.observe(lambda c: setattr(self.lr_editor.layout, "display", None if c.new else "none"),
                                   "value")
        f["solver"].on_change(lambda _: self._solver_changed())
        f["hsv"].on_change(lambda _: self._hsv_changed())
        f["dataset"].on_change(lambda _: self._dataset_changed())
        self.dataset_info, self.message = widgets.HTML(), widgets.HTML()
        self.create_button = widgets.Button(description="Create", button_style="primary", icon="play")
        self.create_button.on_click(lambda _: self.create())
        rows = lambda *names: [f[n].widget for n in names]  # noqa: E731
        boxes = [self._rows(SOLVER_ROWS, lambda g: g not in (DATA, HARDWARE, PRETRAINED)), self._rows(
            DATA_ROWS, lambda g: g == DATA), self._rows(HARDWARE_ROWS, lambda g: g in (HARDWARE, PRETRAINED))]
        solver = widgets.VBox([widgets.HTML("<h4>Solver Options</h4>"), *boxes[0], self.show_advanced,
                               self.lr_editor], layout=widgets.Layout(width="50%"))
        data = widgets.VBox([widgets.HTML("<h4>Data Transformations</h4>"), *boxes[1],
                             widgets.HTML("<h4>Hardware and fine-tuning</h4>"), *boxes[2]],
                            layout=widgets.Layout(width="50%"))
        self.children = [  # DIGITS' page: dataset on top, solver | data side by side, the network, then Create
            widgets.HTML("<h3>New Image Model</h3>"), *rows("dataset"), self.dataset_info,
            widgets.HBox([solver, data], layout=widgets.Layout(flex_flow="row wrap")),
            widgets.HTML("<h4>Network</h4>"), self._network_section(),
            *rows("name", "group"), self.create_button, self.message]
        self._solver_changed()
        self._hsv_changed()
        self._dataset_changed()
        f["select_gpus"].visible = f["share_gpus"].visible = torch.cuda.device_count() > 0   # nothing to pick on a CPU
        if clone is not None:
            self._fill_from(clone)

    def _rows(self, order: tuple[str, ...], in_box: Any) -> list[widgets.Widget]:
        """The rows of a box: DIGITS' order, then the schema's other form options of the box's groups."""
        more = [o.name for o in self._schema if in_box(o.group) and o.name not in ALL_ROWS]
        return [self.fields[n].widget for n in (*order, *more)]

    # ---- the network tabs --------------------------------------------------------------------------
    def _network_section(self) -> widgets.Widget:
        self._build_network_tabs()
        self.network_message = widgets.HTML()
        self.visualize_button = widgets.Button(description="Visualize", icon="eye",
                                               tooltip="Build the network on the dataset's shape and list its layers")
        self.visualize_button.on_click(lambda _: self.visualize())
        self.summary = NetworkSummaryView()
        self._refresh_previous()
        return widgets.VBox([self.network_tabs, self.network_message, self.visualize_button, self.summary])

    # ---- reacting to the user ----------------------------------------------------------------------
    @staticmethod
    def _dataset_choices(extra: Any = None) -> list[tuple[str, str | None]]:
        """Datasets a model can use: Done or still being created (DIGITS' "running or done")."""
        found = [j for j in api.jobs("dataset") if j.status == DONE or j.is_running()]
        if extra is not None and extra.id not in {j.id for j in found}:
            found.append(extra)
        return [("(choose a dataset)", None)] + [(f"{j.name} ({j.task}, {j.status})", j.id) for j in found]

    @staticmethod
    def _devices(current: str) -> list[str]:
        devices = ["auto", "cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        return devices if current in devices else devices + [current]

    def selected_dataset(self) -> Any:
        value = self.fields["dataset"].value
        return find_job(value, kind="dataset") if value else None

    def _dataset_changed(self) -> None:
        ds = self.selected_dataset()
        names = standard_networks(ds.task if ds is not None else None)
        keep = self.standard.value if self.standard.value in names else None
        self.standard.options = [(zoo.STANDARD[n].title, n) for n in names]
        self.standard.value = keep or (names[0] if names else None)
        self._describe_standard()
        if ds is None:
            self.dataset_info.value = ""
            return
        shape = "×".join(map(str, ds.feature_shape)) if ds.feature_shape else "not known yet"
        self.dataset_info.value = (f"<small>{html.escape(ds.task)} dataset, images {shape} (H×W×C), "
                                   f"{ds.nclasses or 'no'} classes, {ds.status}</small>")

    def _solver_changed(self) -> None:
        self.fields["rms_decay"].visible = self.fields["solver"].value == "rmsprop"

    def _hsv_changed(self) -> None:
        for name in ("hsv_h", "hsv_s", "hsv_v"):
            self.fields[name].visible = bool(self.fields["hsv"].value)

    # ---- values, errors, actions -------------------------------------------------------------------
    def options(self) -> dict[str, Any]:
        """The form's values as ``dw.train`` options, checked by TrainOptions; OptionError names the field."""
        own = {n: f for n, f in self.fields.items() if n in OPTION_NAMES}
        for name, field in own.items():
            if field.visible and field.validate() is not None and field.error:
                raise OptionError(field.error, field=name)
        opts = {n: f.value for n, f in own.items() if n not in POLICY_PARAMS}
        opts = {**self._extra, **opts, **self.lr_editor.options()}
        if self.fields["select_gpus"].value:   # GPUs picked by index win over the count, as in DIGITS
            opts["gpus"] = list(self.fields["select_gpus"].value)
        TrainOptions(**opts)  # raises OptionError(field=...) for what the fields alone cannot tell
        return opts

    def _mark(self, name: str, text: str) -> None:
        """Put ``text`` next to the field it is about (the form's message when no field matches)."""
        field = self.fields.get(name)
        if name == "network":
            self.network_message.value = f'<span style="color:#c62828">{html.escape(text)}</span>'
        elif field is None:
            self.message.value = f'<span style="color:#c62828">{html.escape(text)}</span>'
            return
        else:
            field.verdict = Verdict(ERROR, text)
            field.reveal()
            if name in self.lr_editor.fields:
                self.show_advanced.value = True
        label = field.label_text if field is not None else "Network"
        self.message.value = f'<span style="color:#c62828">Please fix: {html.escape(label)}</span>'

    def visualize(self) -> None:
        """Build the network on the dataset's input shape and show its layers, or its traceback verbatim."""
        try:
            source = self.network_source()
            ds = self.selected_dataset()
            crop = self.fields["crop"].value if isinstance(self.fields["crop"].value, int) else None
            if ds is not None:   # the images, and their labels when class maps, as training feeds them
                shape, nclasses, labels = (*input_shape_of(ds), dataset_shapes(ds)[2])
            elif self.network_tabs.selected_index == STANDARD and self.standard.value:
                net = zoo.STANDARD[self.standard.value]
                shape, nclasses, labels = net.input_shape, 10 if net.kind == "classification" else 0, None
            else:
                raise OptionError("Make sure a dataset is selected to visualize this network.", field="dataset")
        except DigitsError as exc:
            self.summary.show_message(str(exc))
            return
        self.network_message.value = ""
        params = {"ngpus": gpus_for(str(self.fields["device"].value)), **(self._extra.get("params") or {})}
        self.summary.show(source, shape, nclasses, params, name=self.fields["name"].value or "network",
                          label_shape=labels, crop=crop)   # built as train.setup builds it for training

    def create(self) -> Any:
        """Check every field, start training and show the job's panel; returns the job (None when refused)."""
        self.message.value = self.network_message.value = ""
        for field in self.fields.values():
            field.reveal()
        try:
            ds = self.selected_dataset()
            if ds is None:
                raise OptionError("This field is required.", field="dataset")
            name = self.fields["name"].value
            if not name:
                raise OptionError("This field is required.", field="name")
            options, source = self.options(), self.network_source()
            job = train(ds, source, name, group=self.fields["group"].value or "", **options)
        except OptionError as exc:
            self._mark(exc.field or "", str(exc))
            return None
        except DigitsError as exc:
            self._mark("", str(exc))
            return None
        self.job = job
        self.children = [panel_for(job)]
        return job

    def _fill_from(self, job: Any) -> None:
        """Every field from a model job's options, its network in the Custom tab (Standard when it is one)."""
        opts = job.options.to_dict()
        self.fields["name"].value = f"{job.name} (clone)"
        self.fields["group"].value = job.group or None
        for name, value in opts.items():
            if name in self.fields and name not in POLICY_PARAMS and name != "policy":
                if name == "device":
                    self.fields[name].control.options = self._devices(value)
                if name == "gpus" and isinstance(value, (list, tuple)):   # chosen by index: the picker shows them
                    picker = self.fields["select_gpus"].control
                    picker.options = gpu_choices(max(value) + 1)
                    picker.value, value = tuple(value), 1
                    self.fields["select_gpus"].visible = True
                self.fields[name].value = value
            elif name not in self.fields and value != D.get(name):
                self._extra[name] = value
        self.lr_editor.set_values(opts["policy"], **{p: opts.get(p) for p in POLICY_PARAMS})
        self.show_advanced.value = opts["policy"] != D["policy"] or any(opts.get(p) is not None
                                                                        for p in POLICY_PARAMS)
        text = job.network_source()
        same = [(n, f) for _, n in (self.standard.options or ())
                for f in zoo.frameworks(n) if zoo.source(n, f) == text]
        if same:
            self.standard.value, self.network_tabs.selected_index = same[0][0], STANDARD
            self.standard_framework.value = same[0][1]
        else:
            self.custom.value, self.network_tabs.selected_index = text, CUSTOM
