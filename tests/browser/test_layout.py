"""What a person reads in the charts: no tick label runs into another, none is cut off (issue 11, defects 3, 6).

One notebook, in a real JupyterLab:
  0. A small gradients dataset; a regression job with an exponential learning-rate decay, for many epochs,
     its training panel displayed. While it trains, the learning-rate chart is measured from the DOM: at
     most 6 y ticks, each a short readable number, and no two texts of the chart (ticks, axis titles)
     overlap or leave the figure. Then the job is aborted from disk.
  1. Test One with "Show visualizations and statistics": every histogram's y axis starts at 0 (no negative
     count tick), its texts do not overlap and stay inside the figure; the picture strip does not repeat
     the input the view already shows.
  2. Test DB: the result cards all have the same width.
  3. The panel of the ended job shown again: the PNG alone, and no console error from hidden charts.
Screenshots go to test-artifacts/layout_*.png for a person to look at. Every wait is for a condition.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from lab import assert_no_widget_errors, open_notebook, run_cell, wait_until, write_notebook

pytestmark = pytest.mark.browser

MODEL = "layout"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CELLS = [
    "import digits_widgets as dw\n"
    "ds = dw.datasets.gradients('layout_g', train_count=160, val_count=32, image_size=(16, 16), seed=0)\n"
    "ds.wait(120)\n"
    f"model = dw.train(ds, dw.zoo.source('gradients_regression'), {MODEL!r}, epochs=100000, batch_size=16,\n"
    "                 lr=0.01, policy='exp', gamma=0.9995, seed=0)\n"
    "model",
    "print('waited:', model.wait())\n"
    "panel = model.test()\n"
    "panel.show_layers.value = True\n"
    "panel.test_one()\n"
    "panel",
    "db = model.test()\n"
    "db.test_db(limit=8)\n"
    "db",
    "dw.job(model.id).show()   # an ended job's panel: the PNG, its live charts hidden from the start",
]
PANEL, TEST_ONE, TEST_DB, ENDED = 0, 1, 2, 3

# Every visible <text> of each bqplot figure under ``root``: its string and on-screen box, plus the figure's box.
_JS_FIGURE_TEXTS = r"""
(root) => Array.from(root.querySelectorAll('.bqplot.figure')).filter((f) => f.offsetParent !== null).map((f) => {
  const svg = f.querySelector('svg');
  const box = (svg || f).getBoundingClientRect();
  const axes = Array.from(f.querySelectorAll('.axis'));
  const texts = Array.from(f.querySelectorAll('svg text')).map((t) => {
    const r = t.getBoundingClientRect();
    const tick = !!t.closest('.tick');
    const axis = axes.indexOf(t.closest('.axis'));
    return {text: (t.textContent || '').trim(), x0: r.left, y0: r.top, x1: r.right, y1: r.bottom, tick, axis,
            size: parseFloat(getComputedStyle(t).fontSize), shown: getComputedStyle(t).display !== 'none'
              && getComputedStyle(t).visibility !== 'hidden' && getComputedStyle(t).opacity !== '0'};
  }).filter((t) => t.text && t.shown && t.x1 > t.x0);
  return {box: {x0: box.left, y0: box.top, x1: box.right, y1: box.bottom}, texts};
})
"""


def _cell(page, index: int):
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


def _figures(page, index: int) -> list[dict]:
    return _cell(page, index).locator(".jp-OutputArea").evaluate(_JS_FIGURE_TEXTS)


def _overlap(a: dict, b: dict, slack: float = 0.5) -> bool:
    return a["x0"] < b["x1"] - slack and b["x0"] < a["x1"] - slack and a["y0"] < b["y1"] - slack \
        and b["y0"] < a["y1"] - slack


def assert_readable(figure: dict, what: str) -> None:
    """No two texts overlap; every text lies inside the figure's box (nothing clipped at an edge)."""
    texts, box = figure["texts"], figure["box"]
    for i, a in enumerate(texts):
        inside = a["x0"] >= box["x0"] - 1 and a["x1"] <= box["x1"] + 1 and a["y0"] >= box["y0"] - 1 \
            and a["y1"] <= box["y1"] + 1
        assert inside, f"{what}: {a['text']!r} is cut off by the figure's edge ({a} vs {box})"
        for b in texts[i + 1:]:
            assert not _overlap(a, b), f"{what}: {a['text']!r} overlaps {b['text']!r} ({a} / {b})"


def _y_ticks(figure: dict) -> list[dict]:
    """The tick labels of the figure's first vertical axis (its ticks spread in y, not in x)."""
    by_axis: dict[int, list[dict]] = {}
    for t in figure["texts"]:
        if t["tick"]:
            by_axis.setdefault(t["axis"], []).append(t)
    for ticks in by_axis.values():
        xs, ys = [t["x0"] for t in ticks], [t["y0"] for t in ticks]
        if len(ticks) > 1 and max(ys) - min(ys) > max(xs) - min(xs):
            return ticks
    return []


