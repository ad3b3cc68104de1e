"""Caffe prototxt networks built on PyTorch (digits_widgets.nets.caffe)."""
from __future__ import annotations

import glob
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from digits_widgets.errors import NetworkError
from digits_widgets.nets.caffe import CaffeNet, build_caffe_network
from digits_widgets.nets.caffe.layers import caffe_pool_size
from digits_widgets.nets.network import Network

STANDARD = Path(__file__).resolve().parents[1] / 'digits_widgets' / 'nets' / 'caffe' / 'standard'


def _seed_regression_net() -> str:
    paths = glob.glob('/work/shared/seeds/000_*.txt')
    if paths:
        text = Path(paths[0]).read_text()
        match = re.search(r'```protobuf\n(.*?)```', text, re.S)
        if match:
            return match.group(1)
    return REGRESSION


REGRESSION = """
layer { name: "scale" type: "Power" bottom: "data" top: "scale" power_param { scale: 0.004 } }
layer { name: "hidden" type: "InnerProduct" bottom: "scale" top: "output" inner_product_param { num_output: 2 } }
layer { name: "loss" type: "EuclideanLoss" bottom: "output" bottom: "label" top: "loss"
        exclude { stage: "deploy" } }
"""


def _sgd(net: Network, lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(net.module.inner.param_groups(lr, 0.0), lr=lr)


def test_regression_seed_network_trains():
    torch.manual_seed(0)
    net = build_caffe_network(_seed_regression_net(), (1, 32, 32))
    assert net.style == 'module'
    assert sorted(net.module.state_dict()) == ['hidden.bias', 'hidden.weight']
    x = torch.rand(16, 1, 32, 32) * 255
    y = torch.stack([x.mean((1, 2, 3)) / 255, x[:, 0, :, :16].mean((1, 2)) / 255], 1)
    opt = _sgd(net, 0.001)  # the tutorial's 'lower the base learning rate to 0.001'
    losses = []
    for _ in range(20):
        step = net.module(x, y)
        opt.zero_grad()
        step.loss.backward()
        opt.step()
        losses.append(float(step.loss.detach()))
    assert step.output.shape == (16, 2)
    assert losses[-1] < losses[0] * 0.5
    # EuclideanLoss is sum((a-b)^2) / N / 2
    with torch.no_grad():
        out = net.module.infer(x)
        expected = ((out - y) ** 2).sum() / 16 / 2
        assert torch.allclose(net.module(x, y).loss, expected, rtol=1e-5)


def test_lenet_builds_and_classifies():
    net = build_caffe_network((STANDARD / 'lenet.prototxt').read_text(), (1, 28, 28), nclasses=10)
    keys = set(net.module.state_dict())
    assert {'conv1.weight', 'conv1.bias', 'conv2.weight', 'ip1.weight', 'ip2.weight', 'ip2.bias'} <= keys
    assert net.module.state_dict()['ip1.weight'].shape == (500, 800)
    x, y = torch.rand(4, 1, 28, 28) * 255, torch.tensor([1, 2, 3, 4])
    step = net.module(x, y)
    assert step.output.shape == (4, 10)
    assert step.loss.requires_grad and step.loss.dim() == 0
    assert 'accuracy' in step.metrics
    net.module.eval()
    with torch.no_grad():
        step = net.module(x, y)      # the TEST graph: the Accuracy layer's top is a metric
        probs = net.module.infer(x)  # the deploy graph ends in the deploy-only Softmax
    assert 0.0 <= float(step.metrics['accuracy']) <= 1.0
    assert torch.allclose(probs.sum(1), torch.ones(4), atol=1e-5)


def test_lenet_as_in_the_brief_without_deploy_softmax():
    text = (STANDARD / 'lenet.prototxt').read_text().split('layer {\n  name: "softmax"')[0]
    net = build_caffe_network(text, (1, 28, 28), nclasses=10)
    out = net.module.infer(torch.zeros(3, 1, 28, 28))
    assert out.shape == (3, 10)


def test_segmentation_fcn_output_size_and_l1():
    torch.manual_seed(0)
    net = build_caffe_network((STANDARD / 'segmentation.prototxt').read_text(), (1, 32, 32))
    x, y = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32) * 255
    step = net.module(x, y)
    assert step.output.shape == (2, 1, 32, 32)
    assert torch.allclose(step.loss, (step.output - y).abs().sum() / 2), "NVcaffe's L1Loss: sum / batch"
    assert float(net.module.state_dict()['upsample.bias']) == 128.0
    groups = {g['name']: g for g in net.module.inner.param_groups(1e-3, 0.5)}
    assert groups['conv1.bias']['lr'] == pytest.approx(1e-4) and groups['conv1.bias']['weight_decay'] == 0
    assert groups['conv2.weight']['lr'] == pytest.approx(1e-3) and groups['conv2.weight']['weight_decay'] == 0.5
    # the FCN takes any size that is a multiple of 16
    with torch.no_grad():
        assert net.module.infer(torch.zeros(1, 1, 48, 64)).shape == (1, 1, 48, 64)


