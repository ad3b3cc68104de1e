"""``dw.Jobs()``: DIGITS' home page as a widget, two sortable tables of the jobs on disk.

The job directories are the truth (a kernel restart loses nothing), so the panel looks at the jobs
directory once a second from the UI pump, on the kernel's main thread, through the jobs directory's feed
(``store.jobs_feed.JobsFeed``): a stat of each job.json, and a re-read only of those that changed. A row's
values are recomputed when its job changed, while it is active (a running job's Elapsed ticks, a queued
job's place moves) and when its model's metrics moved; the table keeps one row of widgets per job, skips a
row whose values are the same and sets only the cells whose text changed; the grid's children are
reassigned only when jobs come, go or change order. Validation losses come from each model's
metrics.jsonl, read incrementally from the last offset (``records.MetricsTail``), so a long run does not
cost a full parse every second.
"""
from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import ipywidgets as widgets

from .. import api
from ..errors import DigitsError
from ..store.durations import clock
from ..store.jobs import ABORTED, ACTIVE, DONE, ERROR, RUNNING, WAITING, Job, dependents, jobs_dir
from ..store.jobs_feed import JobsFeed
from ..store.scheduler import waiting_label
from ..train import records
from ..train.records import MetricsTail
from . import panel_for
from .formats import status_colour
from .pump import get_pump

__all__ = ["Jobs", "JobTable", "JobEditor", "job_values", "matches", "MetricsTail"]

REFRESH_SECONDS = 1.0
_TICKING = (WAITING, RUNNING)   # the statuses whose row changes with time alone (Elapsed, queue place)
_COMMON_COLUMNS = [("name", "Name"), ("status", "Status"), ("progress", "Progress"), ("created", "Submitted"),
                   ("elapsed", "Elapsed")]
DATASET_COLUMNS = _COMMON_COLUMNS + [("group", "Group")]
MODEL_COLUMNS = _COMMON_COLUMNS + [("last_loss", "Last val loss"), ("min_loss", "Min val loss"),
                                   ("accuracy", "Val accuracy"), ("group", "Group")]
# Icon buttons keep a model row narrow enough for a notebook; the tooltips say what they do.
ACTION_ICONS = {"open": "folder-open", "abort": "stop", "clone": "clone", "resume": "play", "delete": "trash"}
ACTION_TIPS = {"open": "Open: show this job below", "abort": "Abort: stop at the next batch",
               "clone": "Clone: a new model form filled from this one", "resume": "Resume from the last checkpoint",
               "delete": "Delete (click again to confirm)"}


def _elapsed(job: Job, now: float) -> float:
    """Seconds spent Waiting or Running (summed over resumes), up to now while it runs: DIGITS' Elapsed."""
    history = job.status_history
    total = 0.0
    for i, (status, start) in enumerate(history):
        if i + 1 < len(history):
            end = history[i + 1][1]
        elif job.is_running():
            end = now
        else:
            break  # a job whose process died without a final status: no end is known
        if status in (WAITING, RUNNING):
            total += max(0.0, end - start)
    return total


def job_values(job: Job, now: float, tail: MetricsTail | None = None) -> dict[str, Any]:
    """What a row shows, as sortable raw values (None when not known)."""
    status = job.status
    p = job.progress
    progress = 100.0 if status == DONE else (100.0 * p["done"] / p["total"] if p.get("total") else 0.0)
    values = {"name": job.name, "group": job.group, "status": status, "progress": progress, "created": job.created,
              "elapsed": _elapsed(job, now), "error": job.error,
              "queue": job.queue_position if status == WAITING else None,
              "waiting_for": job.waiting_for if status == WAITING else None,
              "can_abort": status in ACTIVE,
              "can_resume": job.kind == "model" and status in (ABORTED, ERROR)
              and job.path(records.CHECKPOINT).exists()}
    if tail is not None:
        values.update(last_loss=tail.last_loss, min_loss=tail.min_loss, accuracy=tail.accuracy)
    return values


def matches(job: Job, text: str) -> bool:
    """DIGITS' home-page filter: the text (any case) appears in the job's name or group."""
    text = text.strip().lower()
    return not text or text in job.name.lower() or text in job.group.lower()


