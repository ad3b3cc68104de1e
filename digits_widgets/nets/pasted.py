"""Networks pasted from DIGITS as they were written there, and what this version makes of them.

DIGITS' TensorFlow examples start with ``from model import Tower``, ``from utils import model_property`` and
``import utils as digits``: here those names are already in the cell's namespace, so such lines are taken out
(each replaced, on its own line, by what it meant, so line numbers stay those of the cell) and a warning names
each one. A network that still uses TensorFlow (``import tensorflow as tf``, ``tf.``/``slim.``), or a Caffe
prototxt or Torch7 Lua text, gets an error that says so and points to notebook 05, never a bare NameError or
SyntaxError.
"""
from __future__ import annotations

import ast
import re
import warnings
from types import TracebackType

from . import helpers

__all__ = ['THREE_FORMS', 'NOTEBOOK', 'rewrite_digits_imports', 'tensorflow_import', 'foreign_language',
           'foreign_message', 'is_caffe_prototxt', 'tensorflow_message', 'tensorflow_name_line']

NOTEBOOK = 'notebook 05 (notebooks/05_networks_in_code.ipynb)'
THREE_FORMS = ("`class UserModel(Tower)` with `inference` and `loss` model properties, a Torch7-style function "
               "`network(params)` returning a dict with at least 'model' (an nn.Module), or a plain PyTorch "
               "variable `model` (an nn.Module) with an optional `loss(output, target)`")
_DIGITS_MODULES = ('model', 'utils', 'digits')
_PROVIDED = ('Tower', 'model_property')
_TF_NAMES = ('tf', 'slim')
_PROTOTXT = re.compile(r'(name|input)\s*:\s*["\']|layers?\s*\{')   # prototxt values are quoted strings
_LUA = re.compile(r"require\b|local\s|--|return\s+function\s*\(")


def _is_digits_module(module: str | None) -> bool:
    return module is not None and module.split('.')[0] in _DIGITS_MODULES


def _is_tensorflow(module: str | None) -> bool:
    return module is not None and module.split('.')[0] == 'tensorflow'


def _own_lines(node: ast.stmt, lines: list[str]) -> bool:
    """Whether the statement alone fills its lines (no other statement before or after it on them)."""
    first, last = lines[node.lineno - 1], lines[node.end_lineno - 1]
    after = last[node.end_col_offset:].strip()
    return not first[:node.col_offset].strip() and (not after or after.startswith('#'))


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    return sorted(found, key=lambda n: n.lineno)


def tensorflow_import(source: str) -> tuple[int, str] | None:
    """``(line number, line)`` of the first ``import tensorflow...`` / ``from tensorflow... import``, or None."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    lines = source.splitlines()
    for node in _imports(tree):
        modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
        if any(_is_tensorflow(m) for m in modules):
            return node.lineno, lines[node.lineno - 1].strip()
    return None


def _replacement(node: ast.Import | ast.ImportFrom) -> tuple[list[str], str] | None:
    """The statements a DIGITS import stands for here, and a note; None for any other import."""
    if isinstance(node, ast.ImportFrom):
        if node.level or not _is_digits_module(node.module):
            return None
        code, unknown = [], []
        for alias in node.names:
            target = alias.asname or alias.name
            if alias.name == '*':
                continue
            if alias.name in _PROVIDED:
                if target != alias.name:
                    code.append(f'{target} = {alias.name}')
            elif hasattr(helpers, alias.name):
                code.append(f'{target} = digits.{alias.name}')
            else:
                unknown.append(alias.name)
        if unknown:
            return code, ('no counterpart here for ' + ', '.join(f'`{u}`' for u in unknown)
                          + ': the DIGITS helpers are in `digits` (see ' + NOTEBOOK + ')')
        return code, '`Tower`, `model_property` and the `digits` helpers are already defined in the cell'
    if not all(_is_digits_module(a.name) for a in node.names):
        return None
    code = []
    for alias in node.names:
        target = alias.asname or alias.name.split('.')[0]
        if alias.name.split('.')[0] != 'model' and target != 'digits':
            code.append(f'{target} = digits')
    return code, '`Tower`, `model_property` and the `digits` helpers are already defined in the cell'


def rewrite_digits_imports(source: str, filename: str) -> str:
    """``source`` with DIGITS' own import lines replaced in place (same line count), warning once per line.

    Text that does not parse is returned as it is (its SyntaxError is reported by the caller).
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    lines = source.splitlines(True)
    changed = False
    for node in _imports(tree):
        found = _replacement(node)
        if found is None or not _own_lines(node, lines):
            continue
        code, note = found
        first = lines[node.lineno - 1]
        indent = first[:len(first) - len(first.lstrip())]
        stmt = '; '.join(code) if code else 'pass'
        eol = '\n' if first.endswith('\n') else ''
        lines[node.lineno - 1] = f'{indent}{stmt}  # DIGITS import taken out{eol}'
        for i in range(node.lineno, node.end_lineno):
            lines[i] = '\n' if lines[i].endswith('\n') else ''
        changed = True
        warnings.warn_explicit(f'line {node.lineno}: `{first.strip()}` taken out: {note}.', UserWarning,
                               filename, node.lineno, module=filename, registry={})
    return ''.join(lines) if changed else source


