"""Visualisation views and the layers view on hand-made predictions: no training, milliseconds each.

The canvas tests record what ipycanvas would send to the browser (the manager's ``_send_custom``) and
decode it, so they check the real draw commands: one batched message, the input as PNG bytes, the caret's
points and colour, and a replay when the front end says ``client_ready`` (a page reload).
"""
from __future__ import annotations

import io
from types import SimpleNamespace

import ipycanvas.canvas as ipc
import ipywidgets as w
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from digits_widgets.infer.predict import Prediction
from digits_widgets.infer.probes import probe
from digits_widgets.ui.layers_view import LayersView, code_probe, has_tiles
from digits_widgets.ui.views import close_tree, default_view, make_view, view_classes
from digits_widgets.ui.views.classification import bars_html, report_html, top_k
from digits_widgets.ui.views.gradients import arrow_geometry
from digits_widgets.ui.views.image import output_image
from digits_widgets.ui.views.segmentation import class_map, overlay


def dataset(task="generic", label_shape=None, labels=(), palette=None, class_names=None):
    return SimpleNamespace(task=task, label_shape=label_shape, labels=list(labels), palette=palette,
                           class_names=class_names)


def prediction(inputs, outputs, tensors=None) -> Prediction:
    inputs, outputs = np.asarray(inputs), np.asarray(outputs, np.float32)
    if tensors is None:
        tensors = torch.from_numpy(inputs.astype(np.float32))[:, None]
    return Prediction(inputs, tensors, outputs, [f"#{i}" for i in range(len(inputs))])


def png_size(data) -> tuple[int, int]:
    return Image.open(io.BytesIO(bytes(data))).size


@pytest.fixture
def sent(monkeypatch):
    """Decoded canvas messages: a list of messages, each a list of (command name, args, buffers)."""
    messages: list[list[tuple]] = []

    def record(command, buffers=[]):  # noqa: B006 - ipycanvas' own signature
        cmds = command if command and isinstance(command[0], list) else [command]
        pos, decoded = 0, []
        for c in cmds:
            n = c[2] if len(c) > 2 else 0
            decoded.append((ipc._CMD_LIST[c[0]], c[1], buffers[pos:pos + n]))
            pos += n
        messages.append(decoded)
    monkeypatch.setattr(ipc._CANVAS_MANAGER, "_send_custom", record)
    return messages


def points(arg, buffers) -> np.ndarray:
    return np.frombuffer(bytes(buffers[arg["idx"]]), dtype=arg["dtype"]).reshape(arg["shape"])


# ---- gradients -------------------------------------------------------------------------------------
def test_arrow_geometry_is_the_digits_formula():
    a = arrow_geometry(0.5, 0.5, 16, 16, 80)   # grad (8, 8), arrow (6.4, 6.4), rot90 (-8, 8)
    assert np.allclose(a.tip, (11.2, 11.2)) and np.allclose(a.tail, (4.8, 4.8))
    assert np.allclose(a.acw, (4.0, 5.6)) and np.allclose(a.cw, (5.6, 4.0))
    b = arrow_geometry(0.25, -0.5, 32, 16, 100)  # grad (8, -8), centre (16, 8), rot90 (8, 8)
    assert np.allclose(b.tip, (20, 4)) and np.allclose(b.tail, (12, 12))
    assert np.allclose(b.acw, (12.8, 12.8)) and np.allclose(b.cw, (11.2, 11.2))
    assert np.allclose(arrow_geometry(0.5, 0.5, 16, 16, 40).tip, (9.6, 9.6))   # size scales the arrow


def test_gradients_view_draws_image_and_caret_in_one_message_and_replays_on_client_ready(sent):
    image = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (16, 1))   # brighter to the right
    view = make_view("Gradients", dataset("regression", (2,)))
    widget = view.render(prediction([image], [[0.5, 0.0]]), 0)
    assert "gx = 0.5000, gy = 0.0000" in widget.children[1].value
    assert len(sent) == 1   # hold_canvas: everything in one message
    names = [c[0] for c in sent[0]]
    assert names[0] == "switchCanvas" and "putImageData" in names and "fillPolygon" in names
    put = next(c for c in sent[0] if c[0] == "putImageData")
    assert png_size(put[2][0]) == (256, 256)   # the 16x16 input, enlarged, as PNG bytes
    assert ["set", [ipc.Canvas.ATTRS["fill_style"], "#ff0000"]] in [[c[0], c[1]] for c in sent[0]]
    fill = next(c for c in sent[0] if c[0] == "fillPolygon")
    expected = arrow_geometry(0.5, 0.0, 16, 16, 80).scaled(16, 16)
    assert np.allclose(points(fill[1][0], fill[2]), [expected.acw, expected.tip, expected.cw])
    assert expected.tip[0] > expected.tail[0]   # toward the light
    canvas = view.last.canvas
    canvas._handle_frontend_event(None, {"event": "client_ready"}, [])   # a page reload
    assert len(sent) == 2 and [c[0] for c in sent[1]] == names
    view.colour.value = "blue"
    view.render(prediction([image], [[0.5, 0.0]]), 0, size=128)
    assert ["set", [ipc.Canvas.ATTRS["fill_style"], "#0000ff"]] in [[c[0], c[1]] for c in sent[-1]]
    assert png_size(next(c for c in sent[-1] if c[0] == "putImageData")[2][0]) == (128, 128)


