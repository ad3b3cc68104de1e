"""Which layers of a Caffe prototxt each graph runs, and where each graph takes the batch and the label.

Kept apart from the module that runs them (``net.py``) because this part is all prototxt and no tensors: it
reads the layers (with DIGITS' adjustments for a classification dataset), checks every type and name before
anything is built, filters the train, validation and deploy graphs by phase and stage as Caffe's
``Net::FilterNet`` does, and finds each graph's input blobs. Every error names the layer, its type and its
line, because that is where the user fixes it.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from ...errors import NetworkError
from . import blob_layers as B
from . import layers as L
from . import loss_layers as LL
from .prototxt import included, layer_lines, parse_net
from .schema import TEST, TRAIN

__all__ = ['GraphLayer', 'GraphIO', 'Wiring', 'wire', 'where', 'module_name', 'STATES', 'KNOWN_TYPES']

# graph -> (phase, stages) as DIGITS runs them: train and val are the solver's phases, deploy is inference
STATES = {'train': (TRAIN, {'train'}), 'val': (TEST, {'val'}), 'deploy': (TEST, {'deploy'})}
KNOWN_TYPES = L.LAYER_TYPES + B.BLOB_TYPES + LL.LOSS_TYPES + ('Accuracy',)


def module_name(name: str) -> str:
    """A layer name as a submodule name (``nn.Module`` names cannot hold a dot)."""
    return name.replace('.', '_') or '_'


@dataclass
class GraphLayer:
    """One layer of the prototxt as the graphs use it: its place, its line, and how its tops weigh in the loss."""

    index: int
    line: int
    proto: Any
    key: str          # the submodule's name
    is_loss: bool
    is_accuracy: bool
    loss_weights: list[float]


@dataclass
class GraphIO:
    """Where one graph takes the batch: ``data`` (times ``scale``, a Data layer's ``transform_param.scale``)
    and ``label``."""
    data: str
    label: str
    scale: float = 1.0


@dataclass
class Wiring:
    """The checked layers, the three graphs (``graphs['train' | 'val' | 'deploy']``), each graph's input
    blobs, the deploy graph's output blob, and the layers left out (``dropped``)."""

    layers: list[GraphLayer]
    graphs: dict[str, list[GraphLayer]]
    io: dict[str, GraphIO]
    output_blob: str
    dropped: list[str]


def where(layer: GraphLayer) -> str:
    """How errors name a layer: its name, type and line."""
    return f"Layer '{layer.proto.name}' (type {layer.proto.type}, line {layer.line})"


def wire(text: str, name: str = 'network', nclasses: int = 0) -> Wiring:
    """The :class:`Wiring` of the prototxt ``text``. With a classification dataset (``nclasses`` > 0), as
    DIGITS does, an InnerProduct without ``num_output`` gets ``nclasses`` outputs and an Accuracy layer whose
    ``top_k`` exceeds ``nclasses`` is left out (with a warning). Raises NetworkError when the text does not
    parse, a layer is unsupported or misnamed, or a graph has no input or output."""
    net = parse_net(text, name)
    layers, data_layers, dropped = _read_layers(net, layer_lines(text), name, nclasses)
    _check_layers(layers)
    graphs = {'train': [ly for ly in layers if included(ly.proto, *STATES['train'])],
              'val': [ly for ly in layers if included(ly.proto, *STATES['val'])],
              'deploy': [ly for ly in layers if included(ly.proto, *STATES['deploy'])
                         and not ly.is_loss and not ly.is_accuracy]}
    for graph in graphs.values():
        keys: set[str] = set()
        for layer in graph:
            if layer.key in keys:
                raise NetworkError(where(layer) + ' shares its name with another layer of the same '
                                   'phase; give each layer its own name')
            keys.add(layer.key)
    if not graphs['deploy']:
        raise NetworkError(f"The Caffe network '{name}' has no layer left in its deploy graph")
    train_io = _graph_io(net, data_layers, 'train', 'label', graphs['train'])
    io = {'train': train_io, 'val': _graph_io(net, data_layers, 'val', train_io.label, graphs['val']),
          'deploy': _graph_io(net, data_layers, 'deploy', train_io.label, graphs['deploy'])}
    last = graphs['deploy'][-1]
    if not last.proto.top:
        raise NetworkError(where(last) + ' has no top, so the network has no output')
    return Wiring(layers, graphs, io, last.proto.top[0], dropped)


def _read_layers(net, lines: list[int], name: str, nclasses: int) -> tuple[list[GraphLayer], list, list[str]]:
    """The layers to build, the Data / Input layers (not run: the dataset feeds their tops), and the names
    of the layers left out."""
    layers: list[GraphLayer] = []
    data_layers, dropped = [], []
    for i, lp in enumerate(net.layer):
        line = lines[i] if i < len(lines) else 0
        if lp.type in L.DATA_TYPES:
            if lp.top:
                data_layers.append(lp)
            continue
        if not lp.name:
            raise NetworkError(f"Layer {i + 1} (type {lp.type!r}, line {line}) has no name")
        if nclasses > 0 and lp.type == 'Accuracy' and lp.accuracy_param.HasField('top_k') \
                and lp.accuracy_param.top_k > nclasses:
            dropped.append(lp.name)
            warnings.warn(f"Caffe network '{name}': layer '{lp.name}' (line {line}) is left out because its "
                          f"top_k {lp.accuracy_param.top_k} exceeds the {nclasses} classes",
                          stacklevel=4)   # the caller of CaffeNet(...), past wire and CaffeNet.__init__
            continue
        if nclasses > 0 and lp.type == 'InnerProduct' and not lp.inner_product_param.HasField('num_output'):
            lp.inner_product_param.num_output = int(nclasses)
        python_loss = LL.python_loss_of(lp) is not None   # a Python loss weighs 0 unless it says so
        is_loss = lp.type in LL.LOSS_TYPES or python_loss
        weights = list(lp.loss_weight) or ([1.0 * (not python_loss)] + [0.0] * (len(lp.top) - 1)
                                           if is_loss else [])
        layers.append(GraphLayer(i, line, lp, module_name(lp.name), is_loss, lp.type == 'Accuracy', weights))
    return layers, data_layers, dropped


def _check_layers(layers: list[GraphLayer]) -> None:
    """Every layer type is checked before any shape is run; layers that share a name share one module, so
    they must share a type too."""
    for layer in layers:
        if layer.proto.type == 'Python' and not layer.is_loss:
            p = layer.proto.python_param
            raise NetworkError(where(layer) + f" is Python layer '{p.layer}' of module '{p.module}', "
                               "which does not run here: Caffe Python layers are not supported, except "
                               "the DIGITS examples' losses " + ', '.join(
                                   f"{m}.{n}" for m, n in LL.PYTHON_LOSSES) + " (built in)")
        if layer.proto.type not in KNOWN_TYPES and not layer.is_loss:
            raise NetworkError(where(layer) + f" has type {layer.proto.type!r}, which this Caffe "
                               "builder does not support (Python layers included); supported types: "
                               + ', '.join(sorted(KNOWN_TYPES)))
    first: dict[str, GraphLayer] = {}
    for layer in layers:  # one module per name: a name may recur (train/val copies) with one type
        seen = first.setdefault(layer.key, layer)
        if seen is not layer and seen.proto.type != layer.proto.type:
            raise NetworkError(where(layer) + f" has the name of the {seen.proto.type} layer at line "
                               f"{seen.line}; layers that share a name share their weights, so give it "
                               "another name")


def _graph_io(net, data_layers: list, state: str, label: str, graph: list[GraphLayer]) -> GraphIO:
    """The batch goes to the first top of this graph's first Data / Input layer (the label to its second
    top, or to another data layer's), else to the net's ``input``, else to the first blob a layer of the
    graph reads before any layer makes it (DIGITS' deploy input is ``data``)."""
    mine = [lp for lp in data_layers if included(lp, *STATES[state])]
    if mine:
        top = mine[0].top
        if len(top) > 1:
            label = top[1]
        else:
            label = next((lp.top[0] for lp in mine[1:] if lp.top[0] != top[0]), label)
        scale = mine[0].transform_param.scale if mine[0].HasField('transform_param') else 1.0
        return GraphIO(top[0], label, float(scale))
    if net.input:
        return GraphIO(net.input[0], label)
    made: set[str] = set()
    for layer in graph:
        for bottom in layer.proto.bottom:
            if bottom not in made and bottom != label:
                return GraphIO(bottom, label)
        made.update(layer.proto.top)
    return GraphIO('data', label)