def _cell_text(key: str, v: dict[str, Any]) -> str:
    value = v.get(key)
    if key == "name":
        return f"<b>{html.escape(value)}</b>"
    if key == "group":
        return html.escape(value)
    if key == "status":
        why = v.get("error") or (f"Waiting for {v['waiting_for']}" if v.get("waiting_for") else "")
        tip = f' title="{html.escape(why)}"' if why else ""
        text = waiting_label(v.get("queue")) if value == WAITING else value
        return f'<span style="color:{status_colour(value)}"{tip}>{text}</span>'
    if key == "progress":
        return f"{value:.0f}%"
    if key == "created":
        return time.strftime("%b %d, %H:%M:%S", time.localtime(value))
    if key == "elapsed":
        return clock(value)
    if value is None:
        return "—"
    return f"{100 * value:.2f}%" if key == "accuracy" else f"{value:.4g}"


@dataclass
class _Row:
    cells: list[widgets.HTML]
    buttons: dict[str, widgets.Button]
    values: dict[str, Any] = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)


class JobTable(widgets.VBox):
    """A sortable table of jobs of one kind: click a header to sort by it, again to reverse.

    ``action(name, job_id)`` is called by the row buttons: open, abort, clone (models), delete, resume
    (models). ``rows`` maps job ids to their row; ``order`` is the ids as shown, top to bottom.
    """

    def __init__(self, title: str, columns: list[tuple[str, str]], actions: tuple[str, ...],
                 action: Callable[[str, str], None]) -> None:
        self.columns, self.actions, self._action = columns, actions, action
        self.sort_key, self.descending = "created", True   # newest first, as DIGITS
        self.rows: dict[str, _Row] = {}
        self.order: list[str] = []
        self.headers = []
        for key, label in columns:
            b = widgets.Button(description=label, layout=widgets.Layout(width="auto", justify_content="flex-start"))
            b.style.button_color = "transparent"
            b.style.font_weight = "bold"
            b.on_click(lambda _, key=key: self.sort_by(key))
            self.headers.append(b)
        self.grid = widgets.GridBox(layout=widgets.Layout(
            grid_template_columns="minmax(120px, max-content) " + " ".join(["max-content"] * len(columns)),
            grid_gap="2px 10px", align_items="center", justify_items="flex-start"))
        self.empty = widgets.HTML("<i>None yet.</i>")
        self._label_headers()
        super().__init__([widgets.HTML(f"<h4 style='margin:6px 0'>{title}</h4>"), self.grid, self.empty],
                         layout=widgets.Layout(overflow="auto"))   # a wide table scrolls, not clips

    def sort_by(self, key: str) -> None:
        """Sort by column ``key``; the same column again reverses the order."""
        self.descending = not self.descending if key == self.sort_key else key in ("created", "accuracy")
        self.sort_key = key
        self._label_headers()
        self._layout()

    def _label_headers(self) -> None:
        for (key, label), b in zip(self.columns, self.headers):
            b.description = label + ((" ▼" if self.descending else " ▲") if key == self.sort_key else "")

    def update(self, values: dict[str, dict[str, Any]]) -> None:
        """Show these jobs (id → job_values): new rows are made, gone rows closed, changed cells set."""
        for job_id in [i for i in self.rows if i not in values]:
            row = self.rows.pop(job_id)
            for w in [*row.cells, *row.buttons.values()]:
                w.close()
        for job_id, v in values.items():
            row = self.rows.get(job_id) or self._new_row(job_id)
            if row.texts and v == row.values:
                continue   # nothing it shows has changed
            texts = [_cell_text(key, v) for key, _ in self.columns]
            for cell, old, new in zip(row.cells, row.texts or [None] * len(texts), texts):
                if old != new:
                    cell.value = new
            row.texts, row.values = texts, v
            for name, button in row.buttons.items():
                disabled = (name == "abort" and not v["can_abort"]) or (name == "resume" and not v["can_resume"])
                if button.disabled != disabled:
                    button.disabled = disabled
        self._layout()

    def _new_row(self, job_id: str) -> _Row:
        buttons = {}
        for name in self.actions:
            b = widgets.Button(icon=ACTION_ICONS[name], tooltip=ACTION_TIPS[name], layout=widgets.Layout(width="auto"),
                               button_style="danger" if name == "delete" else "")
            b.on_click(lambda _, name=name: self._action(name, job_id))
            buttons[name] = b
        row = _Row([widgets.HTML() for _ in self.columns], buttons)
        self.rows[job_id] = row
        return row

    def _layout(self) -> None:
        def key(job_id: str) -> tuple:
            value = self.rows[job_id].values.get(self.sort_key)
            if isinstance(value, str):
                value = value.lower()
            return (value is None) != self.descending, value if value is not None else 0, job_id
        order = sorted(self.rows, key=key, reverse=self.descending)
        if order != self.order or len(self.grid.children) != (len(order) + 1) * (len(self.columns) + 1):
            self.order = order
            children: list[widgets.Widget] = [*self.headers, widgets.HTML("<b>Actions</b>")]
            for job_id in order:
                row = self.rows[job_id]
                children += [*row.cells, widgets.HBox(list(row.buttons.values()))]
            self.grid.children = children
            self.empty.layout.display = "none" if order else None


