"""Exporting a trained network for other runtimes: TorchScript (``torch.jit.load``) and ONNX (onnxruntime).

Only the deploy output is exported, as inference gets it (``TrainableNet.infer``: a Tower's ``inference``, a
Caffe net's deploy blob, a module's output), never the losses. The batch axis is dynamic; height and width
are the dataset's (after its crop), as in DIGITS' deploy.prototxt.

Preprocessing, two ways (``preprocess=``):

- ``"bake"`` (default): the file holds DIGITS' preprocessing in front of the network, so it takes raw
  images, float N×C×H×W in 0..255 at the dataset's size and channel order (RGB or grey, as the dataset
  stored them): mean subtraction (image or pixel) and the centre crop happen inside.
- ``"separate"``: the file is the bare network; it takes what the network saw in training (mean
  subtracted, cropped).

Either way ``<stem>.preprocess.json`` is written beside the file: input and output names and shapes, the
resize (the one step never baked: resize to the dataset's size with its resize mode before), the mean
(its values for 'pixel', ``<stem>.mean.npy`` C×H×W for 'image'), the crop, whether they are baked, and
the class labels. After exporting, the file is loaded again and run at another batch size; an output that
differs from PyTorch's by more than 1e-4 (relative) is an :class:`ExportError`.

ONNX: torch 2.9+ defaults to the torch.export-based exporter (``dynamo=True``). It works offline with
onnxscript but takes seconds per network and writes weights to a ``.data`` file beside; this module uses
the TorchScript-based exporter (``dynamo=False``: a trace, a few milliseconds, one self-contained file) and
falls back to the dynamo one when that fails or is gone. ``dynamo=True`` asks for the new exporter first.
When the TorchScript-based exporter fails, torch itself prints "Torch IR graph at exception: ..." to the
process's stderr (a C++ log, on whatever the ONNX log setting) before the fallback runs; it is harmless.
``torch.jit`` is deprecated in torch 2.14 but works; its FutureWarnings are not repeated to the user.
"""
from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import JobError
from .predict import Predictor

FORMATS = ("torchscript", "onnx")
PREPROCESS = ("bake", "separate")
INPUT, OUTPUT = "input", "output"
OPSET = 17
TOLERANCE = 1e-4


class ExportError(JobError):
    """A network that cannot be exported, or whose export does not compute what PyTorch computes."""


