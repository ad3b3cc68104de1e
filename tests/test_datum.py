"""The Datum / BlobProto codec against protobuf's own encoder, hand-written bytes, and arbitrary bytes."""
from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from digits_widgets.errors import DatumError
from digits_widgets.store.datum import (Datum, array_to_datum, datum_to_array, decode_blobproto, decode_datum,
                                        decode_image, encode_blobproto, encode_datum, encode_image)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INT32 = st.integers(-2**31, 2**31 - 1)
F32 = st.floats(width=32, allow_nan=False)


def rgb_image(h: int = 5, w: int = 7) -> np.ndarray:
    return np.random.default_rng(h * 100 + w).integers(0, 256, (h, w, 3), dtype=np.uint8)


def pb_datum(cls, d: Datum):
    m = cls(channels=d.channels, height=d.height, width=d.width, label=d.label)
    if d.data:
        m.data = d.data
    m.float_data.extend(d.float_data.tolist())
    if d.encoded:
        m.encoded = True
    return m


def assert_same(a: Datum, b: Datum) -> None:
    assert (a.channels, a.height, a.width, a.data, a.label, a.encoded) == \
           (b.channels, b.height, b.width, b.data, b.label, b.encoded)
    if isinstance(a, Datum):
        assert a.float_data.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(a.float_data, np.float32), np.asarray(b.float_data, np.float32))


# ------------------------------------------------------------------------------------------ fixed byte literals

def test_hand_written_bytes():
    floats = struct.pack("<f", 0.5), struct.pack("<f", -2.25)
    wire = b"\x08\x01\x10\x01\x18\x02\x28\x00\x35" + floats[0] + b"\x35" + floats[1]
    d = Datum(1, 1, 2, float_data=np.array([0.5, -2.25], np.float32))
    assert encode_datum(d) == wire
    assert_same(decode_datum(wire), d)
    np.testing.assert_array_equal(datum_to_array(decode_datum(wire)), [0.5, -2.25])

    raw = b"\x08\x03\x10\x01\x18\x01\x22\x03\x0a\x14\x1e\x28\x07\x38\x00"  # one BGR pixel, label 7
    d = decode_datum(raw)
    assert (d.channels, d.height, d.width, d.data, d.label, d.encoded) == (3, 1, 1, b"\x0a\x14\x1e", 7, False)
    np.testing.assert_array_equal(datum_to_array(d), [[[30, 20, 10]]])
    negative = b"\x28" + b"\xff" * 9 + b"\x01"  # label = -1 as a 10-byte varint
    assert decode_datum(negative).label == -1


def test_packed_float_data_non_canonical_tag_and_memoryview():
    packed = b"\x08\x01\x10\x01\x18\x03\x32\x0c" + np.array([1, 2, 3], "<f4").tobytes()
    np.testing.assert_array_equal(decode_datum(packed).float_data, [1, 2, 3])
    long_tag = b"\xb5\x00" + struct.pack("<f", 4.0)  # field 6 / wire type 5, tag written in two bytes
    np.testing.assert_array_equal(decode_datum(long_tag).float_data, [4.0])
    assert decode_datum(memoryview(bytearray(packed))).width == 3


@pytest.mark.parametrize("buf, reason", [
    (b"\x08", "truncated varint"),
    (b"\x08" + b"\x80" * 10 + b"\x01", "longer than 10 bytes"),
    (b"\x22\x05ab", "past the end"),
    (b"\x22" + b"\xff" * 9 + b"\x01", "negative length"),
    (b"\x0a\x01x", "wrong wire type"),  # channels as length-delimited
    (b"\x21" + b"\0" * 8, "wrong wire type"),  # data as fixed64
    (b"\x35\x00\x00", "truncated float_data"),
    (b"\x32\x03abc", "multiple of 4"),
    (b"\x43", "wire type 3"),  # start group, field 8
    (b"\x44", "wire type 4"),
    (b"\x46", "wire type 6"),
    (b"\x00", "field number 0"),
    (b"\x41\x00\x00", "truncated fixed"),
])
def test_malformed_datum_raises_datum_error(buf, reason):
    with pytest.raises(DatumError, match=reason):
        decode_datum(buf)


# ------------------------------------------------------------------------------------- against real protobuf

