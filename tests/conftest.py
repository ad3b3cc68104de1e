"""Shared fixtures."""
from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest


@pytest.fixture(autouse=True)
def jobs_root(tmp_path, monkeypatch):
    """Each test gets its own empty jobs directory ($DIGITS_JOBS_DIR) and no live jobs left by another test."""
    root = tmp_path / "jobs"
    monkeypatch.setenv("DIGITS_JOBS_DIR", str(root))
    jobs = sys.modules.get("digits_widgets.store.jobs")
    if jobs is not None:
        jobs.Job._live.clear()
    yield root
    jobs = sys.modules.get("digits_widgets.store.jobs")
    if jobs is not None:
        jobs.Job._live.clear()


@pytest.fixture
def opened_job_files(monkeypatch):
    """The job.json files opened (for reading or writing) while the test runs, in order; ``clear()`` it to
    count from a later point."""
    import builtins

    paths: list[str] = []
    real_open = builtins.open

    def counting_open(file, *args, **kwargs):
        if str(file).endswith("job.json"):
            paths.append(str(file))
        return real_open(file, *args, **kwargs)
    monkeypatch.setattr(builtins, "open", counting_open)
    return paths


@pytest.fixture
def grads():
    """A small finished gradients dataset named "g" (64 train, 16 val, 8x8)."""
    from support import gradients_dataset

    return gradients_dataset()


def _build_caffe_messages() -> SimpleNamespace:
    """Caffe's Datum / BlobShape / BlobProto as real protobuf classes: an encoder independent of ours."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="dw_test_caffe.proto", package="dwtest", syntax="proto2")

    def message(name: str, fields: list[tuple]) -> None:
        msg = fdp.message_type.add(name=name)
        for fname, number, ftype, repeated, *extra in fields:
            f = msg.field.add(name=fname, number=number, type=ftype,
                              label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
            for option in extra:
                if option == "packed":
                    f.options.packed = True
                else:
                    f.type_name = option

    datum = [("channels", 1, F.TYPE_INT32, False), ("height", 2, F.TYPE_INT32, False),
             ("width", 3, F.TYPE_INT32, False), ("data", 4, F.TYPE_BYTES, False),
             ("label", 5, F.TYPE_INT32, False), ("float_data", 6, F.TYPE_FLOAT, True),
             ("encoded", 7, F.TYPE_BOOL, False)]
    message("Datum", datum)
    message("DatumPacked", datum[:5] + [("float_data", 6, F.TYPE_FLOAT, True, "packed"), datum[6]])
    message("DatumExtra", datum + [("x_varint", 8, F.TYPE_INT64, False), ("x_bytes", 9, F.TYPE_BYTES, False),
                                   ("x_fixed64", 10, F.TYPE_FIXED64, False),
                                   ("x_fixed32", 1000, F.TYPE_FIXED32, False)])
    message("BlobShape", [("dim", 1, F.TYPE_INT64, True, "packed")])
    message("BlobShapeUnpacked", [("dim", 1, F.TYPE_INT64, True)])
    blob = [("num", 1, F.TYPE_INT32, False), ("channels", 2, F.TYPE_INT32, False),
            ("height", 3, F.TYPE_INT32, False), ("width", 4, F.TYPE_INT32, False),
            ("data", 5, F.TYPE_FLOAT, True, "packed"), ("diff", 6, F.TYPE_FLOAT, True, "packed"),
            ("double_data", 8, F.TYPE_DOUBLE, True, "packed"), ("double_diff", 9, F.TYPE_DOUBLE, True, "packed")]
    message("BlobProto", blob + [("shape", 7, F.TYPE_MESSAGE, False, ".dwtest.BlobShape")])
    message("BlobProtoUnpacked", [(*f[:4],) for f in blob]
            + [("shape", 7, F.TYPE_MESSAGE, False, ".dwtest.BlobShapeUnpacked")])

    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    names = [m.name for m in fdp.message_type]
    return SimpleNamespace(**{n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"dwtest.{n}"))
                              for n in names})


@pytest.fixture(scope="session")
def caffe_pb() -> SimpleNamespace:
    """protobuf message classes for Caffe's Datum and BlobProto (plus packed/unpacked/extra-field variants)."""
    return _build_caffe_messages()
