"""The ``%%digits_model`` cell magic: a network defined in a notebook cell, trained in the background.

    %load_ext digits_widgets

    %%digits_model lenet --dataset mnist --epochs 30 --solver adam
    class UserModel(Tower):
        ...

The flags come from :class:`~digits_widgets.train.options.TrainOptions` (``batch_size`` → ``--batch-size``),
plus ``--group``, ``--framework`` and ``--no-train``; ``%digits_model --help`` lists them with DIGITS' defaults.
Before a job is created the cell is compiled and, when the dataset is Done, built once on the CPU at the
dataset's shape: a syntax or shape error shows at once, as the cell's own traceback, and leaves no job
behind. The one module that registers magics (ui/ and the store use IPython only lazily: displays, the kernel).
"""
from __future__ import annotations

import argparse
import keyword
import linecache
import re
import shlex
from typing import TYPE_CHECKING, Any, NoReturn

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from .errors import JobError, NetworkError, OptionError

if TYPE_CHECKING:
    from .data.dataset import DatasetJob
    from .infer.model import Model
    from .train.option_schema import Option
    from .train.options import TrainOptions

__all__ = ["DigitsMagics", "CellNetworkError", "load_ipython_extension", "parse_arguments", "parser"]

PROG = "%%digits_model"

# OptionError fields raised by the learning-rate policy under its own names, as the flags spell them.
_FIELD_ALIASES = {"base_lr": "lr", "name": "policy"}

_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_INTEGER = re.compile(r"[-+]?\d+")


def flag(field: str) -> str:
    """The command-line spelling of a TrainOptions field."""
    return "--" + field.replace("_", "-")


class _HelpShown(Exception):
    """argparse printed --help: nothing more to do."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as IPython UsageErrors instead of exiting the kernel."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if status:
            raise UsageError(message or f"{self.prog}: error")
        raise _HelpShown()


def _param(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` for Torch7-style params; VALUE becomes an int or float when it reads as one."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    if _INTEGER.fullmatch(value.strip()):
        return key, int(value)
    if _NUMBER.fullmatch(value.strip()):
        return key, float(value)
    return key, value


def _stepvalues(text: str) -> tuple[float, ...]:
    """``50,85`` → (50.0, 85.0); the range is checked by TrainOptions."""
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid value {text!r}: give comma-separated percents of training, e.g. 50,85") from None


def _gpus(text: str) -> int | tuple[int, ...]:
    """``2`` → a count of 2 GPUs; ``0,2`` → GPUs 0 and 2; ``2,`` → GPU 2 (indices are checked later)."""
    try:
        if "," not in text:
            return int(text)
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid value {text!r}: give a count (2) or comma-separated GPU indices (0,2)") from None


def _default_text(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(f"{v:g}" for v in value)
    return str(value)


def _help(o: "Option") -> str:
    """The schema's help (after "Do not" for a --no-X flag), what only the flag needs said, the default."""
    from .train.solver import POLICY_DEFAULTS

    text = f"Do not {o.help[0].lower()}{o.help[1:]}" if o.kind is bool and o.default else o.help
    text += f" {o.flag_help}" if o.flag_help else ""
    unset = [f"{d[o.name]:g} for {p}" if isinstance(d[o.name], float) else f"{_default_text(d[o.name])} for {p}"
             for p, d in POLICY_DEFAULTS.items() if o.name in d]
    text += f" Unset: {', '.join(unset)}." if unset else ""
    if o.default is not None and o.kind not in (bool, dict):
        text += f" (default: {_default_text(o.default)})"
    return text.replace("%", "%%")


def _add_option(group: argparse._ArgumentGroup, o: "Option") -> None:
    if o.name == "params":
        group.add_argument("--param", dest="params", action="append", type=_param, metavar=o.metavar,
                           default=argparse.SUPPRESS, help=_help(o))
        return
    if o.kind is bool:
        spelling = f"--no-{o.name.replace('_', '-')}" if o.default else flag(o.name)
        group.add_argument(spelling, dest=o.name, action="store_false" if o.default else "store_true",
                           default=argparse.SUPPRESS, help=_help(o))
        return
    convert = _gpus if o.name == "gpus" else {tuple: _stepvalues, int: int, float: float}.get(o.kind, str)
    metavar = o.metavar or ("{" + ",".join(map(str, o.values)) + "}" if o.choices else None) or {
        tuple: "P1,P2", int: "N", float: "X"}.get(o.kind, o.name.upper())
    group.add_argument(flag(o.name), dest=o.name, type=convert, default=argparse.SUPPRESS,
                       metavar=metavar, help=_help(o))


