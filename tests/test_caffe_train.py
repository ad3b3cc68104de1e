"""A Caffe prototxt network trains as a job, as DIGITS' Custom Network > Caffe tab did: pasted as written."""
from __future__ import annotations

import pytest
import torch

from digits_widgets.errors import NetworkError
from digits_widgets.magic import _compile_cell
from digits_widgets.train.launch import train
from support import gradients_dataset

# The image-regression tutorial's network, as the seed gives it (Power + InnerProduct + EuclideanLoss),
# with a frozen first layer added to check lr_mult 0.
REGRESSION_PROTOTXT = '''
layer {
  name: "scale"
  type: "Power"
  bottom: "data"
  top: "scale"
  power_param {
    scale: 0.004
  }
}
layer {
  name: "frozen"
  type: "InnerProduct"
  bottom: "scale"
  top: "features"
  param { lr_mult: 0 }
  param { lr_mult: 0 }
  inner_product_param {
    num_output: 16
    weight_filler { type: "xavier" }
  }
}
layer {
  name: "hidden"
  type: "InnerProduct"
  bottom: "features"
  top: "output"
  param { lr_mult: 1 }
  param { lr_mult: 2 decay_mult: 0 }
  inner_product_param {
    num_output: 2
    weight_filler { type: "xavier" }
  }
}
layer {
  name: "loss"
  type: "EuclideanLoss"
  bottom: "output"
  bottom: "label"
  top: "loss"
  exclude { stage: "deploy" }
}
'''


@pytest.fixture
def grads():
    return gradients_dataset("grads", 96, 32)


def test_prototxt_network_trains_as_a_job_with_frozen_layers(grads):
    job = train(grads, REGRESSION_PROTOTXT, "caffe-reg", epochs=6, lr=0.05, solver="sgd", batch_size=16, seed=1,
                policy="fixed")
    assert job.wait(120) == "Done"
    val = job.metrics("val")
    assert val[-1]["loss"] < 0.6 * val[0]["loss"], val
    first = torch.load(job.snapshot_path(1.0), weights_only=True)["model"]
    last = torch.load(job.snapshot_path(), weights_only=True)["model"]
    assert {"frozen.weight", "frozen.bias", "hidden.weight", "hidden.bias"} <= set(last)
    assert torch.equal(first["frozen.weight"], last["frozen.weight"]), "lr_mult 0 keeps the layer unchanged"
    assert not torch.equal(first["hidden.weight"], last["hidden.weight"])
    assert job.network_source() == REGRESSION_PROTOTXT


def test_prototxt_cell_passes_the_magic_compile_check_and_errors_name_the_line():
    _compile_cell(REGRESSION_PROTOTXT, "caffe-cell")   # not Python, and no SyntaxError for it
    from digits_widgets.nets.network import build_network

    broken = REGRESSION_PROTOTXT.replace('type: "Power"', 'type: "Python"')
    with pytest.raises(NetworkError) as info:
        build_network(broken, (1, 8, 8), 0, name="caffe-cell")
    message = str(info.value)
    assert "scale" in message and "Python" in message and "line" in message
