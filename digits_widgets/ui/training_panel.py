"""The training panel: live curves, progress, status history, log tail and Abort / Pause / Resume.

It is a view over the job directory. On construction it opens the job's feed (``store.feed.job_feed``:
the events of a thread run here, or what another process, a torchrun, writes to the directory) and
hands it to the pump, then redraws everything from disk, so ``dw.job(id).show()`` after a kernel
restart shows the same panel as the cell that started training. The feed gives each metric once, also
one both read from disk and fed (``JobFeed.backlog``); a resumed run (whose steps go back to the
checkpoint) replaces the points the interrupted run logged after it.

Why the finished curves are a second output updated by display id: widget state is not saved with
a notebook by default, and JupyterLab shows "Error displaying widget: model not found" for a widget
output it cannot restore; it does not fall back to another MIME type of the same output. So when the
panel is displayed (``display(panel)``, a cell result, ``show_training``) it emits two outputs: the
widget, and an ordinary ``display_data`` with a display id, empty while training runs. When the job
ends, the pump (main thread) sends ``update_display_data`` for that id with an ``image/png`` of the
curves (curves_png.py). Display updates are routed by id, not by the cell that is running, so this
works from a timer callback, and the PNG becomes part of the saved notebook: JupyterLab, nbviewer
and GitHub all show it. A job that has already finished shows its PNG at once. While the PNG shows, the
panel hides its live charts, so the curves appear once (they come back if the job is resumed).

The text it shows (progress line, status history, traceback, download link) is built in training_text.py.
"""
from __future__ import annotations

import base64
import contextlib
import html
import time
from collections import deque
from typing import Any

import ipywidgets as widgets
import numpy as np
from bqplot import Axis, Figure, LinearScale, Lines

from ..errors import DigitsError
from ..store import events
from ..store.events import Event
from ..store.feed import job_feed
from ..store.jobs import ABORTED, ACTIVE, DONE, ERROR, WAITING
from ..store.scheduler import waiting_label
from ..store.tail import last_lines
from ..train import records
from .formats import bar_style
from .pump import Pump, get_pump
from .series import DEFAULT_BYTES_PER_S, DecimatedSeries, LineSchedule, SeriesLine
from .ticks import nice_ticks
from .training_text import download_html, error_traceback, progress_text, run_warnings, status_html, when

LOG_LINES = 10
FINISHED = (DONE, ABORTED, ERROR)
COLORS = {"train": "#1f77b4", "val": "#ff7f0e", "accuracy": "#2ca02c", "lr": "#9467bd"}
PROGRESS_STEPS = 500   # the bar moves when it moves by 1/500 (a pixel of a 500 px bar), not every round
LABEL_EVERY = 1.0      # seconds between progress texts whose epoch is the same (rate and ETA change each round)

# The panel's text (training_text.py), importable from here as well: tests and callers know it as the panel's.
__all__ = ["TrainingPanel", "show_training", "progress_text", "run_warnings", "status_html", "error_traceback",
           "download_html"]


def _is_classification(job: Any) -> bool:
    try:
        return job.dataset.task == "classification"
    except Exception:  # noqa: BLE001 - the dataset may be gone; the model remembers its task as its type
        return job.type == "classification"


def _line(x: LinearScale, y: LinearScale, color: str, label: str, marker: str | None = None) -> Lines:
    extra = {"marker": marker, "marker_size": 24} if marker else {}
    return Lines(x=np.zeros(0), y=np.zeros(0), scales={"x": x, "y": y}, colors=[color], labels=[label],
                 display_legend=True, **extra)


