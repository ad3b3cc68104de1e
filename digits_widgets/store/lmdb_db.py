"""LMDB databases of Caffe Datums, readable and writable by DIGITS.

The writer grows the map on its own (as DIGITS' create_db.py does) so users never meet MapFullError, and turns
disk trouble into a DbError that names the path. The reader lists keys once, in numeric order when the keys carry
an index, and survives pickling into DataLoader worker processes.
"""
from __future__ import annotations

import operator
import os
import re
import threading
from collections.abc import Iterable, Iterator

import lmdb
import numpy as np

from digits_widgets.errors import DbError
from digits_widgets.store.datum import (Datum, datum_to_array, decode_blobproto, decode_datum,
                                        encode_blobproto, encode_datum, encode_image)

_INDEX = re.compile(rb"[0-9]+")


def classification_key(index: int, label: int) -> str:
    """Key DIGITS' create_db.py writes for classification entries."""
    return "%08d_%d" % (index, label)


def generic_key(index: int) -> str:
    """Key DIGITS' create_generic_db.py writes for feature/label entries."""
    return "%09d" % index


def key_index(key: bytes | str) -> int | None:
    """Leading decimal index of a key ('00000012_3' → 12, '12' → 12); None when there is none."""
    if isinstance(key, str):
        key = key.encode("utf-8")
    m = _INDEX.match(key)
    return int(m.group()) if m else None


def _key_bytes(key: str | bytes) -> bytes:
    return key.encode("utf-8") if isinstance(key, str) else bytes(key)


class LmdbWriter:
    """Buffered LMDB writer: one transaction per ``batch_size`` puts; doubles the map when it fills up."""

    def __init__(self, path: str | os.PathLike, map_size: int = 64 << 20, batch_size: int = 256,
                 max_map_size: int | None = None):
        self.path = os.fspath(path)
        self.batch_size = max(1, int(batch_size))
        self.max_map_size = max_map_size
        self.count = 0
        self._batch: list[tuple[bytes, bytes]] = []
        try:
            os.makedirs(self.path, exist_ok=True)
            self._env: lmdb.Environment | None = lmdb.open(
                self.path, map_size=int(map_size), subdir=True, map_async=True, max_dbs=0, lock=True)
        except (lmdb.Error, OSError) as e:
            hint = "; close the readers of it first" if "already open" in str(e) else ""
            raise DbError(f"Cannot create LMDB {self.path}: {e}{hint}") from e

    def put(self, key: str | bytes, value: bytes) -> None:
        """Queue one entry; the batch is written once it holds ``batch_size`` entries."""
        if self._env is None:
            raise DbError(f"LMDB writer for {self.path} is closed")
        self._batch.append((_key_bytes(key), bytes(value)))
        if len(self._batch) >= self.batch_size:
            self.flush()

    def put_datum(self, key: str | bytes, datum: Datum) -> None:
        self.put(key, encode_datum(datum))

    def flush(self) -> None:
        """Write every queued entry in one transaction, growing the map as needed."""
        if not self._batch:
            return
        if self._env is None:
            raise DbError(f"LMDB writer for {self.path} is closed")
        batch, self._batch = self._batch, []
        try:
            while True:
                try:
                    with self._env.begin(write=True) as txn:
                        txn.cursor().putmulti(batch)
                    break
                except lmdb.MapFullError:
                    self._grow()
        except DbError:
            self._abandon()
            raise
        except (lmdb.Error, OSError) as e:
            self._abandon()
            raise DbError(f"Writing LMDB {self.path} failed: {e}; check free disk space "
                          "and write permission") from e
        self.count += len(batch)

    def _grow(self) -> None:
        current = self._env.info()["map_size"]
        new = current * 2
        if self.max_map_size is not None and new > self.max_map_size:
            if current >= self.max_map_size:
                raise DbError(f"Database {self.path} is full at {current / 2**20:g} MB (max_map_size); "
                              "raise max_map_size or write fewer entries")
            new = int(self.max_map_size)
        self._env.set_mapsize(new)

    def _abandon(self) -> None:
        """Drop queued entries and close without raising (used after a failure)."""
        self._batch = []
        env, self._env = self._env, None
        if env is not None:
            try:
                env.close()
            except lmdb.Error:
                pass

    def close(self) -> None:
        """Flush and close; safe to call twice."""
        if self._env is None:
            return
        self.flush()
        self._abandon()

    def __enter__(self) -> LmdbWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abandon()


# py-lmdb refuses to open one environment twice in a process, so readers of the same path share one env.
_SHARED: dict[tuple[str, bool], list] = {}  # (real path, subdir) -> [env, pid, users]
_SHARED_LOCK = threading.Lock()


def _new_lock_after_fork() -> None:
    """A lock held by another thread at fork time would never be released in the child."""
    global _SHARED_LOCK
    _SHARED_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock_after_fork)


def _acquire_env(path: str, subdir: bool) -> lmdb.Environment:
    """A read-only env for ``path`` shared by this process's readers; one inherited through fork is replaced."""
    key = (os.path.realpath(path), subdir)
    with _SHARED_LOCK:
        entry = _SHARED.get(key)
        if entry is not None and entry[1] == os.getpid():
            entry[2] += 1
            return entry[0]
        if entry is not None:  # opened by the parent before fork: LMDB envs must not cross fork
            try:
                entry[0].close()
            except lmdb.Error:
                pass
        try:
            env = lmdb.open(path, readonly=True, lock=False, readahead=False, subdir=subdir,
                            max_readers=2048, create=False)
        except lmdb.Error as e:
            if "already open" in str(e):
                raise DbError(f"{path} is open for writing in this process; close the writer first") from e
            raise DbError(f"{path} is not an LMDB database ({e})") from e
        _SHARED[key] = [env, os.getpid(), 1]
        return env


