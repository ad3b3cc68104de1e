"""Download Model (issue 13): a trained job's archive, opened with dw.load_model where no job exists."""
from __future__ import annotations

import json
import shutil
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

import digits_widgets as dw
from digits_widgets.nets import caffe, torch7
from support import TOWER_REGRESSION

pytestmark = pytest.mark.slow


def _class_folders(root, size=28):
    """Three classes of 28x28 grey images: bright top, bright left, dark, with noise."""
    rng = np.random.default_rng(0)
    for name, where in (("top", np.s_[:14, :]), ("left", np.s_[:, :14]), ("dark", np.s_[:0, :0])):
        for i in range(6):
            img = rng.integers(0, 60, (size, size)).astype(np.uint8)
            img[where] += 180
            (root / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / name / f"{i}.png")
    return root


@pytest.fixture
def regression(grads):
    job = dw.train(grads, TOWER_REGRESSION, "reg / tiny", epochs=2, batch_size=16, solver="adam", lr=0.01, seed=0)
    assert job.wait(120) == "Done", job.error
    return job


@pytest.fixture(params=["caffe", "torch"])
def lenet(request, tmp_path):
    """DIGITS' standard LeNet as a Caffe prototxt or as Torch7 Lua, trained one epoch on 28x28 grey classes."""
    if request.param == "torch":
        pytest.importorskip("lupa")
    ds = dw.datasets.classification("grey", str(_class_folders(tmp_path / "classes")), image_size=28, channels=1,
                                    pct_val=25, seed=0)
    assert ds.wait(60) == "Done", ds.error
    text = (caffe if request.param == "caffe" else torch7).standard_network("lenet")
    job = dw.train(ds, text, f"{request.param} lenet", epochs=1, batch_size=6, seed=0)
    assert job.wait(120) == "Done", job.error
    return job, request.param


def _move_jobs_away(job, tmp_path, monkeypatch):
    """No jobs directory left: the archive alone must do."""
    shutil.rmtree(job.dir.parent)
    monkeypatch.setenv("DIGITS_JOBS_DIR", str(tmp_path / "elsewhere"))
    assert not job.dir.exists()


