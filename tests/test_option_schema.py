"""TrainOptions is the one description of the training options: the magic's flags and the model form read it."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

import digits_widgets as dw
from digits_widgets.data.augment import FLIPS, QUAD_ROTATIONS
from digits_widgets.errors import OptionError
from digits_widgets.magic import parser
from digits_widgets.train import options as train_options
from digits_widgets.train.option_schema import GROUPS, SOLVER, opt
from digits_widgets.train.options import OPTION_NAMES, TrainOptions, option_schema
from digits_widgets.train.solver import POLICIES, SOLVERS

SCHEMA = {o.name: o for o in option_schema()}
# Bounds the form enforces as one types that TrainOptions leaves to a later check (the optimizer's).
LATER = {"rms_decay"}


def flag_helps(p) -> dict[str, str]:
    """Each option's flag help as --help prints it (argparse's %% unescaped)."""
    return {a.dest: a.help.replace("%%", "%") for a in p._actions if a.help}


def test_every_option_is_described():
    assert tuple(SCHEMA) == OPTION_NAMES
    for o in SCHEMA.values():
        assert o.label and o.help.endswith((".", ")")), o.name
        assert o.group in GROUPS, o.name
        if o.kind is bool and o.default:   # the flag is --no-X: "Do not " + the help
            assert o.help[0].isupper() and not o.help.startswith("Do not"), o.name


def test_choices_are_what_training_accepts():
    assert SCHEMA["solver"].values == SOLVERS and SCHEMA["policy"].values == POLICIES
    assert SCHEMA["flip"].values == FLIPS and SCHEMA["quad_rot"].values == QUAD_ROTATIONS
    for o in SCHEMA.values():
        if o.choices:
            assert o.default in o.values, o.name
            for value in o.values:
                TrainOptions(**{o.name: value})
            with pytest.raises(OptionError) as err:
                TrainOptions(**{o.name: "bogus"})
            assert err.value.field == o.name


def test_bounds_are_what_training_accepts():
    for o in SCHEMA.values():
        for bound, outside in ((o.min, -1 if o.kind is int else -0.5), (o.max, 0.5)):
            if bound is None:
                continue
            TrainOptions(**{o.name: bound})
            if o.name in LATER:
                continue
            with pytest.raises(OptionError) as err:
                TrainOptions(**{o.name: bound + outside})
            assert err.value.field == o.name


def test_magic_and_form_say_the_same():
    from digits_widgets.ui.model_form import ModelForm

    helps, fields = flag_helps(parser()), ModelForm().fields
    for o in SCHEMA.values():
        said = f"Do not {o.help[0].lower()}{o.help[1:]}" if o.kind is bool and o.default else o.help
        assert helps[o.name].startswith(said), o.name
        if o.default is not None and o.kind not in (bool, dict):
            assert helps[o.name].endswith(f"(default: {o.default})"), o.name
        assert (o.name in fields) == o.form, o.name
        if o.form:
            f = fields[o.name]
            assert (f.label_text, f.help) == (o.label, o.help), o.name
            if o.kind in (int, float):
                assert (f.min, f.max) == (o.min, o.max), o.name
            if o.choices:
                assert list(f.control.options) == list(o.choices), o.name


def test_magic_groups_follow_the_schema():
    titles = [g.title for g in parser()._action_groups]
    assert [t for t in titles if t in GROUPS] == list(GROUPS)
    p = parser()
    for group in p._action_groups:
        if group.title in GROUPS:
            assert {a.dest for a in group._group_actions} == {o.name for o in SCHEMA.values()
                                                             if o.group == group.title}


@dataclass
class _WithWarmup(TrainOptions):
    warmup_epochs: float = opt(0.0, label="Warmup (in epochs)", group=SOLVER, min=0,
                               help="Epochs over which the learning rate rises from 0 to the base rate.")


def test_an_option_added_to_the_schema_appears_in_both(monkeypatch):
    from digits_widgets.ui.model_form import ModelForm

    monkeypatch.setattr(train_options, "TrainOptions", _WithWarmup)
    p = parser()
    assert p.parse_args(["m", "--dataset", "d", "--warmup-epochs", "2"]).warmup_epochs == 2.0
    assert flag_helps(p)["warmup_epochs"] == ("Epochs over which the learning rate rises from 0 to the base rate. "
                                              "(default: 0.0)")
    assert next(g for g in p._action_groups if g.title == SOLVER)._group_actions[-1].dest == "warmup_epochs"
    form = ModelForm()
    f = form.fields["warmup_epochs"]
    assert (f.label_text, f.help, f.value, f.min) == ("Warmup (in epochs)", _WithWarmup.__dataclass_fields__[
        "warmup_epochs"].metadata["help"], 0.0, 0)
    solver_box = form.children[3].children[0]
    assert f.widget in solver_box.children, "in the Solver Options box, after DIGITS' rows"
    f.value = "-1"
    assert f.error == "Number must be at least 0."


def test_train_options_behave_as_before():
    assert dw.TrainOptions() == TrainOptions.from_dict(TrainOptions().to_dict())
    assert TrainOptions().params == {} and TrainOptions().params is not TrainOptions().params
    with pytest.raises(OptionError) as err:
        TrainOptions(epochs=0)
    assert err.value.field == "epochs"
