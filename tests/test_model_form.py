"""The model form: DIGITS' defaults, the live learning-rate curve, the network tabs, Visualize, Create, Clone."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import digits_widgets as dw
from digits_widgets.nets import zoo
from digits_widgets.nets.network import build_network
from digits_widgets.ui.model_form import CUSTOM, PREVIOUS, ModelForm, standard_networks
from digits_widgets.ui.pump import get_pump
from support import gradients_dataset

BROKEN = '''
class UserModel(Tower):
    @model_property
    def inference(self):
        x = digits.flatten(self.x)
        return x.view(3, -1, 7)   # the line at fault

    @model_property
    def loss(self):
        return digits.mse_loss(self.inference, self.y)
'''


@pytest.fixture
def digits_ds(tmp_path):
    """A tiny two-class 28x28 gray classification dataset (LeNet's shape)."""
    rng = np.random.default_rng(0)
    for cls in ("even", "odd"):
        (tmp_path / "img" / cls).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8)).save(tmp_path / "img" / cls / f"{i}.png")
    ds = dw.datasets.classification("digits", str(tmp_path / "img"), image_size=28, channels=1, pct_val=25)
    ds.wait(60)
    return ds


def test_defaults_are_digits_and_train_options():
    form = ModelForm()
    assert dw.TrainOptions(**form.options()) == dw.TrainOptions()
    f = form.fields
    assert (f["epochs"].value, f["lr"].value, f["policy"].value, f["solver"].value) == (30, 0.01, "step", "sgd")
    assert (f["step_size"].value, f["gamma"].value) == (33.0, 0.1)
    assert (f["snapshot_interval"].value, f["val_interval"].value, f["batch_size"].value) == (1.0, 1.0, None)
    assert (f["mean"].value, f["flip"].value, f["hsv"].value, f["device"].value) == ("image", "none", False, "auto")
    assert f["gpus"].value == 1 and f["pretrained"].value is None
    assert not f["hsv_h"].visible and not f["rms_decay"].visible and not f["power"].visible
    assert form.lr_editor.layout.display == "none", "advanced options are hidden until asked for"
    form.show_advanced.value = True
    assert form.lr_editor.layout.display is None
    f["solver"].value = "rmsprop"
    assert f["rms_decay"].visible and f["rms_decay"].value == 0.99


def test_lr_preview_follows_the_policy():
    form = ModelForm()
    lines = form.lr_editor.preview.lines
    x, y = dw.lr_curve(0.01, "step")
    np.testing.assert_allclose(lines.x, x)
    np.testing.assert_allclose(lines.y, y)
    form.fields["policy"].value = "exp"
    assert form.fields["gamma"].value == 0.95 and not form.fields["step_size"].visible
    np.testing.assert_allclose(lines.y, dw.lr_curve(0.01, "exp")[1])
    assert not np.allclose(lines.y, y)
    form.fields["gamma"].value = 0.9
    form.fields["lr"].value = 0.1
    np.testing.assert_allclose(lines.y, dw.lr_curve(0.1, "exp", gamma=0.9)[1])
    assert form.options()["gamma"] == 0.9
    form.fields["policy"].value = "multistep"
    assert form.fields["stepvalues"].value == "50,85" and form.fields["gamma"].value == 0.5
    np.testing.assert_allclose(lines.y, dw.lr_curve(0.1, "multistep")[1])
    form.fields["policy"].value = "exp"
    assert form.fields["gamma"].value == 0.9, "each policy keeps what the user typed for it"
    form.fields["gamma"].value = "abc"
    assert "Preview unchanged" in form.lr_editor.preview.message.value
    np.testing.assert_allclose(lines.y, dw.lr_curve(0.1, "exp", gamma=0.9)[1])


def test_standard_networks_depend_on_the_task(grads, digits_ds):
    assert standard_networks("regression") == ["gradients_regression"]
    assert standard_networks("processing") == ["segmentation_fcn", "srcnn"]
    assert set(standard_networks(None)) == set(zoo.STANDARD)
    form = ModelForm(dataset=grads)
    assert [v for _, v in form.standard.options] == ["gradients_regression"]
    form.fields["dataset"].value = digits_ds.id
    names = [v for _, v in form.standard.options]
    assert names[:3] == ["lenet", "alexnet", "googlenet"] and "gradients_regression" not in names
    assert form.standard.value == "lenet"
    form.visualize()
    summary = form.summary.summary
    assert summary.input_shape == (1, 28, 28) and summary.output_shape == "1×2"


def test_visualize_lists_layers_with_their_parameters(grads):
    form = ModelForm(dataset=grads)
    form.visualize()
    summary = form.summary.summary
    assert summary is not None, form.summary.error
    net = build_network(zoo.source("gradients_regression"), (1, 8, 8))
    total = sum(p.numel() for p in net.module.parameters())
    assert summary.total_params == total == sum(r.params for r in summary.rows) == 8 * 8 * 2 + 2
    assert [(r.name, r.type, r.output_shape) for r in summary.rows] == [("fc", "Linear", "1×2")]
    assert "Total parameters: 130" in form.summary.html.value


