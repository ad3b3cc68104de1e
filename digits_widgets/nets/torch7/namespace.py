"""Turning the prelude's Lua module tree into PyTorch modules, with Torch7's argument orders and defaults.

Torch7 gives kernel, stride and padding as width before height (``SpatialConvolution(nIn, nOut, kW, kH, dW,
dH, padW, padH)``); PyTorch wants (height, width). ``cudnn.X``, ``cunn.X`` and ``inn.X`` build what ``nn.X``
builds: here the device is the trainer's choice, not the module's. A Lua module built once is reused (its
weights kept) when the tree is built again, as after a ``fineTuneHook``.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from ...errors import NetworkError
from . import modules as M

__all__ = ['MODULES', 'CRITERIA', 'TreeBuilder']

Args = list
_Builder = Callable[['TreeBuilder', Any, Args], nn.Module]


def _arg(args: Args, i: int, default: Any = None) -> Any:
    return args[i] if i < len(args) and args[i] is not None else default


def _need(args: Args, count: int, names: str) -> None:
    if len(args) < count or any(a is None for a in args[:count]):
        raise ValueError(f"needs {names} (got {len(args)} argument{'s' if len(args) != 1 else ''})")


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise ValueError(f"{what} must be a whole number, got {value!r}")
    return int(value)


def _conv(b: 'TreeBuilder', obj: Any, a: Args) -> nn.Module:
    _need(a, 4, 'nInputPlane, nOutputPlane, kW, kH')
    n_in, n_out, kw, kh = (_int(v, n) for v, n in zip(a[:4], ('nInputPlane', 'nOutputPlane', 'kW', 'kH')))
    dw, dh = _int(_arg(a, 4, 1), 'dW'), _int(_arg(a, 5, 1), 'dH')
    pw = _int(_arg(a, 6, 0), 'padW')
    ph = _int(_arg(a, 7, pw), 'padH')
    groups = _int(_arg(a, 8, 1), 'groups')
    return nn.Conv2d(n_in, n_out, (kh, kw), (dh, dw), (ph, pw), groups=groups)


def _full_conv(b: 'TreeBuilder', obj: Any, a: Args) -> nn.Module:
    _need(a, 4, 'nInputPlane, nOutputPlane, kW, kH')
    n_in, n_out, kw, kh = (_int(v, 'size') for v in a[:4])
    dw, dh = _int(_arg(a, 4, 1), 'dW'), _int(_arg(a, 5, 1), 'dH')
    pw, ph = _int(_arg(a, 6, 0), 'padW'), _int(_arg(a, 7, 0), 'padH')
    aw, ah = _int(_arg(a, 8, 0), 'adjW'), _int(_arg(a, 9, 0), 'adjH')
    return nn.ConvTranspose2d(n_in, n_out, (kh, kw), (dh, dw), (ph, pw), output_padding=(ah, aw))


def _pool(kind: str) -> _Builder:
    def build(b: 'TreeBuilder', obj: Any, a: Args) -> nn.Module:
        _need(a, 2, 'kW, kH')
        kw, kh = _int(a[0], 'kW'), _int(a[1], 'kH')
        # nn.SpatialMaxPooling strides default to the kernel, nn.SpatialAveragePooling's to 1
        dw = _int(_arg(a, 2, kw if kind == 'max' else 1), 'dW')
        dh = _int(_arg(a, 3, kh if kind == 'max' else 1), 'dH')
        pw, ph = _int(_arg(a, 4, 0), 'padW'), _int(_arg(a, 5, 0), 'padH')
        ceil = bool(obj['ceil_mode'])
        if kind == 'max':
            return nn.MaxPool2d((kh, kw), (dh, dw), (ph, pw), ceil_mode=ceil)
        return nn.AvgPool2d((kh, kw), (dh, dw), (ph, pw), ceil_mode=ceil, count_include_pad=True)
    return build


def _linear(b: 'TreeBuilder', obj: Any, a: Args) -> nn.Module:
    _need(a, 2, 'inputSize, outputSize')
    return nn.Linear(_int(a[0], 'inputSize'), _int(a[1], 'outputSize'), bias=_arg(a, 2, True) is not False)


def _sizes(b: 'TreeBuilder', a: Args) -> list[int]:
    if len(a) == 1 and b.session.lua_type(a[0]) == 'table':   # nn.View(torch.LongStorage{...})
        a = _array(a[0])
    if not a:
        raise ValueError('needs the sizes of the view')
    return [_int(v, 'size') for v in a]


def _view(b: 'TreeBuilder', obj: Any, a: Args) -> nn.Module:
    n = obj['numInputDims']
    return M.View(_sizes(b, a), None if n is None else _int(n, 'numInputDims'))


def _reshape(b: 'TreeBuilder', obj: Any, a: Args) -> nn.Module:
    batch_mode = a[-1] if a and isinstance(a[-1], bool) else None
    return M.Reshape(_sizes(b, a[:-1] if batch_mode is not None else a), batch_mode)


def _batchnorm(cls: type) -> _Builder:
    def build(b: 'TreeBuilder', obj: Any, a: Args) -> nn.Module:
        _need(a, 1, 'nOutput')
        return cls(_int(a[0], 'nOutput'), eps=float(_arg(a, 1, 1e-5)), momentum=float(_arg(a, 2, 0.1)),
                   affine=_arg(a, 3, True) is not False)
    return build


def _zero_padding(b: 'TreeBuilder', obj: Any, a: Args) -> nn.Module:
    _need(a, 1, 'padLeft')
    left = _int(a[0], 'padLeft')
    right, top, bottom = (_int(_arg(a, i, left), n) for i, n in ((1, 'padRight'), (2, 'padTop'),
                                                                  (3, 'padBottom')))
    return nn.ZeroPad2d((left, right, top, bottom))


def _array(table: Any) -> list[Any]:
    """A Lua sequence's values in order (``t[1] .. t[#t]``)."""
    return [table[i] for i in range(1, len(table) + 1)]


