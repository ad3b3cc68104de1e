"""The %%digits_model cell magic in a real IPython shell: flags, early network errors, background training."""
from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest
from IPython.core.error import UsageError
from IPython.testing import globalipapp

import digits_widgets as dw
from digits_widgets.magic import CellNetworkError, check_network, parse_arguments, parser
from digits_widgets.train.options import OPTION_NAMES, TrainOptions

TOWER = '''class UserModel(Tower):

    @model_property
    def inference(self):
        x = digits.flatten(self.x * 0.004)
        fc = self.layer('fc', lambda: nn.Linear(x.shape[1], 2))
        return fc(x)

    @model_property
    def loss(self):
        return digits.mse_loss(self.inference, self.y)
'''

FIXED_36 = '''class UserModel(Tower):

    @model_property
    def inference(self):
        fc = self.layer('fc', lambda: nn.Linear(36, 2))
        return fc(digits.flatten(self.x))

    @model_property
    def loss(self):
        return digits.mse_loss(self.inference, self.y)
'''


@pytest.fixture(scope="module")
def ip():
    globalipapp.start_ipython()
    shell = globalipapp.get_ipython()
    shell.run_line_magic("load_ext", "digits_widgets")
    return shell


@pytest.fixture
def gradients():
    ds = dw.datasets.gradients("grad", train_count=64, val_count=16, image_size=(8, 8), seed=0)
    assert ds.wait(60) == "Done"
    return ds


def run(ip, line: str, cell: str):
    """Run a %%digits_model cell the way a notebook does; return the execution result."""
    return ip.run_cell(f"%%digits_model {line}\n{cell}")


def test_cell_trains_in_background(ip, gradients):
    line = "regress --dataset grad --epochs 2 --lr 0.01 --solver adam --batch-size 16 --seed 1"
    t0 = time.time()
    result = run(ip, line, TOWER)
    took = time.time() - t0
    assert result.success, result.error_in_exec
    job = result.result
    assert took < 5
    assert job.status in ("Waiting", "Running", "Done")
    assert ip.user_ns["regress"] is job and ip.user_ns["_"] is job
    assert job.name == "regress" and job.parents == [gradients.id]
    assert job.path("network.py").read_text() == TOWER
    stored = json.loads(job.path("job.json").read_text())["params"]["options"]
    assert stored == TrainOptions(epochs=2, lr=0.01, solver="adam", batch_size=16, seed=1).to_dict()
    assert job.wait(120) == "Done"
    val = job.metrics("val")
    assert val[0]["epoch"] == 0 and val[-1]["epoch"] == 2
    assert val[-1]["loss"] < val[0]["loss"]


def test_no_train_leaves_job_initialized(ip, gradients):
    result = run(ip, "idle --dataset grad --no-train --group 'lab 2'", TOWER)
    assert result.success, result.error_in_exec
    job = ip.user_ns["idle"]
    assert job.status == "Initialized" and not job.is_owned_here()
    assert job.options == TrainOptions() and job.group == "lab 2"


def test_flags_map_to_options(ip, gradients):
    line = ("flags --dataset grad --no-train --policy multistep --stepvalues 50,85 --gamma 0.3 --no-shuffle "
            "--no-amp --no-keep-best --no-tensorboard --hsv --mean pixel --val-interval 0.5 "
            "--batch-accumulation 2 --device cpu --freeze '^(fc)' --param depth=3 --param scale=0.5 --param act=relu")
    assert run(ip, line, TOWER).success
    opts = ip.user_ns["flags"].options
    assert opts.policy == "multistep" and tuple(opts.stepvalues) == (50.0, 85.0) and opts.gamma == 0.3
    assert (opts.shuffle, opts.amp, opts.keep_best, opts.tensorboard, opts.hsv) == (False, False, False, False, True)
    assert (opts.mean, opts.val_interval, opts.batch_accumulation, opts.device) == ("pixel", 0.5, 2, "cpu")
    assert opts.freeze == "^(fc)"
    assert opts.params == {"depth": 3, "scale": 0.5, "act": "relu"}


