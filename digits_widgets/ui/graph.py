"""The network as an interactive graph: an anywidget whose front end is ``js/src/graph.ts``.

Python builds the JSON graph (:func:`~digits_widgets.nets.graph_trace.network_graph`) and the browser lays it
out and draws it: layers as boxes with type, output shape and parameter count, edges as data flow, fitted to
the view with readable labels when first shown (see :class:`GraphWidget`), zoom with Ctrl + wheel or the
buttons, pan by dragging, a click shows a layer's details and syncs its id back as ``selected``. After
inference, :meth:`GraphWidget.set_stats` adds each layer's activation mean, std and histogram to its details.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

import anywidget
import torch
import traitlets

from ..data.dataset import DatasetJob
from ..errors import NetworkError
from ..infer.probes import Probe
from ..nets.graph_trace import INPUT_ID, network_graph
from ..nets.source import network_error
from ..train.setup import RunSetup, dataset_shapes, setup_network

__all__ = ["GraphWidget", "network_graph", "show_network", "graph_of", "probe_stats", "INPUT_ID"]

_BUNDLE = Path(__file__).resolve().parent.parent / "static" / "graph.js"


def _finite(value: float) -> float | None:
    """NaN and infinities are not JSON: a layer whose activations are all NaN shows "n/a", not a sync error."""
    value = float(value)
    return value if math.isfinite(value) else None


def probe_stats(graph: dict[str, Any], probes: Iterable[Probe]) -> dict[str, dict[str, Any]]:
    """Activation probes mapped onto the graph's nodes by module name: node id → mean, std, histogram.

    Probes name leaf modules by their path in the user's model, which is the ``name`` of that module's node.
    A module called twice has one probe (its first call) and two nodes: the first node gets it.
    """
    first: dict[str, str] = {}
    for node in graph.get("nodes", []):
        first.setdefault(node["name"], node["id"])
    stats: dict[str, dict[str, Any]] = {}
    for p in probes:
        node_id = first.get(p.name)
        if p.kind != "activation" or node_id is None or node_id in stats:
            continue
        counts, edges = p.histogram
        stats[node_id] = {"mean": _finite(p.mean), "std": _finite(p.std),
                          "histogram": [int(c) for c in counts], "edges": [_finite(e) for e in edges],
                          "shape": [int(d) for d in p.shape]}
    return stats


class GraphWidget(anywidget.AnyWidget):
    """The network graph. ``graph``: from :func:`network_graph`; ``selected``: id of the clicked node (``''`` =
    none), synced both ways; ``stats``: node id → ``{"mean", "std", "histogram", "edges"}``.

    How it first shows, as a person expects in a notebook: the whole network fitted to the output's width and
    at most ``height`` pixels tall (the view is as tall as the drawing needs, so a small network leaves no
    empty box around it), never enlarged past 1.25x. Labels are never drawn smaller than 11 px on screen:
    when the whole network only fits smaller than that (a deep one, GoogLeNet), it shows readable from its
    input end and the view scrolls to the rest; the *Fit* button then shows it whole, however small. The wheel
    scrolls, Ctrl + wheel zooms, a drag pans.

    ``direction``: ``'auto'`` (default: left to right when that fits as large as top down, else top down),
    ``'LR'`` or ``'TB'``. ``height``: the most pixels of height the drawing takes (default 720).
    """

    _esm = _BUNDLE
    graph = traitlets.Dict().tag(sync=True)
    direction = traitlets.Enum(("auto", "LR", "TB"), default_value="auto").tag(sync=True)
    selected = traitlets.Unicode("").tag(sync=True)
    stats = traitlets.Dict().tag(sync=True)
    height = traitlets.Int(720, min=120).tag(sync=True)

    def __init__(self, graph: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(graph=graph or {"nodes": [], "edges": []}, **kwargs)

    def node(self, node_id: str) -> dict[str, Any] | None:
        """The node with this id, or None (for example after the graph was replaced)."""
        return next((n for n in self.graph.get("nodes", []) if n["id"] == node_id), None)

    def set_stats(self, probes: Iterable[Probe]) -> dict[str, dict[str, Any]]:
        """Show activation statistics from :func:`digits_widgets.infer.probes.probe` (weights are ignored);
        returns the mapping it set. Call it on the kernel's main thread, like any widget update."""
        self.stats = probe_stats(self.graph, probes)
        return self.stats


def _dataset_shapes(dataset: DatasetJob) -> tuple[tuple[int, int, int], int, tuple[int, ...] | None]:
    """(C, H, W), classes and label shape of a dataset job, as the trainer reads them (``train.setup``): a
    segmentation dataset's labels are H x W class maps, so the network is checked against maps, not class
    indices."""
    if not dataset.feature_shape:
        raise NetworkError(f"Dataset {dataset.name!r} ({dataset.id}) has no image shape yet: it is "
                           f"{dataset.status}; draw its networks once it is Done")
    return dataset_shapes(dataset)


def show_network(definition: Any, input_shape: tuple[int, int, int] | None = None, nclasses: int = 0,
                 params: dict[str, Any] | None = None, name: str = "network", *,
                 dataset: DatasetJob | None = None, label_shape: tuple[int, ...] | None = None,
                 crop: int | None = None, **widget_kwargs: Any) -> GraphWidget:
    """Build ``definition`` as the trainer does (source text, Tower, Torch7 function, module) and return its
    graph widget. When the network asks for a crop (``crop_len``) it is drawn at that size, as the trainer
    would feed it; ``crop`` is the form's crop, which wins.

    ``dataset``: a dataset job to take the input shape, classes and label shape from (then leave
    ``input_shape`` and ``nclasses`` out). ``label_shape``: one sample's label when labels are class maps
    (segmentation: ``(H, W)`` or ``(H, W, 1)``), so the build's dry run feeds maps to the loss as training
    will. Raises :class:`~digits_widgets.errors.NetworkError` with the user's traceback.
    """
    if dataset is not None:
        if input_shape is not None or nclasses or label_shape is not None:
            raise NetworkError("show_network: give either dataset= or input_shape/nclasses/label_shape, not both")
        input_shape, nclasses, label_shape = _dataset_shapes(dataset)
    if input_shape is None:
        raise NetworkError("show_network needs the input shape (C, H, W), or a dataset= to read it from")
    setup = setup_network(definition, input_shape, nclasses, params=params, name=name, crop=crop,
                          label_shape=label_shape)
    return graph_of(setup, **widget_kwargs)


def graph_of(setup: RunSetup, **widget_kwargs: Any) -> GraphWidget:
    """The graph widget of a network already built (:mod:`~digits_widgets.train.setup`), at its input shape."""
    try:
        graph = network_graph(setup.module, torch.zeros(1, *setup.input_shape))
    except Exception as exc:  # noqa: BLE001 - user code failing in inference mode: show its traceback
        raise network_error(f"The network '{setup.name}' failed in inference mode", exc) from None
    return GraphWidget(graph, **widget_kwargs)
