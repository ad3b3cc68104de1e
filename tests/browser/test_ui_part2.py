"""The notebook UI, part 2, as a person uses it in a real JupyterLab (headless Chromium).

One notebook, one test:
  0. A small gradients dataset and the tutorial's regression network, trained for 5 epochs.
  1. The segmentation tutorial's triangles, a processing dataset and the FCN: started here, trained in the
     kernel's job thread while the browser works on the gradients panel.
  2. ``reg.test()``: the two slope sliders are set to 0.5 in the browser (one dragged to its right end, one
     typed into its readout), Test One is clicked; the canvas shows the gradient image with a red arrow
     whose tip and caret sit where the predicted slopes (printed by the panel, close to 0.5) put them.
  3. ``fcn.test()``: Path chosen and the grid image's path typed, "Do not resize" ticked, Test One clicked:
     the output is 48x48 (the panel says "output 1x48x48", the output picture is 48 x 5 = 240 px); then
     the Segmentation view is picked and a threshold between the output's min and max typed: the mask is
     drawn in magenta over the input on exactly the share of pixels the legend states.
  4. ``show_network(lenet)``: one SVG node per graph node, every leaf module of the built LeNet among them
     with its type; a click on conv1 shows its details (type Conv2d) and syncs ``selected`` to the kernel.
Then no widget errors anywhere.

Every wait is for a condition (Playwright waits, or `wait_until` polling), never a fixed sleep.
"""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from playwright.sync_api import expect

from lab import (IPYCANVAS, assert_no_widget_errors, canvas_pixels, cell_output_text, image_pixels,
                 open_notebook, run_cell, type_into, write_notebook)

pytestmark = pytest.mark.browser

SIZE = 16            # gradient images are SIZE x SIZE; the triangles too
GRID = 3             # the triangles' grid.png is GRID x GRID cells: 48 x 48
CANVAS = 256         # the gradients view scales its canvas to about 256 px (DEFAULT_SIZE)
ARROW_PCT = 80       # the gradients view's default arrow size


def cells(triangles_dir: str) -> list[str]:
    return [
        # 0: gradients dataset and regression model
        """\
import json, os
import digits_widgets as dw
ds = dw.datasets.gradients('g', train_count=200, val_count=50, image_size=(16, 16), seed=0)
ds.wait()
reg = dw.train(ds, dw.zoo.source('gradients_regression'), 'reg', epochs=5, lr=0.01, solver='adam',
               batch_size=16, seed=0)
print('reg:', reg.wait())""",
        # 1: the segmentation tutorial's data and FCN, started (not waited for)
        f"""\
tri = dw.generate_triangles({triangles_dir!r}, count=200, size={SIZE}, grid={GRID}, seed=0)
seg_ds = dw.datasets.processing('tri', tri['input'], tri['target'], seed=0)
fcn = dw.train(seg_ds, dw.zoo.source('segmentation_fcn'), 'fcn', epochs=2, mean='pixel', solver='adam',
               lr=0.001, batch_size=16, seed=0)
print('grid:', tri['grid'])""",
        # 2: the inference panel; the sliders start away from 0.5 so that setting them is observable
        """\
panel = reg.test()
panel.slope_x.value = panel.slope_y.value = 0.0
panel""",
        # 3: the FCN's panel, once trained
        """\
print('fcn:', fcn.wait())
seg = fcn.test()
seg""",
        # 4: the network graph
        """\
from digits_widgets.ui.graph import show_network
graph = show_network(dw.zoo.source('lenet'), (1, 28, 28), nclasses=10)
graph""",
        # 5: what the graph should hold: its nodes, and the leaf modules of the same network built
        """\
from digits_widgets.nets.network import build_for_input
net, _ = build_for_input(dw.zoo.source('lenet'), (1, 28, 28), 10, None, 'network')
leaves = {n: type(m).__name__ for n, m in net.module.inner.named_modules() if n and not list(m.children())}
print(json.dumps({'nodes': len(graph.graph['nodes']), 'leaves': leaves,
                  'graph': [[n['id'], n['name'], n['type']] for n in graph.graph['nodes']]}))""",
        # 6: the node clicked in the browser, as the kernel sees it
        "print('selected:', repr(graph.selected))",
    ]