def foreign_language(source: str) -> tuple[str, int, str] | None:
    """``('a Caffe prototxt' | 'Torch7 Lua', line number, line)`` when the text is one of those, else None."""
    numbered = [(i, line.strip()) for i, line in enumerate(source.splitlines(), start=1) if line.strip()]
    code = [(i, line) for i, line in numbered if not line.startswith('#')]
    if code and _PROTOTXT.match(code[0][1]):
        return 'a Caffe prototxt', code[0][0], code[0][1]
    for i, line in code:
        if re.match(r'layers?\s*\{', line):
            return 'a Caffe prototxt', i, line
    for i, line in numbered:
        if _LUA.match(line):
            return 'a Torch7 (Lua) network', i, line
    return None


def is_caffe_prototxt(source: str) -> bool:
    """Whether network text is a Caffe prototxt (it is not Python and reads as one): such text is built by
    :func:`digits_widgets.nets.caffe.build_caffe_network` instead of being run."""
    found = foreign_language(source)
    if found is None or found[0] != 'a Caffe prototxt':
        return False
    try:
        compile(source, '<prototxt?>', 'exec')
    except SyntaxError:
        return True
    return False


def foreign_message(name: str, found: tuple[str, int, str]) -> str:
    kind, number, line = found
    return (f"The network '{name}' is {kind} (line {number}: `{line[:80]}`), not Python. Caffe prototxt "
            f"and Torch7 Lua networks run as they are when given as networks (build_network, dw.train, "
            f"%%digits_model --framework caffe|torch; Lua needs `pip install digits_widgets[torch7]`), "
            f"not as Python code; or port it to PyTorch, see {NOTEBOOK}: one of the three accepted forms: "
            f"{THREE_FORMS}.")


def tensorflow_message(where: str, number: int, line: str) -> str:
    return (f"this network uses TensorFlow ({where} line {number}: `{line[:80]}`); here it is written in "
            f"PyTorch, see {NOTEBOOK}: one of {THREE_FORMS}")


def tensorflow_name_line(exc: BaseException) -> tuple[str, int, str] | None:
    """For a NameError of ``tf`` or ``slim`` raised in a cell: ``(cell file name, line number, line)``."""
    if not isinstance(exc, NameError) or getattr(exc, 'name', None) not in _TF_NAMES:
        return None
    import linecache
    hit = None
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.startswith('<digits_model:'):
            hit = (filename, tb.tb_lineno, linecache.getline(filename, tb.tb_lineno).strip())
        tb = tb.tb_next
    return hit or ('the network', 0, f'{exc.name}.')
