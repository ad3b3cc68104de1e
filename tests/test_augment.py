"""Data augmentation: labels follow the geometry, probabilities, reproducibility, noise and HSV, crops."""
from __future__ import annotations

import colorsys
from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from digits_widgets.data.augment import (Augmentation, _hsv_to_rgb, _rgb_to_hsv, augment, center_crop,
                                         random_crop)
from digits_widgets.errors import OptionError, TrainingError

# the eight symmetries of a square, named as (quarter turns counter-clockwise, flipped left-right first)
DIHEDRAL = {(k, lr): (lambda t, k=k, lr=lr: torch.rot90(t.flip(-1) if lr else t, k, dims=(-2, -1)))
            for k in range(4) for lr in (False, True)}


def _pattern(n: int, c: int = 3, h: int = 5, w: int = 5) -> torch.Tensor:
    """Every pixel of every sample distinct, so any flip or rotation is recognisable."""
    return torch.arange(n * c * h * w, dtype=torch.float32).view(n, c, h, w) % 251


def _which(before: torch.Tensor, after: torch.Tensor) -> tuple[int, bool]:
    found = [key for key, f in DIHEDRAL.items() if torch.equal(f(before), after)]
    assert len(found) == 1
    return found[0]


def _normalise(key: tuple[int, bool]) -> str:
    """Group-element names: 'id', 'lr', 'ud', 'lrud' (= rot180), 'r90', 'r270', ..."""
    names = {(0, False): 'id', (0, True): 'lr', (2, True): 'ud', (2, False): 'r180',
             (1, False): 'r90', (3, False): 'r270', (1, True): 'r90lr', (3, True): 'r270lr'}
    return names[key]


def _transforms(aug: Augmentation, n: int = 400, seed: int = 0, label_dims: int = 4) -> Counter:
    x = _pattern(n)
    y = x[:, :1].clone() * 2 if label_dims == 4 else x[:, 0].clone() * 2
    out, out_y = augment(x, y, aug, torch.Generator().manual_seed(seed))
    seen = Counter()
    for i in range(n):
        key = _which(x[i], out[i])
        assert torch.equal(DIHEDRAL[key](y[i]), out_y[i]), 'the image label must follow the input'
        seen[_normalise(key)] += 1
    return seen


@pytest.mark.parametrize('aug, expected', [
    (Augmentation(flip='fliplr'), {'id': 1 / 2, 'lr': 1 / 2}),
    (Augmentation(flip='flipud'), {'id': 1 / 2, 'ud': 1 / 2}),
    (Augmentation(flip='fliplrud'), {'id': 1 / 4, 'lr': 1 / 4, 'ud': 1 / 4, 'r180': 1 / 4}),
    (Augmentation(quad_rot='rot90'), {'id': 1 / 3, 'r90': 1 / 3, 'r270': 1 / 3}),
    (Augmentation(quad_rot='rot180'), {'id': 1 / 2, 'r180': 1 / 2}),
    (Augmentation(quad_rot='rotall'), {'id': 1 / 4, 'r90': 1 / 4, 'r180': 1 / 4, 'r270': 1 / 4}),
])
def test_geometry_probabilities_and_label_follows(aug, expected):
    n = 400
    seen = _transforms(aug, n)
    assert set(seen) == set(expected)
    for name, p in expected.items():
        sd = (n * p * (1 - p)) ** 0.5
        assert abs(seen[name] - n * p) < 4 * sd, (name, seen)


def test_flip_and_rotation_combine_and_nhw_labels_follow():
    seen = _transforms(Augmentation(flip='fliplrud', quad_rot='rotall'), 400, label_dims=3)
    assert len(seen) == 8  # all symmetries of the square occur


def test_other_labels_pass_through_untouched():
    x = _pattern(8)
    aug = Augmentation(flip='fliplrud', quad_rot='rotall', noise=0.1, hsv=True)
    for y in (torch.arange(8), torch.randn(8, 10), torch.randn(8, 5, 4), None):
        out, out_y = augment(x, y, aug, torch.Generator().manual_seed(1))
        assert out_y is y
        assert out.shape == x.shape


def test_photometric_transforms_leave_image_labels_alone():
    x = torch.full((4, 3, 6, 6), 100.0)
    y = torch.rand(4, 3, 6, 6) * 255
    out, out_y = augment(x, y, Augmentation(noise=0.2, hsv=True), torch.Generator().manual_seed(0))
    assert out_y is y and not torch.equal(out, x)


