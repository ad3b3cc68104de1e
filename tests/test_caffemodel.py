"""Caffe .caffemodel weights: loaded by layer name as Caffe/DIGITS did, exported back, checked against numpy.

The caffemodels here are written by a protobuf wire-format encoder in this file (varints, length-delimited
fields, packed floats via struct), not by the schema under test, and exported files are read back by the
matching decoder below. The numpy reference follows Caffe's layer arithmetic: floor convolution sizes, ceil
pooling sizes with the last window clipped to the image, LRN as k + alpha/n * sum(x^2) over n channels.
"""
from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from digits_widgets.errors import OptionError
from digits_widgets.nets.caffe import build_caffe_network
from digits_widgets.nets.caffe.weights import (CaffemodelError, caffe_net_of, export_caffemodel, load_caffemodel,
                                               read_caffemodel)
from digits_widgets.nets.network import build_network
from digits_widgets.train.launch import train
from digits_widgets.train.pretrained import load_pretrained
from support import TOWER_REGRESSION, gradients_dataset


# ---- an independent protobuf wire-format encoder and decoder ---------------------------------------------------

def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _delimited(field: int, payload: bytes) -> bytes:
    return _key(field, 2) + _varint(len(payload)) + payload


def _string(field: int, text: str) -> bytes:
    return _delimited(field, text.encode())


def _int(field: int, value: int) -> bytes:
    return _key(field, 0) + _varint(value)


def blob(values: np.ndarray, legacy: tuple[int, int, int, int] | None = None, packed: bool = True,
         shape: tuple[int, ...] | None = None) -> bytes:
    """A BlobProto: shape (field 7, BlobShape dim 1 packed) or legacy num/channels/height/width (1-4), data 5."""
    flat = np.asarray(values, np.float32).ravel()
    if legacy is None:
        dims = np.shape(values) if shape is None else shape
        head = _delimited(7, _delimited(1, b''.join(_varint(d) for d in dims)))
    else:
        head = b''.join(_int(f, v) for f, v in zip((1, 2, 3, 4), legacy))
    if packed:
        return head + _delimited(5, struct.pack(f'<{flat.size}f', *flat.tolist()))
    return head + b''.join(_key(5, 5) + struct.pack('<f', v) for v in flat.tolist())


def layer(name: str, type_: str, *blobs: bytes) -> bytes:
    """A LayerParameter: name 1, type 2, blobs 7."""
    return _string(1, name) + _string(2, type_) + b''.join(_delimited(7, b) for b in blobs)


def v1_layer(name: str, type_enum: int, *blobs: bytes) -> bytes:
    """A V1LayerParameter: name 4, type 5 (enum), blobs 6."""
    return _string(4, name) + _int(5, type_enum) + b''.join(_delimited(6, b) for b in blobs)


def net_param(name: str, layers: list[bytes], field: int = 100) -> bytes:
    """A NetParameter: name 1, layer 100 (or V1 layers 2)."""
    return _string(1, name) + b''.join(_delimited(field, lp) for lp in layers)


def _fields(buf: bytes):
    i = 0
    while i < len(buf):
        key, i = _read_varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(buf, i)
        elif wire == 2:
            size, i = _read_varint(buf, i)
            value, i = buf[i:i + size], i + size
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        else:
            raise AssertionError(f'wire type {wire}')
        yield field, wire, value


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def decode_caffemodel(data: bytes) -> tuple[str, list[tuple[str, str, list[np.ndarray]]]]:
    """(net name, [(layer name, type, [blob arrays])]) from a binary NetParameter."""
    name, layers = '', []
    for field, _, value in _fields(data):
        if field == 1:
            name = value.decode()
        elif field == 100:
            lname, ltype, blobs = '', '', []
            for f, _, v in _fields(value):
                if f == 1:
                    lname = v.decode()
                elif f == 2:
                    ltype = v.decode()
                elif f == 7:
                    shape, values = [], []
                    for bf, bw, bv in _fields(v):
                        if bf == 7:
                            for df, dw, dv in _fields(bv):
                                assert df == 1 and dw == 2, 'BlobShape.dim is packed'
                                j = 0
                                while j < len(dv):
                                    d, j = _read_varint(dv, j)
                                    shape.append(d)
                        elif bf == 5:
                            assert bw == 2, 'BlobProto.data is packed'
                            values.extend(struct.unpack(f'<{len(bv) // 4}f', bv))
                    blobs.append(np.array(values, np.float32).reshape(shape))
            layers.append((lname, ltype, blobs))
    return name, layers


# ---- the network and Caffe's arithmetic in numpy --------------------------------------------------------------

