"""What each training option means, said once: the metadata of :class:`~.options.TrainOptions`' fields.

Every field of TrainOptions is declared with :func:`opt`, which keeps beside its default the DIGITS label,
the help text, the group (DIGITS' boxes: Solver Options, Data Transformations, Hardware...), the choices as
(shown text, value) pairs, and the bounds. Two readers build themselves from it: the ``%%digits_model``
magic (one flag per option, its help, its metavar, ``(default: ...)``) and the model form (labels, help,
bounds, choices; the form alone picks the widget for each). The third is ``TrainOptions.validate``, which
refuses a value outside the same choices and bounds that the form enforces as the user types.
"""
from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import MISSING, dataclass, field
from typing import Any, Callable

__all__ = ["GROUPS", "Option", "opt", "schema"]

# The groups, in the order the magic's --help lists them (DIGITS' boxes, and the options DIGITS had not)
SOLVER, POLICY, SNAPSHOTS = "Solver Options", "Learning Rate Policy", "Snapshots and Validation"
DATA, HARDWARE, PRETRAINED = "Data Transformations", "Hardware", "Pretrained Model"
GROUPS = (SOLVER, POLICY, SNAPSHOTS, DATA, HARDWARE, PRETRAINED)


def opt(default: Any = MISSING, *, label: str, help: str, group: str, choices: tuple = (),
        min: float | None = None, max: float | None = None, metavar: str | None = None, flag_help: str = "",
        form: bool = True, factory: Callable[[], Any] | None = None) -> Any:
    """A TrainOptions field with its description.

    ``help`` is one text for the form's tooltip and the flag's help (a ``--no-X`` flag reads "Do not ..."
    followed by it, so the help of an option that defaults to True starts with a verb); ``flag_help`` is
    added to the flag's help only, for what the command-line spelling needs said (``--gpus 0,2``).
    ``form=False``: the model form has no field for it (DIGITS had none). ``factory`` for a mutable default.
    """
    meta = {"label": label, "help": help, "group": group, "choices": tuple(choices), "min": min, "max": max,
            "metavar": metavar, "flag_help": flag_help, "form": form}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Option:
    """One option as its readers see it. ``kind`` is the first type of its annotation other than None
    (``int | tuple[int, ...]`` → int, ``tuple[float, ...] | str | None`` → tuple)."""
    name: str
    default: Any
    kind: type
    label: str
    help: str
    group: str
    choices: tuple[tuple[str, Any], ...] = ()
    min: float | None = None
    max: float | None = None
    metavar: str | None = None
    flag_help: str = ""
    form: bool = True

    @property
    def values(self) -> tuple[Any, ...]:
        """The values of the choices (empty when any value of ``kind`` will do)."""
        return tuple(value for _, value in self.choices)


def _kind(hint: Any) -> type:
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    args = [a for a in typing.get_args(hint) if a is not type(None)] if union else [hint]
    return typing.get_origin(args[0]) or args[0]


@functools.cache
def schema(cls: type) -> tuple[Option, ...]:
    """The options of a TrainOptions class, in field order (once per class: ``validate`` reads it at every
    construction)."""
    hints = typing.get_type_hints(cls)
    found = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not MISSING else (
            f.default_factory() if f.default_factory is not MISSING else None)
        found.append(Option(name=f.name, default=default, kind=_kind(hints[f.name]), **f.metadata))
    return tuple(found)
