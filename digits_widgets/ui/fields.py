"""Labelled form fields that check themselves as the user types and say what is wrong right next to the field.

DIGITS validated on submit and answered with a page of errors; here each field carries a check that runs on
every edit (on the kernel's main thread, because edits arrive there) and a message slot beside it: red for an
error, orange for a warning, grey for what was found ("3 classes, 24 images"). A check never raises: anything
it throws becomes the field's error message.

The checks for the paths DIGITS users type, and the :class:`Verdict` a check returns, are in :mod:`.checks`;
other modules import them from there, and this module only for the fields themselves.
"""
from __future__ import annotations

import html
from typing import Any, Callable, Sequence

import ipywidgets as w

from ..errors import DigitsError
from .checks import ERROR, OK, WARNING, Verdict

COLOURS = {OK: "#555", WARNING: "#e65100", ERROR: "#c62828"}
REQUIRED = "This field is required."  # DIGITS' own wording (validate_required_iff / DataRequired)
LABEL_WIDTH = "230px"


Check = Callable[[Any], "Verdict | None"]

# The help mark: a plain "i" in a CSS circle. U+24D8 (circled i) is missing from Debian's default fonts and drew
# as an empty box.
HELP_MARK = (' <span style="display:inline-block;box-sizing:border-box;width:13px;height:13px;line-height:11px;'
             'border:1px solid #1976d2;border-radius:50%;color:#1976d2;font:bold 9px/11px sans-serif;'
             'text-align:center;vertical-align:1px;cursor:help">i</span>')


class Field:
    """A label (with the help text as tooltip), a control, and the message of the last check.

    ``value`` is the parsed value (None when blank); ``verdict`` the last check result. A blank required field
    only shows "This field is required." once the user touched it or the form asked (``reveal``), so a fresh
    form is not a wall of red.
    """

    def __init__(self, label: str, control: w.ValueWidget, *, help: str = "", required: bool = False,
                 check: Check | None = None):
        self.label_text, self.control, self.help = label, control, help
        self.required, self.check = required, check
        self.verdict: Verdict | None = None
        self.touched = False
        self._shown = ""
        self._listeners: list[Callable[[Field], None]] = []
        control.tooltip = help or None
        tip = f' title="{html.escape(help)}"' if help else ""
        mark = ' <span style="color:#c62828">*</span>' if required else ""
        qmark = HELP_MARK if help else ""
        self.label = w.HTML(f"<span{tip}>{html.escape(label)}{mark}{qmark}</span>",
                            layout=w.Layout(width=LABEL_WIDTH, min_width=LABEL_WIDTH))
        self.message = w.HTML(layout=w.Layout(margin="0 0 0 8px"))
        self.widget = w.HBox([self.label, control, self.message], layout=w.Layout(align_items="center"))
        control.observe(self._changed, names="value")

    # ---- value ------------------------------------------------------------------------------------
    def parse(self, raw: Any) -> Any:
        return (raw.strip() or None) if isinstance(raw, str) else raw

    @property
    def value(self) -> Any:
        return self.parse(self.control.value)

    @value.setter
    def value(self, v: Any) -> None:
        self.control.value = "" if v is None and isinstance(self.control.value, str) else v

    @property
    def blank(self) -> bool:
        raw = self.control.value
        return raw is None or (isinstance(raw, str) and not raw.strip())

    # ---- visibility ---------------------------------------------------------------------------------
    @property
    def visible(self) -> bool:
        return self.widget.layout.display != "none"

    @visible.setter
    def visible(self, show: bool) -> None:
        self.widget.layout.display = None if show else "none"

    # ---- checking -----------------------------------------------------------------------------------
    def on_change(self, fn: Callable[["Field"], None]) -> None:
        """``fn(field)`` after each user edit, once the field has checked itself."""
        self._listeners.append(fn)

    def _changed(self, _change: dict) -> None:
        self.touched = True
        self.validate()
        for fn in list(self._listeners):
            try:
                fn(self)
            except Exception as exc:  # noqa: BLE001 - a broken listener must not break typing
                self.show(Verdict(ERROR, f"Internal error while checking: {type(exc).__name__}: {exc}"))

    def validate(self) -> Verdict | None:
        """Run the check now and show its message; never raises."""
        try:
            if self.blank:
                verdict = Verdict(ERROR, REQUIRED) if self.required else None
            else:
                verdict = self.check(self.value) if self.check is not None else None
        except DigitsError as exc:
            verdict = Verdict(ERROR, str(exc))
        except Exception as exc:  # noqa: BLE001 - the user is typing; show, never raise
            verdict = Verdict(ERROR, f"Cannot check this value ({type(exc).__name__}: {exc})")
        self.show(verdict)
        return verdict

    def reveal(self) -> None:
        """Show even the "required" message of an untouched field (the user clicked Create)."""
        self.touched = True
        self.show(self.verdict)

    def show(self, verdict: Verdict | None) -> None:
        """Make ``verdict`` the field's state and message (also for errors found later, by Create)."""
        self.verdict = verdict
        if verdict is None or (verdict.text == REQUIRED and not self.touched):
            self.message.value = self._shown = ""
            return
        self._shown = verdict.text
        colour = COLOURS.get(verdict.level, COLOURS[OK])
        self.message.value = f'<span style="color:{colour}">{html.escape(verdict.text)}</span>'

    @property
    def message_text(self) -> str:
        """The message as shown (empty when hidden)."""
        return self._shown

    @property
    def error(self) -> str | None:
        """The error that blocks Create, shown or not yet shown."""
        v = self.verdict
        return v.text if v is not None and v.level == ERROR else None

    @property
    def data(self) -> Any:
        return self.verdict.data if self.verdict is not None else None