SHAPE = (3, 15, 15)
PROTOTXT = '''
name: "tiny"
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 6 kernel_size: 3 stride: 2 pad: 1 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "norm1" type: "LRN" bottom: "pool1" top: "norm1"
        lrn_param { local_size: 5 alpha: 0.3 beta: 0.75 k: 2 norm_region: ACROSS_CHANNELS } }
layer { name: "conv2" type: "Convolution" bottom: "norm1" top: "conv2"
        convolution_param { num_output: 4 kernel_size: 2 group: 2 weight_filler { type: "xavier" } } }
layer { name: "ip1" type: "InnerProduct" bottom: "conv2" top: "ip1"
        inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
layer { name: "relu2" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param { num_output: 3 weight_filler { type: "xavier" } bias_filler { type: "gaussian" } } }
'''


def caffe_weights(seed: int = 0) -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    g = lambda *s: rng.normal(0, 0.4, s).astype(np.float32)   # noqa: E731
    return {'conv1': [g(6, 3, 3, 3), g(6)], 'conv2': [g(4, 3, 2, 2), g(4)],
            'ip1': [g(5, 4 * 3 * 3), g(5)], 'ip2': [g(3, 5), g(3)]}


def caffemodel_bytes(w: dict[str, list[np.ndarray]], extra: list[bytes] = ()) -> bytes:
    """As Caffe writes a trained net: every layer, weightless ones included, and a data layer first."""
    return net_param('tiny', [
        layer('data', 'Data'),
        layer('conv1', 'Convolution', blob(w['conv1'][0]), blob(w['conv1'][1], packed=False)),
        layer('relu1', 'ReLU'), layer('pool1', 'Pooling'), layer('norm1', 'LRN'),
        layer('conv2', 'Convolution', *map(blob, w['conv2'])),
        layer('ip1', 'InnerProduct', *map(blob, w['ip1'])), layer('relu2', 'ReLU'),
        layer('ip2', 'InnerProduct', *map(blob, w['ip2'])), *extra])


def ref_conv(x, w, b, stride=1, pad=0, group=1):
    n, _, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    out, og = np.zeros((n, o, oh, ow)), o // group
    for g in range(group):
        for i in range(oh):
            for j in range(ow):
                patch = xp[:, g * cg:(g + 1) * cg, i * stride:i * stride + kh, j * stride:j * stride + kw]
                out[:, g * og:(g + 1) * og, i, j] = np.einsum('nchw,ochw->no', patch, w[g * og:(g + 1) * og])
    return out + b[None, :, None, None]


def caffe_pooled(size, k, s, p):
    out = int(np.ceil((size + 2 * p - k) / s)) + 1
    return out - 1 if p and (out - 1) * s >= size + p else out


def ref_max_pool(x, k, s, p=0):
    n, c, h, w = x.shape
    ph, pw = caffe_pooled(h, k, s, p), caffe_pooled(w, k, s, p)
    out = np.empty((n, c, ph, pw))
    for i in range(ph):
        hs, he = max(i * s - p, 0), min(i * s - p + k, h)   # the last window is clipped to the image
        for j in range(pw):
            ws, we = max(j * s - p, 0), min(j * s - p + k, w)
            out[:, :, i, j] = x[:, :, hs:he, ws:we].max(axis=(2, 3))
    return out


def ref_lrn(x, n, alpha, beta, k):
    out, half, c = np.empty_like(x), n // 2, x.shape[1]
    for ch in range(c):
        window = x[:, max(0, ch - half):min(c, ch + half + 1)]
        out[:, ch] = x[:, ch] * (k + alpha / n * (window ** 2).sum(axis=1)) ** -beta
    return out


def ref_forward(w, x):
    w = {k: [a.astype(np.float64) for a in v] for k, v in w.items()}
    y = np.maximum(ref_conv(x, *w['conv1'], stride=2, pad=1), 0)
    y = ref_lrn(ref_max_pool(y, 3, 2), 5, 0.3, 0.75, 2.0)
    y = ref_conv(y, *w['conv2'], group=2)
    y = np.maximum(y.reshape(len(y), -1) @ w['ip1'][0].T + w['ip1'][1], 0)
    return y @ w['ip2'][0].T + w['ip2'][1]


def built(text: str = PROTOTXT, shape=SHAPE, seed: int = 7):
    torch.manual_seed(seed)
    return build_caffe_network(text, shape, name='tiny')


def forward(network, x: np.ndarray) -> np.ndarray:
    net = caffe_net_of(network)
    net.eval()
    with torch.no_grad():
        return net(torch.from_numpy(x.astype(np.float32)))[0].double().numpy()


