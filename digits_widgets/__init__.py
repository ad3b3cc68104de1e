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
from .errors import (DatasetError, DatumError, DbError, DigitsError, ImageError, JobError, NetworkError,
                     OptionError, TrainingError)
from .store.jobs import jobs_dir
from .store.lmdb_db import open_db, read_mean

__all__ = [
    "__version__", "jobs", "job", "delete", "datasets", "generate_triangles", "DatasetJob", "jobs_dir",
    "open_db", "read_mean", "DigitsError", "DatasetError", "DatumError", "DbError", "ImageError",
    "JobError", "NetworkError", "OptionError", "TrainingError",
]
