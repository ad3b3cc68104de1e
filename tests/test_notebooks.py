"""The tutorial notebooks run top to bottom, unattended, and reach their targets (at the quick settings).

Every ``notebooks/*.ipynb`` is picked up; a new tutorial needs no change here, only these conventions:

- nbformat 4 with kernelspec metadata ``{"name": "python3", "display_name": "Python 3", "language": "python"}``
  (without it JupyterLab asks which kernel to use), and no outputs or execution counts committed.
- The first code cell reads the settings from the environment::

      QUICK = os.environ.get("DIGITS_QUICK") == "1"
      DATA = Path(os.environ.get("DIGITS_TUTORIAL_DATA", "tutorial-data")) / "<short name>"

  and picks its counts and epochs by ``QUICK`` (a markdown cell states the full and the quick settings). Jobs go
  to the default jobs directory (``$DIGITS_JOBS_DIR``, else ``./digits-jobs``): never a path of its own.
- Nothing needs a click: forms are filled and created from code (``form.fields[tab][key].value = ...``,
  ``form.create()``), and every job is waited for with ``job.wait()`` before its results are used.
- The last code cell builds ``results = {...}``, prints ONE line ``"DIGITS_RESULTS " + json.dumps(results)``
  and asserts the tutorial's targets, with thresholds that depend on ``QUICK`` (full: the tutorial's; quick:
  looser but still meaningful).

``test_notebook_runs`` executes each notebook with nbclient (kernel ``python3``, 600 s per cell) in a temporary
working directory with ``DIGITS_QUICK=1``, ``DIGITS_JOBS_DIR=<tmp>/jobs`` and ``DIGITS_TUTORIAL_DATA=<tmp>/data``
(set in this process before the kernel starts, so the kernel inherits them). It fails on the first cell that
raises (the executed notebook is kept as ``<tmp>/executed.ipynb``), then checks the ``DIGITS_RESULTS`` line and
prints the notebook's run time. ``test_notebook_follows_conventions`` checks the points above without running
anything. Run them with ``pytest tests/test_notebooks.py -s`` to see the timings (``-m "not slow"`` skips the runs).

At full settings a notebook reproduces its tutorial's figures (hours for some); run one with e.g.
``DIGITS_JOBS_DIR=/tmp/jobs jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=7200
--output /tmp/out.ipynb notebooks/01_regression_gradients.ipynb``.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
CELL_TIMEOUT = 600
RESULTS_PREFIX = "DIGITS_RESULTS "

params = pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])


def _code_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


def _results(nb) -> dict:
    """The one DIGITS_RESULTS line of the executed notebook, parsed."""
    lines = [line[len(RESULTS_PREFIX):] for cell in _code_cells(nb) for out in cell.get("outputs", [])
             if out.get("output_type") == "stream" and out.get("name") == "stdout"
             for line in out.get("text", "").splitlines() if line.startswith(RESULTS_PREFIX)]
    assert len(lines) == 1, f"expected one {RESULTS_PREFIX.strip()} line in the outputs, found {len(lines)}"
    results = json.loads(lines[0])
    assert isinstance(results, dict) and results, f"{RESULTS_PREFIX.strip()} is not a non-empty JSON object"
    return results


@params
def test_notebook_follows_conventions(path: Path) -> None:
    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    assert nb.nbformat == 4
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec") == KERNELSPEC, "kernelspec metadata missing or not python3"
    code = _code_cells(nb)
    assert code, "no code cells"
    for i, cell in enumerate(code):
        assert not cell.get("outputs") and cell.get("execution_count") is None, \
            f"code cell {i} has outputs committed: clear them"
    first, last = code[0].source, code[-1].source
    assert 'os.environ.get("DIGITS_QUICK") == "1"' in first, "the first code cell must read DIGITS_QUICK"
    assert 'os.environ.get("DIGITS_TUTORIAL_DATA", "tutorial-data")' in first, \
        "the first code cell must read DIGITS_TUTORIAL_DATA"
    assert RESULTS_PREFIX.strip() in last and "json.dumps(results)" in last and "assert" in last, \
        "the last code cell must print DIGITS_RESULTS + json.dumps(results) and assert the targets"
    for cell in code:   # jobs live in the default jobs directory, so tests and users find them
        assert not re.search(r"DIGITS_JOBS_DIR\"?\]?\s*=", cell.source), "do not set DIGITS_JOBS_DIR in a notebook"


@pytest.mark.slow
@pytest.mark.timeout(3 * CELL_TIMEOUT)
@params
def test_notebook_runs(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    monkeypatch.setenv("DIGITS_QUICK", "1")
    monkeypatch.setenv("DIGITS_JOBS_DIR", str(tmp_path / "jobs"))
    monkeypatch.setenv("DIGITS_TUTORIAL_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # quiet the kernel's debugger warning
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT, allow_errors=False,
                            resources={"metadata": {"path": str(tmp_path)}})
    start = time.monotonic()
    try:
        client.execute()
    except CellExecutionError as exc:
        nbformat.write(nb, tmp_path / "executed.ipynb")
        pytest.fail(f"{path.name} failed after {time.monotonic() - start:.0f} s "
                    f"(executed notebook: {tmp_path / 'executed.ipynb'}):\n{exc}", pytrace=False)
    elapsed = time.monotonic() - start
    nbformat.write(nb, tmp_path / "executed.ipynb")
    errors = [out for cell in _code_cells(nb) for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    assert not errors, f"{path.name}: a cell errored: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    results = _results(nb)
    with capsys.disabled():
        print(f"\n{path.name}: {elapsed:.0f} s at the quick settings; results {json.dumps(results)}")


def test_readme_says_where_jobs_and_data_land() -> None:
    """A kernel runs in its notebook's folder: the notebooks' relative ``tutorial-data`` is notebooks/tutorial-data,
    and ``make tutorials`` points the jobs at the repository root's digits-jobs (and leaves the data alone)."""
    root = NOTEBOOKS[0].parent.parent
    readme = " ".join((root / "notebooks" / "README.md").read_text().split())
    make = (root / "Makefile").read_text()
    tutorials = make[make.index("\ntutorials:"):].split("\n\n")[0]
    assert "DIGITS_JOBS_DIR=$${DIGITS_JOBS_DIR:-$(CURDIR)/digits-jobs}" in tutorials
    assert "DIGITS_TUTORIAL_DATA" not in tutorials
    assert "`notebooks/tutorial-data/`" in readme and "`$DIGITS_TUTORIAL_DATA`" in readme
    assert "`digits-jobs/` at the repository root" in readme
    ignored = (root / ".gitignore").read_text().split()
    assert "notebooks/tutorial-data/" in ignored and "digits-jobs/" in ignored
