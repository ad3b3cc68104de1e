"""The network as an interactive graph: an anywidget whose front end is ``js/src/graph.ts``.

Python builds the JSON graph (:func:`~digits_widgets.ui.graph_trace.network_graph`) and the browser lays it
out and draws it: layers as boxes with type, output shape and parameter count, edges as data flow, zoom with
the wheel, pan by dragging, a click shows a layer's details and syncs its id back as ``selected``. After
inference, :meth:`GraphWidget.set_stats` adds each layer's activation mean, std and histogram to its details.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

import anywidget
import torch
import traitlets

from ..infer.probes import Probe
from ..nets.network import build_for_input
from ..nets.source import network_error
from .graph_trace import INPUT_ID, network_graph

__all__ = ["GraphWidget", "network_graph", "show_network", "probe_stats", "INPUT_ID"]

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
    """The network graph. ``graph``: from :func:`network_graph`; ``direction``: ``'LR'`` (left to right) or
    ``'TB'`` (top down); ``selected``: id of the clicked node (``''`` = none), synced both ways; ``stats``:
    node id → ``{"mean", "std", "histogram", "edges"}``; ``height``: pixels of the drawing area."""

    _esm = _BUNDLE
    graph = traitlets.Dict().tag(sync=True)
    direction = traitlets.Enum(("LR", "TB"), default_value="LR").tag(sync=True)
    selected = traitlets.Unicode("").tag(sync=True)
    stats = traitlets.Dict().tag(sync=True)
    height = traitlets.Int(480, min=120).tag(sync=True)

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


def show_network(definition: Any, input_shape: tuple[int, int, int], nclasses: int = 0,
                 params: dict[str, Any] | None = None, name: str = "network", **widget_kwargs: Any) -> GraphWidget:
    """Build ``definition`` as the trainer does (source text, Tower, Torch7 function, module) and return its
    graph widget. When the network asks for a crop (``crop_len``) it is drawn at that size, as the trainer
    would feed it. Raises :class:`~digits_widgets.errors.NetworkError` with the user's traceback."""
    net, (c, h, w) = build_for_input(definition, input_shape, nclasses, params, name)
    try:
        graph = network_graph(net.module, torch.zeros(1, c, h, w))
    except Exception as exc:  # noqa: BLE001 - user code failing in inference mode: show its traceback
        raise network_error(f"The network '{name}' failed in inference mode", exc) from None
    return GraphWidget(graph, **widget_kwargs)