class TrainingPanel(widgets.VBox):
    """Everything about one model job's training, kept current by the UI pump.

    Traffic: a widget sends only when what it shows changes, at most once per pump round; the chart
    lines share ``bytes_per_s`` (``series.LineSchedule``; None: no budget). What is held back is shown by
    a catch-up round (``Pump.after``), and everything is sent in full once the job has ended.
    """

    def __init__(self, job: Any, pump: Pump | None = None, capacity: int = 1000,
                 bytes_per_s: float | None = DEFAULT_BYTES_PER_S):
        self.job = job
        self.classification = _is_classification(job)
        self.epochs = job.options.epochs
        self.train_loss, self.lr = DecimatedSeries(capacity), DecimatedSeries(capacity)
        self.val_loss, self.val_accuracy = DecimatedSeries(10 * capacity), DecimatedSeries(10 * capacity)
        self._progress: dict = {}
        self._samples_per_s: float | None = None
        self._logs: deque[str] = deque(maxlen=LOG_LINES)
        self._curves_id = f"digits-curves-{job.id}-{id(self):x}"
        self._displayed = False
        self._shown_final: tuple[str, int] | None = None   # (status, history length) whose PNG was sent
        self._shown_status: str | None = None
        self.png: bytes | None = None

        x, y, y_acc, x_lr = LinearScale(), LinearScale(), LinearScale(min=0, max=100), LinearScale()
        y_lr = LinearScale(min=0.0)   # from 0, as the schedule decays towards it (and as the form's preview)
        self.lines = [SeriesLine(_line(x, y, COLORS["train"], "loss (train)"), self.train_loss),
                      SeriesLine(_line(x, y, COLORS["val"], "loss (val)", "circle"), self.val_loss)]
        # the title 60 px left of the axis: clear of six-character ticks ("0.0005", "2,500"), which
        # bqplot's default offset let it overlap
        axes = [Axis(scale=x, label="epoch"), Axis(scale=y, side="left", label="loss", label_offset="60px")]
        if self.classification:
            self.lines.append(SeriesLine(_line(x, y_acc, COLORS["accuracy"], "accuracy (val) %", "square"),
                                         self.val_accuracy))
            axes.append(Axis(scale=y_acc, side="right", label="accuracy (%)"))
        self.lines.append(SeriesLine(_line(x_lr, y_lr, COLORS["lr"], "learning rate"), self.lr))
        margin = {"top": 20, "bottom": 40, "left": 75, "right": 65}
        # padding_x: the first x tick sits ~25 px right of the y axis, never under the lowest y tick
        self.figure = Figure(marks=[s.line for s in self.lines[:-1]], axes=axes, animation_duration=0, padding_x=0.03,
                             legend_location="top-right", fig_margin=margin,
                             layout=widgets.Layout(width="100%", height="300px"))
        # A short chart: about 4 round ticks from 0 ("0.0025", "5e-6"; ``_fit_lr_ticks``) stay apart and
        # clear of the title, where bqplot's default ten ticks of a narrow decay all read "0.01"
        self.lr_axis = Axis(scale=y_lr, side="left", label="learning rate", label_offset="62px",
                            tick_format=".3~g", tick_values=np.zeros(0))
        self.lr_figure = Figure(marks=[self.lines[-1].line], animation_duration=0, padding_x=0.03,
                                fig_margin={**margin, "left": 85},   # room for "0.0075" beside the title
                                axes=[Axis(scale=x_lr, label="epoch"), self.lr_axis],
                                layout=widgets.Layout(width="100%", height="180px"))
        self.title = widgets.HTML()
        self.progress = widgets.IntProgress(min=0, max=1, value=0, layout=widgets.Layout(width="50%"))
        self.progress_label = widgets.HTML()
        self.abort_button = widgets.Button(description="Abort", icon="stop", button_style="danger")
        self.pause_button = widgets.Button(description="Pause", icon="pause")
        self.resume_button = widgets.Button(description="Resume", icon="play", button_style="success")
        self.download_button = widgets.Button(description="Download Model", icon="download",
                                              tooltip="Write the last snapshot's archive into the job directory")
        self.message = widgets.HTML()   # a refused action's reason, or where Download Model wrote the archive
        self.status = widgets.HTML()
        self.log_html = widgets.HTML()   # not ``log``: that is the widget's Logger trait
        self.abort_button.on_click(lambda _: self._act(self.job.abort))
        self.pause_button.on_click(lambda _: self._act(self.job.pause))
        self.resume_button.on_click(lambda _: self._act(self._resume))
        self.download_button.on_click(lambda _: self._act(self._download))
        self._below_charts = (widgets.HBox([self.progress, self.progress_label]),
                              widgets.HBox([self.abort_button, self.pause_button, self.resume_button,
                                            self.download_button, self.message]),
                              self.status, self.log_html)
        super().__init__(children=[self.title, self.figure, self.lr_figure, *self._below_charts])
        self._synced = (self.title, self.progress, self.progress_label, self.status, self.log_html,
                        self.abort_button, self.pause_button, self.resume_button)
        self._pump = pump or get_pump()
        self.charts = LineSchedule(self.lines, bytes_per_s, self._pump.clock)
        self._label_due, self._catch_up_cancel = 0.0, None
        self._lr_top = 0.0
        self.feed = job_feed(job)   # before reading disk: nothing written meanwhile is missed
        self._stop = self._pump.watch(self.feed, self._on_events,
                                      hold=(*self._synced, *(s.line for s in self.lines)))
        self.redraw()

    # ---- from disk -------------------------------------------------------------------------------
    def redraw(self) -> None:
        """Rebuild every part from the job directory (what a restarted kernel does)."""
        for s in (self.train_loss, self.lr, self.val_loss, self.val_accuracy):
            s.clear()
        for record in self.feed.backlog():   # metrics.jsonl; the feed then gives only later metrics
            self._add_metric(record)
        self._progress = dict(self.job.progress)
        self._logs.clear()
        self._logs.extend(last_lines(self.job.path("train.log"), LOG_LINES))
        self._render(status_changed=True, logs_changed=True, force=True)

    # ---- live events -----------------------------------------------------------------------------
    def _on_events(self, batch: list[Event]) -> None:
        status_changed = logs_changed = False
        for e in batch:
            kind = e.get("type")
            if kind == "metric":
                self._add_metric(e)
            elif kind == "progress":
                self._progress = e
            elif kind == "log":
                stamp = when(e.get("time", time.time()))
                self._logs.extend(f"{stamp} {line}" for line in str(e.get("line", "")).splitlines())
                logs_changed = True
                status_changed |= str(e.get("line", "")).startswith("WARNING ")   # shown under the status
            elif kind in ("status", "paused", "queue"):   # queue: its place in the scheduler's queue moved
                status_changed = True
        self._render(status_changed, logs_changed)

    def _add_metric(self, r: dict) -> None:
        phase, epoch = r.get("phase"), r.get("epoch")
        if phase not in ("train", "val") or epoch is None:
            return
        step = r.get("step", 0)
        series = (self.train_loss, self.lr) if phase == "train" else (self.val_loss, self.val_accuracy)
        last = series[0].last_key
        if last is not None and step <= last:   # a resumed run logs again from its checkpoint
            for s in series:
                s.truncate(step)
        if phase == "train":
            self.train_loss.add(epoch, r.get("loss"), step)
            self.lr.add(epoch, r.get("lr"), step)
            self._samples_per_s = r.get("samples_per_s", self._samples_per_s)
        else:
            self.val_loss.add(epoch, r.get("loss"), step)
            acc = r.get("accuracy")
            self.val_accuracy.add(epoch, None if acc is None else 100.0 * acc, step)

    # ---- drawing (main thread, inside hold_sync of self._synced) -----------------------------------
    def _render(self, status_changed: bool, logs_changed: bool = False, force: bool = False) -> None:
        status = self.job.status
        status_changed = status_changed or status != self._shown_status   # e.g. its process died
        self._shown_status = status
        running = status in ACTIVE
        held = self.charts.draw(force or status in FINISHED)   # an ended job's charts go out complete
        self._fit_lr_ticks()
        self._catch_up(held, self._render_progress(status, running))
        if logs_changed:
            self.log_html.value = ("<pre style='font-size:85%;margin:0;white-space:pre-wrap'>"
                                   + html.escape("\n".join(self._logs)) + "</pre>")
        if status_changed:
            paused = self.job.paused and running
            self.title.value = (f"<b>{html.escape(self.job.name)}</b> ({self.job.id}) · "
                                f"{html.escape(waiting_label(self.job.queue_position) if status == WAITING else status)}"
                                f"{' (paused)' if paused else ''}")
            self.status.value = status_html(self.job, status)
            self.abort_button.disabled = not running
            self.pause_button.disabled = not running or paused
            self.resume_button.disabled = not (paused or self._can_resume(status))
            self._update_curves(status)

    def _fit_lr_ticks(self) -> None:
        """Round ticks from 0 to the highest rate drawn; a message only when that maximum changes."""
        y = self.lines[-1].line.y
        top = float(np.nanmax(y)) if len(y) and np.isfinite(y).any() else 0.0
        if top > 0 and top != self._lr_top:
            self._lr_top = top
            self.lr_axis.tick_values = np.asarray(nice_ticks(top, 4))

    def _render_progress(self, status: str, running: bool) -> float | None:
        """Bar and label, when they visibly change; seconds until a held-back label is due, else None."""
        p, now = self._progress, self._pump.clock()
        top = max(1, int(p.get("total") or 1))
        done = min(top, int(p.get("done") or 0))
        if (not running or top != self.progress.max or done in (0, top)
                or abs(done - self.progress.value) * PROGRESS_STEPS >= top):
            self.progress.max, self.progress.value = top, done
        self.progress.bar_style = bar_style(status)
        text = html.escape(progress_text(p, self._samples_per_s, self.epochs, running))
        shown = self.progress_label.value
        if text == shown:
            return None
        if running and now < self._label_due and text.split(" · ")[0] == shown.split(" · ")[0]:
            return self._label_due - now
        self.progress_label.value, self._label_due = text, now + LABEL_EVERY
        return None

    def _catch_up(self, *held: float | None) -> None:
        """Something was held back (a line over budget, a label under its limit): one later round shows it,
        even if no event comes before then (a long validation, a pause)."""
        delays = [d for d in held if d is not None]
        if not delays or self._catch_up_cancel is not None:
            return

        def again() -> None:
            self._catch_up_cancel = None
            self._render(False)
        self._catch_up_cancel = self._pump.after(min(delays), again,
                                                 hold=(*self._synced, *(s.line for s in self.lines)))

    def _can_resume(self, status: str) -> bool:
        return status in (ABORTED, ERROR) and self.job.path(records.CHECKPOINT).exists()

    # ---- buttons (clicks arrive on the main thread) ----------------------------------------------
    def _resume(self) -> None:
        if self.job.paused:
            self.job.unpause()
        elif self._can_resume(self.job.status):
            self.job.resume()

    def _download(self) -> None:
        """DIGITS' "Download Model": the last snapshot's archive beside the job's files, and where it is."""
        from ..infer.archive import default_archive_name, download
        path = download(self.job, self.job.path(default_archive_name(self.job))).resolve()
        self.message.value = download_html(path)

    def _act(self, action: Any) -> None:
        self.message.value = ""
        try:
            action()
        except DigitsError as exc:
            self.message.value = f"<span style='color:#c62828'>{html.escape(str(exc))}</span>"
        with contextlib.ExitStack() as stack:   # buttons follow at once, not at the next tick
            for widget in self._synced:
                stack.enter_context(widget.hold_sync())
            self._on_events([events.status(self.job.status, self.job.error)])

    # ---- the static PNG ----------------------------------------------------------------------------
    def curves_png(self) -> bytes:
        from .curves_png import job_curves_png   # matplotlib only when a picture is wanted
        self.png = job_curves_png(self.job)
        return self.png

    def curves_bundle(self) -> dict:
        """The second output: the curves as PNG once the job has ended, an empty text before."""
        if self.job.status not in FINISHED:
            return {"text/plain": ""}
        png = base64.b64encode(self.curves_png()).decode("ascii")
        return {"image/png": png, "text/plain": f"Training curves of {self.job.name} ({self.job.id})"}

    def _update_curves(self, status: str) -> None:
        final = (status, len(self.job.status_history)) if status in FINISHED else None
        if final == self._shown_final:
            return
        self._shown_final = final
        if self._displayed:
            from IPython.display import update_display
            update_display(self.curves_bundle(), display_id=self._curves_id, raw=True)
        self._sync_charts()

    def _sync_charts(self) -> None:
        """One set of curves: the live charts while the job runs (or when no PNG output is shown), the PNG
        alone once it has ended and the panel's PNG output shows it."""
        png_shown = self._displayed and self._shown_final is not None
        # Out of the children, not display:none: bqplot lays a hidden figure out at zero size and the
        # browser logs "<rect> attribute width: A negative value" (0 minus the margins) for every redraw.
        children = (self.title, *(() if png_shown else (self.figure, self.lr_figure)), *self._below_charts)
        if tuple(self.children) != children:
            self.children = children

    def _ipython_display_(self) -> None:
        from IPython.display import display
        self._displayed = True
        self._sync_charts()   # before the widget is drawn, so a finished job never shows its curves twice
        display(self._repr_mimebundle_(), raw=True)
        display(self.curves_bundle(), raw=True, display_id=self._curves_id)

    def close(self) -> None:
        """Stop watching the job, then close every widget of the panel (a closed view must cost nothing)."""
        if hasattr(self, "_stop"):   # ``__del__`` also calls close, even when ``__init__`` failed half-way
            self._stop()
            if self._catch_up_cancel is not None:
                self._catch_up_cancel()
            parts = [*self._synced, self.message, self.download_button, *self.children, self.figure,
                     self.lr_figure, *self.figure.axes, *self.lr_figure.axes, *(s.line for s in self.lines)]
            for part in parts:
                part.close()
        super().close()


def show_training(job: Any) -> None:
    """Display the training panel of a model job: live curves, then a PNG of them when it ends.

    Returns None so that ``job.show()`` as a cell's last line does not display the panel twice.
    """
    from IPython.display import display
    display(TrainingPanel(job))
