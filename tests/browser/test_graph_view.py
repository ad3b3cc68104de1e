"""The network graph as a person first sees it (issue 11, defect 4): fitted to the view, readable labels.

One notebook, in a real JupyterLab at the default notebook width:
  0. ``show_network`` of the zoo's LeNet (13 nodes): every node lies inside the widget's visible box (nothing
     cut off at an edge), every label is drawn at >= 11 px on screen, no two labels overlap, and the drawing
     fills the view (little empty space around it). A screenshot goes to test-artifacts/graph_first_show.png.
  1. ``show_network`` of the zoo's GoogLeNet (144 nodes): too tall to show whole at a readable size, so it
     opens readable (>= 11 px) at its input end, which is inside the view, and the view scrolls to the rest
     (screenshot: test-artifacts/graph_first_show_googlenet.png).
The boxes are measured from the DOM; every wait is for a condition, never a fixed sleep.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from lab import assert_no_widget_errors, open_notebook, run_cell, wait_until, write_notebook

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SCREENSHOT = ARTIFACTS / "graph_first_show.png"
READABLE_PX = 11.0

CELLS = [
    "import digits_widgets as dw\n"
    "from digits_widgets.ui.graph import show_network\n"
    "lenet = show_network(dw.zoo.source('lenet'), (1, 28, 28), nclasses=10, name='lenet')\n"
    "lenet",
    "googlenet = show_network(dw.zoo.source('googlenet'), (3, 64, 64), nclasses=5, name='googlenet')\n"
    "googlenet",
]
LENET, GOOGLENET = 0, 1
LENET_NODES, GOOGLENET_NODES = 13, 144

# What the graph in ``root`` shows: the widget's visible box (the SVG's box clipped by every scrolling or
# clipping ancestor up to the output area), each node's on-screen box, and each label's on-screen box and
# font size in screen pixels (its font size in SVG units times the SVG-to-screen scale, checked against the
# ratio of its on-screen height to its height in SVG units).
_JS_GRAPH = r"""
(root) => {
  const svg = root.querySelector('svg.dw-graph-svg');
  const box = (r) => ({x0: r.left, y0: r.top, x1: r.right, y1: r.bottom});
  let vis = box(svg.getBoundingClientRect());
  for (let el = svg.parentElement; el && el !== root.parentElement; el = el.parentElement) {
    const cs = getComputedStyle(el);
    if (cs.overflowX !== 'visible' || cs.overflowY !== 'visible') {
      const r = el.getBoundingClientRect();
      // the scrollbars are not part of what shows the drawing
      const right = r.left + el.clientLeft + el.clientWidth, bottom = r.top + el.clientTop + el.clientHeight;
      vis = {x0: Math.max(vis.x0, r.left + el.clientLeft), y0: Math.max(vis.y0, r.top + el.clientTop),
             x1: Math.min(vis.x1, right), y1: Math.min(vis.y1, bottom)};
    }
  }
  const nodes = Array.from(svg.querySelectorAll('g.dw-graph-node')).map((g) => {
    const labels = Array.from(g.querySelectorAll('text')).filter((t) => (t.textContent || '').trim()).map((t) => {
      const r = t.getBoundingClientRect();
      const bb = t.getBBox();
      const m = t.getScreenCTM();
      const scale = Math.hypot(m.a, m.b);
      const font = parseFloat(getComputedStyle(t).fontSize);
      return {text: t.textContent.trim(), ...box(r), font, scale, px: font * scale,
              pxFromBox: bb.height > 0 ? font * r.height / bb.height : 0};
    });
    return {id: g.getAttribute('data-node-id'), ...box(g.getBoundingClientRect()), labels};
  });
  const view = svg.parentElement;
  return {visible: vis, svg: box(svg.getBoundingClientRect()), nodes,
          output: box(root.getBoundingClientRect()),
          scroll: {w: view.scrollWidth, h: view.scrollHeight, cw: view.clientWidth, ch: view.clientHeight}};
}
"""


def _cell(page, index: int):
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


def _graph(page, index: int, nodes: int) -> dict:
    """The measured graph of a cell, once its widget has drawn every node and its size has settled."""
    out = _cell(page, index).locator(".jp-OutputArea-output").first
    expect(out.locator("g.dw-graph-node")).to_have_count(nodes, timeout=60_000)
    out.scroll_into_view_if_needed()
    last: dict = {}

    def settled():  # a fit that runs when the view first gets its size must have run: two equal readings
        nonlocal last
        now = out.evaluate(_JS_GRAPH)
        same = now == last
        last = now
        return same
    wait_until(settled, 30, "the graph's view to settle", interval=0.3)
    return last


def _screenshot(page, index: int, path: Path) -> None:
    """The cell's output as a person sees it, whole: the page is made tall enough for it first."""
    out = _cell(page, index).locator(".jp-OutputArea-output").first
    height = out.bounding_box()["height"]
    page.set_viewport_size({"width": 1400, "height": max(1000, int(height) + 400)})
    out.scroll_into_view_if_needed()
    page.mouse.move(0, 0)  # no hover tooltip in the picture
    out.screenshot(path=str(path), timeout=30_000)
    page.set_viewport_size({"width": 1400, "height": 1000})
    assert path.stat().st_size > 5_000


