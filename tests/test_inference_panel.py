"""InferencePanel on tiny trained models: the tutorials' Test one / Test a list / Test DB, python side.

Each test trains for one or two epochs on a few dozen images (seconds). Buttons are clicked as a person
would; errors would land in ``panel.error``, so every test checks it stays empty.
"""
from __future__ import annotations

import io
import re
from pathlib import Path

import ipycanvas.canvas as ipc
import numpy as np
import pytest
from PIL import Image

import digits_widgets as dw
from digits_widgets.data.generators import gradient_image
from digits_widgets.data.tutorial_data import write_digit_folders
from digits_widgets.store.datum import array_to_datum
from digits_widgets.store.lmdb_db import LmdbWriter, generic_key
from digits_widgets.ui.inference_panel import InferencePanel, read_image_list
from digits_widgets.ui.views.gradients import arrow_geometry


def captions(widget) -> list[str]:
    """The panel captions (``captioned``) under ``widget``, in display order."""
    found = []
    value = getattr(widget, "value", None)
    if isinstance(value, str):
        found += re.findall(r'<b style="font-size:12px">(.*?)</b>', value)
    for child in getattr(widget, "children", ()):
        found += captions(child)
    return found


def trained(dataset, network: str, name: str, **options):
    dataset.wait(raise_on_error=True)
    job = dw.train(dataset, dw.zoo.source(network), name, seed=0, **options)
    job.wait(raise_on_error=True)
    return job


@pytest.fixture
def canvas_messages(monkeypatch):
    """Names of the commands in each message the canvas manager would send to the browser."""
    messages: list[list[str]] = []

    def record(command, buffers=[]):  # noqa: B006 - ipycanvas' own signature
        cmds = command if command and isinstance(command[0], list) else [command]
        messages.append([ipc._CMD_LIST[c[0]] for c in cmds])
    monkeypatch.setattr(ipc._CANVAS_MANAGER, "_send_custom", record)
    return messages


@pytest.fixture
def digits(tmp_path):
    write_digit_folders(tmp_path / "digits", per_class=10)
    return dw.datasets.classification("digits", str(tmp_path / "digits"), image_size=28, channels=1)


def test_gradients_test_one_with_sliders_db_grid_and_layers(canvas_messages):
    ds = dw.datasets.gradients("g", train_count=64, val_count=16, image_size=(16, 16), seed=0)
    job = trained(ds, "gradients_regression", "r", epochs=2, batch_size=16)
    panel = InferencePanel(job)
    assert panel.view_picker.value == "Gradients" and panel.source.value == "Gradient"
    assert panel.snapshot.value == 2.0 and [v for _, v in panel.snapshot.options][:2] == [2.0, 1.0]
    assert panel.gradient_preview.value   # the test image, previewed before testing
    panel.slope_x.value, panel.slope_y.value = 0.5, 0.5
    panel.show_layers.value = True
    panel.test_one_button.click()
    assert panel.error.value == ""
    pred = panel.prediction
    assert np.array_equal(pred.inputs[0], gradient_image(0.5, 0.5, 16, 16)) and pred.outputs.shape == (1, 2)
    assert np.allclose(pred.outputs, job.infer(gradient_image(0.5, 0.5, 16, 16)).outputs, atol=1e-6)
    drawing = panel.view.last
    assert drawing.canvas in panel.results.children[1].children[0].children
    gx, gy = pred.outputs[0]
    expected = arrow_geometry(gx, gy, 16, 16, 80).scaled(16, 16)
    assert np.allclose(drawing.arrow, expected)
    assert any("putImageData" in m and "fillPolygon" in m for m in canvas_messages)
    # layer statistics from the same forward pass: one row per probe, histograms counting every value
    names = []
    for page in range(panel.layers.pages):
        panel.layers.show_page(page)
        for row in panel.layers.page_rows:
            assert int(np.sum(row.hist.y)) == row.probe.data.size
            names.append(row.probe.name)
    assert names == [p.name for p in panel.probes] == ["fc", "fc.weight", "fc.bias"]
    assert list(panel.layers.strip_panels) == ["Normalised input"]   # the gradients view draws the input
    layers = panel.layers
    panel.view.arrow_size.value = 100   # a re-render keeps the layer rows (and their page)
    assert panel.layers is layers and layers in panel.results.children and layers.comm is not None

    panel.tabs.selected_index = 2
    assert panel.db_path.value == str(ds.db_path("val"))
    panel.test_db_button.click()
    assert panel.error.value == "" and panel.prediction.outputs.shape == (16, 2)
    grid = panel.grid
    assert grid.pages == 2 and len(grid.cells.children) == 12 and grid.prev.disabled and not grid.next.disabled
    assert "truth: (" in grid.cells.children[0].children[0].value   # the label slopes
    grid.next.click()
    assert grid.page == 1 and len(grid.cells.children) == 4 and grid.next.disabled
    assert "Page 2 of 2" in grid.label.value
    before = len(canvas_messages)
    panel.view.colour.value = "green"   # an option change re-renders the grid without a forward pass
    assert panel.grid is not grid and len(canvas_messages) == before + 4 and panel.grid.page == 1
    panel.view_picker.value = "Raw"
    assert "shape 2" in panel.grid.cells.children[0].children[1].children[1].value


