"""DIGITS' standard Caffe networks build for their input sizes and train on tiny random data."""
from __future__ import annotations

import math

import pytest
import torch

from digits_widgets.nets.caffe import STANDARD_INPUT_SHAPES, build_caffe_network, standard_network


@pytest.mark.parametrize('name', ['lenet', 'alexnet', 'googlenet'])
def test_standard_network_builds_and_trains(name):
    torch.manual_seed(0)
    shape, nclasses = STANDARD_INPUT_SHAPES[name], 3
    net = build_caffe_network(standard_network(name), shape, nclasses, name)
    x, y = torch.rand(2, *shape) * 255, torch.tensor([0, 2])
    groups = net.module.inner.param_groups(0.01, 0.0005)
    opt = torch.optim.SGD(groups, lr=0.01)
    step = net.module(x, y)
    assert step.output.shape == (2, nclasses)
    assert torch.allclose(step.output.sum(1), torch.ones(2), atol=1e-5)   # the deploy Softmax
    opt.zero_grad()
    step.loss.backward()
    opt.step()
    assert math.isfinite(float(step.loss))


def test_googlenet_total_loss_weighs_the_auxiliary_heads():
    torch.manual_seed(0)
    net = build_caffe_network(standard_network('googlenet'), (3, 224, 224), 3, 'googlenet')
    caffe = net.module.inner.net
    blobs, _ = caffe.run(torch.rand(2, 3, 224, 224) * 255, torch.tensor([1, 2]))
    total, metrics = caffe.losses(blobs)
    expected = blobs['loss'] + 0.3 * (blobs['loss1/loss'] + blobs['loss2/loss'])
    assert torch.allclose(total, expected)
    assert {'loss1/loss', 'loss2/loss'} <= set(metrics)
    assert not any(ly.proto.name.startswith(('loss1/', 'loss2/')) for ly in caffe.deploy_graph)
