"""DIGITS' "Image Segmentation" view: the input with the predicted class mask over it, and a legend.

A network with one output channel per class is read as DIGITS did: ``argmax`` over the channels, coloured
by the dataset's palette (or matplotlib's Paired, or gray: DIGITS' ``colormap`` option). The binary
segmentation tutorial's FCN instead outputs one 0..255 channel in label units (0 inside a triangle, 255
outside), so a single channel is thresholded (127.5 by default; the foreground is the dark side by
default, as in that tutorial) and the output itself is shown next to the mask. The mask is blended over
the input in Python with the opacity slider, and sent as one PNG: the picture is widget state and survives
a page reload, and a slider move costs one small image, no forward pass.
"""
from __future__ import annotations

import html
from typing import TYPE_CHECKING

import ipywidgets as w
import numpy as np
from PIL import Image

from ..images import default_palette
from .base import DEFAULT_SIZE, View, message
from .image import captioned, image_widget, output_image

if TYPE_CHECKING:
    from ...data.dataset import DatasetJob
    from ...infer.predict import Prediction

FOREGROUND = (255, 0, 255)   # threshold mode: magenta shows on black, white and gray inputs alike


def class_map(output: np.ndarray, threshold: float = 127.5, foreground: str = "below") -> tuple[np.ndarray, bool]:
    """(H x W class indices, thresholded?): argmax over C > 1 channels; one channel → 1 where foreground.

    ``foreground`` 'below' marks values under the threshold (the triangles tutorial: 0 = triangle), 'above'
    those at or over it.
    """
    data = np.asarray(output, dtype=np.float64)
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3:
        raise ValueError(f"The output has shape {tuple(data.shape)}: not a segmentation map (expected CxHxW)")
    if data.shape[0] > 1:
        return data.argmax(0), False
    mask = data[0] < threshold if foreground == "below" else data[0] >= threshold
    return mask.astype(np.int64), True


def palette_for(dataset: "DatasetJob | None", colormap: str, nclasses: int) -> np.ndarray:
    """256 x 3 uint8 colours per class index for DIGITS' colormap choices: dataset, paired, none (gray)."""
    if colormap == "paired":
        from matplotlib import colormaps  # a declared dependency; imported only when chosen
        table = colormaps["Paired"](np.arange(256) % 12)[:, :3]
        return np.rint(table * 255).astype(np.uint8)
    if colormap == "none":
        step = 255 // max(1, nclasses - 1)
        return np.repeat(np.clip(np.arange(256) * step, 0, 255)[:, None], 3, 1).astype(np.uint8)
    palette = (dataset.palette if dataset is not None and dataset.palette else None) or default_palette()
    return np.asarray((list(palette) + [0] * 768)[:768], np.uint8).reshape(256, 3)


def as_rgb(image: np.ndarray) -> np.ndarray:
    """HW / HWx1 / HWx3 / HWx4 uint8 → HWx3 uint8."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return np.repeat(arr[:, :, None], 3, 2) if arr.ndim == 2 else np.ascontiguousarray(arr[:, :, :3])


def overlay(image: np.ndarray, classes: np.ndarray, colours: np.ndarray, opacity: float,
            mask: np.ndarray | None = None) -> np.ndarray:
    """``colours[classes]`` blended over the input at ``opacity`` (only where ``mask``, when given).

    The class map is resized to the input (nearest) when the network's output has another size.
    """
    rgb = as_rgb(image).astype(np.float64)
    h, w_ = rgb.shape[:2]
    if classes.shape != (h, w_):
        classes = np.asarray(Image.fromarray(np.clip(classes, 0, 255).astype(np.uint8)).resize((w_, h), Image.NEAREST))
        if mask is not None:
            mask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((w_, h), Image.NEAREST)) > 0
    paint = colours[np.clip(classes, 0, 255)].astype(np.float64)
    a = float(np.clip(opacity, 0.0, 1.0))
    blended = rgb * (1 - a) + paint * a
    if mask is not None:
        blended = np.where(mask[:, :, None], blended, rgb)
    return np.rint(blended).astype(np.uint8)


def legend_html(entries: list[tuple[tuple[int, int, int], str]]) -> str:
    """DIGITS' legend: a colour swatch and "Class #k (name)" per class seen."""
    rows = "".join(
        f'<div style="display:flex;align-items:center;margin:2px 0"><span style="display:inline-block;width:18px;'
        f'height:18px;margin-right:6px;border:1px solid #999;background:rgb{tuple(int(c) for c in colour)}"></span>'
        f"{html.escape(text)}</div>" for colour, text in entries)
    return f'<div style="font-size:12px"><b>Legend</b>{rows}</div>'


class SegmentationView(View):
    """Options: colormap (dataset), opacity (0.5), and for one-channel outputs threshold and foreground."""

    title = "Segmentation"
    shows_input = True

    def __init__(self, dataset: "DatasetJob | None" = None) -> None:
        super().__init__(dataset)
        self.colormap = self.add_option(w.Dropdown(options=["dataset", "paired", "none"], value="dataset",
                                                   description="Colormap"))
        self.opacity = self.add_option(w.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="Opacity",
                                                     continuous_update=False))
        self.threshold = self.add_option(w.FloatText(value=127.5, description="Threshold (1 channel)",
                                                     layout=w.Layout(width="220px")))
        self.foreground = self.add_option(w.Dropdown(options=[("below threshold", "below"),
                                                              ("at or above", "above")],
                                                     value="below", description="Foreground"))

    def class_names(self) -> list[str]:
        ds = self.dataset
        return list((ds.class_names or ds.labels) if ds is not None else [])

    def classes(self, prediction: "Prediction", index: int) -> tuple[np.ndarray, bool]:
        return class_map(prediction.outputs[index], self.threshold.value, self.foreground.value)

    def render(self, prediction: "Prediction", index: int, size: int = DEFAULT_SIZE) -> w.Widget:
        try:
            classes, thresholded = self.classes(prediction, index)
        except ValueError as exc:
            return message(str(exc))
        image = prediction.inputs[index]
        if thresholded:
            colours = np.tile(np.asarray(FOREGROUND, np.uint8), (256, 1))
            blended = overlay(image, classes, colours, self.opacity.value, mask=classes > 0)
            side = "<" if self.foreground.value == "below" else ">="
            share = 100.0 * float(classes.mean())
            entries = [(FOREGROUND, f"foreground: output {side} {self.threshold.value:g} ({share:.1f}% of pixels)")]
            output = output_image(prediction.outputs[index], "clip")
            parts = [captioned(image_widget(blended, size), "Segmentation"),
                     captioned(image_widget(output, size), "Output (clip)")]
        else:
            colours = palette_for(self.dataset, self.colormap.value, int(classes.max()) + 1)
            blended = overlay(image, classes, colours, self.opacity.value)
            names = self.class_names()
            entries = [(tuple(colours[k]), f"Class #{k}" + (f" ({names[k]})" if k < len(names) else ""))
                       for k in np.unique(classes).tolist()]
            parts = [captioned(image_widget(blended, size), "Segmentation")]
        return w.HBox(parts + [w.HTML(legend_html(entries))], layout=w.Layout(align_items="flex-start"))

    def summary(self, prediction: "Prediction", index: int) -> str:
        try:
            classes, thresholded = self.classes(prediction, index)
        except ValueError:
            return super().summary(prediction, index)
        if thresholded:
            return f"foreground {100.0 * float(classes.mean()):.1f}% of pixels"
        return "classes " + ", ".join(str(k) for k in np.unique(classes).tolist())