def _job_dir(jobs_dir: Path, name: str) -> Path | None:
    for record in Path(jobs_dir).glob("*/job.json"):
        try:
            if json.loads(record.read_text()).get("name") == name:
                return record.parent
        except (OSError, ValueError):
            continue
    return None


def test_charts_and_layer_views_are_readable(page, lab, nb_dir, stopwatch):
    ARTIFACTS.mkdir(exist_ok=True)
    nb = write_notebook(nb_dir / "layout.ipynb", CELLS)
    page.set_viewport_size({"width": 1400, "height": 2400})   # whole outputs in the screenshots
    with stopwatch("open"):
        open_notebook(page, lab, nb)

    with stopwatch("train, LR chart"):
        run_cell(page, PANEL, timeout=180)
        job_dir = wait_until(lambda: _job_dir(lab.jobs_dir, MODEL), 30, f"the job dir of {MODEL!r}")
        out = _cell(page, PANEL).locator(".jp-OutputArea")
        expect(out.locator(".bqplot.figure").nth(1)).to_be_visible(timeout=60_000)
        # the LR chart has a curve once a few epochs are in (and a snapshot to test with exists)
        wait_until(lambda: len(list((job_dir / "snapshots").glob("*.pt"))) >= 1 if (job_dir / "snapshots").exists()
                   else False, 120, "a first snapshot")
        wait_until(lambda: len(_y_ticks(_figures(page, PANEL)[1])) >= 2, 60, "the LR chart's y ticks")
        out.screenshot(path=str(ARTIFACTS / "layout_training_panel.png"))
        figures = _figures(page, PANEL)
        lr = figures[1]
        ticks = _y_ticks(lr)
        labels = [t["text"] for t in ticks]
        assert 2 <= len(ticks) <= 6, f"the LR chart's y axis has {len(ticks)} ticks: {labels}"
        assert all(len(s) <= 7 for s in labels), f"LR tick labels are not short numbers: {labels}"
        assert len(set(labels)) == len(labels), f"LR tick labels repeat: {labels}"
        assert all(t["size"] >= 10 for t in ticks), f"LR tick labels are too small: {[t['size'] for t in ticks]}"
        for i, fig in enumerate(figures):
            assert_readable(fig, f"training panel figure {i}")
        print("LR chart y ticks:", labels)
        (job_dir / "control").mkdir(exist_ok=True)
        (job_dir / "control" / "abort").touch()

    with stopwatch("Test One with layers"):
        run_cell(page, TEST_ONE, timeout=120)
        out = _cell(page, TEST_ONE).locator(".jp-OutputArea")
        expect(out.get_by_text("Total learned parameters").first).to_be_visible()
        wait_until(lambda: len(_figures(page, TEST_ONE)) >= 1 and all(f["texts"] for f in _figures(page, TEST_ONE)),
                   60, "the histograms' axes")
        out.screenshot(path=str(ARTIFACTS / "layout_test_one.png"))
        hists = _figures(page, TEST_ONE)
        for i, fig in enumerate(hists):
            assert_readable(fig, f"histogram {i}")
            counts = [float(re.sub(r"[^0-9eE+\-.]", "", t["text"]) or 0) for t in _y_ticks(fig)]
            assert counts and min(counts) >= 0, f"histogram {i}: negative count ticks {counts}"
        captions = out.locator("b").all_inner_texts()
        assert "Original" not in captions, f"Test One shows the input twice: {captions}"

    with stopwatch("Test DB"):
        run_cell(page, TEST_DB, timeout=120)
        out = _cell(page, TEST_DB).locator(".jp-OutputArea")
        expect(out.get_by_text("Page 1 of 1").first).to_be_visible()
        out.screenshot(path=str(ARTIFACTS / "layout_test_db.png"))
        widths = out.locator(".dw-result-card").evaluate_all("(els) => els.map((e) => e.getBoundingClientRect().width)")
        assert len(widths) == 8, f"expected 8 result cards, found {len(widths)}"
        assert max(widths) - min(widths) < 1, f"result cards differ in width: {widths}"

    with stopwatch("an ended job's panel"):
        run_cell(page, ENDED, timeout=60)
        out = _cell(page, ENDED).locator(".jp-OutputArea")
        expect(out.locator("img").first).to_be_visible()   # the curves' PNG
        expect(out.get_by_text("Aborted").first).to_be_visible()
        assert not _figures(page, ENDED), "the live charts show beside the PNG"
    # no console errors either: a chart drawn while hidden logged "<rect> attribute width: ... (-150)"
    assert_no_widget_errors(page)