def test_same_seed_same_result_and_inputs_untouched():
    x = _pattern(16) + 2
    y = x[:, :1].clone()
    x0, y0 = x.clone(), y.clone()
    aug = Augmentation(flip='fliplrud', quad_rot='rotall', noise=0.05, hsv=True)
    a = augment(x, y, aug, torch.Generator().manual_seed(5))
    b = augment(x, y, aug, torch.Generator().manual_seed(5))
    c = augment(x, y, aug, torch.Generator().manual_seed(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    assert torch.equal(x, x0) and torch.equal(y, y0)


def test_inactive_augmentation_is_identity():
    aug = Augmentation(hsv=False, noise=0.0)
    assert not aug.active and not Augmentation(hsv=True, hsv_h=0, hsv_s=0, hsv_v=0).active
    assert Augmentation(flip='fliplr').active and Augmentation(noise=0.01).active and Augmentation(hsv=True).active
    x = torch.rand(2, 3, 4, 4)
    assert augment(x, None, aug)[0] is x


def test_noise_stddev_is_in_0_1_units():
    x = torch.full((16, 3, 32, 32), 127.5)
    out, _ = augment(x, None, Augmentation(noise=0.03), torch.Generator().manual_seed(0))
    diff = out - x
    assert diff.std().item() == pytest.approx(0.03 * 255, rel=0.02)
    assert abs(diff.mean().item()) < 0.1


def test_result_is_clamped_and_integer_batches_become_float():
    x = torch.randint(0, 256, (8, 3, 8, 8), dtype=torch.uint8)
    out, _ = augment(x, None, Augmentation(noise=1.0), torch.Generator().manual_seed(0))
    assert out.dtype == torch.float32
    assert out.min().item() == 0.0 and out.max().item() == 255.0


def _colourful(n: int = 64, seed: int = 0) -> torch.Tensor:
    return 40 + torch.rand(n, 3, 6, 6, generator=torch.Generator().manual_seed(seed)) * 170


def test_hue_shift_keeps_value_and_saturation():
    x = _colourful()
    out, _ = augment(x, None, Augmentation(hsv=True, hsv_h=0.2, hsv_s=0, hsv_v=0), torch.Generator().manual_seed(0))
    hsv_in, hsv_out = _rgb_to_hsv(x / 255), _rgb_to_hsv(out / 255)
    torch.testing.assert_close(hsv_out[:, 1:], hsv_in[:, 1:], atol=1e-5, rtol=0)
    shift = (hsv_out[:, 0] - hsv_in[:, 0]) % 1.0
    per_sample = shift.flatten(1)
    spread = torch.minimum(per_sample - per_sample[:, :1], 1 - (per_sample - per_sample[:, :1])).abs()
    assert spread.max().item() < 1e-4  # one hue shift per sample
    centred = (per_sample[:, 0] + 0.5) % 1.0 - 0.5
    assert centred.abs().max().item() > 0.05 and 0.1 < centred.std().item() < 0.3


def test_value_and_saturation_shifts_keep_hue():
    x = _colourful()
    for aug in (Augmentation(hsv=True, hsv_h=0, hsv_s=0, hsv_v=0.05), Augmentation(hsv=True, hsv_h=0, hsv_s=0.05,
                                                                                    hsv_v=0)):
        out, _ = augment(x, None, aug, torch.Generator().manual_seed(3))
        hsv_in, hsv_out = _rgb_to_hsv(x / 255), _rgb_to_hsv(out / 255)
        keep = (hsv_out[:, 1] > 0.05) & (hsv_in[:, 1] > 0.05)  # hue is meaningless at zero saturation
        d = (hsv_out[:, 0] - hsv_in[:, 0] + 0.5) % 1.0 - 0.5
        assert d[keep].abs().max().item() < 1e-4
        assert not torch.equal(out, x)


def test_gray_batches_get_a_value_shift_only():
    x = torch.full((400, 1, 4, 4), 128.0)
    gen = torch.Generator().manual_seed(0)
    out, _ = augment(x, None, Augmentation(hsv=True, hsv_h=0.5, hsv_s=0.5, hsv_v=0.06), gen)
    shift = (out - x).flatten(1)
    assert torch.equal(shift, shift[:, :1].expand_as(shift))  # one brightness shift per sample
    assert shift[:, 0].std().item() == pytest.approx(0.06 * 255, rel=0.15)
    out, _ = augment(x, None, Augmentation(hsv=True, hsv_h=0.5, hsv_s=0.5, hsv_v=0.0), gen)
    assert torch.equal(out, x)


def test_hsv_on_other_channel_counts_is_an_option_error():
    with pytest.raises(OptionError) as info:
        augment(torch.rand(2, 2, 4, 4), None, Augmentation(hsv=True))
    assert info.value.field == 'hsv' and '2 channels' in str(info.value)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2 ** 31 - 1))
