"""Smoke test: ipywidgets, bqplot, ipycanvas and the anywidget status badge render in a real JupyterLab."""
from __future__ import annotations

import importlib.util
import re
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from lab import (append_and_run, assert_no_widget_errors, canvas_pixels, cell_output_text, open_notebook,
                 restart_kernel, run_all, svg_path_points, wait_for_text, write_notebook)

pytestmark = pytest.mark.browser

# Located without importing digits_widgets here (it imports torch: seconds); the kernel imports it.
BADGE_JS = Path(importlib.util.find_spec("digits_widgets").origin).parent / "static" / "status_badge.js"

CELLS = [
    # 0: plain widgets, and which Python runs the kernel
    """\
import sys
import ipywidgets as widgets
from IPython.display import display
print("kernel python:", sys.executable)
slider = widgets.IntSlider(value=7, min=0, max=10, description="Slider")
progress = widgets.IntProgress(value=3, min=0, max=10, description="Progress")
display(slider, progress)""",
    # 1: a bqplot line displayed with 5 points, then updated from the same cell to 50 (no threads, no sleep)
    """\
import numpy as np
import bqplot as bq
xs, ys = bq.LinearScale(), bq.LinearScale()
line = bq.Lines(x=np.arange(5), y=np.zeros(5), scales={"x": xs, "y": ys})
fig = bq.Figure(marks=[line], axes=[bq.Axis(scale=xs), bq.Axis(scale=ys, orientation="vertical")],
                layout=widgets.Layout(width="500px", height="300px"))
display(fig)
x = np.arange(50)
with line.hold_sync():
    line.x, line.y = x, np.sin(x / 5)
progress.value = 10""",
    # 2: an ipycanvas canvas with a red square drawn when the view is ready
    """\
from ipycanvas import Canvas
canvas = Canvas(width=64, height=48)
def draw(*_):
    canvas.fill_style = "red"
    canvas.fill_rect(8, 8, 16, 16)
canvas.on_client_ready(draw)
display(canvas)""",
    # 3: the anywidget status badge, with the package's built bundle
    """\
import pathlib, anywidget, traitlets, digits_widgets
class Badge(anywidget.AnyWidget):
    _esm = pathlib.Path(digits_widgets.__file__).parent / "static" / "status_badge.js"
    status = traitlets.Unicode("Running").tag(sync=True)
    done = traitlets.Int(3).tag(sync=True)
    total = traitlets.Int(10).tag(sync=True)
    eta = traitlets.Float(12.0).tag(sync=True)
badge = Badge()
display(badge)""",
]


def test_widgets_render(page, lab, nb_dir, stopwatch):
    assert BADGE_JS.exists(), f"{BADGE_JS} is missing: build it with `npm run build`"
    t0 = time.perf_counter()
    nb = write_notebook(nb_dir / "smoke.ipynb", CELLS)
    with stopwatch("open"):
        open_notebook(page, lab, nb)
    with stopwatch("run all"):
        run_all(page)

    with stopwatch("assert"):
        # kernelspec python3 resolved to the venv's interpreter
        assert f"kernel python: {sys.executable}" in cell_output_text(page, 0)

        expect(page.locator(".jp-OutputArea-output .widget-slider")).to_be_visible()
        expect(page.locator(".jp-OutputArea-output .widget-readout").first).to_have_text("7")
        expect(page.locator(".jp-OutputArea-output .widget-hprogress")).to_be_visible()
        # set to 10 of 10 at the end of cell 1: the bar is full
        expect(page.locator(".jp-OutputArea-output .widget-hprogress .progress-bar")).to_have_attribute(
            "style", re.compile(r"width: 100%"))

        assert svg_path_points(page, expect=50) == 50

        px = canvas_pixels(page)  # waits until the canvas is drawn on
        assert px.shape == (48, 64, 4)
        assert (px[16, 16] == [255, 0, 0, 255]).all(), px[16, 16]
        assert px[40, 56, 3] == 0  # outside the square: untouched, transparent

        badge = page.locator(".dw-status-badge")
        expect(badge).to_have_text("Running")
        expect(page.locator(".dw-status-detail")).to_contain_text("3 / 10 (30%)")
        wait_for_text(page, "3 / 10 (30%)")
        assert_no_widget_errors(page)

    with stopwatch("update"):
        append_and_run(page, 'badge.status = "Done"\nbadge.done = 10')
        expect(badge).to_have_text("Done")
        expect(page.locator(".dw-status-detail")).to_have_text("10 / 10 (100%)")
        assert_no_widget_errors(page)

    with stopwatch("restart"):
        restart_kernel(page)
        append_and_run(page, 'print("fresh:", "badge" in globals())')
        assert "fresh: False" in cell_output_text(page, -1)

    print(f"\ntest_widgets_render: {time.perf_counter() - t0:.1f} s (excluding server/browser start)")