class NumberField(Field):
    """A whole or real number with a range; optional ones accept blank (→ None), as DIGITS' Optional()."""

    def __init__(self, label: str, value: float | None, *, kind: type = int, min: float | None = None,
                 max: float | None = None, required: bool = True, help: str = "",
                 check: Check | None = None):
        self.kind, self.min, self.max, self.extra = kind, min, max, check
        control = w.Text(value="" if value is None else str(value), layout=w.Layout(width="110px"))
        super().__init__(label, control, help=help, required=required, check=self._check_number)

    def parse(self, raw: Any) -> Any:
        text = str(raw).strip()
        if not text:
            return None
        try:
            return self.kind(text)
        except ValueError:
            return text  # _check_number reports it

    @Field.value.setter  # type: ignore[attr-defined]
    def value(self, v: Any) -> None:
        self.control.value = "" if v is None else str(v)

    def _check_number(self, v: Any) -> Verdict | None:
        if isinstance(v, str):
            what = "whole number" if self.kind is int else "number"
            return Verdict(ERROR, f"Not a valid {what}: {v!r}.")
        lo, hi = self.min, self.max
        if lo is not None and hi is not None and not lo <= v <= hi:
            return Verdict(ERROR, f"Number must be between {lo} and {hi}.")  # WTForms' NumberRange wording
        if lo is not None and v < lo:
            return Verdict(ERROR, f"Number must be at least {lo}.")
        if hi is not None and v > hi:
            return Verdict(ERROR, f"Number must be at most {hi}.")
        return self.extra(v) if self.extra is not None else None


# ---- factories ---------------------------------------------------------------------------------------
def text_field(label: str, value: str = "", *, help: str = "", required: bool = False,
               check: Check | None = None, placeholder: str = "", width: str = "280px") -> Field:
    control = w.Text(value=value, placeholder=placeholder, layout=w.Layout(width=width))
    return Field(label, control, help=help, required=required, check=check)


def path_field(label: str, *, help: str = "", required: bool = False, check: Check | None = None,
               placeholder: str = "/path/to/folder") -> Field:
    return text_field(label, help=help, required=required, check=check, placeholder=placeholder, width="380px")


def choice_field(label: str, options: Sequence[tuple[str, Any]], value: Any, *, help: str = "") -> Field:
    """A dropdown of (shown text, value) pairs, as DIGITS' SelectField."""
    control = w.Dropdown(options=list(options), value=value, layout=w.Layout(width="220px"))
    return Field(label, control, help=help)


def bool_field(label: str, value: bool = False, *, help: str = "") -> Field:
    return Field(label, w.Checkbox(value=value, indent=False, layout=w.Layout(width="auto")), help=help)
