"""The training panel's text: its progress line, status history, a failed job's traceback, the download link.

Apart from the panel (``training_panel.py``) because none of it needs a widget: each function reads a job
(its status history, its logs) or an event and returns a string, so tests check the text without building
a panel, and the panel stays about its widgets and their traffic.
"""
from __future__ import annotations

import html
import re
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from ..store.durations import eta
from ..store.jobs import ABORTED, ERROR, RUNNING
from ..store.tail import last_lines

_STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
_ERROR_RE = re.compile(rf"^{_STAMP} ERROR (.*?)(?=^{_STAMP} |\Z)", re.M | re.S)


def error_traceback(job: Any) -> str:
    """The Python traceback of a failed job: from the live exception, else the last ERROR in its logs."""
    exc = getattr(job, "exception", None)
    if exc is not None:
        return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
    for name in ("train.log", "job.log"):
        found = _ERROR_RE.findall("\n".join(last_lines(job.path(name), 400)) + "\n")
        if found:
            return found[-1].rstrip()
    return ""


def when(t: float) -> str:
    """A time as the panel shows it: '2024-05-01 13:02:05', local time."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def progress_text(progress: dict, samples_per_s: float | None, epochs: int, running: bool) -> str:
    """'epoch 3/10 · 1,234 samples/s · ETA 12s' from a progress event and the last train metric."""
    done, total, stage = progress.get("done", 0), progress.get("total", 0), progress.get("stage") or ""
    parts = []
    if stage.startswith("epoch"):
        parts.append(stage)
    elif total:
        parts.append(f"epoch {min(epochs, int(np.ceil(done / total * epochs)))}/{epochs}")
    if samples_per_s:
        parts.append(f"{samples_per_s:,.0f} samples/s")
    if running and (left := eta(progress.get("eta"))):
        parts.append(left)
    return " · ".join(parts)


def run_warnings(job: Any) -> list[str]:
    """train.log's WARNING lines since the latest Running (a stretched schedule on resume), oldest first."""
    started = max((t for s, t in job.status_history if s == RUNNING), default=None)
    path = Path(job.path("train.log"))
    if started is None or not path.exists():
        return []
    since = when(int(started))   # the log's stamps are whole seconds
    found = []
    for line in last_lines(path, 200):
        stamp, _, rest = line[:19], line[19:20], line[20:]
        if rest.startswith("WARNING ") and stamp >= since:
            found.append(rest[len("WARNING "):])
    return found[-3:]


def status_html(job: Any, status: str) -> str:
    """The status history (status and time per entry); an Error shows its message in red and its traceback."""
    rows = [f"<tr><td style='padding-right:1em'>{html.escape(s)}</td><td>{when(t)}</td></tr>"
            for s, t in job.status_history]
    if status != job.status_history[-1][0]:
        rows.append(f"<tr><td>{html.escape(status)}</td><td>(its process is gone)</td></tr>")
    out = "<table style='font-size:90%'>" + "".join(rows) + "</table>"
    reason = job.record["status_history"][-1][2:]   # why the store wrote the last status itself (dead owner)
    if status == ABORTED and reason:
        out += f"<div style='color:#8a6d00'>{html.escape(str(reason[0]))}</div>"
    for warning in run_warnings(job):
        out += f"<div style='color:#8a6d00'>&#9888; {html.escape(warning)}</div>"
    if status == ERROR:
        out += f"<pre style='color:#c62828;white-space:pre-wrap'>{html.escape(job.error or 'Error')}</pre>"
        tb = error_traceback(job)
        if tb:
            out += (f"<details><summary>Traceback</summary><pre style='white-space:pre-wrap'>"
                    f"{html.escape(tb)}</pre></details>")
    return out


def download_html(path: Path) -> str:
    """The archive's absolute path, and a link to it when it is under the kernel's folder: JupyterLab serves
    ``files/<path relative to its root>``, which is that folder when the lab was started there."""
    shown = f"<code>{html.escape(str(path))}</code>"
    try:
        rel = path.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return f"Model archive written: {shown}"
    return (f"Model archive written: <a href='files/{html.escape(rel)}' download target='_blank'>"
            f"{html.escape(path.name)}</a> ({shown})")


__all__ = ["progress_text", "status_html", "run_warnings", "error_traceback", "download_html", "when"]