FINISHED_ARROW = """(d) => {
    const levels = new Set();
    let red = 0, opaque = true;
    for (let k = 0; k < d.length; k += 4) {
        if (d[k + 3] !== 255) opaque = false;
        if (d[k] === d[k + 1] && d[k + 1] === d[k + 2]) levels.add(d[k]);
        if (d[k] > 200 && d[k + 1] < 70 && d[k + 2] < 70) red++;
    }
    return opaque && levels.size >= 10 && red >= 500;
}"""

GRAD_CELL, SEG_START_CELL, PANEL_CELL, SEG_CELL, GRAPH_CELL, GRAPH_INFO_CELL, SELECTED_CELL = range(7)


def cell_outputs(page, index: int):
    """The output area of the index-th cell (so assertions never match another cell's output)."""
    return page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-OutputArea")


def tag_cell(page, index: int, tag: str) -> None:
    """Give the index-th cell's node a data-dw-test attribute, so plain CSS selectors can scope to it."""
    page.locator(".jp-Notebook .jp-Cell").nth(index).evaluate("(el, t) => el.setAttribute('data-dw-test', t)", tag)


def labelled(scope, kind: str, label: str):
    """An ipywidgets control (`.widget-slider`, `.widget-dropdown`, `.widget-text`...) by its description."""
    return scope.locator(f".{kind}").filter(
        has=scope.page.locator(".widget-label", has_text=re.compile(r"^\s*" + re.escape(label) + r"\s*$")))


def captioned_image(scope, caption: str):
    """The <img> of a view's captioned picture (a VBox of a caption HTML and an ipywidgets Image)."""
    box = scope.locator(".widget-vbox").filter(has=scope.page.locator(
        ":scope > .widget-html", has_text=re.compile(r"^\s*" + re.escape(caption) + r"\s*$")))
    return box.locator(":scope > img")


def drag_to_right_end(page, slider) -> None:
    """Drag a slider's handle past the right end of its track (a slider clamps to its max)."""
    handle = slider.locator(".noUi-handle")
    track = slider.locator(".noUi-target")
    handle.scroll_into_view_if_needed()
    h, t = handle.bounding_box(), track.bounding_box()
    page.mouse.move(h["x"] + h["width"] / 2, h["y"] + h["height"] / 2)
    page.mouse.down()
    page.mouse.move(t["x"] + t["width"] + 40, h["y"] + h["height"] / 2, steps=10)
    page.mouse.up()


def type_into_readout(slider, text: str) -> None:
    """The slider's readout is editable (ipywidgets 8): select its text, type a value, Enter."""
    readout = slider.locator(".widget-readout")
    readout.click()
    readout.press("Control+a")
    readout.press_sequentially(text)
    readout.press("Enter")


