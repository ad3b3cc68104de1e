"""Helpers that drive a real JupyterLab in headless Chromium (Playwright, sync API).

The server side (`start_lab` / `LabServer.stop`) is used by the `lab` fixture in conftest.py; everything
else takes a Playwright `page`. Timeouts are in seconds throughout.

Every wait is a wait for a condition (Playwright's `wait_for_function` / locators), never a fixed sleep.
Notebook helpers talk to JupyterLab through `window.jupyterapp`, which the server exposes because it is
started with `--LabApp.expose_app_in_browser=True`.
"""
from __future__ import annotations

import base64
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import nbformat  # at import time: importing it while the server and Chromium start took 8 s

# The federated (prebuilt) JupyterLab extensions the widgets need; they live in <sys.prefix>/share/jupyter.
REQUIRED_LABEXTENSIONS = ("@jupyter-widgets/jupyterlab-manager", "bqplot", "ipycanvas", "anywidget")
WIDGET_MANAGER_PLUGIN = "@jupyter-widgets/jupyterlab-manager:plugin"

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}

# User settings written before the server starts (JUPYTERLAB_SETTINGS_DIR); each one removes a trap.
LAB_SETTINGS = {
    # Without it a fresh server asks "Select Kernel" even when the notebook names its kernelspec.
    # windowingMode "none": every cell stays attached and laid out, so offscreen outputs are visible to
    # Playwright and measurable (the default "contentVisibility" skips rendering offscreen cells).
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {
        "autoStartDefaultKernel": True, "windowingMode": "none"},
    # No "receive official Jupyter news?" toast and no update check (both would reach the network).
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False},
    # The extension manager would query PyPI.
    "@jupyterlab/extensionmanager-extension/plugin.jupyterlab-settings": {"enabled": False},
}