def test_every_option_has_a_flag():
    p = parser()
    dests = {a.dest for a in p._actions}
    assert set(OPTION_NAMES) <= dests
    text = " ".join(p.format_help().split())   # unwrapped
    for flag in ("--batch-size", "--snapshot-interval", "--no-shuffle", "--hsv", "--param", "--no-train"):
        assert flag in text
    assert "(default: 30)" in text and "(default: 0.01)" in text and "(default: sgd)" in text
    assert parse_arguments("m --dataset d") == ("m", "d", False, {})
    assert parse_arguments("m --dataset d --group 'lab 2'") == ("m", "d", False, {"group": "lab 2"})


def test_help_prints_and_returns(ip, capsys):
    result = run(ip, "--help", "pass\n")
    assert result.success and result.result is None
    assert "--batch-accumulation" in capsys.readouterr().out
    result = ip.run_cell("%digits_model --help")   # the line form: a cell magic may not have an empty body
    assert result.success and result.result is None
    assert "--batch-accumulation" in capsys.readouterr().out
    with pytest.raises(UsageError, match="takes the network in the cell"):
        ip.run_line_magic("digits_model", "m --dataset grad")


def test_unknown_flag_is_usage_error(ip, gradients):
    with pytest.raises(UsageError, match="unrecognized arguments: --bogus"):
        ip.run_cell_magic("digits_model", "m --dataset grad --bogus", TOWER)
    with pytest.raises(UsageError, match="required: NAME, --dataset"):
        ip.run_cell_magic("digits_model", "", TOWER)
    with pytest.raises(UsageError, match="--epochs: invalid int value"):
        ip.run_cell_magic("digits_model", "m --dataset grad --epochs many", TOWER)
    assert dw.jobs("model") == []


def test_bad_value_names_the_option(ip, gradients, capsys):
    with pytest.raises(UsageError, match="--solver: .*foo"):
        ip.run_cell_magic("digits_model", "m --dataset grad --solver foo", TOWER)
    with pytest.raises(UsageError, match="--lr: "):
        ip.run_cell_magic("digits_model", "m --dataset grad --lr -1", TOWER)
    with pytest.raises(UsageError, match="--crop: crop size 9"):
        ip.run_cell_magic("digits_model", "m --dataset grad --crop 9", TOWER)
    with pytest.raises(UsageError, match="--dataset: No dataset"):
        ip.run_cell_magic("digits_model", "m --dataset nowhere", TOWER)
    result = run(ip, "m --dataset grad --solver foo", TOWER)
    assert isinstance(result.error_in_exec, UsageError)
    err = capsys.readouterr().err
    assert "UsageError" in err and "solver" in err and "Traceback" not in err
    assert dw.jobs("model") == []


def test_syntax_error_shows_cell_line_and_creates_no_job(ip, gradients, capsys):
    cell = "import torch\n\nclass UserModel(Tower)\n    pass\n"
    result = run(ip, "broken --dataset grad", cell)
    assert isinstance(result.error_in_exec, CellNetworkError)
    out = capsys.readouterr().out
    assert 'File "<digits_model:broken>", line 3' in out
    assert "class UserModel(Tower)" in out and "SyntaxError" in out
    assert "magic.py" not in out and "run_cell_magic" not in out
    assert dw.jobs("model") == [] and "broken" not in ip.user_ns


def test_build_error_shows_user_frame_only(ip, gradients, capsys):
    cell = TOWER.replace("x = digits.flatten(self.x * 0.004)", "x = self.x.view(3, -1, 7)")
    result = run(ip, "shapes --dataset grad", cell)
    assert isinstance(result.error_in_exec, CellNetworkError)
    out = capsys.readouterr().out
    assert 'File "<digits_model:shapes>", line 5, in inference' in out
    assert "x = self.x.view(3, -1, 7)" in out and "RuntimeError" in out
    assert "module.py" not in out and "tower.py" not in out
    assert dw.jobs("model") == []


def test_missing_user_model_digits_sentence(ip, gradients, capsys):
    with pytest.raises(dw.NetworkError, match="The user model class 'UserModel' is not defined."):
        ip.run_cell_magic("digits_model", "empty --dataset grad", "x = 1\n")
    run(ip, "empty --dataset grad", "x = 1\n")
    assert "The user model class 'UserModel' is not defined." in capsys.readouterr().out
    assert dw.jobs("model") == []


