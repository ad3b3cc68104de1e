"""The standard networks: DIGITS' LeNet, AlexNet and GoogLeNet plus the tutorials' networks.

Each network is source text (``standard/<name>.py``), exactly what a user would write in a ``%%digits_model``
cell, so "Customize" copies it and a job stores it as ``network.py``. ``settings`` are the tutorials'
suggestions (keys: ``epochs``, ``batch_size``, ``solver`` and ``lr`` as in ``train.solver``, ``lr_policy``
and its ``gamma``, ``mean`` = ``'none' | 'image' | 'pixel'``); a form fills its fields with them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import NetworkError, OptionError

__all__ = ['StandardNetwork', 'STANDARD', 'KINDS', 'names', 'source', 'frameworks']

KINDS = ('classification', 'regression', 'processing', 'autoencoder')
_DIR = Path(__file__).resolve().parent / 'standard'


@dataclass(frozen=True)
class StandardNetwork:
    """What a form needs to offer a standard network: its title, the dataset kind it fits, its style, the
    input it was designed for ``(C, H, W)`` and suggested training settings."""

    name: str
    title: str
    kind: str
    style: str
    input_shape: tuple[int, int, int]
    description: str
    settings: dict[str, Any] = field(default_factory=dict)


STANDARD: dict[str, StandardNetwork] = {n.name: n for n in (
    StandardNetwork('lenet', 'LeNet', 'classification', 'tower', (1, 28, 28),
                    'LeNet-5 for 28x28 gray digits (MNIST), as in DIGITS\' TensorFlow guide.',
                    {'epochs': 30, 'batch_size': 64, 'solver': 'sgd', 'lr': 0.01, 'mean': 'image'}),
    StandardNetwork('alexnet', 'AlexNet', 'classification', 'module', (3, 256, 256),
                    'AlexNet for 256x256 colour images; adapts to other sizes from 64x64.',
                    {'epochs': 30, 'batch_size': 128, 'solver': 'sgd', 'lr': 0.01, 'mean': 'image'}),
    StandardNetwork('googlenet', 'GoogLeNet', 'classification', 'module', (3, 256, 256),
                    'GoogLeNet v1 (inception) for 256x256 colour images, without the auxiliary heads.',
                    {'epochs': 30, 'batch_size': 32, 'solver': 'sgd', 'lr': 0.01, 'mean': 'image'}),
    StandardNetwork('gradients_regression', 'Gradients regression', 'regression', 'tower', (1, 50, 50),
                    'One linear layer predicting the (x, y) gradient of an image (regression tutorial).',
                    {'epochs': 15, 'solver': 'sgd', 'lr': 0.01, 'mean': 'image'}),
    StandardNetwork('segmentation_fcn', 'Binary segmentation FCN', 'processing', 'tower', (1, 32, 32),
                    'Fully convolutional network segmenting triangles, L2 loss (binary segmentation tutorial).',
                    {'epochs': 5, 'batch_size': 16, 'solver': 'adam', 'lr': 0.001, 'lr_policy': 'fixed',
                     'mean': 'pixel'}),
    StandardNetwork('autoencoder', 'Autoencoder', 'autoencoder', 'torch7', (1, 28, 28),
                    'MNIST autoencoder 784-300-50-300-784, label = input (autoencoder tutorial).',
                    # DIGITS' SGD 0.01 beats Adam 1e-3 here: validation MSE 295 vs 777 after 30 epochs of
                    # scikit-learn's digits (notebook 04).
                    {'epochs': 30, 'batch_size': 64, 'solver': 'sgd', 'lr': 0.01, 'mean': 'image'}),
    StandardNetwork('srcnn', 'SRCNN image reconstruction', 'processing', 'module', (3, 33, 33),
                    'Super-resolution CNN restoring images, L1 loss (image reconstruction tutorial).',
                    # The tutorial's gamma reads 0.098; over DIGITS' percent scale 0.98 is the one that decays
                    # to about 0.13x by the end instead of 0.1x after 1% of training.
                    {'batch_size': 4, 'solver': 'adam', 'lr': 0.001, 'lr_policy': 'exp', 'gamma': 0.98,
                     'mean': 'none'}),
)}


def names(kind: str | None = None) -> list[str]:
    """Names of the standard networks, all or those for one dataset kind, in presentation order."""
    if kind is not None and kind not in KINDS:
        raise OptionError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}", field='kind')
    return [n for n, net in STANDARD.items() if kind is None or net.kind == kind]


def frameworks(name: str) -> tuple[str, ...]:
    """The languages a standard network is written in: always ``'pytorch'``; DIGITS' LeNet, AlexNet and
    GoogLeNet also as DIGITS shipped them for Caffe (prototxt) and Torch (Lua), as its form offered them."""
    from .caffe import STANDARD_NETWORKS as CAFFE
    from .torch7 import STANDARD_NETWORKS as TORCH

    return ('pytorch',) + (('caffe',) if name in CAFFE else ()) + (('torch',) if name in TORCH else ())


def source(name: str, framework: str = 'pytorch') -> str:
    """The network text of a standard network in one of its :func:`frameworks`, ready for ``build_network``
    or a cell."""
    if name not in STANDARD:
        raise NetworkError(f"There is no standard network {name!r}; choose one of {', '.join(STANDARD)}")
    if framework not in frameworks(name):
        raise NetworkError(f"The standard network {name!r} is written in {', '.join(frameworks(name))}, "
                           f"not {framework!r}")
    if framework == 'caffe':
        from .caffe import standard_network
        return standard_network(name)
    if framework == 'torch':
        from .torch7 import standard_network
        return standard_network(name)
    return (_DIR / f'{name}.py').read_text(encoding='utf-8')
