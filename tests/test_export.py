"""Export (issue 13): TorchScript and ONNX files that compute what PyTorch computes, at any batch size.

Every standard and tutorial network (PyTorch zoo, DIGITS' Caffe prototxts, a Torch7 Lua one) is built on a
small input, exported both ways and run in torch.jit / onnxruntime at batch 1 and 3 (it was traced at 2),
against the eval-mode PyTorch forward. One trained job goes end to end: baked and separate preprocessing
against job.infer on raw images, and the ONNX file inside a downloaded archive.
"""
from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest
import torch
from torch import nn

import digits_widgets as dw
from digits_widgets.infer.export import DeployModule, ExportError, export_module, run_export
from digits_widgets.nets import caffe, torch7, zoo
from digits_widgets.nets.network import build_network
from support import TOWER_REGRESSION
from test_caffe import REGRESSION
from test_caffe_seeds import SEGMENTATION_MODEL, SR_MODEL
from test_torch7 import SEGMENTATION as LUA_SEGMENTATION
from test_torch7 import SRCNN as LUA_SRCNN

pytestmark = pytest.mark.slow
TOL = 1e-4

CASES = {
    "lenet": (zoo.source("lenet"), (1, 28, 28), 10),
    # its adaptive pool has no size the TorchScript-based exporter can see under a dynamic batch: this one
    # goes through the fallback to the dynamo exporter (seconds, and a 230 MB file at any input size)
    "alexnet": (zoo.source("alexnet"), (3, 64, 64), 10),
    "googlenet": (zoo.source("googlenet"), (3, 64, 64), 10),
    "gradients_regression": (zoo.source("gradients_regression"), (1, 8, 8), 0),
    "segmentation_fcn": (zoo.source("segmentation_fcn"), (1, 32, 32), 0),
    "autoencoder": (zoo.source("autoencoder"), (1, 28, 28), 0),
    "srcnn": (zoo.source("srcnn"), (3, 33, 33), 0),
    "caffe-lenet": (caffe.standard_network("lenet"), (1, 28, 28), 10),
    "caffe-alexnet": (caffe.standard_network("alexnet"), (3, 64, 64), 10),
    "caffe-googlenet": (caffe.standard_network("googlenet"), (3, 224, 224), 10),   # its 7x7 pool5 needs 224
    # the tutorials' own Caffe and Torch7 networks, as the seeds give them
    "caffe-regression": (REGRESSION, (1, 50, 50), 0),
    "caffe-sr-model": (SR_MODEL, (3, 33, 33), 0),
    "caffe-segmentation-model": (SEGMENTATION_MODEL, (1, 32, 32), 0),
    "torch7-segmentation-model": (LUA_SEGMENTATION, (1, 32, 32), 0),
    "torch7-srcnn": (LUA_SRCNN, (3, 33, 33), 0),
}
MAX_DIFF: dict[str, float] = {}


def _images(batch: int, shape, seed: int) -> torch.Tensor:
    return 255 * torch.rand((batch, *shape), generator=torch.Generator().manual_seed(seed))


def _same(name: str, got: np.ndarray, want: torch.Tensor) -> None:
    want = want.detach().numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)
    MAX_DIFF[name] = max(MAX_DIFF.get(name, 0.0), float(np.abs(got - want).max()))


def _export_both_and_compare(name: str, module: nn.Module, shape, tmp_path) -> None:
    module.eval()
    paths = {fmt: export_module(module, _images(2, shape, 0), tmp_path / f"{name}.{fmt}", fmt, check=False)
             for fmt in ("onnx", "torchscript")}
    for batch in (1, 3):      # traced at 2: the batch axis is dynamic
        x = _images(batch, shape, batch)
        with torch.no_grad():
            want = module(x)
        for fmt, path in paths.items():
            _same(f"{name} {fmt}", run_export(path, fmt, x), want)
    print(f"{name}: max |diff| onnx {MAX_DIFF[name + ' onnx']:.2e}, "
          f"torchscript {MAX_DIFF[name + ' torchscript']:.2e}")


@pytest.mark.parametrize("name", list(CASES))
def test_standard_networks_export_to_onnx_and_torchscript(name, tmp_path):
    text, shape, nclasses = CASES[name]
    torch.manual_seed(0)
    net = build_network(text, shape, nclasses, name=name)
    _export_both_and_compare(name, DeployModule(net.module), shape, tmp_path)


def test_torch7_lua_lenet_exports(tmp_path):
    """nn.View leaves the batch to reshape's -1, so a trace of a Lua network keeps the batch axis dynamic."""
    pytest.importorskip("lupa")
    net = build_network(torch7.standard_network("lenet"), (1, 28, 28), 10, name="lua-lenet")
    _export_both_and_compare("torch7-lenet", DeployModule(net.module), (1, 28, 28), tmp_path)


