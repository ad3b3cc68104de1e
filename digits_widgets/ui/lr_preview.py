"""The learning-rate curve under the model form's solver options, redrawn as the user edits them.

DIGITS drew the policy over 0..100 % of training ("/models/visualize-lr") so that users could see what
"step 33, gamma 0.1" means before committing hours of training. Here the curve comes from
:func:`digits_widgets.train.solver.lr_curve`, the same :class:`LrPolicy` the trainer's scheduler evaluates,
so the preview cannot drift from what training does. Updates are user-driven (a field changed), so they run
on the kernel's main thread directly; no pump is needed.
"""
from __future__ import annotations

import html
from typing import Any

import bqplot as bq
import ipywidgets as widgets
import numpy as np

from ..errors import OptionError
from ..train import options as train_options
from ..train.option_schema import Option
from ..train.solver import POLICY_DEFAULTS, LrPolicy, lr_curve
from .fields import Field, NumberField, bool_field, choice_field, text_field

__all__ = ["LrPreview", "LrPolicyEditor", "POLICY_CHOICES", "POLICY_PARAMS", "option_field"]


class LrPreview(widgets.VBox):
    """A bqplot line of the learning rate against percent of training, plus a line of text for bad values.

    ``lines`` is the bqplot mark (``lines.x`` = 0..100, ``lines.y`` = the rates); ``message`` explains why
    the curve was not redrawn when a parameter does not parse, so the last good curve stays visible.
    """

    def __init__(self, base_lr: float = 0.01, policy: str = "step", **params: Any) -> None:
        self.x_scale = bq.LinearScale(min=0.0, max=100.0)
        self.y_scale = bq.LinearScale(min=0.0)
        self.lines = bq.Lines(x=np.zeros(0), y=np.zeros(0), scales={"x": self.x_scale, "y": self.y_scale},
                              colors=["#1f77b4"], stroke_width=2,
                              tooltip=bq.Tooltip(fields=["x", "y"], formats=[".0f", ".3g"],
                                                 labels=["% of training", "learning rate"]))
        x_axis = bq.Axis(scale=self.x_scale, side="bottom", label="% of training", num_ticks=6)
        y_axis = bq.Axis(scale=self.y_scale, side="left", label="learning rate", tick_format=".2~g",
                         label_offset="55px")
        self.figure = bq.Figure(marks=[self.lines], axes=[x_axis, y_axis], title="Learning rate",
                                fig_margin={"top": 40, "bottom": 45, "left": 75, "right": 20},
                                layout=widgets.Layout(width="420px", height="260px"))
        self.message = widgets.HTML("")
        super().__init__([self.figure, self.message])
        self.update(base_lr, policy, **params)

    def update(self, base_lr: float, policy: str, **params: Any) -> bool:
        """Redraw for these settings; on a bad value keep the last curve and say why. True when redrawn."""
        try:
            x, y = lr_curve(base_lr, policy, **{k: v for k, v in params.items() if v is not None})
        except OptionError as exc:
            self.message.value = f'<span style="color:#c62828">Preview unchanged: {html.escape(str(exc))}</span>'
            return False
        finite = y[np.isfinite(y)]
        top = float(finite.max()) if finite.size else 1.0
        with self.lines.hold_sync():
            self.y_scale.max = top * 1.05 if top > 0 else 1.0
            self.lines.x = x
            self.lines.y = y
        self.message.value = ""
        return True


POLICY_CHOICES = list(train_options.POLICY_CHOICES)
POLICY_PARAMS = ("step_size", "stepvalues", "gamma", "power")


