"""LMDB reader/writer: key order, map growth, disk errors, bad paths, pickling, DIGITS-written databases."""
from __future__ import annotations

import errno
import gc
import multiprocessing
import os
import pickle

import lmdb
import numpy as np
import pytest
from PIL import Image

from digits_widgets.errors import DatumError, DbError
from digits_widgets.store.datum import Datum, array_to_datum, encode_datum
from digits_widgets.store.lmdb_db import (LmdbReader, LmdbWriter, classification_key, generic_key, key_index,
                                          open_db, read_mean, write_mean)


def gray(i: int, h: int = 4, w: int = 3) -> np.ndarray:
    return np.full((h, w), i % 256, np.uint8)


def test_key_formats():
    assert classification_key(12, 3) == "00000012_3"
    assert generic_key(12) == "000000012"
    assert key_index("00000012_3") == 12 and key_index(b"000000012") == 12 and key_index("12") == 12
    assert key_index("abc") is None and key_index(b"") is None and key_index("_1") is None


def test_plain_str_keys_come_in_numeric_order(tmp_path):
    with LmdbWriter(tmp_path / "db", batch_size=7) as w:
        for i in range(121):
            w.put_datum(str(i), array_to_datum(gray(i), label=i % 5))
    assert w.count == 121
    with open_db(tmp_path / "db") as r:
        assert len(r) == 121
        assert [r.key(i) for i in range(12)] == [str(i) for i in range(12)]
        assert [int(a[0, 0]) for a in r] == list(range(121))
        assert r.label(7) == 2 and r.key(-1) == "120" and r[-1][0, 0] == 120
        assert r.shape == (4, 3)
        with pytest.raises(IndexError):
            r[121]


@pytest.mark.parametrize("make_key", [lambda i: classification_key(i, i % 3), generic_key])
def test_digits_key_formats_read_back_in_order(tmp_path, make_key):
    with LmdbWriter(tmp_path / "db") as w:
        for i in range(30, -1, -1):
            w.put_datum(make_key(i), array_to_datum(gray(i)))
    r = LmdbReader(tmp_path / "db")
    assert [r.key(i) for i in range(31)] == [make_key(i) for i in range(31)]


def test_keys_without_index_keep_byte_order(tmp_path):
    with LmdbWriter(tmp_path / "db") as w:
        for k in ["b", "a", "10", "c"]:
            w.put(k, encode_datum(array_to_datum(gray(1))))
    assert [LmdbReader(tmp_path / "db").key(i) for i in range(4)] == ["10", "a", "b", "c"]


def test_map_grows_from_a_tiny_map(tmp_path):
    value = encode_datum(array_to_datum(np.random.default_rng(0).integers(0, 256, (40, 40, 3), np.uint8)))
    with LmdbWriter(tmp_path / "db", map_size=32 << 10, batch_size=64) as w:
        for i in range(800):  # ~3.8 MB
            w.put(generic_key(i), value)
    r = LmdbReader(tmp_path / "db")
    assert len(r) == 800 and r.raw(799) == value
    assert os.path.getsize(tmp_path / "db" / "data.mdb") > 3 << 20


def test_max_map_size_caps_growth(tmp_path):
    w = LmdbWriter(tmp_path / "db", map_size=32 << 10, max_map_size=256 << 10, batch_size=10)
    with pytest.raises(DbError, match=r"Database .*db is full at 0.25 MB"):
        for i in range(1000):
            w.put(generic_key(i), b"x" * 4000)
    with pytest.raises(DbError, match="closed"):
        w.put("more", b"x")
    w.close()


class _FailingEnv:
    """Stands in for an lmdb Environment whose writes fail like a full disk."""

    def __init__(self, env: lmdb.Environment, exc: Exception):
        self.env, self.exc = env, exc

    def begin(self, **kwargs):
        raise self.exc

    def close(self) -> None:
        self.env.close()


@pytest.mark.parametrize("exc", [lmdb.DiskError("MDB_DISK: mdb_txn_commit: No space left on device"),
                                 OSError(errno.ENOSPC, "No space left on device")])
def test_disk_full_is_a_db_error_naming_the_path(tmp_path, exc):
    w = LmdbWriter(tmp_path / "db", batch_size=2)
    w.put("0", b"a")
    w._env = _FailingEnv(w._env, exc)
    with pytest.raises(DbError, match="No space left") as info:
        w.put("1", b"b")
    message = str(info.value)
    assert str(tmp_path / "db") in message and "check free disk space" in message
    w.close()  # already closed: no second error
    with pytest.raises(DbError, match="closed"):
        w.put("2", b"c")


