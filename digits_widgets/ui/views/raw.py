"""DIGITS' "Raw Data" view: the output numbers as they are.

The fallback for any network: whatever it outputs can be read, and it is what a user copies into a bug
report. Long outputs (a 32x32 map) are elided by numpy after ``limit`` values, with their shape shown, so a
grid page stays light.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import ipywidgets as w
import numpy as np

from .base import DEFAULT_SIZE, View, numbers_html

if TYPE_CHECKING:
    from ...data.dataset import DatasetJob
    from ...infer.predict import Prediction


class RawView(View):
    """Options: printed precision (4 decimals)."""

    title = "Raw"

    def __init__(self, dataset: "DatasetJob | None" = None) -> None:
        super().__init__(dataset)
        self.precision = self.add_option(w.BoundedIntText(value=4, min=0, max=10, description="Decimals",
                                                          layout=w.Layout(width="140px")))

    def text(self, prediction: "Prediction", index: int) -> str:
        """The <pre> block for result ``index`` (shape line, then the values)."""
        out = np.asarray(prediction.outputs[index])
        shape = "x".join(map(str, out.shape)) or "scalar"
        limit = 1000 if out.size <= 1000 else 120
        return f"<div style='font-size:12px;color:#555'>shape {shape}</div>" + numbers_html(
            out, self.precision.value, limit)

    def render(self, prediction: "Prediction", index: int, size: int = DEFAULT_SIZE) -> w.Widget:
        return w.HTML(self.text(prediction, index), layout=w.Layout(max_width=f"{max(size, 320)}px",
                                                                    overflow="auto"))
