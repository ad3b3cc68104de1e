"""A Caffe prototxt network as a PyTorch module, following DIGITS' conventions.

The dataset supplies the blobs ``data`` (the input batch) and ``label``; Data / Input layers are dropped.
The train graph holds the layers of phase TRAIN (stage ``train``), the validation graph those of phase TEST
(stage ``val``), and the deploy graph drops layers excluded from stage ``deploy`` and every loss and accuracy
layer. All three share one module per layer name, so ``state_dict`` keys are ``<layer>.weight`` and so on.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
from google.protobuf import text_format
from torch import Tensor, nn

from ...errors import NetworkError
from . import layers as L
from .schema import TEST, TRAIN, NetParameter

__all__ = ['parse_net', 'CaffeNet', 'CaffeModule', 'build_caffe_network', 'layer_lines']

_INPUT = ' input'  # the batch as given, kept apart from 'data', which in-place layers may overwrite
_PARAMETER_TYPES = ('Convolution', 'Deconvolution', 'InnerProduct', 'PReLU', 'BatchNorm', 'Scale', 'Bias')


def parse_net(text: str, name: str = 'network'):
    """The NetParameter in ``text``; a syntax error becomes a NetworkError naming the line."""
    try:
        return text_format.Parse(text, NetParameter())
    except text_format.ParseError as exc:
        line = exc.GetLine()
        where = f' at line {line}' if line else ''
        raise NetworkError(f"The Caffe network '{name}' does not parse{where}: {exc}") from None


def layer_lines(text: str) -> list[int]:
    """The line (1-based) of each top-level ``layer`` block, in order (strings and # comments skipped)."""
    lines, depth, line, i, n = [], 0, 1, 0, len(text)
    word = re.compile(r'layer\s*:?\s*\{')
    while i < n:
        c = text[i]
        if c == '\n':
            line += 1
        elif c == '#':
            while i < n and text[i] != '\n':
                i += 1
            continue
        elif c in '"\'':
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == '\\' else 1
            line += text.count('\n', i, j)
            i = j + 1
            continue
        elif c == '{':
            depth += 1
        elif c == '}':
            depth -= 1
        elif depth == 0 and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == '_')):
            m = word.match(text, i)
            if m:
                lines.append(line)
                line += text.count('\n', i, m.end() - 1)
                i = m.end() - 1
                continue
        i += 1
    return lines


def _rule_matches(rule, phase: int, stages: set[str]) -> bool:
    if rule.HasField('phase') and rule.phase != phase:
        return False
    if any(s not in stages for s in rule.stage):
        return False
    return not any(s in stages for s in rule.not_stage)


def _included(layer, phase: int, stages: set[str]) -> bool:
    """Caffe's NetStateRule logic: with include rules, one must match; else no exclude rule may match."""
    if layer.HasField('phase') and layer.phase != phase:
        return False
    if layer.include:
        return any(_rule_matches(r, phase, stages) for r in layer.include)
    return not any(_rule_matches(r, phase, stages) for r in layer.exclude)


def _module_name(name: str) -> str:
    return name.replace('.', '_') or '_'


@dataclass
class _Layer:
    index: int
    line: int
    proto: Any
    key: str          # the submodule's name
    is_loss: bool
    is_accuracy: bool
    loss_weights: list[float]


