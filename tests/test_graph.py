"""The network graph: the JSON graph recorded from one forward pass of a model, and the widget."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw
import torch
import traitlets
from torch import nn
from torch.nn import functional as F

import digits_widgets as dw
from digits_widgets.errors import NetworkError
from digits_widgets.infer.probes import Probe, probe
from digits_widgets.nets import zoo
from digits_widgets.nets.graph_trace import INPUT_ID, hook_graph, network_graph
from digits_widgets.nets.network import build_network
from digits_widgets.nets.tower import Tower, model_property
from digits_widgets.ui.graph import GraphWidget, probe_stats, show_network

BUILDERS = [hook_graph, network_graph]


def by_id(graph: dict) -> dict[str, dict]:
    return {n["id"]: n for n in graph["nodes"]}


def links(graph: dict) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(successors, predecessors) by node id."""
    succ: dict[str, set[str]] = {n["id"]: set() for n in graph["nodes"]}
    pred: dict[str, set[str]] = {n["id"]: set() for n in graph["nodes"]}
    for e in graph["edges"]:
        succ[e["source"]].add(e["target"])
        pred[e["target"]].add(e["source"])
    return succ, pred


def total_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def check_wellformed(graph: dict) -> None:
    ids = [n["id"] for n in graph["nodes"]]
    assert len(ids) == len(set(ids))
    assert ids[0] == INPUT_ID
    known = set(ids)
    assert all(e["source"] in known and e["target"] in known for e in graph["edges"])
    _, pred = links(graph)
    assert all(pred[i] for i in ids[1:]), "every node but the input has a producer"
    assert all(set(n) == {"id", "name", "type", "shape", "params", "detail", "stats"} for n in graph["nodes"])
    json.dumps(graph)


@pytest.mark.parametrize("build", BUILDERS)
def test_sequential_is_a_chain_with_shapes_and_params(build) -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(8 * 8 * 8, 10)).eval()
    graph = build(model, torch.zeros(2, 3, 16, 16))
    check_wellformed(graph)
    assert [n["id"] for n in graph["nodes"]] == [INPUT_ID, "0", "1", "2", "3", "4"]
    assert [n["type"] for n in graph["nodes"]] == ["Input", "Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear"]
    assert [n["shape"] for n in graph["nodes"]] == [[3, 16, 16], [8, 16, 16], [8, 16, 16], [8, 8, 8], [512], [10]]
    ids = [n["id"] for n in graph["nodes"]]
    assert [(e["source"], e["target"]) for e in graph["edges"]] == list(zip(ids, ids[1:]))
    assert [n["params"] for n in graph["nodes"]] == [0, 8 * 3 * 9 + 8, 0, 0, 0, 512 * 10 + 10]
    assert sum(n["params"] for n in graph["nodes"]) == total_params(model)
    assert by_id(graph)["0"]["detail"].startswith("Conv2d(3, 8")
    assert all(n["stats"] is None for n in graph["nodes"])


class Branchy(nn.Module):
    """Two conv branches concatenated, then a residual add around a 1x1 conv of the concatenation."""

    def __init__(self, dynamic: bool = False) -> None:
        super().__init__()
        self.dynamic = dynamic
        self.a = nn.Conv2d(3, 4, 1)
        self.b = nn.Conv2d(3, 4, 3, padding=1)
        self.merge = nn.Conv2d(8, 8, 1)
        self.scale = nn.Parameter(torch.ones(1))   # used functionally: its node must own it

    def forward(self, x):
        if self.dynamic and x.abs().sum() >= 0:   # data-dependent control flow: fx cannot trace this
            x = x * 1.0
        y = torch.cat([self.a(x), self.b(x)], 1)
        return F.relu(self.merge(y) + y) * self.scale


def check_branches(graph: dict, model: nn.Module) -> None:
    check_wellformed(graph)
    succ, pred = links(graph)
    nodes = by_id(graph)
    first = INPUT_ID if not model.dynamic else next(iter(succ[INPUT_ID]))
    assert succ[first] == {"a", "b"}
    cat = next(i for i, n in nodes.items() if n["type"] == "cat")
    assert pred[cat] == {"a", "b"} and nodes[cat]["shape"] == [8, 5, 5]
    add = next(i for i, n in nodes.items() if n["type"] == "add")
    assert succ[cat] == {"merge", add}
    assert pred[add] == {"merge", cat}
    mul = [i for i, n in nodes.items() if n["type"] == "mul" and n["params"] == 1]
    assert len(mul) == 1
    assert sum(n["params"] for n in graph["nodes"]) == total_params(model)


@pytest.mark.parametrize("build", BUILDERS)
def test_concat_and_residual_are_branches(build) -> None:
    model = Branchy().eval()
    check_branches(build(model, torch.zeros(1, 3, 5, 5)), model)


def test_model_with_python_control_flow_on_tensors() -> None:
    model = Branchy(dynamic=True)
    model.train()
    graph = network_graph(model, torch.zeros(1, 3, 5, 5))
    assert graph["method"] == "hooks"
    assert model.training, "the model's mode is restored"
    check_branches(graph, model)