# --------------------------------------------------------------------------------------------- server
@dataclass
class LabServer:
    """A running `jupyter lab`: `url` ends with '/', `token` authenticates, notebooks go under `root_dir`."""
    url: str
    token: str
    root_dir: Path
    jobs_dir: Path
    base_dir: Path
    log_path: Path
    runtime_dir: Path
    proc: subprocess.Popen
    env: dict = field(repr=False, default_factory=dict)

    # -- REST
    def api(self, path: str, method: str = "GET", body: dict | None = None, timeout: float = 10.0):
        """Call the server's REST API (`path` like 'api/kernels'); returns the decoded JSON or None."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path.lstrip("/"), data=data, method=method,
                                     headers={"Authorization": f"token {self.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
        return json.loads(raw) if raw.strip() else None

    def relpath(self, path: str | os.PathLike) -> str:
        """A path relative to root_dir, with forward slashes, as JupyterLab names documents."""
        p = Path(path)
        if p.is_absolute():
            p = p.resolve().relative_to(self.root_dir.resolve())
        return p.as_posix()

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def shutdown_kernels(self, timeout: float = 20.0) -> None:
        """Delete every session and kernel (what a test left running), and wait until none is listed."""
        if self.proc.poll() is not None:
            return
        for s in self.api("api/sessions") or []:
            _ignore_http(lambda: self.api(f"api/sessions/{s['id']}", "DELETE", timeout=timeout))
        for k in self.api("api/kernels") or []:
            _ignore_http(lambda: self.api(f"api/kernels/{k['id']}", "DELETE", timeout=timeout))
        wait_until(lambda: not self.api("api/kernels"), timeout, "kernels to shut down")

    def stop(self, timeout: float = 30.0) -> None:
        """Shut the server down with its kernels (POST /api/shutdown), escalate to SIGTERM then SIGKILL,
        and reap kernel processes this server launched (found by their connection file in our runtime dir)."""
        if self.proc.poll() is None:
            try:
                self.api("api/shutdown", "POST", timeout=timeout)
            except Exception:  # noqa: BLE001 - the server may close the connection while exiting
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
        for pid in _pids_with_arg(str(self.runtime_dir)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _ignore_http(fn):
    try:
        fn()
    except urllib.error.HTTPError as e:
        if e.code != 404:  # already gone
            raise


def _pids_with_arg(needle: str) -> list[int]:
    """Processes whose command line mentions `needle` (Linux /proc); used to find our own kernels."""
    pids = []
    for d in Path("/proc").glob("[0-9]*"):
        try:
            if needle in (d / "cmdline").read_bytes().decode(errors="replace"):
                pids.append(int(d.name))
        except OSError:
            continue
    return [p for p in pids if p != os.getpid()]


def wait_until(cond, timeout: float, what: str, interval: float = 0.1):
    """Poll `cond()` until it returns something truthy (returned); AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)  # polling interval of a condition wait, not a fixed delay


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(base_dir: Path, timeout: float = 90.0, attempts: int = 3) -> LabServer:
    """Start the venv's `jupyter lab` on 127.0.0.1 with every Jupyter/IPython directory under `base_dir`.

    JUPYTER_DATA_DIR points at an empty temp folder: Jupyter still searches <sys.prefix>/share/jupyter after
    it, which is where the prebuilt widget extensions and the python3 kernelspec live (checked below).
    """
    base_dir = Path(base_dir)
    dirs = {name: base_dir / name for name in
            ("root", "jobs", "config", "data", "runtime", "settings", "workspaces", "ipython")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    for rel, value in LAB_SETTINGS.items():
        f = dirs["settings"] / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(value, indent=1))

    env = dict(os.environ)
    for var in ("JUPYTER_PATH", "JUPYTER_CONFIG_PATH", "JUPYTER_PREFER_ENV_PATH", "JUPYTERLAB_DIR"):
        env.pop(var, None)  # an outer setting could hide or replace the venv's extensions
    env.update({
        "JUPYTER_CONFIG_DIR": str(dirs["config"]),
        "JUPYTER_DATA_DIR": str(dirs["data"]),
        "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
        "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
        "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]),
        "IPYTHONDIR": str(dirs["ipython"]),
        "DIGITS_JOBS_DIR": str(dirs["jobs"]),
        "PATH": str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
        "PYTHONUNBUFFERED": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",  # silences a debugpy warning in every kernel
    })
    log_path = base_dir / "jupyter-server.log"
    last_error = ""
    for _ in range(attempts):
        token = secrets.token_hex(24)
        port = free_port()
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               "--ServerApp.port_retries=0",  # fail instead of silently moving to another port
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={dirs['root']}",
               "--LabApp.expose_app_in_browser=True",
               # Safety net if pytest itself is killed: orphaned kernels are culled, then the server exits.
               "--MappingKernelManager.cull_idle_timeout=900", "--MappingKernelManager.cull_interval=60",
               "--ServerApp.shutdown_no_activity_timeout=1800"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")  # as root, jupyter lab refuses to start without it
        log = open(log_path, "ab")
        proc = subprocess.Popen(cmd, env=env, cwd=dirs["root"], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        log.close()
        server = LabServer(url=f"http://127.0.0.1:{port}/", token=token, root_dir=dirs["root"],
                           jobs_dir=dirs["jobs"], base_dir=base_dir, log_path=log_path,
                           runtime_dir=dirs["runtime"], proc=proc, env=env)
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if server.api("api/status", timeout=5) is not None:
                    break
            except (OSError, urllib.error.URLError, ValueError):
                pass
            time.sleep(0.2)  # polling interval while the server boots
        else:
            if proc.poll() is None:
                server.stop()
                raise RuntimeError(f"jupyter lab did not answer within {timeout:.0f} s\n{server.log_tail()}")
            last_error = server.log_tail()
            continue  # exited: most likely the port was taken between free_port() and bind; try another
        _check_server(server)
        return server
    raise RuntimeError(f"jupyter lab exited during startup ({attempts} attempts)\n{last_error}")


def _check_server(server: LabServer) -> None:
    """Fail early and clearly if the widget extensions or the kernelspec are not where JupyterLab looks."""
    try:
        req = urllib.request.Request(server.url + "lab", headers={"Authorization": f"token {server.token}"})
        with urllib.request.urlopen(req, timeout=20) as r:
            html = r.read().decode()
        m = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', html, re.S)
        config = json.loads(m.group(1)) if m else {}
        found = {e.get("name") for e in config.get("federated_extensions", [])}
        missing = [n for n in REQUIRED_LABEXTENSIONS if n not in found]
        if missing:
            raise RuntimeError(f"JupyterLab does not see the prebuilt extensions {missing} (found {sorted(found)}); "
                               f"they should be in {Path(sys.prefix) / 'share/jupyter/labextensions'}")
        specs = server.api("api/kernelspecs")
        if "python3" not in specs.get("kernelspecs", {}):
            raise RuntimeError(f"no python3 kernelspec: {sorted(specs.get('kernelspecs', {}))}")
    except BaseException:
        server.stop()
        raise


# ------------------------------------------------------------------------------------------ notebooks
def write_notebook(path: str | os.PathLike, cells: list[str]) -> Path:
    """Write an nbformat v4 notebook of code cells, with python3 kernelspec metadata (no Select Kernel)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


# JavaScript run in the page. __dwPanel(path) finds the open NotebookPanel for a document path
# (null: the one opened last by open_notebook).
_JS_PANEL = r"""
const __dwPanel = (path) => {
  const app = window.jupyterapp;
  if (!app) return null;
  const want = path == null ? window.__dwNotebookPath : path;
  for (const w of app.shell.widgets('main')) {
    if (w.context && w.sessionContext && w.content && w.content.widgets && w.context.path === want) return w;
  }
  return null;
};
const __dwKernelIdle = (p) => {
  if (!p) return false;
  const sc = p.sessionContext, k = sc.session && sc.session.kernel;
  return !!(p.context.isReady && sc.isReady && !sc.isRestarting && k && k.status === 'idle'
            && k.connectionStatus === 'connected');
};
"""


def _js(body: str) -> str:
    """An arrow function taking one argument `a`, with the helpers above in scope."""
    return "(a) => {" + _JS_PANEL + body + "}"


def _ms(seconds: float) -> float:
    return float(seconds) * 1000.0


def open_notebook(page, lab: LabServer, path: str | os.PathLike, timeout: float = 90.0) -> None:
    """Open a notebook (relative to lab.root_dir, or absolute inside it) in a fresh workspace (?reset),
    wait until its kernel is started, connected and idle, and make it the current widget."""
    rel = lab.relpath(path)
    page.goto(f"{lab.url}lab/tree/{quote(rel)}?reset&token={lab.token}", wait_until="domcontentloaded",
              timeout=_ms(timeout))
    page.wait_for_function("() => !!window.jupyterapp", timeout=_ms(timeout), polling=100)
    page.evaluate("async () => { await window.jupyterapp.restored; }")
    if not page.evaluate("(id) => window.jupyterapp.hasPlugin(id)", WIDGET_MANAGER_PLUGIN):
        raise AssertionError(f"JupyterLab has no {WIDGET_MANAGER_PLUGIN}: widgets cannot render")
    page.evaluate("(p) => { window.__dwNotebookPath = p; }", rel)
    try:
        page.wait_for_function(_js("return __dwKernelIdle(__dwPanel(a));"), arg=rel, timeout=_ms(timeout),
                               polling=100)
    except Exception as e:
        state = page.evaluate(_js("""const p = __dwPanel(a); if (!p) return 'notebook not open';
            const k = p.sessionContext.session && p.sessionContext.session.kernel;
            return k ? `kernel ${k.name} status=${k.status} connection=${k.connectionStatus}` : 'no kernel';"""),
                              rel)
        raise AssertionError(f"kernel of {rel} did not become idle within {timeout:.0f} s: {state}") from e
    _activate(page, rel, timeout)


def _activate(page, rel: str | None, timeout: float) -> None:
    """Make the notebook the current widget, so notebook commands are enabled (Run All is silently a no-op
    otherwise)."""
    page.evaluate(_js("const p = __dwPanel(a); if (!p) throw new Error('notebook not open: ' + a);"
                      "window.jupyterapp.shell.activateById(p.id);"), rel)
    page.wait_for_function(_js("const p = __dwPanel(a); return !!p && window.jupyterapp.shell.currentWidget === p"
                               " && window.jupyterapp.commands.isEnabled('notebook:run-all-cells');"),
                           arg=rel, timeout=_ms(timeout), polling=100)


def wait_for_kernel_idle(page, path: str | None = None, timeout: float = 60.0) -> None:
    page.wait_for_function(_js("return __dwKernelIdle(__dwPanel(a));"), arg=path, timeout=_ms(timeout),
                           polling=100)


def _run_command(page, command: str, path: str | None, timeout: float, check: bool,
                 cell_index: int | None = None) -> bool:
    """Execute a notebook run command and wait for the promise it returns (resolves when the cells ran).
    The kernel must be connected, not idle: a cell may be sent while another one still runs (it queues)."""
    try:
        page.wait_for_function(_js("""const p = __dwPanel(a); if (!p) return false;
            const sc = p.sessionContext, k = sc.session && sc.session.kernel;
            return !!(p.context.isReady && sc.isReady && k && k.connectionStatus === 'connected');"""),
                               arg=path, timeout=_ms(timeout), polling=100)
    except Exception as e:
        raise AssertionError(f"{command}: notebook {path or '(last opened)'} has no connected kernel") from e
    _activate(page, path, timeout)
    page.evaluate(_js("""
        const [path, command, index] = a;
        const p = __dwPanel(path);
        if (index !== null) {
          const n = p.content.widgets.length;
          p.content.activeCellIndex = index < 0 ? n + index : index;
          p.content.deselectAll();
        }
        const st = {done: false, ok: null, error: null};
        window.__dwRun = st;
        Promise.resolve(window.jupyterapp.commands.execute(command)).then(
          (v) => { st.ok = v === undefined ? 'undefined' : v; st.done = true; },
          (e) => { st.error = String((e && e.stack) || e); st.done = true; });
    """), [path, command, cell_index])
    try:
        page.wait_for_function("() => window.__dwRun && window.__dwRun.done", timeout=_ms(timeout), polling=100)
    except Exception as e:
        raise AssertionError(f"{command} did not finish within {timeout:.0f} s") from e
    st = page.evaluate("() => window.__dwRun")
    if st["error"]:
        raise AssertionError(f"{command} failed in the page: {st['error']}")
    if st["ok"] == "undefined":
        raise AssertionError(f"{command} did nothing: no current notebook")
    if check and st["ok"] is not True:
        errs = notebook_errors(page, path)
        raise AssertionError(f"{command} reported failure; error outputs:\n" + "\n\n".join(
            f"cell {e['cell']}: {e['ename']}: {e['evalue']}\n{e['traceback']}" for e in errs))
    return st["ok"] is True


def run_all(page, path: str | None = None, timeout: float = 120.0, check: bool = True) -> bool:
    """Run all cells of the notebook (default: the one opened last) and wait until every cell has run.
    With check=True an error in any cell raises AssertionError carrying the tracebacks."""
    return _run_command(page, "notebook:run-all-cells", path, timeout, check)


def run_cell(page, index: int, path: str | None = None, timeout: float = 60.0, check: bool = True) -> bool:
    """Run one cell (negative index counts from the end) and wait for its reply."""
    return _run_command(page, "notebook:run-cell", path, timeout, check, cell_index=index)


def insert_cell(page, source: str, index: int | None = None, path: str | None = None) -> int:
    """Insert a code cell (default: at the end) and return its index; run it with run_cell."""
    return page.evaluate(_js("""
        const [path, source, index] = a;
        const p = __dwPanel(path);
        const n = p.content.widgets.length;
        const at = index === null ? n : index;
        p.model.sharedModel.insertCell(at, {cell_type: 'code', source: source});
        if (p.content.widgets.length !== n + 1) throw new Error('cell was not inserted');
        return at;
    """), [path, source, index])


def append_and_run(page, source: str, path: str | None = None, timeout: float = 60.0,
                   check: bool = True) -> int:
    index = insert_cell(page, source, None, path)
    run_cell(page, index, path, timeout, check)
    return index


def restart_kernel(page, path: str | None = None, clear_outputs: bool = True, timeout: float = 60.0) -> None:
    """Restart the kernel without the confirmation dialog and wait until the new one is idle; by default
    clear the outputs too (views of the old kernel's widgets are dead after a restart)."""
    page.evaluate(_js("""
        const p = __dwPanel(a);
        window.__dwRestart = {done: false, error: null};
        p.sessionContext.restartKernel().then(() => { window.__dwRestart.done = true; },
          (e) => { window.__dwRestart.error = String(e); window.__dwRestart.done = true; });
    """), path)
    page.wait_for_function("() => window.__dwRestart.done", timeout=_ms(timeout), polling=100)
    err = page.evaluate("() => window.__dwRestart.error")
    if err:
        raise AssertionError(f"kernel restart failed: {err}")
    wait_for_kernel_idle(page, path, timeout)
    if clear_outputs:
        page.evaluate(_js("const p = __dwPanel(a); for (const c of p.content.widgets) "
                          "{ if (c.model.type === 'code') c.model.sharedModel.transact(() => c.model.clearExecution()); }"),
                      path)


def notebook_errors(page, path: str | None = None) -> list[dict]:
    """Error outputs (output_type 'error') in the notebook model: cell index, ename, evalue, traceback."""
    errs = page.evaluate(_js("""
        const p = __dwPanel(a); const out = [];
        if (!p) return out;
        p.content.widgets.forEach((c, i) => {
          if (c.model.type !== 'code') return;
          for (const o of c.model.outputs.toJSON()) {
            if (o.output_type === 'error')
              out.push({cell: i, ename: o.ename, evalue: o.evalue, traceback: (o.traceback || []).join('\\n')});
          }
        });
        return out;
    """), path)
    ansi = re.compile(r"\x1b\[[0-9;]*m")
    for e in errs:
        e["traceback"] = ansi.sub("", e["traceback"])
    return errs


def cell_output_text(page, index: int, path: str | None = None) -> str:
    """Concatenated text of a cell's stream / text/plain outputs, from the model."""
    return page.evaluate(_js("""
        const [path, index] = a; const p = __dwPanel(path);
        const n = p.content.widgets.length; const c = p.content.widgets[index < 0 ? n + index : index];
        let s = '';
        for (const o of c.model.outputs.toJSON()) {
          if (o.output_type === 'stream') s += Array.isArray(o.text) ? o.text.join('') : o.text;
          else if (o.data && o.data['text/plain']) {
            const t = o.data['text/plain']; s += (Array.isArray(t) ? t.join('') : t) + '\\n';
          }
        }
        return s;
    """), [path, index])


# ------------------------------------------------------------------------------------- assertions
OUTPUT = ".jp-OutputArea-output"


def wait_for_text(page, text: str, timeout: float = 30.0, scope: str | None = OUTPUT):
    """Wait until a visible element matching `scope` (default: cell outputs, so the source code in the
    editors does not count) contains `text` (case-sensitive substring); returns its Locator."""
    loc = page.locator(scope or "body").filter(has_text=re.compile(re.escape(text))).first
    loc.wait_for(state="visible", timeout=_ms(timeout))
    return loc


def assert_no_widget_errors(page, path: str | None = None, console: bool = True, ignore: tuple[str, ...] = ()) -> None:
    """No "Error displaying widget" text, no ipywidgets error view (.jupyter-widgets-error-widget), no error
    output in the notebook (output_type 'error' in the model, or an output rendered with the error mime type),
    and (console=True) no uncaught page error or console.error since the notebook was opened: an anywidget
    whose ESM fails to load or whose render() throws shows nothing on the page and only reports there.
    `ignore`: regexes for console/page error texts to tolerate. Widgets still showing "Loading widget..." are
    not errors: wait for what they should show."""
    problems = []
    n = page.get_by_text("Error displaying widget").count()
    if n:
        problems.append(f'{n} x "Error displaying widget"')
    n = page.locator(".jupyter-widgets-error-widget").count()
    if n:
        texts = page.locator(".jupyter-widgets-error-widget").all_inner_texts()
        problems.append(f"{n} widget error view(s): {texts}")
    n = page.locator(f'{OUTPUT}[data-mime-type="application/vnd.jupyter.error"]').count()
    if n:
        problems.append(f"{n} rendered error output(s)")
    for e in notebook_errors(page, path):
        problems.append(f"error output in cell {e['cell']}: {e['ename']}: {e['evalue']}\n{e['traceback']}")
    if console:
        texts = [f"page error: {e}" for e in page.page_errors()]
        texts += [f"console.error: {m.text}" for m in page.console_messages() if m.type == "error"]
        problems += [t for t in texts if not any(re.search(pat, t) for pat in ignore)]
    if problems:
        raise AssertionError("widget/notebook errors on the page:\n" + "\n".join(problems))


# ipycanvas canvases carry no class of their own; bqplot figures hold a <canvas> too (WebGL marks).
IPYCANVAS = f"{OUTPUT} canvas:not(.bqplot canvas)"


def canvas_pixels(page, selector: str = IPYCANVAS, index: int = 0, timeout: float = 30.0,
                  wait_drawn: bool = True, until: str | None = None):
    """The RGBA pixels of a canvas (default: the index-th ipycanvas canvas in the outputs; a MultiCanvas is
    several stacked canvases), as a numpy uint8 array (height, width, 4).
    With wait_drawn (default), first wait until some pixel is not fully transparent (ipycanvas draws
    asynchronously, after its view renders).
    ``until`` is a JS arrow function ``(data, width, height) => bool`` for what the finished drawing shows:
    ipycanvas may show a canvas in steps (a view copies its model's bitmap after each batch of commands, and a
    replay on client_ready redraws it), so a test that checks the drawing waits for it up to ``timeout``; if
    it never holds, the last pixels are returned anyway, for the caller's assertions to say what is wrong."""
    import numpy as np

    page.locator(selector).nth(index).wait_for(state="attached", timeout=_ms(timeout))
    if wait_drawn:
        try:
            page.wait_for_function("""([sel, i]) => {
                const c = document.querySelectorAll(sel)[i];
                if (!c || !c.width || !c.height) return false;
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                for (let k = 3; k < d.length; k += 4) if (d[k] !== 0) return true;
                return false;
            }""", arg=[selector, index], timeout=_ms(timeout), polling=100)
        except Exception as e:
            found = page.evaluate("""(sel) => Array.from(document.querySelectorAll(sel)).map((c) =>
                `${c.className || '(no class)'} ${c.width}x${c.height} in ${c.parentElement.className}`)""", selector)
            raise AssertionError(f"canvas {selector!r}[{index}] stayed blank for {timeout:.0f} s; "
                                 f"canvases matching: {found}") from e
    if until:
        from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
        try:
            page.wait_for_function("""([sel, i, until]) => {
                const c = document.querySelectorAll(sel)[i];
                if (!c || !c.width || !c.height) return false;
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                return (0, eval)(until)(d, c.width, c.height);
            }""", arg=[selector, index, until], timeout=_ms(timeout), polling=100)
        except PlaywrightTimeoutError:
            pass   # the caller's assertions on the pixels below name what is missing
    r = page.evaluate("""([sel, i]) => {
        const c = document.querySelectorAll(sel)[i];
        const ctx = c.getContext('2d');
        if (!ctx) throw new Error('canvas has no 2d context');
        const d = ctx.getImageData(0, 0, c.width, c.height).data;
        let s = '';
        for (let k = 0; k < d.length; k += 0x8000) s += String.fromCharCode.apply(null, d.subarray(k, k + 0x8000));
        return {w: c.width, h: c.height, b64: btoa(s)};
    }""", [selector, index])
    return np.frombuffer(base64.b64decode(r["b64"]), dtype=np.uint8).reshape(r["h"], r["w"], 4)


_JS_PATH_POINTS = r"""
const __dwPoints = (sel, i) => {
  const el = document.querySelectorAll(sel)[i];
  if (!el) return -1;
  const d = el.getAttribute('d') || '';
  if (!d.trim()) return 0;
  const cmds = d.match(/[a-zA-Z]/g) || [];
  if (cmds.some((c) => !'MLml'.includes(c))) return -2;
  return ((d.match(/-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?/g) || []).length) / 2;
};
"""
BQPLOT_LINE = f"{OUTPUT} svg path.line"


def svg_path_points(page, selector: str = BQPLOT_LINE, index: int = 0, expect: int | None = None,
                    timeout: float = 30.0) -> int:
    """Number of points in an SVG line path (a bqplot Lines mark with linear interpolation: M/L commands).
    With `expect`, first wait until the path has exactly that many points."""
    fn = "([sel, i, n]) => {" + _JS_PATH_POINTS + "const k = __dwPoints(sel, i); return n === null ? k >= 0 : k === n;}"
    try:
        page.wait_for_function(fn, arg=[selector, index, expect], timeout=_ms(timeout), polling=100)
    except Exception as e:
        got = page.evaluate("([sel, i]) => {" + _JS_PATH_POINTS + "return __dwPoints(sel, i);}", [selector, index])
        raise AssertionError(f"path {selector!r}[{index}]: expected {expect} points, have {got} "
                             "(-1: no such element, -2: not a polyline)") from e
    n = page.evaluate("([sel, i]) => {" + _JS_PATH_POINTS + "return __dwPoints(sel, i);}", [selector, index])
    if n == -2:
        d = page.evaluate("([sel, i]) => (document.querySelectorAll(sel)[i].getAttribute('d') || '').slice(0, 300)",
                          [selector, index])
        raise AssertionError(f"path {selector!r} is not made of M/L commands (use linear interpolation): {d!r}")
    return int(n)


def image_pixels(img, timeout: float = 30.0):
    """The RGBA pixels of an <img> (a Playwright Locator) at its natural size, as a numpy uint8 array
    (height, width, 4). First waits until the image has loaded (ipywidgets.Image sets a blob: URL, which is
    same-origin, so drawing it on a canvas does not taint it)."""
    import numpy as np

    img.wait_for(state="attached", timeout=_ms(timeout))
    handle = img.element_handle(timeout=_ms(timeout))
    try:
        img.page.wait_for_function("(el) => el.complete && el.naturalWidth > 0 && el.naturalHeight > 0",
                                   arg=handle, timeout=_ms(timeout), polling=100)
    except Exception as e:
        raise AssertionError(f"image {img} did not load within {timeout:.0f} s") from e
    r = handle.evaluate("""(el) => {
        const c = document.createElement('canvas');
        c.width = el.naturalWidth; c.height = el.naturalHeight;
        const ctx = c.getContext('2d');
        ctx.drawImage(el, 0, 0);
        const d = ctx.getImageData(0, 0, c.width, c.height).data;
        let s = '';
        for (let k = 0; k < d.length; k += 0x8000) s += String.fromCharCode.apply(null, d.subarray(k, k + 0x8000));
        return {w: c.width, h: c.height, b64: btoa(s)};
    }""")
    return np.frombuffer(base64.b64decode(r["b64"]), dtype=np.uint8).reshape(r["h"], r["w"], 4)


def type_into(field, text: str) -> None:
    """What a person does: click the box, select what is there, type the new value."""
    from playwright.sync_api import expect as expect_that  # lab.py's own `expect` arguments mean counts

    field.click()
    field.press("Control+a")
    field.press_sequentially(text)
    expect_that(field).to_have_value(text)
