"""Caffe ``.caffemodel`` weights (a binary NetParameter) into and out of a :class:`CaffeNet`.

Loading follows Caffe's ``Net::CopyTrainedLayersFrom``, which DIGITS used for "pretrained model": layers are
matched by name; a caffemodel layer that the network lacks is skipped, a network layer that the caffemodel lacks
keeps its filler (so renaming a layer is how one asks for it to be retrained), and a same-named layer whose
blobs differ in number or shape is an error naming the layer and both shapes. Nothing is copied unless every
matched layer fits. The V1 ``layers`` format and its legacy 4-D blob shapes load too.

Blob order and shapes are Caffe's: Convolution ``(out, in/group, kh, kw)`` + bias, Deconvolution
``(in, out/group, kh, kw)`` + bias (PyTorch's layouts exactly), InnerProduct ``(out, in)`` + bias, BatchNorm
mean, variance and a scale factor they are divided by, Scale gamma [+ beta], Bias beta, PReLU slopes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from google.protobuf.message import DecodeError
from torch import Tensor, nn

from ...errors import DigitsError
from .net import CaffeModule, CaffeNet
from .schema import MESSAGES, CaffeModel, NetParameter

__all__ = ['CaffemodelError', 'Caffemodel', 'LayerBlobs', 'LoadReport', 'read_caffemodel', 'load_caffemodel',
           'export_caffemodel', 'caffe_net_of', 'looks_like_caffemodel']

# V1 layer type names → today's type strings (Caffe's UpgradeV1LayerType), for reports and errors
_V1_TYPES = {
    'ABSVAL': 'AbsVal', 'ACCURACY': 'Accuracy', 'ARGMAX': 'ArgMax', 'BNLL': 'BNLL', 'CONCAT': 'Concat',
    'CONTRASTIVE_LOSS': 'ContrastiveLoss', 'CONVOLUTION': 'Convolution', 'DATA': 'Data',
    'DECONVOLUTION': 'Deconvolution', 'DROPOUT': 'Dropout', 'DUMMY_DATA': 'DummyData',
    'EUCLIDEAN_LOSS': 'EuclideanLoss', 'ELTWISE': 'Eltwise', 'EXP': 'Exp', 'FLATTEN': 'Flatten',
    'HDF5_DATA': 'HDF5Data', 'HDF5_OUTPUT': 'HDF5Output', 'HINGE_LOSS': 'HingeLoss', 'IM2COL': 'Im2col',
    'IMAGE_DATA': 'ImageData', 'INFOGAIN_LOSS': 'InfogainLoss', 'INNER_PRODUCT': 'InnerProduct', 'LRN': 'LRN',
    'MEMORY_DATA': 'MemoryData', 'MULTINOMIAL_LOGISTIC_LOSS': 'MultinomialLogisticLoss', 'MVN': 'MVN',
    'POOLING': 'Pooling', 'POWER': 'Power', 'RELU': 'ReLU', 'SIGMOID': 'Sigmoid',
    'SIGMOID_CROSS_ENTROPY_LOSS': 'SigmoidCrossEntropyLoss', 'SILENCE': 'Silence', 'SOFTMAX': 'Softmax',
    'SOFTMAX_LOSS': 'SoftmaxWithLoss', 'SPLIT': 'Split', 'SLICE': 'Slice', 'TANH': 'TanH',
    'WINDOW_DATA': 'WindowData', 'THRESHOLD': 'Threshold',
}
_V1_ENUM = MESSAGES['V1LayerParameter'].LayerType


class CaffemodelError(DigitsError, ValueError):
    """A caffemodel that cannot be read, or whose weights do not fit the network they are loaded into."""


@dataclass
class LayerBlobs:
    """One caffemodel layer: its name, type and blobs (float32 arrays in the file's shapes). ``legacy[i]`` is
    True when blob ``i`` gave the deprecated 4-D num/channels/height/width instead of a shape."""
    name: str
    type: str
    blobs: list[np.ndarray]
    legacy: list[bool]


@dataclass
class Caffemodel:
    name: str
    layers: list[LayerBlobs]
    source: str

    def layer(self, name: str) -> LayerBlobs:
        """The last layer of that name (Caffe copies each in turn, so the last one wins)."""
        found = [lw for lw in self.layers if lw.name == name]
        if not found:
            raise KeyError(f"The caffemodel {self.source} has no layer {name!r}")
        return found[-1]


@dataclass
class LoadReport:
    """What :func:`load_caffemodel` did, as lists of layer names (``str(report)`` is the train.log text)."""
    source: str
    loaded: dict[str, list[tuple[int, ...]]] = field(default_factory=dict)   # layer → its blobs' shapes
    skipped: list[str] = field(default_factory=list)    # in the caffemodel with weights, not in the network
    fresh: list[str] = field(default_factory=list)      # in the network with weights, not in the caffemodel
    types: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        def shapes(name: str) -> str:
            return ', '.join('x'.join(map(str, s)) or 'scalar' for s in self.loaded[name])
        lines = [f"Loaded {len(self.loaded)} layers from the caffemodel {self.source}"
                 + (': ' + '; '.join(f"{n} ({self.types[n]}: {shapes(n)})" for n in self.loaded)
                    if self.loaded else '')]
        if self.skipped:
            lines.append("Skipped, not in this network: "
                         + ', '.join(f"{n} ({self.types[n]})" for n in self.skipped))
        if self.fresh:
            lines.append("Kept their fillers, not in the caffemodel (renamed or new layers train from scratch): "
                         + ', '.join(f"{n} ({self.types[n]})" for n in self.fresh))
        return '\n'.join(lines)


# ---- reading ------------------------------------------------------------------------------------------------

def looks_like_caffemodel(path: str | Path) -> bool:
    """A ``.caffemodel`` name, or bytes that open as a NetParameter does (not a PyTorch zip or pickle)."""
    path = Path(path)
    if path.suffix.lower() == '.caffemodel':
        return True
    with open(path, 'rb') as f:
        head = f.read(2)
    return head[:2] != b'PK' and head[:1] in (b'\x0a', b'\x12', b'\xa2')   # fields 1 (name), 2 (layers), 100


def _not_caffemodel(data: bytes, where: str, why: str) -> CaffemodelError:
    head = data[:1024]
    if head.startswith(b'PK'):
        what = 'a zip archive (a PyTorch snapshot?)'
    elif head.startswith(b'\x80'):
        what = 'a Python pickle (a PyTorch snapshot?)'
    elif head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        what = 'text (a prototxt?)'
    else:
        what = None
    return CaffemodelError(f"{where} is not a Caffe .caffemodel (a binary NetParameter)"
                           + (f": it is {what}" if what else f": {why}"))


def _blob_array(blob, layer: str, index: int) -> tuple[np.ndarray, bool]:
    legacy = any(blob.HasField(f) for f in ('num', 'channels', 'height', 'width'))
    if legacy:
        shape = [blob.num, blob.channels, blob.height, blob.width]
    else:
        shape = list(blob.shape.dim) if blob.HasField('shape') else []
    if any(d < 0 for d in shape):
        raise CaffemodelError(f"Layer '{layer}': blob {index} has a negative dimension in its shape {tuple(shape)}")
    count = int(np.prod(shape, dtype=np.int64))
    values = blob.double_data if len(blob.double_data) else blob.data
    if len(values) != count:
        kind = 'double_data' if len(blob.double_data) else 'data'
        raise CaffemodelError(f"Layer '{layer}': blob {index} has shape {tuple(shape)} ({count} values) but its "
                              f"{kind} holds {len(values)}; the caffemodel is damaged or was saved without weights")
    return np.array(values, dtype=np.float32).reshape(shape), legacy


def _layer_blobs(name: str, type_: str, blobs) -> LayerBlobs:
    pairs = [_blob_array(b, name, i) for i, b in enumerate(blobs)]
    return LayerBlobs(name, type_, [p[0] for p in pairs], [p[1] for p in pairs])


def read_caffemodel(source: str | Path | bytes) -> Caffemodel:
    """Every layer of a caffemodel file (or its bytes), with its blobs as float32 arrays."""
    given = isinstance(source, (bytes, bytearray))
    where = 'The data given' if given else str(source)
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise CaffemodelError(f"Cannot read the caffemodel {where}: {exc.strerror or exc}") from None
    model = CaffeModel()
    try:
        model.ParseFromString(data)
    except DecodeError as exc:
        raise _not_caffemodel(data, where, str(exc)) from None
    if model.layer and model.layers:
        raise CaffemodelError(f"{where} has both 'layer' and V1 'layers' entries; Caffe refuses such a mixed "
                              "NetParameter too (upgrade it with Caffe's upgrade_net_proto_binary)")
    layers = [_layer_blobs(lp.name, lp.type, lp.blobs) for lp in model.layer]
    for lp in model.layers:
        v0 = lp.layer if lp.HasField('layer') else None
        name = lp.name or (v0.name if v0 is not None else '')
        if lp.HasField('type'):
            enum = _V1_ENUM.Name(lp.type) if lp.type in _V1_ENUM.values() else str(lp.type)
            type_ = _V1_TYPES.get(enum, enum)
        else:
            type_ = v0.type if v0 is not None else ''
        layers.append(_layer_blobs(name, type_, lp.blobs if lp.blobs or v0 is None else v0.blobs))
    if not layers:
        raise _not_caffemodel(data, where, 'it holds no layers')
    return Caffemodel(model.name, layers, '(given as bytes)' if given else where)


# ---- the network's side -------------------------------------------------------------------------------------

def caffe_net_of(network: Any) -> CaffeNet:
    """The CaffeNet inside a Network, TrainableNet, CaffeModule or CaffeNet; a CaffemodelError for anything else."""
    obj = network
    for _ in range(4):   # Network.module → TrainableNet.inner → CaffeModule.net → CaffeNet
        if isinstance(obj, CaffeNet):
            return obj
        if isinstance(obj, CaffeModule):
            obj = obj.net
        elif isinstance(obj, nn.Module):
            obj = getattr(obj, 'inner', None)
        else:
            obj = getattr(obj, 'module', None)
    style = getattr(network, 'style', None) or getattr(getattr(network, 'module', None), 'style', None)
    what = {'tower': 'a Tower network', 'torch7': 'a Torch7-style network', 'module': 'a plain PyTorch module',
            None: f"a {type(network).__name__}"}.get(style, f"a {style!r}-style network")
    raise CaffemodelError(f"Caffe weights map to the layers of a Caffe prototxt network, and this is {what}; "
                          "write the network as prototxt (or load PyTorch snapshots instead)")


def _layers_of(net: CaffeNet) -> dict[str, Any]:
    """Caffe layer name → its _Layer record (first occurrence), in prototxt order."""
    found: dict[str, Any] = {}
    for layer in sorted((*net.train_graph, *net.val_graph, *net.deploy_graph), key=lambda ly: ly.index):
        found.setdefault(layer.proto.name, layer)
    return found


def _targets(layer, module: nn.Module) -> list[tuple[str, Tensor, tuple[int, ...]]]:
    """(what, tensor, Caffe's shape) for each of the layer's blobs, in Caffe's order."""
    if layer.proto.type == 'BatchNorm':   # the statistics in use are Caffe's blobs over its scale factor
        c = module.running_mean.shape[0]
        factor = getattr(module, 'scale_factor', None)
        return [('mean', module.running_mean, (c,)), ('variance', module.running_var, (c,)),
                ('scale factor', module.running_mean.new_ones(1) if factor is None else factor, (1,))]
    out = []
    for pname, param in module.named_parameters(recurse=False):
        shape = tuple(param.shape)
        if layer.proto.type == 'PReLU' and layer.proto.prelu_param.channel_shared:
            shape = ()   # Caffe's shared slope is a 0-axis blob
        out.append((pname, param, shape))
    return out


def _fits(blob: np.ndarray, legacy: bool, shape: tuple[int, ...]) -> bool:
    """Caffe's Blob::ShapeEquals: legacy 4-D blobs compare with the shape padded by leading 1s."""
    if legacy:
        return len(shape) <= 4 and (1,) * (4 - len(shape)) + tuple(shape) == blob.shape
    return tuple(blob.shape) == tuple(shape)


def _fmt(shape: tuple[int, ...]) -> str:
    return '(' + ', '.join(map(str, shape)) + ')'


def load_caffemodel(network: Any, source: str | Path | bytes | Caffemodel) -> LoadReport:
    """Copy a caffemodel's weights into ``network`` by layer name (see the module's docstring) and report it."""
    net = caffe_net_of(network)
    model = source if isinstance(source, Caffemodel) else read_caffemodel(source)
    layers = _layers_of(net)
    report = LoadReport(model.source)
    plan: dict[str, list[tuple[str, Tensor, np.ndarray]]] = {}
    for lw in model.layers:
        layer = layers.get(lw.name)
        if layer is None:
            if lw.blobs and lw.name not in report.skipped:
                report.skipped.append(lw.name)
                report.types[lw.name] = lw.type
            continue
        where = f"Layer '{lw.name}' ({layer.proto.type}, line {layer.line})"
        targets = _targets(layer, net.get_submodule(layer.key))
        if not targets and not lw.blobs:   # ReLU, Pooling...: nothing to copy
            continue
        if len(targets) != len(lw.blobs):
            raise CaffemodelError(f"{where} has {len(targets)} weight blob(s) in this network "
                                  f"({', '.join(t[0] for t in targets) or 'none'}) but {len(lw.blobs)} in the "
                                  f"caffemodel {model.source} ({lw.type}); rename the layer to train it from its "
                                  "filler instead")
        steps = []
        for i, ((what, tensor, shape), blob, legacy) in enumerate(zip(targets, lw.blobs, lw.legacy)):
            if not _fits(blob, legacy, shape):
                raise CaffemodelError(f"{where}: blob {i} ({what}) has shape {_fmt(blob.shape)} in the caffemodel "
                                      f"{model.source} and {_fmt(shape)} in this network; Caffe refuses such a "
                                      "copy: rename the layer to train it from its filler instead")
            steps.append((what, tensor, blob))
        plan[lw.name] = steps
        report.types[lw.name] = layer.proto.type
    with torch.no_grad():
        for name, steps in plan.items():
            if layers[name].proto.type == 'BatchNorm':   # Caffe: mean = blob0 / blob2 (0 when blob2 is 0)
                factor = float(steps[2][2].reshape(-1)[0])
                inverse = 0.0 if factor == 0 else 1.0 / factor
                for _, tensor, blob in steps[:2]:
                    tensor.copy_(torch.from_numpy(blob.astype(np.float64) * inverse).reshape(tensor.shape))
                steps[2][1].fill_(factor)
            else:
                for _, tensor, blob in steps:
                    tensor.copy_(torch.from_numpy(blob).reshape(tensor.shape))
            report.loaded[name] = [tuple(b.shape) for _, _, b in steps]
    for name, layer in layers.items():
        if name not in plan and _targets(layer, net.get_submodule(layer.key)):
            report.fresh.append(name)
            report.types[name] = layer.proto.type
    return report


# ---- writing ------------------------------------------------------------------------------------------------

def _blobs_for_export(layer, module: nn.Module) -> list[tuple[tuple[int, ...], np.ndarray]]:
    targets = _targets(layer, module)
    arrays = [t.detach().to('cpu', torch.float64).numpy().reshape(-1) for _, t, _ in targets]
    if layer.proto.type == 'BatchNorm':   # back to Caffe's sums: mean and variance times the scale factor
        arrays = [arrays[0] * arrays[2][0], arrays[1] * arrays[2][0], arrays[2]]
    return [(shape, a.astype(np.float32)) for (_, _, shape), a in zip(targets, arrays)]


def _packed_data(values: np.ndarray) -> bytes:
    """BlobProto ``data`` (field 5, packed little-endian floats) as wire bytes, for protobuf's own parser to
    take in one piece: ``data.extend`` goes value by value (seconds for a large layer)."""
    raw = np.ascontiguousarray(values, '<f4').tobytes()
    size, length = len(raw), bytearray()
    while True:
        length.append((size & 0x7F) | (0x80 if size > 0x7F else 0))
        size >>= 7
        if not size:
            return bytes([5 << 3 | 2]) + bytes(length) + raw


def export_caffemodel(network: Any, path: str | Path) -> Path:
    """Write the network's layers, each with its prototxt parameters and its weights as Caffe blobs, as a
    binary NetParameter that Caffe (and DIGITS) load as a ``.caffemodel``. Written to a temporary file first."""
    net = caffe_net_of(network)
    out = NetParameter(name=net.net_name)
    for layer in _layers_of(net).values():
        lp = out.layer.add()
        lp.CopyFrom(layer.proto)
        del lp.blobs[:]
        for shape, values in _blobs_for_export(layer, net.get_submodule(layer.key)):
            blob = lp.blobs.add()
            blob.shape.dim.extend(shape)
            blob.MergeFromString(_packed_data(values))
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    tmp.write_bytes(out.SerializeToString())
    os.replace(tmp, path)
    return path

