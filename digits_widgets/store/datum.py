"""Caffe ``Datum`` and ``BlobProto`` wire format, written by hand.

Every LMDB value DIGITS (or any Caffe tool) writes is a serialised ``Datum``; the mean file is a ``BlobProto``.
A small codec here keeps protobuf off the training data path and decodes a few hundred thousand datums a second.
Field numbers and conventions (CHW, BGR for colour, float_data for non-uint8) follow Caffe's ``caffe.proto``.
The wire format's primitives (varints, length prefixes, skipping unknown fields) are ``store/protowire.py``.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from digits_widgets.errors import DatumError
from digits_widgets.store.protowire import (check_int32, read_length, read_varint, skip_field, to_int32, to_int64,
                                            varint_bytes)

_F32LE = np.dtype("<f4")
_F64LE = np.dtype("<f8")
_SHORT_RUN = 16  # unpacked float runs longer than this are scanned with numpy


def _empty_floats() -> np.ndarray:
    return np.empty(0, np.float32)


@dataclass(slots=True)
class Datum:
    """One LMDB value: raw uint8 CHW pixels, encoded image bytes, or float values (CHW)."""

    channels: int = 0
    height: int = 0
    width: int = 0
    data: bytes = b""
    label: int = 0
    float_data: np.ndarray = field(default_factory=_empty_floats)
    encoded: bool = False


# ------------------------------------------------------------------------------------------ Datum helpers

def _float_run(buf: bytes, start: int, end: int) -> int:
    """Number of consecutive complete unpacked float_data entries (tag 0x35 + 4 bytes) from ``start``."""
    p, n = start, 0
    while n < _SHORT_RUN and p + 5 <= end and buf[p] == 0x35:
        p += 5
        n += 1
    if n == _SHORT_RUN and p + 5 <= end and buf[p] == 0x35:
        tags = np.ndarray(((end - p) // 5,), np.uint8, buf, p, (5,))
        bad = np.flatnonzero(tags != 0x35)
        n += int(bad[0]) if bad.size else tags.size
    return n


def _join_floats(chunks: list[np.ndarray]) -> np.ndarray:
    if not chunks:
        return _empty_floats()
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


# ------------------------------------------------------------------------------------------------------- Datum

def encode_datum(d: Datum) -> bytes:
    """Serialise like Caffe's SerializeToString: fields in number order, float_data unpacked."""
    parts = [b"\x08", varint_bytes(check_int32("channels", d.channels)),
             b"\x10", varint_bytes(check_int32("height", d.height)),
             b"\x18", varint_bytes(check_int32("width", d.width))]
    if d.data:
        data = bytes(d.data)
        parts += [b"\x22", varint_bytes(len(data)), data]
    parts += [b"\x28", varint_bytes(check_int32("label", d.label))]
    floats = np.ascontiguousarray(d.float_data, dtype=_F32LE).reshape(-1)
    if floats.size:
        rec = np.empty((floats.size, 5), np.uint8)
        rec[:, 0] = 0x35
        rec[:, 1:] = floats.view(np.uint8).reshape(-1, 4)
        parts.append(rec.tobytes())
    if d.encoded:
        parts.append(b"\x38\x01")
    return b"".join(parts)


