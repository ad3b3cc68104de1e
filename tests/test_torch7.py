"""Torch7 (Lua) networks: DIGITS' standard networks and the tutorials' Lua networks build, train a few steps and
give the right shapes; Torch7 argument orders and defaults; every refusal names its cause and its Lua line."""
from __future__ import annotations

import builtins
import logging

import pytest
import torch
import torch.nn.functional as F
from torch import nn

pytest.importorskip("lupa")

from digits_widgets.errors import NetworkError  # noqa: E402
from digits_widgets.nets.network import build_for_input, build_network  # noqa: E402
from digits_widgets.nets.torch7 import STANDARD_NETWORKS, framework_of, is_torch7_lua, standard_network  # noqa: E402
from digits_widgets.nets.torch7.lua import LUPA_HINT  # noqa: E402

# The tutorials' Torch7 networks, as the seeds give them.
REGRESSION = """return function(p)
    local nDim=1
    if p.inputShape then p.inputShape:apply(function(x) nDim=nDim*x end) end
    local net = nn.Sequential()
    net:add(nn.MulConstant(0.004))
    net:add(nn.View(-1):setNumInputDims(3))
    net:add(nn.Linear(nDim,2))
    return {
        model = net,
        loss = nn.MSECriterion(),
    }
end
"""

AUTOENCODER = """local autoencoder = nn.Sequential()
autoencoder:add(nn.MulConstant(0.00390625))
autoencoder:add(nn.View(-1):setNumInputDims(3))  -- 1*28*28 -> 784
autoencoder:add(nn.Linear(784,300))
autoencoder:add(nn.ReLU())
autoencoder:add(nn.Linear(300,50))
autoencoder:add(nn.ReLU())
autoencoder:add(nn.Linear(50,300))
autoencoder:add(nn.ReLU())
autoencoder:add(nn.Linear(300,784))
autoencoder:add(nn.View(1,28,28):setNumInputDims(1)) -- 784 -> 1*28*28

function autoencoderLabelHook(input, dblabel)
    -- label is the input
    return input
end

-- return function that returns network definition
return function(params)
    return {
        model = autoencoder,
        loss = nn.MSECriterion(),
        trainBatchSize = 64,
        validationBatchSize = 100,
        labelHook = autoencoderLabelHook,
    }
end
"""

# DIGITS' examples/binary-segmentation Torch model: conv 3x3 32, conv 16x16/16 1024, deconv 16x16/16.
SEGMENTATION = """return function(params)
    local nclasses = params.nclasses or 1
    local channels = 1
    if params.inputShape then
        channels = params.inputShape[1]
    end
    if pcall(function() require('cudnn') end) then
       backend = cudnn
    else
       backend = nn
    end
    local net = nn.Sequential()
    net:add(backend.SpatialConvolution(channels,32,3,3,1,1,1,1)) -- C*H*W -> 32*H*W
    net:add(backend.ReLU())
    net:add(backend.SpatialConvolution(32,1024,16,16,16,16,0,0)) -- 32*H*W -> 1024*H/16*W/16
    net:add(backend.ReLU())
    net:add(backend.SpatialFullConvolution(1024,1,16,16,16,16,0,0)) -- 1024*H/16*W/16 -> 1*H*W
    return {
        model = net,
        loss = nn.SmoothL1Criterion(),
        trainBatchSize = 4,
        validationBatchSize = 32,
    }
end
"""

# The image-reconstruction tutorial's SRCNN (Dong et al.): 9x9 64, 1x1 32, 5x5 3, PReLU, L1 loss.
SRCNN = """require 'nn'
return function(params)
    local channels = params.inputShape[1]
    local net = nn.Sequential()
    net:add(nn.SpatialConvolution(channels, 64, 9, 9, 1, 1, 4, 4))
    net:add(nn.PReLU(64))
    net:add(nn.SpatialConvolution(64, 32, 1, 1))
    net:add(nn.PReLU(32))
    net:add(nn.SpatialConvolution(32, channels, 5, 5, 1, 1, 2, 2))
    return {model = net, loss = nn.AbsCriterion(), trainBatchSize = 4}
end
"""

