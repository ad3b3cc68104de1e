"""Smoke test: ipywidgets, bqplot, ipycanvas and an anywidget render in a real JupyterLab.

The anywidget is the package's own network graph (``digits_widgets.ui.graph.GraphWidget``, bundle
``digits_widgets/static/graph.js`` built by ``npm run build``), fed a small hand-written graph: it proves that a
bundle built here loads in JupyterLab, draws, and follows a graph set later from Python.
"""
from __future__ import annotations

import importlib.util
import re
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from lab import (append_and_run, assert_no_widget_errors, canvas_pixels, cell_output_text, open_notebook,
                 restart_kernel, run_all, svg_path_points, write_notebook)

pytestmark = pytest.mark.browser

# Located without importing digits_widgets here (it imports torch: seconds); the kernel imports it.
GRAPH_JS = Path(importlib.util.find_spec("digits_widgets").origin).parent / "static" / "graph.js"

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
    # 3: the package's anywidget (the network graph, with the built bundle) on a two-layer graph
    """\
from digits_widgets.ui.graph import GraphWidget
def layer(name, kind, shape, params=0):
    return {"id": name, "name": name, "type": kind, "shape": shape, "params": params, "detail": kind,
            "stats": None}
nodes = [layer("data", "Input", [1, 28, 28]), layer("conv1", "Conv2d", [20, 24, 24], 520)]
graph = GraphWidget({"nodes": nodes, "edges": [{"source": "data", "target": "conv1"}]}, height=300)
display(graph)""",
]


def test_widgets_render(page, lab, nb_dir, stopwatch):
    assert GRAPH_JS.exists(), f"{GRAPH_JS} is missing: build it with `npm run build`"
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

        boxes = page.locator("g.dw-graph-node")
        expect(boxes).to_have_count(2)
        expect(page.locator("g.dw-graph-node .dw-name")).to_have_text(["data", "conv1"])
        expect(page.locator('g.dw-graph-node[data-node-id="conv1"] .dw-type')).to_have_text("Conv2d")
        expect(page.locator(".dw-graph-details")).to_contain_text("2 nodes, 520 parameters.")
        assert_no_widget_errors(page)

    with stopwatch("update"):
        append_and_run(page, 'graph.graph = {"nodes": nodes + [layer("fc", "Linear", [10], 5770)],\n'
                             '               "edges": [{"source": "data", "target": "conv1"},\n'
                             '                         {"source": "conv1", "target": "fc"}]}\n'
                             'graph.selected = "fc"')
        expect(boxes).to_have_count(3)
        expect(page.locator("g.dw-graph-node .dw-name")).to_have_text(["data", "conv1", "fc"])
        expect(page.locator('g.dw-graph-node[data-node-id="fc"]')).to_have_class(re.compile("dw-selected"))
        expect(page.locator(".dw-graph-details")).to_contain_text("Linear")
        assert_no_widget_errors(page)

    with stopwatch("restart"):
        restart_kernel(page)
        append_and_run(page, 'print("fresh:", "graph" in globals())')
        assert "fresh: False" in cell_output_text(page, -1)

    print(f"\ntest_widgets_render: {time.perf_counter() - t0:.1f} s (excluding server/browser start)")
