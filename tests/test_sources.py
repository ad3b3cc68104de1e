"""Dataset sources follow DIGITS' parse_folder.py and Images > Processing rules, with clear errors."""
from __future__ import annotations

import os
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from digits_widgets.data.sources import (ClassFolders, drop_classes, list_images, pair_folders, read_image_list,
                                         read_labels_file, scan_class_folders, split_by_class, split_pairs,
                                         three_way_split_indices)
from digits_widgets.errors import DatasetError


def _img(path, ext: str = '.png') -> str:
    path = str(path) + ext
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new('L', (2, 2)).save(path)
    return path


def _classes(root, counts: dict[str, int]) -> None:
    for name, count in counts.items():
        for i in range(count):
            _img(root / name / f'{i:02d}')


# ---------------------------------------------------------------- list_images / scan_class_folders

def test_list_images_recursive_sorted_filtered(tmp_path):
    _img(tmp_path / 'b')
    _img(tmp_path / 'a' / 'z', '.JPG')
    _img(tmp_path / 'a' / 'y', '.tiff')
    (tmp_path / 'notes.txt').write_text('x')
    _img(tmp_path / '.ipynb_checkpoints' / 'c')
    _img(tmp_path / '._hidden')
    found = list_images(tmp_path)
    assert [os.path.relpath(p, tmp_path) for p in found] == [os.path.join('a', 'y.tiff'),
                                                             os.path.join('a', 'z.JPG'), 'b.png']
    assert all(os.path.isabs(p) for p in found)


def test_list_images_survives_a_symlink_loop(tmp_path):
    _img(tmp_path / 'sub' / 'x')
    os.symlink(tmp_path, tmp_path / 'sub' / 'loop')
    assert len(list_images(tmp_path)) == 1


def test_scan_class_folders(tmp_path):
    _classes(tmp_path, {'red_panda': 3, 'cat': 2, 'dog': 1})
    _img(tmp_path / 'cat' / 'nested' / 'deeper' / 'n')
    (tmp_path / 'cat' / 'readme.md').write_text('not an image')
    _img(tmp_path / 'loose')  # a file at the top is not a class
    scan = scan_class_folders(tmp_path)
    assert isinstance(scan, ClassFolders)
    assert scan.labels == ['cat', 'red panda']
    assert scan.skipped == [('dog', 1)]
    assert Counter(label for _, label in scan.items) == {0: 3, 1: 3}
    assert any('deeper' in p for p, label in scan.items if label == 0)
    assert all(os.path.isabs(p) for p, _ in scan.items)


def test_scan_min_and_max_per_class(tmp_path):
    _classes(tmp_path, {'a': 5, 'b': 4, 'c': 2})
    scan = scan_class_folders(tmp_path, min_per_class=3, max_per_class=3)
    assert scan.labels == ['a', 'b'] and scan.skipped == [('c', 2)]
    a_items = [p for p, label in scan.items if label == 0]
    assert [os.path.basename(p) for p in a_items] == ['00.png', '01.png', '02.png']


def test_scan_accepts_relative_paths(tmp_path, monkeypatch):
    _classes(tmp_path / 'data', {'a': 2, 'b': 2})
    monkeypatch.chdir(tmp_path)
    scan = scan_class_folders('data')
    assert all(p.startswith(str(tmp_path)) for p, _ in scan.items)


def test_scan_errors_name_the_path_and_field(tmp_path):
    missing = tmp_path / 'missing'
    with pytest.raises(DatasetError, match='Folder does not exist') as info:
        scan_class_folders(missing, field='folder_train')
    assert str(missing) in str(info.value) and info.value.field == 'folder_train'

    afile = tmp_path / 'file.txt'
    afile.write_text('x')
    with pytest.raises(DatasetError, match='Not a folder') as info:
        scan_class_folders(afile)
    assert str(afile) in str(info.value) and info.value.field == 'folder'

    one = tmp_path / 'one'
    _classes(one, {'a': 3})
    with pytest.raises(DatasetError, match='at least two subdirectories') as info:
        scan_class_folders(one)
    assert str(one) in str(info.value)

    few = tmp_path / 'few'
    _classes(few, {'a': 3, 'b': 1})
    with pytest.raises(DatasetError, match='Did not find two valid categories') as info:
        scan_class_folders(few, min_per_class=2)
    assert str(few) in str(info.value) and 'at least 2 images' in str(info.value) and '"b" (1)' in str(info.value)


def test_scan_bad_min_max(tmp_path):
    _classes(tmp_path, {'a': 2, 'b': 2})
    with pytest.raises(DatasetError) as info:
        scan_class_folders(tmp_path, min_per_class=0, field='folder_train')
    assert info.value.field == 'folder_train_min_per_class'
    with pytest.raises(DatasetError) as info:
        scan_class_folders(tmp_path, min_per_class=3, max_per_class=2, field='folder_train')
    assert info.value.field == 'folder_train_max_per_class'


# ---------------------------------------------------------------- text lists

