"""One job → run setup: the built network and the sizes a run uses, decided in one place.

Training (``trainer.prepare``), inference (``infer.predict.Predictor``, and through it a downloaded archive's
stand-in job), the ``%%digits_model`` check and the model form's Visualize and graph all need the same
answer to "what network does this job train, on what input": the network built at the input the trainer
feeds (the form's crop, else the network's own ``crop_len``), the classes, the class-map label shape for
the dry run, the batch sizes and the ``ngpus`` the network was told. :func:`setup_network` gives it as a
:class:`RunSetup`; :func:`setup_for_dataset` and :func:`setup_for_job` read the shapes from a dataset job
and the definition and options from a model job.

``ngpus`` follows the training device (``options.device``): the visible CUDA devices, or 0 on the CPU.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from ..errors import NetworkError, TrainingError
from ..nets.network import Network, build_for_input
from ..nets.trainable import StepOutput, TrainableNet
from .options import TrainOptions

__all__ = ["RunSetup", "setup_network", "setup_for_dataset", "setup_for_job", "dataset_shapes", "gpus_for",
           "check_first_batch"]

Shape = tuple[int, int, int]


@dataclass(frozen=True)
class RunSetup:
    """What a run is made of, before any data or device: the built network and the sizes it runs at."""

    network: Network
    image_shape: Shape                        # the dataset's images, (C, H, W)
    input_shape: Shape                        # what the network sees: the images after the crop
    nclasses: int                             # 0 when the labels are not classes
    label_shape: tuple[int, ...] | None       # the dataset's label shape when labels are class maps, else None
    crop: int | None                          # the form's crop, else the network's crop_len, else None
    batch_size: int                           # the form's, else the network's, else 16
    val_batch_size: int                       # the form's, else the network's, else batch_size
    ngpus: int                                # what the network was told (params['ngpus'])
    params: dict[str, Any] = field(default_factory=dict)   # everything the network was given as params
    name: str = "network"
    fine_tune: bool = False                   # trained from pretrained weights: its fine_tune_hook applies

    @property
    def module(self) -> TrainableNet:
        return self.network.module

    def tuned(self) -> "RunSetup":
        """The network as training made it once its pretrained weights were in: after its ``fine_tune_hook``
        (Torch7's ``fineTuneHook``) when the run starts from pretrained weights, else unchanged."""
        if not self.fine_tune or self.network.fine_tune_hook is None:
            return self
        return replace(self, network=self.network.apply_fine_tune_hook())


def gpus_for(device: str) -> int:
    """``ngpus`` for a network trained on ``device`` (an options' device choice): the CUDA devices this
    process sees, 0 on the CPU."""
    return torch.cuda.device_count() if device != "cpu" else 0


def dataset_shapes(dataset: Any) -> tuple[Shape, int, tuple[int, ...] | None]:
    """``((C, H, W), nclasses, label_shape)`` of a dataset job; ``label_shape`` only when its labels are class
    maps (segmentation), so the dry run feeds the loss maps, as training does. The dataset must have an image
    shape (callers say why not in their own words)."""
    h, w, c = (int(v) for v in dataset.feature_shape)
    labels = tuple(dataset.label_shape) if dataset.task == "segmentation" and dataset.label_shape else None
    return (c, h, w), int(dataset.nclasses or 0), labels


_FROM_OPTIONS: Any = object()   # crop not given: the options' crop


def setup_network(definition: Any, image_shape: Shape, nclasses: int = 0, options: TrainOptions | None = None, *,
                  label_shape: tuple[int, ...] | None = None, name: str = "network",
                  params: dict[str, Any] | None = None, crop: Any = _FROM_OPTIONS, follow_crop: bool = True,
                  framework: str | None = None) -> RunSetup:
    """Build ``definition`` as the trainer does for images of ``image_shape`` (C, H, W).

    ``options``: the run's options (default: DIGITS' defaults); they give the crop, the batch sizes, the
    device (hence ``ngpus``) and the network's params, unless ``params`` or ``crop`` are given here.
    ``follow_crop=False`` builds at ``image_shape`` (cropped to ``crop`` when given) even when the network
    asks for a crop of its own. ``label_shape``: the dataset's label shape when labels are class maps.
    Raises NetworkError with the user's traceback when the network does not build."""
    opts = options if options is not None else TrainOptions()
    crop = opts.crop if crop is _FROM_OPTIONS else crop
    ngpus = gpus_for(opts.device)
    given = {"ngpus": ngpus, **(opts.params if params is None else params)}
    c, h, w = (int(v) for v in image_shape)
    nclasses = int(nclasses or 0)
    net, shape = build_for_input(definition, (c, h, w), nclasses, given, name, crop, label_shape=label_shape,
                                 framework=framework, follow_crop=follow_crop)
    batch = opts.batch_size or net.train_batch_size or 16
    return RunSetup(network=net, image_shape=(c, h, w), input_shape=tuple(shape), nclasses=nclasses,
                    label_shape=tuple(label_shape) if label_shape is not None else None,
                    crop=crop or (net.crop_len if follow_crop else None), batch_size=batch,
                    val_batch_size=opts.val_batch_size or net.validation_batch_size or batch,
                    ngpus=int(given["ngpus"]), params=given, name=name, fine_tune=bool(opts.pretrained))


def setup_for_dataset(dataset: Any, definition: Any, options: TrainOptions | None = None, *,
                      name: str = "network", **kwargs: Any) -> RunSetup:
    """:func:`setup_network` on a dataset job's shapes (:func:`dataset_shapes`)."""
    shape, nclasses, labels = dataset_shapes(dataset)
    return setup_network(definition, shape, nclasses, options, label_shape=labels, name=name, **kwargs)


def setup_for_job(job: Any, options: TrainOptions | None = None) -> RunSetup:
    """A model job's network (its object, else its network.py) on its dataset, with its options: the
    network as the job trained it (for inference call :meth:`RunSetup.tuned` before loading a snapshot)."""
    definition = job.network_object if job.network_object is not None else job.network_source()
    return setup_for_dataset(job.dataset, definition, options if options is not None else job.options, name=job.name)


def check_first_batch(network: Network, x: Tensor, y: Tensor | None) -> StepOutput:
    """One batch through the network and the loss before training (``Network.first_batch``, which names the
    shapes when it fails), then what the trainer needs of it: a loss, an output of the labels' shape, finite."""
    with torch.no_grad():
        out = network.first_batch(x, y)
    if out.loss is None and y is None:
        raise NetworkError("The dataset has no labels and the network makes none from its input (no label "
                           "hook): give the dataset labels (a labels DB, or labels_file= for a DIGITS "
                           "classification DB), or train a network whose target is its input")
    if out.loss is None:
        raise NetworkError("The network returned no loss for a labelled batch: define `loss`")
    hooked = getattr(network.module, "label_hook", None) is not None  # the target is made from the input
    if (network.style != "tower" and not hooked and y is not None and y.is_floating_point()
            and out.output.shape != y.shape):
        raise NetworkError(f"The network's output has shape {tuple(out.output.shape)} but the labels have shape "
                           f"{tuple(y.shape)} (input batch {tuple(x.shape)}): change the last layer so they match")
    if not torch.isfinite(out.loss).all():
        raise TrainingError("The loss of the first batch is not finite: check the network and the data")
    return out
