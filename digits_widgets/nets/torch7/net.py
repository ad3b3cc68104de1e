"""A DIGITS Torch7 network (Lua text) as a :class:`~digits_widgets.nets.built.Network`.

DIGITS' contract (``digits/tools/torch/main.lua``): the text returns ``function(params)``; ``params`` holds
``ngpus``, ``inputShape`` (a tensor {channels, height, width}, read 1-based: ``inputShape[1]`` is the channel
count) and, for classification only, ``nclasses``; the function returns ``{model=, loss=, trainBatchSize=,
validationBatchSize=, croplen=, labelHook=, fineTuneHook=, disableAutoDataParallelism=}``. Without ``loss`` a
classification network gets ``nn.ClassNLLCriterion()``, as in DIGITS (the model ends in ``LogSoftMax``).

Labels: DIGITS added 1 to each class label before Torch7 saw it (Lua arrays are 1-based). PyTorch's NLL loss
counts from 0, so here the label goes in as the database stores it: class k of ``labels.txt`` (0-based line)
is output k, exactly the class DIGITS' Torch output k+1 meant. A Lua ``labelHook(input, dblabel)`` receives
the batch and that 0-based label as PyTorch tensors, and returns the target tensor.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ...errors import NetworkError
from ..built import Network, check_input_shape, dry_run, torch7_settings
from ..trainable import TrainableNet
from .lua import LuaSession
from .modules import Criterion
from .namespace import CRITERIA, MODULES, TreeBuilder

__all__ = ['build_torch7_network']

_HOOKS = ('labelHook', 'fineTuneHook')


def _lua_params(shape: tuple[int, int, int], nclasses: int, params: dict[str, Any] | None) -> dict[str, Any]:
    """What DIGITS passed: ngpus, inputShape (the image size, before the network's own ``croplen``) and
    nclasses only for classification (``params.nclasses or 1`` is the usual Lua idiom for that)."""
    out = {'ngpus': torch.cuda.device_count(), **{k: v for k, v in (params or {}).items()
                                                  if k not in ('input_shape', 'nclasses', 'inputShape')}}
    given = (params or {}).get('inputShape')
    out['inputShape'] = tuple(int(v) for v in given) if given is not None else tuple(shape)
    if nclasses > 0:
        out['nclasses'] = nclasses
    return out


def _whole(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _label_hook(session: LuaSession, fn: Any):
    def label_hook(x: Tensor, y: Tensor | None) -> Tensor:
        target = session.call('failed in its labelHook', fn, x, y)
        if not isinstance(target, Tensor):
            raise NetworkError(f"The Torch7 network '{session.name}': labelHook must return a tensor (for "
                               f"example the input), got {session.lua_type(target) or type(target).__name__}")
        return target
    return label_hook


def _fine_tune_hook(session: LuaSession, builder: TreeBuilder, fn: Any, lua_model: Any, model: nn.Module):
    """fineTuneHook(net) runs on the Lua model; layers built before keep the weights loaded into them, and a
    layer whose ``accGradParameters`` the hook replaced with a function is frozen (DIGITS' way)."""
    def fine_tune_hook(inner: nn.Module) -> nn.Module:
        if inner is not model:   # weights loaded into another copy: bring them into the built layers
            model.load_state_dict(inner.state_dict())
        return builder.build(session.call('failed in its fineTuneHook', fn, lua_model))
    return fine_tune_hook


def _settings(session: LuaSession, builder: TreeBuilder, table: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in table.items():
        result[str(key)] = _whole(value)
    if 'model' not in result:
        raise NetworkError(f"The Torch7 network '{session.name}': the table its function returns has no `model` "
                           f"(keys: {', '.join(sorted(result)) or 'none'})")
    lua_model = result['model']
    result['model'] = builder.build(lua_model)
    if 'loss' in result:
        result['loss'] = builder.criterion(result['loss'])
    if 'labelHook' in result:
        if session.lua_type(result['labelHook']) != 'function':
            raise NetworkError(f"The Torch7 network '{session.name}': labelHook must be a function")
        result['labelHook'] = _label_hook(session, result['labelHook'])
    if 'fineTuneHook' in result:
        if session.lua_type(result['fineTuneHook']) != 'function':
            raise NetworkError(f"The Torch7 network '{session.name}': fineTuneHook must be a function")
        result['fineTuneHook'] = _fine_tune_hook(session, builder, result['fineTuneHook'], lua_model,
                                                 result['model'])
    return result


def _located_dry_run(net: Any, builder: TreeBuilder, name: str, shape: tuple[int, int, int], nclasses: int,
                     label_shape: tuple[int, ...] | None) -> None:
    """The build's dry run; a failure names the innermost Lua module that was running, and its line."""
    stack: list[nn.Module] = []

    def enter(mod: nn.Module, args: Any) -> None:
        stack.append(mod)

    def leave(mod: nn.Module, args: Any, out: Any) -> None:
        stack.pop()

    handles = []
    for m in net.inner.modules():
        if id(m) in builder.where:
            handles.append(m.register_forward_pre_hook(enter))
            handles.append(m.register_forward_hook(leave))
    try:
        dry_run(net, shape, nclasses, label_shape)
    except NetworkError:
        raise
    except Exception as exc:  # noqa: BLE001 - a layer that does not fit the input: say which
        where = (f"{builder.where[id(stack[-1])]} failed" if stack
                 else f"its loss ({getattr(net.loss_fn, 'kind', type(net.loss_fn).__name__)}) failed")
        raise NetworkError(f"The Torch7 network '{name}' does not build for input {tuple(shape)}: {where}: "
                           f"{exc}") from None
    finally:
        for h in handles:
            h.remove()


def build_torch7_network(text: str, input_shape: tuple[int, int, int], nclasses: int = 0,
                         params: dict[str, Any] | None = None, name: str = 'network',
                         label_shape: tuple[int, ...] | None = None) -> Network:
    """A :class:`~digits_widgets.nets.built.Network` (style ``'torch7'``) from DIGITS Torch7 Lua ``text``
    for inputs of ``input_shape`` ``(C, H, W)``. Raises NetworkError: lupa missing (naming the extra to
    install), a Lua error (with its traceback and line), an unknown module, or a layer that does not fit."""
    shape = check_input_shape(input_shape)
    nclasses = int(nclasses)
    session = LuaSession(list(MODULES), list(CRITERIA), name)
    builder = TreeBuilder(session)
    table = session.run(text, _lua_params(shape, nclasses, params))
    settings = torch7_settings(_settings(session, builder, table))
    loss = settings.pop('loss', None)
    if loss is None and nclasses > 0:
        loss = Criterion('ClassNLLCriterion')
    module = TrainableNet(settings.pop('model'), 'torch7', loss, settings.pop('label_hook', None), nclasses)
    module.train()
    crop = settings.get('crop_len')
    if crop and crop <= min(shape[1:]):   # the network runs on its own crop (build_for_input rebuilds there)
        label_shape = (crop, crop) if label_shape is not None else None
        shape = (shape[0], crop, crop)
    _located_dry_run(module, builder, name, shape, nclasses, label_shape)
    return Network(module=module, style='torch7', source=text, **settings)
