"""The one place for duration / ETA text (store.durations) and status colours (ui.formats)."""
from __future__ import annotations

import math

from digits_widgets.store.durations import clock, eta
from digits_widgets.store.jobs import ABORTED, DONE, ERROR, INITIALIZED, RUNNING, STATUSES, WAITING


def test_clock():
    assert [clock(s) for s in (0, 12, 65, 3599.6, 3725)] == ["0:00", "0:12", "1:05", "1:00:00", "1:02:05"]


def test_eta_one_style_and_unknowns():
    assert eta(2.0) == "ETA 2s" and eta(65) == "ETA 1:05" and eta(3725) == "ETA 1:02:05"
    assert eta(72) == "ETA 1:12" and eta(59.6) == "ETA 1:00"
    assert eta(None) == eta(-1) == eta(math.inf) == eta(math.nan) == ""


def test_every_status_has_a_colour():
    from digits_widgets.ui.formats import OTHER, STATUS_COLOURS, status_colour

    assert set(STATUS_COLOURS) == set(STATUSES)
    assert status_colour(DONE) == "#2e7d32" and status_colour(ERROR) == "#c62828"
    assert len({status_colour(s) for s in (DONE, RUNNING, ERROR, ABORTED, WAITING, INITIALIZED)}) == 6
    assert status_colour("Unheard of") == OTHER


def test_bar_styles_of_finished_statuses():
    from digits_widgets.ui.formats import bar_style

    assert [bar_style(s) for s in (DONE, ERROR, ABORTED, RUNNING)] == ["success", "danger", "warning", ""]
