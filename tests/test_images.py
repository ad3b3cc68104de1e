"""Image loading and resizing behave as DIGITS' digits/utils/image.py did (with our documented additions)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from digits_widgets.data.images import (SUPPORTED_EXTENSIONS, convert_channels, is_image_file, load_image,
                                        load_label_image, resize_image)
from digits_widgets.errors import DatasetError, ImageError


def _bands(h: int, w: int, axis: int) -> np.ndarray:
    """Gray pattern in quarters along ``axis``: 10 | 200 200 | 90, so the centre half is 200."""
    n = w if axis == 1 else h
    line = np.full(n, 200, np.uint8)
    line[: n // 4] = 10
    line[n - n // 4:] = 90
    return np.tile(line, (h, 1)) if axis == 1 else np.tile(line[:, None], (1, w))


def _pil_resize(arr: np.ndarray, h: int, w: int) -> np.ndarray:
    return np.asarray(Image.fromarray(arr).resize((w, h), Image.BILINEAR))


def test_extensions_case_insensitive():
    assert is_image_file('a/B.PNG') and is_image_file('x.TiFF') and is_image_file('y.pgm')
    assert not is_image_file('notes.txt') and not is_image_file('png')
    assert '.ppm' in SUPPORTED_EXTENSIONS


@pytest.mark.parametrize('mode', ['squash', 'crop', 'fill', 'half_crop'])
@pytest.mark.parametrize('shape', [(40, 80), (80, 40), (40, 80, 3), (40, 80, 1)])
def test_resize_shapes_and_layout(mode, shape):
    arr = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    out = resize_image(arr, 32, 24, mode, rng=np.random.default_rng(1))
    assert out.shape == (32, 24) + shape[2:]
    assert out.dtype == np.uint8


def test_same_size_returned_unchanged():
    arr = np.zeros((5, 7, 3), np.uint8)
    assert resize_image(arr, 5, 7, 'fill') is arr


def test_crop_takes_the_centre_of_a_wide_image():
    arr = _bands(40, 80, axis=1)
    out = resize_image(arr, 32, 32, 'crop')
    # scaled to 32x64, then columns 16..48 kept: the original's middle half, all 200 (edges may blend by 1 px)
    assert np.all(out[:, 1:-1] == 200)
    assert np.array_equal(out, _pil_resize(arr, 32, 64)[:, 16:48])


def test_crop_takes_the_centre_of_a_tall_image():
    arr = _bands(80, 40, axis=0)
    out = resize_image(arr, 32, 32, 'crop')
    assert np.all(out[1:-1, :] == 200)
    assert np.array_equal(out, _pil_resize(arr, 64, 32)[16:48, :])


def test_fill_pads_top_and_bottom_of_a_wide_image_with_noise():
    arr = np.full((40, 80), 200, np.uint8)
    out = resize_image(arr, 32, 32, 'fill', rng=np.random.default_rng(3))
    # scaled to 16x32 (ratio 2.5), padded by 8 noise rows on each side
    assert np.all(out[8:24] == 200)
    top, bottom = out[:8], out[24:]
    assert top.std() > 30 and np.mean(top == 200) < 0.1
    assert np.array_equal(top, bottom)  # DIGITS draws one noise block for both sides
    assert out.max() <= 254  # randint(0, 255) excludes 255


def test_fill_pads_left_and_right_of_a_tall_colour_image():
    arr = np.full((80, 40, 3), 50, np.uint8)
    out = resize_image(arr, 32, 32, 'fill', rng=np.random.default_rng(3))
    assert out.shape == (32, 32, 3)
    assert np.all(out[:, 8:24] == 50)
    assert out[:, :8].std() > 30 and out[:, 24:].std() > 30


def test_fill_makes_the_padding_even():
    arr = np.full((40, 80), 200, np.uint8)
    out = resize_image(arr, 33, 32, 'fill', rng=np.random.default_rng(0))
    # 40/2.5 = 16 rows; 33-16 is odd, so the image is scaled to 17 rows and 8 noise rows go on each side
    assert out.shape == (33, 32)
    assert np.all(out[8:25] == 200)


def test_fill_is_deterministic_with_a_seeded_rng():
    arr = np.full((40, 80), 200, np.uint8)
    a = resize_image(arr, 32, 32, 'fill', rng=np.random.default_rng(7))
    b = resize_image(arr, 32, 32, 'fill', rng=np.random.default_rng(7))
    assert np.array_equal(a, b)


def test_half_crop_crops_the_long_side_and_pads_the_short_side():
    arr = _bands(40, 80, axis=1)
    out = resize_image(arr, 32, 32, 'half_crop', rng=np.random.default_rng(0))
    # average ratio 1.875 -> 43x21, height made 22 (even padding), columns 6..38 kept, 5 noise rows each side
    expected = _pil_resize(arr, 22, 43)[:, 6:38]
    assert np.array_equal(out[5:27], expected)
    assert np.array_equal(out[:5], out[27:])
    assert out[:5].std() > 30


def test_squash_ignores_aspect():
    arr = _bands(40, 80, axis=1)
    assert np.array_equal(resize_image(arr, 32, 32, 'squash'), _pil_resize(arr, 32, 32))


def test_equal_ratios_squash_in_every_mode():
    arr = _bands(40, 80, axis=1)
    for mode in ('crop', 'fill', 'half_crop'):
        assert np.array_equal(resize_image(arr, 20, 40, mode), _pil_resize(arr, 20, 40))


def test_unknown_resize_mode():
    with pytest.raises(DatasetError) as info:
        resize_image(np.zeros((4, 4), np.uint8), 2, 2, 'stretch')
    assert info.value.field == 'resize_mode'
    for name in ('squash', 'crop', 'fill', 'half_crop', 'stretch'):
        assert name in str(info.value)


def test_bad_target_size():
    with pytest.raises(DatasetError) as info:
        resize_image(np.zeros((4, 4), np.uint8), 0, 2)
    assert info.value.field == 'resize_height'


def test_convert_channels():
    rgb = np.array([[[255, 0, 0], [10, 20, 30]]], np.uint8)
    gray = convert_channels(rgb, 1)
    assert gray.shape == (1, 2) and gray.dtype == np.uint8
    assert gray.tolist() == [[76, 18]]  # round(0.299*255), round(2.99+11.74+3.42)
    back = convert_channels(gray, 3)
    assert back.shape == (1, 2, 3) and back[0, 1].tolist() == [18, 18, 18]
    assert convert_channels(rgb, 3) is rgb
    assert convert_channels(np.zeros((2, 2, 1), np.uint8), 1).shape == (2, 2)
    with pytest.raises(DatasetError) as info:
        convert_channels(rgb, 2)
    assert info.value.field == 'resize_channels'


def test_load_paletted_with_transparency_composites_on_white(tmp_path):
    img = Image.new('P', (4, 2), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.putpixel((3, 1), 1)
    path = tmp_path / 'p.png'
    img.save(path, transparency=1)
    arr = load_image(path)
    assert arr.shape == (2, 4, 3)
    assert arr[0, 0].tolist() == [255, 0, 0]
    assert arr[1, 3].tolist() == [255, 255, 255]


def test_load_paletted_without_transparency_is_rgb(tmp_path):
    img = Image.new('P', (2, 2), 1)
    img.putpalette([0, 0, 0, 128, 128, 128] + [0] * 762)
    img.save(tmp_path / 'gray_palette.png')
    arr = load_image(tmp_path / 'gray_palette.png')
    assert arr.shape == (2, 2, 3) and arr[0, 0].tolist() == [128, 128, 128]
    assert load_image(tmp_path / 'gray_palette.png', 'L').shape == (2, 2)


def test_load_rgba_composites_on_white(tmp_path):
    img = Image.new('RGBA', (2, 1), (0, 0, 0, 0))
    img.putpixel((1, 0), (0, 0, 0, 128))
    img.save(tmp_path / 'a.png')
    arr = load_image(tmp_path / 'a.png')
    assert arr[0, 0].tolist() == [255, 255, 255]
    assert all(abs(v - 127) <= 1 for v in arr[0, 1].tolist())


def test_load_la_becomes_gray_on_white(tmp_path):
    img = Image.new('LA', (2, 1), (0, 255))
    img.putpixel((1, 0), (0, 0))
    img.save(tmp_path / 'la.png')
    arr = load_image(tmp_path / 'la.png')
    assert arr.shape == (1, 2) and arr.tolist() == [[0, 255]]


def test_load_cmyk_becomes_rgb(tmp_path):
    Image.new('CMYK', (3, 2), (0, 255, 255, 0)).save(tmp_path / 'c.jpg', quality=100)
    arr = load_image(tmp_path / 'c.jpg')
    assert arr.shape == (2, 3, 3)
    r, g, b = arr[0, 0].tolist()
    assert r > 200 and g < 60 and b < 60


def test_load_16_bit_png_scales_65535_to_255(tmp_path):
    values = np.array([[0, 257 * 100, 65535, 32768]], np.uint16)
    Image.fromarray(values).save(tmp_path / 'deep.png')
    arr = load_image(tmp_path / 'deep.png')
    assert arr.dtype == np.uint8 and arr.tolist() == [[0, 100, 255, 128]]
    assert load_image(tmp_path / 'deep.png', 'RGB').shape == (1, 4, 3)


def test_load_float_tiff_is_clipped(tmp_path):
    Image.fromarray(np.array([[-5.0, 100.4, 300.0]], np.float32)).save(tmp_path / 'f.tif')
    assert load_image(tmp_path / 'f.tif').tolist() == [[0, 100, 255]]


def test_load_one_bit(tmp_path):
    img = Image.new('1', (2, 1), 0)
    img.putpixel((1, 0), 1)
    img.save(tmp_path / 'bits.png')
    arr = load_image(tmp_path / 'bits.png')
    assert arr.dtype == np.uint8 and arr.tolist() == [[0, 255]]


def test_load_jpeg_colour_and_gray_and_conversion(tmp_path):
    Image.new('RGB', (8, 6), (200, 30, 30)).save(tmp_path / 'c.jpg')
    Image.new('L', (8, 6), 77).save(tmp_path / 'g.JPEG')
    colour = load_image(tmp_path / 'c.jpg')
    assert colour.shape == (6, 8, 3) and abs(int(colour[3, 4, 0]) - 200) < 6
    gray = load_image(tmp_path / 'g.JPEG')
    assert gray.shape == (6, 8) and abs(int(gray[0, 0]) - 77) < 3
    assert load_image(tmp_path / 'c.jpg', 'L').shape == (6, 8)
    assert load_image(tmp_path / 'g.JPEG', 'RGB').shape == (6, 8, 3)


def test_load_bad_mode_argument(tmp_path):
    Image.new('L', (2, 2)).save(tmp_path / 'g.png')
    with pytest.raises(DatasetError):
        load_image(tmp_path / 'g.png', 'RGBA')


def test_missing_file(tmp_path):
    path = tmp_path / 'nope.png'
    with pytest.raises(ImageError, match='not found') as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_not_an_image(tmp_path):
    path = tmp_path / 'text.png'
    path.write_text('hello, I am not a PNG')
    with pytest.raises(ImageError, match='Not an image') as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_truncated_png(tmp_path):
    path = tmp_path / 'cut.png'
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match='truncated or corrupt') as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_folder_is_not_an_image(tmp_path):
    with pytest.raises(ImageError) as info:
        load_image(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_unsupported_mode(tmp_path):
    path = tmp_path / 'hsv.tif'
    try:
        Image.new('LAB', (2, 2)).save(path)
    except (OSError, KeyError, ValueError):
        pytest.skip('this Pillow cannot write LAB TIFF')
    with pytest.raises(ImageError, match='not supported') as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_label_image_paletted(tmp_path):
    img = Image.new('P', (3, 2), 0)
    img.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0])
    img.putpixel((2, 1), 2)
    img.save(tmp_path / 'label.png')
    indices, palette = load_label_image(tmp_path / 'label.png')
    assert indices.dtype == np.uint8 and indices.tolist() == [[0, 0, 0], [0, 0, 2]]
    assert len(palette) == 768 and palette[3:9] == [255, 0, 0, 0, 255, 0]


def test_label_image_gray_and_one_bit(tmp_path):
    Image.new('L', (2, 2), 7).save(tmp_path / 'g.png')
    values, palette = load_label_image(tmp_path / 'g.png')
    assert palette is None and values.tolist() == [[7, 7], [7, 7]]
    Image.new('1', (2, 1), 1).save(tmp_path / 'b.png')
    assert load_label_image(tmp_path / 'b.png')[0].tolist() == [[255, 255]]


def test_label_image_rgb_is_refused(tmp_path):
    path = tmp_path / 'rgb.png'
    Image.new('RGB', (2, 2)).save(path)
    with pytest.raises(ImageError, match='single-channel') as info:
        load_label_image(path)
    assert str(path) in str(info.value)