def test_a_network_that_bakes_its_batch_is_refused(tmp_path):
    class Baked(nn.Module):
        def forward(self, x):
            return x.reshape(int(x.shape[0]), -1).sum(1)   # int(): a trace keeps 2 as a constant

    for fmt in ("onnx", "torchscript"):
        with pytest.raises(ExportError, match="batch size may be baked"):
            export_module(Baked(), _images(2, (1, 4, 4), 0), tmp_path / f"baked.{fmt}", fmt)


def test_the_dynamo_exporter_and_the_fallback_to_it(tmp_path):
    """dynamo=True asks for the torch.export-based exporter; an adaptive pool the TorchScript-based one
    cannot write (5x5 → 3x3) falls back to it by itself."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.AdaptiveAvgPool2d(3), nn.Flatten(), nn.Linear(36, 2))
    for name, dynamo in (("asked", True), ("fallback", False)):
        path = export_module(net, _images(2, (1, 5, 5), 0), tmp_path / f"{name}.onnx", "onnx", dynamo=dynamo)
        assert not list(tmp_path.glob("*.data")), "one self-contained file"
        x = _images(3, (1, 5, 5), 3)
        _same(f"dynamo {name}", run_export(path, "onnx", x), net(x))


@pytest.fixture
def job(grads):
    """The regression tutorial's network on 8x8 gradients, with an image mean and a 6x6 centre crop."""
    model = dw.train(grads, TOWER_REGRESSION, "reg", epochs=2, batch_size=16, solver="adam", lr=0.01, seed=0,
                     mean="image", crop=6)
    assert model.wait(120) == "Done", model.error
    return model


def test_a_trained_job_exports_with_its_preprocessing(job, tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 8, 8), dtype=np.uint8)
    want = job.infer(list(images)).outputs
    raw = torch.from_numpy(images.astype(np.float32))[:, None]       # N x 1 x 8 x 8, 0..255
    for fmt in ("onnx", "torchscript"):
        path = job.export(tmp_path / f"baked.{fmt}", fmt)
        info = json.loads((tmp_path / "baked.preprocess.json").read_text())
        assert info["preprocess"]["baked"] and info["preprocess"]["crop"] == 6
        assert info["input"]["shape"] == ["batch", 1, 8, 8] and info["output"]["shape"] == ["batch", 2]
        _same(f"job baked {fmt}", run_export(path, fmt, raw), torch.from_numpy(want))

    path = job.export(tmp_path / "bare.onnx", "onnx", preprocess="separate", snapshot=1)
    info = json.loads((tmp_path / "bare.preprocess.json").read_text())
    pre = info["preprocess"]
    assert not pre["baked"] and info["input"]["shape"] == ["batch", 1, 6, 6]
    assert pre["mean"]["mode"] == "image" and pre["mean"]["file"] == "bare.mean.npy"
    x = raw - torch.from_numpy(np.load(tmp_path / pre["mean"]["file"]))   # what the sidecar says to do
    top = left = (8 - pre["crop"]) // 2
    x = x[:, :, top:top + pre["crop"], left:left + pre["crop"]]
    first = job.infer(list(images), snapshot=1).outputs
    _same("job separate onnx", run_export(path, "onnx", x), torch.from_numpy(first))
    with pytest.raises(ExportError, match="preprocess must be one of bake, separate"):
        job.export(tmp_path / "x.onnx", preprocess="inside")
    with pytest.raises(ExportError, match="format must be one of torchscript, onnx"):
        job.export(tmp_path / "x.tflite", format="tflite")


def test_the_download_archive_can_carry_the_onnx_export(job, tmp_path):
    archive = job.download(tmp_path / "m.tar.gz", include=("onnx",))
    with tarfile.open(archive) as t:
        assert {"model.onnx", "model.preprocess.json"} <= set(t.getnames())
        t.extract("model.onnx", tmp_path, filter="data")
        assert json.load(t.extractfile("info.json"))["exports"] == {"onnx": "model.onnx"}
    images = np.random.default_rng(1).integers(0, 256, (3, 8, 8), dtype=np.uint8)
    raw = torch.from_numpy(images.astype(np.float32))[:, None]
    want = torch.from_numpy(job.infer(list(images)).outputs)
    _same("archive onnx", run_export(tmp_path / "model.onnx", "onnx", raw), want)
    again = dw.load_model(archive).export(tmp_path / "again.pt", "torchscript")   # a loaded archive exports too
    _same("loaded archive torchscript", run_export(again, "torchscript", raw), want)
