"""``Tower`` and ``model_property``: DIGITS' TensorFlow model interface, ported to PyTorch modules.

A DIGITS network was ``class UserModel(Tower)`` with ``inference`` and ``loss`` as cached properties that read
``self.x`` / ``self.y``. Here a Tower is an ``nn.Module``: the wrapper sets the batch, reads ``inference`` (and
``loss``), and the cache is cleared at every batch, so a property is computed once per forward pass however
often other properties read it. Differences from DIGITS: tensors are **NCHW** and ``input_shape`` is
``(C, H, W)``; layers are modules, built in ``__init__`` or created on first use with :meth:`Tower.layer`.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import torch
from torch import Tensor, nn

__all__ = ['Tower', 'model_property', 'LabelsUnavailable']

_CACHE = '_model_property_cache'
_FAILED = '_model_property_failed'


class LabelsUnavailable(Exception):
    """Raised when a loss reads ``self.y`` on a batch without labels; the wrapper then reports no loss.

    Not an ``AttributeError`` on purpose: Python would swallow that and call ``__getattr__`` instead.
    """


def model_property(fn: Callable[[Any], Any]) -> property:
    """A property computed once per forward pass and cached until the next batch (DIGITS' ``model_property``).

    An ``AttributeError`` raised inside the property (a typo such as ``self.conv9``) would make Python fall
    back to ``nn.Module.__getattr__`` and report that the *property* does not exist; the error is remembered
    so :meth:`Tower.__getattr__` re-raises the real one, with the user's line in its traceback.
    """
    name = fn.__name__

    @functools.wraps(fn)
    def getter(self: Any) -> Any:
        cache = self.__dict__.get(_CACHE)
        if cache is None:
            cache = self.__dict__[_CACHE] = {}
        if name in cache:
            return cache[name]
        try:
            value = fn(self)
        except AttributeError as exc:
            self.__dict__[_FAILED] = (name, exc)
            raise
        cache[name] = value
        return value

    return property(getter)


class Tower(nn.Module):
    """Base class of DIGITS-style networks: subclass it as ``UserModel`` and define ``inference`` and ``loss``.

    Attributes a subclass reads: ``x`` (the NCHW float batch, mean-subtracted / cropped / augmented), ``y``
    (labels: LongTensor [N] for classification, float images or vectors otherwise, ``None`` at inference),
    ``input_shape`` ``(C, H, W)``, ``nclasses`` (0 when the dataset is not a classification one),
    ``is_training`` (the module is in training mode), ``is_inference`` (the batch has no labels), ``params``
    (extra user parameters) and ``summaries``, a list reset at every batch to which ``inference`` or ``loss``
    may append ``('name', scalar_tensor)`` pairs (or dicts of them); each becomes a chart.
    """

    def __init__(self, input_shape: tuple[int, int, int], nclasses: int, is_training: bool = True,
                 is_inference: bool = False, params: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.input_shape = tuple(int(v) for v in input_shape)
        self.nclasses = int(nclasses)
        self.is_training = bool(is_training)
        self.is_inference = bool(is_inference)
        self.params = dict(params or {})
        self.x: Tensor | None = None
        self._y: Tensor | None = None
        self.summaries: list[Any] = []

    @property
    def y(self) -> Tensor | None:
        """The labels of the batch; reading them inside ``loss`` on an unlabelled batch means "no loss"."""
        if self._y is None and self.__dict__.get('_guard_labels', False):
            raise LabelsUnavailable()
        return self._y

    @y.setter
    def y(self, value: Tensor | None) -> None:
        self._y = value

    def __getattr__(self, name: str) -> Any:
        failed = self.__dict__.get(_FAILED)
        if failed is not None and failed[0] == name:
            del self.__dict__[_FAILED]
            raise failed[1]
        return super().__getattr__(name)

    def begin_batch(self, x: Tensor, y: Tensor | None = None) -> None:
        """Set the batch and the flags, and forget the previous batch's cached properties and summaries."""
        self.x = x
        self._y = y
        self.is_training = self.training
        self.is_inference = y is None
        self.summaries = []
        self.__dict__[_CACHE] = {}
        self.__dict__.pop(_FAILED, None)

    def end_batch(self) -> None:
        """Drop the cached tensors so the batch's autograd graph is not kept alive until the next batch."""
        self.__dict__[_CACHE] = {}

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Run ``inference`` on a batch; calling the module keeps forward hooks (probes) working."""
        self.begin_batch(x, y)
        return self.inference

    def compute_loss(self) -> Any:
        """``self.loss`` for the current batch, or ``None`` when it reads ``self.y`` and the batch has none."""
        self.__dict__['_guard_labels'] = self._y is None
        try:
            return self.loss
        except LabelsUnavailable:
            return None
        finally:
            self.__dict__['_guard_labels'] = False

    def layer(self, name: str, factory: Callable[[], nn.Module]) -> nn.Module:
        """Create-once helper for DIGITS-style code that builds layers inside ``inference``.

        Returns the submodule ``name``, creating it with ``factory()`` the first time (on the device of
        ``self.x``). Build happens on a first batch before the optimizer exists, so the parameters are known
        to the optimizer and to DistributedDataParallel; layers created only later would not be trained.
        """
        existing = self._modules.get(name)
        if existing is not None:
            return existing
        module = factory()
        if not isinstance(module, nn.Module):
            raise TypeError(f"layer({name!r}, factory): factory must return an nn.Module, got "
                            f"{type(module).__name__}")
        if isinstance(self.x, torch.Tensor):
            module = module.to(self.x.device)
        self.add_module(name, module)
        return module
