"""DIGITS' Torch7 (Lua) networks, run with lupa against ``nn``/``cudnn``/``inn`` namespaces that build
PyTorch modules. lupa is an optional extra (``pip install digits_widgets[torch7]``); it is imported only
when a Lua network is built. ``standard/`` holds DIGITS' standard Torch networks (LeNet, AlexNet, GoogLeNet).
"""
from __future__ import annotations

from importlib import resources

from .detect import FRAMEWORKS, framework_of, is_torch7_lua

__all__ = ['FRAMEWORKS', 'framework_of', 'is_torch7_lua', 'build_torch7_network', 'standard_network',
           'STANDARD_NETWORKS']

STANDARD_NETWORKS = ('lenet', 'alexnet', 'googlenet')


def standard_network(name: str) -> str:
    """The Lua text of one of DIGITS' standard Torch networks: 'lenet', 'alexnet' or 'googlenet'."""
    if name not in STANDARD_NETWORKS:
        raise ValueError(f"unknown standard Torch7 network {name!r}; choose one of {', '.join(STANDARD_NETWORKS)}")
    return resources.files(__package__).joinpath('standard', f'{name}.lua').read_text(encoding='utf-8')


def build_torch7_network(*args, **kwargs):
    """See :func:`digits_widgets.nets.torch7.net.build_torch7_network` (imported on first use)."""
    from .net import build_torch7_network as build

    return build(*args, **kwargs)