@pytest.fixture
def x():
    return np.random.default_rng(3).uniform(-2, 2, (2, *SHAPE))


# ---- tests ----------------------------------------------------------------------------------------------------

def test_forward_with_caffemodel_weights_matches_numpy_caffe_arithmetic(tmp_path, x):
    assert caffe_pooled(8, 3, 2, 0) == 4 and (8 - 3) // 2 + 1 == 3, 'the pooling sizes tell ceil from floor'
    w = caffe_weights()
    path = tmp_path / 'tiny.caffemodel'
    path.write_bytes(caffemodel_bytes(w))
    network = built()
    report = load_caffemodel(network, path)
    assert list(report.loaded) == ['conv1', 'conv2', 'ip1', 'ip2'] and not report.skipped and not report.fresh
    ref = ref_forward(w, x)
    got = forward(network, x)
    assert got.shape == ref.shape == (2, 3)
    assert np.abs(got - ref).max() < 1e-5, np.abs(got - ref).max()
    assert np.abs(ref).max() > 0.1, 'the output is not trivially small'


def test_export_then_load_gives_identical_weights_and_outputs(tmp_path, x):
    source = built(seed=1)
    path = export_caffemodel(source, tmp_path / 'out' / 'exported.caffemodel')
    name, layers = decode_caffemodel(path.read_bytes())   # read back without the schema under test
    assert name == 'tiny'
    assert [(n, t) for n, t, _ in layers] == [
        ('conv1', 'Convolution'), ('relu1', 'ReLU'), ('pool1', 'Pooling'), ('norm1', 'LRN'),
        ('conv2', 'Convolution'), ('ip1', 'InnerProduct'), ('relu2', 'ReLU'), ('ip2', 'InnerProduct')]
    state = caffe_net_of(source).state_dict()
    blobs = {n: b for n, _, b in layers}
    for lname in ('conv1', 'conv2', 'ip1', 'ip2'):
        assert np.array_equal(blobs[lname][0], state[f'{lname}.weight'].numpy())
        assert np.array_equal(blobs[lname][1], state[f'{lname}.bias'].numpy())
    assert blobs['relu1'] == [] and blobs['pool1'] == []

    target = built(seed=2)
    assert not torch.equal(caffe_net_of(target).state_dict()['ip1.weight'], state['ip1.weight'])
    load_caffemodel(target, path)
    for key, tensor in caffe_net_of(target).state_dict().items():
        assert torch.equal(tensor, state[key]), key
    assert np.array_equal(forward(target, x), forward(source, x))


def test_v1_layers_caffemodel_with_legacy_4d_blobs_loads(tmp_path, x):
    w = caffe_weights(5)
    conv1, conv2, ip1, ip2 = w['conv1'], w['conv2'], w['ip1'], w['ip2']
    v0_ip2 = _string(1, 'ip2') + _string(2, 'innerproduct') + b''.join(
        _delimited(50, blob(a, legacy=(1, 1) + ((1,) + a.shape if a.ndim == 1 else a.shape)))
        for a in ip2)   # a V1 layer that wraps a V0 layer (field 1), as the oldest caffemodels do
    data = net_param('old', [
        v1_layer('conv1', 4, blob(conv1[0], legacy=conv1[0].shape), blob(conv1[1], legacy=(1, 1, 1, 6))),
        v1_layer('relu1', 18), v1_layer('pool1', 17), v1_layer('norm1', 15),
        v1_layer('conv2', 4, blob(conv2[0], legacy=conv2[0].shape), blob(conv2[1], legacy=(1, 1, 1, 4))),
        v1_layer('ip1', 14, blob(ip1[0], legacy=(1, 1, 5, 36)), blob(ip1[1], legacy=(1, 1, 1, 5))),
        _delimited(1, v0_ip2)], field=2)
    network = built()
    report = load_caffemodel(network, data)
    assert set(report.loaded) == {'conv1', 'conv2', 'ip1', 'ip2'}
    assert report.types['ip1'] == 'InnerProduct'
    assert np.abs(forward(network, x) - ref_forward(w, x)).max() < 1e-5
    model = read_caffemodel(data)
    assert [(lw.name, lw.type) for lw in model.layers][:2] == [('conv1', 'Convolution'), ('relu1', 'ReLU')]