def _release_env(path: str, subdir: bool, env: lmdb.Environment) -> None:
    key = (os.path.realpath(path), subdir)
    with _SHARED_LOCK:
        entry = _SHARED.get(key)
        if entry is None or entry[0] is not env or entry[1] != os.getpid():
            return
        entry[2] -= 1
        if entry[2] <= 0:
            del _SHARED[key]
            env.close()


class LmdbReader:
    """Random access to an LMDB of Datums by position; keys are listed once at open."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._env: lmdb.Environment | None = None
        self._pid: int | None = None
        self._closed = False
        self._local = threading.local()
        if not os.path.exists(self.path):
            raise DbError(f"LMDB {self.path} does not exist")
        self._subdir = os.path.isdir(self.path)
        if self._subdir and not os.path.isfile(os.path.join(self.path, "data.mdb")):
            raise DbError(f"{self.path} is not an LMDB database (no data.mdb in the folder)")
        with self._environment().begin() as txn:
            keys = list(txn.cursor().iternext(keys=True, values=False))
        indices = [key_index(k) for k in keys]
        if keys and None not in indices:
            keys = [k for _, k in sorted(zip(indices, keys))]
        self._keys: list[bytes] = keys

    def _environment(self) -> lmdb.Environment:
        """The env for this process, reopened after fork or unpickling."""
        if self._closed:
            raise DbError(f"LMDB reader for {self.path} is closed")
        if self._env is None or self._pid != os.getpid():
            self._env = _acquire_env(self.path, self._subdir)
            self._pid = os.getpid()
        return self._env

    def _txn(self) -> lmdb.Transaction:
        """A read transaction per thread: LMDB transactions must not be shared between threads."""
        env = self._environment()
        local = self._local
        if getattr(local, "env", None) is not env:
            local.txn = env.begin()
            local.env = env
        return local.txn

    def _index(self, i: int) -> int:
        n = len(self._keys)
        j = operator.index(i)
        if j < 0:
            j += n
        if not 0 <= j < n:
            raise IndexError(f"index {i} out of range for {self.path} with {n} entries")
        return j

    def __len__(self) -> int:
        return len(self._keys)

    def key(self, i: int) -> str:
        return self._keys[self._index(i)].decode("utf-8", "replace")

    def raw(self, i: int) -> bytes:
        """The stored bytes of entry ``i``."""
        key = self._keys[self._index(i)]
        value = self._txn().get(key)
        if value is None:
            raise DbError(f"key {key!r} is listed but missing from {self.path} (was it rewritten?)")
        return value

    def datum(self, i: int) -> Datum:
        return decode_datum(self.raw(i))

    def __getitem__(self, i: int) -> np.ndarray:
        return datum_to_array(decode_datum(self.raw(i)))

    def label(self, i: int) -> int:
        return self.datum(i).label

    def read_batch(self, indices: Iterable[int]) -> np.ndarray:
        """Entries stacked along a new first axis; all must share shape and dtype."""
        idx = [self._index(i) for i in indices]
        if not idx:
            raise DbError(f"read_batch on {self.path} needs at least one index")
        first = self[idx[0]]
        out = np.empty((len(idx), *first.shape), first.dtype)
        out[0] = first
        for j, i in enumerate(idx[1:], 1):
            a = self[i]
            if a.shape != first.shape or a.dtype != first.dtype:
                raise DbError(f"{self.path}: entry {self.key(idx[0])!r} is {first.dtype}{first.shape} but "
                              f"entry {self.key(i)!r} is {a.dtype}{a.shape}; they cannot share a batch")
            out[j] = a
        return out

    @property
    def shape(self) -> tuple:
        """Shape of the first entry (HWC image, HW gray, or label vector)."""
        if not self._keys:
            raise DbError(f"LMDB {self.path} is empty")
        return self[0].shape

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self._keys)):
            yield self[i]

    def close(self) -> None:
        """Release the env (closed once no reader in this process uses it); safe to call twice."""
        env, self._env = self._env, None
        self._closed = True
        self._local = threading.local()
        if env is not None and self._pid == os.getpid():
            _release_env(self.path, self._subdir, env)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: module globals may already be gone
            pass

    def __enter__(self) -> LmdbReader:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.update(_env=None, _pid=None, _local=None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"LmdbReader({self.path!r}, {len(self._keys)} entries)"


def open_db(path: str | os.PathLike) -> LmdbReader:
    return LmdbReader(path)


def _atomic_write(path: str, data: bytes) -> None:
    """Write to ``<path>.tmp`` then rename, so readers never see half a file."""
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise DbError(f"Cannot write {path}: {e}; check free disk space and write permission") from e


def write_mean(path: str | os.PathLike, mean: np.ndarray, png_path: str | os.PathLike | None = None) -> None:
    """Save a mean image as mean.binaryproto (DIGITS layout), plus a viewable PNG when asked."""
    _atomic_write(os.fspath(path), encode_blobproto(mean))
    if png_path is not None:
        img = np.clip(np.around(np.asarray(mean, dtype=np.float64)), 0, 255).astype(np.uint8)
        _atomic_write(os.fspath(png_path), encode_image(img, "png"))


def read_mean(path: str | os.PathLike) -> np.ndarray:
    """mean.binaryproto → HWC float32 RGB (gray → (H, W, 1))."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError as e:
        raise DbError(f"Mean file {path} does not exist") from e
    except OSError as e:
        raise DbError(f"Cannot read mean file {path}: {e}") from e
    return decode_blobproto(data)


__all__ = ["classification_key", "generic_key", "key_index", "LmdbWriter", "LmdbReader", "open_db",
           "write_mean", "read_mean"]