def _pool_net(kernel: int, stride: int, pad: int = 0, pool: str = 'MAX') -> str:
    return f"""
layer {{ name: "pool" type: "Pooling" bottom: "data" top: "pool"
        pooling_param {{ pool: {pool} kernel_size: {kernel} stride: {stride} pad: {pad} }} }}
layer {{ name: "loss" type: "EuclideanLoss" bottom: "pool" bottom: "label" top: "loss"
        exclude {{ stage: "deploy" }} }}
"""


@pytest.mark.parametrize('size,kernel,stride,pad,expected', [
    (6, 3, 2, 0, 3), (7, 3, 2, 0, 3), (8, 3, 2, 0, 4), (6, 2, 2, 1, 4), (5, 3, 2, 1, 3), (13, 3, 2, 0, 6),
])
def test_pooling_uses_caffe_ceil_output_size(size, kernel, stride, pad, expected):
    assert caffe_pool_size(size, kernel, stride, pad) == expected
    formula = math.ceil((size + 2 * pad - kernel) / stride) + 1
    if (formula - 1) * stride >= size + pad:
        formula -= 1
    assert formula == expected
    for pool in ('MAX', 'AVE'):
        net = build_caffe_network(_pool_net(kernel, stride, pad, pool), (2, size, size))
        assert net.module.infer(torch.zeros(1, 2, size, size)).shape == (1, 2, expected, expected)


def _np_pool(x: np.ndarray, k: int, s: int, p: int, ave: bool) -> np.ndarray:
    """Caffe's pooling loops, written out."""
    h = x.shape[0]
    out = caffe_pool_size(h, k, s, p)
    res = np.zeros((out, out))
    for i in range(out):
        for j in range(out):
            hs, ws = i * s - p, j * s - p
            he, we = min(hs + k, h + p), min(ws + k, h + p)
            size = (he - hs) * (we - ws)
            hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, h)
            win = x[hs:he, ws:we]
            res[i, j] = win.sum() / size if ave else win.max()
    return res


@pytest.mark.parametrize('pool', ['MAX', 'AVE'])
def test_pooling_values_match_caffe(pool):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(7, 7)).astype(np.float32)
    for k, s, p in ((3, 2, 0), (3, 2, 1), (2, 2, 1)):
        net = build_caffe_network(_pool_net(k, s, p, pool), (1, 7, 7))
        got = net.module.infer(torch.from_numpy(x)[None, None]).detach().numpy()[0, 0]
        np.testing.assert_allclose(got, _np_pool(x, k, s, p, pool == 'AVE'), rtol=1e-5, atol=1e-6)


def test_global_pooling():
    text = """
layer { name: "gp" type: "Pooling" bottom: "data" top: "gp" pooling_param { pool: AVE global_pooling: true } }
"""
    x = torch.rand(2, 3, 5, 4)
    net = CaffeNet(text, (3, 5, 4))
    out, loss, _ = net(x)
    assert loss is None and torch.allclose(out, x.mean((2, 3), keepdim=True))


def test_lrn_across_channels_matches_numpy():
    text = """
layer { name: "norm" type: "LRN" bottom: "data" top: "norm"
        lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 k: 2 } }
"""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 3, 3)).astype(np.float32)
    out, _, _ = CaffeNet(text, (5, 3, 3))(torch.from_numpy(x))
    ref = np.empty_like(x)
    for c in range(5):
        lo, hi = max(0, c - 1), min(5, c + 2)
        scale = 2 + 0.5 / 3 * (x[:, lo:hi] ** 2).sum(1)
        ref[:, c] = x[:, c] / scale ** 0.75
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-6)