def test_read_image_list(tmp_path):
    a = _img(tmp_path / 'imgs' / 'a')
    b = _img(tmp_path / 'imgs' / 'with space')
    listing = tmp_path / 'train.txt'
    listing.write_text(f'# comment line\n\nimgs/a.png 0\n  imgs/with space.png   3  \n{a}\t1\n')
    assert read_image_list(listing) == [(a, 0), (b, 3), (a, 1)]


def test_read_image_list_relative_to_folder(tmp_path):
    a = _img(tmp_path / 'pics' / 'a')
    listing = tmp_path / 'lists' / 'train.txt'
    listing.parent.mkdir()
    listing.write_text('a.png 2\n')
    assert read_image_list(listing, folder=tmp_path / 'pics') == [(a, 2)]


def test_read_image_list_skips_bad_lines_with_one_counted_warning(tmp_path):
    # DIGITS' rule: lines without a label, or with a non-numeric or negative label, are skipped, not fatal
    a = _img(tmp_path / 'a')
    listing = tmp_path / 'train.txt'
    listing.write_text('a.png 0\na.png cat\na.png\na.png -1\na.png 2\n')
    with pytest.warns(UserWarning) as caught:
        assert read_image_list(listing, field='textfile_train_images') == [(a, 0), (a, 2)]
    assert len(caught) == 1
    message = str(caught[0].message)
    assert str(listing) in message and 'skipped 3 line(s)' in message and 'kept 2' in message
    assert 'line 2' in message and 'a.png cat' in message and 'line 4' in message
    seen = []
    assert read_image_list(listing, warn=seen.append) == [(a, 0), (a, 2)]
    assert len(seen) == 1 and 'skipped 3' in seen[0]


def test_read_image_list_refused_when_no_valid_line_remains(tmp_path):
    _img(tmp_path / 'a')
    listing = tmp_path / 'train.txt'
    listing.write_text('# only bad lines\na.png cat\na.png -3\n')
    with pytest.raises(DatasetError) as info:
        read_image_list(listing, field='textfile_train_images')
    message = str(info.value)
    assert str(listing) in message and 'No images listed' in message and '2 line(s)' in message
    assert 'line 2' in message and 'a.png cat' in message
    assert info.value.field == 'textfile_train_images'


def test_read_image_list_missing_images_reported_together(tmp_path):
    listing = tmp_path / 'train.txt'
    listing.write_text(''.join(f'gone{i}.png 0\n' for i in range(7)))
    with pytest.raises(DatasetError) as info:
        read_image_list(listing)
    message = str(info.value)
    assert message.startswith('7 image(s)') and 'gone4.png' in message and 'gone5.png' not in message
    assert '2 more' in message and str(listing) in message


def test_read_image_list_missing_file(tmp_path):
    with pytest.raises(DatasetError, match='does not exist') as info:
        read_image_list(tmp_path / 'nope.txt', field='textfile_val_images')
    assert info.value.field == 'textfile_val_images' and 'nope.txt' in str(info.value)


def test_read_labels_file(tmp_path):
    path = tmp_path / 'labels.txt'
    path.write_text('cat\n\n red panda \ndog\n')
    assert read_labels_file(path) == ['cat', 'red panda', 'dog']
    with pytest.raises(DatasetError) as info:
        read_labels_file(tmp_path / 'missing.txt')
    assert info.value.field == 'labels_file' and 'missing.txt' in str(info.value)


# ---------------------------------------------------------------- splits

def test_three_way_split_indices_values():
    assert three_way_split_indices(100, 25, 0) == (75, 100)
    assert three_way_split_indices(100, 20, 10) == (70, 90)
    assert three_way_split_indices(10, 0, 0) == (10, 10)
    assert three_way_split_indices(10, 100, 0) == (0, 10)
    assert three_way_split_indices(10, 0, 100) == (0, 0)
    assert three_way_split_indices(3, 1, 1) == (1, 2)  # tiny percentages still get one image each
    assert three_way_split_indices(10, 25, 0) == (8, 10)  # 7.5 train rounds up, val gets what is left
    assert three_way_split_indices(5, 50, 0) == (3, 5)  # Python 2 rounding: 2.5 -> 3 (banker's would give 2)
    assert three_way_split_indices(0, 25, 0) == (0, 0)


def test_three_way_split_guarantees_one_per_requested_split():
    for size in range(3, 60):
        for pct_val in (0, 1, 10, 25, 50, 98):
            for pct_test in (0, 1, 10, 25, 49):
                if pct_val + pct_test > 100:
                    continue
                a, b = three_way_split_indices(size, pct_val, pct_test)
                assert 0 <= a <= b <= size
                if pct_val + pct_test < 100:
                    assert a >= 1
                if pct_val:
                    assert b - a >= 1
                if pct_test:
                    assert size - b >= 1
                else:
                    assert b == size
                if not pct_val:
                    assert a == b


@pytest.mark.parametrize('pct_val,pct_test,field', [(-1, 0, 'folder_pct_val'), (101, 0, 'folder_pct_val'),
                                                    (0, 120, 'folder_pct_test'), (60, 50, 'folder_pct_test')])
