"""Classification results as DIGITS showed them: top-5 classes with percentages, and for labelled lists the
accuracy and confusion matrix.

Bars are plain HTML (a coloured div per class): a grid page of twelve results stays twelve small HTML
widgets instead of twelve bqplot figures, and the text is widget state, so it survives a reload.
"""
from __future__ import annotations

import html
from typing import TYPE_CHECKING, Sequence

import ipywidgets as w
import numpy as np

from .base import DEFAULT_SIZE, View, message

if TYPE_CHECKING:
    from ...data.dataset import DatasetJob
    from ...infer.predict import Prediction

BAR_COLOUR = "#1976d2"


def top_k(output: np.ndarray, names: Sequence[str], k: int = 5) -> list[tuple[str, float]]:
    """(class name, percent) of the ``k`` most probable classes: softmax of the outputs, as the predictor's
    ``classify`` (so log-softmax and logit outputs give the same numbers), rounded to 2 decimals as DIGITS."""
    logits = np.asarray(output, dtype=np.float64).ravel()
    p = np.exp(logits - logits.max())
    p /= p.sum()
    order = np.argsort(-p, kind="stable")[:k]
    return [(names[i] if i < len(names) else str(i), round(100.0 * float(p[i]), 2)) for i in order]


def bars_html(top: list[tuple[str, float]], width: int = 200) -> str:
    """Horizontal bars: name, a bar as long as the percentage, the number."""
    rows = []
    for name, pct in top:
        bar = max(1, round(width * pct / 100.0))
        rows.append(f'<tr><td style="padding:1px 6px 1px 0;white-space:nowrap">{html.escape(name)}</td>'
                    f'<td style="padding:1px 0;width:{width}px"><div style="background:{BAR_COLOUR};'
                    f'height:12px;width:{bar}px"></div></td>'
                    f'<td style="padding:1px 0 1px 6px;text-align:right">{pct:.2f}%</td></tr>')
    return f'<table class="dw-top5" style="font-size:12px;border-collapse:collapse">{"".join(rows)}</table>'


def report_html(report: dict) -> str:
    """``classification_report`` as DIGITS' classify_many page: top-1/top-5 accuracy, per-class accuracy and
    the confusion matrix (rows: true class, columns: predicted; the diagonal highlighted)."""
    names = [str(n) for n in report["classes"]]
    confusion = np.asarray(report["confusion"])
    k = confusion.shape[0]
    names = names + [str(i) for i in range(len(names), k)]
    head = "".join(f'<th style="padding:2px 6px">{html.escape(names[j])}</th>' for j in range(k))
    body = []
    for i in range(k):
        total = int(confusion[i].sum())
        cells = "".join(
            f'<td style="padding:2px 6px;text-align:right;{"background:#c8e6c9;" if i == j else ""}">'
            f"{int(confusion[i, j])}</td>" for j in range(k))
        acc = f"{100.0 * confusion[i, i] / total:.1f}%" if total else "-"
        body.append(f'<tr><th style="padding:2px 6px;text-align:left">{html.escape(names[i])}</th>{cells}'
                    f'<td style="padding:2px 6px;text-align:right">{acc}</td></tr>')
    return (f'<div class="dw-report" style="font-size:12px"><b>Top-1 accuracy:</b> {100 * report["accuracy"]:.2f}%'
            f' &nbsp; <b>Top-5 accuracy:</b> {100 * report["top5_accuracy"]:.2f}%'
            f'<table style="border-collapse:collapse;margin-top:4px"><tr><th style="padding:2px 6px">'
            f'true \\ predicted</th>{head}<th style="padding:2px 6px">per-class accuracy</th></tr>'
            f'{"".join(body)}</table></div>')


class ClassificationView(View):
    """Top-5 bars with the dataset's class names; no options (DIGITS' classification page had none)."""

    title = "Classification"

    def __init__(self, dataset: "DatasetJob | None" = None) -> None:
        super().__init__(dataset)
        self.top = 5

    def names(self) -> list[str]:
        return list(self.dataset.labels) if self.dataset is not None else []

    def top_classes(self, prediction: "Prediction", index: int) -> list[tuple[str, float]] | None:
        out = np.asarray(prediction.outputs[index])
        if out.ndim != 1 or out.size < 2:
            return None
        return top_k(out, self.names(), self.top)

    def render(self, prediction: "Prediction", index: int, size: int = DEFAULT_SIZE) -> w.Widget:
        top = self.top_classes(prediction, index)
        if top is None:
            return message(f"Classification needs one score per class; the output has shape "
                           f"{tuple(np.asarray(prediction.outputs[index]).shape)}.")
        return w.HTML(bars_html(top, width=max(60, min(200, size - 80))))

    def summary(self, prediction: "Prediction", index: int) -> str:
        top = self.top_classes(prediction, index)
        return f"{top[0][0]} ({top[0][1]:.2f}%)" if top else super().summary(prediction, index)
