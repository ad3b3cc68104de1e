"""The base of every visualisation method: :class:`View` and the small helpers the view modules share.

It lives apart from the package's ``__init__`` so the view modules can import it while ``__init__`` imports
the view modules for its registry, with no import cycle between them. A :class:`View`'s ``options`` are
ordinary widgets, and ``render(prediction, index)`` turns one result of a :class:`Prediction` into a widget;
the panel listens through :meth:`View.observe` and re-renders when an option changes.

Views never run a network: they read what a prediction already holds (inputs, tensors, outputs), so
re-rendering after an option change costs image encoding only, never a forward pass.
"""
from __future__ import annotations

import html
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import ipywidgets as w
import numpy as np

if TYPE_CHECKING:  # the views only read these; importing them here would pull torch into every import
    from ...data.dataset import DatasetJob
    from ...infer.predict import Prediction

DEFAULT_SIZE = 256   # pixels of a single result; grid cells pass a smaller size


class View(ABC):
    """One visualisation method. Subclasses set ``title``, build ``options`` and implement ``render``."""

    title: ClassVar[str] = ""
    shows_input: ClassVar[bool] = False   # True when render() already draws the input (the panel skips it)

    def __init__(self, dataset: "DatasetJob | None" = None) -> None:
        self.dataset = dataset
        self.options: list[w.ValueWidget] = []
        self._listeners: list[Callable[[], None]] = []

    # ---- options ----------------------------------------------------------------------------------
    def add_option(self, control: w.ValueWidget) -> w.ValueWidget:
        """Register an option control; a change of its value notifies the listeners (the panel re-renders)."""
        control.style = {"description_width": "initial"}
        control.observe(self._changed, names="value")
        self.options.append(control)
        return control

    def observe(self, fn: Callable[[], None]) -> None:
        """``fn()`` after any option changes."""
        self._listeners.append(fn)

    def _changed(self, _change: dict) -> None:
        for fn in list(self._listeners):
            fn()

    def options_box(self) -> w.Widget:
        if not self.options:
            return w.HTML("<i>No options for this visualisation.</i>")
        return w.HBox(self.options, layout=w.Layout(flex_flow="row wrap"))

    # ---- drawing ----------------------------------------------------------------------------------
    @abstractmethod
    def render(self, prediction: "Prediction", index: int, size: int = DEFAULT_SIZE) -> w.Widget:
        """Result ``index`` of ``prediction`` as a widget about ``size`` pixels wide (grids pass less)."""

    def summary(self, prediction: "Prediction", index: int) -> str:
        """One line of text about the result (shown under grid cells and beside the single result)."""
        out = np.asarray(prediction.outputs[index])
        return f"output {'x'.join(map(str, out.shape)) or 'scalar'}"


def message(text: str, colour: str = "#c62828") -> w.HTML:
    """A view's words instead of a picture ("Unhandled number of channels"), escaped."""
    return w.HTML(f'<span style="color:{colour}">{html.escape(text)}</span>')


def numbers_html(values: Any, precision: int = 4, limit: int = 200) -> str:
    """Output values as a <pre> block: short arrays whole, long ones elided by numpy (``limit`` values)."""
    arr = np.asarray(values)
    text = np.array2string(arr, precision=precision, threshold=limit, max_line_width=96, suppress_small=True)
    return f'<pre style="margin:0;font-size:12px;line-height:1.25">{html.escape(text)}</pre>'


def to_numpy(values: Any) -> np.ndarray:
    """A torch tensor (``Prediction.tensors``) or array as a numpy array, without importing torch here."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def close_tree(widget: w.Widget) -> None:
    """Close a widget and everything inside it (boxes' children, a figure's marks, axes and scales).

    ``Widget.close`` closes one comm only; pages of results and layer rows are rebuilt on every page turn,
    so without this each turn would leave its canvases and figures alive in the kernel and the browser.
    """
    seen: set[int] = set()
    stack = [widget]
    while stack:
        item = stack.pop()
        if not isinstance(item, w.Widget) or id(item) in seen:
            continue
        seen.add(id(item))
        for name in ("children", "marks", "axes"):
            stack.extend(getattr(item, name, None) or ())
        for name in ("scale", "layout", "style"):
            stack.append(getattr(item, name, None))
        stack.extend(getattr(item, "scales", {}).values() if isinstance(getattr(item, "scales", None), dict) else ())
        item.close()


__all__ = ["View", "DEFAULT_SIZE", "message", "numbers_html", "to_numpy", "close_tree"]