def test_graph_while_another_thread_trains() -> None:
    """Visualize runs while a job trains in the background: neither may disturb the other (torch.fx's tracer
    patched nn.Module.__call__ process-wide and broke the training thread)."""
    import threading

    trainee = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1))
    opt = torch.optim.SGD(trainee.parameters(), lr=0.01)
    errors: list[BaseException] = []
    stop = threading.Event()

    def train() -> None:
        try:
            while not stop.is_set():
                opt.zero_grad()
                trainee(torch.randn(4, 8)).pow(2).mean().backward()
                opt.step()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    worker = threading.Thread(target=train)
    worker.start()
    alone = network_graph(build_network(zoo.source("lenet"), (1, 28, 28), 10).module, torch.zeros(1, 1, 28, 28))
    try:
        for _ in range(20):
            graph = network_graph(build_network(zoo.source("lenet"), (1, 28, 28), 10).module,
                                  torch.zeros(1, 1, 28, 28))
            assert graph["nodes"] == alone["nodes"] and graph["edges"] == alone["edges"], \
                "the training thread's layers and ops stay out of the graph"
    finally:
        stop.set()
        worker.join()
    assert not errors, errors


class ResidualBlock(nn.Module):
    """torchvision's BasicBlock idiom: ``out += identity`` and an in-place ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        out = self.conv2(self.relu(self.conv1(x)))
        out += x
        return self.relu(out)


@pytest.mark.parametrize("build", BUILDERS)
def test_in_place_residual(build) -> None:
    graph = build(ResidualBlock().eval(), torch.zeros(1, 4, 6, 6))
    check_wellformed(graph)
    succ, pred = links(graph)
    assert succ[INPUT_ID] >= {"conv1"} and len(succ[INPUT_ID]) == 2
    join = (succ[INPUT_ID] - {"conv1"}).pop()
    assert pred[join] == {INPUT_ID, "conv2"}
    assert pred["relu#2"] == {join}, "the ReLU called twice appears twice"


class LazyTower(Tower):
    """A DIGITS-style Tower with a lazily created layer and Python control flow on a tensor value."""

    @model_property
    def inference(self):
        x = self.x.flatten(1)
        if x.abs().max() > 1e9:   # not traceable by fx
            x = x / 1e9
        return self.layer("fc", lambda: nn.Linear(x.shape[1], 3))(x)

    @model_property
    def loss(self):
        return F.mse_loss(self.inference, self.y)


def test_lazy_tower_falls_back_and_keeps_its_names() -> None:
    net = build_network(LazyTower, (1, 4, 4))
    graph = network_graph(net.module, torch.zeros(1, 1, 4, 4))
    assert graph["method"] == "hooks"
    check_wellformed(graph)
    fc = by_id(graph)["fc"]
    assert fc["type"] == "Linear" and fc["shape"] == [3] and fc["params"] == 16 * 3 + 3


def test_gradients_regression_tower() -> None:
    net = build_network(zoo.source("gradients_regression"), (1, 50, 50))
    graph = network_graph(net.module, torch.zeros(1, 1, 50, 50))
    check_wellformed(graph)
    fc = by_id(graph)["fc"]
    assert fc["type"] == "Linear" and fc["shape"] == [2] and fc["params"] == 2500 * 2 + 2
    assert sum(n["params"] for n in graph["nodes"]) == total_params(net.module)


def test_lenet() -> None:
    net = build_network(zoo.source("lenet"), (1, 28, 28), 10)
    graph = network_graph(net.module, torch.zeros(1, 1, 28, 28))
    check_wellformed(graph)
    nodes = by_id(graph)
    assert nodes["conv1"]["shape"] == [20, 24, 24] and nodes["conv1"]["params"] == 520
    assert nodes["fc2"]["shape"] == [10]
    assert sum(n["params"] for n in graph["nodes"]) == total_params(net.module)
    succ, _ = links(graph)
    assert all(len(s) <= 1 for s in succ.values()), "LeNet is a chain"


@pytest.fixture(scope="module")
def googlenet():
    return build_network(zoo.source("googlenet"), (3, 64, 64), 5)


def test_googlenet_branches(googlenet) -> None:
    sample = torch.zeros(1, 3, 64, 64)
    graph = network_graph(googlenet.module, sample)
    check_wellformed(graph)
    succ, pred = links(graph)
    forks = [i for i, s in succ.items() if len(s) == 4]
    joins = [i for i, p in pred.items() if len(p) == 4]
    assert len(forks) == 9 and len(joins) == 9, "nine inception blocks: one fork and one concat each"
    assert all(by_id(graph)[j]["type"] == "cat" for j in joins)
    assert by_id(graph)["classifier"]["shape"] == [5]
    assert sum(n["params"] for n in graph["nodes"]) == total_params(googlenet.module)


def test_widget_traits_serialise_and_stats_map_probes() -> None:
    net = build_network(zoo.source("lenet"), (1, 28, 28), 10)
    x = torch.rand(1, 1, 28, 28)
    widget = GraphWidget(network_graph(net.module, x))
    assert widget.direction == "auto" and widget.selected == "" and widget.stats == {}
    assert widget.height == 720
    with pytest.raises(traitlets.TraitError):
        widget.direction = "XY"
    widget.direction = "TB"
    probes = probe(net.module.inner, net.module.infer, x)
    stats = widget.set_stats(probes)
    assert set(stats) == {"conv1", "pool1", "conv2", "pool2", "fc1", "do1", "fc2"}
    assert widget.stats == stats
    conv1 = stats["conv1"]
    assert len(conv1["histogram"]) == 20 and len(conv1["edges"]) == 21 and conv1["shape"] == [20, 24, 24]
    reference = next(p for p in probes if p.name == "conv1" and p.kind == "activation")
    assert conv1["mean"] == pytest.approx(reference.mean) and conv1["std"] == pytest.approx(reference.std)
    widget.selected = "conv1"
    assert widget.node("conv1")["type"] == "Conv2d" and widget.node("nope") is None
    state = widget.get_state(key=["graph", "direction", "selected", "stats", "height"])
    json.dumps(state, allow_nan=False)


def test_stats_of_nan_activations_are_json() -> None:
    graph = {"nodes": [{"id": "fc", "name": "fc"}], "edges": []}
    nan = Probe("fc", "activation", "Linear", (2,), np.full(2, np.nan, np.float32), float("nan"), float("nan"),
                (np.zeros(20, np.int64), np.linspace(0, 1, 21)))
    weights = Probe("fc", "weights", "Linear", (2, 2), np.zeros((2, 2), np.float32), 0.0, 0.0,
                    (np.zeros(20, np.int64), np.linspace(0, 1, 21)))
    stats = probe_stats(graph, [weights, nan])
    assert stats["fc"]["mean"] is None and stats["fc"]["std"] is None
    json.dumps(stats, allow_nan=False)


def test_show_network() -> None:
    widget = show_network(zoo.source("gradients_regression"), (1, 50, 50), direction="TB")
    assert isinstance(widget, GraphWidget) and widget.direction == "TB"
    assert [n["type"] for n in widget.graph["nodes"]] == ["Input", "mul", "reshape", "Linear"]
    with pytest.raises(NetworkError):
        show_network("model = nn.Linear(3, 2)\nloss = None\nraise ValueError('broken')", (1, 4, 4))


# A per-pixel classifier: its loss takes N x H x W class maps, as an Images > Segmentation dataset gives.
SEGMENTATION_FCN = """
import torch.nn as nn
model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, nclasses, 1))
loss = nn.CrossEntropyLoss()
"""


def _segmentation_dataset(root, count: int = 6, size: int = 12):
    """A tiny Images > Segmentation dataset: outlined triangles and paletted class maps (0 = background)."""
    rng = np.random.default_rng(0)
    (root / "feat").mkdir(parents=True)
    (root / "lab").mkdir()
    for i in range(count):
        tri = (rng.uniform(size=6) * size).tolist()
        image = Image.new("L", (size, size), 255)
        ImageDraw.Draw(image).polygon(tri, outline=0)
        image.save(root / "feat" / f"{i:03d}.png")
        label = Image.new("P", (size, size), 0)
        label.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
        ImageDraw.Draw(label).polygon(tri, fill=1, outline=1)
        label.save(root / "lab" / f"{i:03d}.png")
    (root / "classes.txt").write_text("background\ntriangle\n")
    ds = dw.datasets.segmentation("graph-seg", str(root / "feat"), str(root / "lab"), val_percent=34,
                                  class_labels_file=str(root / "classes.txt"), seed=0)
    assert ds.wait(60) == "Done", ds.error
    return ds


def test_graph_of_a_segmentation_dataset_job(tmp_path) -> None:
    ds = _segmentation_dataset(tmp_path)
    assert ds.task == "segmentation" and ds.nclasses == 2 and len(ds.label_shape) >= 2
    widget = show_network(SEGMENTATION_FCN, dataset=ds, name="fcn")
    nodes = by_id(widget.graph)
    assert nodes[INPUT_ID]["shape"] == [1, 12, 12]
    assert nodes["2"]["type"] == "Conv2d" and nodes["2"]["shape"] == [2, 12, 12], "one score map per class"
    # the same with the shapes spelled out, and with a crop: the class maps are cropped as the images are
    widget = show_network(SEGMENTATION_FCN, (1, 12, 12), 2, label_shape=ds.label_shape, crop=8)
    assert by_id(widget.graph)["2"]["shape"] == [2, 8, 8]
    # class indices (the classification default) are not what a per-pixel loss takes: the build says so
    with pytest.raises(NetworkError, match="does not build"):
        show_network(SEGMENTATION_FCN, (1, 12, 12), 2)


def test_show_network_arguments_are_checked(tmp_path) -> None:
    with pytest.raises(NetworkError, match="input shape"):
        show_network(SEGMENTATION_FCN)
    ds = _segmentation_dataset(tmp_path)
    with pytest.raises(NetworkError, match="not both"):
        show_network(SEGMENTATION_FCN, (1, 12, 12), dataset=ds)
