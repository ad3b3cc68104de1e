"""A static PNG of a model's training curves, for notebooks saved without widget state.

A bqplot figure lives in widget state, which JupyterLab does not save by default: reopen the notebook
(or view it on GitHub or nbviewer) and the live chart is gone. A PNG in an ordinary output survives.
Drawn with matplotlib's Agg canvas on a private ``Figure`` (no pyplot): no global state, no backend
switching in the user's kernel, no window. matplotlib is imported here only, when a PNG is asked for,
so the headless core never needs it.
"""
from __future__ import annotations

import io
from typing import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

TRAIN_COLOR, VAL_COLOR, ACC_COLOR, LR_COLOR = "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"


def _xy(rows: Sequence[dict], key: str, scale: float = 1.0) -> tuple[list[float], list[float]]:
    pts = [(r["epoch"], r[key] * scale) for r in rows if isinstance(r.get(key), (int, float))]
    return [p[0] for p in pts], [p[1] for p in pts]


def curves_png(train: Sequence[dict], val: Sequence[dict], *, classification: bool = False,
               title: str = "", width: float = 7.0, dpi: int = 80) -> bytes:
    """PNG bytes: loss (train and val) with val accuracy on a second axis, and the learning rate below.

    ``train`` and ``val`` are metrics records as in metrics.jsonl (``epoch``, ``loss``, ``lr``,
    ``accuracy``...).
    """
    fig = Figure(figsize=(width, width * 0.62), dpi=dpi)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 1, height_ratios=(3, 1), hspace=0.08)
    ax = fig.add_subplot(grid[0])
    ax_lr = fig.add_subplot(grid[1], sharex=ax)
    if title:
        ax.set_title(title, fontsize=10)
    handles = []
    x, y = _xy(train, "loss")
    if x:
        handles += ax.plot(x, y, color=TRAIN_COLOR, linewidth=1, label="loss (train)")
    x, y = _xy(val, "loss")
    if x:
        handles += ax.plot(x, y, color=VAL_COLOR, linewidth=1.5, marker="o", markersize=3, label="loss (val)")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    if classification:
        x, y = _xy(val, "accuracy", 100.0)
        if x:
            ax_acc = ax.twinx()
            handles += ax_acc.plot(x, y, color=ACC_COLOR, linewidth=1.5, marker="s", markersize=3,
                                   label="accuracy (val)")
            ax_acc.set_ylabel("accuracy (%)")
            ax_acc.set_ylim(0, 100)
    if handles:
        ax.legend(handles=handles, loc="upper right", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no metrics logged", ha="center", va="center", transform=ax.transAxes)
    x, y = _xy(train, "lr")
    if x:
        ax_lr.plot(x, y, color=LR_COLOR, linewidth=1)
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel("epoch")
    ax_lr.grid(alpha=0.3)
    ax.tick_params(labelbottom=False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def job_curves_png(job) -> bytes:
    """The curves of a model job, read from its metrics file."""
    rows = job.metrics()
    train = [r for r in rows if r.get("phase") == "train"]
    val = [r for r in rows if r.get("phase") == "val"]
    try:
        classification = job.dataset.task == "classification"
    except Exception:  # noqa: BLE001 - a deleted dataset must not stop the picture
        classification = any("accuracy" in r for r in val)
    return curves_png(train, val, classification=classification, title=f"{job.name} ({job.id})")
