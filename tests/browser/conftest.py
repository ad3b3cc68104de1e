"""Fixtures for browser tests: a JupyterLab server (`lab`), headless Chromium (`browser`), a fresh `page`.

Failures save test-artifacts/<test>.png (a screenshot), <test>.console.txt (browser console and page
errors) and <test>.server.log (the tail of the Jupyter server log) at the repository root.
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from lab import start_lab

CHROMIUM = os.environ.get("DIGITS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
HERE = Path(__file__).parent
ARTIFACTS = HERE.parents[1] / "test-artifacts"
_TIMINGS: list[tuple[str, dict]] = []


def pytest_collection_modifyitems(items):
    for item in items:  # every test in tests/browser is a browser test, whether or not it says so
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """A `jupyter lab` on 127.0.0.1 with its own config/data/runtime/settings/workspace/IPython dirs.
    Attributes: url (ends with '/'), token, root_dir (notebooks), jobs_dir ($DIGITS_JOBS_DIR of kernels)."""
    server = start_lab(tmp_path_factory.mktemp("lab"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """Headless system Chromium driven by Playwright (never `playwright install`)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install it (apt-get install -y chromium) or point "
                    "$DIGITS_CHROMIUM at a Chromium binary. Browser tests do not skip.", pytrace=False)
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)  # the default 5 s is too short on a loaded 2-core machine
    home = tmp_path_factory.mktemp("chromium-home")  # crash reports and caches stay out of ~/.config
    env = {**os.environ, "XDG_CONFIG_HOME": str(home / "config"), "XDG_CACHE_HOME": str(home / "cache")}
    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, env=env)
    except BaseException:
        pw.stop()
        raise
    yield b
    b.close()
    pw.stop()


@pytest.fixture
def page(browser, lab, request):
    """A page in a new browser context (fresh profile state: storage, cookies); after the test its
    context closes and every kernel the test started is shut down."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    log: list[str] = []
    pg.on("console", lambda m: log.append(f"[{m.type}] {m.text}"))
    pg.on("pageerror", lambda e: log.append(f"[pageerror] {e}"))
    request.node._dw_console = log
    yield pg
    context.close()
    lab.shutdown_kernels()


@pytest.fixture
def nb_dir(lab, request):
    """A fresh folder under lab.root_dir named after the test, for the notebooks it writes."""
    d = lab.root_dir / _safe(request.node.name)
    d.mkdir(parents=True, exist_ok=True)
    return d


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:120]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    if rep.failed and rep.when in ("setup", "call"):
        _save_artifacts(item)
    return rep


def _save_artifacts(item) -> None:
    name = _safe(item.name)
    ARTIFACTS.mkdir(exist_ok=True)
    pg = item.funcargs.get("page") if hasattr(item, "funcargs") else None
    if pg is not None:
        try:
            pg.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True, timeout=15_000)
        except Exception as e:  # noqa: BLE001 - a failed screenshot must not hide the test failure
            (ARTIFACTS / f"{name}.screenshot-error.txt").write_text(repr(e))
    log = getattr(item, "_dw_console", None)
    if log:
        (ARTIFACTS / f"{name}.console.txt").write_text("\n".join(log))
    server = item.funcargs.get("lab") if hasattr(item, "funcargs") else None
    if server is not None:
        (ARTIFACTS / f"{name}.server.log").write_text(server.log_tail(20_000))


@pytest.fixture
def stopwatch(request):
    """`with stopwatch('phase'):` times a phase; the times are printed in the terminal summary."""
    phases: dict[str, float] = {}
    _TIMINGS.append((request.node.nodeid, phases))

    class _Phase:
        def __init__(self, name):
            self.name = name

        def __enter__(self):
            self.t0 = time.perf_counter()

        def __exit__(self, *exc):
            phases[self.name] = time.perf_counter() - self.t0

    return _Phase


def pytest_terminal_summary(terminalreporter):
    durations: dict[str, float] = {}
    for key in ("passed", "failed", "error", ""):
        for rep in terminalreporter.stats.get(key, []):
            if getattr(rep, "nodeid", "") and "browser" in getattr(rep, "keywords", {}):
                durations[rep.nodeid] = durations.get(rep.nodeid, 0.0) + rep.duration
    if not durations:
        return
    terminalreporter.section("browser test timings")
    phases = dict(_TIMINGS)
    for nodeid, total in durations.items():
        detail = ", ".join(f"{k} {v:.1f} s" for k, v in phases.get(nodeid, {}).items())
        terminalreporter.write_line(f"{total:6.1f} s  {nodeid}" + (f"  ({detail})" if detail else ""))