def test_gradients_segmentation_graph(page, lab, nb_dir, stopwatch):
    triangles = nb_dir / "triangles"
    nb = write_notebook(nb_dir / "ui_part2.ipynb", cells(str(triangles)))
    with stopwatch("open"):
        open_notebook(page, lab, nb)

    # ---- 0-1. train the regression model; start the FCN ---------------------------------------------
    with stopwatch("train gradients"):
        run_cell(page, GRAD_CELL, timeout=180)  # imports torch, creates the dataset, trains: slow when busy
        assert "reg: Done" in cell_output_text(page, GRAD_CELL)
        run_cell(page, SEG_START_CELL, timeout=60)
        assert f"grid: {triangles / 'grid.png'}" in cell_output_text(page, SEG_START_CELL)

    # ---- 2. gradients: sliders to 0.5 in the browser, Test One, the arrow on the canvas ---------------
    with stopwatch("gradients panel"):
        tag_cell(page, PANEL_CELL, "gradients-cell")
        run_cell(page, PANEL_CELL, timeout=60)
        panel = cell_outputs(page, PANEL_CELL)
        sx, sy = labelled(panel, "widget-slider", "x slope"), labelled(panel, "widget-slider", "y slope")
        expect(sx.locator(".widget-readout")).to_have_text("0.00")
        expect(sy.locator(".widget-readout")).to_have_text("0.00")
        preview = panel.locator(".widget-hbox img").first   # the test image, previewed by the sliders
        expect(preview).to_be_visible()
        before = preview.get_attribute("src")

        drag_to_right_end(page, sx)
        expect(sx.locator(".widget-readout")).to_have_text("0.50")
        expect(preview).not_to_have_attribute("src", before)   # the kernel got it and redrew the preview
        type_into_readout(sy, "0.5")
        expect(sy.locator(".widget-readout")).to_have_text("0.50")

        test_one = panel.locator("button", has_text=re.compile(r"^\s*Test One\s*$"))
        expect(test_one).to_be_enabled()
        test_one.click()
        # the summary names the test image by the slopes the kernel used: both sliders reached it
        expect(panel.get_by_text("gradient (0.5, 0.5)")).to_be_visible(timeout=60_000)
        values = panel.get_by_text(re.compile(r"gx = -?\d"))
        expect(values).to_be_visible()
        text = values.inner_text()
        print(f"\npredicted: {text}")
        m = re.search(r"gx = (-?[\d.]+), gy = (-?[\d.]+)", text)
        assert m, text
        gx, gy = float(m.group(1)), float(m.group(2))
        assert abs(gx - 0.5) < 0.15 and abs(gy - 0.5) < 0.15, f"predicted slopes {gx}, {gy}: not close to 0.5"
        expect(panel.locator(".widget-html", has_text="Running inference")).to_have_count(0)
        assert panel.locator(".widget-html", has_text=re.compile(r"Error|Traceback")).count() == 0

        canvas_sel = f'[data-dw-test="gradients-cell"] {IPYCANVAS}'
        # the finished drawing: the image over the whole canvas (ten or more gray levels) and the red caret
        px = canvas_pixels(page, canvas_sel, timeout=60, until=FINISHED_ARROW)
        assert px.shape == (CANVAS, CANVAS, 4), px.shape
        r, g, b = (px[:, :, k].astype(int) for k in range(3))
        gray = (r == g) & (g == b)
        levels = len(np.unique(r[gray]))
        red = (r > 200) & (g < 70) & (b < 70)
        print(f"canvas: {levels} gray levels, {int(red.sum())} red pixels")
        assert levels >= 10, f"the gradient image is (nearly) blank: {levels} gray levels"
        assert red.sum() >= 500, f"no arrow: {int(red.sum())} red pixels"
        assert px[:, :, 3].min() == 255, "the image should cover the whole canvas"
        # the caret's three corners are where DIGITS' geometry puts them for the printed slopes
        # (slightly off from the rounded values printed: within a few pixels)
        scale = CANVAS / SIZE
        grad = np.array([gx, gy]) * SIZE
        centre = np.array([SIZE / 2, SIZE / 2])
        tip = centre + grad * ARROW_PCT / 200
        tail = centre - grad * ARROW_PCT / 200
        rot = np.array([-grad[1], grad[0]])
        ys, xs = np.nonzero(red)
        for name, point in (("tip", tip), ("corner 1", tail + 0.1 * rot), ("corner 2", tail - 0.1 * rot)):
            px_, py_ = point * scale
            d = np.hypot(xs - px_, ys - py_).min()
            assert d <= 4, f"no red pixel near the arrow's {name} ({px_:.0f}, {py_:.0f}): nearest {d:.1f} px"

    # ---- 3. segmentation: a path typed, Do not resize, Test One; then the Segmentation view -----------
    with stopwatch("segmentation"):
        tag_cell(page, SEG_CELL, "seg-cell")
        run_cell(page, SEG_CELL, timeout=240)   # waits for the FCN
        assert "fcn: Done" in cell_output_text(page, SEG_CELL)
        seg = cell_outputs(page, SEG_CELL)
        seg.locator("button", has_text=re.compile(r"^\s*Path\s*$")).click()
        path_input = seg.locator('input[placeholder="/path/to/image.png"]')
        expect(path_input).to_be_visible()
        type_into(path_input, str(triangles / "grid.png"))
        dont_resize = seg.get_by_label("Do not resize input image(s)")
        dont_resize.check()
        expect(dont_resize).to_be_checked()
        view_picker = labelled(seg, "widget-dropdown", "Visualization method").locator("select")
        expect(view_picker).to_have_value("Image")   # a processing dataset's default
        seg.locator("button", has_text=re.compile(r"^\s*Test One\s*$")).click()

        # Image view: the output's shape and range, and the output drawn at 48 x 5 = 240 px
        summary = seg.locator(".widget-html", has_text="grid.png")
        expect(summary).to_contain_text("output 1x48x48", timeout=60_000)
        m = re.search(r"min (-?[\d.e+-]+), max (-?[\d.e+-]+)", summary.inner_text())
        assert m, summary.inner_text()
        lo, hi = float(m.group(1)), float(m.group(2))
        out_img = captioned_image(seg, "Output")
        out = image_pixels(out_img)
        assert out.shape[:2] == (5 * GRID * SIZE, 5 * GRID * SIZE), out.shape
        assert len(np.unique(out[:, :, 0])) >= 5, "the output picture is blank"

        # Segmentation view, picked in the browser; a threshold between the output's min and max typed
        view_picker.select_option("Segmentation")
        legend = seg.get_by_text(re.compile(r"foreground: output < "))
        expect(legend).to_be_visible()
        threshold = round((lo + hi) / 2, 1)
        thr_input = labelled(seg, "widget-text", "Threshold (1 channel)").locator("input")
        type_into(thr_input, f"{threshold:g}")
        thr_input.press("Enter")
        expect(legend).to_contain_text(f"output < {threshold:g} (")
        share = float(re.search(r"\(([\d.]+)% of pixels\)", legend.inner_text()).group(1))
        assert 0 < share < 100, legend.inner_text()
        mask_img = captioned_image(seg, "Segmentation")
        mask = image_pixels(mask_img)
        assert mask.shape[:2] == (5 * GRID * SIZE, 5 * GRID * SIZE), mask.shape
        r, g, b = (mask[:, :, k].astype(int) for k in range(3))
        magenta = (r - g > 60) & (b - g > 60)      # FOREGROUND (255, 0, 255) blended at opacity 0.5
        plain = (r == g) & (g == b)                # the input, untouched outside the mask
        print(f"segmentation: threshold {threshold:g}, legend {share}%, magenta {100 * magenta.mean():.2f}%")
        assert (magenta | plain).all(), "mask pixels other than the input and the magenta overlay"
        assert abs(100 * magenta.mean() - share) <= 0.1, (100 * magenta.mean(), share)
        assert plain.any() and len(np.unique(r[plain])) >= 2, "the input (black outlines on white) is not shown"
        clip_img = captioned_image(seg, "Output (clip)")
        assert image_pixels(clip_img).shape[:2] == (5 * GRID * SIZE, 5 * GRID * SIZE)

    # ---- 4. the network graph -------------------------------------------------------------------------
    with stopwatch("graph"):
        tag_cell(page, GRAPH_CELL, "graph-cell")
        run_cell(page, GRAPH_CELL, timeout=60)
        run_cell(page, GRAPH_INFO_CELL, timeout=60)
        info = json.loads(cell_output_text(page, GRAPH_INFO_CELL).strip().splitlines()[-1])
        n, leaves = info["nodes"], info["leaves"]
        graph_out = cell_outputs(page, GRAPH_CELL)
        nodes = graph_out.locator("g.dw-graph-node")
        expect(nodes).to_have_count(n)
        drawn = nodes.evaluate_all("""(gs) => gs.map((g) => ({
            id: g.getAttribute('data-node-id'), title: g.querySelector('title').textContent}))""")
        titles = {}
        for d in drawn:
            m = re.fullmatch(r"(.*) \((.*)\)", d["title"])
            assert m, d
            titles[d["id"]] = (m.group(1), m.group(2))
        assert len(titles) == n == len(info["graph"]), (n, drawn)
        assert {i: (name, t) for i, name, t in info["graph"]} == titles
        names = {name for name, _ in titles.values()}
        assert set(leaves) <= names, f"leaf modules missing from the drawing: {set(leaves) - names}"
        for name, type_ in leaves.items():
            assert titles[name] == (name, type_), (name, titles.get(name))
        ops = [i for i, (name, _) in titles.items() if name not in leaves and i != "input"]
        assert n == 1 + len(leaves) + len(ops), (n, leaves, ops)
        print(f"graph: {n} nodes = input + {len(leaves)} layers {sorted(leaves)} + {len(ops)} ops {ops}")

        details = graph_out.locator(".dw-graph-details")
        expect(details).to_contain_text(f"{n} nodes,")
        graph_out.locator(".dw-graph-bar button", has_text="Fit").click()
        graph_out.locator('g.dw-graph-node[data-node-id="conv1"]').click()
        expect(graph_out.locator('g.dw-graph-node[data-node-id="conv1"]')).to_have_class(re.compile("dw-selected"))
        expect(details.locator("b").first).to_have_text("conv1")
        expect(details.locator("tr", has_text="Type")).to_contain_text("Conv2d")
        run_cell(page, SELECTED_CELL, timeout=60)
        # the click's state update went out before this cell's execute request, on the same channel
        assert "selected: 'conv1'" in cell_output_text(page, SELECTED_CELL)

    assert_no_widget_errors(page)
