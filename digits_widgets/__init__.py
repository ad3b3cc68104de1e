"""digits_widgets: NVIDIA DIGITS rebuilt as JupyterLab widgets on PyTorch.

    import digits_widgets as dw
    ds = dw.datasets.gradients("gradients", train_count=1000)
    ds.wait(); print(ds.summary())
"""
from ._version import __version__
from .api import delete, job, jobs
from .data import create as datasets
from .data.create import generate_triangles
from .data.dataset import DatasetJob
from .nets import zoo
from .errors import (DatasetError, DatumError, DbError, DigitsError, ImageError, JobError, NetworkError,
                     OptionError, TrainingError)
from .store.jobs import Job, jobs_dir
from .store.lmdb_db import open_db, read_mean
from .train.launch import train
from .infer.model import Model
from .infer.archive import load_model
from .train.options import TrainOptions
from .train.solver import lr_curve


def _viewer(job):
    """Widgets load on first use, so scripts and torchrun workers never import them."""
    from .ui import panel_for
    return panel_for(job)


def _tester(job, snapshot=None):
    from .ui.inference_panel import InferencePanel
    return InferencePanel(job, snapshot)


Job.viewer = _viewer
Model.tester = _tester


def DatasetForm(**kwargs):  # noqa: N802 - reads as the widget class it returns
    """DIGITS' "New Dataset" form: Classification, Processing, Segmentation, Other and Gradients tabs."""
    from .ui.dataset_form import DatasetForm as form
    return form(**kwargs)


def ModelForm(**kwargs):  # noqa: N802
    """DIGITS' "New Model" form: dataset, network tabs, solver, LR preview, transformations, Visualize."""
    from .ui.model_form import ModelForm as form
    return form(**kwargs)


def Jobs(**kwargs):  # noqa: N802
    """DIGITS' home page: datasets and models in two sortable tables with row actions, kept fresh."""
    from .ui.jobs_panel import Jobs as panel
    return panel(**kwargs)


def load_ipython_extension(ipython):  # %load_ext digits_widgets
    from .magic import load_ipython_extension as _load
    _load(ipython)


__all__ = [
    "__version__", "jobs", "job", "delete", "datasets", "generate_triangles", "DatasetJob", "jobs_dir",
    "open_db", "read_mean", "DigitsError", "DatasetError", "DatumError", "DbError", "ImageError",
    "JobError", "NetworkError", "OptionError", "TrainingError", "train", "TrainOptions",
    "lr_curve", "zoo", "Model", "DatasetForm", "ModelForm", "Jobs", "load_ipython_extension",
]
