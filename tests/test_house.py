"""The rules of the house (../shared/design.md), checked on the source tree with ``ast``, not by importing.

1. Imports point one way: store <- data <- nets <- train <- infer <- ui <- magic. Imports inside
   functions and under ``TYPE_CHECKING`` count too: they are dependencies all the same.
2. Only ``ui/`` and ``magic.py`` import ipywidgets, bqplot, ipycanvas or anywidget.
3. The core (store, data, nets, train, infer) imports in a process where those four cannot be imported.
4. A module that passes 400 lines is asking to be split (a listed one may shrink, not grow).
5. No import cycles between the package's modules: a cycle means two modules are one idea in two files,
   or a lower one reaches up (the cycle launch <-> model_job <-> trainer was the reason for this rule).
"""
from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "digits_widgets"
WIDGET_LIBS = frozenset({"ipywidgets", "bqplot", "ipycanvas", "anywidget"})
WIDGET_HOMES = ("ui", "magic")   # the layers allowed to import them

# The rank of each part of the package: a module may import only from its own rank or a lower one.
RANK = {
    "_version": -1,   # the version string: imports nothing
    "errors": -1,     # the error types every layer raises: imports nothing of ours
    "store": 0,
    "api": 0,         # dw.jobs() / dw.job() / dw.delete(): a headless facade over store.jobs, used by ui
    "data": 1,
    "nets": 2,
    "train": 3,
    "infer": 4,
    "ui": 5,
    "magic": 6,
    "__init__": 7,    # ``import digits_widgets``: gathers every layer; widgets only lazily, inside functions
}

# Modules over MAX_LINES, with their length when this list was made as the most they may have. Shrink a
# number when a module shrinks; take an entry out when it is split under the limit. Never raise one, never
# add one: none is over today.
MAX_LINES = 400
LONG_MODULES: dict[str, int] = {}

# Known breaches of rule 1, as (importing file, imported layer): none today. Keep it that way.
LAYER_EXCEPTIONS: set[tuple[str, str]] = set()


def sources() -> list[Path]:
    return sorted(PKG.rglob("*.py"))


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def module_parts(path: Path) -> list[str]:
    """``digits_widgets/store/jobs.py`` -> ['digits_widgets', 'store', 'jobs']."""
    return list(path.relative_to(ROOT).with_suffix("").parts)


def layer_of(path: Path) -> str:
    """The part of the package a file belongs to: its first folder or top-level module name."""
    return module_parts(path)[1]


def _is_module(dotted: list[str]) -> bool:
    base = ROOT.joinpath(*dotted)
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of everything ``path`` imports, anywhere in the file, relative ones resolved.

    ``from X import name`` counts as importing ``X.name`` where that is a module, else ``X``. Calls of
    ``importlib.import_module("...")`` and ``__import__("...")`` with a literal name count too.
    """
    parts = module_parts(path)
    package = parts[:-1]   # the package a relative import starts from (a package's own __init__ too)
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                module = base + (node.module.split(".") if node.module else [])
            else:
                module = node.module.split(".")
            for alias in node.names:
                sub = module + [alias.name]
                found.append((node.lineno, ".".join(sub if _is_module(sub) else module)))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__"):
                found.append((node.lineno, node.args[0].value))
    return found


def test_every_part_of_the_package_has_a_rank():
    unranked = sorted({layer_of(p) for p in sources()} - set(RANK))
    assert not unranked, (f"{unranked}: new top-level modules or folders of digits_widgets; give each a rank in "
                          "tests/test_house.py RANK (which layers may it import, which may import it?)")


def test_imports_point_one_way():
    breaches = []
    for path in sources():
        layer = layer_of(path)
        for line, target in imports(path):
            dotted = target.split(".")
            if dotted[0] != "digits_widgets":
                continue
            to = dotted[1] if len(dotted) > 1 else "__init__"   # ``from digits_widgets import X``: the package
            if to not in RANK or RANK[to] <= RANK[layer] or (rel(path), to) in LAYER_EXCEPTIONS:
                continue
            breaches.append(f"{rel(path)}:{line} ({layer}) imports {target} ({to}), a higher layer")
    assert not breaches, ("Imports point one way, store <- data <- nets <- train <- infer <- ui <- magic:\n"
                          + "\n".join(breaches))


def test_only_ui_and_magic_import_widget_libraries():
    breaches = [f"{rel(path)}:{line} imports {target}"
                for path in sources() if layer_of(path) not in WIDGET_HOMES
                for line, target in imports(path) if target.split(".")[0] in WIDGET_LIBS]
    assert not breaches, ("Only digits_widgets/ui/ and magic.py may import ipywidgets, bqplot, ipycanvas or "
                          "anywidget (the core runs headless):\n" + "\n".join(breaches))


_HEADLESS = textwrap.dedent("""
    import importlib.abc, sys

    BLOCKED = {blocked!r}

    class NoWidgets(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{{name}} is not installed here (a headless test)")
            return None

    sys.meta_path.insert(0, NoWidgets())
    import digits_widgets.store, digits_widgets.data, digits_widgets.nets, digits_widgets.train
    import digits_widgets.infer
    import digits_widgets.store.jobs, digits_widgets.data.create, digits_widgets.nets.zoo
    import digits_widgets.train.launch, digits_widgets.train.worker, digits_widgets.infer.predict
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED or m.startswith("digits_widgets.ui"))
    assert not loaded, f"imported anyway: {{loaded}}"
    print("headless ok")
""")


@pytest.mark.timeout(180)
def test_the_core_imports_without_widget_libraries():
    code = _HEADLESS.format(blocked=sorted(WIDGET_LIBS))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                            timeout=170)
    assert result.returncode == 0 and "headless ok" in result.stdout, (
        "The core (store, data, nets, train, infer) must import where ipywidgets, bqplot, ipycanvas and "
        f"anywidget cannot; the traceback says which file imports one:\n{result.stderr[-4000:]}")


def test_modules_stay_short():
    too_long = []
    for path in sources():
        name, lines = rel(path), len(path.read_text().splitlines())
        ceiling = LONG_MODULES.get(name, MAX_LINES)
        if lines > ceiling:
            why = (f"over its ceiling of {ceiling} in LONG_MODULES (listed modules may shrink, not grow)"
                   if name in LONG_MODULES else f"over {MAX_LINES}")
            too_long.append(f"{name}:{ceiling + 1} has {lines} lines, {why}")
    assert not too_long, "One file, one idea: a module that passes ~400 lines is asking to be split:\n" + \
        "\n".join(too_long)



def _import_graph() -> dict[str, set[str]]:
    """Module → the package's modules it imports (anywhere in the file, as ``imports`` reads them)."""
    names = {".".join(module_parts(p)).removesuffix(".__init__"): p for p in sources()}
    return {name: {target for _, target in imports(path) if target in names and target != name}
            for name, path in names.items()}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other round a loop (strongly connected, more than one)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_import_cycles_are_found():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    cycles = import_cycles(_import_graph())
    assert not cycles, ("These modules import each other round a loop (imports inside functions and under "
                        "TYPE_CHECKING count): move what both need below them.\n"
                        + "\n".join(" <-> ".join(c) for c in cycles))
