"""A network as a JSON graph of layers and data flow, for the TypeScript network-graph widget.

DIGITS' "Visualize" drew the Caffe prototxt as a graph. A PyTorch model has no prototxt, so the graph comes
from running it once: hooks on the leaf modules plus a ``TorchFunctionMode`` that sees the functional glue
between them (``torch.cat``, ``+``, ``view``), with edges found by tensor identity. The pass gives every node
its output shape, branches (inception blocks, residual adds) come out as branches, and it takes any model,
Python control flow on tensors and DIGITS Towers that build layers lazily included.

Not :mod:`torch.fx`: its symbolic tracing patches ``nn.Module.__call__`` for the whole process while it runs,
which breaks any training thread running beside it (and a notebook usually has one).

Torch only: no widgets here, so a script or a test can build and inspect the graph.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from .tower import Tower
from .trainable import TrainableNet

__all__ = ["network_graph", "hook_graph", "INPUT_ID"]

INPUT_ID = "input"
_DETAIL_LIMIT = 2000  # a repr of a big custom module is not worth shipping whole to the browser


@dataclass
class _Node:
    id: str
    name: str
    type: str
    shape: list[int] | None
    params: int
    detail: str
    stats: None = None


class _Builder:
    """Collects nodes with unique ids, deduplicated edges, and counts each parameter once (shared weights)."""

    def __init__(self, model: nn.Module) -> None:
        self.nodes: list[_Node] = []
        self.edges: dict[tuple[str, str], None] = {}
        self.params = {id(p): p for p in model.parameters()}
        self.seen: set[int] = set()
        self.used: dict[str, int] = {}
        self.ops: set[str] = set()   # functional ops (not modules, not the input): prunable when dead ends

    def count(self, tensors: Any) -> int:
        """Elements of the model's parameters among ``tensors`` that no node has claimed yet."""
        total = 0
        for t in tensors:
            if id(t) in self.params and id(t) not in self.seen:
                self.seen.add(id(t))
                total += t.numel()
        return total

    def add(self, name: str, type_: str, shape: list[int] | None, params: int, detail: str,
            sources: Any = (), op: bool = False) -> str:
        n = self.used.get(name, 0) + 1
        self.used[name] = n
        node_id = name if n == 1 else f"{name}#{n}"   # a module called twice shows twice: data flows twice
        self.nodes.append(_Node(node_id, name, type_, shape, params, detail[:_DETAIL_LIMIT]))
        if op:
            self.ops.add(node_id)
        for src in sources:
            self.edges[(src, node_id)] = None
        return node_id

    def result(self, method: str, outputs: set[str]) -> dict[str, Any]:
        """The graph without dead-end ops: tensors computed for an ``if``, a summary or a shape check are
        not part of the network's data flow. Layers (modules) and ops that use parameters always stay."""
        edges = list(self.edges)
        dropped: set[str] = set()
        while True:
            sources = {s for s, _ in edges}
            dead = {n.id for n in self.nodes if n.id in self.ops and not n.params and n.id not in outputs
                    and n.id not in sources and n.id not in dropped}
            if not dead:
                break
            dropped |= dead
            edges = [(s, t) for s, t in edges if t not in dead]
        return {"nodes": [asdict(n) for n in self.nodes if n.id not in dropped],
                "edges": [{"source": s, "target": t} for s, t in edges], "method": method}


def _tensors(value: Any) -> Iterator[Tensor]:
    """Tensors inside nested tuples, lists and dicts, in order."""
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _tensors(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)


def _batchless(shape: Any) -> list[int]:
    return [int(d) for d in tuple(shape)[1:]]


