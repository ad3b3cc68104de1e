"""DIGITS classification datasets registered as they are (Images > Other with labels.txt).

The DIGITS job is written on disk the way DIGITS' tools/create_db.py writes one: ``train_db/`` and ``val_db/``
LMDBs of Datums carrying the class in ``label``, keys ``'%08d_%d' % (index, label)``, ``labels.txt`` at the job
root and the mean in ``train_db/mean.binaryproto``. Half of the Datums come from this package's encoder and
half from protobuf's own (the message classes of conftest's ``caffe_pb``), raw (CHW bytes) in one DB and PNG
in the other. The images are scikit-learn's handwritten digits upscaled to 28x28 with Pillow.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

import digits_widgets as dw
from digits_widgets.data.tutorial_data import DIGIT_NAMES, load_digits_28
from digits_widgets.store.datum import array_to_datum, encode_datum
from digits_widgets.store.lmdb_db import LmdbWriter

PER_CLASS = (24, 16)   # train, val images per digit: 240 / 160 in all
CLASS_NAMES = [f"{d} {name}" for d, name in enumerate(DIGIT_NAMES)]   # what class folders "0_zero".. give
EPOCHS = 6


@pytest.fixture(scope="module")
def digits():
    """{'train': (images, labels), 'val': (images, labels)}: the first images of each digit, interleaved."""
    images, labels = load_digits_28()
    rng = np.random.default_rng(0)
    out = {"train": ([], []), "val": ([], [])}
    for d in range(10):
        idx = np.flatnonzero(labels == d)
        for split, (lo, hi) in (("train", (0, PER_CLASS[0])), ("val", (PER_CLASS[0], sum(PER_CLASS)))):
            out[split][0].extend(images[idx[lo:hi]])
            out[split][1].extend([d] * (hi - lo))
    for split, (ims, labs) in out.items():
        order = rng.permutation(len(ims))   # DIGITS shuffles the list it writes
        out[split] = (np.stack(ims)[order], np.array(labs)[order])
    return out


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _protobuf_datum(caffe_pb, image: np.ndarray, label: int, encoded: bool) -> bytes:
    d = caffe_pb.Datum(channels=1, height=image.shape[0], width=image.shape[1], label=int(label))
    if encoded:
        d.data, d.encoded = _png(image), True
    else:
        d.data = image[None].tobytes()   # CHW
    return d.SerializeToString()


def write_digits_job(root, data, caffe_pb, *, labels=CLASS_NAMES, encodings=("png", "none"), mean=True):
    """A DIGITS classification dataset job directory; returns its root."""
    for split, encoding in zip(("train", "val"), encodings):
        images, targets = data[split]
        with LmdbWriter(root / f"{split}_db") as db:
            for i, (image, label) in enumerate(zip(images, targets)):
                if i % 2:   # every other Datum from protobuf itself, not from our encoder
                    value = _protobuf_datum(caffe_pb, image, label, encoding == "png")
                else:
                    value = encode_datum(array_to_datum(image, label=int(label),
                                                        encoding=None if encoding == "none" else encoding))
                db.put("%08d_%d" % (i, label), value)
    if labels is not None:
        (root / "labels.txt").write_text("".join(f"{name}\n" for name in labels))
    if mean:
        m = np.around(data["train"][0].astype(np.float64).mean(0))
        blob = caffe_pb.BlobProto(num=1, channels=1, height=28, width=28, data=m.ravel().tolist())
        (root / "train_db" / "mean.binaryproto").write_bytes(blob.SerializeToString())
    return root


def write_class_folders(root, data):
    """The same images as class folders: <root>/<split>/<d>_<name>/<n>.png."""
    for split, (images, targets) in data.items():
        for i, (image, label) in enumerate(zip(images, targets)):
            folder = root / split / f"{label}_{DIGIT_NAMES[label]}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{i:05d}.png")
    return root


@pytest.fixture
def one_thread():
    """LeNet on 240 digits is too small for intra-op threads: on a shared 2-core box they cost 5x the time."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _val_accuracy(ds) -> float:
    model = dw.train(ds, dw.zoo.source("lenet"), f"lenet on {ds.name}", epochs=EPOCHS, batch_size=16, lr=0.01,
                     seed=0, device="cpu")
    assert model.wait(120) == "Done", model.error
    return model.metrics("val")[-1]["accuracy"]


