"""Tutorial data generators: DIGITS' gradient formula and triangle pairs, and a generator that never deletes
files it did not write."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from digits_widgets.data.generators import MARKER, generate_triangles, gradient_image, random_slopes
from digits_widgets.errors import DatasetError


def _formula(xslope, yslope, h, w, y, x):
    a = xslope * 255 / w
    b = yslope * 255 / h
    return int(a * (x - w // 2) + b * (y - h // 2) + 127.5)


@pytest.mark.parametrize('xslope,yslope,h,w', [(0.3, -0.2, 32, 32), (-0.5, -0.5, 16, 24), (0.49, 0.1, 7, 9)])
def test_gradient_matches_the_plugin_formula(xslope, yslope, h, w):
    image = gradient_image(xslope, yslope, h, w)
    assert image.shape == (h, w) and image.dtype == np.uint8
    for y, x in [(0, 0), (h - 1, w - 1), (h // 2, w // 2), (1, w - 2)]:
        assert image[y, x] == _formula(xslope, yslope, h, w, y, x)


def test_positive_slopes_get_brighter_towards_plus_x_and_plus_y():
    image = gradient_image(0.5, 0.5, 32, 32).astype(int)
    assert np.all(np.diff(image, axis=1) >= 0) and np.all(np.diff(image, axis=0) >= 0)
    assert image[-1, -1] > image[0, -1] > image[0, 0]
    assert image[-1, -1] > image[-1, 0] > image[0, 0]
    flat = gradient_image(0.0, 0.0, 8, 8)
    assert np.all(flat == 127)


def test_random_slopes():
    slopes = random_slopes(1000, np.random.default_rng(0))
    assert slopes.shape == (1000, 2) and slopes.dtype == np.float32
    assert slopes.min() >= -0.5 and slopes.max() < 0.5
    assert np.array_equal(slopes, random_slopes(1000, np.random.default_rng(0)))


def test_triangles_layout_and_content(tmp_path):
    out = generate_triangles(tmp_path / 'tri', count=20, size=32, grid=3, seed=1)
    assert sorted(os.listdir(out['input'])) == [f'{i:08d}.png' for i in range(20)]
    assert sorted(os.listdir(out['target'])) == [f'{i:08d}.png' for i in range(20)]
    grid = Image.open(out['grid'])
    assert grid.mode == 'L' and grid.size == (96, 96)
    assert np.asarray(grid).min() == 0
    marker = json.loads((tmp_path / 'tri' / MARKER).read_text())
    assert (marker['count'], marker['size'], marker['grid'], marker['seed']) == (20, 32, 3, 1)
    more_black = 0
    for i in range(20):
        src = np.asarray(Image.open(os.path.join(out['input'], f'{i:08d}.png')))
        dst = np.asarray(Image.open(os.path.join(out['target'], f'{i:08d}.png')))
        assert src.shape == dst.shape == (32, 32)
        assert set(np.unique(src)) <= {0, 255} and set(np.unique(dst)) <= {0, 255}
        assert np.all(dst[src == 0] == 0)  # the filled triangle covers its outline
        more_black += int((dst == 0).sum() > (src == 0).sum())
    assert more_black >= 15  # thin triangles can be all outline; most are not


def test_triangles_interior_white_in_generated_input(tmp_path):
    out = generate_triangles(tmp_path, count=30, size=32, grid=1, seed=4)
    found = False
    for i in range(30):
        src = np.asarray(Image.open(os.path.join(out['input'], f'{i:08d}.png')))
        dst = np.asarray(Image.open(os.path.join(out['target'], f'{i:08d}.png')))
        if np.any((dst == 0) & (src == 255)):  # black in target, white in input: an interior pixel
            found = True
    assert found


def test_triangles_are_deterministic_with_a_seed(tmp_path):
    a = generate_triangles(tmp_path / 'a', count=5, size=16, grid=2, seed=9)
    b = generate_triangles(tmp_path / 'b', count=5, size=16, grid=2, seed=9)
    c = generate_triangles(tmp_path / 'c', count=5, size=16, grid=2, seed=10)
    read = lambda d, i: open(os.path.join(d, f'{i:08d}.png'), 'rb').read()  # noqa: E731
    assert all(read(a['target'], i) == read(b['target'], i) for i in range(5))
    assert open(a['grid'], 'rb').read() == open(b['grid'], 'rb').read()
    assert any(read(a['target'], i) != read(c['target'], i) for i in range(5))


def test_rerun_over_own_output_replaces_it(tmp_path):
    generate_triangles(tmp_path, count=6, size=8, grid=2, seed=1)
    out = generate_triangles(tmp_path, count=3, size=8, grid=2, seed=2)
    assert sorted(os.listdir(out['input'])) == [f'{i:08d}.png' for i in range(3)]
    assert json.loads((tmp_path / MARKER).read_text())['seed'] == 2


def test_refuses_a_folder_with_foreign_files_and_leaves_it_untouched(tmp_path):
    generate_triangles(tmp_path, count=2, size=8, grid=1, seed=1)
    (tmp_path / 'my_notes.txt').write_text('precious')
    (tmp_path / 'input' / 'holiday.jpg').write_bytes(b'precious too')
    before = sorted(os.path.relpath(os.path.join(d, f), tmp_path)
                    for d, _, files in os.walk(tmp_path) for f in files)
    with pytest.raises(DatasetError) as info:
        generate_triangles(tmp_path, count=2, size=8, grid=1, seed=1)
    message = str(info.value)
    assert 'my_notes.txt' in message and 'input/holiday.jpg' in message and str(tmp_path) in message
    after = sorted(os.path.relpath(os.path.join(d, f), tmp_path) for d, _, files in os.walk(tmp_path) for f in files)
    assert after == before
    assert (tmp_path / 'my_notes.txt').read_text() == 'precious'


def test_refuses_lookalike_output_without_our_marker(tmp_path):
    (tmp_path / 'input').mkdir()
    Image.new('L', (4, 4)).save(tmp_path / 'input' / '00000000.png')
    with pytest.raises(DatasetError, match='input'):
        generate_triangles(tmp_path, count=1, size=8, grid=1)
    assert (tmp_path / 'input' / '00000000.png').exists()


def test_empty_existing_folder_is_fine(tmp_path):
    out = generate_triangles(tmp_path, count=1, size=8, grid=1, seed=0)
    assert os.path.isfile(out['grid'])


def test_bad_arguments(tmp_path):
    with pytest.raises(DatasetError) as info:
        generate_triangles(tmp_path / 'x', count=0)
    assert info.value.field == 'image_count'
    afile = tmp_path / 'file'
    afile.write_text('x')
    with pytest.raises(DatasetError, match='is a file'):
        generate_triangles(afile, count=1)
    assert afile.read_text() == 'x'
