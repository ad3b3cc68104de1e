"""Running a DIGITS Torch7 network's Lua text with lupa, the way DIGITS' ``main.lua`` did.

The text is a Lua chunk that must ``return function(params) ... return {model=..., ...} end``. It runs in
LuaJIT (Torch7's Lua, 5.1 semantics) when lupa ships it, else in the newest Lua lupa has, with the prelude's
``nn``/``cudnn``/``inn``/``torch`` namespaces. Every failure is a :class:`NetworkError` carrying the Lua
traceback, whose lines are those of the cell (chunk name ``<digits_model:NAME>``).
"""
from __future__ import annotations

import logging
from importlib import resources
from typing import Any

from ...errors import NetworkError
from ..source import source_filename

__all__ = ['LUPA_HINT', 'LuaSession', 'lua_runtime_module']

LUPA_HINT = ("Torch7 (Lua) networks need the lupa package, an optional extra: "
             "pip install digits_widgets[torch7]")
NOT_A_FUNCTION = "Network definition should return a Lua function - see documentation"
_PRELUDE_CHUNK = '=digits_widgets torch7 prelude'
log = logging.getLogger('digits_widgets.torch7')


def lua_runtime_module() -> Any:
    """lupa's LuaJIT 2.1 module when present (Torch7 ran on LuaJIT), else lupa's default Lua."""
    try:
        import lupa
    except ImportError:
        raise NetworkError(LUPA_HINT) from None
    try:
        from lupa import luajit21
        return luajit21
    except ImportError:
        return lupa


def _to_lua(runtime: Any, tensor_of: Any, value: Any) -> Any:
    """Python params → Lua values: tuples and lists of numbers become the prelude's torch.Tensor."""
    if isinstance(value, (tuple, list)):
        return tensor_of(runtime.table(*value))
    if isinstance(value, dict):
        return runtime.table_from({k: _to_lua(runtime, tensor_of, v) for k, v in value.items()})
    return value


class LuaSession:
    """One Lua state holding one network: the namespaces, the user's chunk and what it returned.

    Hooks returned by the network (``labelHook``, ``fineTuneHook``) keep this state alive and run in it."""

    def __init__(self, module_names: list[str], criterion_names: list[str], name: str) -> None:
        mod = lua_runtime_module()
        self.name = name
        self.filename = source_filename(name)
        self.LuaError = mod.LuaError
        self.LuaSyntaxError = mod.LuaSyntaxError
        self.runtime = mod.LuaRuntime(register_eval=False, register_builtins=False,
                                      unpack_returned_tuples=True)
        self.lua_type = mod.lua_type
        g = self.runtime.globals()
        g.python = None   # the network sees Torch7's world, not Python's
        if g.unpack is None:   # Lua 5.2+ moved it; Torch7 code calls the 5.1 global
            g.unpack = g.table.unpack
        self.printed: list[str] = []
        prelude_text = resources.files(__package__).joinpath('prelude.lua').read_text(encoding='utf-8')
        load = self.runtime.eval('function(text, chunk) local f, e = load(text, chunk) return f or false, e or "" end')
        prelude, err = load(prelude_text, _PRELUDE_CHUNK)
        if not prelude:   # a broken prelude is our bug, not the user's
            raise RuntimeError(f"torch7 prelude does not load: {err}")
        self.api = prelude(self.runtime.table(*module_names), self.runtime.table(*criterion_names), self._print)
        self._xpcall = self.runtime.eval(
            'function(f, ...) local args = {n = select("#", ...), ...} '
            'return xpcall(function() return f(unpack(args, 1, args.n)) end, debug.traceback) end')
        self._load = load

    def _print(self, text: str) -> None:
        self.printed.append(str(text))
        log.info('%s: %s', self.name, text)

    def tensor(self, values: Any) -> Any:
        return self.api.tensor(self.runtime.table(*values))

    def to_lua(self, value: Any) -> Any:
        return _to_lua(self.runtime, self.api.tensor, value)

    def is_object(self, value: Any) -> bool:
        return bool(self.api.is_object(value))

    def _error(self, what: str, text: str) -> NetworkError:
        lines = str(text).splitlines()   # the message, then traceback lines (indented): drop our frames
        lines = lines[:1] + [ln for ln in lines[1:]
                             if _PRELUDE_CHUNK[1:] not in ln and not ln.strip().startswith('[builtin#')]
        head = lines[0] if lines else what
        return NetworkError(f"The Torch7 network '{self.name}' {what}: {head}", '\n'.join(lines))

    def call(self, what: str, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` in Lua, with the Lua traceback on error; several results come back as a tuple."""
        result = self._xpcall(fn, *args)
        ok, rest = (result[0], result[1:]) if isinstance(result, tuple) else (result, ())
        if not ok:
            raise self._error(what, rest[0] if rest else 'error')
        return rest[0] if len(rest) == 1 else (rest or None)

    def run(self, text: str, params: dict[str, Any]) -> Any:
        """Load and run the chunk, check it returned a function, call it with ``params``; the Lua table."""
        chunk, err = self._load(text, '=' + self.filename)
        if not chunk:
            raise NetworkError(f"The Torch7 network '{self.name}' has a Lua syntax error: {err}", str(err))
        definition = self.call('failed while running its Lua text', chunk)
        if isinstance(definition, tuple):
            definition = definition[0]
        if self.lua_type(definition) != 'function':
            raise NetworkError(f"The Torch7 network '{self.name}': {NOT_A_FUNCTION} (the text must end with "
                               "`return function(params) ... return {model = ..., loss = ...} end`; it returned "
                               f"{self.lua_type(definition) or type(definition).__name__})")
        table = self.call('failed in its network function', definition, self.to_lua(params))
        if self.lua_type(table) != 'table' or self.is_object(table):
            raise NetworkError(f"The Torch7 network '{self.name}': its function must return a table such as "
                               "{model = net, loss = nn.ClassNLLCriterion()}, got "
                               f"{'a module' if self.is_object(table) else self.lua_type(table) or type(table).__name__}")
        return table