def parser() -> argparse.ArgumentParser:
    """The magic's argument parser, one flag per TrainOptions field (unset flags keep DIGITS' defaults),
    grouped, spelled and explained as the options' schema says (``train.option_schema``)."""
    from .train.option_schema import GROUPS
    from .train.options import option_schema

    p = _Parser(prog=PROG, allow_abbrev=False, add_help=True,
                usage="%(prog)s NAME --dataset ID_OR_NAME [options]",
                description="Define a network in this cell and train it on a dataset in the background. "
                            "The cell is stored as the job's network.py; the job handle is left in `_` and, "
                            "when NAME is an identifier, in the variable NAME.")
    p.add_argument("name", metavar="NAME", help="The model job's name.")
    p.add_argument("--dataset", required=True, metavar="ID_OR_NAME",
                   help="The dataset job: its id, its name, or a variable holding a DatasetJob.")
    p.add_argument("--group", default=argparse.SUPPRESS, metavar="GROUP",
                   help="DIGITS' optional group name, which gathers jobs in the jobs panel.")
    p.add_argument("--framework", choices=("pytorch", "caffe", "torch"), default=argparse.SUPPRESS,
                   help="The cell's language: pytorch (Python), caffe (prototxt) or torch (Torch7 Lua, "
                        "needs pip install digits_widgets[torch7]); unset: recognised from the text.")
    p.add_argument("--no-train", dest="no_train", action="store_true",
                   help="Create the job without starting it (start it later with job.resume()).")
    schema = option_schema()   # the groups in GROUPS' order, then any other group
    for title in dict.fromkeys([*GROUPS, *(o.group for o in schema)]):
        mine = [o for o in schema if o.group == title]
        if mine:
            group = p.add_argument_group(title)
            for o in mine:
                _add_option(group, o)
    return p


def parse_arguments(line: str) -> tuple[str, str, bool, dict[str, Any]]:
    """(NAME, dataset, no_train, training options given) from the magic's line; UsageError when bad."""
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"{PROG}: {exc}") from None
    ns = vars(parser().parse_args(argv))
    name, dataset, no_train = ns.pop("name"), ns.pop("dataset"), ns.pop("no_train")
    if "params" in ns:
        ns["params"] = dict(ns["params"])
    return name, dataset, no_train, ns


def _option_usage_error(exc: OptionError) -> UsageError:
    field = _FIELD_ALIASES.get(exc.field or "", exc.field)
    if field == "params":
        return UsageError(f"{PROG}: --param: {exc}")
    return UsageError(f"{PROG}: {flag(field)}: {exc}" if field else f"{PROG}: {exc}")


def _from_cell_frames(traceback_text: str, name: str) -> list[str]:
    """The traceback's lines, its first section starting at the cell's first frame: the frames above it
    (PyTorch's module calls, the Tower machinery) say nothing about the user's mistake."""
    from .nets.source import source_filename

    lines = traceback_text.rstrip("\n").splitlines()
    if not lines or not lines[0].startswith("Traceback (most recent call last):"):
        return lines
    marker = f'  File "{source_filename(name)}"'
    for i, line in enumerate(lines[1:], 1):
        if not line.startswith(" "):  # the exception line: the cell has no frame in this section
            break
        if line.startswith(marker):
            return [lines[0], *lines[i:]]
    return lines


class CellNetworkError(NetworkError):
    """A network cell that does not compile or build. IPython shows only the message and the cell's own
    traceback (``_render_traceback_``), never the frames of this module above it."""

    def __init__(self, error: NetworkError, name: str):
        text, tb = str(error), error.traceback_text
        self.headline = text[: -len(tb) - 1] if tb and text.endswith("\n" + tb) else text
        self.cell_name = name
        super().__init__(self.headline, tb)

    def _render_traceback_(self) -> list[str]:
        lines = [f"\x1b[0;31mNetworkError\x1b[0m: {self.headline}"]
        if self.traceback_text:
            lines += ["", *_from_cell_frames(self.traceback_text, self.cell_name)]
        return lines


_FRAMEWORK_NAMES = {"pytorch": "Python (PyTorch)", "caffe": "a Caffe prototxt", "torch": "Torch7 Lua"}