def test_grouped_dilated_convolution_matches_numpy():
    text = """
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 group: 2 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1
                            pad_h: 1 pad_w: 0 dilation: 1
                            weight_filler { type: "gaussian" std: 1 } bias_filler { type: "uniform" } } }
"""
    torch.manual_seed(0)
    net = CaffeNet(text, (4, 5, 6))
    w = net.conv.weight.detach().numpy()
    b = net.conv.bias.detach().numpy()
    assert w.shape == (4, 2, 3, 2)
    x = np.random.default_rng(2).normal(size=(1, 4, 5, 6)).astype(np.float32)
    out = net(torch.from_numpy(x))[0].detach().numpy()
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (0, 0)))
    oh, ow = (5 + 2 - 3) // 2 + 1, (6 - 2) // 1 + 1
    ref = np.zeros((1, 4, oh, ow), np.float32)
    for o in range(4):
        g = o // 2
        for i in range(oh):
            for j in range(ow):
                ref[0, o, i, j] = (xp[0, 2 * g:2 * g + 2, 2 * i:2 * i + 3, j:j + 2] * w[o]).sum() + b[o]
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def test_default_filler_is_constant_zero_and_fillers_follow_caffe():
    text = """
layer { name: "a" type: "InnerProduct" bottom: "data" top: "a" inner_product_param { num_output: 3 } }
layer { name: "b" type: "InnerProduct" bottom: "a" top: "b"
        inner_product_param { num_output: 400 weight_filler { type: "xavier" } } }
layer { name: "c" type: "InnerProduct" bottom: "b" top: "c"
        inner_product_param { num_output: 300 weight_filler { type: "msra" } } }
"""
    net = CaffeNet(text, (1, 10, 10))
    assert not net.a.weight.detach().any() and not net.a.bias.detach().any()
    assert float(net.b.weight.detach().abs().max()) <= math.sqrt(3 / 3) + 1e-6
    assert float(net.c.weight.detach().std()) == pytest.approx(math.sqrt(2 / 400), rel=0.05)


def test_other_layers_run():
    text = """
layer { name: "p" type: "Power" bottom: "data" top: "p" power_param { power: 2 scale: 0.5 shift: 1 } }
layer { name: "r" type: "ReLU" bottom: "data" top: "r" relu_param { negative_slope: 0.1 } }
layer { name: "pr" type: "PReLU" bottom: "data" top: "pr" }
layer { name: "s" type: "Sigmoid" bottom: "data" top: "s" }
layer { name: "t" type: "TanH" bottom: "data" top: "t" }
layer { name: "cat" type: "Concat" bottom: "p" bottom: "r" top: "cat" }
layer { name: "sum" type: "Eltwise" bottom: "s" bottom: "t" top: "sum" eltwise_param { coeff: 1 coeff: -1 } }
layer { name: "max" type: "Eltwise" bottom: "s" bottom: "pr" top: "max" eltwise_param { operation: MAX } }
layer { name: "cat2" type: "Concat" bottom: "cat" bottom: "sum" bottom: "max" top: "cat2" }
layer { name: "drop" type: "Dropout" bottom: "cat2" top: "cat2" dropout_param { dropout_ratio: 0.3 } }
layer { name: "flat" type: "Flatten" bottom: "cat2" top: "flat" }
layer { name: "sm" type: "Softmax" bottom: "flat" top: "sm" }
"""
    x = torch.randn(2, 2, 3, 3)
    net = CaffeNet(text, (2, 3, 3)).eval()
    blobs, _ = net.run(x)
    assert torch.allclose(blobs['p'], (1 + 0.5 * x) ** 2)
    assert torch.allclose(blobs['r'], torch.where(x > 0, x, 0.1 * x))
    assert torch.allclose(blobs['pr'], torch.where(x > 0, x, 0.25 * x))
    assert torch.allclose(blobs['sum'], torch.sigmoid(x) - torch.tanh(x))
    assert blobs['cat2'].shape == (2, 8, 3, 3) and blobs['flat'].shape == (2, 72)
    assert torch.allclose(blobs['sm'].sum(1), torch.ones(2))
    assert net.pr.weight.shape == (2,)