def _inside(a: dict, box: dict, slack: float = 0.5) -> bool:
    return (a["x0"] >= box["x0"] - slack and a["y0"] >= box["y0"] - slack and a["x1"] <= box["x1"] + slack
            and a["y1"] <= box["y1"] + slack)


def _overlap(a: dict, b: dict, slack: float = 0.5) -> bool:
    return (a["x0"] < b["x1"] - slack and b["x0"] < a["x1"] - slack and a["y0"] < b["y1"] - slack
            and b["y0"] < a["y1"] - slack)


def _labels(graph: dict) -> list[tuple[str, dict]]:
    return [(n["id"], t) for n in graph["nodes"] for t in n["labels"]]


def assert_readable(graph: dict, what: str) -> float:
    """Every label drawn at >= 11 px on screen and no two labels of different nodes overlapping; returns the
    smallest on-screen font size."""
    labels = _labels(graph)
    assert labels, f"{what}: no node labels"
    smallest = min(min(t["px"], t["pxFromBox"]) for _, t in labels)
    small = [(i, t["text"], round(t["px"], 1), round(t["pxFromBox"], 1)) for i, t in labels
             if min(t["px"], t["pxFromBox"]) < READABLE_PX]
    assert not small, f"{what}: labels below {READABLE_PX} px on screen (node, text, px, px from box): {small[:6]}"
    for k, (i, a) in enumerate(labels):
        for j, b in labels[k + 1:]:
            if i != j:
                assert not _overlap(a, b), f"{what}: label {a['text']!r} of {i} overlaps {b['text']!r} of {j}"
    return smallest


def test_graph_first_show_is_fitted_and_readable(page, lab, nb_dir, stopwatch):
    ARTIFACTS.mkdir(exist_ok=True)
    nb = write_notebook(nb_dir / "graph.ipynb", CELLS)
    with stopwatch("open"):
        open_notebook(page, lab, nb)

    # ---- 0. LeNet: the whole network, readable --------------------------------------------------------
    with stopwatch("lenet"):
        run_cell(page, LENET, timeout=120)
        g = _graph(page, LENET, LENET_NODES)
        vis, width = g["visible"], g["output"]["x1"] - g["output"]["x0"]
        print(f"LeNet: output {width:.0f} px wide, visible box {vis['x1'] - vis['x0']:.0f}x"
              f"{vis['y1'] - vis['y0']:.0f} px")
        assert 800 <= width <= 1200, f"the notebook output should have its default width (~900 px), is {width}"
        outside = [n["id"] for n in g["nodes"] if not _inside(n, vis)]
        assert not outside, f"LeNet: nodes outside the widget's visible box {vis}: {outside}"
        smallest = assert_readable(g, "LeNet")
        # little empty space: the nodes' extent fills the visible box along one side, and most of the other
        x0, y0 = min(n["x0"] for n in g["nodes"]), min(n["y0"] for n in g["nodes"])
        x1, y1 = max(n["x1"] for n in g["nodes"]), max(n["y1"] for n in g["nodes"])
        fill_w, fill_h = (x1 - x0) / (vis["x1"] - vis["x0"]), (y1 - y0) / (vis["y1"] - vis["y0"])
        print(f"LeNet: smallest label {smallest:.1f} px; nodes fill {fill_w:.0%} x {fill_h:.0%} of the view")
        assert max(fill_w, fill_h) >= 0.85, f"LeNet: the drawing fills only {fill_w:.0%} x {fill_h:.0%} of the view"
        _screenshot(page, LENET, SCREENSHOT)

    # ---- 1. GoogLeNet: too tall to show whole readable; opens readable at its input, and scrolls ----------
    with stopwatch("googlenet"):
        run_cell(page, GOOGLENET, timeout=180)
        g = _graph(page, GOOGLENET, GOOGLENET_NODES)
        vis = g["visible"]
        smallest = assert_readable(g, "GoogLeNet")
        first = next(n for n in g["nodes"] if n["id"] == "input")
        assert _inside(first, vis), f"GoogLeNet: the input node {first} is not inside the view {vis}"
        scroll = g["scroll"]
        assert scroll["h"] > scroll["ch"] + 100 or scroll["w"] > scroll["cw"] + 100, \
            f"GoogLeNet: the rest of the network should be reachable by scrolling the view: {scroll}"
        shown = sum(_inside(n, vis) for n in g["nodes"])
        print(f"GoogLeNet: smallest label {smallest:.1f} px, {shown} of {GOOGLENET_NODES} nodes in view, "
              f"content {scroll['w']}x{scroll['h']} in a {scroll['cw']}x{scroll['ch']} view")
        assert shown >= 5, f"GoogLeNet: only {shown} nodes in view"
        _screenshot(page, GOOGLENET, SCREENSHOT.with_name("graph_first_show_googlenet.png"))

    assert_no_widget_errors(page)
