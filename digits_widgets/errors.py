"""The error types users see. One base class so callers can catch everything of ours at once.

Each error's message names the file, field or value at fault and what to do about it.
"""
from __future__ import annotations


class DigitsError(Exception):
    """Base of every error digits_widgets raises on purpose."""


class DatumError(DigitsError, ValueError):
    """Bytes that are not a valid Caffe Datum / BlobProto, or an image payload that does not decode."""


class DbError(DigitsError):
    """An LMDB that cannot be opened, read or written (not an LMDB, disk full, ...)."""


class ImageError(DigitsError):
    """An image file that cannot be loaded (missing, not an image, truncated, unsupported mode)."""


class DatasetError(DigitsError):
    """Bad input for a dataset job. ``field`` names the form field at fault, when there is one."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class JobError(DigitsError):
    """A job that cannot be found, deleted, or driven as asked."""


class NetworkError(DigitsError):
    """A network definition that does not build. ``traceback_text`` is the Python traceback, verbatim."""

    def __init__(self, message: str, traceback_text: str = ""):
        super().__init__(message if not traceback_text else f"{message}\n{traceback_text}")
        self.traceback_text = traceback_text


class TrainingError(DigitsError):
    """Training that cannot go on (diverged, shapes that do not match the dataset, ...)."""


class OptionError(DigitsError, ValueError):
    """A training or form option with a bad value. ``field`` names the option."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field
