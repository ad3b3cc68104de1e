"""DIGITS' inference forms on the model page, as one widget: ``InferencePanel(job)`` (``job.test()``).

Test one image (an upload, a path, or for gradients datasets two sliders that make the tutorial's test image),
test a list (a folder, or a text file of paths with optional integer labels: DIGITS' val.txt works), or test a
database (the dataset's validation features by default). Options as DIGITS: snapshot, "Do not resize input
image(s)", "Show visualizations and statistics", and a visualisation method with its own options
(``views``). Lists and databases show a paged grid; labelled classification lists add the accuracy and the
confusion matrix.

Inference runs on the kernel's main thread inside the button's click handler, as one forward pass (with the
layer probes hooked into that same pass): a test is seconds at most, and the result is on screen when the
handler returns. Changing the visualisation or its options re-renders what the last test produced without
running the network again.
"""
from __future__ import annotations

import html
import io
import os
import re
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

import ipywidgets as w
import numpy as np
from PIL import Image

from ..data.generators import gradient_image
from ..data.images import is_image_file
from ..errors import DigitsError, OptionError
from ..infer.predict import Prediction, classification_report
from ..infer.probes import Probe, probe
from . import checks, fields
from .images import label_text, png_bytes
from .layers_view import LayersView
from .pager import Paged, Pager
from .views import View, close_tree, default_view, make_view, view_classes
from .views.classification import report_html
from .views.image import captioned, image_widget

CELL = 128            # grid cell size in pixels
PER_PAGE = 12         # 3 rows of 4
CARD_WIDTH = 2 * CELL + 24   # the widest card: two CELL images side by side (segmentation view)
_LABELLED = re.compile(r"^(.*\S)\s+(-?\d+)\s*$")


def read_image_list(path: str | os.PathLike, folder: str | None = None,
                    class_names: Sequence[str] = ()) -> tuple[list[str], list[int] | None]:
    """Image paths of a folder (recursively, sorted) or of a text list, and their labels when every image has one.

    A text line is ``<path>`` or ``<path> <integer label>`` (DIGITS' list format); relative paths are read from
    ``folder``, else from the list's own folder. In a folder, an image's label is the index of its top-level
    sub-folder's name among ``class_names`` ('_' read as a space, as DIGITS named classes).
    """
    root = Path(checks.resolve(os.fspath(path)))
    if root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.is_file() and is_image_file(p.name)
                       and not any(part.startswith(".") for part in p.relative_to(root).parts))
        lookup = {n: i for i, n in enumerate(class_names)}
        labels = [lookup.get(p.relative_to(root).parts[0].replace("_", " "), -1) if len(p.relative_to(root).parts) > 1
                  else -1 for p in files]
        return [str(p) for p in files], (labels if labels and min(labels) >= 0 else None)
    if not root.is_file():
        raise OptionError(f"Not a folder or a file: {root}", field="image_list")
    base = Path(checks.resolve(folder)) if folder else root.parent
    paths: list[str] = []
    labels_: list[int | None] = []
    for raw in root.read_text(encoding="utf-8-sig", errors="replace").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LABELLED.match(line)
        if match and not (base / os.path.expanduser(line)).is_file():
            line, label = match.group(1), int(match.group(2))
        else:
            label = None
        paths.append(str(base / os.path.expanduser(line)))
        labels_.append(label)
    if not paths:
        raise OptionError(f"No images listed in {root}", field="image_list")
    return paths, ([int(v) for v in labels_] if all(v is not None for v in labels_) else None)


def _list_check(path: str) -> checks.Verdict:
    return checks.images_check(path) if os.path.isdir(checks.resolve(path)) else (
        checks.file_check(path) or checks.Verdict(checks.OK, "text list"))


def _folder_check(path: str) -> checks.Verdict | None:
    problem = checks.folder_problem(path)
    return checks.Verdict(checks.ERROR, problem) if problem else None


