"""train/setup.py: one job → run setup, the same for training, inference, the magic's check and the form."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from digits_widgets.errors import NetworkError
from digits_widgets.train.options import TrainOptions
from digits_widgets.train.setup import RunSetup, check_first_batch, setup_for_dataset, setup_network

SEEN: dict = {}


def _torch7(params):
    SEEN["params"] = dict(params)
    c, h, w = params["input_shape"]
    return {"model": nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 2)), "loss": nn.MSELoss(),
            "crop_len": 4, "train_batch_size": 6, "validation_batch_size": 3,
            "fine_tune_hook": lambda m: nn.Sequential(m, nn.Tanh())}


def test_the_network_settings_are_the_defaults_and_the_options_win() -> None:
    s = setup_network(_torch7, (1, 8, 8), 0, TrainOptions(device="cpu"))
    assert isinstance(s, RunSetup)
    assert s.image_shape == (1, 8, 8) and s.input_shape == (1, 4, 4) and s.crop == 4
    assert (s.batch_size, s.val_batch_size, s.ngpus) == (6, 3, 0) and SEEN["params"]["ngpus"] == 0
    s = setup_network(_torch7, (1, 8, 8), 0, TrainOptions(device="cpu", crop=6, batch_size=4, params={"k": 1}))
    assert s.input_shape == (1, 6, 6) and s.crop == 6 and (s.batch_size, s.val_batch_size) == (4, 3)
    assert s.params == {"ngpus": 0, "k": 1} and SEEN["params"]["k"] == 1
    s = setup_network(_torch7, (1, 8, 8), 0, follow_crop=False)   # Visualize at the given shape
    assert s.input_shape == (1, 8, 8) and s.crop is None
    with pytest.raises(AttributeError):
        s.crop = 3   # frozen


def test_ngpus_follows_the_training_device(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert setup_network(_torch7, (1, 4, 4)).ngpus == 2                       # device='auto'
    assert setup_network(_torch7, (1, 4, 4), options=TrainOptions(device="cpu")).ngpus == 0


def test_the_fine_tune_hook_applies_only_to_a_run_from_pretrained_weights() -> None:
    plain = setup_network(_torch7, (1, 4, 4), 0, TrainOptions(device="cpu"))
    assert plain.tuned() is plain
    tuned = setup_network(_torch7, (1, 4, 4), 0, TrainOptions(device="cpu", pretrained="x.pt")).tuned()
    assert isinstance(tuned.module.inner[-1], nn.Tanh) and tuned.network.fine_tune_hook is None


FCN = '''
model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1))
loss = nn.CrossEntropyLoss()
'''


def test_a_segmentation_dataset_gives_class_maps_cropped_as_the_images() -> None:
    ds = SimpleNamespace(feature_shape=(12, 12, 1), label_shape=(12, 12, 1), task="segmentation", nclasses=2)
    s = setup_for_dataset(ds, FCN, TrainOptions(crop=8), name="fcn")
    assert s.input_shape == (1, 8, 8) and s.label_shape == (12, 12, 1) and s.nclasses == 2
    out = check_first_batch(s.network, torch.zeros(2, 1, 8, 8), torch.zeros(2, 8, 8, dtype=torch.long))
    assert out.output.shape == (2, 2, 8, 8)
    with pytest.raises(NetworkError, match="does not build"):   # class indices: not for a per-pixel loss
        setup_for_dataset(SimpleNamespace(feature_shape=(12, 12, 1), label_shape=None, task="classification",
                                          nclasses=2), FCN)


def test_the_first_batch_names_the_shapes() -> None:
    s = setup_network("model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))\nloss = nn.MSELoss()\n", (1, 4, 4))
    with pytest.raises(NetworkError, match=r"input batch \(2, 1, 4, 4\).*labels \(2, 2\), network output \(2, 3\)"):
        check_first_batch(s.network, torch.zeros(2, 1, 4, 4), torch.zeros(2, 2))


NGPUS_NET = '''
def network(params):
    layers = [nn.Flatten(), nn.Linear(64, 2)]
    model = nn.Sequential(nn.Sequential(*layers)) if params['ngpus'] > 1 else nn.Sequential(*layers)
    return {'model': model, 'loss': nn.MSELoss()}
'''

TUNED_NET = '''
def network(params):
    return {'model': nn.Sequential(nn.Flatten(), nn.Linear(64, 2)), 'loss': nn.MSELoss(),
            'fine_tune_hook': lambda m: nn.Sequential(m, nn.Linear(2, 2))}
'''


def test_inference_builds_the_network_training_built(monkeypatch) -> None:
    from support import gradients_dataset

    from digits_widgets.infer.predict import Predictor
    from digits_widgets.train.launch import train

    ds = gradients_dataset("setup-grads", 32, 16)
    cpu = train(ds, NGPUS_NET, "ngpus", epochs=1, batch_size=16, device="cpu")
    assert cpu.wait(120) == "Done", cpu.error
    base = train(ds, "model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))\nloss = nn.MSELoss()\n", "base",
                 epochs=1, batch_size=16, device="cpu")
    assert base.wait(120) == "Done", base.error
    tuned = train(ds, TUNED_NET, "tuned", epochs=1, batch_size=16, device="cpu", pretrained=base.id)
    assert tuned.wait(120) == "Done", tuned.error
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)   # the kernel sees GPUs; training used none
    pred = Predictor(cpu, device="cpu")
    assert pred.setup.ngpus == 0 and pred.predict([torch.zeros(8, 8).numpy()]).outputs.shape == (1, 2)
    pred = Predictor(tuned, device="cpu")   # the snapshot has the fine-tune hook's layers
    assert isinstance(pred.module.inner[-1], nn.Linear) and pred.module.inner[-1].in_features == 2


def test_visualize_builds_once_at_the_trainers_shape_with_the_forms_crop() -> None:
    from digits_widgets.nets.graph_trace import INPUT_ID
    from digits_widgets.ui.network_summary import NetworkSummaryView

    view = NetworkSummaryView()
    summary = view.show(FCN, (1, 12, 12), 2, label_shape=(12, 12, 1), crop=8)   # class maps cropped too
    assert summary is not None, view.error
    assert summary.input_shape == (1, 8, 8) and summary.output_shape == "1×2×8×8"
    node = next(n for n in view.graph.graph["nodes"] if n["id"] == INPUT_ID)
    assert node["shape"] == [1, 8, 8], "the graph is of the same build as the table"