def test_rgb_hsv_round_trip_matches_colorsys(seed):
    rgb = torch.rand(2, 3, 3, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    rgb[0, :, 0, 0] = 0.5  # a gray pixel
    hsv = _rgb_to_hsv(rgb)
    torch.testing.assert_close(_hsv_to_rgb(hsv), rgb, atol=1e-9, rtol=0)
    r, g, b = rgb[1, :, 1, 2].tolist()
    torch.testing.assert_close(hsv[1, :, 1, 2], torch.tensor(colorsys.rgb_to_hsv(r, g, b), dtype=torch.float64))


def test_ninety_degree_rotations_need_square_images():
    x = torch.rand(2, 3, 4, 6)
    for quad_rot in ('rot90', 'rotall'):
        with pytest.raises(OptionError) as info:
            augment(x, None, Augmentation(quad_rot=quad_rot))
        assert info.value.field == 'quad_rot' and '4x6' in str(info.value)
    out, _ = augment(x, None, Augmentation(quad_rot='rot180'), torch.Generator().manual_seed(0))
    assert out.shape == x.shape


@pytest.mark.parametrize('kwargs, field', [
    ({'flip': 'horizontal'}, 'flip'), ({'quad_rot': 'rot45'}, 'quad_rot'), ({'noise': 1.5}, 'noise'),
    ({'noise': -0.1}, 'noise'), ({'noise': '0.1'}, 'noise'), ({'hsv': 1}, 'hsv'), ({'hsv_h': 0.6}, 'hsv_h'),
    ({'hsv_s': -0.01}, 'hsv_s'), ({'hsv_v': float('nan')}, 'hsv_v'),
])
def test_augmentation_option_errors(kwargs, field):
    with pytest.raises(OptionError) as info:
        Augmentation(**kwargs)
    assert info.value.field == field


def test_bad_batches_are_training_errors():
    with pytest.raises(TrainingError):
        augment(torch.rand(3, 4, 4), None, Augmentation(flip='fliplr'))
    with pytest.raises(TrainingError):
        augment(torch.rand(3, 1, 4, 4), torch.rand(2, 1, 4, 4), Augmentation(flip='fliplr'))


# ---------------------------------------------------------------- crops

def test_center_crop_picks_the_centre():
    x = _pattern(2, 3, 7, 8)
    y = x[:, 0].clone()
    out, out_y = center_crop(x, y, 4)
    assert out.shape == (2, 3, 4, 4)
    assert torch.equal(out, x[:, :, 1:5, 2:6])
    assert torch.equal(out_y, y[:, 1:5, 2:6])
    labels = torch.arange(2)
    assert center_crop(x, labels, 7)[1] is labels


def test_random_crop_same_window_for_input_and_label():
    n, h, w, size = 300, 6, 7, 4
    x = torch.arange(h * w, dtype=torch.float32).view(1, 1, h, w).repeat(n, 3, 1, 1)
    x[:, 1] += 1000  # channels stay aligned
    y4, y3 = x[:, :1] * -1, x[:, 0] * 2
    gen = torch.Generator().manual_seed(0)
    out, out_y4 = random_crop(x, y4, size, gen)
    _, out_y3 = random_crop(x, y3, size, torch.Generator().manual_seed(0))
    assert out.shape == (n, 3, size, size) and out_y4.shape == (n, 1, size, size) and out_y3.shape == (n, size, size)
    windows = set()
    for i in range(n):
        top, left = divmod(int(out[i, 0, 0, 0]), w)
        windows.add((top, left))
        assert torch.equal(out[i], x[i, :, top:top + size, left:left + size])
        assert torch.equal(out_y4[i], y4[i, :, top:top + size, left:left + size])
        assert torch.equal(out_y3[i], y3[i, top:top + size, left:left + size])
    assert windows == {(t, l) for t in range(h - size + 1) for l in range(w - size + 1)}
    again, _ = random_crop(x, None, size, torch.Generator().manual_seed(0))
    assert torch.equal(again, out)


def test_crop_too_large_or_invalid():
    x = torch.rand(2, 3, 24, 32)
    for crop in (random_crop, center_crop):
        with pytest.raises(OptionError) as info:
            crop(x, None, 28)
        assert info.value.field == 'crop_size'
        assert str(info.value) == 'crop_size (28) is larger than the image size (32x24)'
    with pytest.raises(OptionError) as info:
        center_crop(x, None, 0)
    assert info.value.field == 'crop_size'
    assert random_crop(x, None, 24)[0].shape == (2, 3, 24, 24)
