"""DIGITS' "Show visualizations and statistics": what every layer did with one test image.

One row per probe (``infer.probes``): name, Activation or Weights, layer type, shape, learned parameters,
mean and standard deviation, a 20-bin bqplot histogram, and for activations and convolution filters a tile
image of the channels (DIGITS' get_layer_vis_square: each tile normalised, one channel as a viridis heat map).
Rows come a page at a time: GoogLeNet has hundreds of probes, and each histogram is a few widgets.

Above the rows a strip shows the picture a person looks for first: the original input, the normalised input
the network saw (after mean subtraction), and when the network reconstructs its input (same output shape
as the input: the autoencoder tutorial) the code of its smallest layer and the reconstruction; otherwise
the output when it is an image.
"""
from __future__ import annotations

import html
from functools import lru_cache
from typing import TYPE_CHECKING, Sequence

import ipywidgets as w
import numpy as np
from bqplot import Axis, Bars, Figure, LinearScale

from ..infer.probes import Probe, tile_channels
from .pager import Paged, Pager
from .ticks import distinct_tick_format
from .views import close_tree, to_numpy
from .views.image import captioned, image_widget, output_image

if TYPE_CHECKING:
    from ..infer.predict import Prediction

PER_PAGE = 12
STRIP_SIZE = 160


