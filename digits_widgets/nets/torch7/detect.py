"""Telling the three kinds of network text apart without running them (no lupa, no protobuf needed).

Lua text is recognised by what no Python cell has: a line starting with ``require``, ``local``, ``--`` or
``return function(`` (or one ending a block with ``end``), in text that is not valid Python. DIGITS' Torch7
contract makes every network end with ``return function(params) ... end``, so such text always qualifies.
"""
from __future__ import annotations

import re

from ..pasted import is_caffe_prototxt

__all__ = ['FRAMEWORKS', 'is_torch7_lua', 'framework_of']

FRAMEWORKS = ('pytorch', 'caffe', 'torch')
_LUA_LINE = re.compile(r"(require\b|local\s|--|return\s+function\s*\(|function\s+[\w.:]+\s*\(|end\b)")


def is_torch7_lua(source: str) -> bool:
    """Whether network text is a Torch7 Lua network (it has Lua's marks and does not compile as Python)."""
    if not isinstance(source, str) or not any(_LUA_LINE.match(line.strip()) for line in source.splitlines()):
        return False
    try:
        compile(source, '<lua?>', 'exec')
    except SyntaxError:
        return not is_caffe_prototxt(source)
    return False


def framework_of(source: str) -> str:
    """``'caffe'`` for a prototxt, ``'torch'`` for Torch7 Lua, else ``'pytorch'`` (Python)."""
    if is_caffe_prototxt(source):
        return 'caffe'
    if is_torch7_lua(source):
        return 'torch'
    return 'pytorch'
