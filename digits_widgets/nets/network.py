"""Building a trainable network from whatever the user wrote: cell text, a Tower subclass, a Torch7-style
function, a module, or a (module, loss) pair.

Every way ends in a :class:`Network` whose ``module`` is a :class:`TrainableNet`. Building also runs one small
batch of zeros in eval mode, so shape errors surface at once (DIGITS' "Visualize") and layers that a Tower
creates lazily exist before the optimizer does. Any failure of user code becomes a
:class:`~digits_widgets.errors.NetworkError` carrying the user's traceback.

This is the dispatcher: prototxt goes to ``caffe/``, Lua to ``torch7/`` (each imported only when needed, so
protobuf and lupa load only then), the rest is built here. The record and the checks every builder shares
(``Network``, the input-shape check, the dry run) are in ``built.py``, below all of them.
"""
from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from ..errors import NetworkError
from .built import Network, callable_or_none, check_input_shape, dry_run, torch7_settings
from .source import exec_network_source, network_error
from .tower import Tower
from .trainable import StepOutput, TrainableNet

__all__ = ['Network', 'build_network', 'build_for_input', 'exec_network_source', 'TrainableNet', 'StepOutput']

MISSING_USER_MODEL = "The user model class 'UserModel' is not defined."
OTHER_FORMS = ("Define `class UserModel(Tower)` with `inference` and `loss` model properties, or one of the two "
               "other accepted forms: a Torch7-style function `network(params)` returning a dict with at least "
               "'model' (an nn.Module), or a plain PyTorch variable `model` (an nn.Module) with an optional "
               "`loss(output, target)`.")


def _pick_from_namespace(ns: dict[str, Any]) -> tuple[str, Any]:
    """Which style the cell defines: UserModel(Tower), then ``network``, then ``model``."""
    user_model = ns.get('UserModel')
    if inspect.isclass(user_model) and issubclass(user_model, Tower):
        return 'tower', user_model
    if callable(ns.get('network')):
        return 'torch7', ns['network']
    if isinstance(ns.get('model'), nn.Module):
        loss = callable_or_none(ns.get('loss'), 'loss')
        return 'module', (ns['model'], loss)
    if 'UserModel' in ns:
        what = ("is not a class" if not inspect.isclass(user_model)
                else "does not inherit from Tower")
        raise NetworkError(f"The user model class 'UserModel' {what}. {OTHER_FORMS}")
    if 'model' in ns:
        raise NetworkError(f"`model` must be an nn.Module, got {type(ns['model']).__name__}. {OTHER_FORMS}")
    if callable(ns.get('build_model')):
        raise NetworkError(f"{MISSING_USER_MODEL} `build_model(params)` is DIGITS' TensorFlow form (it built a "
                           "TensorFlow graph); here write its layers as PyTorch modules: rename it "
                           "`network(params)` and return {'model': <an nn.Module>, 'loss': <loss function>}, or "
                           "port it to `class UserModel(Tower)` (see notebook 05, "
                           f"notebooks/05_networks_in_code.ipynb). {OTHER_FORMS}")
    raise NetworkError(f"{MISSING_USER_MODEL} {OTHER_FORMS}")


def _classify_definition(definition: Any) -> tuple[str, Any]:
    if inspect.isclass(definition) and issubclass(definition, Tower):
        return 'tower', definition
    if isinstance(definition, nn.Module):
        return 'module', (definition, None)
    if (isinstance(definition, tuple) and len(definition) == 2 and isinstance(definition[0], nn.Module)
            and (definition[1] is None or callable(definition[1]))):
        return 'module', definition
    if callable(definition) and not inspect.isclass(definition):
        return 'torch7', definition
    raise NetworkError("A network definition is source text, a Tower subclass, a function returning a "
                       "Torch7-style dict, an nn.Module or an (nn.Module, loss) pair; got "
                       f"{type(definition).__name__}")


def _check_tower_class(cls: type) -> None:
    missing = [p for p in ('inference', 'loss') if not isinstance(inspect.getattr_static(cls, p, None), property)]
    if missing:
        raise NetworkError(f"The user model class '{cls.__name__}' must define {' and '.join(missing)} "
                           "as @model_property (DIGITS: 'The properties inference and loss must be defined').")


