"""Visualisation methods for inference results: DIGITS' view extensions, as small widget classes.

DIGITS let the user pick a "visualization method" (image output, gradients, segmentation, raw data) with its
own options, and drew every tested image through it. Here each method is a :class:`View` (in
:mod:`.base`, with the helpers the views share), one module per method. The same view object draws the
single "Test one" result and every cell of a "Test DB" grid, so an option changed once applies everywhere.

This package only gathers: the base's public names, the methods by title (:func:`view_classes`), and how
a panel picks and builds one (:func:`default_view`, :func:`make_view`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .base import DEFAULT_SIZE, View, close_tree, message, numbers_html, to_numpy
from .classification import ClassificationView
from .gradients import GradientsView
from .image import ImageView
from .raw import RawView
from .segmentation import SegmentationView

if TYPE_CHECKING:  # only read here; importing it would pull torch into every import
    from ...data.dataset import DatasetJob


def view_classes() -> dict[str, type[View]]:
    """Every visualisation method by title, in DIGITS' menu order."""
    return {c.title: c for c in (ImageView, GradientsView, SegmentationView, ClassificationView, RawView)}


def default_view(dataset: "DatasetJob | None") -> str:
    """The method DIGITS users picked for each kind of dataset, by the dataset's task and label shape."""
    if dataset is None:
        return "Raw"
    task = dataset.task
    if task == "classification":
        return "Classification"
    if task == "segmentation":
        return "Segmentation"
    if task == "regression" and tuple(dataset.label_shape or ()) == (2,):
        return "Gradients"
    if task in ("processing", "generic"):
        return "Image"
    return "Raw"


def make_view(title: str, dataset: "DatasetJob | None" = None) -> View:
    """A view by title, configured for the dataset (the FCN tutorial's "clip" for processing datasets)."""
    classes = view_classes()
    if title not in classes:
        raise ValueError(f"Unknown visualisation {title!r}: choose one of {', '.join(classes)}")
    return classes[title](dataset)


__all__ = ["View", "DEFAULT_SIZE", "message", "numbers_html", "to_numpy", "close_tree", "view_classes",
           "default_view", "make_view"]