def test_exception_inside_with_drops_buffered_puts(tmp_path):
    with pytest.raises(RuntimeError, match="user bug"):
        with LmdbWriter(tmp_path / "db", batch_size=3) as w:
            for i in range(5):
                w.put(str(i), encode_datum(array_to_datum(gray(i))))
            raise RuntimeError("user bug")
    assert len(LmdbReader(tmp_path / "db")) == 3  # the first full batch was committed, the rest dropped


def test_bad_paths_are_db_errors(tmp_path):
    with pytest.raises(DbError, match="does not exist"):
        LmdbReader(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(DbError, match="is not an LMDB database"):
        LmdbReader(tmp_path / "plain")
    (tmp_path / "notes.txt").write_text("hello, not a database\n" * 200)
    with pytest.raises(DbError, match="is not an LMDB database"):
        LmdbReader(tmp_path / "notes.txt")
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "data.mdb").write_bytes(b"\0" * 8192)
    with pytest.raises(DbError, match="is not an LMDB database"):
        LmdbReader(tmp_path / "fake")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DbError, match="Cannot create LMDB"):
        LmdbWriter(tmp_path / "afile")


def test_data_mdb_file_path_opens(tmp_path):
    with LmdbWriter(tmp_path / "db") as w:
        w.put_datum("0", array_to_datum(gray(5)))
    assert LmdbReader(tmp_path / "db" / "data.mdb")[0][0, 0] == 5


def _write_rgb_db(path, n: int = 10) -> None:
    with LmdbWriter(path) as w:
        for i in range(n):
            w.put_datum(generic_key(i), array_to_datum(np.full((2, 3, 3), (i, 2 * i, 3 * i), np.uint8), label=i))


def test_pickles_for_dataloader_workers(tmp_path):
    _write_rgb_db(tmp_path / "db")
    r = LmdbReader(tmp_path / "db")
    before = r[3]
    clone = pickle.loads(pickle.dumps(r))
    np.testing.assert_array_equal(clone[3], before)
    assert len(clone) == 10 and clone.label(4) == 4


_FORKED: LmdbReader | None = None


def _sum_in_child(i: int) -> int:
    return int(_FORKED[i].sum())


def test_reader_opened_before_fork_works_in_children(tmp_path):
    global _FORKED
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    _write_rgb_db(tmp_path / "db")
    _FORKED = LmdbReader(tmp_path / "db")
    expected = [int(_FORKED[i].sum()) for i in range(10)]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        assert pool.map(_sum_in_child, range(10)) == expected
    assert [int(_FORKED[i].sum()) for i in range(10)] == expected  # the parent's env still works
    _FORKED.close()


def test_read_batch(tmp_path):
    _write_rgb_db(tmp_path / "db")
    r = LmdbReader(tmp_path / "db")
    batch = r.read_batch([0, 9, -2])
    assert batch.shape == (3, 2, 3, 3) and batch.dtype == np.uint8
    np.testing.assert_array_equal(batch[1, 0, 0], [9, 18, 27])
    np.testing.assert_array_equal(batch[2], r[8])
    with LmdbWriter(tmp_path / "mixed") as w:
        w.put_datum("0", array_to_datum(gray(1, 4, 3)))
        w.put_datum("1", array_to_datum(gray(1, 5, 3)))
    with pytest.raises(DbError, match=r"'0' is uint8\(4, 3\) but entry '1' is uint8\(5, 3\)"):
        LmdbReader(tmp_path / "mixed").read_batch([0, 1])


def test_empty_and_closed_reader(tmp_path):
    LmdbWriter(tmp_path / "db").close()
    r = LmdbReader(tmp_path / "db")
    assert len(r) == 0
    with pytest.raises(DbError, match="is empty"):
        r.shape
    r.close()
    r.close()
    _write_rgb_db(tmp_path / "db2")
    r = LmdbReader(tmp_path / "db2")
    r.close()
    with pytest.raises(DbError, match="closed"):
        r[0]