SAMPLES = [
    array_to_datum(rgb_image(), label=3),
    array_to_datum(rgb_image()[:, :, 0], label=0),
    array_to_datum(rgb_image(), label=1, encoding="png"),
    array_to_datum(np.array([0.25, -1.5], np.float32)),
    array_to_datum(np.random.default_rng(0).normal(size=(4, 3, 2)).astype(np.float32)),
    array_to_datum(np.arange(1000, dtype=np.float32)),  # long unpacked run: the numpy scan
    Datum(1, 2, 3, b"", -7),
    Datum(-1, 0, 2**31 - 1, b"x", -2**31, np.array([1.0], np.float32), True),
]


@pytest.mark.parametrize("d", SAMPLES)
def test_bytes_identical_to_protobuf_and_parse_both_ways(caffe_pb, d):
    theirs = pb_datum(caffe_pb.Datum, d).SerializeToString()
    assert encode_datum(d) == theirs
    assert_same(decode_datum(theirs), d)
    assert_same(caffe_pb.Datum.FromString(encode_datum(d)), d)
    packed = pb_datum(caffe_pb.DatumPacked, d).SerializeToString()
    assert_same(decode_datum(packed), d)


def test_unknown_fields_are_skipped(caffe_pb):
    d = SAMPLES[0]
    m = pb_datum(caffe_pb.DatumExtra, d)
    m.x_varint, m.x_bytes, m.x_fixed64, m.x_fixed32 = -5, b"junk" * 50, 2**60, 7
    assert_same(decode_datum(m.SerializeToString()), d)


datums = st.builds(
    Datum, channels=INT32, height=INT32, width=INT32, data=st.binary(max_size=64), label=INT32,
    float_data=st.lists(F32, max_size=40).map(lambda v: np.array(v, np.float32)), encoded=st.booleans())


@FUZZ
@given(d=datums)
def test_property_matches_protobuf(caffe_pb, d):
    theirs = pb_datum(caffe_pb.Datum, d).SerializeToString()
    assert encode_datum(d) == theirs
    assert_same(decode_datum(theirs), d)
    assert_same(decode_datum(pb_datum(caffe_pb.DatumPacked, d).SerializeToString()), d)


# ------------------------------------------------------------------------------- arbitrary bytes never crash

@FUZZ
@given(buf=st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_datum_error(buf):
    for decode in (decode_datum, decode_blobproto, lambda b: datum_to_array(decode_datum(b))):
        try:
            decode(buf)
        except DatumError:
            pass


@FUZZ
@given(base=st.sampled_from([encode_datum(d) for d in SAMPLES[:5]] + [encode_blobproto(rgb_image(3, 2))]),
       cut=st.integers(0, 400), flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4))
def test_mutated_valid_messages_raise_only_datum_error(base, cut, flips):
    buf = bytearray(base[:max(1, len(base) - cut)])
    for where, value in flips:
        buf[where % len(buf)] = value
    for decode in (decode_datum, decode_blobproto, lambda b: datum_to_array(decode_datum(b))):
        try:
            decode(bytes(buf))
        except DatumError:
            pass


@FUZZ
@given(d=st.builds(Datum, channels=st.integers(-2, 5), height=st.integers(-2, 5), width=st.integers(-2, 5),
                   data=st.binary(max_size=80), label=st.integers(0, 3),
                   float_data=st.lists(F32, max_size=30).map(lambda v: np.array(v, np.float32)),
                   encoded=st.booleans()))
def test_datum_to_array_of_any_fields_raises_only_datum_error(d):
    try:
        out = datum_to_array(d)
    except DatumError:
        return
    assert out.flags.c_contiguous and out.flags.writeable


# ------------------------------------------------------------------------------------------------ round trips

def test_raw_gray_round_trip():
    img = rgb_image()[:, :, 1]
    d = decode_datum(encode_datum(array_to_datum(img, label=4)))
    assert (d.channels, d.height, d.width, d.label, d.encoded) == (1, 5, 7, 4, False)
    assert d.data == img.tobytes()
    np.testing.assert_array_equal(datum_to_array(d), img)
    np.testing.assert_array_equal(datum_to_array(array_to_datum(img[:, :, None])), img)