class JobEditor(widgets.VBox):
    """DIGITS' editable name and notes of a job page: Save writes them to job.json (``job.rename``,
    ``job.notes``) and calls ``on_saved``; a refused name (empty) says why and changes nothing."""

    def __init__(self, job: Job, on_saved: Callable[[Job], None] = lambda job: None) -> None:
        self.job, self._on_saved = job, on_saved
        self.name = widgets.Text(value=job.name, description="Name", layout=widgets.Layout(width="420px"))
        self.notes = widgets.Textarea(value=job.notes, description="Notes",
                                      placeholder="What you tried, what you saw",
                                      layout=widgets.Layout(width="600px", height="4.5em"))
        self.save = widgets.Button(description="Save", icon="save", tooltip="Save the name and notes in job.json",
                                   layout=widgets.Layout(width="auto"))
        self.save.on_click(lambda _: self.save_changes())
        self.message = widgets.HTML()
        super().__init__([widgets.HBox([self.name, self.save, self.message]), self.notes])

    def save_changes(self) -> None:
        """Write what changed; the message line says what happened."""
        try:
            if self.name.value.strip() != self.job.name:
                self.job.rename(self.name.value)
            if self.notes.value != self.job.notes:
                self.job.notes = self.notes.value
        except (DigitsError, OSError) as exc:
            self.message.value = f'<span style="color:#c62828">{html.escape(str(exc))}</span>'
            return
        self.name.value = self.job.name
        self.message.value = "<small>Saved.</small>"
        self._on_saved(self.job)