def test_reads_a_db_written_with_protobuf_like_digits(tmp_path, caffe_pb):
    """Values serialised by protobuf (as DIGITS/Caffe do) under create_db.py keys."""
    env = lmdb.open(str(tmp_path / "db"), map_size=1 << 24, map_async=True, max_dbs=0)
    images = np.random.default_rng(3).integers(0, 256, (12, 5, 6, 3), np.uint8)
    with env.begin(write=True) as txn:
        for i, img in enumerate(images):
            chw_bgr = img[..., ::-1].transpose(2, 0, 1)
            m = caffe_pb.Datum(channels=3, height=5, width=6, data=chw_bgr.tobytes(), label=i % 4)
            txn.put(classification_key(i, i % 4).encode(), m.SerializeToString())
        m = caffe_pb.Datum(channels=1, height=1, width=2, label=0)
        m.float_data.extend([0.5, -0.25])
        txn.put(b"vector", m.SerializeToString())
    env.close()
    r = LmdbReader(tmp_path / "db")
    assert len(r) == 13  # 'vector' has no index: raw byte order, where digits sort first
    np.testing.assert_array_equal(r.read_batch(range(12)), images)
    assert [r.label(i) for i in range(12)] == [i % 4 for i in range(12)]
    np.testing.assert_array_equal(r[12], np.float32([0.5, -0.25]))


def test_db_written_here_parses_with_protobuf(tmp_path, caffe_pb):
    _write_rgb_db(tmp_path / "db", n=3)
    env = lmdb.open(str(tmp_path / "db"), readonly=True, lock=False)
    with env.begin() as txn:
        m = caffe_pb.Datum.FromString(txn.get(generic_key(2).encode()))
    env.close()
    assert (m.channels, m.height, m.width, m.label) == (3, 2, 3, 2)
    assert m.data[:6] == bytes([6]) * 6  # blue plane first


def test_mean_files(tmp_path):
    mean = np.random.default_rng(4).uniform(0, 255, (6, 7, 3)).astype(np.float32)
    write_mean(tmp_path / "mean.binaryproto", mean, png_path=tmp_path / "mean.png")
    np.testing.assert_array_equal(read_mean(tmp_path / "mean.binaryproto"), mean)
    png = np.asarray(Image.open(tmp_path / "mean.png"))
    np.testing.assert_array_equal(png, np.around(mean).astype(np.uint8))
    assert not list(tmp_path.glob("*.tmp")), "no temporary file left behind"

    write_mean(tmp_path / "gray.binaryproto", mean[..., 0], png_path=tmp_path / "gray.png")
    assert read_mean(tmp_path / "gray.binaryproto").shape == (6, 7, 1)
    assert Image.open(tmp_path / "gray.png").mode == "L"

    with pytest.raises(DbError, match="does not exist"):
        read_mean(tmp_path / "nope.binaryproto")
    (tmp_path / "bad.binaryproto").write_bytes(b"\x2a\x05abc")
    with pytest.raises(DatumError):
        read_mean(tmp_path / "bad.binaryproto")
    with pytest.raises(DbError, match="check free disk space"):
        write_mean(tmp_path / "no" / "dir" / "mean.binaryproto", mean)


def test_writer_values_are_plain_datums(tmp_path):
    with LmdbWriter(tmp_path / "db") as w:
        w.put_datum(b"000000000", Datum(1, 1, 2, float_data=np.float32([1, 2])))
    assert LmdbReader(tmp_path / "db").datum(0).float_data.tolist() == [1.0, 2.0]


def test_readers_of_one_path_share_an_env_and_writers_wait_for_them(tmp_path):
    _write_rgb_db(tmp_path / "db", n=4)
    a, b = LmdbReader(tmp_path / "db"), LmdbReader(tmp_path / "db" / ".." / "db")
    a.close()
    np.testing.assert_array_equal(b[1], LmdbReader(tmp_path / "db")[1])  # b's env outlives a.close()
    with pytest.raises(DbError, match="close the readers of it first"):
        LmdbWriter(tmp_path / "db")
    b.close()
    gc.collect()  # the unnamed reader above released its env when collected
    _write_rgb_db(tmp_path / "db", n=6)
    assert len(LmdbReader(tmp_path / "db")) == 6
    with LmdbWriter(tmp_path / "db2") as w:
        w.put_datum("0", array_to_datum(gray(1)))
        w.flush()
        with pytest.raises(DbError, match="open for writing in this process"):
            LmdbReader(tmp_path / "db2")