def test_raw_rgb_is_stored_chw_bgr():
    img = np.empty((4, 6, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 10, 20, 30  # R, G, B
    d = array_to_datum(img)
    n = 4 * 6
    assert (d.channels, d.height, d.width) == (3, 4, 6)
    assert d.data[:n] == bytes([30]) * n and d.data[n:2 * n] == bytes([20]) * n and d.data[2 * n:] == bytes([10]) * n
    out = datum_to_array(decode_datum(encode_datum(d)))
    np.testing.assert_array_equal(out, img)
    assert out.flags.c_contiguous and out.flags.writeable
    np.testing.assert_array_equal(datum_to_array(array_to_datum(rgb_image())), rgb_image())


@pytest.mark.parametrize("shape", [(6, 5, 3), (6, 5)])
def test_png_round_trip_is_exact(shape):
    img = rgb_image(6, 5)[..., 0] if len(shape) == 2 else rgb_image(6, 5)
    d = decode_datum(encode_datum(array_to_datum(img, label=2, encoding="png")))
    assert d.encoded and d.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert (d.channels, d.height, d.width, d.label) == ((shape + (1,))[2], 6, 5, 2)
    np.testing.assert_array_equal(datum_to_array(d), img)


def test_jpeg_round_trip_is_close():
    y, x = np.mgrid[0:32, 0:40]
    img = np.stack([x * 6, y * 7, (x + y) * 3], axis=-1).astype(np.uint8)
    d = array_to_datum(img, encoding="jpg")
    assert d.encoded and d.data[:2] == b"\xff\xd8"
    out = datum_to_array(decode_datum(encode_datum(d)))
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - img).mean() < 3


def test_float_vector_label_and_float_hwc():
    d = array_to_datum(np.array([0.3, -0.7]))
    assert (d.channels, d.height, d.width, d.data) == (1, 1, 2, b"")
    out = datum_to_array(decode_datum(encode_datum(d)))
    assert out.dtype == np.float32 and out.shape == (2,)
    np.testing.assert_array_equal(out, np.float32([0.3, -0.7]))

    hwc = np.random.default_rng(1).normal(size=(3, 4, 2)).astype(np.float32)
    d = array_to_datum(hwc)
    assert (d.channels, d.height, d.width) == (2, 3, 4)
    np.testing.assert_array_equal(d.float_data, hwc.transpose(2, 0, 1).ravel())  # CHW, no BGR swap
    np.testing.assert_array_equal(datum_to_array(decode_datum(encode_datum(d))), hwc)
    hw = hwc[..., 0]
    np.testing.assert_array_equal(datum_to_array(array_to_datum(hw)), hw)


@pytest.mark.parametrize("arr, encoding, match", [
    (np.zeros((2, 2, 4), np.uint8), None, "C=1 or 3"),
    (np.zeros(5, np.uint8), None, "C=1 or 3"),
    (np.zeros((2, 2), np.float32), "png", "only uint8"),
    (np.zeros((1, 1, 1, 1), np.float32), None, "vector, HW or HWC"),
    (np.zeros(2, complex), None, "dtype"),
    (np.zeros((2, 2), np.uint8), "gif", "unknown image encoding"),
])
def test_array_to_datum_rejects(arr, encoding, match):
    with pytest.raises(DatumError, match=match):
        array_to_datum(arr, encoding=encoding)


@pytest.mark.parametrize("d, match", [
    (Datum(3, 2, 2, b"\0" * 11), "11 bytes, but 3x2x2 needs 12"),
    (Datum(4, 1, 1, b"\0" * 4), "need 1 or 3 channels"),
    (Datum(1, 1, 3, float_data=np.zeros(2, np.float32)), "2 values, but channels=1, height=1, width=3"),
    (Datum(1, 1, 1), "holds no data"),
    (Datum(1, 1, 1, b"not an image", encoded=True), "does not decode"),
])
def test_datum_to_array_errors_name_the_numbers(d, match):
    with pytest.raises(DatumError, match=match):
        datum_to_array(d)


# --------------------------------------------------------------------------------------------- image codec

def _png(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def test_decode_image_modes():
    labels = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    pal = Image.fromarray(labels, "P")
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0])
    out = decode_image(_png(pal))
    assert out.shape == (2, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, labels)  # segmentation labels: index values, not colours

    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (200, 100, 50, 255)  # opaque pixel kept, transparent ones become white
    out = decode_image(_png(Image.fromarray(rgba, "RGBA")))
    assert out.shape == (2, 2, 3)
    assert tuple(out[0, 0]) == (200, 100, 50) and tuple(out[1, 1]) == (255, 255, 255)
    la = np.full((2, 2, 2), 9, np.uint8)
    la[0, 0, 1] = 0  # transparent
    la[1, 1, 1] = 255  # opaque
    la = decode_image(_png(Image.fromarray(la, "LA")))
    assert la.shape == (2, 2) and la[0, 0] == 255 and la[1, 1] == 9
    assert decode_image(_png(Image.new("1", (3, 2), 1))).shape == (2, 3)
    with pytest.raises(DatumError, match="unsupported image mode"):
        decode_image(_png(Image.fromarray(np.full((2, 2), 1000, np.uint16))))
    with pytest.raises(DatumError):
        decode_image(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)


