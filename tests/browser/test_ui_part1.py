"""The notebook UI, part 1, as a person uses it in a real JupyterLab (headless Chromium).

One notebook, one test, in the order a new user goes:
  0. ``dw.DatasetForm()``: click the Gradients tab, type the name and small counts, click Create; the form
     turns into the dataset's page: progress (full), status Done, the summary table and the mean image.
  1-2. ``%load_ext digits_widgets`` and a ``%%digits_model`` cell with a Tower regression network: the
     training panel renders and its loss line gains points; Abort (clicked) shows Aborted and a PNG of the
     curves replaces the live charts; Resume (clicked) shows Running, the charts come back and the line grows
     again; Abort again.
  3. ``dw.Jobs()``: both jobs are listed, with their statuses.
Then no widget errors anywhere, and a screenshot of the training panel goes to
test-artifacts/training-panel.png (copy it to docs/ to refresh the README's picture).

Every wait is for a condition (Playwright waits, or `wait_until` polling), never a fixed sleep.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from lab import (assert_no_widget_errors, open_notebook, run_cell, svg_path_points, type_into, wait_until,
                 write_notebook)
from support import TOWER_REGRESSION

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "test-artifacts" / "training-panel.png"

# Names no tutorial uses: the session's JupyterLab shares one jobs dir, and test_tutorials' notebook 01 makes a
# "gradients" dataset and a "regression" model (two datasets of one name make --dataset ambiguous).
DATASET = "ui1-gradients"
MODEL = "ui1_regression"
TRAIN, VAL, SIZE = 200, 50, 16

NETWORK = TOWER_REGRESSION.lstrip("\n")   # the regression tutorial's network, as a user types it

CELLS = [
    "import digits_widgets as dw\nform = dw.DatasetForm()\nform",
    "%load_ext digits_widgets",
    f"%%digits_model {MODEL} --dataset {DATASET} --epochs 2000 --batch-size 16 --lr 0.001\n" + NETWORK,
    "dw.Jobs()",
]
FORM_CELL, MAGIC_CELL, JOBS_CELL = 0, 2, 3
# 2000 epochs: on a quiet machine this run does ~50 epochs/s (200 images), and it must outlast both Aborts.
# On a loaded one it can drop to <1 epoch/s; the test only needs ~2 epochs (a checkpoint) before Abort.

# The training panel's loss chart is the first bqplot figure of the magic's cell; its first Lines mark is the
# train loss (then the val loss; the learning rate is in a second figure; legend swatches are paths too, but
# not under g.curve). svg_path_points takes a CSS selector, so the test marks that cell's node (tag_cell).
LOSS_LINE = '[data-dw-test="training-cell"] .jp-OutputArea-output svg g.curve > path.line'


def cell_outputs(page, index: int):
    """The output area of the index-th cell (so assertions never match another cell's output)."""
    return page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-OutputArea")


def tag_cell(page, index: int, tag: str) -> None:
    """Give the index-th cell's node a data-dw-test attribute, so plain CSS selectors can scope to it."""
    page.locator(".jp-Notebook .jp-Cell").nth(index).evaluate("(el, t) => el.setAttribute('data-dw-test', t)", tag)


def field_input(scope, label: str):
    """The <input> of a form field (fields.Field: an HBox of label HTML, control, message), by its label."""
    row = scope.locator(".widget-hbox").filter(
        has=scope.page.locator(".widget-html", has_text=re.compile(r"^\s*" + re.escape(label))))
    return row.locator("input")


class Line:
    """Point counts of the train-loss line, read from the SVG path in the page."""

    def __init__(self, page):
        self.page = page

    def points(self) -> int:
        return svg_path_points(self.page, LOSS_LINE, 0)

    def wait_more_than(self, n: int, timeout: float, what: str) -> int:
        """Wait until the line has more than n points; return the count."""
        def more():
            k = self.points()
            return k if k > n else 0
        return wait_until(more, timeout, what)


def test_dataset_form_training_panel_jobs(page, lab, nb_dir, stopwatch):
    nb = write_notebook(nb_dir / "ui_part1.ipynb", CELLS)
    with stopwatch("open"):
        open_notebook(page, lab, nb)

    # ---- 0. the dataset form, filled in by clicking and typing ----------------------------------------
    with stopwatch("import"):
        run_cell(page, FORM_CELL, timeout=180)  # imports torch: slow on a busy machine
        form = cell_outputs(page, FORM_CELL)
        expect(form.get_by_text("New Image Dataset")).to_be_visible()
    with stopwatch("dataset form"):
        form.get_by_role("tab", name="Gradients").click()
        expect(form.get_by_role("tab", name="Gradients")).to_have_attribute("aria-selected", "true")
        # Gradients' own fields are now on screen (the other tabs' fields are hidden).
        expect(field_input(form, "Train Image count")).to_be_visible()
        create = form.locator("button", has_text="Create")
        expect(create).to_be_disabled()  # no dataset name yet
        type_into(field_input(form, "Dataset Name"), DATASET)
        type_into(field_input(form, "Train Image count"), str(TRAIN))
        type_into(field_input(form, "Validation Image count"), str(VAL))
        type_into(field_input(form, "Image Width"), str(SIZE))
        type_into(field_input(form, "Image Height"), str(SIZE))
        expect(create).to_be_enabled()
        create.click()

        # The form becomes the dataset's page: title, progress, then Done and the summary.
        expect(form.locator("h3", has_text=DATASET)).to_be_visible(timeout=60_000)
        expect(form.get_by_text("Status: Done")).to_be_visible(timeout=60_000)
        total = TRAIN + VAL
        expect(form.locator(".widget-hprogress .progress-bar")).to_have_attribute(
            "style", re.compile(r"width: 100%"))
        expect(form.get_by_text(f"{total} / {total}")).to_be_visible()
        summary = form.locator("table")
        expect(summary.locator("tr", has_text="train")).to_contain_text(f"{TRAIN} entries")
        expect(summary.locator("tr", has_text="val")).to_contain_text(f"{VAL} entries")
        expect(summary.locator("tr", has_text="image shape")).to_contain_text(f"{SIZE}x{SIZE}x1")
        mean = form.locator(".widget-vbox").filter(
            has=page.locator(":scope > .widget-html", has_text="Mean image")).locator(":scope > img")
        expect(mean).to_have_count(1)
        expect(mean).to_be_visible()
        page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=mean.element_handle())
        # shown at its own size (a 96 px PNG), not stretched across the output
        shown, natural = mean.evaluate("(img) => [img.getBoundingClientRect().width, img.naturalWidth]")
        assert shown <= 1.5 * natural, f"the mean image is drawn {shown:.0f} px wide; the PNG is {natural} px"
        expect(form.get_by_text("Samples (train)")).to_be_visible()

    # ---- 1-2. %%digits_model: watch, Abort, Resume, Abort --------------------------------------------
    line = Line(page)
    tag_cell(page, MAGIC_CELL, "training-cell")
    panel = cell_outputs(page, MAGIC_CELL)
    title = panel.locator(".widget-html", has_text=f"{MODEL} (").first
    abort = panel.locator("button", has_text="Abort")
    resume = panel.locator("button", has_text="Resume")
    with stopwatch("train + watch"):
        run_cell(page, 1)
        run_cell(page, MAGIC_CELL, timeout=120)
        expect(panel.locator(".bqplot").first).to_be_visible()
        expect(title).to_contain_text("Running", timeout=60_000)
        n1 = line.wait_more_than(1, 60, "the loss line to get points")
        n2 = line.wait_more_than(n1, 60, f"the loss line to grow past {n1} points")
        assert n2 > n1

    with stopwatch("abort"):
        # Resume needs a checkpoint, written at the end of each epoch: wait until the run has finished one.
        expect(panel.get_by_text(re.compile(r"epoch ([2-9]|\d{2,4})/2000"))).to_be_visible(timeout=60_000)
        expect(abort).to_be_enabled()
        abort.click()
        expect(title).to_contain_text("Aborted", timeout=60_000)
        expect(panel.locator(".widget-html table")).to_contain_text("Aborted")
        # An ended (here: aborted) run shows its curves once: a static PNG replaces the live charts.
        expect(panel.locator(".jp-OutputArea-output img")).to_be_visible(timeout=60_000)
        expect(panel.locator(".bqplot.figure")).to_have_count(0, timeout=30_000)

    with stopwatch("resume"):
        expect(resume).to_be_enabled()
        resume.click()
        expect(title).to_contain_text("Running", timeout=60_000)
        # The live charts come back with the run's curve so far, and it grows from the checkpoint on.
        expect(panel.locator(".bqplot.figure").first).to_be_visible(timeout=60_000)
        n3 = line.wait_more_than(1, 90, "the resumed run's loss line to show its points")
        n4 = line.wait_more_than(n3, 90, f"the resumed loss line to grow past {n3} points")
        assert n4 > n3
        expect(abort).to_be_enabled()
        abort.click()
        expect(title).to_contain_text("Aborted", timeout=60_000)
        expect(panel.locator(".bqplot.figure")).to_have_count(0, timeout=30_000)

    # ---- 3. the jobs panel ----------------------------------------------------------------------------
    with stopwatch("jobs"):
        run_cell(page, JOBS_CELL, timeout=120)
        jobs = cell_outputs(page, JOBS_CELL)
        expect(jobs.get_by_text("Datasets", exact=True)).to_be_visible()
        expect(jobs.get_by_text("Models", exact=True)).to_be_visible()
        # Each name cell is followed in its grid row by the status cell (other tests' jobs may be listed too).
        for name, status in ((DATASET, "Done"), (MODEL, "Aborted")):
            status_cell = jobs.locator(f".widget-html:has(b:text-is('{name}')) + .widget-html")
            expect(status_cell).to_have_count(1)
            expect(status_cell).to_have_text(status)

        assert_no_widget_errors(page)

    # ---- for the README: the training panel as a person sees it --------------------------------------
    SCREENSHOT.parent.mkdir(exist_ok=True)
    widget_output = panel   # the panel and, the run having ended, the PNG of its curves under it
    height = widget_output.bounding_box()["height"]
    page.set_viewport_size({"width": 1400, "height": max(1000, int(height) + 300)})  # the panel fits whole
    page.mouse.move(0, 0)  # no hover toolbar or tooltip in the picture
    widget_output.screenshot(path=str(SCREENSHOT), timeout=30_000)
    assert SCREENSHOT.stat().st_size > 10_000
