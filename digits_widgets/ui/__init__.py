"""Everything that draws: ipywidgets, bqplot, ipycanvas and anywidget views over the jobs on disk."""
from __future__ import annotations


def panel_for(job):
    """The widget that shows ``job``: the dataset view or the training panel."""
    if job.kind == "dataset":
        from .dataset_view import DatasetView
        return DatasetView(job)
    from .training_panel import TrainingPanel
    return TrainingPanel(job)