def test_sigmoid_cross_entropy_and_loss_weights():
    text = """
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "bce" type: "SigmoidCrossEntropyLoss" bottom: "ip" bottom: "label" top: "bce" loss_weight: 2 }
layer { name: "l2" type: "EuclideanLoss" bottom: "ip" bottom: "label" top: "l2" loss_weight: 0 }
"""
    torch.manual_seed(0)
    net = build_caffe_network(text, (1, 4, 4))
    x, y = torch.rand(3, 1, 4, 4), (torch.rand(3, 4) > 0.5).float()
    step = net.module(x, y)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(step.output, y, reduction='sum') / 3
    assert torch.allclose(step.loss, 2 * bce)
    assert torch.allclose(step.metrics['bce'], bce)
    assert torch.allclose(step.metrics['l2'], ((step.output - y) ** 2).sum() / 3 / 2)


def test_lr_mult_zero_freezes_layer():
    text = """
layer { name: "frozen" type: "InnerProduct" bottom: "data" top: "f"
        param { lr_mult: 0 } param { lr_mult: 0 }
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "head" type: "InnerProduct" bottom: "f" top: "out"
        param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "out" bottom: "label" top: "loss" exclude { stage: "deploy" } }
"""
    torch.manual_seed(0)
    net = build_caffe_network(text, (1, 4, 4))
    before = {k: v.clone() for k, v in net.module.state_dict().items()}
    assert not net.module.inner.net.frozen.weight.requires_grad
    groups = net.module.inner.param_groups(0.1, 0.01)
    assert [(g['name'], g['lr'], g['weight_decay']) for g in groups] == [
        ('head.weight', 0.1, 0.01), ('head.bias', 0.2, 0.0)]
    opt = torch.optim.SGD(groups, lr=0.1)
    step = net.module(torch.rand(4, 1, 4, 4), torch.rand(4, 2))
    opt.zero_grad()
    step.loss.backward()
    opt.step()
    after = net.module.state_dict()
    assert torch.equal(after['frozen.weight'], before['frozen.weight'])
    assert torch.equal(after['frozen.bias'], before['frozen.bias'])
    assert not torch.equal(after['head.weight'], before['head.weight'])


def test_phase_and_stage_rules_pick_the_graphs():
    text = """
layer { name: "d" type: "Data" top: "data" top: "label" include { phase: TRAIN } data_param { batch_size: 4 } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 2 } }
layer { name: "train_only" type: "Power" bottom: "ip" top: "t" include { phase: TRAIN } }
layer { name: "val_only" type: "Power" bottom: "ip" top: "v" include { phase: TEST } }
layer { name: "deploy_only" type: "Sigmoid" bottom: "ip" top: "prob" include { stage: "deploy" } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "label" top: "loss" exclude { stage: "deploy" } }
"""
    net = CaffeNet(text, (1, 2, 2))
    names = lambda graph: [ly.proto.name for ly in graph]  # noqa: E731
    assert names(net.train_graph) == ['ip', 'train_only', 'loss']
    assert names(net.val_graph) == ['ip', 'val_only', 'loss']
    # deploy is Caffe's NetState(phase TEST, stage "deploy"): phase-TEST layers stay, losses go
    assert names(net.deploy_graph) == ['ip', 'val_only', 'deploy_only']
    assert net.output_blob == 'prob'


def test_state_dict_round_trip():
    net = build_caffe_network((STANDARD / 'lenet.prototxt').read_text(), (1, 28, 28), nclasses=10)
    other = build_caffe_network((STANDARD / 'lenet.prototxt').read_text(), (1, 28, 28), nclasses=10)
    other.module.load_state_dict(net.module.state_dict())
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(net.module.infer(x), other.module.infer(x))