def test_visualize_shows_the_traceback_of_a_broken_network(grads):
    form = ModelForm(dataset=grads)
    form.custom.value = BROKEN
    form.network_tabs.selected_index = CUSTOM
    form.visualize()
    text = form.summary.error
    assert form.summary.summary is None
    assert 'File "<digits_model:network>", line 6, in inference' in text
    assert "return x.view(3, -1, 7)   # the line at fault" in text
    assert form.summary.html.value.startswith('<pre style="color:#c62828')
    assert "x.view(3, -1, 7)" in form.summary.html.value


def test_create_starts_the_job_with_the_form_options(grads):
    form = ModelForm(dataset=grads)
    f = form.fields
    f["name"].value, f["epochs"].value, f["batch_size"].value, f["seed"].value = "net", 1, 16, 3
    f["solver"].value, f["lr"].value, f["mean"].value = "adam", 0.005, "pixel"
    f["group"].value = "regressions"
    job = form.create()
    assert job is not None, form.message.value
    assert form.job is job and len(form.children) == 1 and form.children[0] is not None
    opts = job.params["options"]
    assert (opts["epochs"], opts["batch_size"], opts["seed"], opts["solver"], opts["lr"], opts["mean"]) == (
        1, 16, 3, "adam", 0.005, "pixel")
    assert job.network_source() == zoo.source("gradients_regression") and job.group == "regressions"
    assert ModelForm(clone=job).fields["group"].value == "regressions", "a clone stays in its group"
    assert job.wait(60) == "Done"
    get_pump().tick(force=True)

    again = ModelForm(dataset=grads)   # Previous: pick the job and its snapshot → fine-tuning
    again.network_tabs.selected_index = PREVIOUS
    assert again.previous.value == job.id
    assert ("Epoch #1", "1") in again.previous_snapshot.options
    again.previous_snapshot.value = "1"
    assert again.fields["pretrained"].value == f"{job.id}:1"
    assert again.fields["pretrained"].verdict.text == "found epoch_0001.pt"
    assert again.network_source() == job.network_source()


def test_bad_options_are_shown_next_to_their_field(grads):
    form = ModelForm(dataset=grads)
    assert form.create() is None
    assert "This field is required." in form.fields["name"].message_text
    form.fields["name"].value = "net"
    form.fields["epochs"].value = 0
    assert form.create() is None
    assert "at least 1" in form.fields["epochs"].message_text
    form.fields["epochs"].value = 1
    form.fields["policy"].value = "multistep"
    form.fields["stepvalues"].value = "60,20"
    assert form.create() is None
    assert "strictly increasing" in form.fields["stepvalues"].message_text
    assert form.show_advanced.value, "the advanced options open to show their error"
    assert "Step Values" in form.message.value
    assert dw.jobs("model") == []


def test_clone_prefills_every_field(grads):
    job = dw.train(grads, BROKEN.replace("x.view(3, -1, 7)", "x[:, :2]"), "orig", start=False, epochs=2,
                   lr=0.05, solver="nesterov", policy="inv", power=0.7, batch_size=8, seed=5, flip="fliplr",
                   hsv=True, hsv_v=0.1, crop=6, freeze="^fc", keep_last=2, val_interval=0.5)
    form = ModelForm(clone=job)
    f = form.fields
    assert f["dataset"].value == grads.id and f["name"].value == "orig (clone)"
    assert (f["epochs"].value, f["lr"].value, f["solver"].value, f["batch_size"].value, f["seed"].value) == (
        2, 0.05, "nesterov", 8, 5)
    assert (f["policy"].value, f["power"].value, f["gamma"].value) == ("inv", 0.7, 0.1)
    assert (f["flip"].value, f["hsv"].value, f["hsv_v"].value, f["crop"].value, f["freeze"].value) == (
        "fliplr", True, 0.1, 6, "^fc")
    assert f["hsv_v"].visible and form.show_advanced.value
    assert form.network_tabs.selected_index == CUSTOM and form.custom.value == job.network_source()
    assert dw.TrainOptions(**form.options()) == job.options, "including keep_last, which has no field"
    std = dw.train(grads, zoo.source("gradients_regression"), "std", start=False)
    assert ModelForm(clone=std).standard.value == "gradients_regression"



# ---- DIGITS' languages: the Custom Network sub-tabs and the Standard Networks' Caffe/Torch versions -----------
def _lenet_prototxt(outputs: int = 500) -> str:
    from digits_widgets.nets.caffe import standard_network

    return standard_network("lenet").replace("num_output: 500", f"num_output: {outputs}")