def _describe(value: Any, name_of: Callable[[Any], str | None]) -> str:
    """Arguments of an op as short text: producers by node name, other tensors by shape, the rest by repr."""
    known = name_of(value)
    if known is not None:
        return known
    if isinstance(value, Tensor):
        return f"tensor{list(value.shape)}"
    if isinstance(value, (tuple, list)):
        inner = ", ".join(_describe(v, name_of) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _call_text(qualname: str, args: Any, kwargs: dict[str, Any], name_of: Callable[[Any], str | None]) -> str:
    parts = [_describe(a, name_of) for a in args] + [f"{k}={_describe(v, name_of)}" for k, v in kwargs.items()]
    return f"{qualname}({', '.join(parts)})"


def _op_name(func: Any) -> tuple[str, str]:
    """(short name, qualified name) of a torch function, Tensor method or operator; properties such as
    ``Tensor.T`` arrive as their descriptor's ``__get__`` and are named after the property."""
    name = getattr(func, "__name__", None) or str(func)
    if name == "__get__":
        name = getattr(getattr(func, "__self__", None), "__name__", name)
    short = name.strip("_") or name
    module = getattr(func, "__module__", None) or ""
    qual = getattr(func, "__qualname__", name)
    module = {"_operator": "operator", "torch._C._nn": "torch.nn.functional"}.get(module, module)
    return short, f"{module}.{qual}" if module else qual


# ---------------------------------------------------------------- recorded forward pass


class _Recorder(TorchFunctionMode):
    """Records leaf-module calls (through hooks) and the functional ops between them (through the mode).

    Ops inside a leaf module belong to that module (``depth`` > 0) and are not recorded. Every tensor seen is
    kept alive for the pass, so an ``id()`` cannot be reused by a later tensor and fake an edge.
    """

    def __init__(self, model: nn.Module, sample: Tensor) -> None:
        super().__init__()
        self.b = _Builder(model)
        self.producer: dict[int, str] = {}
        self.alive: list[Tensor] = [sample]
        self.depth = 0
        self.scope: list[str] = []   # paths of the container modules running now, innermost last
        self.pending: list[list[str]] = []
        self.producer[id(sample)] = self.b.add(INPUT_ID, "Input", _batchless(sample.shape), 0,
                                               f"input {list(sample.shape)[1:]}")

    def name_of(self, value: Any) -> str | None:
        return self.producer.get(id(value)) if isinstance(value, Tensor) else None

    def produced(self, node_id: str, output: Any) -> None:
        for t in _tensors(output):
            self.producer[id(t)] = node_id   # an in-place op (ReLU(inplace=True)) becomes the new producer
            self.alive.append(t)

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.depth == 0:
            self.record_op(func, args, kwargs, out)
        return out

    def record_op(self, func: Any, args: Any, kwargs: dict[str, Any], out: Any) -> None:
        outs = list(_tensors(out))
        if not outs:
            return   # sizes, dtypes, booleans: not data flow
        ins = list(_tensors((args, kwargs)))
        sources = list(dict.fromkeys(self.producer[id(t)] for t in ins if id(t) in self.producer))
        params = self.b.count(ins)
        if not sources and not params:
            return   # a constant (torch.zeros, arange): not on the data path
        short, qual = _op_name(func)
        name = f"{self.scope[-1]}.{short}" if self.scope else short   # the innermost module running it
        detail = _call_text(qual, args, kwargs, self.name_of)
        self.produced(self.b.add(name, short, _batchless(outs[0].shape), params, detail, sources, op=True), out)

    def hooks(self, model: nn.Module) -> list[Any]:
        handles = []
        for name, module in model.named_modules():
            if not name:
                continue   # the root is the model itself: its ops are the graph
            if next(module.children(), None) is None:
                handles.append(module.register_forward_pre_hook(self.leaf_pre, with_kwargs=True))
                handles.append(module.register_forward_hook(self.leaf_post(name)))
            else:
                handles.append(module.register_forward_pre_hook(self.scope_pre(name)))
                handles.append(module.register_forward_hook(self.scope_post))
        return handles

    def leaf_pre(self, module: nn.Module, args: Any, kwargs: Any) -> None:
        ins = list(_tensors((args, kwargs)))
        sources = list(dict.fromkeys(self.producer[id(t)] for t in ins if id(t) in self.producer))
        self.pending.append(sources or [INPUT_ID])   # inputs nobody produced come from the input
        self.depth += 1

    def leaf_post(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            sources = self.pending.pop()
            first = next(_tensors(output), None)
            shape = _batchless(first.shape) if first is not None else None
            node_id = self.b.add(name, type(module).__name__, shape, self.b.count(module.parameters()),
                                 repr(module), sources)
            self.produced(node_id, output)
            self.depth -= 1
        return hook

    def scope_pre(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any) -> None:
            self.scope.append(name)
        return hook

    def scope_post(self, module: nn.Module, args: Any, output: Any) -> None:
        self.scope.pop()


def _run(model: nn.Module, sample: Tensor) -> Any:
    """The inference forward pass: a Tower reads no labels and forgets the batch afterwards."""
    if isinstance(model, Tower):
        try:
            return model(sample, None)
        finally:
            model.end_batch()
    return model(sample)


def hook_graph(model: nn.Module, sample: Tensor) -> dict[str, Any]:
    """The graph of ``model`` recorded from one forward pass of ``sample``."""
    recorder = _Recorder(model, sample)
    handles = recorder.hooks(model)
    try:
        with recorder:
            output = _run(model, sample)
    finally:
        for h in handles:
            h.remove()
    outputs = {recorder.producer[id(t)] for t in _tensors(output) if id(t) in recorder.producer}
    return recorder.b.result("hooks", outputs)


def network_graph(module: nn.Module, sample: Tensor) -> dict[str, Any]:
    """``{"nodes": [...], "edges": [...], "method": "hooks"}`` for ``module`` on ``sample`` (a batch).

    A :class:`TrainableNet` is unwrapped to the user's model, whose module names are the ones probes and
    snapshots use. Each node: ``id`` (unique), ``name`` (module path, or scope + op for functional ops),
    ``type``, ``shape`` (output shape without the batch), ``params`` (each parameter counted once),
    ``detail`` (the module's repr or the op call) and ``stats`` (``None``; the widget fills them in).
    The model runs in eval mode without gradients; its mode is restored afterwards.
    """
    model = module.inner if isinstance(module, TrainableNet) else module
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return hook_graph(model, sample)
    finally:
        model.train(was_training)