class CaffeNet(nn.Module):
    """One submodule per layer (under its name). ``forward(x, y)`` runs the graph of the current mode
    (train: TRAIN phase, eval: TEST phase) and returns ``(output, loss, metrics)``; ``run`` gives every blob."""

    def __init__(self, text: str, input_shape: tuple[int, int, int], name: str = 'network'):
        super().__init__()
        self.net_name = name
        net = parse_net(text, name)
        lines = layer_lines(text)
        self._layers: list[_Layer] = []
        self._specs: dict[str, list] = {}
        # The dataset's batch and labels: 'data' and 'label', or the tops of the first Data / Input layer
        # (or the net's first ``input``) when these name them otherwise.
        self.data_blob, self.label_blob = (list(net.input[:1]) or ['data'])[0], 'label'
        data_layers = [lp for lp in net.layer if lp.type in L.DATA_TYPES and lp.top]
        if data_layers:
            self.data_blob = data_layers[0].top[0]
            if len(data_layers[0].top) > 1:
                self.label_blob = data_layers[0].top[1]
            else:
                labels = [lp.top[0] for lp in data_layers[1:] if lp.top and lp.top[0] != self.data_blob]
                self.label_blob = labels[0] if labels else 'label'
        for i, lp in enumerate(net.layer):
            line = lines[i] if i < len(lines) else 0
            if lp.type in L.DATA_TYPES:
                continue
            if not lp.name:
                raise NetworkError(f"Layer {i + 1} (type {lp.type!r}, line {line}) has no name")
            is_loss = lp.type in L.LOSS_TYPES
            weights = list(lp.loss_weight) or ([1.0] + [0.0] * (len(lp.top) - 1) if is_loss else [])
            self._layers.append(_Layer(i, line, lp, _module_name(lp.name), is_loss, lp.type == 'Accuracy',
                                       weights))
        for layer in self._layers:  # every layer type is checked before any shape is run
            if layer.proto.type not in _KNOWN:
                raise NetworkError(self._where(layer) + f" has type {layer.proto.type!r}, which this Caffe "
                                   "builder does not support (Python layers included); supported types: "
                                   + ', '.join(sorted(_KNOWN)))
        first: dict[str, _Layer] = {}
        for layer in self._layers:  # one module per name: a name may recur (train/val copies) with one type
            seen = first.setdefault(layer.key, layer)
            if seen is not layer and seen.proto.type != layer.proto.type:
                raise NetworkError(self._where(layer) + f" has the name of the {seen.proto.type} layer at line "
                                   f"{seen.line}; layers that share a name share their weights, so give it "
                                   "another name")
        self.train_graph = [ly for ly in self._layers if _included(ly.proto, TRAIN, {'train'})]
        self.val_graph = [ly for ly in self._layers if _included(ly.proto, TEST, {'val'})]
        self.deploy_graph = [ly for ly in self._layers if _included(ly.proto, TEST, {'deploy'})
                             and not ly.is_loss and not ly.is_accuracy]
        for graph in (self.train_graph, self.val_graph, self.deploy_graph):
            keys: set[str] = set()
            for layer in graph:
                if layer.key in keys:
                    raise NetworkError(self._where(layer) + ' shares its name with another layer of the same '
                                       'phase; give each layer its own name')
                keys.add(layer.key)
        if not self.deploy_graph:
            raise NetworkError(f"The Caffe network '{name}' has no layer left in its deploy graph")
        self.output_blob = self.deploy_graph[-1].proto.top[0] if self.deploy_graph[-1].proto.top else None
        if self.output_blob is None:
            raise NetworkError(self._where(self.deploy_graph[-1]) + ' has no top, so the network has no output')
        self._build(input_shape)

    def _where(self, layer: _Layer) -> str:
        return f"Layer '{layer.proto.name}' (type {layer.proto.type}, line {layer.line})"

    def _build(self, input_shape: tuple[int, int, int]) -> None:
        """Create each layer's module from its bottoms' shapes, running zeros through the three graphs."""
        for graph in (self.train_graph, self.val_graph, self.deploy_graph):
            blobs: dict[str, Tensor] = {self.data_blob: torch.zeros(2, *input_shape)}
            for layer in graph:
                bottoms = list(layer.proto.bottom)
                if any(b not in blobs for b in bottoms):
                    if layer.key not in self._modules and layer.proto.type in _PARAMETER_TYPES:
                        missing = [b for b in bottoms if b not in blobs]
                        raise NetworkError(self._where(layer) + f" reads blob(s) {missing} that no earlier "
                                           f"layer makes (the dataset gives '{self.data_blob}' and "
                                           f"'{self.label_blob}')")
                    if layer.key in self._modules:
                        continue
                if layer.key not in self._modules:
                    try:
                        module = L.make_layer(layer.proto, [tuple(blobs[b].shape) if b in blobs else None
                                                            for b in bottoms])
                    except L.CaffeLayerError as exc:
                        raise NetworkError(self._where(layer) + f': {exc}') from None
                    self.add_module(layer.key, module)
                    self._specs[layer.key] = list(layer.proto.param)
                if layer.is_loss or layer.is_accuracy or any(b not in blobs for b in bottoms):
                    continue
                try:
                    with torch.no_grad():
                        self._run_layer(layer, blobs, eval_mode=True)
                except NetworkError:
                    raise
                except Exception as exc:  # noqa: BLE001 - shapes that do not fit
                    raise NetworkError(self._where(layer) + f' fails on its input shapes '
                                       f'{[tuple(blobs[b].shape) for b in bottoms]}: {exc}') from None

    def _run_layer(self, layer: _Layer, blobs: dict[str, Tensor], eval_mode: bool = False) -> None:
        module = self._modules[layer.key]
        inputs = [blobs[b] for b in layer.proto.bottom]
        if eval_mode and module.training:
            module.eval()
            try:
                out = module(*inputs)
            finally:
                module.train()
        else:
            out = module(*inputs)
        tops = list(layer.proto.top)
        if not tops:
            return
        if len(tops) != 1:
            raise NetworkError(self._where(layer) + f' has {len(tops)} tops; this layer type makes one')
        blobs[tops[0]] = out

    def graph(self) -> list[_Layer]:
        return self.train_graph if self.training else self.val_graph

    def run(self, x: Tensor, y: Tensor | None = None, blobs: dict[str, Tensor] | None = None,
            done: set[int] | None = None) -> tuple[dict[str, Tensor], set[int]]:
        """Run every layer of the current graph whose bottoms exist; ``label`` exists only when ``y`` is given.
        Layers already in ``done`` are skipped (so a second call with the label finishes the graph)."""
        blobs = {self.data_blob: x, _INPUT: x} if blobs is None else blobs
        done = set() if done is None else done
        if y is not None:
            blobs[self.label_blob] = y
        for layer in self.graph():
            if layer.index in done or any(b not in blobs for b in layer.proto.bottom):
                continue
            if y is None and (layer.is_loss or layer.is_accuracy):
                continue
            self._run_layer(layer, blobs)
            done.add(layer.index)
        return blobs, done

    def output_of(self, blobs: dict[str, Tensor]) -> Tensor:
        if self.output_blob in blobs:
            return blobs[self.output_blob]
        # The deploy output is not in this phase's graph: run the deploy graph on the same input.
        deploy: dict[str, Tensor] = {self.data_blob: blobs[_INPUT]}
        for layer in self.deploy_graph:
            if all(b in deploy for b in layer.proto.bottom):
                self._run_layer(layer, deploy)
        return deploy[self.output_blob]

    def losses(self, blobs: dict[str, Tensor]) -> tuple[Tensor | None, dict[str, Tensor]]:
        """The weighted sum of the graph's loss tops and the accuracy tops, from blobs of a full run."""
        total: Tensor | None = None
        metrics: dict[str, Tensor] = {}
        for layer in self.graph():
            for top, weight in zip(layer.proto.top, layer.loss_weights):
                if weight and top in blobs:
                    part = blobs[top].sum() * weight
                    total = part if total is None else total + part
            if layer.is_loss:  # each loss top is charted too, except one named like the total itself
                for top in layer.proto.top:
                    if top in blobs and top != 'loss':
                        metrics[top] = blobs[top].detach().reshape(())
            if layer.is_accuracy:
                for top in layer.proto.top:
                    if top in blobs:
                        metrics[top] = blobs[top].detach().reshape(())
        return total, metrics

    def forward(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor | None, dict[str, Tensor]]:
        blobs, _ = self.run(x, y)
        loss, metrics = self.losses(blobs) if y is not None else (None, {})
        return self.output_of(blobs), loss, metrics

    def param_groups(self, base_lr: float, weight_decay: float) -> list[dict]:
        """Optimizer groups from each layer's ``param { lr_mult decay_mult }`` (the i-th spec for its i-th
        blob: weight, then bias). ``lr_mult: 0`` freezes the blob (``requires_grad`` False, no group)."""
        groups: list[dict] = []
        for key, module in self._modules.items():
            specs = self._specs.get(key, [])
            for i, (pname, param) in enumerate(module.named_parameters(recurse=False)):
                lr_mult = specs[i].lr_mult if i < len(specs) else 1.0
                decay_mult = specs[i].decay_mult if i < len(specs) else 1.0
                if lr_mult == 0:
                    param.requires_grad_(False)
                    continue
                groups.append({'params': [param], 'lr': base_lr * lr_mult,
                               'weight_decay': weight_decay * decay_mult, 'name': f'{key}.{pname}'})
        return groups

    def freeze(self) -> None:
        """``requires_grad`` False for every blob whose ``lr_mult`` is 0."""
        self.param_groups(0.0, 0.0)


