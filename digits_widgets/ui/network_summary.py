"""The model form's "Visualize": what a network is made of, or why it does not build.

DIGITS answered "Visualize" with a drawing of the Caffe graph, Torch's ``model:__tostring()`` or, when the
network failed, the framework's whole stack trace. Here the network is built exactly as the trainer builds
it (:mod:`~digits_widgets.train.setup`, on the dataset's input shape; the graph beside the table is of
that same build) and tabulated by :func:`~digits_widgets.nets.summary.summarize`, so the table shows the
output shape every layer really produced and the parameters it owns. A failure shows the user's traceback
verbatim, because that is what they debug with.
"""
from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

from ..errors import NetworkError
from ..nets.summary import NetworkSummary, summarize
from ..train.setup import setup_network

__all__ = ["build_summary", "summary_html", "error_html", "NetworkSummaryView"]


def build_summary(definition: Any, input_shape: tuple[int, int, int], nclasses: int = 0,
                  params: dict | None = None, name: str = "network", follow_crop: bool = True,
                  label_shape: tuple[int, ...] | None = None, crop: int | None = None) -> NetworkSummary:
    """Build as the trainer does (``train.setup``) for images of ``input_shape`` and summarize: at ``crop``
    (the form's) when given, else, with ``follow_crop``, at the crop the network asks for (``crop_len``).
    ``label_shape``: one label's shape when labels are class maps (segmentation), so the build's dry run
    feeds the loss maps, as training does.

    Raises :class:`NetworkError` with the user's traceback when the network does not build or fails in
    inference mode.
    """
    setup = setup_network(definition, input_shape, nclasses, params=params, name=name, crop=crop,
                          follow_crop=follow_crop, label_shape=label_shape)
    return summarize(setup.network, setup.input_shape, name=setup.name)


_CELL = "padding:2px 10px;border-bottom:1px solid #ddd;text-align:{}"


def summary_html(summary: NetworkSummary) -> str:
    """The layer table as HTML: name, type, output shape, parameters; totals underneath."""
    head = "".join(f'<th style="{_CELL.format(a)}">{t}</th>' for t, a in
                   (("Layer", "left"), ("Type", "left"), ("Output shape", "left"), ("Parameters", "right")))
    body = []
    for r in summary.rows:
        calls = f" (×{r.calls})" if r.calls > 1 else ""
        frozen = "" if r.trainable == r.params else f' <span title="frozen">({r.params - r.trainable:,} frozen)</span>'
        body.append("<tr>" + "".join(f'<td style="{_CELL.format(a)}">{v}</td>' for v, a in (
            (html.escape(r.name), "left"), (html.escape(r.type), "left"),
            (html.escape(r.output_shape) + calls, "left"), (f"{r.params:,}{frozen}", "right"))) + "</tr>")
    c, h, w = summary.input_shape
    notes = "".join(f"<div>{html.escape(n)}</div>" for n in summary.notes)
    return (f'<div style="font-family:monospace;font-size:12px">'
            f"<div>Input 1×{c}×{h}×{w} → output {html.escape(summary.output_shape)} ({summary.style} style)</div>"
            f'<table style="border-collapse:collapse"><tr>{head}</tr>{"".join(body)}</table>'
            f"<div><b>Total parameters: {summary.total_params:,}</b> (trainable {summary.trainable_params:,})</div>"
            f"{notes}</div>")


def error_html(text: str) -> str:
    """A traceback, verbatim, in red: the one thing a user needs when the network does not build."""
    return ('<pre style="color:#c62828;white-space:pre-wrap;font-size:12px;margin:0">'
            f"{html.escape(text)}</pre>")


class NetworkSummaryView(widgets.VBox):
    """An HTML area that shows either a :class:`NetworkSummary` or a traceback; ``summary`` is the last one."""

    def __init__(self) -> None:
        self.html = widgets.HTML("")
        self.summary: NetworkSummary | None = None
        self.error: str | None = None
        self.graph = None  # the GraphWidget of the last network shown
        super().__init__([self.html])

    def show(self, definition: Any, input_shape: tuple[int, int, int], nclasses: int = 0,
             params: dict | None = None, name: str = "network", follow_crop: bool = True,
             label_shape: tuple[int, ...] | None = None, crop: int | None = None) -> NetworkSummary | None:
        """Build once (as :func:`build_summary` does) and show the table and the graph of that network; on
        NetworkError show its full text (message and traceback) and return None."""
        from .graph import graph_of  # the drawn graph beside the table, as DIGITS' Visualize showed
        try:
            setup = setup_network(definition, input_shape, nclasses, params=params, name=name, crop=crop,
                                  follow_crop=follow_crop, label_shape=label_shape)
            self.summary = summarize(setup.network, setup.input_shape, name=setup.name)
            self.error = None
        except NetworkError as exc:
            self.summary, self.error, self.graph = None, str(exc), None
            self.html.value = error_html(self.error)
            self.children = (self.html,)
            return None
        self.html.value = summary_html(self.summary)
        self.graph = graph_of(setup)
        self.children = (self.html, self.graph)
        return self.summary

    def show_message(self, text: str) -> None:
        """A plain error (no dataset selected, ...), drawn like a traceback so it is hard to miss."""
        self.summary, self.error, self.graph = None, text, None
        self.html.value = error_html(text)
        self.children = (self.html,)