def test_unsupported_layer_names_layer_type_and_line():
    text = """name: "withpython"
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 2 } }

layer {
  name: "myloss"
  type: "Python"
  bottom: "ip"
  bottom: "label"
  top: "loss"
  python_param { module: "dice" layer: "Dice" }
}
"""
    with pytest.raises(NetworkError) as err:
        build_caffe_network(text, (1, 4, 4))
    message = str(err.value)
    assert "'myloss'" in message and 'Python' in message and 'line 4' in message
    assert "'Dice' of module 'dice'" in message and 'digits_python_layers.L1' in message


def test_syntax_error_names_the_line():
    text = """layer {
  name: "ip"
  type: "InnerProduct"
  inner_product_param { num_outputs: 2 }
}
"""
    with pytest.raises(NetworkError, match='line 4'):
        build_caffe_network(text, (1, 4, 4))
    with pytest.raises(NetworkError, match='line 2'):
        build_caffe_network('layer {\n  name "x" }\n  }\n', (1, 4, 4))


def test_bad_shapes_name_the_layer():
    text = 'layer { name: "big" type: "Convolution" bottom: "data" top: "c"\n' \
           '  convolution_param { num_output: 2 kernel_size: 9 } }\n'
    with pytest.raises(NetworkError, match="'big'.*line 1"):
        build_caffe_network(text, (1, 4, 4))


def test_batchnorm_scale_bias_and_reshape():
    text = """
layer { name: "bn" type: "BatchNorm" bottom: "data" top: "data" }
layer { name: "sc" type: "Scale" bottom: "data" top: "sc" scale_param { bias_term: true
        filler { type: "constant" value: 2 } bias_filler { type: "constant" value: 0.5 } } }
layer { name: "b" type: "Bias" bottom: "sc" top: "b" }
layer { name: "gate" type: "InnerProduct" bottom: "b" top: "gate"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "bygate" type: "Scale" bottom: "b" bottom: "gate" top: "g" scale_param { axis: 0 } }
layer { name: "rs" type: "Reshape" bottom: "g" top: "rs" reshape_param { shape { dim: 0 dim: -1 } } }
"""
    net = CaffeNet(text, (3, 2, 2))
    assert set(net.state_dict()) >= {'bn.running_mean', 'bn.running_var', 'sc.weight', 'sc.bias', 'b.weight'}
    assert net.sc.weight.shape == (3,)
    x = torch.randn(4, 3, 2, 2) * 3 + 1
    blobs, _ = net.train().run(x)
    mean, var = x.mean((0, 2, 3), keepdim=True), x.var((0, 2, 3), unbiased=False, keepdim=True)
    normed = (x - mean) / torch.sqrt(var + 1e-5)
    assert torch.allclose(blobs['sc'], 2 * normed + 0.5, atol=1e-5)
    assert torch.allclose(blobs['b'], blobs['sc'])  # Bias is filled with 0
    assert torch.allclose(blobs['g'], blobs['b'] * blobs['gate'][:, :, None, None])  # a per-sample factor
    assert blobs['rs'].shape == (4, 12)
    assert float(net.bn.running_mean.abs().sum()) > 0  # training updates the running statistics
    net.eval()
    stats = net.bn.running_mean.clone()
    net.run(x)
    assert torch.equal(net.bn.running_mean, stats)


def test_data_and_label_blobs_take_the_data_layers_names():
    text = """
layer { name: "in" type: "Data" top: "images" top: "targets" data_param { source: "x" batch_size: 4 backend: LMDB }
        transform_param { mean_file: "mean.binaryproto" crop_size: 4 } }
layer { name: "ip" type: "InnerProduct" bottom: "images" top: "out"
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "out" bottom: "targets" top: "loss" exclude { stage: "deploy" } }
"""
    net = build_caffe_network(text, (1, 4, 4))
    x, y = torch.rand(3, 1, 4, 4), torch.rand(3, 2)
    step = net.module(x, y)
    assert torch.allclose(step.loss, ((step.output - y) ** 2).sum() / 3 / 2)
    deploy = 'input: "img"\ninput_shape { dim: 1 dim: 1 dim: 4 dim: 4 }\n' + \
        'layer { name: "ip" type: "InnerProduct" bottom: "img" top: "out" inner_product_param { num_output: 2 } }\n'
    assert build_caffe_network(deploy, (1, 4, 4)).module.infer(x).shape == (3, 2)


