"""Run All with a cell that waits: the training panel's loss chart must grow while ``model.wait()`` blocks.

Issue 11, defect 1. The cell after the training panel calls ``model.wait()``, which holds the kernel's main
thread, the only thread that may update widgets. The chart must still gain points while that cell shows
[*] and the job is Running, not only once it ends. To end the run on cue (no guess of how fast a loaded
machine trains), the test then writes the job's control/abort file, which the trainer reads from disk,
and checks that the waiting cell finishes.

Every wait is for a condition, never a fixed sleep.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import expect

from lab import _JS_PATH_POINTS, _js, _ms, assert_no_widget_errors, open_notebook, wait_until, write_notebook

pytestmark = pytest.mark.browser

MODEL = "live_wait"
CELLS = [
    "import digits_widgets as dw\n"
    "ds = dw.datasets.gradients('live_wait_g', train_count=200, val_count=50, image_size=(16, 16), seed=0)\n"
    "ds.wait(120)",
    f"model = dw.train(ds, dw.zoo.source('gradients_regression'), {MODEL!r}, epochs=100000, batch_size=16,\n"
    "                 lr=0.001, seed=0)\n"
    "model",
    "status = model.wait()\nprint('waited:', status)",
]
PANEL_CELL, WAIT_CELL = 1, 2
LOSS_LINE = '[data-dw-test="live-panel"] .jp-OutputArea-output svg g.curve > path.line'


def _cell(page, index: int):
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


def _prompt(page, index: int) -> str:
    return _cell(page, index).locator(".jp-InputPrompt").inner_text().strip()


def _points(page) -> int:
    """Points of the train-loss line now (-1: not drawn yet); never waits, so a frozen chart fails by name."""
    return int(page.evaluate("([sel, i]) => {" + _JS_PATH_POINTS + "return __dwPoints(sel, i);}", [LOSS_LINE, 0]))


def _job_dir(jobs_dir: Path, name: str) -> Path | None:
    for record in Path(jobs_dir).glob("*/job.json"):
        try:
            if json.loads(record.read_text()).get("name") == name:
                return record.parent
        except (OSError, ValueError):
            continue
    return None


def _job_status(job_dir: Path) -> str:
    try:
        return json.loads((job_dir / "job.json").read_text())["status_history"][-1][0]
    except (OSError, ValueError, KeyError, IndexError):
        return ""


def _start_run_all(page) -> None:
    """Start Run All without waiting for it (the helpers' run_all returns only when every cell has run)."""
    page.wait_for_function(_js("""const p = __dwPanel(a); if (!p) return false;
        const sc = p.sessionContext, k = sc.session && sc.session.kernel;
        return !!(p.context.isReady && sc.isReady && k && k.connectionStatus === 'connected');"""),
                           arg=None, timeout=_ms(90), polling=100)
    page.evaluate(_js("""const p = __dwPanel(null);
        window.jupyterapp.shell.activateById(p.id);
        window.__dwRunAll = {done: false};
        Promise.resolve(window.jupyterapp.commands.execute('notebook:run-all-cells')).then(
          (v) => { window.__dwRunAll = {done: true, ok: v}; },
          (e) => { window.__dwRunAll = {done: true, ok: false, error: String(e)}; });"""), None)


def test_chart_grows_while_next_cell_waits(page, lab, nb_dir, stopwatch):
    nb = write_notebook(nb_dir / "live_wait.ipynb", CELLS)
    with stopwatch("open"):
        open_notebook(page, lab, nb)
    _cell(page, PANEL_CELL).evaluate("(el) => el.setAttribute('data-dw-test', 'live-panel')")

    with stopwatch("run all until the panel"):
        _start_run_all(page)
        panel = _cell(page, PANEL_CELL).locator(".jp-OutputArea")
        expect(panel.locator(".bqplot").first).to_be_visible(timeout=180_000)   # imports torch first
        # The panel cell has finished; the wait cell is now the one running, holding the main thread.
        wait_until(lambda: _prompt(page, WAIT_CELL) == "[*]:", 60, "the wait cell to be running ([*])")
        job_dir = wait_until(lambda: _job_dir(lab.jobs_dir, MODEL), 30, f"the job dir of {MODEL!r}")

    def waiting_and_running() -> bool:
        return _prompt(page, WAIT_CELL) == "[*]:" and _job_status(job_dir) == "Running"

    with stopwatch("chart grows while the cell waits"):
        n1 = wait_until(lambda: (k := _points(page)) > 1 and k, 60,
                        "the loss line to get points while model.wait() blocks")
        assert waiting_and_running(), "the loss line got its points only after the wait cell ended"
        n2 = wait_until(lambda: (k := _points(page)) > n1 and k, 60,
                        f"the loss line to grow past {n1} points while model.wait() blocks")
        assert waiting_and_running(), (f"the line grew ({n1} -> {n2}) but the wait cell is no longer waiting "
                                       f"(prompt {_prompt(page, WAIT_CELL)!r}, job {_job_status(job_dir)!r})")

    print(f"loss line while model.wait() blocked: {n1} -> {n2} points, job Running, prompt [*]")
    with stopwatch("abort from disk, wait returns"):
        (job_dir / "control").mkdir(exist_ok=True)
        (job_dir / "control" / "abort").touch()
        page.wait_for_function("() => window.__dwRunAll && window.__dwRunAll.done", timeout=_ms(60), polling=100)
        expect(_cell(page, WAIT_CELL).locator(".jp-OutputArea")).to_contain_text("waited: Aborted")
        expect(panel.get_by_text("Aborted").first).to_be_visible()
        assert_no_widget_errors(page)
