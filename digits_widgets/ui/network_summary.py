"""The model form's "Visualize": what a network is made of, or why it does not build.

DIGITS answered "Visualize" with a drawing of the Caffe graph, Torch's ``model:__tostring()`` or, when the
network failed, the framework's whole stack trace. Here the network is built exactly as the trainer builds
it (:mod:`~digits_widgets.train.setup`, on the dataset's input shape; the graph beside the table is of
that same build) and one batch of zeros runs through it with forward hooks, so the table shows the output
shape every layer really produced and the parameters it owns. A failure shows the user's traceback
verbatim, because that is what they debug with.
"""
from __future__ import annotations

import html
import itertools
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import ipywidgets as widgets
import torch
from torch import nn

from ..errors import NetworkError
from ..nets.network import Network
from ..train.setup import RunSetup, setup_network

__all__ = ["LayerRow", "NetworkSummary", "summarize", "build_summary", "summary_of", "summary_html",
           "error_html", "NetworkSummaryView"]


@dataclass
class LayerRow:
    """One module that owns parameters or has no children: its path, class, output shape and own parameters."""

    name: str
    type: str
    output_shape: str
    params: int
    trainable: int
    calls: int = 0
    first: int = 0


@dataclass
class NetworkSummary:
    """Rows in the order the layers ran (unused layers last), the totals, and the shape of the output."""

    rows: list[LayerRow]
    total_params: int
    trainable_params: int
    input_shape: tuple[int, int, int]
    output_shape: str
    style: str
    notes: list[str] = field(default_factory=list)


def _shape_text(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return "×".join(str(d) for d in value.shape) or "scalar"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(_shape_text(v) for v in value) + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_shape_text(v)}" for k, v in value.items()) + "}"
    return type(value).__name__


def summarize(network: Network, input_shape: tuple[int, int, int], batch: int = 1) -> NetworkSummary:
    """Run ``batch`` zero images through ``network`` (eval mode, no grad) and tabulate its layers.

    Every parameter is counted once, under the module that owns it, so the rows add up to the model's total
    even when a layer is shared. Layers the forward pass did not reach are listed last as "not used".
    """
    inner = network.module.inner
    seen: set[int] = set()
    rows: list[LayerRow] = []
    hooks = []
    clock = itertools.count()
    for name, module in inner.named_modules():
        own = [p for p in module.parameters(recurse=False) if id(p) not in seen]
        seen.update(id(p) for p in own)
        is_leaf = next(module.children(), None) is None
        if own or is_leaf:
            row = LayerRow(name or "(model)", type(module).__name__, "not used",
                           sum(p.numel() for p in own), sum(p.numel() for p in own if p.requires_grad))
            rows.append(row)
            hooks.append(module.register_forward_hook(_recorder(row, clock)))
    was_training = network.module.training
    network.module.eval()
    try:
        with torch.no_grad():
            output = network.module.infer(torch.zeros(batch, *input_shape))
    finally:
        network.module.train(was_training)
        for h in hooks:
            h.remove()
    rows.sort(key=lambda r: (r.calls == 0, r.first))
    params = {id(p): p for p in network.module.parameters()}
    notes = []
    if network.crop_len:
        notes.append(f"The network asks for a crop of {network.crop_len}.")
    if network.train_batch_size:
        notes.append(f"Its own training batch size: {network.train_batch_size}.")
    return NetworkSummary(rows=rows, total_params=sum(p.numel() for p in params.values()),
                          trainable_params=sum(p.numel() for p in params.values() if p.requires_grad),
                          input_shape=tuple(input_shape), output_shape=_shape_text(output),
                          style=network.style, notes=notes)


def _recorder(row: LayerRow, clock: Iterator[int]) -> Callable[[nn.Module, Any, Any], None]:
    """A forward hook noting its layer's first output shape, when it first ran, and how often it ran."""
    def hook(module: nn.Module, inputs: Any, output: Any) -> None:
        if row.calls == 0:
            row.output_shape = _shape_text(output)
            row.first = next(clock)
        row.calls += 1
    return hook


def build_summary(definition: Any, input_shape: tuple[int, int, int], nclasses: int = 0,
                  params: dict | None = None, name: str = "network", follow_crop: bool = True,
                  label_shape: tuple[int, ...] | None = None, crop: int | None = None) -> NetworkSummary:
    """Build as the trainer does (``train.setup``) for images of ``input_shape`` and summarize: at ``crop``
    (the form's) when given, else, with ``follow_crop``, at the crop the network asks for (``crop_len``).
    ``label_shape``: one label's shape when labels are class maps (segmentation), so the build's dry run
    feeds the loss maps, as training does.

    Raises :class:`NetworkError` with the user's traceback when the network does not build.
    """
    return summary_of(setup_network(definition, input_shape, nclasses, params=params, name=name, crop=crop,
                                    follow_crop=follow_crop, label_shape=label_shape))


def summary_of(setup: RunSetup) -> NetworkSummary:
    """:func:`summarize` a network already built, at its input shape; a failure of user code in inference
    mode becomes a NetworkError with its traceback."""
    try:
        return summarize(setup.network, setup.input_shape)
    except NetworkError:
        raise
    except Exception as exc:  # noqa: BLE001 - user code failing in inference mode
        from ..nets.source import network_error
        raise network_error(f"The network '{setup.name}' failed in inference mode", exc) from None


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
            self.summary = summary_of(setup)
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