def test_gradients_view_explains_outputs_it_cannot_draw():
    widget = make_view("Gradients").render(prediction([np.zeros((4, 4), np.uint8)], [[0.3]]), 0)
    assert "two outputs" in widget.value


# ---- image ---------------------------------------------------------------------------------------
def test_output_image_conversions_as_digits():
    out = np.array([[[-10.0, 0.0], [100.0, 300.0]]])
    assert output_image(out, "clip").tolist() == [[0, 0], [100, 255]]
    assert output_image(out, "normalize").tolist() == [[0, 8], [90, 255]]   # (x - min) / (max - min) * 255
    chw = np.stack([np.full((2, 2), v) for v in (10.0, 20.0, 30.0)])
    assert output_image(chw, "clip")[0, 0].tolist() == [10, 20, 30]
    assert output_image(chw, "clip", channel_order="bgr")[0, 0].tolist() == [30, 20, 10]
    assert output_image(chw.transpose(1, 2, 0), "clip", data_order="hwc")[0, 0].tolist() == [10, 20, 30]
    with pytest.raises(ValueError, match="Unhandled number of channels: 2"):
        output_image(np.zeros((2, 4, 4)))


def test_image_view_defaults_to_clip_for_processing_and_falls_back_to_numbers():
    assert make_view("Image", dataset("processing")).pixel_conversion.value == "clip"
    view = make_view("Image", dataset("generic"))
    assert view.pixel_conversion.value == "normalize"
    shown = view.render(prediction([np.zeros((8, 8), np.uint8)], [np.full((1, 8, 8), 7.0)]), 0, size=64)
    assert png_size(shown.children[1].value) == (64, 64)
    fallback = view.render(prediction([np.zeros((8, 8), np.uint8)], [[1.5, 2.5]]), 0)
    assert "not an image" in fallback.children[0].value and "1.5" in fallback.children[1].value


# ---- segmentation -------------------------------------------------------------------------------
def test_class_map_argmax_and_threshold():
    scores = np.zeros((3, 2, 2))
    scores[2, 0, 0] = scores[1, 1, 1] = 1
    classes, thresholded = class_map(scores)
    assert classes.tolist() == [[2, 0], [0, 1]] and not thresholded
    single = np.array([[[0.0, 200.0], [100.0, 255.0]]])
    assert class_map(single)[0].tolist() == [[1, 0], [1, 0]] and class_map(single)[1]
    assert class_map(single, foreground="above")[0].tolist() == [[0, 1], [0, 1]]
    assert class_map(single, threshold=50)[0].tolist() == [[1, 0], [0, 0]]


def test_overlay_blends_by_opacity_and_resizes_the_mask():
    image = np.full((4, 4), 100, np.uint8)
    colours = np.zeros((256, 3), np.uint8)
    colours[1] = (200, 0, 0)
    classes = np.array([[1, 0], [0, 0]])   # 2x2 output over a 4x4 input
    out = overlay(image, classes, colours, 0.5)
    assert out[0, 0].tolist() == [150, 50, 50] and out[3, 3].tolist() == [50, 50, 50]
    masked = overlay(image, classes, colours, 1.0, mask=classes > 0)
    assert masked[1, 1].tolist() == [200, 0, 0] and masked[3, 3].tolist() == [100, 100, 100]