def test_processing_fcn_do_not_resize_grid_and_segmentation(tmp_path):
    paths = dw.generate_triangles(str(tmp_path / "t"), count=40, size=16, grid=2, seed=0)
    ds = dw.datasets.processing("tri", paths["input"], paths["target"], seed=0)
    job = trained(ds, "segmentation_fcn", "fcn", epochs=1, batch_size=8, mean="pixel", solver="adam", lr=1e-3)
    panel = InferencePanel(job)
    assert panel.view_picker.value == "Image" and panel.view.pixel_conversion.value == "clip"
    panel.source.value = "Path"
    panel.path.value = paths["grid"]
    panel.dont_resize.value = True
    panel.show_layers.value = True
    panel.test_one_button.click()
    assert panel.error.value == ""
    assert panel.prediction.inputs.shape == (1, 32, 32) and panel.prediction.outputs.shape == (1, 1, 32, 32)
    assert list(panel.layers.strip_panels) == ["Normalised input"]   # no code: not an AE
    assert captions(panel.results) == ["Input", "Output", "Normalised input"]   # each picture once
    assert [p.shape for p in panel.probes if p.kind == "activation"] == [(32, 32, 32), (1024, 2, 2), (1, 32, 32)]
    panel.show_layers.value = False
    panel.view_picker.value = "Segmentation"
    shown = panel.results.children[1].children[0]   # the segmentation view's HBox
    assert len(shown.children) == 3 and "foreground: output &lt; 127.5" in shown.children[-1].value
    assert panel.view.summary(panel.prediction, 0).startswith("foreground ")
    panel.dont_resize.value = False
    panel.test_one_button.click()
    assert panel.prediction.outputs.shape == (1, 1, 16, 16)
    panel.test_db_button.click()
    assert panel.error.value == "" and len(panel.grid.cells.children) == panel.prediction.outputs.shape[0]
    # the segmentation view overlays the input; with the Image view each card labels its input
    assert captions(panel.grid.cells.children[0]) == ["Segmentation", "Output (clip)"]
    panel.view_picker.value = "Image"
    assert all(captions(card) == ["Input", "Output"] for card in panel.grid.cells.children)
    assert "minmax(" in panel.grid.cells.layout.grid_template_columns   # equal columns, equal card widths
    panel.view_picker.value = "Segmentation"
    with LmdbWriter(tmp_path / "grid_db") as db:   # a DB of grid images: Test DB honours "do not resize"
        db.put_datum(generic_key(0), array_to_datum(np.asarray(Image.open(paths["grid"]))))
    panel.db_path.value = str(tmp_path / "grid_db")
    panel.dont_resize.value = True
    panel.test_db_button.click()
    assert panel.error.value == "" and panel.prediction.outputs.shape == (1, 1, 32, 32)