def test_report_lists_skipped_and_freshly_initialised_layers(tmp_path):
    """Freezing (or retraining) by renaming: ip2 renamed ip2_new keeps its filler; the old layers are skipped."""
    w = caffe_weights()
    old_fc = layer('fc_old', 'InnerProduct', blob(np.ones((2, 3))), blob(np.zeros(2)))
    path = tmp_path / 'm.caffemodel'
    path.write_bytes(caffemodel_bytes(w, [old_fc]))
    network = built(PROTOTXT.replace('"ip2"', '"ip2_new"'))
    before = caffe_net_of(network).state_dict()['ip2_new.weight'].clone()
    assert before.abs().sum() > 0, 'a xavier filler, not zeros'

    report = load_caffemodel(network, path)
    assert list(report.loaded) == ['conv1', 'conv2', 'ip1']
    assert report.skipped == ['ip2', 'fc_old'] and report.fresh == ['ip2_new']
    assert torch.equal(caffe_net_of(network).state_dict()['ip2_new.weight'], before)
    assert torch.equal(caffe_net_of(network).state_dict()['ip1.weight'], torch.from_numpy(w['ip1'][0]))
    text = str(report)
    assert 'Loaded 3 layers' in text and 'conv1 (Convolution: 6x3x3x3, 6)' in text
    assert 'Skipped, not in this network: ip2 (InnerProduct), fc_old (InnerProduct)' in text
    assert 'Kept their fillers' in text and 'ip2_new (InnerProduct)' in text
    assert 'relu1' not in text, 'weightless layers are neither loaded nor skipped'


def test_batchnorm_scale_prelu_blobs_follow_caffe(tmp_path):
    text = '''
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 3 kernel_size: 1 } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" }
layer { name: "sc" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: true } }
layer { name: "pr" type: "PReLU" bottom: "conv" top: "conv" }
'''
    rng = np.random.default_rng(0)
    conv_w, conv_b = rng.normal(size=(3, 2, 1, 1)), rng.normal(size=3)
    mean, var, gamma, beta, slope = rng.normal(size=3), rng.uniform(0.5, 2, 3), rng.normal(size=3), \
        rng.normal(size=3), rng.uniform(0.1, 0.3, 3)
    factor = 2.5   # Caffe keeps sums: mean and variance are divided by this factor
    data = net_param('bn', [layer('conv', 'Convolution', blob(conv_w), blob(conv_b)),
                            layer('bn', 'BatchNorm', blob(mean * factor), blob(var * factor), blob([factor])),
                            layer('sc', 'Scale', blob(gamma), blob(beta)), layer('pr', 'PReLU', blob(slope))])
    network = built(text, (2, 4, 4))
    load_caffemodel(network, data)
    xin = rng.normal(size=(2, 2, 4, 4))
    ch = lambda v: np.asarray(v, np.float32).astype(np.float64)[None, :, None, None]  # noqa: E731
    y = ref_conv(xin, np.float32(conv_w).astype(np.float64), np.float32(conv_b).astype(np.float64))
    y = (y - ch(mean)) / np.sqrt(ch(var) + 1e-5) * ch(gamma) + ch(beta)
    y = np.where(y > 0, y, y * ch(slope))
    assert np.abs(forward(network, xin) - y).max() < 1e-5
    _, layers = decode_caffemodel(export_caffemodel(network, tmp_path / 'bn.caffemodel').read_bytes())
    bn = dict((n, b) for n, _, b in layers)['bn']
    assert [b.shape for b in bn] == [(3,), (3,), (1,)] and bn[2][0] == factor
    assert np.allclose(bn[0], np.float32(mean * factor), atol=1e-6)
    assert np.allclose(bn[1], np.float32(var * factor), atol=1e-6)


def test_shape_mismatch_names_the_layer_and_both_shapes_and_copies_nothing():
    w = caffe_weights()
    network = built(PROTOTXT.replace('num_output: 3', 'num_output: 4'))
    before = caffe_net_of(network).state_dict()['conv1.weight'].clone()
    with pytest.raises(CaffemodelError) as info:
        load_caffemodel(network, caffemodel_bytes(w))
    message = str(info.value)
    assert "Layer 'ip2' (InnerProduct, line 15)" in message
    assert '(3, 5) in the caffemodel' in message and '(4, 5) in this network' in message
    assert 'rename the layer' in message
    assert torch.equal(caffe_net_of(network).state_dict()['conv1.weight'], before), 'nothing was copied'