def test_custom_caffe_tab_visualizes_and_trains_the_prototxt(digits_ds):
    form = ModelForm(dataset=digits_ds)
    form.network_tabs.selected_index = CUSTOM
    form.custom.framework = "caffe"
    form.custom.texts["caffe"].value = _lenet_prototxt(64)
    form.visualize()
    assert form.summary.summary is not None, form.summary.error
    assert ("net.ip1", "InnerProduct", "1×64") in [(r.name, r.type, r.output_shape) for r in form.summary.summary.rows]
    f = form.fields
    f["name"].value, f["epochs"].value, f["batch_size"].value = "caffe-lenet", 1, 4
    job = form.create()
    assert job is not None, form.message.value + form.network_message.value
    assert job.wait(120) == "Done"
    assert job.network_source() == _lenet_prototxt(64)
    clone = ModelForm(clone=job)
    assert clone.network_tabs.selected_index == CUSTOM and clone.custom.framework == "caffe"
    assert clone.custom.value == _lenet_prototxt(64) and clone.custom.texts["pytorch"].value == ""


def test_text_in_the_wrong_sub_tab_is_refused_with_the_right_tab(digits_ds):
    form = ModelForm(dataset=digits_ds)
    form.network_tabs.selected_index = CUSTOM
    form.custom.framework = "caffe"
    form.custom.texts["caffe"].value = zoo.source("lenet")           # Python, in the Caffe tab
    form.fields["name"].value = "misplaced"
    before = len(dw.jobs("model"))
    assert form.create() is None
    assert "The Caffe tab holds text that reads as Python (PyTorch): paste it in the PyTorch tab" in (
        form.network_message.value)
    assert len(dw.jobs("model")) == before, "nothing is written for a network that was refused"
    form.custom.framework = "torch"
    form.custom.texts["torch"].value = _lenet_prototxt()
    form.visualize()
    assert "reads as a Caffe prototxt: paste it in the Caffe tab" in form.summary.html.value
    form.custom.framework = "pytorch"
    form.visualize()
    assert "Write a network in the Custom Network tab (PyTorch)" in form.summary.html.value


def test_standard_tab_offers_digits_caffe_and_torch_versions(digits_ds, grads):
    from digits_widgets.nets import torch7

    form = ModelForm(dataset=digits_ds)
    form.standard.value = "lenet"
    assert [v for _, v in form.standard_framework.options] == ["pytorch", "caffe", "torch"]
    assert form.standard_framework.layout.display is None
    form.standard_framework.value = "torch"
    assert form.network_source() == torch7.standard_network("lenet")
    form.network_tabs.children[0].children[-1].children[0].click()     # Customize
    assert form.network_tabs.selected_index == CUSTOM and form.custom.framework == "torch"
    assert form.custom.value == torch7.standard_network("lenet")
    form.standard.value = "autoencoder"                                  # PyTorch only
    assert form.standard_framework.value == "pytorch" and form.standard_framework.layout.display == "none"
    job = dw.train(digits_ds, zoo.source("lenet", "caffe"), "std-caffe", start=False)
    again = ModelForm(clone=job)
    assert (again.network_tabs.selected_index, again.standard.value, again.standard_framework.value) == (
        0, "lenet", "caffe")
    assert ModelForm(dataset=grads).standard_framework.layout.display == "none"


def test_caffemodel_field_is_the_pretrained_weights(digits_ds, tmp_path):
    first = dw.train(digits_ds, _lenet_prototxt(32), "caffe-first", epochs=1, batch_size=4)
    assert first.wait(120) == "Done"
    weights = first.export_caffemodel(tmp_path / "lenet.caffemodel")
    form = ModelForm(dataset=digits_ds)
    form.network_tabs.selected_index = CUSTOM
    form.custom.value = _lenet_prototxt(32)
    assert form.custom.framework == "caffe", "text goes to the sub-tab of its language"
    form.custom.caffemodel.value = str(weights)
    assert form.fields["pretrained"].value == str(weights)
    f = form.fields
    f["name"].value, f["epochs"].value, f["batch_size"].value = "caffe-tuned", 1, 4
    job = form.create()
    assert job is not None, form.message.value + form.network_message.value
    assert job.wait(120) == "Done"
    log = job.path("train.log").read_text()
    assert "ip1" in log and "loaded" in log.lower(), log[-2000:]


def test_torch_tab_says_when_lupa_is_missing(monkeypatch, digits_ds):
    from digits_widgets.nets import torch7
    from digits_widgets.ui import custom_network

    monkeypatch.setattr(custom_network, "lupa_installed", lambda: False)
    form = ModelForm(dataset=digits_ds)
    assert "pip install 'digits_widgets[torch7]'" in form.custom.tabs.children[2].children[0].value
    form.network_tabs.selected_index = CUSTOM
    form.custom.value = torch7.standard_network("lenet")
    form.visualize()
    assert "Torch7 Lua networks run with lupa, which is not installed" in form.summary.html.value