def _children(b: 'TreeBuilder', obj: Any) -> list[nn.Module]:
    return [b.build(m) for m in _array(obj['modules'])]


def _dim_container(cls: type) -> _Builder:
    def build(b: 'TreeBuilder', obj: Any, a: Args) -> nn.Module:
        _need(a, 1, 'dimension')
        return cls(_int(a[0], 'dimension'), _children(b, obj))
    return build


def _parallel(b: 'TreeBuilder', obj: Any, a: Args) -> nn.Module:
    _need(a, 2, 'inputDimension, outputDimension')
    return M.Parallel(_int(a[0], 'inputDimension'), _int(a[1], 'outputDimension'), _children(b, obj))


def _data_parallel(b: 'TreeBuilder', obj: Any, a: Args) -> nn.Module:
    """Several GPUs are the trainer's (DistributedDataParallel): the table runs its module as it is."""
    children = _children(b, obj)
    if len(children) != 1:
        raise ValueError(f"holds {len(children)} modules; add exactly one (:add(module, gpus))")
    return children[0]


MODULES: dict[str, _Builder] = {
    'Sequential': lambda b, obj, a: nn.Sequential(*_children(b, obj)),
    'Concat': _dim_container(M.Concat),
    'DepthConcat': _dim_container(M.DepthConcat),
    'ConcatTable': lambda b, obj, a: M.ConcatTable(_children(b, obj)),
    'Parallel': _parallel,
    'DataParallelTable': _data_parallel,
    'CAddTable': lambda b, obj, a: M.CAddTable(),
    'JoinTable': lambda b, obj, a: M.JoinTable(_int(a[0], 'dimension'), _arg(a, 1)),
    'SpatialConvolution': _conv,
    'SpatialConvolutionMM': _conv,
    'SpatialFullConvolution': _full_conv,
    'SpatialMaxPooling': _pool('max'),
    'SpatialAveragePooling': _pool('avg'),
    'SpatialZeroPadding': _zero_padding,
    'SpatialBatchNormalization': _batchnorm(nn.BatchNorm2d),
    'BatchNormalization': _batchnorm(nn.BatchNorm1d),
    'Linear': _linear,
    'View': _view,
    'Reshape': _reshape,
    'ReLU': lambda b, obj, a: nn.ReLU(),   # Torch7's in-place flag changes memory, not results
    'Tanh': lambda b, obj, a: nn.Tanh(),
    'Sigmoid': lambda b, obj, a: nn.Sigmoid(),
    'Threshold': lambda b, obj, a: nn.Threshold(float(_arg(a, 0, 1e-6)), float(_arg(a, 1, 0.0))),
    'PReLU': lambda b, obj, a: nn.PReLU(max(_int(_arg(a, 0, 0), 'nOutputPlane'), 1), init=0.25),
    'LeakyReLU': lambda b, obj, a: nn.LeakyReLU(float(_arg(a, 0, 1 / 100))),
    'Dropout': lambda b, obj, a: nn.Dropout(float(_arg(a, 0, 0.5))),
    'SpatialDropout': lambda b, obj, a: nn.Dropout2d(float(_arg(a, 0, 0.5))),
    'MulConstant': lambda b, obj, a: (_need(a, 1, 'constant_scalar'), M.MulConstant(a[0]))[1],
    'AddConstant': lambda b, obj, a: (_need(a, 1, 'constant_scalar'), M.AddConstant(a[0]))[1],
    'LogSoftMax': lambda b, obj, a: M.Softmax(log=True),
    'SoftMax': lambda b, obj, a: M.Softmax(log=False),
    'Identity': lambda b, obj, a: nn.Identity(),
}
CONTAINERS = {'Sequential', 'Concat', 'DepthConcat', 'ConcatTable', 'Parallel', 'DataParallelTable'}
CRITERIA = ('ClassNLLCriterion', 'CrossEntropyCriterion', 'MSECriterion', 'AbsCriterion', 'SmoothL1Criterion',
            'BCECriterion')