class ResultsGrid(Paged, w.VBox):
    """A paged grid of rendered results (Test a list / Test DB); ``truths`` captions each cell."""

    def __init__(self, prediction: Prediction, view: View, truths: Sequence[str] | None = None,
                 per_page: int = PER_PAGE, page: int = 0) -> None:
        self.prediction, self.view, self.truths = prediction, view, truths
        self.pager = Pager(per_page, lambda: len(prediction.names), self._show)
        self.label = self.pager.label   # "Page 2 of 2"
        # a grid of equal columns: every card has the same width whatever its caption or output
        self.cells = w.GridBox(layout=w.Layout(
            grid_template_columns=f"repeat(auto-fill, minmax({CARD_WIDTH}px, 1fr))", grid_gap="8px 12px",
            align_items="flex-start"))
        super().__init__([self.pager, self.cells])
        self.show_page(page)

    def cell(self, index: int) -> w.Widget:
        pred, view = self.prediction, self.view
        caption = f"<b>{html.escape(str(pred.names[index]))}</b>"
        if self.truths is not None and self.truths[index]:
            caption += f"<br>truth: {html.escape(self.truths[index])}"
        caption += f"<br>{html.escape(view.summary(pred, index))}"
        body = view.render(pred, index, CELL)
        if not view.shows_input:
            body = w.HBox([captioned(image_widget(pred.inputs[index], 64), "Input"), body],
                          layout=w.Layout(align_items="flex-start"))
        card = w.VBox([w.HTML(f'<div style="font-size:11px;overflow-wrap:anywhere">{caption}</div>'), body],
                      layout=w.Layout(padding="4px", border="1px solid #e0e0e0", overflow="hidden"))
        card.add_class("dw-result-card")
        return card

    def show_page(self, page: int) -> None:
        """Render page ``page`` (clamped); the previous page's widgets are closed."""
        self.pager.go(page)

    def _show(self, start: int, end: int) -> str:
        old = self.cells.children
        self.cells.children = [self.cell(i) for i in range(start, end)]
        for child in old:
            close_tree(child)
        return f"&nbsp;Page {self.page + 1} of {self.pages} (images {start + 1}&ndash;{end} of " \
               f"{len(self.prediction.names)})"