def test_refusals_name_their_cause(tmp_path):
    w = caffe_weights()
    network = built()
    one_blob = net_param('t', [layer('conv1', 'Convolution', blob(w['conv1'][0]))])
    with pytest.raises(CaffemodelError, match=r"Layer 'conv1' .* 2 weight blob\(s\) in this network "
                                              r"\(weight, bias\) but 1 in the caffemodel"):
        load_caffemodel(network, one_blob)
    short = net_param('t', [layer('ip2', 'InnerProduct', blob(w['ip2'][0].ravel()[:13], shape=(3, 5)),
                                  blob(w['ip2'][1]))])
    with pytest.raises(CaffemodelError, match=r"Layer 'ip2': blob 0 has shape \(3, 5\) \(15 values\) but its "
                                              r"data holds 13"):
        load_caffemodel(network, short)
    with pytest.raises(CaffemodelError, match='it is text \\(a prototxt\\?\\)'):
        load_caffemodel(network, PROTOTXT.encode())
    torch.save({'model': {}}, tmp_path / 'snap.pt')
    with pytest.raises(CaffemodelError, match='zip archive'):
        load_caffemodel(network, tmp_path / 'snap.pt')
    with pytest.raises(CaffemodelError, match='not a Caffe .caffemodel'):
        load_caffemodel(network, b'\xff\xff\xff\xff\x0f')
    with pytest.raises(CaffemodelError, match='holds no layers'):
        load_caffemodel(network, b'')
    with pytest.raises(CaffemodelError, match='Cannot read the caffemodel .*missing.caffemodel'):
        load_caffemodel(network, tmp_path / 'missing.caffemodel')
    mixed = net_param('t', [layer('a', 'ReLU')]) + _delimited(2, v1_layer('b', 18))
    with pytest.raises(CaffemodelError, match="both 'layer' and V1 'layers'"):
        read_caffemodel(mixed)
    tower = build_network(TOWER_REGRESSION, (1, 8, 8), 0)
    with pytest.raises(CaffemodelError, match='prototxt network, and this is a Tower network'):
        load_caffemodel(tower, caffemodel_bytes(w))
    path = tmp_path / 'w.caffemodel'
    path.write_bytes(caffemodel_bytes(w))
    with pytest.raises(OptionError, match='pretrained: .*this is a Tower network') as info:
        load_pretrained(tower.module, str(path))
    assert info.value.field == 'pretrained'
    with pytest.raises(CaffemodelError, match='this is a Tower network'):
        export_caffemodel(tower, tmp_path / 'x.caffemodel')


FROZEN_PROTOTXT = '''
layer { name: "scale" type: "Power" bottom: "data" top: "scaled" power_param { scale: 0.004 } }
layer { name: "conv" type: "Convolution" bottom: "scaled" top: "conv"
        param { lr_mult: 0 } param { lr_mult: 0 }
        convolution_param { num_output: 2 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "head" type: "InnerProduct" bottom: "conv" top: "output"
        inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "output" bottom: "label" top: "loss"
        exclude { stage: "deploy" } }
'''


def test_training_from_a_caffemodel_keeps_lr_mult_0_layers_and_exports_back(tmp_path):
    rng = np.random.default_rng(0)
    conv_w, conv_b = rng.normal(0, 30, (2, 1, 3, 3)).astype(np.float32), np.float32([0.1, 0.2])
    head_w, head_b = rng.normal(0, 0.1, (2, 72)).astype(np.float32), np.zeros(2, np.float32)
    path = tmp_path / 'pre.caffemodel'
    path.write_bytes(net_param('pre', [layer('conv', 'Convolution', blob(conv_w), blob(conv_b)),
                                       layer('head', 'InnerProduct', blob(head_w), blob(head_b)),
                                       layer('old_fc', 'InnerProduct', blob(np.ones((2, 2))))]))
    ds = gradients_dataset('grads', 48, 16)
    job = train(ds, FROZEN_PROTOTXT, 'caffe-pre', epochs=2, lr=0.05, solver='sgd', batch_size=16, seed=1,
                policy='fixed', pretrained=str(path))
    assert job.wait(120) == 'Done', job.status_line()
    log = job.path('train.log').read_text()
    assert 'Loaded 2 layers from the caffemodel' in log and 'Skipped, not in this network: old_fc' in log
    first = torch.load(job.snapshot_path(1.0), weights_only=True)['model']
    last = torch.load(job.snapshot_path(), weights_only=True)['model']
    assert torch.equal(last['conv.weight'], torch.from_numpy(conv_w)), 'lr_mult 0 keeps the caffemodel weights'
    assert torch.equal(last['conv.bias'], torch.from_numpy(conv_b))
    assert not torch.equal(last['head.weight'], torch.from_numpy(head_w)), 'the head trains'
    assert not torch.equal(first['head.weight'], last['head.weight'])

    out = job.export_caffemodel(tmp_path / 'trained.caffemodel')
    _, layers = decode_caffemodel(out.read_bytes())
    blobs = {n: b for n, _, b in layers}
    assert np.array_equal(blobs['conv'][0], conv_w)
    assert np.array_equal(blobs['head'][0], last['head.weight'].numpy())