def test_crop_is_applied_to_the_check(ip, gradients):
    with pytest.raises(CellNetworkError):
        ip.run_cell_magic("digits_model", "fixed --dataset grad --no-train", FIXED_36)
    job = ip.run_cell_magic("digits_model", "fixed --dataset grad --no-train --crop 6", FIXED_36)
    assert job.options.crop == 6


def test_dataset_from_variable_and_non_identifier_name(ip, gradients):
    ip.user_ns["my_data"] = gradients
    result = run(ip, "'my model' --dataset my_data --no-train", TOWER)
    assert result.success, result.error_in_exec
    job = ip.user_ns["_"]
    assert job.name == "my model" and job.parents == [gradients.id]


def test_dataset_not_done_only_compiles():
    running = SimpleNamespace(status="Running", feature_shape=None)
    check_network("x = 1\n", "later", running, TrainOptions())   # builds once the dataset is ready
    with pytest.raises(dw.NetworkError, match="syntax error"):
        check_network("def f(:\n", "later", running, TrainOptions())


def test_model_form_takes_the_network_of_the_last_cell(ip, gradients, monkeypatch):
    from digits_widgets.nets import source
    from digits_widgets.ui.model_form import CUSTOM, ModelForm

    monkeypatch.setattr(source, "_last_cell", None)
    form = ModelForm(dataset=gradients)
    form.from_cell_button.click()
    assert "No %%digits_model cell has run" in form.network_message.value and form.custom.value == ""
    broken = TOWER.replace("nn.Linear", "nn.Lineer")
    assert not run(ip, "broken --dataset grad --no-train", broken).success   # kept even when the cell fails
    form.from_cell_button.click()
    assert form.custom.value == broken and form.network_tabs.selected_index == CUSTOM
    assert form.network_message.value == ""
    assert run(ip, "regress --dataset grad --no-train", TOWER).success
    form.use_last_cell()
    assert form.network_source() == TOWER


TORCH7_REGRESSION = """return function(p)
    local nDim=1
    if p.inputShape then p.inputShape:apply(function(x) nDim=nDim*x end) end
    local net = nn.Sequential()
    net:add(nn.MulConstant(0.004))
    net:add(nn.View(-1):setNumInputDims(3))
    net:add(nn.Linear(nDim,2))
    return {model = net, loss = nn.MSECriterion()}
end
"""


def test_torch7_cell_is_recognised_or_named_with_framework(ip, gradients):
    pytest.importorskip("lupa")
    job = ip.run_cell_magic("digits_model", "lua_auto --dataset grad --no-train", TORCH7_REGRESSION)
    assert job.network_source() == TORCH7_REGRESSION
    job = ip.run_cell_magic("digits_model", "lua_named --dataset grad --no-train --framework torch",
                            TORCH7_REGRESSION)
    assert job.options.params == {} and job.network_source() == TORCH7_REGRESSION


def test_framework_flag_must_match_the_cell(ip, gradients, capsys):
    with pytest.raises(CellNetworkError, match="--framework pytorch: .* reads as Torch7 Lua"):
        ip.run_cell_magic("digits_model", "mismatch --dataset grad --no-train --framework pytorch",
                          TORCH7_REGRESSION)
    with pytest.raises(CellNetworkError, match=r"--framework torch: .* reads as Python.*return function\(params\)"):
        ip.run_cell_magic("digits_model", "mismatch --dataset grad --no-train --framework torch", TOWER)
    with pytest.raises(UsageError, match="invalid choice: 'tensorflow'"):
        ip.run_cell_magic("digits_model", "mismatch --dataset grad --framework tensorflow", TOWER)
    assert dw.jobs("model") == []


def test_torch7_cell_error_shows_the_lua_line(ip, gradients, capsys):
    pytest.importorskip("lupa")
    cell = TORCH7_REGRESSION.replace("nn.MulConstant(0.004)", "nn.Scale(0.004)")
    result = run(ip, "lua_bad --dataset grad --no-train", cell)
    assert isinstance(result.error_in_exec, CellNetworkError)
    out = capsys.readouterr().out
    assert "<digits_model:lua_bad>:5: unknown nn module 'nn.Scale'" in out
    assert dw.jobs("model") == []


def test_framework_flag_is_listed_in_help():
    text = parser().format_help()
    assert "--framework {pytorch,caffe,torch}" in text and "digits_widgets[torch7]" in text
