"""Tick choices that keep chart labels apart (issue 11, defects 3 and 6)."""
from digits_widgets.ui.ticks import distinct_tick_format, nice_ticks


def test_nice_ticks_start_at_zero_with_a_round_step_and_never_pass_the_top():
    assert nice_ticks(0.01) == [0.0, 0.0025, 0.005, 0.0075, 0.01]
    assert nice_ticks(0.037) == [0.0, 0.01, 0.02, 0.03]
    assert nice_ticks(1e-5) == [0.0, 2.5e-06, 5e-06, 7.5e-06, 1e-05]
    for top in (0.0099, 0.3, 7.0, 123.0):
        ticks = nice_ticks(top)
        assert 3 <= len(ticks) <= 6 and ticks[0] == 0 and ticks[-1] <= top
    assert nice_ticks(0.0) == [0.0] and nice_ticks(float("nan")) == [0.0]


def test_distinct_tick_format_has_enough_digits_for_a_narrow_band():
    import re

    def fmt(value, spec):   # d3's "~g" for the cases used: Python's "g" trims the same zeros
        digits = int(re.match(r"\.(\d+)~g", spec).group(1))
        return f"{value:.{digits}g}"
    spec = distinct_tick_format(0.5017, 0.5019, 4)
    ticks = [0.5017 + i * 0.00005 for i in range(5)]
    assert len({fmt(t, spec) for t in ticks}) == 5
    assert distinct_tick_format(-0.09, 0.08, 4) == ".2~g"   # a wide range stays short
    assert distinct_tick_format(1.0, 1.0) == ".2~g"