@lru_cache(maxsize=1)
def _viridis() -> np.ndarray:
    from matplotlib import colormaps  # a declared dependency, imported the first time a heat map is drawn
    return np.rint(colormaps["viridis"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)


def heatmap(values: np.ndarray) -> np.ndarray:
    """A 2-D array in [0, 1] → H x W x 3 viridis pixels."""
    idx = np.clip(np.rint(np.nan_to_num(np.asarray(values, np.float64)) * 255), 0, 255).astype(np.intp)
    return _viridis()[idx]


def has_tiles(probe: Probe) -> bool:
    """Activations with spatial maps or at least a few units, and convolution filters with a spatial extent."""
    shape = tuple(probe.shape)
    if probe.kind == "activation":
        return (len(shape) == 3 and min(shape[1:]) > 1) or (len(shape) in (1, 2) and int(np.prod(shape)) >= 4)
    return len(shape) == 4 and min(shape[2:]) > 1


def tile_image(probe: Probe) -> np.ndarray:
    """The probe's channels as one heat-map image (tile_channels → viridis)."""
    return heatmap(tile_channels(probe.data))


def code_probe(probes: Sequence[Probe]) -> Probe | None:
    """The bottleneck: the activation with the fewest values (the last of equals: after its ReLU)."""
    acts = [p for p in probes if p.kind == "activation"]
    if not acts:
        return None
    smallest = min(int(np.prod(p.shape)) for p in acts)
    return [p for p in acts if int(np.prod(p.shape)) == smallest][-1]


def histogram_figure(probe: Probe) -> tuple[Figure, Bars]:
    """Bars of the probe's 20-bin histogram (counts at the bin centres), small and without animation."""
    counts, edges = probe.histogram
    counts, edges = np.asarray(counts, np.float64), np.asarray(edges, np.float64)
    centres = (edges[:-1] + edges[1:]) / 2
    # Both scales fixed: counts from 0 (left free, bqplot pads the domain below zero) and x over the bins.
    lo, hi = float(edges[0]), float(edges[-1])
    if hi <= lo:   # every value equal: one bin of width 0
        lo, hi = lo - 0.5, hi + 0.5
    top = float(counts.max()) if counts.size and counts.max() > 0 else 1.0
    x, y = LinearScale(min=lo, max=hi), LinearScale(min=0.0, max=top)
    bars = Bars(x=centres, y=counts, scales={"x": x, "y": y}, colors=["#1976d2"], padding=0.05)
    count_ticks = np.unique(np.rint(np.linspace(0.0, top, 3)))   # whole counts: never "500m"
    value_ticks = np.linspace(lo, hi, 5)[1:4]   # inside the edges: clear of the count axis and the figure's end
    axes = [Axis(scale=x, tick_values=value_ticks, tick_format=distinct_tick_format(lo, hi, 4)),
            Axis(scale=y, side="left", tick_values=count_ticks, tick_format="~s")]
    # padding 0: the figure's default 2.5 % padding pushed the count axis below zero ("-26m")
    fig = Figure(marks=[bars], axes=axes, animation_duration=0, min_aspect_ratio=0.01, max_aspect_ratio=100,
                 padding_x=0.0, padding_y=0.0,
                 fig_margin={"top": 8, "bottom": 24, "left": 44, "right": 24},   # the last x tick stays inside
                 layout=w.Layout(width="280px", height="130px"))
    return fig, bars


class LayerRow:
    """One probe's row: statistics text, histogram, tile image."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        shape = "x".join(map(str, probe.shape)) or "scalar"
        vis_type = "Activation" if probe.kind == "activation" else "Weights"
        params = f"{probe.params:,}" if probe.params else "0"
        self.info = w.HTML(
            f'<div style="font-size:12px;line-height:1.4"><b>{html.escape(probe.name)}</b><br>'
            f"{vis_type} &middot; {html.escape(probe.layer_type)}<br>shape {shape} &middot; params {params}<br>"
            f"mean {probe.mean:.4g} &middot; std {probe.std:.4g}</div>", layout=w.Layout(width="230px"))
        self.figure, self.hist = histogram_figure(probe)
        self.tile = image_widget(tile_image(probe), 200) if has_tiles(probe) else None
        parts = [self.info, self.figure] + ([self.tile] if self.tile is not None else [])
        self.widget = w.HBox(parts, layout=w.Layout(align_items="center", border_bottom="1px solid #eee"))


class LayersView(Paged, w.VBox):
    """Per-layer statistics for one image, paged; ``strip`` holds the input / code / output pictures."""

    def __init__(self, probes: Sequence[Probe], prediction: "Prediction | None" = None, index: int = 0,
                 per_page: int = PER_PAGE, with_view: bool = False) -> None:
        """``with_view``: shown under a view that already draws the input and the output (Test One), so
        the strip adds only what the view does not show: the normalised input and an autoencoder's code."""
        self.probes = list(probes)
        self.with_view = with_view
        self.page_rows: list[LayerRow] = []
        self.strip_panels: dict[str, w.Widget] = self._strip(prediction, index) if prediction is not None else {}
        strip = w.HBox([captioned(v, k) for k, v in self.strip_panels.items()],
                       layout=w.Layout(flex_flow="row wrap", align_items="flex-start"))
        total = sum(p.params for p in self.probes if p.kind == "weights")
        self.total = w.HTML(f"<b>Total learned parameters:</b> {total:,} &middot; {len(self.probes)} probes")
        self.rows_box = w.VBox()
        self.pager = Pager(per_page, lambda: len(self.probes), self._show)
        super().__init__([strip, self.total, self.pager, self.rows_box])
        self.show_page(0)

    def show_page(self, page: int) -> None:
        """Build the rows of ``page`` (clamped); earlier pages' widgets are closed, so memory stays bounded."""
        self.pager.go(page)

    def _show(self, start: int, end: int) -> str:
        for row in self.page_rows:
            close_tree(row.widget)
        self.page_rows = [LayerRow(p) for p in self.probes[start:end]]
        self.rows_box.children = [r.widget for r in self.page_rows]
        return f"&nbsp;Layers {start + 1 if self.probes else 0}&ndash;{end} of {len(self.probes)}"

    def _strip(self, prediction: "Prediction", index: int) -> dict[str, w.Widget]:
        panels = self._all_strip(prediction, index)
        if self.with_view:
            panels = {k: v for k, v in panels.items() if k not in ("Original", "Output", "Reconstruction")}
        return panels

    def _all_strip(self, prediction: "Prediction", index: int) -> dict[str, w.Widget]:
        panels: dict[str, w.Widget] = {"Original": image_widget(prediction.inputs[index], STRIP_SIZE)}
        tensor = to_numpy(prediction.tensors[index])
        try:
            panels["Normalised input"] = image_widget(output_image(tensor, "normalize"), STRIP_SIZE)
        except ValueError:
            pass  # an input the image view cannot draw (more than 3 channels)
        output = np.asarray(prediction.outputs[index])
        code = code_probe(self.probes)
        if output.shape == tensor.shape and code is not None and int(np.prod(code.shape)) < output.size:
            # input-shaped output through a narrower layer: an autoencoder; show its code
            label = f"Code: {code.name} ({int(np.prod(code.shape))} units)"
            panels[label] = image_widget(heatmap(tile_channels(code.data)), STRIP_SIZE)
            panels["Reconstruction"] = image_widget(output_image(output, "normalize"), STRIP_SIZE)
            return panels
        try:
            panels["Output"] = image_widget(output_image(output, "normalize"), STRIP_SIZE)
        except ValueError:
            pass  # not an image (class scores, slopes): the rows show it
        return panels