class CaffeModule(nn.Module):
    """The 'module' style face of a CaffeNet: ``forward(x)`` returns the output and keeps the batch's blobs;
    :meth:`loss` (the ``loss_fn``) sets ``label`` to the target, runs the label-dependent layers and returns
    ``{'loss': total, <loss and accuracy tops>: value}``. State dict keys are the CaffeNet's (``conv1.weight``)."""

    def __init__(self, net: CaffeNet):
        super().__init__()
        self.net = net
        object.__setattr__(self, '_kept', None)
        self.register_state_dict_post_hook(_strip_net)
        self.register_load_state_dict_pre_hook(_add_net)

    def forward(self, x: Tensor) -> Tensor:
        blobs, done = self.net.run(x)
        object.__setattr__(self, '_kept', (blobs, done, self.net.training))
        return self.net.output_of(blobs)

    def loss(self, output: Tensor, target: Tensor) -> dict[str, Tensor]:
        if self._kept is None:
            raise NetworkError('The Caffe network computes its loss after a forward pass')
        blobs, done, training = self._kept
        object.__setattr__(self, '_kept', None)
        was = self.net.training
        self.net.train(training)
        try:
            blobs, _ = self.net.run(blobs[_INPUT], target, blobs, done)
            total, metrics = self.net.losses(blobs)
        finally:
            self.net.train(was)
        if total is None:
            raise NetworkError(f"The Caffe network '{self.net.net_name}' has no loss layer in its "
                               f"{'train' if training else 'validation'} graph")
        return {'loss': total, **metrics}

    def param_groups(self, base_lr: float, weight_decay: float) -> list[dict]:
        return self.net.param_groups(base_lr, weight_decay)