def test_download_tar_and_zip_load_without_the_jobs(regression, tmp_path, monkeypatch):
    job = regression
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (8, 8), dtype=np.uint8) for _ in range(5)]
    want = job.infer(images).outputs
    first = job.infer(images, snapshot=1).outputs
    assert not np.allclose(first, want, atol=1e-3), "the two snapshots differ, so the archives' do too"
    (tmp_path / "out").mkdir()
    tgz = job.download(tmp_path / "out")   # a folder: the default name in it
    assert tgz == tmp_path / "out" / "reg_tiny-epoch-2.tar.gz"
    zipped = job.download(tmp_path / "model.zip", snapshot=1)
    with tarfile.open(tgz) as t:
        names = set(t.getnames())
        info = json.load(t.extractfile("info.json"))
    assert names == {"info.json", "network.py", "epoch_0002.pt", "mean.binaryproto"}
    assert zipfile.ZipFile(zipped).namelist()[0] == "info.json"
    assert info["epoch"] == 2 and info["framework"] == "pytorch" and info["options"]["epochs"] == 2
    assert info["dataset"]["feature_shape"] == [8, 8, 1] and info["dataset"]["label_shape"] == [2]
    assert set(info["versions"]) == {"digits_widgets", "torch", "python"}
    _move_jobs_away(job, tmp_path, monkeypatch)

    model = dw.load_model(tgz)
    np.testing.assert_allclose(model.infer(images).outputs, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(dw.load_model(zipped).infer(images).outputs, first, rtol=1e-6, atol=1e-6)
    assert model.epoch == 2 and "reg / tiny" in repr(model)
    with pytest.raises(dw.JobError, match="only the snapshot of epoch 2"):
        model.snapshot_path(1)


def test_caffe_and_lua_classifiers_archive_their_text_labels_and_mean(lenet, tmp_path, monkeypatch):
    job, framework = lenet
    images = sorted((tmp_path / "classes").rglob("*.png"))[:4]
    want = job.infer(images).outputs
    tops = job.classify(images, top=2)
    path = job.download(tmp_path / "lenet.zip")
    network = {"caffe": "network.prototxt", "torch": "network.lua"}[framework]
    with zipfile.ZipFile(path) as z:
        assert {network, "labels.txt", "mean.binaryproto", "epoch_0001.pt"} <= set(z.namelist())
        assert z.read(network).decode() == job.network_source()
        assert z.read("labels.txt").decode() == "dark\nleft\ntop\n"
        assert json.loads(z.read("info.json"))["dataset"]["labels"] == ["dark", "left", "top"]
    _move_jobs_away(job, tmp_path, monkeypatch)
    model = dw.load_model(path)
    assert model.framework == framework
    np.testing.assert_allclose(model.infer(images).outputs, want, rtol=1e-5, atol=1e-5)
    assert model.classify(images, top=2) == tops


def test_bad_archives_say_what_is_wrong(regression, tmp_path):
    with pytest.raises(dw.JobError, match="does not exist"):
        dw.load_model(tmp_path / "nope.tar.gz")
    text = tmp_path / "notes.tar.gz"
    text.write_text("not an archive")
    with pytest.raises(dw.JobError, match="notes.tar.gz is not a model archive: it is neither"):
        dw.load_model(text)
    bare = tmp_path / "bare.zip"
    with zipfile.ZipFile(bare, "w") as z:
        z.writestr("network.py", "x = 1")
    with pytest.raises(dw.JobError, match=r"bare.zip has no info.json.*holds: network.py"):
        dw.load_model(bare)
    good = regression.download(tmp_path / "good.zip")
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(tmp_path / "nosnap.zip", "w") as dst:
        for name in src.namelist():
            if not name.endswith(".pt"):
                dst.writestr(name, src.read(name))
    with pytest.raises(dw.JobError, match="nosnap.zip lacks epoch_0002.pt"):
        dw.load_model(tmp_path / "nosnap.zip")
    with pytest.raises(dw.JobError, match="format must be one of tar.gz, zip"):
        regression.download(tmp_path / "m.rar", format="rar")


def test_a_network_given_as_an_object_needs_it_again(grads, tmp_path):
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    job = dw.train(grads, (net, nn.MSELoss()), "object", epochs=1, batch_size=16, seed=0)
    assert job.wait(120) == "Done", job.error
    path = job.download(tmp_path / "object.tar.gz")
    with pytest.raises(dw.JobError, match=r"given as a Python object.*network=\.\.\."):
        dw.load_model(path)
    x = np.full((8, 8), 100, np.uint8)
    model = dw.load_model(path, network=nn.Sequential(nn.Flatten(), nn.Linear(64, 2)))
    np.testing.assert_allclose(model.infer(x).outputs, job.infer(x).outputs, rtol=1e-6, atol=1e-6)


def test_the_training_panel_download_button_writes_an_archive_that_loads(regression, tmp_path, monkeypatch):
    from digits_widgets.ui.pump import Pump
    from digits_widgets.ui.training_panel import TrainingPanel

    job = regression
    monkeypatch.chdir(job.dir.parent)      # JupyterLab's root: the link is files/<job id>/<archive>
    panel = TrainingPanel(job, pump=Pump(find_loop=lambda: None))
    panel.download_button.click()
    path = job.dir / "reg_tiny-epoch-2.tar.gz"
    assert path.is_file()
    assert f"href='files/{job.id}/reg_tiny-epoch-2.tar.gz'" in panel.message.value
    assert str(path.resolve()) in panel.message.value
    x = np.arange(64, dtype=np.uint8).reshape(8, 8)
    np.testing.assert_allclose(dw.load_model(path).infer(x).outputs, job.infer(x).outputs, rtol=1e-6, atol=1e-6)
    panel.close()

    empty = dw.train(job.dataset, TOWER_REGRESSION, "never trained", start=False)
    panel = TrainingPanel(empty, pump=Pump(find_loop=lambda: None))
    panel.download_button.click()
    assert "has no snapshot yet" in panel.message.value and "color:#c62828" in panel.message.value
    assert not list(empty.dir.glob("*.tar.gz"))
    panel.close()
