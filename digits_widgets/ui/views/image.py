"""DIGITS' "Image output" view: the network's output drawn as a picture (image processing, autoencoders).

Options and defaults are DIGITS' own (extensions/view/imageOutput): pixel conversion ``normalize`` (stretch
min..max to 0..255) or ``clip`` (values are already pixels: clip to 0..255, what the segmentation tutorial
asks for), data order CHW (PyTorch, Caffe, Torch) or HWC (TensorFlow), channel order RGB or BGR (Caffe
networks). One- and three-channel outputs only, as in DIGITS.
"""
from __future__ import annotations

import html
from typing import TYPE_CHECKING

import ipywidgets as w
import numpy as np

from ..images import png_bytes
from .base import DEFAULT_SIZE, View, message, numbers_html

if TYPE_CHECKING:
    from ...data.dataset import DatasetJob
    from ...infer.predict import Prediction

PIXEL_CONVERSIONS = ("normalize", "clip")
DATA_ORDERS = ("chw", "hwc")
CHANNEL_ORDERS = ("rgb", "bgr")


def output_image(output: np.ndarray, pixel_conversion: str = "normalize", data_order: str = "chw",
                 channel_order: str = "rgb") -> np.ndarray:
    """One output as HW (gray) or HWC (colour) uint8, exactly as DIGITS' image view converted it.

    normalize: ``(x - min) / (max - min) * 255`` (a constant output is black); clip: ``clip(x, 0, 255)``.
    Raises ValueError for outputs that are not one- or three-channel images.
    """
    data = np.asarray(output, dtype=np.float64)
    if data.ndim == 2:
        data = data[None] if data_order == "chw" else data[:, :, None]
    if data.ndim != 3:
        raise ValueError(f"The output has shape {tuple(data.shape)}: not an image (expected CxHxW)")
    if data_order == "hwc":
        data = data.transpose(2, 0, 1)
    channels = data.shape[0]
    if channels not in (1, 3):
        raise ValueError(f"Unhandled number of channels: {channels} (the image view draws 1 or 3)")
    if channels == 3 and channel_order == "bgr":
        data = data[::-1]
    data = np.nan_to_num(data, nan=0.0, posinf=255.0, neginf=0.0)
    if pixel_conversion == "normalize":
        lo, hi = float(data.min()), float(data.max())
        data = (data - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(data)
    else:
        data = np.clip(data, 0, 255)
    pixels = np.rint(data).astype(np.uint8)
    return pixels[0] if channels == 1 else np.ascontiguousarray(pixels.transpose(1, 2, 0))


def image_widget(arr: np.ndarray, size: int, palette: "list[int] | None" = None) -> w.Image:
    """An ``ipywidgets.Image`` of PNG bytes (widget state: it survives a page reload), about ``size`` pixels.

    Small images are enlarged by a whole factor with nearest-neighbour in the PNG itself, so the browser
    shows crisp pixels without CSS scaling."""
    return w.Image(value=png_bytes(arr, palette, min_side=size, max_side=size), format="png")


def captioned(widget: w.Widget, caption: str) -> w.VBox:
    """A widget with a small caption above it, as DIGITS titled each panel."""
    return w.VBox([w.HTML(f'<b style="font-size:12px">{html.escape(caption)}</b>'), widget])


class ImageView(View):
    """The output as an image; falls back to the numbers (with DIGITS' message) when it is not one."""

    title = "Image"
    shows_input = False

    def __init__(self, dataset: "DatasetJob | None" = None) -> None:
        super().__init__(dataset)
        processing = dataset is not None and dataset.task == "processing"
        self.pixel_conversion = self.add_option(w.Dropdown(
            options=PIXEL_CONVERSIONS, value="clip" if processing else "normalize",
            description="Pixel conversion", tooltip="normalize: stretch min..max to 0..255; clip: 0..255"))
        self.data_order = self.add_option(w.Dropdown(
            options=[("CHW (PyTorch, Caffe, Torch)", "chw"), ("HWC (TensorFlow)", "hwc")], value="chw",
            description="Data order"))
        self.channel_order = self.add_option(w.Dropdown(
            options=[("RGB", "rgb"), ("BGR (Caffe)", "bgr")], value="rgb", description="Channel order"))

    def image(self, prediction: "Prediction", index: int) -> np.ndarray:
        """The output of result ``index`` as uint8 pixels, with the current options."""
        return output_image(prediction.outputs[index], self.pixel_conversion.value, self.data_order.value,
                            self.channel_order.value)

    def render(self, prediction: "Prediction", index: int, size: int = DEFAULT_SIZE) -> w.Widget:
        try:
            pixels = self.image(prediction, index)
        except ValueError as exc:
            return w.VBox([message(str(exc)), w.HTML(numbers_html(prediction.outputs[index]))])
        return captioned(image_widget(pixels, size), "Output")

    def summary(self, prediction: "Prediction", index: int) -> str:
        out = np.asarray(prediction.outputs[index], dtype=np.float64)
        return f"output {'x'.join(map(str, out.shape))}, min {out.min():.4g}, max {out.max():.4g}"
