"""A Caffe prototxt network as a PyTorch module, following DIGITS' conventions.

The train graph holds the layers of phase TRAIN (stage ``train``), the validation graph those of phase TEST
(stage ``val``), and the deploy graph drops layers excluded from stage ``deploy`` and every loss and accuracy
layer. All three share one module per layer name, so ``state_dict`` keys are ``<layer>.weight`` and so on.
The dataset supplies the batch and the label: Data / Input layers are not run, but each graph's batch goes to
its Data layer's first top (times its ``transform_param.scale``; mean, crop and mirror are the dataset's
options) and the label to its second; without one, to the net's ``input`` or the first blob the graph reads
(``data`` in DIGITS' deploy graphs). Which layers each graph holds and where it takes the batch is read
from the prototxt in ``wiring.py``; this module builds the layers' modules and runs them.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ...errors import NetworkError
from ..built import Network, check_input_shape, dry_run
from ..trainable import TrainableNet
from . import blob_layers as B
from . import layers as L
from . import loss_layers as LL
from .wiring import GraphIO, GraphLayer, wire, where

__all__ = ['CaffeNet', 'CaffeModule', 'build_caffe_network', 'make_module']

_INPUT = ' input'  # the batch as given, kept apart from 'data', which in-place layers may overwrite
_PARAMETER_TYPES = ('Convolution', 'Deconvolution', 'InnerProduct', 'PReLU', 'BatchNorm', 'Scale', 'Bias')


def make_module(layer, shapes: list) -> nn.Module:
    """The module for any supported layer type (see ``layers``, ``blob_layers`` and ``loss_layers``)."""
    if layer.type in B.BLOB_TYPES:
        return B.make_blob_layer(layer, shapes)
    if layer.type in LL.LOSS_TYPES or layer.type == 'Accuracy' or LL.python_loss_of(layer) is not None:
        return LL.make_loss_layer(layer, shapes)
    return L.make_layer(layer, shapes)


class Blobs(dict):
    """The blobs of one pass, by name, plus what each layer read and made (``trace``), so the deploy graph can
    reuse the work of the layers it shares with the pass."""

    def __init__(self) -> None:
        super().__init__()
        self.trace: dict[int, tuple[list[Tensor], list[Tensor]]] = {}


def _same(a: Tensor, b: Tensor) -> bool:
    return a is b or (a.shape == b.shape and a.dtype == b.dtype and a.device == b.device and torch.equal(a, b))


class CaffeNet(nn.Module):
    """One submodule per layer (under its name). ``forward(x, y)`` runs the graph of the current mode
    (train: TRAIN phase, eval: TEST phase) and returns ``(output, loss, metrics)``; ``run`` gives every blob.

    As DIGITS does with a classification dataset (``nclasses`` > 0), an InnerProduct without ``num_output`` gets
    ``nclasses`` outputs and an Accuracy layer whose ``top_k`` exceeds ``nclasses`` is left out."""

    def __init__(self, text: str, input_shape: tuple[int, int, int], name: str = 'network', nclasses: int = 0):
        super().__init__()
        self.net_name = name
        wiring = wire(text, name, nclasses)
        self._layers = wiring.layers
        self._specs: dict[str, list] = {}
        self.dropped = wiring.dropped
        self.train_graph, self.val_graph = wiring.graphs['train'], wiring.graphs['val']
        self.deploy_graph = wiring.graphs['deploy']
        self.io = wiring.io
        self.data_blob, self.label_blob = self.io['train'].data, self.io['train'].label
        self.output_blob = wiring.output_blob
        self._build(input_shape)
        self._share_named_params()

    def _graph_of(self, state: str) -> list[GraphLayer]:
        return {'train': self.train_graph, 'val': self.val_graph, 'deploy': self.deploy_graph}[state]

    def _build(self, input_shape: tuple[int, int, int]) -> None:
        """Create each layer's module from its bottoms' shapes, running zeros through the three graphs (a layer
        that an earlier graph ran on the same shapes is not run again: its tops' shapes are known)."""
        shapes_seen: dict[int, tuple[list, list]] = {}
        for state in ('train', 'val', 'deploy'):
            blobs: dict[str, Tensor] = {self.io[state].data: torch.zeros(2, *input_shape)}
            for layer in self._graph_of(state):
                bottoms = list(layer.proto.bottom)
                if any(b not in blobs for b in bottoms):
                    if layer.key not in self._modules and layer.proto.type in _PARAMETER_TYPES:
                        missing = [b for b in bottoms if b not in blobs]
                        raise NetworkError(where(layer) + f" reads blob(s) {missing} that no earlier "
                                           f"layer makes (the dataset gives '{self.io[state].data}' and "
                                           f"'{self.io[state].label}')")
                    if layer.key in self._modules:
                        continue
                if layer.key not in self._modules:
                    try:
                        module = make_module(layer.proto, [tuple(blobs[b].shape) if b in blobs else None
                                                           for b in bottoms])
                    except L.CaffeLayerError as exc:
                        raise NetworkError(where(layer) + f': {exc}') from None
                    self.add_module(layer.key, module)
                    self._specs[layer.key] = list(layer.proto.param)
                if layer.is_loss or layer.is_accuracy or any(b not in blobs for b in bottoms):
                    continue
                in_shapes = [tuple(blobs[b].shape) for b in bottoms]
                seen = shapes_seen.get(layer.index)
                if seen is not None and seen[0] == in_shapes:
                    blobs.update((top, torch.zeros(shape)) for top, shape in zip(layer.proto.top, seen[1]))
                    continue
                try:
                    with torch.no_grad():
                        self._run_layer(layer, blobs, eval_mode=True)
                    shapes_seen[layer.index] = (in_shapes, [tuple(blobs[t].shape) for t in layer.proto.top])
                except NetworkError:
                    raise
                except Exception as exc:  # noqa: BLE001 - shapes that do not fit
                    raise NetworkError(where(layer) + f' fails on its input shapes '
                                       f'{[tuple(blobs[b].shape) for b in bottoms]}: {exc}') from None

    def _share_named_params(self) -> None:
        """Caffe's ``param { name: ... }``: blobs with one name are one tensor (the first layer's), as the
        siamese networks need; their shapes must agree."""
        owners: dict[str, tuple[GraphLayer, nn.Parameter]] = {}
        seen: set[str] = set()
        for layer in self._layers:
            if layer.key in seen or layer.key not in self._modules:
                continue
            seen.add(layer.key)
            module, specs = self._modules[layer.key], self._specs.get(layer.key, [])
            for i, (pname, param) in enumerate(list(module.named_parameters(recurse=False))):
                if i >= len(specs) or not specs[i].name:
                    continue
                owner = owners.setdefault(specs[i].name, (layer, param))
                if owner[1] is param:
                    continue
                if owner[1].shape != param.shape:
                    raise NetworkError(where(layer) + f" shares param '{specs[i].name}' with layer "
                                       f"'{owner[0].proto.name}' (line {owner[0].line}), but its shape "
                                       f"{tuple(param.shape)} is not {tuple(owner[1].shape)}")
                setattr(module, pname, owner[1])

    def _run_layer(self, layer: GraphLayer, blobs: dict[str, Tensor], eval_mode: bool = False) -> None:
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
        self._store(layer, blobs, inputs, list(out) if isinstance(out, (tuple, list)) else [out])

    def _store(self, layer: GraphLayer, blobs: dict[str, Tensor], inputs: list[Tensor], outs: list[Tensor]) -> None:
        tops = list(layer.proto.top)
        if len(tops) != len(outs):
            raise NetworkError(where(layer) + f' has {len(tops)} tops; this layer makes {len(outs)}')
        blobs.update(zip(tops, outs))
        if isinstance(blobs, Blobs):
            blobs.trace[layer.index] = (inputs, outs)

    def graph(self) -> list[GraphLayer]:
        return self.train_graph if self.training else self.val_graph

    def graph_io(self) -> GraphIO:
        """Where the current graph (train or val) takes the batch and the label."""
        return self.io['train' if self.training else 'val']

    def run(self, x: Tensor, y: Tensor | None = None, blobs: dict[str, Tensor] | None = None,
            done: set[int] | None = None) -> tuple[dict[str, Tensor], set[int]]:
        """Run every layer of the current graph whose bottoms exist; the label exists only when ``y`` is given.
        Layers already in ``done`` are skipped (so a second call with the label finishes the graph)."""
        io = self.graph_io()
        if blobs is None:
            blobs = Blobs()
            blobs[_INPUT] = x
            blobs[io.data] = x * io.scale if io.scale != 1 else x
        done = set() if done is None else done
        if y is not None:
            blobs[io.label] = y
        for layer in self.graph():
            if layer.index in done or any(b not in blobs for b in layer.proto.bottom):
                continue
            if y is None and (layer.is_loss or layer.is_accuracy):
                continue
            self._run_layer(layer, blobs)
            done.add(layer.index)
        return blobs, done

    def output_of(self, blobs: dict[str, Tensor]) -> Tensor:
        """The deploy graph's output for the pass in ``blobs``: its own blob when the pass made it, else the
        deploy graph run on the same batch, reusing each layer the pass already ran on the same inputs."""
        if self.output_blob in blobs:
            return blobs[self.output_blob]
        trace = blobs.trace if isinstance(blobs, Blobs) else {}
        deploy: dict[str, Tensor] = {self.io['deploy'].data: blobs[_INPUT]}
        for layer in self.deploy_graph:
            if not all(b in deploy for b in layer.proto.bottom):
                continue
            inputs = [deploy[b] for b in layer.proto.bottom]
            seen = trace.get(layer.index)
            if seen is not None and len(seen[0]) == len(inputs) and all(map(_same, inputs, seen[0])):
                self._store(layer, deploy, inputs, seen[1])
            else:
                self._run_layer(layer, deploy)
        if self.output_blob not in deploy:
            raise NetworkError(f"The Caffe network '{self.net_name}' does not make its output "
                               f"'{self.output_blob}' from the input '{self.io['deploy'].data}'")
        return deploy[self.output_blob]

    def losses(self, blobs: dict[str, Tensor]) -> tuple[Tensor | None, dict[str, Tensor]]:
        """The weighted sum of the graph's loss tops, and the loss and accuracy tops that are single values
        (a loss top named ``loss`` is left out of them: that name is the total's)."""
        total: Tensor | None = None
        metrics: dict[str, Tensor] = {}
        for layer in self.graph():
            for top, weight in zip(layer.proto.top, layer.loss_weights):
                if weight and top in blobs:
                    part = blobs[top].sum() * weight
                    total = part if total is None else total + part
            if layer.is_loss or layer.is_accuracy:
                for top in layer.proto.top:
                    if top in blobs and blobs[top].numel() == 1 and not (layer.is_loss and top == 'loss'):
                        metrics[top] = blobs[top].detach().reshape(())
        return total, metrics

    def forward(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor | None, dict[str, Tensor]]:
        blobs, _ = self.run(x, y)
        loss, metrics = self.losses(blobs) if y is not None else (None, {})
        return self.output_of(blobs), loss, metrics

    def param_groups(self, base_lr: float, weight_decay: float) -> list[dict]:
        """Optimizer groups from each layer's ``param { lr_mult decay_mult }`` (the i-th spec for its i-th
        blob: weight, then bias). ``lr_mult: 0`` freezes the blob (``requires_grad`` False, no group); a blob
        shared by name is in one group, with its first layer's multipliers."""
        groups: list[dict] = []
        placed: set[int] = set()
        for key, module in self._modules.items():
            specs = self._specs.get(key, [])
            for i, (pname, param) in enumerate(module.named_parameters(recurse=False)):
                if id(param) in placed:
                    continue
                placed.add(id(param))
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


def build_caffe_network(text: str, input_shape: tuple[int, int, int], nclasses: int = 0,
                        name: str = 'network', label_shape: tuple[int, ...] | None = None) -> Network:
    """A :class:`~digits_widgets.nets.built.Network` (style ``'module'``) from Caffe prototxt ``text`` for
    inputs of ``input_shape`` ``(C, H, W)``. Blobs with ``lr_mult: 0`` are frozen at once; the optimizer groups
    come from ``network.module.inner.param_groups(base_lr, weight_decay)``. Raises NetworkError when the text
    does not parse (naming the line) or a layer is unsupported or does not fit (naming layer, type and line).
    ``label_shape`` (the dataset's, when known) lets the build's dry run check the loss layers too, as
    :func:`~digits_widgets.nets.network.build_network` does."""
    shape = check_input_shape(input_shape)
    net = CaffeNet(text, shape, name, int(nclasses))
    net.freeze()
    inner = CaffeModule(net)
    module = TrainableNet(inner, 'module', inner.loss, None, int(nclasses))
    module.train()
    try:
        if label_shape is None:
            dry_run(module, shape, int(nclasses))
        else:
            dry_run(module, shape, int(nclasses), tuple(int(v) for v in label_shape))
    except NetworkError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise NetworkError(f"The Caffe network '{name}' does not build: {exc}") from None
    return Network(module=module, style='module', source=text)