def test_segmentation_view_legend_uses_palette_and_class_names():
    palette = [0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (768 - 9)
    view = make_view("Segmentation", dataset("segmentation", palette=palette, class_names=["bg", "cat", "dog"]))
    scores = np.zeros((3, 4, 4))
    scores[1, :2] = 1
    widget = view.render(prediction([np.zeros((4, 4), np.uint8)], [scores]), 0, size=64)
    legend = widget.children[-1].value
    assert "Class #0 (bg)" in legend and "Class #1 (cat)" in legend and "dog" not in legend
    assert "rgb(255, 0, 0)" in legend
    assert view.summary(prediction([np.zeros((4, 4), np.uint8)], [scores]), 0) == "classes 0, 1"


def test_segmentation_view_thresholds_one_channel_and_shows_the_output_too():
    view = make_view("Segmentation", dataset("processing"))
    out = np.full((1, 8, 8), 255.0)
    out[0, :4, :4] = 0.0   # a dark quarter: the foreground of the triangles tutorial
    widget = view.render(prediction([np.zeros((8, 8), np.uint8)], [out]), 0, size=64)
    assert len(widget.children) == 3   # segmentation, output (clip), legend
    assert "foreground: output &lt; 127.5 (25.0% of pixels)" in widget.children[-1].value
    seg = np.asarray(Image.open(io.BytesIO(bytes(widget.children[0].children[1].value))).convert("RGB"))
    assert seg[0, 0].tolist() == [128, 0, 128] and seg[-1, -1].tolist() == [0, 0, 0]   # opacity 0.5


# ---- classification and raw -------------------------------------------------------------------
def test_top_k_softmax_with_names():
    top = top_k(np.log([0.1, 0.6, 0.3]), ["a", "b", "c"], 2)
    assert top == [("b", 60.0), ("c", 30.0)]
    assert "b</td>" in bars_html(top) and "60.00%" in bars_html(top)


def test_classification_view_and_report():
    view = make_view("Classification", dataset("classification", labels=[f"class {i}" for i in range(7)]))
    pred = prediction([np.zeros((4, 4), np.uint8)], [np.arange(7.0)])
    html_text = view.render(pred, 0).value
    assert html_text.count("<tr>") == 5 and "class 6" in html_text and "class 1<" not in html_text
    assert view.summary(pred, 0).startswith("class 6 (")
    report = {"accuracy": 0.5, "top5_accuracy": 1.0, "classes": ["x", "y"], "confusion": np.array([[1, 1], [0, 0]])}
    text = report_html(report)
    assert "50.00%" in text and "100.00%" in text and ">x</th>" in text and "50.0%" in text


def test_raw_view_prints_numbers():
    view = make_view("Raw")
    pred = prediction([np.zeros((4, 4), np.uint8)], [[0.123456, -2.5]])
    assert "0.1235" in view.render(pred, 0).value and "shape 2" in view.render(pred, 0).value
    view.precision.value = 2
    assert "0.12" in view.text(pred, 0) and "0.1235" not in view.text(pred, 0)


def test_default_views_and_option_listeners():
    assert list(view_classes()) == ["Image", "Gradients", "Segmentation", "Classification", "Raw"]
    assert default_view(dataset("regression", (2,))) == "Gradients"
    assert default_view(dataset("regression", (3,))) == "Raw"
    assert default_view(dataset("processing")) == "Image"
    assert default_view(dataset("segmentation")) == "Segmentation"
    assert default_view(dataset("classification")) == "Classification"
    calls = []
    view = make_view("Segmentation")
    view.observe(lambda: calls.append(1))
    view.opacity.value = 0.9
    assert calls == [1]
    with pytest.raises(ValueError, match="Unknown visualisation"):
        make_view("Bounding boxes")


# ---- layers ---------------------------------------------------------------------------------------
def small_probes(model: nn.Module, shape=(1, 1, 8, 8)):
    torch.manual_seed(0)
    x = torch.rand(shape)
    return probe(model, model, x), x


def test_layers_view_rows_histograms_and_tiles():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 3))
    probes, x = small_probes(model)
    view = LayersView(probes, per_page=3)
    assert view.pages == 3 and len(view.page_rows) == 3
    seen = []
    for page in range(view.pages):
        view.show_page(page)
        for row in view.page_rows:
            assert int(np.sum(row.hist.y)) == int(np.isfinite(row.probe.data).sum()) == row.probe.data.size
            assert (row.tile is not None) == has_tiles(row.probe)
            seen.append(row.probe.name)
    assert seen == [p.name for p in probes]
    assert has_tiles(probes[0]) and has_tiles(next(p for p in probes if p.name == "0.weight"))
    assert not has_tiles(next(p for p in probes if p.name == "3.weight"))   # fc weights are not images
    assert "Total learned parameters:</b> 811" in view.total.value   # 4*9+4 + 256*3+3
    assert view.next.disabled and not view.prev.disabled


def test_layers_view_shows_code_and_reconstruction_for_an_autoencoder():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 5), nn.ReLU(), nn.Linear(5, 64), nn.Unflatten(1, (1, 8, 8)))
    probes, x = small_probes(model)
    assert code_probe(probes).name == "2"   # the last of the smallest activations: after the ReLU
    with torch.no_grad():
        out = model(x).numpy()
    pred = Prediction(np.zeros((1, 8, 8), np.uint8), x, out, ["#0"])
    view = LayersView(probes, pred)
    assert list(view.strip_panels) == ["Original", "Normalised input", "Code: 2 (5 units)", "Reconstruction"]
    same = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 1, 3, padding=1))   # image to image, no
    probes, x = small_probes(same)                                                        # narrower layer
    with torch.no_grad():
        out = same(x).numpy()
    view = LayersView(probes, Prediction(np.zeros((1, 8, 8), np.uint8), x, out, ["#0"]))
    assert list(view.strip_panels) == ["Original", "Normalised input", "Output"]


def test_close_tree_closes_nested_widgets():
    inner = w.HTML("x")
    box = w.VBox([w.HBox([inner])])
    close_tree(box)
    assert inner.comm is None and box.comm is None