class InferencePanel(w.VBox):
    """Test one / a list / a DB with a model job's snapshot, drawn by the chosen visualisation."""

    def __init__(self, job: Any, snapshot: "str | float | None" = None) -> None:
        self.job, self.dataset = job, job.dataset
        ds = self.dataset
        wide = {"description_width": "initial"}
        self.snapshot = w.Dropdown(description="Snapshot", style=wide, layout=w.Layout(width="220px"))
        self._refresh_snapshots(snapshot)
        self.dont_resize = w.Checkbox(description="Do not resize input image(s)", indent=False,
                                      tooltip="By default input images are resized to the dataset's image size",
                                      layout=w.Layout(width="auto", margin="0 16px"))
        self.show_layers = w.Checkbox(description="Show visualizations and statistics", indent=False,
                                      layout=w.Layout(width="auto"))
        self._views: dict[str, View] = {}
        self.view_picker = w.Dropdown(options=list(view_classes()), value=default_view(ds),
                                      description="Visualization method", style=wide)
        self.view_options = w.Box()
        self.view_picker.observe(lambda _c: self._view_changed(), names="value")
        self.tabs = w.Tab(children=[self._test_one_tab(), self._test_list_tab(), self._test_db_tab()],
                          titles=("Test one", "Test a list", "Test DB"))
        self.status, self.error = w.HTML(), w.HTML()
        self.results = w.VBox()
        self.prediction: Prediction | None = None
        self.probes: list[Probe] | None = None
        self.truths: list[str] | None = None
        self.report: dict | None = None
        self.grid: ResultsGrid | None = None
        self.layers: LayersView | None = None
        self._mode = ""
        options = w.HBox([self.snapshot, self.dont_resize, self.show_layers], layout=w.Layout(align_items="center"))
        super().__init__([options, self.view_picker, self.view_options, self.tabs, self.status, self.error,
                          self.results])
        self._view_changed(render=False)
        self._source_changed()
        self._preview_gradient()

    # ---- the three forms --------------------------------------------------------------------------
    def _test_one_tab(self) -> w.VBox:
        """An upload, a path, or (gradients datasets) two slope sliders with a preview of the test image."""
        ds = self.dataset
        self.gradients = ds.task == "regression" and tuple(ds.label_shape or ()) == (2,)
        sources = ["Upload", "Path"] + (["Gradient"] if self.gradients else [])
        self.source = w.ToggleButtons(options=sources, value="Gradient" if self.gradients else "Upload")
        self.upload = w.FileUpload(accept="image/*", multiple=False, description="Image file")
        self.path = fields.path_field("Image path", check=checks.file_check, placeholder="/path/to/image.png")
        self.slope_x = w.FloatSlider(value=0.5, min=-0.5, max=0.5, step=0.01, description="x slope",
                                     continuous_update=False)
        self.slope_y = w.FloatSlider(value=0.5, min=-0.5, max=0.5, step=0.01, description="y slope",
                                     continuous_update=False)
        self.gradient_preview = w.Image(format="png")
        for s in (self.slope_x, self.slope_y):
            s.observe(lambda _c: self._preview_gradient(), names="value")
        self.gradient_box = w.HBox([w.VBox([self.slope_x, self.slope_y]), self.gradient_preview])
        self.source.observe(lambda _c: self._source_changed(), names="value")
        self.test_one_button = self._button("Test One", self.test_one)
        return w.VBox([self.source, self.upload, self.path.widget, self.gradient_box, self.test_one_button])

    def _test_list_tab(self) -> w.VBox:
        self.list_path = fields.path_field("Image list or folder", check=_list_check,
                                           help="A folder of images, or a text file with one path (and optionally "
                                                "an integer label) per line")
        self.list_folder = fields.path_field("Image folder (optional)", check=_folder_check,
                                             help="Prefix for relative paths in the text list")
        self.list_limit = fields.NumberField("Number of images (blank: all)", None, min=1, required=False)
        self.test_list_button = self._button("Test a list", self.test_list)
        return w.VBox([self.list_path.widget, self.list_folder.widget, self.list_limit.widget,
                       self.test_list_button])

    def _test_db_tab(self) -> w.VBox:
        """DIGITS' tutorial tests ``<dataset job>/val_db/features``: it is the default here."""
        ds = self.dataset
        default_db = ds.db_path("val") if ds.count("val") else ds.db_path("train")
        self.db_path = fields.path_field("Database", check=checks.lmdb_check,
                                         help="An LMDB of images; the dataset's validation features by default")
        self.db_path.value = str(default_db or "")
        self.db_limit = fields.NumberField("Number of images (blank: all)", None, min=1, required=False)
        self.test_db_button = self._button("Test DB", self.test_db)
        return w.VBox([self.db_path.widget, self.db_limit.widget, self.test_db_button])

    # ---- small pieces -----------------------------------------------------------------------------
    def _button(self, text: str, action: Callable[[], Any]) -> w.Button:
        button = w.Button(description=text, button_style="primary")
        button.on_click(lambda _b: self._run(action))
        return button

    def _refresh_snapshots(self, keep: Any = None) -> None:
        """Latest first, as DIGITS' snapshot select; "best" when the job kept one."""
        snaps = self.job.snapshots()
        options: list[tuple[str, Any]] = [(f"Epoch {e:g}", e) for e, _ in reversed(snaps)]
        if self.job.path("snapshots", "best.pt").exists():
            options.append(("Best (lowest val loss)", "best"))
        current = keep if keep is not None else self.snapshot.value
        self.snapshot.options = options
        values = [v for _, v in options]
        if current in values:
            self.snapshot.value = current
        elif current not in (None, "last"):
            raise OptionError(f"Model {self.job.name!r} has no snapshot {current!r}", field="snapshot")
        elif values:
            self.snapshot.value = values[0]   # the latest epoch

    @property
    def view(self) -> View:
        """The current visualisation (one object per method, so its options persist across switches)."""
        title = self.view_picker.value
        if title not in self._views:
            self._views[title] = make_view(title, self.dataset)
            self._views[title].observe(self.render)
        return self._views[title]

    def _view_changed(self, render: bool = True) -> None:
        self.view_options.children = [self.view.options_box()]
        if render:
            self.render()

    def _source_changed(self) -> None:
        src = self.source.value
        for widget, name in ((self.upload, "Upload"), (self.path.widget, "Path"), (self.gradient_box, "Gradient")):
            widget.layout.display = None if src == name else "none"

    def _preview_gradient(self) -> None:
        if self.gradients:
            self.gradient_preview.value = png_bytes(self._gradient_image(), min_side=64, max_side=96)

    def _gradient_image(self) -> np.ndarray:
        h, w_, _ = self.dataset.feature_shape
        return gradient_image(self.slope_x.value, self.slope_y.value, h, w_)

    def _run(self, action: Callable[[], Any]) -> None:
        """A button's work with its errors shown in the panel (DIGITS' messages verbatim), never raised."""
        buttons = (self.test_one_button, self.test_list_button, self.test_db_button)
        for b in buttons:
            b.disabled = True
        self.status.value, self.error.value = "<i>Running inference&hellip;</i>", ""
        try:
            self._refresh_snapshots()  # a model still training may have written new ones
            action()
        except DigitsError as exc:
            self.error.value = f'<span style="color:#c62828">{html.escape(str(exc))}</span>'
        except Exception as exc:  # noqa: BLE001 - a click handler must report, not raise into the void
            self.error.value = (f'<span style="color:#c62828">{html.escape(type(exc).__name__)}: '
                                f'{html.escape(str(exc))}</span><pre style="font-size:11px">'
                                f"{html.escape(traceback.format_exc())}</pre>")
        finally:
            self.status.value = ""
            for b in buttons:
                b.disabled = False

    # ---- the three tests --------------------------------------------------------------------------
    def _image_to_test(self) -> tuple[Any, str]:
        src = self.source.value
        if src == "Gradient":
            return self._gradient_image(), f"gradient ({self.slope_x.value:g}, {self.slope_y.value:g})"
        if src == "Path":
            if self.path.value is None:
                raise OptionError("Give an image path", field="image_path")
            return checks.resolve(self.path.value), os.path.basename(self.path.value)
        if not self.upload.value:
            raise OptionError("Choose an image file to upload", field="image_file")
        item = self.upload.value[0]
        pil = Image.open(io.BytesIO(bytes(item["content"])))
        return pil.convert("L" if self.dataset.feature_shape[2] == 1 else "RGB"), str(item["name"])

    def test_one(self, image: Any = None, name: str | None = None) -> Prediction:
        """Test one image (a path, array or PIL image; by default what the Test one tab holds), in one forward
        pass; with "Show visualizations and statistics" the layer probes are hooked into that pass."""
        if image is None:
            image, name = self._image_to_test()
        predictor = self.job.predictor(self.snapshot.value)
        arr = predictor.load(image, resize=not self.dont_resize.value)
        x = predictor.transform(arr[None]).to(predictor.device)
        probes = None
        if self.show_layers.value:
            outs: list = []
            probes = probe(predictor.module.inner, lambda t: outs.append(predictor.module.infer(t)), x)
            output = outs[0].float().cpu()
        else:
            output = predictor.run(x)
        shown = name or (Path(image).name if isinstance(image, (str, Path)) else "#0")
        self._show(Prediction(arr[None], x.cpu(), output.numpy(), [shown]), "one", probes=probes)
        return self.prediction

    def test_list(self, path: str | None = None, folder: str | None = None, limit: int | None = None) -> Prediction:
        """Test a folder or a text list of images; labelled classification lists get accuracy and confusion."""
        path = path or self.list_path.value
        if not path:
            raise OptionError("Give a folder or a text file of image paths", field="image_list")
        paths, labels = read_image_list(path, folder or self.list_folder.value, self.dataset.labels)
        limit = limit or self.list_limit.value
        paths, labels = paths[:limit], (labels[:limit] if labels is not None and limit else labels)
        pred = self.job.infer(paths, self.snapshot.value, resize=not self.dont_resize.value)
        self._show(pred, "many", labels=np.asarray(labels) if labels is not None else None)
        return pred

    def test_db(self, db_path: str | None = None, limit: int | None = None) -> Prediction:
        """Test the first ``limit`` entries of an LMDB (default: the dataset's validation features)."""
        db_path = db_path or self.db_path.value
        pred, labels = self.job.infer_db(checks.resolve(db_path) if db_path else None,
                                         limit or self.db_limit.value, self.snapshot.value,
                                         resize=not self.dont_resize.value)
        self._show(pred, "many", labels=labels)
        return pred

    # ---- showing ----------------------------------------------------------------------------------
    def _show(self, pred: Prediction, mode: str, probes: list[Probe] | None = None,
              labels: np.ndarray | None = None) -> None:
        self.prediction, self.probes, self._mode = pred, probes, mode
        self.report, self.truths = None, None
        names = self.dataset.labels
        if labels is not None and self.dataset.task == "classification" and pred.outputs.ndim == 2:
            labels = labels.astype(np.int64)
            self.report = classification_report(pred.outputs, labels, names)
            self.truths = [names[i] if 0 <= i < len(names) else str(i) for i in labels.tolist()]
        elif labels is not None and len(labels) and labels.ndim <= 2 and labels[0].size <= 8:
            self.truths = [label_text(v) for v in labels]
        self.grid = None   # a new result starts on page 1
        if self.layers is not None:
            close_tree(self.layers)
        # built once per test: the per-layer rows do not depend on the visualisation, so re-renders keep them
        self.layers = LayersView(probes, pred, with_view=True) if probes is not None else None
        self.render()

    def render(self) -> None:
        """Draw the last result again with the current visualisation and options (no forward pass), on the
        grid page the user was looking at."""
        old = self.results.children
        page = self.grid.page if self.grid is not None else 0
        self.grid = None
        pred, view = self.prediction, self.view
        parts: list[w.Widget] = []
        if pred is not None and self._mode == "one":
            body = [view.render(pred, 0)]
            if not view.shows_input:
                body.insert(0, captioned(image_widget(pred.inputs[0], 256), "Input"))
            summary = f"<b>{html.escape(pred.names[0])}</b>: {html.escape(view.summary(pred, 0))}"
            parts = [w.HTML(summary), w.HBox(body, layout=w.Layout(align_items="flex-start"))]
            if self.layers is not None:
                parts.append(self.layers)
        elif pred is not None:
            if self.report is not None:
                parts.append(w.HTML(report_html(self.report)))
            self.grid = ResultsGrid(pred, view, self.truths, page=page)
            parts.append(self.grid)
        self.results.children = parts
        for child in old:
            if child is not self.layers:
                close_tree(child)