def test_encode_image_rejects_bad_input():
    with pytest.raises(DatumError, match="only uint8"):
        encode_image(np.zeros((2, 2)), "png")
    with pytest.raises(DatumError, match="shape"):
        encode_image(np.zeros((2, 2, 2), np.uint8), "png")
    assert decode_image(encode_image(np.zeros((2, 2, 1), np.uint8), "png")).shape == (2, 2)


# ------------------------------------------------------------------------------------------------ BlobProto

def test_mean_layout_is_num1_chw_bgr(caffe_pb):
    mean = np.empty((2, 3, 3), np.float32)
    mean[..., 0], mean[..., 1], mean[..., 2] = 1.5, 2.0, 3.25  # R, G, B
    mean[0, 0] = (7, 8, 9)
    buf = encode_blobproto(mean)
    values = np.frombuffer(buf[-4 * 18:], "<f4")
    assert buf[:10] == b"\x08\x01\x10\x03\x18\x02\x20\x03\x2a\x48"
    np.testing.assert_array_equal(values, mean[..., ::-1].transpose(2, 0, 1).ravel())
    assert values[0] == 9 and values[6] == 8 and values[12] == 7  # first pixel of the B, G, R planes
    m = caffe_pb.BlobProto.FromString(buf)
    assert (m.num, m.channels, m.height, m.width) == (1, 3, 2, 3) and not m.HasField("shape")
    np.testing.assert_array_equal(m.data, values)
    assert buf == caffe_pb.BlobProto(num=1, channels=3, height=2, width=3, data=values.tolist()).SerializeToString()
    out = decode_blobproto(buf)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, mean)


def test_gray_mean_round_trip():
    mean = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(decode_blobproto(encode_blobproto(mean)), mean[..., None])
    np.testing.assert_array_equal(decode_blobproto(encode_blobproto(mean[..., None])), mean[..., None])


@pytest.mark.parametrize("variant", ["shape4", "shape3", "shape2", "unpacked", "double", "legacy"])
def test_blobproto_variants_from_protobuf(caffe_pb, variant):
    mean = np.random.default_rng(2).uniform(0, 255, (4, 5, 3)).astype(np.float32)
    chw = mean[..., ::-1].transpose(2, 0, 1)
    values = chw.ravel().tolist()
    dims = {"shape4": [1, 3, 4, 5], "shape3": [3, 4, 5]}.get(variant, [3, 4, 5])
    if variant == "shape2":
        mean, values, dims = mean[..., :1], mean[..., 0].ravel().tolist(), [4, 5]
    if variant == "unpacked":
        m = caffe_pb.BlobProtoUnpacked(data=values)
        m.shape.dim.extend(dims)
    elif variant == "legacy":
        m = caffe_pb.BlobProto(num=1, channels=3, height=4, width=5, data=values, diff=[1.0] * 60)
    else:
        m = caffe_pb.BlobProto()
        m.shape.dim.extend(dims)
        if variant == "double":
            m.double_data.extend(values)
        else:
            m.data.extend(values)
    out = decode_blobproto(m.SerializeToString())
    np.testing.assert_array_equal(out, mean)


@pytest.mark.parametrize("buf, match", [
    (b"", "no shape"),
    (b"\x08\x01\x10\x03\x18\x02\x20\x02\x2a\x08" + b"\0" * 8, "holds 2 values, but its shape"),
    (b"\x08\x02\x10\x01\x18\x01\x20\x01\x2a\x08" + b"\0" * 8, "not a single"),
    (b"\x3a\x03\x0a\x01\x7f\x2a\x04" + b"\0" * 4, "not a single"),  # shape [127]: one dim
    (b"\x3a\x0d\x0a\x0b" + b"\xff" * 9 + b"\x01\x04\x2a\x04" + b"\0" * 4, "not a single"),  # [-1, 4]
    (b"\x2a\x03abc", "multiple of 4"),
    (b"\x12\x00", "wrong wire type"),
])
def test_bad_blobproto_raises_datum_error(buf, match):
    with pytest.raises(DatumError, match=match):
        decode_blobproto(buf)