class DeployModule(nn.Module):
    """The deploy output of a built network (``TrainableNet``), optionally behind DIGITS' preprocessing.

    ``mean`` (C×H×W or C×1×1) is subtracted and the central ``crop``×``crop`` window taken, exactly as
    ``loader.Transform`` does for validation and inference; both are fixed for the input size ``size``.

    The network is not a submodule: TorchScript copies the module tree and reads every attribute of each
    module, which runs a Tower's model properties (its loss, with no labels) and fails. Its parameters and
    buffers (the same tensors) are registered here instead, so the tracer finds them as weights."""

    def __init__(self, net: nn.Module, mean: Tensor | None = None, crop: int | None = None,
                 size: tuple[int, int] | None = None):
        super().__init__()
        object.__setattr__(self, "net", net)
        for name, param in net.named_parameters():
            self.register_parameter("net__" + name.replace(".", "__"), param)
        for name, buf in net.named_buffers():
            self.register_buffer("net__" + name.replace(".", "__"), buf)
        self.register_buffer("mean", mean.clone().float() if mean is not None else None)
        self.window: tuple[int, int, int] | None = None
        if crop and size is not None and min(size) >= crop:
            height, width = size
            self.window = ((height - crop) // 2, (width - crop) // 2, crop)

    def train(self, mode: bool = True) -> "DeployModule":
        self.net.train(mode)
        return super().train(mode)

    def forward(self, x: Tensor) -> Tensor:
        x = x.float()
        if self.mean is not None:
            x = x - self.mean
        if self.window is not None:
            top, left, size = self.window
            x = x[:, :, top:top + size, left:left + size]
        out = self.net.infer(x) if hasattr(self.net, "infer") else self.net(x)
        if not isinstance(out, Tensor):
            raise ExportError(f"The network's inference output is a {type(out).__name__}, not a tensor")
        return out.float()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """torch.jit's and the legacy ONNX exporter's deprecation notices, and tracer notes on Python values."""
    with warnings.catch_warnings():
        for category in (FutureWarning, DeprecationWarning, torch.jit.TracerWarning, UserWarning):
            warnings.simplefilter("ignore", category)
        yield


def export_module(module: nn.Module, example: Tensor, path: "str | Path", format: str = "onnx",
                  dynamo: bool = False, check: bool = True) -> Path:
    """Write ``module`` (eval mode, CPU) as TorchScript or ONNX, traced on ``example`` (N×C×H×W) with a
    dynamic batch axis; with ``check``, load the file and compare its outputs with PyTorch's at batch 3."""
    if format not in FORMATS:
        raise ExportError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module.cpu().eval()
    example = example.detach().cpu().float()
    with torch.no_grad():
        if format == "torchscript":
            _torchscript(module, example, path)
        else:
            _onnx(module, example, path, dynamo)
        if check:
            probe = _probe_like(example, 3)
            check_export(path, format, probe, module(probe))
    return path


def _probe_like(example: Tensor, batch: int) -> Tensor:
    """Random inputs of ``example``'s range, at another batch size (a batch baked into the file shows)."""
    g = torch.Generator().manual_seed(0)
    lo, hi = float(example.min()), float(example.max())
    span = hi - lo if hi > lo else 1.0
    return lo + span * torch.rand((batch, *example.shape[1:]), generator=g)


def _torchscript(module: nn.Module, example: Tensor, path: Path) -> None:
    with _quiet():
        try:
            saved = torch.jit.trace(module, example, check_trace=False)
        except Exception as trace_error:  # noqa: BLE001 - a net the tracer cannot follow may script
            try:
                saved = torch.jit.script(module)
            except Exception as script_error:  # noqa: BLE001
                raise ExportError(f"TorchScript export failed: trace: {trace_error}; script: {script_error}"
                                  ) from None
        saved.save(str(path))


def _onnx(module: nn.Module, example: Tensor, path: Path, dynamo: bool) -> None:
    def legacy() -> None:
        torch.onnx.export(module, (example,), str(path), input_names=[INPUT], output_names=[OUTPUT],
                          dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}}, opset_version=OPSET,
                          dynamo=False, verbose=False)

    def new() -> None:
        program = torch.onnx.export(module, (example,), input_names=[INPUT], output_names=[OUTPUT],
                                    dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True,
                                    verbose=False)
        program.save(str(path), external_data=False)   # one file, as the TorchScript-based exporter writes

    attempts: list[tuple[str, Callable[[], None]]] = [("torchscript-based", legacy), ("dynamo", new)]
    errors = []
    with _quiet():
        for name, run in (attempts[::-1] if dynamo else attempts):
            try:
                run()
                return
            except ExportError:
                raise
            except Exception as exc:  # noqa: BLE001 - try the other exporter, then report both
                errors.append(f"{name} exporter: {type(exc).__name__}: {exc}")
    raise ExportError("ONNX export failed:\n" + "\n".join(errors))


def run_export(path: "str | Path", format: str, x: Tensor) -> np.ndarray:
    """Outputs of an exported file for ``x``: torch.jit.load for TorchScript, onnxruntime for ONNX.

    TorchScript runs without the JIT's profiling passes, which spend seconds on a big net's first calls and
    compute the same values."""
    if format == "torchscript":
        with _quiet():
            loaded = torch.jit.load(str(path), map_location="cpu")
        with torch.no_grad(), torch.jit.optimized_execution(False):
            return loaded(x.float()).numpy()
    try:
        import onnxruntime
    except ImportError:
        raise ExportError("Running an ONNX file needs onnxruntime: pip install 'digits_widgets[export]'") from None
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4   # a failing run raises; its own log line would say it twice
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.float().numpy()})[0]


def check_export(path: Path, format: str, x: Tensor, expected: Tensor) -> float:
    """The largest difference between the file's outputs and PyTorch's; ExportError past the tolerance.
    An ONNX file is not checked when onnxruntime is not installed (returns NaN)."""
    if format == "onnx":
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return float("nan")
    try:
        got = run_export(path, format, x)
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001 - onnxruntime's or TorchScript's own errors
        raise ExportError(f"The exported {format} file {path} fails on a batch of {len(x)} where PyTorch runs "
                          f"(the batch size may be baked into the network): {str(exc).strip()[:600]}") from None
    want = expected.detach().float().cpu().numpy()
    if got.shape != want.shape:
        raise ExportError(f"The exported {format} file {path} gives outputs of shape {got.shape} for a batch of "
                          f"{len(x)}, PyTorch {want.shape}: the batch size may be baked into the network")
    diff = float(np.abs(got - want).max()) if got.size else 0.0
    if not np.allclose(got, want, rtol=TOLERANCE, atol=TOLERANCE * max(1.0, float(np.abs(want).max()))):
        raise ExportError(f"The exported {format} file {path} differs from PyTorch by up to {diff:.3g}")
    return diff