def _leftovers(job) -> set[str]:
    return {p.name for p in job.dir.iterdir()} - {"job.json", "job.log", "create.log"}


def test_digits_db_trains_lenet_like_a_dataset_made_here(tmp_path, digits, caffe_pb, one_thread):
    src = write_digits_job(tmp_path / "digits-job", digits, caffe_pb)
    ds = dw.datasets.generic("digits db", str(src / "train_db"), val_features=str(src / "val_db"),
                             labels_file=True)
    assert ds.wait(60) == "Done"
    assert ds.task == "classification" and ds.labels == CLASS_NAMES and ds.nclasses == 10
    assert ds.info["labels_file"] == str(src / "labels.txt")
    assert ds.mean_path == src / "train_db" / "mean.binaryproto"       # found beside the DB
    assert ds.count("train") == 240 and ds.count("val") == 160
    assert not (ds.dir / "train_db").exists(), "registered as they are: nothing copied"
    image, name = ds.samples("val", 1, 1)[0]
    np.testing.assert_array_equal(image, digits["val"][0][1])          # a protobuf-built raw Datum
    assert name == CLASS_NAMES[digits["val"][1][1]]

    folders = write_class_folders(tmp_path / "folders", digits)
    here = dw.datasets.classification("digits here", str(folders / "train"), val_folder=str(folders / "val"),
                                      image_size=28, channels=1, pct_val=0, seed=0)
    assert here.wait(60) == "Done"
    assert here.labels == CLASS_NAMES and here.count("train") == 240 and here.count("val") == 160
    np.testing.assert_array_equal(ds.mean(), here.mean())

    ours, theirs = _val_accuracy(here), _val_accuracy(ds)
    assert ours > 0.6, f"LeNet should learn the digits here ({ours:.3f})"
    assert abs(ours - theirs) <= 0.06, f"DIGITS DB {theirs:.3f} vs dataset made here {ours:.3f}"


def test_without_labels_file_the_db_is_unlabelled_images_with_a_note(tmp_path, digits, caffe_pb):
    src = write_digits_job(tmp_path / "job", digits, caffe_pb)
    ds = dw.datasets.generic("ae input", str(src / "train_db"), mean_file=str(src / "train_db" / "mean.binaryproto"))
    assert ds.wait(60) == "Done"
    assert ds.task == "generic" and ds.nclasses == 0 and ds.labels == []
    note = ds.info["note"]
    assert "DIGITS classification DB" in note and str(src / "labels.txt") in note and "labels_file" in note
    assert note in ds.summary() and note in (ds.dir / "create.log").read_text()

    (src / "labels.txt").unlink()
    bare = dw.datasets.generic("no labels.txt", str(src / "train_db"))
    assert bare.wait(60) == "Done" and "labels_file=<its labels.txt" in bare.info["note"]
    with pytest.raises(dw.DatasetError) as err:
        dw.datasets.generic("asked", str(src / "train_db"), labels_file=True).wait(60)
    assert str(src / "train_db") in str(err.value) and str(src) in str(err.value)
    assert err.value.field == "labels_file"


def test_a_generic_features_db_gets_no_note(grads):
    ds = dw.datasets.generic("gradients images", str(grads.db_path("train")))
    assert ds.wait(60) == "Done" and "note" not in ds.info