def test_param_groups_feed_the_projects_optimizer():
    from digits_widgets.train.solver import make_optimizer

    net = build_caffe_network((STANDARD / 'segmentation.prototxt').read_text(), (1, 32, 32))
    for solver in ('sgd', 'adam'):
        opt = make_optimizer(net.module.inner.param_groups(1e-3, 1e-5), solver, lr=1e-3)
        lrs = {g['name']: g['lr'] for g in opt.param_groups}
        assert lrs['conv1.bias'] == pytest.approx(1e-4) and lrs['upsample.weight'] == pytest.approx(1e-3)
        step = net.module(torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32))
        opt.zero_grad()
        step.loss.backward()
        opt.step()


def test_bilinear_deconvolution_upsamples():
    text = """
layer { name: "up" type: "Deconvolution" bottom: "data" top: "up"
        param { lr_mult: 0 }
        convolution_param { num_output: 1 kernel_size: 4 stride: 2 pad: 1 bias_term: false
                            weight_filler { type: "bilinear" } } }
"""
    net = CaffeNet(text, (1, 3, 3))
    # Caffe's bilinear kernel for k=4: f=2, c=0.75 -> [0.25, 0.75, 0.75, 0.25] outer itself
    axis = torch.tensor([0.25, 0.75, 0.75, 0.25])
    assert torch.allclose(net.up.weight[0, 0], axis[:, None] * axis[None, :])
    out = net(torch.ones(1, 1, 3, 3))[0]
    assert out.shape == (1, 1, 6, 6)  # (H - 1) * s - 2p + k
    assert torch.allclose(out[0, 0, 1:5, 1:5], torch.ones(4, 4))  # a constant image stays constant inside


def test_in_place_layer_on_data_keeps_the_deploy_output():
    text = """
layer { name: "scale" type: "Power" bottom: "data" top: "data" power_param { scale: 2 } include { phase: TRAIN } }
layer { name: "id" type: "Power" bottom: "data" top: "out" include { stage: "deploy" } }
layer { name: "loss" type: "EuclideanLoss" bottom: "data" bottom: "label" top: "loss" exclude { stage: "deploy" } }
"""
    net = build_caffe_network(text, (1, 2, 2))
    x = torch.rand(2, 1, 2, 2)
    step = net.module(x, torch.zeros(2, 4))
    assert torch.equal(step.output, x)  # the deploy graph sees the batch, not the train graph's in-place edit
    assert torch.allclose(step.loss, ((2 * x) ** 2).sum() / 2 / 2)


def test_layer_names_must_not_clash():
    same_phase = """
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "a" inner_product_param { num_output: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "a" top: "b" inner_product_param { num_output: 2 } }
"""
    with pytest.raises(NetworkError, match="'ip'.*line 3"):
        build_caffe_network(same_phase, (1, 2, 2))
    other_type = """
layer { name: "x" type: "ReLU" bottom: "data" top: "a" include { phase: TRAIN } }
layer { name: "x" type: "Sigmoid" bottom: "data" top: "a" include { phase: TEST } }
"""
    with pytest.raises(NetworkError, match="ReLU layer at line 2"):
        build_caffe_network(other_type, (1, 2, 2))
    shared = """
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "out" include { phase: TRAIN }
        inner_product_param { num_output: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "out" include { phase: TEST }
        inner_product_param { num_output: 2 } }
"""
    assert sorted(build_caffe_network(shared, (1, 2, 2)).module.state_dict()) == ['ip.bias', 'ip.weight']


def test_label_shape_dry_run_checks_the_loss():
    text = """
layer { name: "score" type: "Convolution" bottom: "data" top: "score"
        convolution_param { num_output: 2 kernel_size: 3 pad: 1 weight_filler { type: "msra" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss"
        exclude { stage: "deploy" } }
"""
    net = build_caffe_network(text, (1, 8, 8), nclasses=2, label_shape=(8, 8, 1))
    step = net.module(torch.rand(2, 1, 8, 8), torch.randint(0, 2, (2, 8, 8)))
    assert step.output.shape == (2, 2, 8, 8) and step.loss.dim() == 0
    with pytest.raises(NetworkError, match='does not build'):
        build_caffe_network(text, (1, 8, 8), nclasses=2, label_shape=(4, 4, 1))
