"""DIGITS' "Gradients" view (the image-regression tutorial): the input with an arrow of the predicted slopes.

The geometry is the plug-in's own (plugins/view/imageGradients): for outputs ``[gx, gy]`` on a W x H image,
``grad = [gx*W, gy*H]``, ``arrow = grad * size / 100`` (size 80 % by default), tip = centre + arrow/2,
tail = centre - arrow/2, and a caret: the tip joined to the two points tail +/- 0.1 * rot90(grad). Since the
tutorial's images brighten by ``gx`` per unit of width, the arrow points toward the light.

Drawn with ipycanvas on a canvas scaled up to about 256 pixels: the input goes as one PNG
(``put_image_data`` encodes it), the caret as a filled and stroked polygon, all in one ``hold_canvas``
message. Canvas pixels are not widget state, so the drawing is replayed from ``on_client_ready``, which the
front end fires whenever a canvas model is (re)created, e.g. after a page reload while the kernel lives. We
chose that over ``sync_image_data=True``, which makes every canvas send its whole bitmap back to the kernel
after each draw (twelve PNG uploads per page of a Test DB grid) and still needs the kernel to draw first;
here the kernel already holds the few bytes a redraw needs.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import ipywidgets as w
import numpy as np
from ipycanvas import Canvas, hold_canvas
from PIL import Image

from .base import DEFAULT_SIZE, View, message

if TYPE_CHECKING:
    from ...data.dataset import DatasetJob
    from ...infer.predict import Prediction

COLOURS = {"red": "#ff0000", "green": "#00ff00", "blue": "#0000ff"}   # DIGITS' three arrow colours
Point = tuple[float, float]


class Arrow(NamedTuple):
    """Arrow end points in image pixels (x right, y down); ``acw``/``cw`` are the caret's base corners."""
    tail: Point
    tip: Point
    acw: Point
    cw: Point

    def scaled(self, sx: float, sy: float) -> "Arrow":
        return Arrow(*((x * sx, y * sy) for x, y in self))


def arrow_geometry(gx: float, gy: float, width: int, height: int, size_pct: float = 80.0) -> Arrow:
    """The DIGITS gradients plug-in's arrow for predicted slopes (gx, gy) on a width x height image.

    The centre is (W/2, H/2) as floats (the plug-in's Python 2 halves were integers: the same for even sizes).
    """
    grad = np.array([float(gx) * width, float(gy) * height])
    rotated = np.array([-grad[1], grad[0]])
    centre = np.array([width / 2, height / 2])
    arrow = grad * (float(size_pct) / 100.0)
    tip, tail = centre + arrow / 2, centre - arrow / 2
    acw, cw = tail + 0.1 * rotated, tail - 0.1 * rotated
    return Arrow(*(tuple(float(v) for v in p) for p in (tail, tip, acw, cw)))


def scaled_pixels(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """The input enlarged with nearest-neighbour (crisp pixels), as HW gray or HWx4 RGBA: both go to the
    browser as PNG (ipycanvas would send three-channel arrays as lossy JPEG)."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    pil = Image.fromarray(arr).resize((width, height), Image.NEAREST)
    return np.asarray(pil if arr.ndim == 2 else pil.convert("RGBA"))


class ArrowCanvas:
    """One canvas with its input image and arrow, drawn now and again on every client_ready."""

    def __init__(self, image: np.ndarray, gx: float, gy: float, size_pct: float, colour: str,
                 size: int = DEFAULT_SIZE) -> None:
        h, w_ = np.asarray(image).shape[:2]
        scale = size / max(h, w_)
        self.width, self.height = max(1, round(w_ * scale)), max(1, round(h * scale))
        self.pixels = scaled_pixels(image, self.width, self.height)
        self.arrow = arrow_geometry(gx, gy, w_, h, size_pct).scaled(self.width / w_, self.height / h)
        self.colour = colour
        self.canvas = Canvas(width=self.width, height=self.height,
                             layout=w.Layout(width=f"{self.width}px", height=f"{self.height}px"))
        self.canvas.on_client_ready(self.replay)
        self.draw()

    def replay(self) -> None:
        """Draw again for a front end that just (re)created the canvas model, e.g. after a page reload.

        The kernel-side canvas manager remembers which canvas it last addressed and skips the "switch canvas"
        command when it is the same one; but a reloaded page has a fresh manager that has been switched to
        nothing yet. Forgetting the current canvas makes the next draw start with an explicit switch.
        """
        self.canvas._canvas_manager._current_canvas = None
        self.draw()

    def draw(self) -> None:
        """Image and caret in one message (``hold_canvas``).

        No ``clear()`` first: the opaque image covers the whole canvas anyway, and ipycanvas' front end blanks
        every view at a clear at once but shows the new drawing only when the batch ends, after the image has
        been decoded; so a replay began with a blank canvas on screen (a flicker a browser test caught).
        """
        c, a = self.canvas, self.arrow
        caret = [a.acw, a.tip, a.cw]
        with hold_canvas():
            c.put_image_data(self.pixels, 0, 0)
            c.fill_style = self.colour
            c.stroke_style = self.colour
            c.line_width = 2
            if a.tip == a.tail:  # zero slopes: no direction to show, a dot marks the centre
                c.fill_circle(a.tip[0], a.tip[1], 3)
            else:
                c.fill_polygon(caret)
                c.stroke_polygon(caret)


class GradientsView(View):
    """Options: arrow colour (red) and arrow size in percent (80), DIGITS' defaults."""

    title = "Gradients"
    shows_input = True

    def __init__(self, dataset: "DatasetJob | None" = None) -> None:
        super().__init__(dataset)
        self.colour = self.add_option(w.Dropdown(options=list(COLOURS), value="red", description="Arrow colour"))
        self.arrow_size = self.add_option(w.BoundedIntText(value=80, min=1, max=1000, description="Arrow size (%)",
                                                           layout=w.Layout(width="180px")))
        self.last: ArrowCanvas | None = None   # the latest drawing (tests and the browser harness read it)

    @staticmethod
    def slopes(prediction: "Prediction", index: int) -> tuple[float, float] | None:
        out = np.asarray(prediction.outputs[index], dtype=np.float64).ravel()
        return (float(out[0]), float(out[1])) if out.size >= 2 else None

    def render(self, prediction: "Prediction", index: int, size: int = DEFAULT_SIZE) -> w.Widget:
        slopes = self.slopes(prediction, index)
        if slopes is None:
            return message("The gradients view needs two outputs (x and y slopes); this network gives "
                           f"{np.asarray(prediction.outputs[index]).size}.")
        drawing = ArrowCanvas(prediction.inputs[index], *slopes, self.arrow_size.value,
                              COLOURS[self.colour.value], size)
        self.last = drawing
        text = f"gx = {slopes[0]:.4f}, gy = {slopes[1]:.4f}"
        return w.VBox([drawing.canvas, w.HTML(f'<span style="font-family:monospace">{text}</span>')])

    def summary(self, prediction: "Prediction", index: int) -> str:
        slopes = self.slopes(prediction, index)
        return f"gradients ({slopes[0]:.4f}, {slopes[1]:.4f})" if slopes else super().summary(prediction, index)
