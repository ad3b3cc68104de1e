"""Running network source text (a ``%%digits_model`` cell) and turning its failures into readable errors.

DIGITS' most useful debugging aid for TensorFlow and Torch users was the network's own Python traceback,
shown verbatim. The text is compiled under the file name ``<digits_model:NAME>`` and registered in
``linecache``, so tracebacks quote the cell's lines with the cell's line numbers; frames of our own modules
above the user's first frame are dropped so the traceback starts at the user's code.
"""
from __future__ import annotations

import builtins
import linecache
import math
import os
import traceback
from types import TracebackType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import NetworkError
from . import helpers as digits
from .pasted import (foreign_language, foreign_message, rewrite_digits_imports, tensorflow_import,
                     tensorflow_message, tensorflow_name_line)
from .tower import Tower, model_property

__all__ = ['exec_network_source', 'source_filename', 'format_user_traceback', 'network_error', 'remember_cell',
           'last_cell']

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))
_CALL_PLUMBING = ('_wrapped_call_impl', '_call_impl')


_last_cell: tuple[str, str] | None = None


def remember_cell(name: str, text: str) -> None:
    """Keep the network text of the latest ``%%digits_model`` cell this kernel ran (for the model form's
    "use the network defined in the %%digits_model cell")."""
    global _last_cell
    _last_cell = (name, text)


def last_cell() -> tuple[str, str] | None:
    """``(name, network text)`` of the latest ``%%digits_model`` cell run in this kernel, or None."""
    return _last_cell


def source_filename(name: str) -> str:
    """The pseudo file name network text is compiled under; tracebacks show it."""
    return f'<digits_model:{name}>'


def _is_ours(filename: str) -> bool:
    return os.path.abspath(filename).startswith(_PACKAGE_DIR + os.sep)


def _is_torch(filename: str) -> bool:
    return os.path.abspath(filename).startswith(_TORCH_DIR + os.sep)


def format_user_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` as Python prints it, starting at the user's code.

    It starts at the first frame that is neither ours nor torch's (the cell, or the file defining the model);
    when there is none (a plain ``nn.Sequential`` failing inside torch) it starts after our last frame, past
    torch's module-call plumbing. When no frame is left (a SyntaxError, or an error raised by our own checks)
    only the exception lines remain; for a SyntaxError they name the cell, the line number and the line.
    """
    frames: list[TracebackType] = []
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    names = [f.tb_frame.f_code.co_filename for f in frames]
    start = next((i for i, n in enumerate(names) if not _is_ours(n) and not _is_torch(n)), None)
    if start is None:
        start = max((i + 1 for i, n in enumerate(names) if _is_ours(n)), default=0)
        while (start < len(frames) - 1 and _is_torch(names[start])
               and frames[start].tb_frame.f_code.co_name in _CALL_PLUMBING):
            start += 1
    if start >= len(frames):
        return ''.join(traceback.format_exception_only(type(exc), exc))
    return ''.join(traceback.format_exception(type(exc), exc, frames[start]))


def network_error(message: str, exc: BaseException) -> NetworkError:
    """A :class:`NetworkError` whose message ends with the exception's own line and carries the trimmed traceback.

    Two failures of pasted DIGITS networks are named instead: a SyntaxError of a cell that is a Caffe prototxt
    or Torch7 Lua text, and a NameError of ``tf`` or ``slim`` (a TensorFlow network).
    """
    filename = getattr(exc, 'filename', None) if isinstance(exc, SyntaxError) else None
    if isinstance(filename, str) and filename.startswith('<digits_model:'):
        found = foreign_language(''.join(linecache.getlines(filename)))
        if found is not None:
            return NetworkError(foreign_message(filename[len('<digits_model:'):-1], found))
    tf_line = tensorflow_name_line(exc)
    if tf_line is not None:
        return NetworkError(f"{message}: {tensorflow_message(*tf_line)}", format_user_traceback(exc))
    detail = ''.join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()
    last = detail[-1] if detail else type(exc).__name__
    return NetworkError(f"{message}: {last}", format_user_traceback(exc))


def base_namespace(name: str) -> dict[str, Any]:
    """The globals a network cell starts with."""
    return {
        '__name__': f'digits_model_{name}',
        '__file__': source_filename(name),
        '__builtins__': builtins,
        'torch': torch,
        'nn': nn,
        'F': F,
        'np': np,
        'math': math,
        'digits': digits,
        'Tower': Tower,
        'model_property': model_property,
    }


def exec_network_source(source: str, name: str = 'network',
                        env: dict[str, Any] | None = None) -> dict[str, Any]:
    """Execute network text in a fresh namespace and return the namespace.

    The namespace holds ``torch``, ``nn``, ``F``, ``np``, ``math``, ``digits``, ``Tower`` and
    ``model_property``, plus ``env`` (``build_network`` adds ``input_shape``, ``nclasses`` and ``params`` so
    plain PyTorch cells can size their layers). A SyntaxError or an exception while executing becomes a
    :class:`NetworkError` with the cell's traceback. DIGITS' TensorFlow import lines (``from model import
    Tower``, ``import utils as digits``...) are taken out with a warning naming each line (see
    :mod:`.pasted`); ``import tensorflow`` is a NetworkError naming its line.
    """
    if not isinstance(source, str):
        raise NetworkError(f"Network source for '{name}' must be text, got {type(source).__name__}")
    filename = source_filename(name)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    tf_import = tensorflow_import(source)
    if tf_import is not None:
        raise NetworkError(f"The network '{name}' cannot run here: {tensorflow_message(filename, *tf_import)}")
    runnable = rewrite_digits_imports(source, filename)   # DIGITS' TF import lines, line numbers kept
    try:
        code = compile(runnable, filename, 'exec')
    except SyntaxError as exc:
        raise network_error(f"The network '{name}' has a syntax error", exc) from None
    namespace = base_namespace(name)
    namespace.update(env or {})
    try:
        exec(code, namespace)
    except Exception as exc:  # noqa: BLE001 - any failure of user code is reported with its traceback
        raise network_error(f"The network '{name}' failed while running its source", exc) from None
    return namespace