class Jobs(widgets.VBox):
    """Datasets and models in two sortable tables, refreshed by the UI pump every second.

    Sort by Group to gather a group's jobs; the Filter box keeps the jobs whose name or group contains
    its text.

    Open shows the job's panel below the tables, Clone a pre-filled model form, Delete asks for a second
    click and says which models stop it, Abort and Resume act on running and stopped jobs. Call
    :meth:`close` to stop the refreshing.
    """

    def __init__(self, refresh_seconds: float = REFRESH_SECONDS) -> None:
        self._feed = JobsFeed()
        self._values: dict[str, dict[str, Any]] = {}   # job id → its row's values at the last refresh
        self._tails: dict[str, MetricsTail] = {}
        self._armed: str | None = None      # the job whose Delete button waits for its confirming click
        self._shown: str | None = None      # the job whose panel is open below the tables
        self.editor: JobEditor | None = None   # the open job's name and notes
        self._cancel: Callable[[], None] = lambda: None
        self.datasets = JobTable("Datasets", DATASET_COLUMNS, ("open", "abort", "delete"), self.act)
        self.models = JobTable("Models", MODEL_COLUMNS, ("open", "abort", "clone", "resume", "delete"), self.act)
        self.message = widgets.HTML()
        self.detail = widgets.VBox()
        toolbar = []
        for text, action in (("New Dataset", self._new_dataset), ("New Model", self._new_model),
                             ("Refresh", self.refresh)):
            b = widgets.Button(description=text, icon="plus" if text.startswith("New") else "refresh")
            b.on_click(lambda _, action=action: action())
            toolbar.append(b)
        self.filter = widgets.Text(placeholder="Filter by name or group", description="Filter",
                                   layout=widgets.Layout(width="280px"))
        self.filter.observe(lambda _: self.refresh(), "value")
        toolbar.append(self.filter)
        self.jobs_dir = widgets.HTML()
        super().__init__([widgets.HBox(toolbar), self.jobs_dir, self.message, self.datasets, self.models,
                          self.detail])
        self.refresh()
        self._cancel = get_pump().every(refresh_seconds, self.refresh)

    def close(self) -> None:
        self._cancel()
        super().close()

    def refresh(self) -> None:
        """Look at the jobs directory (the feed re-reads only what changed) and update what changed."""
        now = time.time()
        change = self._feed.poll()
        self.jobs_dir.value = f"<small>Jobs directory: {html.escape(str(jobs_dir()))}</small>"
        for job_id in change.removed:
            self._values.pop(job_id, None)
            self._tails.pop(job_id, None)
        fresh = change.added.keys() | change.changed.keys()
        datasets, models = {}, {}
        for job in self._feed.jobs.values():
            if job.kind not in ("model", "dataset"):
                continue
            values = self._row_values(job, now, job.id in fresh)
            if matches(job, self.filter.value):
                (models if job.kind == "model" else datasets)[job.id] = values
        self.datasets.update(datasets)
        self.models.update(models)

    def _row_values(self, job: Job, now: float, fresh: bool) -> dict[str, Any]:
        """The job's row values: recomputed when its record or its metrics changed, and while it is (or
        was, at the last refresh) Waiting or Running, since its Elapsed and its place in the queue change
        with time, not with its job.json (and a live job's status is ahead of its job.json)."""
        tail = None
        if job.kind == "model":
            tail = self._tails.setdefault(job.id, MetricsTail())
            before = (tail.last_loss, tail.min_loss, tail.accuracy)
            tail.update(job.path(records.METRICS))
            fresh = fresh or before != (tail.last_loss, tail.min_loss, tail.accuracy)
        values = self._values.get(job.id)
        if fresh or values is None or values["status"] in _TICKING or job.status in _TICKING:
            values = self._values[job.id] = job_values(job, now, tail)
        return values

    # ---- actions ---------------------------------------------------------------------------------
    def act(self, action: str, job_id: str) -> None:
        """Run a row action; a refused one (JobError...) says why in the panel's message line."""
        if action != "delete":
            self._arm(None)
        self.message.value = ""
        try:
            job = api.job(job_id)
            if action == "open":
                self.show(job.name, panel_for(job), job.id)
            elif action == "abort":
                job.abort()
            elif action == "clone":
                from .model_form import ModelForm
                self.show(f"Clone of {job.name}", ModelForm(clone=job))
            elif action == "resume":
                self.show(job.name, panel_for(job.resume()), job.id)
            elif action == "delete":
                self._delete(job)
        except DigitsError as exc:
            self.message.value = f'<span style="color:#c62828">{html.escape(str(exc))}</span>'
        self.refresh()

    def _delete(self, job: Job) -> None:
        """First click: refuse at once when models depend on the job, else ask for a second click."""
        if self._armed != job.id:
            if dependents(job):
                api.delete(job)    # raises JobError naming the models
            self._arm(job.id)
            return
        self._arm(None)
        api.delete(job)
        if self._shown == job.id:
            self.detail.children = []
        self.message.value = f"Deleted {html.escape(job.name)}."

    def _arm(self, job_id: str | None) -> None:
        for table in (self.datasets, self.models):
            for i, row in table.rows.items():
                if "delete" in row.buttons:
                    row.buttons["delete"].description = "Sure?" if i == job_id else ""
        self._armed = job_id

    def show(self, title: str, widget: widgets.Widget, job_id: str | None = None) -> None:
        """Put ``widget`` below the tables with a title and a Close button; a job's own panel (``job_id``)
        comes with its name and notes editor between the two."""
        self._shown = job_id
        close = widgets.Button(description="Close", icon="times", layout=widgets.Layout(width="auto"))
        close.on_click(lambda _: setattr(self.detail, "children", []))
        heading = widgets.HTML(f"<h4 style='margin:6px 0'>{html.escape(title)}</h4>")

        def saved(job: Job) -> None:
            heading.value = f"<h4 style='margin:6px 0'>{html.escape(job.name)}</h4>"
            self.refresh()
        self.editor = JobEditor(api.job(job_id), saved) if job_id is not None else None
        self.detail.children = [widgets.HBox([heading, close]), *([self.editor] if self.editor else []), widget]

    def _new_dataset(self) -> None:
        from .dataset_form import DatasetForm
        self.show("New dataset", DatasetForm())

    def _new_model(self) -> None:
        from .model_form import ModelForm
        self.show("New model", ModelForm())