def _compile_cell(cell: str, name: str, framework: str | None = None) -> None:
    """Raise the cell's SyntaxError the way the trainer would report it, with the cell's line numbers; with
    ``--framework``, a NetworkError when the cell does not read as that language (the trainer recognises the
    language from the text, so the two must agree)."""
    from .nets.source import network_error, source_filename
    from .nets.torch7 import framework_of

    found = framework_of(cell)
    if framework is not None and found != framework:
        hint = (" A Torch7 network ends with `return function(params) ... end`." if framework == "torch"
                else "")
        raise NetworkError(f"--framework {framework}: the network '{name}' reads as {_FRAMEWORK_NAMES[found]}, "
                           f"not {_FRAMEWORK_NAMES[framework]}.{hint}")
    if found != "pytorch":  # not Python: the build parses it and names the line of any error
        return
    filename = source_filename(name)
    linecache.cache[filename] = (len(cell), None, cell.splitlines(True), filename)
    try:
        compile(cell, filename, "exec")
    except SyntaxError as exc:
        raise network_error(f"The network '{name}' has a syntax error", exc) from None


def check_network(cell: str, name: str, dataset: "DatasetJob", options: "TrainOptions",
                  framework: str | None = None) -> None:
    """Compile the cell and, when the dataset is Done, build it once on the CPU at the shape training
    will use (``train.setup``, as the trainer builds it), so errors show before a job exists. Raises
    NetworkError."""
    import torch

    from .store.jobs import DONE
    from .train.setup import setup_for_dataset

    _compile_cell(cell, name, framework)
    if dataset.status != DONE or not dataset.feature_shape:
        return
    h, w, c = dataset.feature_shape
    if options.crop and options.crop > min(h, w):
        raise OptionError(f"crop size {options.crop} is larger than the dataset's images ({h}x{w})", field="crop")
    with torch.random.fork_rng(devices=[]):  # building initialises weights: leave the user's RNG alone
        setup_for_dataset(dataset, cell, options, name=name, framework=framework)


@magics_class
class DigitsMagics(Magics):
    """The magics ``%load_ext digits_widgets`` registers."""

    @line_cell_magic
    def digits_model(self, line: str, cell: str | None = None) -> "Model | None":
        """Define a network in this cell and train it in the background (``%digits_model --help``)."""
        if cell is None:  # the line form only explains: IPython refuses a cell magic with an empty body
            if line.split() not in ([], ["--help"], ["-h"]):
                raise UsageError(f"{PROG} takes the network in the cell: put NAME --dataset ID_OR_NAME on the "
                                 "%% line and the network below it (%digits_model --help lists the flags)")
            print(parser().format_help())
            return None
        try:
            name, dataset_ref, no_train, options = parse_arguments(line)
        except _HelpShown:
            return None
        from .nets.source import remember_cell

        remember_cell(name, cell)   # the model form can take it ("use the %%digits_model cell"), even if it fails
        return self.create(name, dataset_ref, cell, options, start=not no_train)

    def _find_dataset(self, ref: str) -> "DatasetJob":
        """A DatasetJob held in a variable of that name, else the dataset with that id or name."""
        from .data.dataset import DatasetJob
        from .store.jobs import find_job

        held = self.shell.user_ns.get(ref) if ref.isidentifier() else None
        try:
            ds = held if isinstance(held, DatasetJob) else find_job(ref, kind="dataset")
            if not ds.is_running():
                ds.require_done()
        except JobError as exc:
            raise UsageError(f"{PROG}: --dataset: {exc}") from None
        return ds

    def create(self, name: str, dataset_ref: str, cell: str, options: dict[str, Any],
               start: bool = True) -> "Model":
        """Check the options and the network, then create (and start) the model job."""
        from .train.launch import train
        from .train.options import TrainOptions

        options = dict(options)
        group = options.pop("group", "")
        framework = options.pop("framework", None)
        try:
            opts = TrainOptions(**options)
        except OptionError as exc:
            raise _option_usage_error(exc) from None
        dataset = self._find_dataset(dataset_ref)
        try:
            check_network(cell, name, dataset, opts, framework)
        except OptionError as exc:
            raise _option_usage_error(exc) from None
        except NetworkError as exc:
            raise CellNetworkError(exc, name) from None
        try:
            job = train(dataset, cell, name, start=start, group=group, **options)
        except OptionError as exc:
            raise _option_usage_error(exc) from None
        if name.isidentifier() and not keyword.iskeyword(name):
            self.shell.user_ns[name] = job
        return job


def _document() -> None:
    """``%%digits_model?`` shows the full flag list with DIGITS' defaults."""
    DigitsMagics.digits_model.__doc__ = parser().format_help()


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext digits_widgets``: register ``%%digits_model``."""
    _document()
    ipython.register_magics(DigitsMagics)