def _framework(job: Any) -> str | None:
    """'pytorch', 'caffe' or 'torch' from the network text; None for a network given as an object."""
    if getattr(job, "network_object", None) is not None:
        return None
    from ..nets.torch7.detect import framework_of
    return framework_of(job.network_source())


# ---- a trained model ----------------------------------------------------------------------------------
def preprocess_info(pred: Predictor, baked: bool, mean_file: str | None) -> dict:
    """What a caller of the exported file must do to an image first (and what is done inside)."""
    c, h, w = pred.shape
    crop = pred.crop if pred.crop and min(h, w) >= pred.crop else None
    mean: dict | None = None
    if pred.mean is not None:
        mean = {"mode": pred.mean_mode, "shape": list(pred.mean.shape)}
        if pred.mean_mode == "pixel":
            mean["values"] = [float(v) for v in pred.mean.flatten()]
        elif mean_file:   # a baked image mean lives only inside the file
            mean["file"] = mean_file
    steps = [f"load as {'grey' if c == 1 else 'RGB'} uint8",
             f"resize to {h}x{w} (HxW), mode {pred.dataset.params.get('resize_mode', 'squash')!r}",
             "to float32 N x C x H x W (values 0..255)"]
    inside = [s for s in (mean and f"subtract the {mean['mode']} mean", crop and f"centre crop {crop}x{crop}")
              if s]
    return {"baked": baked, "channels": "grey" if c == 1 else "RGB", "layout": "NCHW", "range": [0, 255],
            "resize": {"height": h, "width": w, "mode": pred.dataset.params.get("resize_mode", "squash")},
            "mean": mean, "crop": crop, "steps": steps + ([] if baked else inside),
            "inside_the_file": inside if baked else []}


def export_predictor(pred: Predictor, path: "str | Path", format: str = "onnx", preprocess: str = "bake",
                     dynamo: bool = False, check: bool = True) -> Path:
    """Export a Predictor's network (a job's snapshot, or a loaded archive's) and write
    ``<stem>.preprocess.json`` (and ``<stem>.mean.npy`` for a separate image mean) beside it."""
    if preprocess not in PREPROCESS:
        raise ExportError(f"preprocess must be one of {', '.join(PREPROCESS)}, got {preprocess!r}")
    if format not in FORMATS:
        raise ExportError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    path = Path(path)
    c, h, w = pred.shape
    baked = preprocess == "bake"
    net = pred.module.cpu().eval()
    try:
        if baked:
            module = DeployModule(net, pred.mean, pred.crop, (h, w))
            example = 255 * torch.rand((2, c, h, w), generator=torch.Generator().manual_seed(1))
        else:
            module = DeployModule(net)
            example = pred.transform(np.zeros((2, h, w, c) if c > 1 else (2, h, w), np.uint8))
            example = example + 128 * torch.randn(example.shape, generator=torch.Generator().manual_seed(1))
        export_module(module, example, path, format, dynamo=dynamo, check=check)
        with torch.no_grad():
            out_shape = list(module(example[:1]).shape[1:])
    finally:
        pred.module.to(pred.device)
    stem = path.with_suffix("")
    mean_file = None
    if not baked and pred.mean is not None and pred.mean_mode == "image":
        mean_file = stem.name + ".mean.npy"
        np.save(path.with_name(mean_file), pred.mean.numpy().astype(np.float32))
    info: dict[str, Any] = {
        "format": format, "file": path.name, "framework": _framework(pred.job),
        "input": {"name": INPUT, "shape": ["batch", *map(int, example.shape[1:])], "dtype": "float32"},
        "output": {"name": OUTPUT, "shape": ["batch", *out_shape]},
        "preprocess": preprocess_info(pred, baked, mean_file),
        "task": pred.dataset.task, "labels": list(pred.dataset.labels), "model": pred.job.name,
        "snapshot": str(getattr(pred, "snapshot_path", "")), "torch": torch.__version__,
    }
    stem.with_name(stem.name + ".preprocess.json").write_text(json.dumps(info, indent=1))
    return path