@pytest.mark.parametrize("case", ["fewer classes", "label db too", "one class", "missing file"])
def test_refusals_name_the_cause_and_write_nothing(tmp_path, digits, caffe_pb, case):
    src = write_digits_job(tmp_path / "job", digits, caffe_pb, encodings=("none", "png"))
    before = sorted(str(p.relative_to(src)) for p in src.rglob("*"))
    labels_file = str(src / "labels.txt")
    kw: dict = {"val_features": str(src / "val_db")}
    if case == "fewer classes":
        (src / "short.txt").write_text("".join(f"{n}\n" for n in CLASS_NAMES[:9]))
        labels_file = str(src / "short.txt")
        before.append("short.txt")
        needles = ["label 9", "names only 9 classes", labels_file, "_9'"]
    elif case == "label db too":
        kw["train_labels"] = str(src / "val_db")
        needles = ["labels_file", "train_labels", "one or the other"]
    elif case == "one class":
        one = {"train": (digits["train"][0][:5], np.ones(5, int)), "val": digits["val"]}
        src = write_digits_job(tmp_path / "one", one, caffe_pb)
        before = sorted(str(p.relative_to(src)) for p in src.rglob("*"))
        labels_file, kw = str(src / "labels.txt"), {}
        needles = ["every entry", "label 1", "at least two classes", "train_labels"]
    else:
        labels_file = str(src / "nope.txt")
        needles = ["does not exist", labels_file]
    job = dw.datasets.generic("bad", str(src / "train_db"), labels_file=labels_file, **kw)
    with pytest.raises(dw.DatasetError) as err:
        job.wait(60)
    assert job.status == "Error"
    for needle in needles:
        assert needle in str(err.value) and needle in job.error, (needle, str(err.value))
    assert _leftovers(job) == set(), "nothing written to a job that failed"
    assert "task" not in job.info and "splits" not in job.info
    assert sorted(str(p.relative_to(src)) for p in src.rglob("*")) == sorted(before), "the user's files are untouched"


def test_datum_label_wins_over_a_key_that_disagrees(tmp_path, digits, caffe_pb):
    src = write_digits_job(tmp_path / "job", digits, caffe_pb)
    image = digits["train"][0][0]
    with LmdbWriter(src / "train_db") as db:   # same index, key says 7, Datum says 2: Caffe reads the Datum
        db.put("%08d_%d" % (0, 7), encode_datum(array_to_datum(image, label=2)))
    before = len(dw.open_db(src / "train_db"))
    ds = dw.datasets.generic("odd keys", str(src / "train_db"), labels_file=str(src / "labels.txt"))
    assert ds.wait(60) == "Done" and ds.count("train") == before
    log = (ds.dir / "create.log").read_text()
    assert "'00000000_7' holds label 2" in log and "Datum's label is used" in log


def test_datasets_made_here_keep_the_mean_where_digits_does(tmp_path, digits):
    folders = write_class_folders(tmp_path / "folders", {"train": digits["train"]})
    ds = dw.datasets.classification("c", str(folders / "train"), image_size=28, channels=1, pct_val=25, seed=0)
    assert ds.wait(60) == "Done"
    root, in_db = ds.dir / "mean.binaryproto", ds.dir / "train_db" / "mean.binaryproto"
    assert root.is_file() and in_db.is_file()
    assert in_db.read_bytes() == root.read_bytes()
    assert len(dw.open_db(ds.dir / "train_db")) == ds.count("train"), "the mean file does not disturb the LMDB"
    # and a DIGITS user registering this job's DB from the Other tab gets its classes and mean back
    again = dw.datasets.generic("again", str(ds.dir / "train_db"), labels_file=True)
    assert again.wait(60) == "Done" and again.labels == ds.labels and again.mean_path == in_db
    assert again.parents == [ds.id]

    grads = dw.datasets.gradients("g", train_count=8, val_count=2, image_size=4, seed=0)
    assert grads.wait(60) == "Done"
    assert (grads.dir / "train_db" / "mean.binaryproto").read_bytes() == (grads.dir / "mean.binaryproto").read_bytes()
