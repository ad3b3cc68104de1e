"""Caffe prototxt networks on PyTorch: ``build_caffe_network(text, input_shape, nclasses, name)``."""
from .net import CaffeModule, CaffeNet, build_caffe_network, parse_net

__all__ = ['build_caffe_network', 'CaffeNet', 'CaffeModule', 'parse_net']
