"""The protobuf wire format's primitives, for the hand-written Caffe codecs in ``store/datum.py``.

Varints (read and written), the int32/int64 views of a varint, length prefixes checked against the buffer,
and skipping an unknown field. Kept apart from the messages so that ``Datum`` and ``BlobProto`` read as
their fields, and so that these checks (a truncated varint, a length past the end, field 0, groups) are
written once: every malformed buffer ends in a ``DatumError`` here, never an ``IndexError``.
"""
from __future__ import annotations

from digits_widgets.errors import DatumError

_U64 = 0xFFFFFFFFFFFFFFFF
_MAX_FIELD = (1 << 29) - 1   # protobuf's largest field number


def read_varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """Read one varint at ``pos``; returns (unsigned 64-bit value, new position)."""
    if pos >= end:
        raise DatumError("truncated varint")
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    result = b & 0x7F
    shift = 7
    pos += 1
    while True:
        if pos >= end:
            raise DatumError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result & _U64, pos
        shift += 7
        if shift >= 70:
            raise DatumError("varint longer than 10 bytes")


def to_int32(v: int) -> int:
    """Unsigned varint value → signed 32-bit, as protobuf truncates int32 fields."""
    v &= 0xFFFFFFFF
    return v - 0x100000000 if v >= 0x80000000 else v


def to_int64(v: int) -> int:
    """Unsigned varint value → signed 64-bit (int64 fields: BlobShape.dim)."""
    return v - (1 << 64) if v >= (1 << 63) else v


def read_length(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """Read a length prefix and check the payload lies inside the buffer."""
    n, pos = read_varint(buf, pos, end)
    if n >= 1 << 63:
        raise DatumError("negative length")
    if pos + n > end:
        raise DatumError(f"length {n} runs past the end of the message")
    return n, pos


def skip_field(buf: bytes, pos: int, end: int, tag: int) -> int:
    """Skip an unknown field; rejects field 0, groups and undefined wire types."""
    wt = tag & 7
    if tag >> 3 == 0 or tag >> 3 > _MAX_FIELD:
        raise DatumError(f"invalid field number {tag >> 3}")
    if wt == 0:
        return read_varint(buf, pos, end)[1]
    if wt == 2:
        n, pos = read_length(buf, pos, end)
        return pos + n
    if wt == 1 or wt == 5:
        pos += 8 if wt == 1 else 4
        if pos > end:
            raise DatumError("truncated fixed-width field")
        return pos
    raise DatumError(f"unsupported wire type {wt} (field {tag >> 3})")


def varint_bytes(v: int) -> bytes:
    """``v`` as a varint (a negative value as its 64-bit two's complement, as protobuf writes int32)."""
    v &= _U64
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def check_int32(name: str, v: int) -> int:
    """``v`` as an int, or a DatumError naming the field when it does not fit in int32."""
    v = int(v)
    if not -0x80000000 <= v <= 0x7FFFFFFF:
        raise DatumError(f"{name}={v} does not fit in int32")
    return v


__all__ = ["read_varint", "to_int32", "to_int64", "read_length", "skip_field", "varint_bytes", "check_int32"]