def option_field(o: Option, value: Any = None, *, required: bool | None = None, **extra: Any) -> Field:
    """A form field for a training option, labelled, explained, bounded and offered its choices as the
    options' schema says: a dropdown for choices, a checkbox for a bool, a number field, else a text field.
    ``value`` replaces the default shown; ``required`` (default: a number whose default is not None);
    ``extra`` goes to the field (``check``)."""
    value = o.default if value is None else value
    required = o.kind in (int, float) and o.default is not None if required is None else required
    if o.choices:
        return choice_field(o.label, o.choices, value, help=o.help)
    if o.kind is bool:
        return bool_field(o.label, value, help=o.help)
    if o.kind in (int, float):
        return NumberField(o.label, value, kind=o.kind, min=o.min, max=o.max, help=o.help, required=required,
                           **extra)
    placeholder = "none" if o.kind is str and o.default is None else ""
    return text_field(o.label, "" if value is None else str(value), help=o.help, placeholder=placeholder,
                      required=required, **extra)


def _stepvalues_text(value: Any) -> str:
    return ",".join(f"{v:g}" for v in value) if isinstance(value, (tuple, list)) else str(value or "")


class LrPolicyEditor(widgets.VBox):
    """DIGITS' "advanced learning rate options": the policy, the parameters that policy uses, and the curve.

    Switching policy shows that policy's own parameters at DIGITS' defaults (``POLICY_DEFAULTS``), or at
    what the user last typed for it, as DIGITS kept one field per policy. ``fields`` are keyed by
    TrainOptions names so a form can put an OptionError's message next to its field. ``lr`` is the form's
    base-learning-rate field, followed so the curve redraws when it changes.
    """

    def __init__(self, lr: Field, policy: str = "step") -> None:
        self.lr = lr
        schema = {o.name: o for o in train_options.option_schema()}
        self.fields: dict[str, Field] = {"policy": option_field(schema["policy"], policy), **{
            p: option_field(schema[p], required=schema[p].kind is float) for p in POLICY_PARAMS}}
        self.preview = LrPreview()
        self._memory: dict[str, dict[str, Any]] = {}
        self._loading = False
        super().__init__([f.widget for f in self.fields.values()] + [self.preview])
        self.fields["policy"].control.observe(self._policy_changed, "value")
        for f in [lr, *(self.fields[p] for p in POLICY_PARAMS)]:
            f.on_change(lambda _: self.redraw())
        self.set_values(policy)

    @property
    def policy(self) -> str:
        return self.fields["policy"].value

    def _raw(self, policy: str) -> dict[str, Any]:
        return {p: self.fields[p].value for p in POLICY_DEFAULTS[policy]}

    def _policy_changed(self, change: dict) -> None:
        if not self._loading:
            self._memory[change["old"]] = self._raw(change["old"])
            self.set_values(change["new"], **self._memory.get(change["new"], {}))

    def set_values(self, policy: str, **params: Any) -> None:
        """Select ``policy`` and fill its parameters (``None`` or missing: DIGITS' default for it)."""
        defaults = POLICY_DEFAULTS[policy]
        self._loading = True
        try:
            self.fields["policy"].value = policy
            for p in POLICY_PARAMS:
                self.fields[p].visible = p in defaults
                value = params.get(p) if params.get(p) is not None else defaults.get(p)
                if value is not None:
                    self.fields[p].value = _stepvalues_text(value) if p == "stepvalues" else value
        finally:
            self._loading = False
        self.redraw()

    def options(self) -> dict[str, Any]:
        """``policy`` plus the parameters that differ from the policy's defaults, as TrainOptions takes them.

        Parameters left at DIGITS' defaults stay unset, so a job's options say "the default" rather than
        repeating it. Raises OptionError naming the field (``lr`` for the base rate) when a value is bad.
        """
        policy = self.policy
        try:
            resolved = LrPolicy(name=policy, base_lr=self.lr.value, **self._raw(policy))
        except OptionError as exc:
            raise OptionError(str(exc), field={"base_lr": "lr", "name": "policy"}.get(exc.field, exc.field)) from None
        default = LrPolicy(name=policy)
        out: dict[str, Any] = {"policy": policy}
        for p in POLICY_DEFAULTS[policy]:
            if getattr(resolved, p) != getattr(default, p):
                out[p] = getattr(resolved, p)
        return out

    def redraw(self) -> None:
        if not self._loading:
            self.preview.update(self.lr.value, self.policy, **self._raw(self.policy))