def _strip_net(module, state_dict, prefix, local_metadata) -> None:
    head = prefix + 'net.'
    for key in [k for k in state_dict if k.startswith(head)]:
        state_dict[prefix + key[len(head):]] = state_dict.pop(key)


def _add_net(module, state_dict, prefix, local_metadata, strict, missing, unexpected, errors) -> None:
    head = prefix + 'net.'
    for key in [k for k in state_dict if k.startswith(prefix) and not k.startswith(head)]:
        state_dict[head + key[len(prefix):]] = state_dict.pop(key)


_KNOWN = ('Convolution', 'Deconvolution', 'InnerProduct', 'Pooling', 'ReLU', 'PReLU', 'Sigmoid', 'TanH', 'Power',
          'Dropout', 'LRN', 'Concat', 'Eltwise', 'Flatten', 'Softmax', 'Accuracy', 'BatchNorm', 'Scale', 'Bias',
          'Reshape') + L.LOSS_TYPES


def build_caffe_network(text: str, input_shape: tuple[int, int, int], nclasses: int = 0,
                        name: str = 'network', label_shape: tuple[int, ...] | None = None):
    """A :class:`~digits_widgets.nets.network.Network` (style ``'module'``) from Caffe prototxt ``text`` for
    inputs of ``input_shape`` ``(C, H, W)``. Blobs with ``lr_mult: 0`` are frozen at once; the optimizer groups
    come from ``network.module.inner.param_groups(base_lr, weight_decay)``. Raises NetworkError when the text
    does not parse (naming the line) or a layer is unsupported or does not fit (naming layer, type and line).
    ``label_shape`` (the dataset's, when known) lets the build's dry run check the loss layers too, as
    :func:`~digits_widgets.nets.network.build_network` does."""
    from ..network import Network, TrainableNet, _dry_run, _shape

    shape = _shape(input_shape)
    net = CaffeNet(text, shape, name)
    net.freeze()
    inner = CaffeModule(net)
    module = TrainableNet(inner, 'module', inner.loss, None, int(nclasses))
    module.train()
    try:
        if label_shape is None:
            _dry_run(module, shape, int(nclasses))
        else:
            _dry_run(module, shape, int(nclasses), tuple(int(v) for v in label_shape))
    except NetworkError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise NetworkError(f"The Caffe network '{name}' does not build: {exc}") from None
    return Network(module=module, style='module', source=text)