def test_three_way_split_bad_percentages(pct_val, pct_test, field):
    with pytest.raises(DatasetError) as info:
        three_way_split_indices(10, pct_val, pct_test)
    assert info.value.field == field


def _items(counts: list[int]) -> list[tuple[str, int]]:
    return [(f'c{label}/{i}.png', label) for label, n in enumerate(counts) for i in range(n)]


def test_split_by_class_is_deterministic_and_complete():
    items = _items([10, 8, 4])
    first, dropped = split_by_class(items, 3, 25, 25, np.random.default_rng(5))
    again, _ = split_by_class(items, 3, 25, 25, np.random.default_rng(5))
    other, _ = split_by_class(items, 3, 25, 25, np.random.default_rng(6))
    assert first == again and first != other and dropped == []
    together = first['train'] + first['val'] + first['test']
    assert sorted(together) == sorted(items)
    for label, n in enumerate([10, 8, 4]):
        a, b = three_way_split_indices(n, 25, 25)
        assert sum(1 for _, lab in first['train'] if lab == label) == a
        assert sum(1 for _, lab in first['val'] if lab == label) == b - a


def test_split_by_class_drops_classes_too_small_for_the_splits():
    items = _items([5, 2, 0, 3])
    splits, dropped = split_by_class(items, 4, 20, 20, np.random.default_rng(0))
    assert dropped == [1, 2]  # 3 splits asked for: 2 images are not enough, 0 never is
    assert {label for stage in splits.values() for _, label in stage} == {0, 3}
    labels, renumbered = drop_classes(['a', 'b', 'c', 'd'], splits, dropped)
    assert labels == ['a', 'd']
    assert {label for stage in renumbered.values() for _, label in stage} == {0, 1}
    assert sorted(p for p, lab in renumbered['train'] if lab == 1) == sorted(p for p, lab in splits['train']
                                                                               if lab == 3)


def test_split_by_class_bad_label():
    with pytest.raises(DatasetError, match='outside'):
        split_by_class([('x.png', 4)], 2, 25, 0, np.random.default_rng(0))


# ---------------------------------------------------------------- feature / label pairs

def test_pair_folders_recursive_and_across_extensions(tmp_path):
    for stem in ('b', 'a', 'sub/c', 'a.k'):
        _img(tmp_path / 'feat' / stem, '.png')
        _img(tmp_path / 'lab' / stem, '.jpg')
    pairs = pair_folders(tmp_path / 'feat', tmp_path / 'lab')
    assert [(os.path.relpath(f, tmp_path), os.path.relpath(lab, tmp_path)) for f, lab in pairs] == [
        (os.path.join('feat', s) + '.png', os.path.join('lab', s) + '.jpg')
        for s in ('a', 'a.k', 'b', os.path.join('sub', 'c'))]


def test_pair_folders_missing_folder(tmp_path):
    _img(tmp_path / 'lab' / 'a')
    with pytest.raises(DatasetError, match='Folder does not exist or is not reachable') as info:
        pair_folders(tmp_path / 'nope', tmp_path / 'lab')
    assert info.value.field == 'feature_folder' and str(tmp_path / 'nope') in str(info.value)


def test_pair_folders_no_images(tmp_path):
    _img(tmp_path / 'feat' / 'a')
    (tmp_path / 'lab').mkdir()
    (tmp_path / 'lab' / 'a.txt').write_text('x')
    with pytest.raises(DatasetError, match='Unable to find supported images in') as info:
        pair_folders(tmp_path / 'feat', tmp_path / 'lab')
    assert info.value.field == 'label_folder' and str(tmp_path / 'lab') in str(info.value)


def test_pair_folders_count_mismatch(tmp_path):
    for stem in ('a', 'b'):
        _img(tmp_path / 'feat' / stem)
    _img(tmp_path / 'lab' / 'a')
    with pytest.raises(DatasetError, match=r'Expect same number of images in feature and label folders \(2!=1\)'):
        pair_folders(tmp_path / 'feat', tmp_path / 'lab')


def test_pair_folders_name_mismatch(tmp_path):
    _img(tmp_path / 'feat' / 'a')
    _img(tmp_path / 'lab' / 'b')
    with pytest.raises(DatasetError, match=r'No corresponding feature/label pair found for \(a,b\)') as info:
        pair_folders(tmp_path / 'feat', tmp_path / 'lab')
    assert str(tmp_path / 'feat') in str(info.value) and str(tmp_path / 'lab') in str(info.value)


def test_split_pairs():
    train, val = split_pairs(25, 10, seed=3)
    assert len(val) == 2 and len(train) == 23  # floor(2.5)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(25))
    again_train, again_val = split_pairs(25, 10, seed=3)
    assert np.array_equal(train, again_train) and np.array_equal(val, again_val)
    assert len(split_pairs(10, 0, seed=1)[1]) == 0 and len(split_pairs(10, 100, seed=1)[0]) == 0
    with pytest.raises(DatasetError) as info:
        split_pairs(10, 150, seed=1)
    assert info.value.field == 'folder_pct_val'