FINE_TUNE = """return function(params)
    local lenet = nn.Sequential()
    lenet:add(nn.MulConstant(0.00390625))
    lenet:add(nn.SpatialConvolution(1,20,5,5,1,1,0)) -- 1*28*28 -> 20*24*24
    lenet:add(nn.SpatialMaxPooling(2, 2, 2, 2))      -- 20*12*12
    lenet:add(nn.SpatialConvolution(20,50,5,5,1,1,0)) -- 50*8*8
    lenet:add(nn.SpatialMaxPooling(2,2,2,2))          -- 50*4*4
    lenet:add(nn.View(-1):setNumInputDims(3))
    lenet:add(nn.Linear(800,500))
    lenet:add(nn.ReLU())
    lenet:add(nn.Linear(500, 10))
    lenet:add(nn.LogSoftMax())
    assert(params.ngpus <= 1, "Multi-GPU implementation needed")
    local function oddOrEven(net)
        local function dummyAccGradParameters() end
        net:get(2).accGradParameters = dummyAccGradParameters
        net:get(4).accGradParameters = dummyAccGradParameters
        net:get(7).accGradParameters = dummyAccGradParameters
        net:insert(nn.Linear(10, 2), 10)
        return net
    end
    return {model = lenet, loss = nn.ClassNLLCriterion(), trainBatchSize = 1, validationBatchSize = 100,
            fineTuneHook = oddOrEven}
end
"""


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def train(net, x, y, steps: int = 4, lr: float = 1e-3) -> list[float]:
    opt = torch.optim.Adam([p for p in net.module.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in range(steps):
        out = net.module(x, y)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    return losses


def lua(body: str) -> str:
    """A network function around a model built by ``body`` (which sets ``net``)."""
    return f"return function(params)\n{body}\n    return {{model = net, loss = nn.MSECriterion()}}\nend\n"


# ------------------------------------------------------------------ the tutorials' networks

def test_regression_network_trains_on_gradients() -> None:
    net = build_network(REGRESSION, (1, 8, 8), 0)
    assert net.style == 'torch7'
    linear = net.module.inner[2]
    assert isinstance(linear, nn.Linear) and linear.in_features == 64 and linear.out_features == 2
    x, y = torch.rand(6, 1, 8, 8) * 255, torch.rand(6, 2)
    assert net.module(x, y).output.shape == (6, 2)
    losses = train(net, x, y, steps=8, lr=1e-2)
    assert losses[-1] < losses[0]
    expected = F.mse_loss(net.module.inner(x), y)
    assert torch.isclose(net.module(x, y).loss, expected)


def test_autoencoder_label_hook_and_batch_sizes() -> None:
    net = build_network(AUTOENCODER, (1, 28, 28), 0)
    assert (net.train_batch_size, net.validation_batch_size) == (64, 100)
    x = torch.rand(4, 1, 28, 28) * 255
    out = net.module(x, None)   # images-only dataset: the hook makes the target from the input
    assert out.output.shape == (4, 1, 28, 28)
    assert torch.isclose(out.loss, F.mse_loss(out.output, x))
    losses = train(net, x, None, steps=4)
    assert losses[-1] < losses[0]


def test_segmentation_fcn_output_is_a_full_size_map() -> None:
    net = build_network(SEGMENTATION, (1, 32, 32), 0)
    assert net.train_batch_size == 4 and net.validation_batch_size == 32
    assert net.module.inner[2].kernel_size == (16, 16) and net.module.inner[2].stride == (16, 16)
    x, y = torch.rand(2, 1, 32, 32), (torch.rand(2, 1, 32, 32) > 0.5).float()
    out = net.module(x, y)
    assert out.output.shape == (2, 1, 32, 32)
    assert torch.isclose(out.loss, F.smooth_l1_loss(out.output, y))
    losses = train(net, x, y, steps=3)
    assert losses[-1] < losses[0]


def test_srcnn_keeps_the_image_size_with_l1_loss() -> None:
    net = build_network(SRCNN, (3, 20, 20), 0)
    x, y = torch.rand(2, 3, 20, 20), torch.rand(2, 3, 20, 20)
    out = net.module(x, y)
    assert out.output.shape == (2, 3, 20, 20)
    assert isinstance(net.module.inner[1], nn.PReLU) and net.module.inner[1].weight.numel() == 64
    assert torch.isclose(out.loss, F.l1_loss(out.output, y))
    losses = train(net, x, y, steps=3)
    assert losses[-1] < losses[0]


# ------------------------------------------------------------------ DIGITS' standard networks

def test_standard_networks_ship_as_package_data() -> None:
    for name in STANDARD_NETWORKS:
        text = standard_network(name)
        assert 'return function(params)' in text and is_torch7_lua(text) and framework_of(text) == 'torch'
    with pytest.raises(ValueError, match="lenet, alexnet, googlenet"):
        standard_network('vgg')


def test_lenet_classifies_with_zero_based_labels() -> None:
    net = build_network(standard_network('lenet'), (1, 28, 28), 10)
    assert (net.train_batch_size, net.validation_batch_size) == (64, 32)
    inner = net.module.inner
    assert [type(m).__name__ for m in inner] == ['MulConstant', 'Conv2d', 'MaxPool2d', 'Conv2d', 'MaxPool2d',
                                                  'View', 'Linear', 'ReLU', 'Linear', 'Softmax']
    x, y = torch.rand(8, 1, 28, 28) * 255, torch.arange(8) % 10   # class 0 is a valid label: 0-based
    out = net.module(x, y)
    assert out.output.shape == (8, 10)
    assert torch.allclose(out.output.exp().sum(1), torch.ones(8), atol=1e-5)   # LogSoftMax
    assert torch.isclose(out.loss, F.nll_loss(out.output, y)) and 'accuracy' in out.metrics
    losses = train(net, x, y, steps=5)
    assert losses[-1] < losses[0]


def test_lenet_assertion_is_the_lua_error_with_its_line() -> None:
    with pytest.raises(NetworkError) as info:
        build_network(standard_network('lenet'), (1, 32, 32), 10, name='lenet')
    text = str(info.value)
    assert "Network expects 28x28 images" in text
    line = next(i for i, ln in enumerate(standard_network('lenet').splitlines(), 1) if 'assert(' in ln)
    assert f"<digits_model:lenet>:{line}:" in text and 'stack traceback' in info.value.traceback_text


@pytest.mark.parametrize('name, classes', [('alexnet', 5), ('googlenet', 3)])
def test_imagenet_networks_crop_to_224_and_train_a_step(name: str, classes: int) -> None:
    net, shape = build_for_input(standard_network(name), (3, 256, 256), classes, name=name)
    assert shape == (3, 224, 224) and net.crop_len == 224
    x, y = torch.rand(2, 3, 224, 224) * 255, torch.tensor([0, classes - 1])
    out = net.module(x, y)
    assert out.output.shape == (2, classes)
    assert torch.isclose(out.loss, F.nll_loss(out.output, y))   # default loss: ClassNLLCriterion
    train(net, x, y, steps=1)


def test_alexnet_on_several_gpus_runs_its_features_as_they_are() -> None:
    net, _ = build_for_input(standard_network('alexnet'), (3, 256, 256), 4, params={'ngpus': 2})
    assert isinstance(net.module.inner[0], nn.Sequential)   # DataParallelTable holds the features
    assert net.module.infer(torch.zeros(1, 3, 224, 224)).shape == (1, 4)


def test_fine_tune_hook_freezes_and_keeps_the_weights() -> None:
    net = build_network(FINE_TUNE, (1, 28, 28), 2)
    conv = net.module.inner[1]
    with torch.no_grad():
        conv.weight.fill_(0.5)
    tuned = net.apply_fine_tune_hook()
    inner = tuned.module.inner
    assert len(inner) == 11 and isinstance(inner[9], nn.Linear) and inner[9].out_features == 2
    assert inner[1] is conv and bool((conv.weight == 0.5).all())
    frozen = {i for i, m in enumerate(inner) if any(not p.requires_grad for p in m.parameters())}
    assert frozen == {1, 3, 6}
    x, y = torch.rand(2, 1, 28, 28), torch.tensor([0, 1])
    assert tuned.module(x, y).output.shape == (2, 2)


# ------------------------------------------------------------------ Torch7 semantics

def test_convolution_gives_width_before_height() -> None:
    net = build_network(lua("    local net = nn.SpatialConvolution(2, 4, 3, 5, 2, 1, 1, 2)"), (2, 9, 9), 0)
    conv = net.module.inner
    assert conv.weight.shape == (4, 2, 5, 3)   # kH=5, kW=3
    assert conv.stride == (1, 2) and conv.padding == (2, 1)
    net = build_network(lua("    local net = nn.SpatialConvolution(1, 1, 3, 3, 1, 1, 1)"), (1, 5, 5), 0)
    assert net.module.inner.padding == (1, 1)   # padH defaults to padW


def test_pooling_floors_unless_ceil() -> None:
    floor = build_network(lua("    local net = nn.SpatialMaxPooling(2, 2)"), (1, 7, 7), 0)
    ceil = build_network(lua("    local net = nn.SpatialMaxPooling(2, 2, 2, 2):ceil()"), (1, 7, 7), 0)
    avg = build_network(lua("    local net = nn.SpatialAveragePooling(3, 3)"), (1, 7, 7), 0)
    x = torch.rand(1, 1, 7, 7)
    assert floor.module.infer(x).shape == (1, 1, 3, 3)
    assert ceil.module.infer(x).shape == (1, 1, 4, 4)
    assert avg.module.infer(x).shape == (1, 1, 5, 5)   # average pooling strides default to 1


def test_view_and_reshape_batch_rules() -> None:
    flat = build_network(lua("    local net = nn.View(-1)"), (2, 3, 4), 0)
    assert flat.module.infer(torch.zeros(5, 2, 3, 4)).shape == (120,)   # no numInputDims: one sample
    per = build_network(lua("    local net = nn.View(-1):setNumInputDims(3)"), (2, 3, 4), 0)
    assert per.module.infer(torch.zeros(5, 2, 3, 4)).shape == (5, 24)
    sized = build_network(lua("    local net = nn.View(6, 4)"), (2, 3, 4), 0)
    assert sized.module.infer(torch.zeros(5, 2, 3, 4)).shape == (5, 6, 4)
    reshape = build_network(lua("    local net = nn.Reshape(24)"), (2, 3, 4), 0)
    assert reshape.module.infer(torch.zeros(5, 2, 3, 4)).shape == (5, 24)


def test_tables_and_concat_follow_lua_dimensions() -> None:
    body = """    local branches = nn.Concat(2)
    branches:add(nn.SpatialConvolution(1, 2, 1, 1)):add(nn.SpatialConvolution(1, 3, 3, 3, 1, 1, 1, 1))
    local sum = nn.Sequential():add(nn.ConcatTable():add(nn.Identity()):add(nn.MulConstant(2))):add(nn.CAddTable())
    local net = nn.Sequential():add(branches):add(sum):add(nn.AddConstant(1)):add(nn.Tanh())"""
    net = build_network(lua(body), (1, 6, 6), 0)
    x = torch.rand(2, 1, 6, 6)
    inner = net.module.inner
    joined = torch.cat([inner[0][0](x), inner[0][1](x)], 1)
    assert torch.allclose(inner(x), torch.tanh(joined * 3 + 1), atol=1e-6)
    assert inner(x).shape == (2, 5, 6, 6)
    body = ("    local net = nn.Sequential():add(nn.View(2, 4):setNumInputDims(3))\n"
            "    net:add(nn.Parallel(2, 2):add(nn.Linear(4, 3)):add(nn.Linear(4, 1)))")
    par = build_network(lua(body), (2, 4, 1), 0)
    x = torch.rand(7, 2, 4, 1)
    lin = par.module.inner[1]
    assert torch.allclose(par.module.infer(x), torch.cat([lin[0](x[:, 0, :, 0]), lin[1](x[:, 1, :, 0])], 1))


def test_batch_norm_dropout_softmax_sigmoid() -> None:
    body = """    local net = nn.Sequential():add(nn.SpatialBatchNormalization(3, 1e-3)):add(nn.Dropout(0.3))
    net:add(nn.View(-1):setNumInputDims(3)):add(nn.Linear(12, 4)):add(nn.SoftMax())"""
    net = build_network(lua(body), (3, 2, 2), 0)
    bn, drop = net.module.inner[0], net.module.inner[1]
    assert isinstance(bn, nn.BatchNorm2d) and bn.eps == 1e-3 and drop.p == pytest.approx(0.3)
    net.module.eval()
    assert torch.allclose(net.module.infer(torch.rand(3, 3, 2, 2)).sum(1), torch.ones(3))
    sig = build_network(lua("    local net = nn.Sigmoid()"), (1, 2, 2), 0)
    assert isinstance(sig.module.inner, nn.Sigmoid)


@pytest.mark.parametrize('criterion, reference', [
    ('nn.MSECriterion()', F.mse_loss), ('nn.AbsCriterion()', F.l1_loss),
    ('nn.SmoothL1Criterion()', F.smooth_l1_loss), ('nn.BCECriterion()', F.binary_cross_entropy)])
def test_criteria_match_pytorch(criterion: str, reference) -> None:
    text = ("return function(params)\n    return {model = nn.Sigmoid(), loss = " + criterion + "}\nend\n")
    net = build_network(text, (1, 3, 3), 0)
    x, y = torch.randn(2, 1, 3, 3), torch.rand(2, 1, 3, 3)
    assert torch.isclose(net.module(x, y).loss, reference(torch.sigmoid(x), y))


def test_size_average_false_sums() -> None:
    text = ("return function(params)\n    local c = nn.MSECriterion()\n    c.sizeAverage = false\n"
            "    return {model = nn.Identity(), loss = c}\nend\n")
    net = build_network(text, (1, 2, 2), 0)
    x, y = torch.randn(2, 1, 2, 2), torch.randn(2, 1, 2, 2)
    assert torch.isclose(net.module(x, y).loss, F.mse_loss(x, y, reduction='sum'))


def test_params_as_digits_passed_them() -> None:
    text = """return function(params)
    assert(params.nclasses == nil, 'nclasses is for classification only')
    assert(params.ngpus ~= nil and params.inputShape[1] == 3 and params.inputShape[2] == 5)
    assert(params.inputShape[3] == 7 and params.inputShape:nElement() == 105 and params.answer == 42)
    return {model = nn.Identity()}
end
"""
    assert build_network(text, (3, 5, 7), 0, params={'answer': 42}).style == 'torch7'


def test_lua_print_goes_to_the_log(caplog, capsys) -> None:
    with caplog.at_level(logging.INFO, logger='digits_widgets.torch7'):
        build_network(standard_network('lenet'), (1, 28, 28), 10)
    assert 'Using CuDNN backend' in caplog.text and capsys.readouterr().out == ''


# ------------------------------------------------------------------ routing

def test_framework_is_recognised_and_can_be_named() -> None:
    assert framework_of(REGRESSION) == 'torch' and framework_of(AUTOENCODER) == 'torch'
    assert framework_of("model = nn.Linear(2, 2)\n") == 'pytorch'
    assert framework_of('name: "x"\nlayer { name: "a" type: "ReLU" bottom: "data" top: "a" }\n') == 'caffe'
    # Lua without any mark of Lua: named explicitly, it runs as Lua (and fails as DIGITS did)
    with pytest.raises(NetworkError, match="Network definition should return a Lua function"):
        build_network("x = 1\n", (1, 2, 2), 0, framework='torch')
    with pytest.raises(NetworkError, match="framework must be one of"):
        build_network("x = 1\n", (1, 2, 2), 0, framework='tensorflow')


# ------------------------------------------------------------------ refusals name their cause

def test_unknown_module_names_it_and_its_line() -> None:
    text = "require 'nn'\nlocal net = nn.Sequential()\nnet:add(nn.SpatialLPPooling(3, 2, 2, 2))\n" \
           "return function(p) return {model = net} end\n"
    with pytest.raises(NetworkError) as info:
        build_network(text, (3, 8, 8), 0, name='lp')
    assert "<digits_model:lp>:3: unknown nn module 'nn.SpatialLPPooling'" in str(info.value)


def test_unknown_require_names_the_package() -> None:
    with pytest.raises(NetworkError, match=r"<digits_model:r>:1: module 'rnn' not found"):
        build_network("require 'rnn'\nreturn function(p) return {model = nn.Identity()} end\n", (1, 2, 2), 0,
                      name='r')


def test_lua_syntax_error_names_the_line() -> None:
    with pytest.raises(NetworkError, match=r"Lua syntax error: <digits_model:s>:3:"):
        build_network("return function(p)\n  local net = nn.Sequential(\n  return {model = net}\nend\n",
                      (1, 2, 2), 0, name='s')


def test_runtime_error_shows_the_lua_traceback() -> None:
    text = "local function make()\n    return nn.Sequential():frobnicate()\nend\n" \
           "return function(p)\n    return {model = make()}\nend\n"
    with pytest.raises(NetworkError) as info:
        build_network(text, (1, 2, 2), 0, name='t')
    assert "<digits_model:t>:2: attempt to call" in str(info.value) and "'frobnicate'" in str(info.value)
    assert "<digits_model:t>:5:" in info.value.traceback_text   # the caller's line too


def test_not_returning_a_function_is_digits_message() -> None:
    with pytest.raises(NetworkError, match="Network definition should return a Lua function"):
        build_network("local net = nn.Sequential()\nreturn net\n", (1, 2, 2), 0)
    with pytest.raises(NetworkError, match="has no `model`"):
        build_network("return function(p) return {loss = nn.MSECriterion()} end\n", (1, 2, 2), 0)
    with pytest.raises(NetworkError, match="unknown key"):
        build_network("return function(p) return {model = nn.Identity(), batchSize = 3} end\n", (1, 2, 2), 0)
    with pytest.raises(NetworkError, match="`loss` must be a criterion"):
        build_network("return function(p) return {model = nn.Identity(), loss = nn.ReLU()} end\n", (1, 2, 2), 0)


def test_bad_arguments_and_shapes_name_the_module_and_line() -> None:
    with pytest.raises(NetworkError, match=r"nn\.Linear \(line 2\) needs inputSize, outputSize"):
        build_network(lua("    local net = nn.Linear(3)"), (1, 2, 2), 0)
    text = lua("    local net = nn.Sequential()\n    net:add(nn.View(-1):setNumInputDims(3))\n"
               "    net:add(nn.Linear(5, 2))")
    with pytest.raises(NetworkError, match=r"nn\.Linear \(line 4\) failed: .*shapes cannot be multiplied"):
        build_network(text, (1, 2, 2), 0)


def test_without_lupa_the_error_says_what_to_install(monkeypatch) -> None:
    real_import = builtins.__import__

    def no_lupa(name, *args, **kwargs):
        if name == 'lupa' or name.startswith('lupa.'):
            raise ImportError("No module named 'lupa'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, '__import__', no_lupa)
    with pytest.raises(NetworkError) as info:
        build_network(REGRESSION, (1, 4, 4), 0)
    assert "pip install digits_widgets[torch7]" in str(info.value) and str(info.value) == LUPA_HINT


# ------------------------------------------------------------------ as a job, and in the magic

def test_regression_lua_network_trains_as_a_job() -> None:
    from support import gradients_dataset

    from digits_widgets.train.launch import train as train_job

    ds = gradients_dataset("grads7", 96, 32)
    job = train_job(ds, REGRESSION, "torch7-reg", epochs=6, lr=0.05, solver="sgd", batch_size=16, seed=1,
                    policy="fixed")
    assert job.wait(120) == "Done"
    val = job.metrics("val")
    assert val[-1]["loss"] < 0.6 * val[0]["loss"], val
    last = torch.load(job.snapshot_path(), weights_only=True)["model"]
    assert last["2.weight"].shape == (2, 64)
    assert job.network_source() == REGRESSION