class TreeBuilder:
    """Builds PyTorch modules from Lua module objects; remembers each built module by the object's id, and
    where (line) each came from, for error messages."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.built: dict[int, nn.Module] = {}
        self.where: dict[int, str] = {}   # id(torch module) -> "nn.Linear (line 12)"

    def describe(self, obj: Any) -> str:
        return f"{obj['__ns']}.{obj['__type']} (line {obj['__line']})"

    def _args(self, obj: Any) -> Args:
        table = obj['__args']
        return [table[i] for i in range(1, int(table['n']) + 1)]

    def build(self, obj: Any) -> nn.Module:
        """The PyTorch module for a Lua module object; a NetworkError naming the module and its line."""
        if not self.session.is_object(obj):
            raise NetworkError(f"The Torch7 network '{self.session.name}': expected an nn module, got "
                               f"{self.session.lua_type(obj) or type(obj).__name__}")
        kind, key = obj['__type'], int(obj['__id'])
        if obj['__role'] != 'module':
            raise NetworkError(f"The Torch7 network '{self.session.name}': {self.describe(obj)} is a criterion, "
                               "not a module: return it as `loss`")
        if key in self.built and kind not in CONTAINERS:
            module = self.built[key]
        else:
            try:
                module = MODULES[kind](self, obj, self._args(obj))
            except NetworkError:
                raise
            except (ValueError, TypeError, IndexError) as exc:
                raise NetworkError(f"The Torch7 network '{self.session.name}': {self.describe(obj)} {exc}") from None
        if self.session.lua_type(obj['accGradParameters']) == 'function':   # Torch7's way to freeze a layer
            for p in module.parameters():
                p.requires_grad_(False)
        self.built[key] = module
        self.where.setdefault(id(module), self.describe(obj))
        return module

    def criterion(self, obj: Any) -> M.Criterion:
        """The loss for a Lua criterion object (``sizeAverage`` honoured, class ``weights`` too)."""
        if not self.session.is_object(obj) or obj['__role'] != 'criterion':
            what = self.describe(obj) if self.session.is_object(obj) else (self.session.lua_type(obj) or
                                                                           type(obj).__name__)
            raise NetworkError(f"The Torch7 network '{self.session.name}': `loss` must be a criterion such as "
                               f"nn.ClassNLLCriterion(), got {what}")
        args = self._args(obj)
        weights = args[0] if args and self.session.lua_type(args[0]) == 'table' else None
        if weights is not None:
            weights = torch.tensor([float(v) for v in _array(weights)])
        size_average = obj['sizeAverage']
        if size_average is None:
            size_average = next((a for a in args if isinstance(a, bool)), True)
        return M.Criterion(obj['__type'], bool(size_average), weights)
