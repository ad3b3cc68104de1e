"""Caffe prototxt networks on PyTorch: ``build_caffe_network(text, input_shape, nclasses, name)``.
``standard/`` holds DIGITS' standard Caffe networks (LeNet, AlexNet, GoogLeNet) as DIGITS ships them."""
from importlib import resources

from .net import CaffeModule, CaffeNet, build_caffe_network
from .prototxt import parse_net

__all__ = ['build_caffe_network', 'CaffeNet', 'CaffeModule', 'parse_net', 'standard_network',
           'STANDARD_NETWORKS', 'STANDARD_INPUT_SHAPES']

STANDARD_NETWORKS = ('lenet', 'alexnet', 'googlenet')
# (C, H, W) each network takes: LeNet's 28x28 grey digits, AlexNet's 227 and GoogLeNet's 224 crops of 256x256
STANDARD_INPUT_SHAPES = {'lenet': (1, 28, 28), 'alexnet': (3, 227, 227), 'googlenet': (3, 224, 224)}


def standard_network(name: str) -> str:
    """The prototxt of one of DIGITS' standard Caffe networks: 'lenet', 'alexnet' or 'googlenet'."""
    key = name.lower()
    if key not in STANDARD_NETWORKS:
        raise ValueError(f"unknown standard Caffe network {name!r}; choose one of {', '.join(STANDARD_NETWORKS)}")
    return resources.files(__package__).joinpath('standard', f'{key}.prototxt').read_text(encoding='utf-8')
