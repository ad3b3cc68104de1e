"""Images > Segmentation end to end: a paletted class-map dataset, an FCN with per-pixel cross entropy,
per-pixel accuracy while training, and inference giving an H x W class map with the dataset's palette."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

import digits_widgets as dw
from digits_widgets.nets.network import build_network

PALETTE = [0, 0, 0, 255, 0, 0] + [0] * (768 - 6)

FCN = """
model = nn.Sequential(
    nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
    nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
    nn.Conv2d(8, nclasses, 1),
)
loss = nn.CrossEntropyLoss()
"""


def _triangles(root, count=48, size=16, seed=0):
    """Outlined triangles (input) and paletted filled-triangle class maps (0 background, 1 triangle)."""
    rng = np.random.default_rng(seed)
    (root / "feat").mkdir(parents=True)
    (root / "lab").mkdir()
    for i in range(count):
        tri = (rng.uniform(size=6) * size).tolist()
        image = Image.new("L", (size, size), 255)
        ImageDraw.Draw(image).polygon(tri, outline=0)
        image.save(root / "feat" / f"{i:04d}.png")
        label = Image.new("P", (size, size), 0)
        label.putpalette(PALETTE)
        draw = ImageDraw.Draw(label)
        draw.polygon(tri, fill=1, outline=1)
        label.save(root / "lab" / f"{i:04d}.png")
    (root / "classes.txt").write_text("background\ntriangle\n")


def test_dry_run_uses_the_label_shape():
    source = "import torch.nn as nn\n" + FCN
    with pytest.raises(dw.NetworkError):  # 1-D class labels: not what a per-pixel loss takes
        build_network(source, (1, 8, 8), 2)
    net = build_network(source, (1, 8, 8), 2, label_shape=(8, 8, 1))
    out = net.module(torch.zeros(2, 1, 8, 8), torch.zeros(2, 8, 8, dtype=torch.long))
    assert out.output.shape == (2, 2, 8, 8) and "accuracy" in out.metrics


def test_segmentation_trains_and_infers(tmp_path):
    _triangles(tmp_path)
    ds = dw.datasets.segmentation("tri-seg", str(tmp_path / "feat"), str(tmp_path / "lab"), val_percent=25,
                                  class_labels_file=str(tmp_path / "classes.txt"), seed=0)
    assert ds.wait(60) == "Done"
    assert ds.nclasses == 2 and ds.palette[:6] == PALETTE[:6]
    model = dw.train(ds, "import torch.nn as nn\n" + FCN, "fcn-seg", epochs=4, batch_size=8, solver="adam",
                     lr=0.01, seed=0, device="cpu")
    assert model.wait(120) == "Done", model.error

    labels = ds.open_db("val", "labels")
    y = np.stack([np.asarray(labels[i]).reshape(16, 16) for i in range(len(labels))])
    majority = max(float((y == k).mean()) for k in (0, 1))
    val = [json.loads(line) for line in model.path("metrics.jsonl").read_text().splitlines()]
    val = [e for e in val if e.get("phase") == "val"]
    assert "accuracy" in val[-1], val[-1]
    assert val[-1]["accuracy"] > majority, (val[-1], majority)

    pred = model.infer(str(tmp_path / "feat" / "0000.png"))
    assert pred.outputs.shape == (1, 2, 16, 16)
    from digits_widgets.ui.views.segmentation import SegmentationView, class_map, palette_for
    classes, thresholded = class_map(pred.outputs[0])
    assert classes.shape == (16, 16) and not thresholded
    colours = palette_for(model.dataset, "dataset", 2)
    assert tuple(colours[1]) == (255, 0, 0)
    view = SegmentationView(model.dataset)
    assert view.class_names() == ["background", "triangle"]
    view.render(pred, 0)
    assert view.summary(pred, 0).startswith("classes ")


def test_model_form_visualizes_a_per_pixel_network_on_a_segmentation_dataset(tmp_path):
    """The form's Visualize builds as training does: class-map labels, so a per-pixel loss checks out."""
    from digits_widgets.ui.model_form import CUSTOM, ModelForm
    _triangles(tmp_path, count=8)
    ds = dw.datasets.segmentation("tri-seg-form", str(tmp_path / "feat"), str(tmp_path / "lab"), val_percent=25,
                                  class_labels_file=str(tmp_path / "classes.txt"), seed=0)
    assert ds.wait(60) == "Done"
    form = ModelForm(dataset=ds)
    form.custom.value = "import torch.nn as nn\n" + FCN
    form.network_tabs.selected_index = CUSTOM
    form.visualize()
    assert form.summary.summary is not None, form.summary.error
    assert form.summary.summary.output_shape == "1×2×16×16"
    assert form.summary.graph is not None
