"""The page of one dataset job: live progress while it is created, then what it holds.

Built from the job directory alone, so a finished dataset shows its summary at once, also after a kernel
restart. While the job runs, the UI pump (``get_pump().watch``) hands it the job's feed on the main
thread (``store.feed.job_feed``): a thread's events here, or, for a job another process runs, what that
process writes to job.json and create.log. The worker thread never touches these widgets. Handlers
redraw from the job's state rather than accumulating the events, so they are idempotent and a missed
event costs nothing.
"""
from __future__ import annotations

import html
from typing import Callable

import ipywidgets as w
import numpy as np

from ..data.dataset import DatasetJob
from ..store.durations import eta
from ..store.events import Event
from ..store.feed import job_feed
from ..store.jobs import ABORTED, DONE, ERROR, find_job
from ..store.tail import last_lines
from .formats import bar_style, status_colour
from .images import default_palette, is_image_like, label_text, png_bytes, shape_text
from .pager import Paged, Pager
from .pump import get_pump

LOG_LINES = 12
CELL_SIDE = 160  # gallery thumbnails: a page of 256x256 images stays a few hundred kB


eta_text = eta   # 'ETA 1:05:09' / 'ETA 4:05' / 'ETA 12s'; '' when unknown (store.durations)
tail = last_lines   # the last lines of a log (store.tail)


def progress_text(progress: dict) -> str:
    """"done / total · rate/s · ETA" from a progress event or ``job.progress``."""
    done, total = int(progress.get("done", 0)), int(progress.get("total", 0))
    parts = [f"{done} / {total}"]
    rate = progress.get("rate") or 0.0
    if rate > 0:
        parts.append(f"{rate:.1f}/s" if rate < 100 else f"{rate:.0f}/s")
    left = eta(progress.get("eta")) if done < total else ""
    if left:
        parts.append(left)
    return " · ".join(parts)


class SampleGrid(w.GridBox):
    """Images with their labels beneath: class names, label vectors, or the label image beside the image."""

    def __init__(self, columns: int = 4):
        super().__init__(layout=w.Layout(grid_template_columns=f"repeat({columns}, max-content)",
                                         grid_gap="6px"))

    def show(self, samples: list[tuple[np.ndarray, object]], palette: list[int] | None = None,
             first: int = 0) -> None:
        cells = []
        for i, (image, label) in enumerate(samples, first):
            pics = [w.Image(value=png_bytes(image, max_side=CELL_SIDE), format="png")]
            caption = f"#{i}"
            if is_image_like(label):
                pics.append(w.Image(value=png_bytes(label, palette, max_side=CELL_SIDE), format="png"))
            elif label is not None:
                caption += f": {label_text(label)}"
            cells.append(w.VBox([w.HBox(pics), w.HTML(f"<small>{html.escape(caption)}</small>")],
                                layout=w.Layout(border="1px solid #ddd", padding="2px")))
        self.children = cells


class Explorer(Paged, w.VBox):
    """DIGITS' "Explore the db": a split, Previous / Next, and a page of entries with their labels."""

    def __init__(self, job: DatasetJob, page_size: int = 12, palette: list[int] | None = None):
        self.job, self.page_size, self.palette = job, page_size, palette
        self.split = w.Dropdown(options=job.splits, description="DB", layout=w.Layout(width="160px"))
        self.grid = SampleGrid()
        self.pager = Pager(page_size, self._count, self._show, before=[self.split])
        self.split.observe(lambda _c: self.go(0), names="value")
        super().__init__([self.pager, self.grid])
        self.go(0)

    def go(self, page: int) -> None:
        """Show page ``page`` (clamped) of the selected split; read errors are shown, not raised."""
        self.pager.go(page)

    def _count(self) -> int:
        return self.job.count(self.split.value) if self.split.value else 0

    def _show(self, start: int, end: int) -> str:
        split, n = self.split.value, self._count()
        if not n:
            self.grid.children = ()
            return "no entries"
        try:
            samples = self.job.samples(split, start, self.page_size)
        except Exception as exc:  # noqa: BLE001 - a moved or damaged DB is reported in place
            self.grid.children = ()
            return f'<span style="color:#c62828">{html.escape(f"Cannot read {split}: {exc}")}</span>'
        self.grid.show(samples, self.palette, first=start)
        return f"{start + 1}–{start + len(samples)} of {n} (page {self.page + 1}/{self.pages})"