def decode_datum(buf: bytes | bytearray | memoryview) -> Datum:
    """Parse a serialised Datum; packed or unpacked float_data; unknown fields skipped."""
    if type(buf) is not bytes:
        buf = bytes(buf)
    end = len(buf)
    pos = 0
    channels = height = width = label = 0
    data = b""
    encoded = False
    chunks: list[np.ndarray] = []
    while pos < end:
        tag = buf[pos]
        if tag < 0x80:
            pos += 1
        else:
            tag, pos = read_varint(buf, pos, end)
        if tag == 0x22:
            n, pos = read_length(buf, pos, end)
            data = buf[pos:pos + n]
            pos += n
        elif tag == 0x35:
            n = _float_run(buf, pos - 1, end) if buf[pos - 1] == 0x35 else 0  # 0: tag not in canonical form
            if n:
                chunks.append(np.ndarray((n,), _F32LE, buf, pos, (5,)).astype(np.float32))
                pos += 5 * n - 1
            elif pos + 4 > end:
                raise DatumError("truncated float_data")
            else:
                chunks.append(np.frombuffer(buf, _F32LE, 1, pos).astype(np.float32))
                pos += 4
        elif tag == 0x08:
            v, pos = read_varint(buf, pos, end)
            channels = to_int32(v)
        elif tag == 0x10:
            v, pos = read_varint(buf, pos, end)
            height = to_int32(v)
        elif tag == 0x18:
            v, pos = read_varint(buf, pos, end)
            width = to_int32(v)
        elif tag == 0x28:
            v, pos = read_varint(buf, pos, end)
            label = to_int32(v)
        elif tag == 0x38:
            v, pos = read_varint(buf, pos, end)
            encoded = v != 0
        elif tag == 0x32:
            n, pos = read_length(buf, pos, end)
            if n % 4:
                raise DatumError(f"packed float_data of {n} bytes is not a multiple of 4")
            chunks.append(np.frombuffer(buf, _F32LE, n // 4, pos).astype(np.float32))
            pos += n
        elif 1 <= tag >> 3 <= 7:
            raise DatumError(f"wrong wire type {tag & 7} for Datum field {tag >> 3}")
        else:
            pos = skip_field(buf, pos, end, tag)
    return Datum(channels, height, width, data, label, _join_floats(chunks), encoded)


# ------------------------------------------------------------------------------------------------------ images

def encode_image(arr: np.ndarray, fmt: str, quality: int = 90) -> bytes:
    """PNG or JPEG bytes of an HWC RGB / HW gray uint8 image (JPEG quality 90, as DIGITS)."""
    arr = np.asarray(arr)
    if arr.dtype != np.uint8:
        raise DatumError(f"only uint8 images can be encoded, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise DatumError(f"cannot encode an image of shape {arr.shape}: expected HW or HWC with C=1 or 3")
    fmt = fmt.lower()
    out = io.BytesIO()
    img = Image.fromarray(np.ascontiguousarray(arr), "L" if arr.ndim == 2 else "RGB")
    if fmt == "png":
        img.save(out, format="PNG")
    elif fmt in ("jpg", "jpeg"):
        img.save(out, format="JPEG", quality=int(quality))
    else:
        raise DatumError(f"unknown image encoding {fmt!r}: use 'png' or 'jpg'")
    return out.getvalue()


def decode_image(data: bytes) -> np.ndarray:
    """Image file bytes → HWC RGB or HW gray uint8; paletted images give their index values."""
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
        mode = img.mode
        if mode in ("L", "RGB", "P"):
            pass
        elif mode == "1":
            img = img.convert("L")
        elif mode in ("LA", "RGBA", "PA"):  # composite on white, as DIGITS' load_image does
            base = Image.new("L", img.size, 255) if mode == "LA" else Image.new("RGB", img.size, (255, 255, 255))
            base.paste(img.convert(base.mode), mask=img.convert("RGBA"))
            img = base
        elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
            img = img.convert("RGB")
        else:
            raise DatumError(f"unsupported image mode {mode!r} in encoded datum (need 8-bit gray or colour)")
        return np.array(img, dtype=np.uint8)
    except DatumError:
        raise
    except Exception as e:  # Pillow raises many types (OSError, SyntaxError, ValueError, DecompressionBombError)
        raise DatumError(f"encoded image does not decode: {e}") from e


# --------------------------------------------------------------------------------------------- array <-> Datum

def array_to_datum(arr: np.ndarray, label: int = 0, encoding: str | None = None) -> Datum:
    """Array → Datum the way DIGITS writes it: uint8 images raw CHW/BGR or encoded, other dtypes float_data."""
    arr = np.asarray(arr)
    if arr.dtype == np.uint8:
        if arr.ndim == 2:
            h, w, c = arr.shape[0], arr.shape[1], 1
        elif arr.ndim == 3 and arr.shape[2] in (1, 3):
            h, w, c = arr.shape
        else:
            raise DatumError(f"uint8 image of shape {arr.shape}: expected HW or HWC with C=1 or 3")
        if encoding:
            return Datum(c, h, w, encode_image(arr, encoding), int(label), _empty_floats(), True)
        chw = arr.reshape(h, w, c).transpose(2, 0, 1)
        if c == 3:
            chw = chw[::-1]
        return Datum(c, h, w, chw.tobytes(), int(label), _empty_floats(), False)
    if arr.dtype.kind not in "fiub":
        raise DatumError(f"cannot store an array of dtype {arr.dtype} in a Datum")
    if encoding:
        raise DatumError(f"only uint8 images can be {encoding}-encoded, got {arr.dtype}")
    if arr.ndim == 1:
        c, h, w = 1, 1, arr.shape[0]
        chw = arr
    elif arr.ndim == 2:
        c, (h, w) = 1, arr.shape
        chw = arr
    elif arr.ndim == 3:
        h, w, c = arr.shape
        chw = arr.transpose(2, 0, 1)
    else:
        raise DatumError(f"array of shape {arr.shape}: expected a vector, HW or HWC")
    floats = np.ascontiguousarray(chw, dtype=np.float32).reshape(-1)
    return Datum(c, h, w, b"", int(label), floats, False)


def datum_to_array(d: Datum) -> np.ndarray:
    """Exact inverse of :func:`array_to_datum`; always a fresh C-contiguous writable array."""
    if d.encoded:
        return decode_image(d.data)
    c, h, w = d.channels, d.height, d.width
    if d.data:
        if c not in (1, 3) or h <= 0 or w <= 0:
            raise DatumError(f"raw Datum with channels={c}, height={h}, width={w}: need 1 or 3 channels")
        if len(d.data) != c * h * w:
            raise DatumError(f"raw Datum holds {len(d.data)} bytes, but {c}x{h}x{w} needs {c * h * w}")
        a = np.frombuffer(d.data, np.uint8)
        if c == 1:
            return a.reshape(h, w).copy()
        return a.reshape(3, h, w)[::-1].transpose(1, 2, 0).copy()
    n = d.float_data.size
    if n == 0:
        raise DatumError(f"Datum ({c}x{h}x{w}) holds no data")
    if c <= 0 or h <= 0 or w <= 0 or c * h * w != n:
        raise DatumError(f"Datum float_data holds {n} values, but channels={c}, height={h}, width={w}")
    f = np.asarray(d.float_data, dtype=np.float32)
    if c == 1:
        return f.reshape(w).copy() if h == 1 else f.reshape(h, w).copy()
    return f.reshape(c, h, w).transpose(1, 2, 0).copy()


# -------------------------------------------------------------------------------------------------- BlobProto

def encode_blobproto(mean: np.ndarray) -> bytes:
    """Mean image (HWC RGB or HW) → BlobProto bytes as DIGITS writes mean.binaryproto: num=1, CHW, BGR."""
    m = np.asarray(mean, dtype=np.float32)
    if m.ndim == 2:
        m = m[:, :, None]
    if m.ndim != 3 or 0 in m.shape:
        raise DatumError(f"mean of shape {np.shape(mean)}: expected HW or HWC")
    h, w, c = m.shape
    chw = m.transpose(2, 0, 1)
    if c == 3:
        chw = chw[::-1]
    payload = np.ascontiguousarray(chw, dtype=_F32LE).tobytes()
    return b"".join([b"\x08\x01", b"\x10", varint_bytes(c), b"\x18", varint_bytes(h), b"\x20", varint_bytes(w),
                     b"\x2a", varint_bytes(len(payload)), payload])


def _decode_dims(buf: bytes, pos: int, end: int) -> list[int]:
    """BlobShape { repeated int64 dim = 1 [packed] } → dims (packed or unpacked)."""
    dims: list[int] = []
    while pos < end:
        tag, pos = read_varint(buf, pos, end)
        if tag == 0x0A:
            n, pos = read_length(buf, pos, end)
            stop = pos + n
            while pos < stop:
                v, pos = read_varint(buf, pos, stop)
                dims.append(to_int64(v))
        elif tag == 0x08:
            v, pos = read_varint(buf, pos, end)
            dims.append(to_int64(v))
        elif tag >> 3 == 1:
            raise DatumError(f"wrong wire type {tag & 7} for BlobShape.dim")
        else:
            pos = skip_field(buf, pos, end, tag)
    return dims


def _repeated(buf: bytes, pos: int, end: int, wt: int, dtype: np.dtype, name: str) -> tuple[np.ndarray, int]:
    """One packed (wire type 2) or unpacked element of a repeated float/double field."""
    size = dtype.itemsize
    if wt == 2:
        n, pos = read_length(buf, pos, end)
        if n % size:
            raise DatumError(f"packed {name} of {n} bytes is not a multiple of {size}")
        return np.frombuffer(buf, dtype, n // size, pos), pos + n
    if wt == (5 if size == 4 else 1):
        if pos + size > end:
            raise DatumError(f"truncated {name}")
        return np.frombuffer(buf, dtype, 1, pos), pos + size
    raise DatumError(f"wrong wire type {wt} for BlobProto.{name}")


def decode_blobproto(buf: bytes | bytearray | memoryview) -> np.ndarray:
    """BlobProto bytes (mean.binaryproto) → HWC float32 RGB; gray gives shape (H, W, 1)."""
    if type(buf) is not bytes:
        buf = bytes(buf)
    end, pos = len(buf), 0
    legacy: dict[int, int] = {}
    shape: list[int] | None = None
    data: list[np.ndarray] = []
    doubles: list[np.ndarray] = []
    while pos < end:
        tag, pos = read_varint(buf, pos, end)
        fno, wt = tag >> 3, tag & 7
        if 1 <= fno <= 4 and wt == 0:
            v, pos = read_varint(buf, pos, end)
            legacy[fno] = to_int32(v)
        elif fno in (5, 6):
            chunk, pos = _repeated(buf, pos, end, wt, _F32LE, "data" if fno == 5 else "diff")
            if fno == 5:
                data.append(chunk)
        elif fno in (8, 9):
            chunk, pos = _repeated(buf, pos, end, wt, _F64LE, "double_data" if fno == 8 else "double_diff")
            if fno == 8:
                doubles.append(chunk)
        elif fno == 7 and wt == 2:
            n, pos = read_length(buf, pos, end)
            shape = (shape or []) + _decode_dims(buf, pos, pos + n)
            pos += n
        elif 1 <= fno <= 9:
            raise DatumError(f"wrong wire type {wt} for BlobProto field {fno}")
        else:
            pos = skip_field(buf, pos, end, tag)
    if shape is not None:
        dims = shape
    elif legacy:
        dims = [legacy.get(1, 1), legacy.get(2, 0), legacy.get(3, 0), legacy.get(4, 0)]
    else:
        raise DatumError("BlobProto has no shape (neither shape nor num/channels/height/width)")
    values = np.concatenate(doubles) if doubles else (np.concatenate(data) if data else _empty_floats())
    while len(dims) > 3 and dims[0] == 1:
        dims = dims[1:]
    if len(dims) not in (2, 3) or min(dims) <= 0:
        raise DatumError(f"BlobProto shape {dims} is not a single CxHxW or HxW image")
    c, h, w = dims if len(dims) == 3 else [1, *dims]
    if c * h * w != values.size:
        raise DatumError(f"BlobProto holds {values.size} values, but its shape {dims} needs {c * h * w}")
    hwc = values.astype(np.float32).reshape(c, h, w).transpose(1, 2, 0)
    if c == 3:
        hwc = hwc[:, :, ::-1]
    return np.ascontiguousarray(hwc)


__all__ = ["Datum", "encode_datum", "decode_datum", "encode_image", "decode_image", "array_to_datum",
           "datum_to_array", "encode_blobproto", "decode_blobproto"]
