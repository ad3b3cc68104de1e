"""Run All of each tutorial notebook in JupyterLab: the charts grow while training runs (issue 11).

What a person sees first is the training panel's loss chart. Each tutorial is opened in a real JupyterLab
and run with Run All (quick settings: the server inherits ``DIGITS_QUICK`` from the test run). While it
runs, the page is sampled: for every training panel on the page, its title ("name (id) · Running") and the
number of points of its train-loss line. The test asserts that some panel's line gained points between two
samples while that panel said Running, i.e. the chart moved during training and not only at the end,
then that the run ended without errors, without widget errors and without console errors (e.g. SVG
attributes with negative sizes from a widget laid out at zero width). The first panel seen growing is saved
as test-artifacts/run_all_<notebook>_during_training.png (again once a line has 6 points), for a person to
look at.

Growth can only be seen in a training whose metrics keep coming long enough to be sampled: the pump draws
at most 5 times a second, a chart line at most twice, the page is sampled 4 times. A notebook whose
trainings all log their first and last metric less than ``WATCHABLE_S`` apart (notebook 01 at the quick
settings: a linear regression on 300 images, well under a second each) shows its curves complete, which is
all a person could see too; for it the test asserts that every training ended Done and says how long the
longest logged, instead of asserting growth.

Every wait is for a condition; the sampling loop ends when Run All's promise resolves.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import nbformat
import pytest

from lab import _js, assert_no_widget_errors, notebook_errors, open_notebook

pytestmark = pytest.mark.browser

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
RUN_TIMEOUT = 900   # seconds for one quick Run All on a loaded 2-core machine
WATCHABLE_S = 1.0   # a training logging this long has its chart redrawn (every 0.5 s) while sampled (4/s)
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

# Each training panel: its title text and the points of its loss figure's first line (-1: not drawn yet).
_JS_PANELS = r"""
() => Array.from(document.querySelectorAll('.jp-OutputArea-output')).flatMap((out) => {
  const titles = Array.from(out.querySelectorAll('.widget-html-content'))
    .map((e) => (e.textContent || '').trim()).filter((t) => / · (Initialized|Waiting|Running|Done|Aborted|Error)/.test(t));
  const fig = out.querySelector('.bqplot.figure');
  if (!titles.length || !fig) return [];
  const path = fig.querySelector('svg g.curve > path.line');
  const d = path ? (path.getAttribute('d') || '') : null;
  const points = d === null ? -1 : (d.trim() ? (d.match(/-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?/g) || []).length / 2 : 0);
  return [{title: titles[0], points}];
})
"""


def _screenshot_panel(page, key: str, path: Path) -> None:
    """What a person sees while the cell waits: the panel whose chart just grew (kept for review, not judged)."""
    path.parent.mkdir(exist_ok=True)
    try:
        page.locator(".jp-OutputArea-output", has_text=f"{key} · Running").first.screenshot(
            path=str(path), timeout=10_000)
    except Exception as e:  # noqa: BLE001 - a missed screenshot must not fail the run it documents
        path.with_suffix(".error.txt").write_text(repr(e))


def _trainings_since(jobs_dir: Path, t0: float) -> dict[str, tuple[str, float]]:
    """Model jobs created since ``t0``: name → (final status, seconds from its first metric to its last),
    the span in which its chart could move, from job.json and metrics.jsonl."""
    found = {}
    for record_path in jobs_dir.glob("*/job.json"):
        record = json.loads(record_path.read_text())
        if record.get("kind") != "model" or record.get("created", 0) < t0:
            continue
        metrics = record_path.with_name("metrics.jsonl")
        times = [json.loads(line)["time"] for line in metrics.read_text().splitlines()] if metrics.exists() else []
        found[record["name"]] = (record["status_history"][-1][0], max(times) - min(times) if times else 0.0)
    return found


def _start_run_all(page) -> None:
    page.evaluate(_js("""const p = __dwPanel(null);
        window.jupyterapp.shell.activateById(p.id);
        window.__dwRunAll = {done: false};
        Promise.resolve(window.jupyterapp.commands.execute('notebook:run-all-cells')).then(
          (v) => { window.__dwRunAll = {done: true, ok: v}; },
          (e) => { window.__dwRunAll = {done: true, ok: false, error: String(e)}; });"""), None)


@pytest.mark.timeout(RUN_TIMEOUT + 120)   # not the suite's 300 s: notebook 03 alone took 144-293 s here
@pytest.mark.parametrize("source", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_run_all_shows_charts_growing_during_training(page, lab, nb_dir, stopwatch, source):
    nb = nb_dir / source.name
    shutil.copy(source, nb)
    t0 = time.time()
    assert nbformat.read(nb, as_version=4).metadata["kernelspec"]["name"] == "python3"
    with stopwatch("open"):
        open_notebook(page, lab, nb)
    grew: list[tuple[str, int, int]] = []
    seen: dict[str, int] = {}
    shot_later = False
    with stopwatch("run all"):
        _start_run_all(page)
        deadline = time.monotonic() + RUN_TIMEOUT
        while not page.evaluate("() => window.__dwRunAll.done"):
            assert time.monotonic() < deadline, f"Run All of {source.name} did not end in {RUN_TIMEOUT} s"
            for panel in page.evaluate(_JS_PANELS):
                title, points = panel["title"], panel["points"]
                key = title.split(" · ")[0]
                if " · Running" in title and points > seen.get(key, 10 ** 9):
                    if not grew or (points >= 6 and not shot_later):   # the first growth, then a fuller chart
                        shot_later = points >= 6
                        _screenshot_panel(page, key, ARTIFACTS / f"run_all_{source.stem}_during_training.png")
                    grew.append((key, seen[key], points))
                seen[key] = points if " · Running" in title else 10 ** 9
            page.wait_for_timeout(250)   # the sampling period; the loop's end is Run All's promise
    state = page.evaluate("() => window.__dwRunAll")
    errors = notebook_errors(page)
    assert state.get("ok") is True and not errors, f"Run All of {source.name} failed: {state} " + "\n".join(
        f"cell {e['cell']}: {e['ename']}: {e['evalue']}" for e in errors)
    trainings = _trainings_since(lab.jobs_dir, t0)
    assert trainings, f"{source.name}: Run All trained nothing"
    longest = max(ran for _, ran in trainings.values())
    if longest >= WATCHABLE_S:
        assert grew, (f"{source.name}: no training chart gained points while its panel said Running "
                      f"(last seen: {seen}; trainings: {trainings})")
        print(f"{source.name}: charts grew while running: {grew[:3]}{' ...' if len(grew) > 3 else ''}")
    else:
        assert all(status == "Done" for status, _ in trainings.values()), trainings
        print(f"{source.name}: every training logged its metrics within {longest:.2f} s, too short to be "
              f"sampled while Running ({len(grew)} growths seen): {trainings}")
    assert_no_widget_errors(page)