def test_classification_top5_list_with_labels_and_errors(tmp_path, digits):
    ds = digits
    job = trained(ds, "lenet", "lenet", epochs=1)
    panel = InferencePanel(job)
    assert panel.view_picker.value == "Classification" and panel.source.value == "Upload"
    image = next((tmp_path / "digits" / "3_three").iterdir())
    panel.source.value = "Path"
    panel.path.value = str(image)
    panel.test_one_button.click()
    assert panel.error.value == ""
    bars = panel.results.children[1].children[1].value
    assert bars.count("<tr>") == 5 and "%" in bars
    assert sum(name in bars for name in ds.labels) == 5   # class names, not indices

    upload = io.BytesIO()
    Image.open(image).convert("RGB").resize((40, 40)).save(upload, "PNG")   # other mode and size than the dataset
    panel.source.value = "Upload"
    data = upload.getvalue()
    panel.upload.set_state({"value": [{"name": "three.png", "type": "image/png", "size": len(data),   # as the
                                       "content": memoryview(data), "last_modified": 0}]})          # browser sends
    panel.test_one_button.click()
    assert panel.error.value == "" and panel.prediction.names == ["three.png"]
    assert panel.prediction.inputs.shape == (1, 28, 28)

    panel.test_list(str(tmp_path / "digits"), limit=None)   # class folders give the labels
    assert panel.error.value == "" and panel.report is not None
    assert panel.report["confusion"].sum() == 100 and panel.grid.pages == 9
    report = panel.results.children[0].value
    assert "Top-1 accuracy" in report and "true \\ predicted" in report and ">3 three</th>" in report

    listing = tmp_path / "val.txt"
    lines = [f"{p.relative_to(tmp_path / 'digits')} {d}" for d in (0, 7)
             for p in sorted((tmp_path / "digits" / f"{d}_{dw.data.tutorial_data.DIGIT_NAMES[d]}").iterdir())[:2]]
    listing.write_text("\n".join(lines) + "\n")
    assert read_image_list(listing, str(tmp_path / "digits"))[1] == [0, 0, 7, 7]
    panel.list_path.value, panel.list_folder.value = str(listing), str(tmp_path / "digits")
    panel.tabs.selected_index = 1
    panel.test_list_button.click()
    assert panel.error.value == "" and panel.report["confusion"].sum() == 4
    assert "truth: 7 seven" in panel.grid.cells.children[3].children[0].value

    panel.source.value = "Path"
    panel.path.value = str(tmp_path / "missing.png")
    panel.test_one_button.click()
    assert "missing.png" in panel.error.value and not panel.test_one_button.disabled


def test_autoencoder_shows_original_normalised_code_and_reconstruction(tmp_path, digits):
    digits.wait(raise_on_error=True)
    train_db = str(digits.db_path("train"))
    # the label is the input (label_hook); the features DB doubles as labels so every batch has a target
    ds = dw.datasets.generic("ae", train_db, train_labels=train_db, mean_file=str(digits.mean_path))
    job = trained(ds, "autoencoder", "ae", epochs=1)
    panel = InferencePanel(job)
    assert panel.view_picker.value == "Image"
    panel.show_layers.value = True
    panel.test_one(np.asarray(digits.samples("val", 0, 1)[0][0]), "val #0")
    assert panel.error.value == "" and panel.prediction.outputs.shape == (1, 1, 28, 28)
    assert list(panel.layers.strip_panels) == ["Normalised input", "Code: relu2 (50 units)"]
    # each picture once: the view's input and reconstruction (its output), then what the layers add
    assert captions(panel.results) == ["Input", "Output", "Normalised input", "Code: relu2 (50 units)"]
    assert [p.name for p in panel.probes if p.kind == "activation"][:3] == ["scale", "flatten", "fc1"]


def test_read_image_list_plain_paths_without_labels(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("b.png", "a.png"):
        (folder / name).write_bytes(b"")
    assert read_image_list(folder) == ([str(folder / "a.png"), str(folder / "b.png")], None)
    listing = tmp_path / "list.txt"
    listing.write_text("# comment\nimgs/a.png\nimgs/b.png 1\n")
    assert read_image_list(listing) == ([str(tmp_path / "imgs/a.png"), str(tmp_path / "imgs/b.png")], None)
    with pytest.raises(dw.OptionError):
        read_image_list(tmp_path / "nothing")
    assert Path(read_image_list(listing, str(folder.parent))[0][0]).name == "a.png"
