"""The seeds' Caffe networks as the tutorials give them: image reconstruction's sr-model.prototxt (with the
Python L1/L2 loss layers of its loss.py) and binary segmentation's segmentation-model.prototxt (NVcaffe's
L1Loss), each built, trained a few steps on tiny data, and checked for shapes, losses and rate multipliers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import digits_widgets as dw
from digits_widgets.errors import NetworkError
from digits_widgets.nets.caffe import build_caffe_network

# examples/image-reconstruction/sr-model.prototxt (SRCNN, Dong et al. 2014) as the tutorial pastes it: the loss
# layers are Python layers from the job's digits_python_layers module (the tutorial's loss.py).
SR_MODEL = '''name: "SRCNN"
layer { name: "data" type: "Data" top: "data" include { phase: TRAIN } data_param { batch_size: 4 } }
layer { name: "data" type: "Data" top: "data" include { phase: TEST } data_param { batch_size: 4 } }
layer { name: "label" type: "Data" top: "label" include { phase: TRAIN } data_param { batch_size: 4 } }
layer { name: "label" type: "Data" top: "label" include { phase: TEST } data_param { batch_size: 4 } }
layer {
  name: "conv1"
  type: "Convolution"
  bottom: "data"
  top: "conv1"
  param { lr_mult: 1 }
  param { lr_mult: 0.1 }
  convolution_param {
    num_output: 64
    kernel_size: 9
    stride: 1
    pad: 4
    weight_filler { type: "gaussian" std: 0.001 }
    bias_filler { type: "constant" value: 0 }
  }
}
layer { name: "relu1" type: "PReLU" bottom: "conv1" top: "conv1" param { decay_mult: 0 } }
layer {
  name: "conv2"
  type: "Convolution"
  bottom: "conv1"
  top: "conv2"
  param { lr_mult: 1 }
  param { lr_mult: 0.1 }
  convolution_param {
    num_output: 32
    kernel_size: 1
    stride: 1
    pad: 0
    weight_filler { type: "gaussian" std: 0.001 }
    bias_filler { type: "constant" value: 0 }
  }
}
layer { name: "relu2" type: "PReLU" bottom: "conv2" top: "conv2" param { decay_mult: 0 } }
layer {
  name: "conv3"
  type: "Convolution"
  bottom: "conv2"
  top: "conv3"
  param { lr_mult: 0.1 }
  param { lr_mult: 0.1 }
  convolution_param {
    num_output: 3
    kernel_size: 5
    stride: 1
    pad: 2
    weight_filler { type: "gaussian" std: 0.001 }
    bias_filler { type: "constant" value: 0 }
  }
}
layer {
  name: "loss"
  type: "Python"
  bottom: "conv3"
  bottom: "label"
  top: "loss"
  python_param { module: "digits_python_layers" layer: "L1" }
  loss_weight: 1
  exclude { stage: "deploy" }
}
layer {
  name: "l2"
  type: "Python"
  bottom: "conv3"
  bottom: "label"
  top: "l2"
  python_param { module: "digits_python_layers" layer: "L2" }
  loss_weight: 0
  exclude { stage: "deploy" }
}
'''

# examples/binary-segmentation/segmentation-model.prototxt: conv 3x3 32, conv 16x16/16 1024, deconv 16x16/16
# (bias 128), NVcaffe's L1Loss.
SEGMENTATION_MODEL = '''name: "SRCNN"
layer { name: "data" type: "Data" top: "data" include { phase: TRAIN } data_param { batch_size: 4 } }
layer { name: "data" type: "Data" top: "data" include { phase: TEST } data_param { batch_size: 4 } }
layer { name: "label" type: "Data" top: "label" include { phase: TRAIN } data_param { batch_size: 4 } }
layer { name: "label" type: "Data" top: "label" include { phase: TEST } data_param { batch_size: 4 } }
layer {
  name: "conv1"
  type: "Convolution"
  bottom: "data"
  top: "conv1"
  param { lr_mult: 1 }
  param { lr_mult: 0.1 }
  convolution_param {
    num_output: 32
    pad: 1
    kernel_size: 3
    stride: 1
    weight_filler { type: "gaussian" std: 0.001 }
    bias_filler { type: "constant" value: 0 }
  }
}
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer {
  name: "conv2"
  type: "Convolution"
  bottom: "conv1"
  top: "conv2"
  param { lr_mult: 1 }
  param { lr_mult: 0.1 }
  convolution_param {
    num_output: 1024
    pad: 0
    kernel_size: 16
    stride: 16
    weight_filler { type: "gaussian" std: 0.001 }
    bias_filler { type: "constant" value: 0 }
  }
}
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer {
  name: "upsample"
  type: "Deconvolution"
  bottom: "conv2"
  top: "upsample"
  param { lr_mult: 1 }
  param { lr_mult: 0.1 }
  convolution_param {
    num_output: 1
    kernel_size: 16
    stride: 16
    bias_filler { type: "constant" value: 128 }
  }
}
layer {
  name: "lossL1"
  type: "L1Loss"
  bottom: "upsample"
  bottom: "label"
  top: "lossL1"
  loss_weight: 1
  exclude { stage: "deploy" }
}
'''


def _train(net, x, y, steps: int, lr: float) -> list[float]:
    opt = torch.optim.Adam(net.module.inner.param_groups(lr, 0.0), lr=lr)
    losses = []
    for _ in range(steps):
        step = net.module(x, y)
        opt.zero_grad()
        step.loss.backward()
        opt.step()
        losses.append(float(step.loss.detach()))
    return losses


def test_sr_model_trains_with_its_python_l1_and_monitors_l2():
    torch.manual_seed(0)
    net = build_caffe_network(SR_MODEL, (3, 16, 16))
    x = torch.rand(4, 3, 16, 16) * 255
    y = (x + torch.randn_like(x) * 8).clamp(0, 255)
    step = net.module(x, y)
    assert step.output.shape == (4, 3, 16, 16)
    diff = step.output.detach() - y
    assert torch.allclose(step.loss, diff.abs().mean(), rtol=1e-5), "loss.py's L1: sum |diff| / count"
    assert torch.allclose(step.metrics['l2'], (diff ** 2).mean() / 2, rtol=1e-5), "L2: sum diff^2 / count / 2"
    groups = {g['name']: g for g in net.module.inner.param_groups(1e-3, 0.5)}
    assert groups['conv3.weight']['lr'] == pytest.approx(1e-4) and groups['conv1.weight']['lr'] == 1e-3
    assert groups['relu1.weight']['weight_decay'] == 0, "PReLU slopes: decay_mult 0"
    losses = _train(net, x, y, 15, 1e-3)
    assert losses[-1] < losses[0] * 0.7, losses
    with torch.no_grad():
        assert net.module.infer(torch.zeros(1, 3, 24, 20)).shape == (1, 3, 24, 20)


def test_segmentation_model_uses_nvcaffe_l1_and_takes_any_multiple_of_16():
    torch.manual_seed(0)
    net = build_caffe_network(SEGMENTATION_MODEL, (1, 32, 32))
    x = torch.rand(2, 1, 32, 32) * 255
    y = (x > 128).float() * 255
    step = net.module(x, y)
    assert step.output.shape == (2, 1, 32, 32)
    assert torch.allclose(step.loss, (step.output.detach() - y).abs().sum() / 2, rtol=1e-5), "sum / batch"
    assert float(net.module.state_dict()['upsample.bias']) == 128.0
    losses = _train(net, x, y, 10, 1e-3)
    assert losses[-1] < losses[0], losses
    with torch.no_grad():
        assert net.module.infer(torch.zeros(1, 1, 64, 48)).shape == (1, 1, 64, 48)


def test_other_python_layers_are_refused_by_name():
    text = SR_MODEL.replace('layer: "L1"', 'layer: "SSIM"')
    with pytest.raises(NetworkError) as err:
        build_caffe_network(text, (3, 16, 16))
    message = str(err.value)
    assert "Layer 'loss' (type Python, line 56)" in message and "'SSIM' of module 'digits_python_layers'" in message


def test_sr_model_trains_as_a_job(tmp_path):
    rng = np.random.default_rng(0)
    for sub in ("source", "target"):
        (tmp_path / sub).mkdir()
    for i in range(12):
        target = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
        noisy = np.clip(target + rng.normal(0, 10, target.shape), 0, 255).astype(np.uint8)
        Image.fromarray(target).save(tmp_path / "target" / f"{i:03d}.png")
        Image.fromarray(noisy).save(tmp_path / "source" / f"{i:03d}.png")
    ds = dw.datasets.processing("sr-pairs", str(tmp_path / "source"), str(tmp_path / "target"),
                                label_encoding="png", seed=0)
    assert ds.wait(60) == "Done"
    job = dw.train(ds, SR_MODEL, "sr-model", epochs=2, solver="adam", lr=0.001, mean="none", seed=0)
    assert job.wait(120) == "Done", job.error
    assert job.network_source() == SR_MODEL
    val = job.metrics("val")
    assert val and "l2" in val[-1] and val[-1]["loss"] > 0
    pred = job.infer(np.asarray(Image.open(tmp_path / "source" / "000.png")))
    assert np.asarray(pred.outputs).shape[-3:] == (3, 16, 16)