class DatasetView(w.VBox):
    """Progress bar, done/total · rate · ETA, stage, log tail and status; then summary, samples and Explore."""

    def __init__(self, job: "DatasetJob | str", page_size: int = 12, samples: int = 8):
        self.job: DatasetJob = find_job(job, kind="dataset") if isinstance(job, str) else job
        self.page_size, self.n_samples = page_size, samples
        j = self.job
        self.title = w.HTML(f"<h3 style='margin:4px 0'>{html.escape(j.name)} <small><code>{j.id}</code> "
                            f"{html.escape(j.type)}</small></h3>")
        self.status = w.HTML()
        self.bar = w.IntProgress(min=0, max=1, value=0, bar_style="info", layout=w.Layout(width="360px"))
        self.progress = w.HTML()
        self.stage = w.HTML()
        self.abort_button = w.Button(description="Abort", button_style="danger", icon="stop",
                                     layout=w.Layout(width="90px"))
        self.abort_button.on_click(lambda _b: self.job.abort())
        self.log_box = w.HTML()
        self.error = w.HTML()
        self.summary = w.VBox()
        self.explorer: Explorer | None = None
        self._stop: Callable[[], None] | None = None
        self._finished = False
        parts = [self.bar, self.progress, self.stage, self.abort_button]
        super().__init__([self.title, self.status, w.HBox(parts, layout=w.Layout(align_items="center")),
                          self.error, self.summary, self.log_box])
        self.refresh()
        if not self._finished and j.is_running():
            if not j.is_owned_here():   # another process runs it: an abort could not reach that process
                self.abort_button.layout.display = "none"
            hold = (self.bar, self.progress, self.stage, self.log_box, self.status)
            feed = job_feed(j, metrics=None, log="create.log")   # a thread's events, or job.json, create.log
            self._stop = get_pump().watch(feed, self._on_events, hold=hold)
            self.refresh()  # anything that happened between the first look and the feed's start

    # ---- updates (main thread only) ------------------------------------------------------------------
    def _on_events(self, events: list[Event]) -> None:
        gone = next((e for e in events if e.get("type") == "gone"), None)
        if gone is not None:   # deleted meanwhile: say so once and stop following
            self.status.value = f'<span style="color:#c62828">{html.escape(str(gone.get("error")))}</span>'
            self._finished = True
            self.close_watch()
            return
        latest = next((e for e in reversed(events) if e.get("type") == "progress"), None)
        self.refresh(latest, logs=any(e.get("type") in ("log", "status") for e in events))

    def refresh(self, progress: dict | None = None, logs: bool = True) -> None:
        """Redraw from the job's current state (idempotent)."""
        if self._finished:
            return
        job = self.job
        status = job.status
        p = progress or job.progress
        total = int(p.get("total") or 0)
        self.bar.max = max(total, 1)
        self.bar.value = min(int(p.get("done") or 0), self.bar.max)
        self.progress.value = progress_text(p) if total else ""
        self.stage.value = f"<i>{html.escape(str(p.get('stage') or ''))}</i>"
        colour = status_colour(status)
        self.status.value = f'Status: <b style="color:{colour}">{html.escape(status)}</b>'
        if logs:
            rows = last_lines(job.path("create.log"), LOG_LINES)
            self.log_box.value = ("<pre style='max-height:14em;overflow:auto;font-size:85%;margin:2px 0'>"
                              + html.escape("\n".join(rows)) + "</pre>") if rows else ""
        if status in (DONE, ERROR, ABORTED):
            self._finish(status)

    def close_watch(self) -> None:
        """Stop following the job (idempotent): no more pump calls for this view."""
        stop, self._stop = getattr(self, "_stop", None), None
        if stop is not None:
            stop()

    def _finish(self, status: str) -> None:
        self._finished = True
        self.close_watch()
        self.abort_button.layout.display = "none"
        self.bar.bar_style = bar_style(status)   # a finished status
        if status == DONE:
            self.bar.value = self.bar.max
            self._show_summary()
        else:
            text = self.job.error or ("The job was aborted; its partial databases were removed."
                                      if status == ABORTED else "Failed")
            colour = status_colour(status)
            self.error.value = (f'<pre style="color:{colour};white-space:pre-wrap;margin:4px 0">'
                                f"{html.escape(text)}</pre>")

    # ---- the summary ----------------------------------------------------------------------------------
    @property
    def palette(self) -> list[int] | None:
        """Colours for label images: the dataset's palette; a default one for segmentation labels without."""
        return self.job.palette or (default_palette() if self.job.task == "segmentation" else None)

    def _summary_rows(self) -> list[tuple[str, str]]:
        job = self.job
        rows = [(s, f"{job.count(s)} entries") for s in job.splits]
        if job.feature_shape:
            rows.append(("image shape", f"{shape_text(job.feature_shape)} (WxHxC)"))
        if job.label_shape:
            rows.append(("label shape", "x".join(map(str, job.label_shape))))
        names = job.labels or job.class_names or []
        if names:
            shown = ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
            rows.append(("classes", f"{len(names)}: {shown}"))
        for key in ("encoding", "feature_encoding", "resize_mode"):
            if job.params.get(key):
                rows.append((key.replace("_", " "), str(job.params[key])))
        if job.group:
            rows.append(("group", job.group))
        return rows

    def _show_summary(self) -> None:
        rows = "".join(f"<tr><td style='padding-right:12px'><b>{html.escape(k)}</b></td>"
                       f"<td>{html.escape(v)}</td></tr>" for k, v in self._summary_rows())
        parts: list[w.Widget] = [w.HTML(f"<table>{rows}</table>")]
        self.mean_image: w.Image | None = None
        try:
            mean = self.job.mean()
        except Exception as exc:  # noqa: BLE001 - a missing mean file must not hide the rest
            parts.append(w.HTML(f'<span style="color:#c62828">{html.escape(f"Mean image: {exc}")}</span>'))
            mean = None
        if mean is not None:
            self.mean_image = w.Image(value=png_bytes(mean, min_side=96), format="png")
            # flex-start: a VBox stretches its children across, which blew the 96 px mean image up to the
            # output's full width in JupyterLab
            parts.append(w.VBox([w.HTML("<b>Mean image</b>"), self.mean_image],
                                layout=w.Layout(align_items="flex-start")))
        self.samples = SampleGrid()
        if self.job.splits:
            try:
                self.samples.show(self.job.samples(self.job.splits[0], 0, self.n_samples), self.palette)
                parts.append(w.VBox([w.HTML(f"<b>Samples ({self.job.splits[0]})</b>"), self.samples]))
            except Exception as exc:  # noqa: BLE001
                parts.append(w.HTML(f'<span style="color:#c62828">{html.escape(f"Samples: {exc}")}</span>'))
            self.explore_button = w.Button(description="Explore", icon="search")
            self.explore_button.on_click(lambda _b: self.explore())
            parts.append(self.explore_button)
        self.summary.children = parts

    def explore(self) -> Explorer:
        """Open (once) the explorer below the summary and return it."""
        if self.explorer is None:
            self.explorer = Explorer(self.job, self.page_size, self.palette)
            self.summary.children = (*self.summary.children, self.explorer)
        return self.explorer

    def close(self) -> None:
        """Stop following the job, then close the widget."""
        self.close_watch()
        super().close()


__all__ = ["DatasetView", "Explorer", "SampleGrid", "progress_text", "eta_text", "tail"]