def build_network(definition: Any, input_shape: tuple[int, int, int], nclasses: int = 0,
                  params: dict[str, Any] | None = None, name: str = 'network',
                  label_shape: tuple[int, ...] | None = None, framework: str | None = None) -> Network:
    """Build a :class:`Network` from source text, a Tower subclass, a Torch7-style function, a module or a
    (module, loss) pair.

    Source text is Python, a Caffe prototxt or DIGITS Torch7 Lua: ``framework`` (``'pytorch'``, ``'caffe'``
    or ``'torch'``) says which, else it is recognised (:func:`~digits_widgets.nets.torch7.framework_of`).
    Lua runs with lupa (the ``[torch7]`` extra); its ``params.inputShape`` is ``params['inputShape']`` when
    given (the image size before the network's own ``croplen``, as DIGITS passed it), else ``input_shape``.

    ``input_shape`` is ``(C, H, W)`` after cropping; ``nclasses`` is 0 for non-classification datasets.
    Torch7-style functions get ``params`` plus ``ngpus`` (default: visible CUDA devices), ``nclasses``,
    ``input_shape`` and its Lua alias ``inputShape``; a Tower gets them as ``self.params``; source text also
    sees ``input_shape``, ``nclasses`` and ``params`` as globals. ``label_shape`` is one sample's label for
    the dry run: ``None`` (class indices, or no labels when ``nclasses`` is 0) or ``(H, W)`` (a class map,
    segmentation). Raises NetworkError when it does not build.
    """
    shape = check_input_shape(input_shape)
    nclasses = int(nclasses)
    full_params = {'ngpus': torch.cuda.device_count(), **(params or {}),
                   'nclasses': nclasses, 'input_shape': shape, 'inputShape': shape}
    source = None
    if isinstance(definition, str):
        framework = _text_framework(definition, framework)
    if isinstance(definition, str) and framework == 'caffe':
        from .caffe import build_caffe_network  # protobuf is imported only for Caffe networks
        return build_caffe_network(definition, shape, nclasses, name, label_shape)
    if isinstance(definition, str) and framework == 'torch':
        from .torch7.net import build_torch7_network  # lupa is imported only for Lua networks
        return build_torch7_network(definition, shape, nclasses, params, name, label_shape)
    if isinstance(definition, str):
        source = definition
        ns = exec_network_source(source, name, {'input_shape': shape, 'nclasses': nclasses,
                                                'params': dict(full_params)})
        style, found = _pick_from_namespace(ns)
    else:
        style, found = _classify_definition(definition)
    settings: dict[str, Any] = {}
    try:
        if style == 'tower':
            _check_tower_class(found)
            inner = found(shape, nclasses, is_training=True, is_inference=False, params=dict(full_params))
            module = TrainableNet(inner, 'tower', nclasses=nclasses)
        elif style == 'torch7':
            settings = torch7_settings(found(dict(full_params)))
            module = TrainableNet(settings.pop('model'), 'torch7', settings.pop('loss', None),
                                  settings.pop('label_hook', None), nclasses)
        else:
            model, loss = found
            module = TrainableNet(model, 'module', loss, None, nclasses)
        module.train()
        dry_run(module, shape, nclasses, label_shape)
    except NetworkError:
        raise
    except Exception as exc:  # noqa: BLE001 - user code: report it with its traceback
        raise network_error(f"The network '{name}' does not build", exc) from None
    return Network(module=module, style=style, source=source, **settings)


def _text_framework(text: str, framework: str | None) -> str:
    """The framework of network text: the one named (checked), else the one recognised."""
    from .torch7.detect import FRAMEWORKS, framework_of

    if framework is None:
        return framework_of(text)
    if framework not in FRAMEWORKS:
        raise NetworkError(f"framework must be one of {', '.join(FRAMEWORKS)}, got {framework!r}")
    return framework


def build_for_input(definition: Any, image_shape: tuple[int, int, int], nclasses: int = 0,
                    params: dict | None = None, name: str = 'network',
                    crop: int | None = None,
                    label_shape: tuple[int, ...] | None = None,
                    framework: str | None = None,
                    follow_crop: bool = True) -> tuple[Network, tuple[int, int, int]]:
    """Build for what the trainer feeds: the images cropped to ``crop`` when given, else to the crop the
    network itself asks for (``crop_len``; not with ``follow_crop=False``), else at full size. Returns the
    network and that input shape.

    ``label_shape`` is the dataset's label shape when its labels are class maps (segmentation: ``(H, W)`` or
    ``(H, W, 1)``); the dry run then feeds class maps cropped as the images are. ``None``: class indices."""
    c, h, w = (int(v) for v in image_shape)
    shape = (c, crop, crop) if crop else (c, h, w)
    net = build_network(definition, shape, nclasses, params, name=name, label_shape=_map_shape(label_shape, shape),
                        framework=framework)
    if follow_crop and not crop and net.crop_len and (net.crop_len, net.crop_len) != (h, w):
        first = shape   # DIGITS gave a Lua network the image size; its own croplen applied afterwards
        shape = (c, net.crop_len, net.crop_len)
        net = build_network(definition, shape, nclasses, {**(params or {}), 'inputShape': first}, name=name,
                            label_shape=_map_shape(label_shape, shape), framework=framework)
    return net, shape


def _map_shape(label_shape: tuple[int, ...] | None, input_shape: tuple[int, int, int]) -> tuple[int, int] | None:
    """A class map's (H, W) at the input's (cropped) size; ``None`` when the labels are not maps."""
    return tuple(input_shape[1:]) if label_shape is not None and len(tuple(label_shape)) >= 2 else None

