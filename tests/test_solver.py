"""Solvers and learning-rate policies: DIGITS' formulas and defaults, option errors, exact resume."""
from __future__ import annotations

import io
import math
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from digits_widgets.errors import OptionError
from digits_widgets.train.solver import (POLICIES, POLICY_DEFAULTS, SOLVERS, LrPolicy, iterations_per_epoch,
                                         lr_curve, make_optimizer, make_scheduler)

LR = 0.01


# ---------------------------------------------------------------- policies, by hand with DIGITS defaults

@pytest.mark.parametrize('name, cases', [
    ('fixed', [(0, LR), (42.5, LR), (100, LR)]),
    ('step', [(0, LR), (10, LR), (32.99, LR), (33, LR * 0.1), (65.9, LR * 0.1), (66, LR * 0.01),
              (98.9, LR * 0.01), (99, LR * 0.001), (100, LR * 0.001)]),
    ('multistep', [(0, LR), (49.99, LR), (50, LR * 0.5), (84.99, LR * 0.5), (85, LR * 0.25), (100, LR * 0.25)]),
    ('exp', [(0, LR), (1, LR * 0.95), (10, LR * 0.95 ** 10), (100, LR * 0.95 ** 100)]),
    ('inv', [(0, LR), (10, LR / math.sqrt(2.0)), (30, LR / 2.0), (100, LR / math.sqrt(11.0))]),
    ('poly', [(0, LR), (50, LR * 0.125), (90, LR * 0.001), (100, 0.0)]),
    ('sigmoid', [(0, LR / (1 + math.exp(-5.0))), (50, LR / 2), (60, LR / (1 + math.e)),
                 (100, LR / (1 + math.exp(5.0)))]),
])
def test_policy_values_match_hand_computation(name, cases):
    policy = LrPolicy(name)
    for progress, expected in cases:
        assert policy.lr_at(progress) == pytest.approx(expected, rel=1e-12, abs=1e-15), (name, progress)


def test_step_below_first_step_is_exactly_base_rate():
    policy = LrPolicy('step')
    assert all(policy.lr_at(p / 100) == LR for p in range(0, 3300))


def test_defaults_are_resolved_and_unused_parameters_dropped():
    assert LrPolicy() == LrPolicy('step', 0.01, gamma=0.1, step_size=33)
    policy = LrPolicy('multistep', stepvalues=[10, '20'], power=7.0)
    assert policy.stepvalues == (10.0, 20.0) and policy.gamma == 0.5 and policy.power is None
    assert LrPolicy('fixed', gamma=0.3) == LrPolicy('fixed')
    assert LrPolicy('STEP ').name == 'step'
    for name in POLICIES:
        policy = LrPolicy(name)
        for key, value in POLICY_DEFAULTS[name].items():
            assert getattr(policy, key) == value


def test_explicit_parameters_override_defaults():
    assert LrPolicy('step', 0.1, gamma=0.5, step_size=25).lr_at(50) == pytest.approx(0.1 * 0.25)
    assert LrPolicy('poly', 1.0, power=1).lr_at(25) == pytest.approx(0.75)
    assert LrPolicy('sigmoid', 1.0, step_size=20, gamma=1).lr_at(20) == 0.5


def test_multistep_accepts_digits_string():
    policy = LrPolicy('multistep', stepvalues=' 20, 40 ,60')
    assert policy.stepvalues == (20.0, 40.0, 60.0)
    assert policy.lr_at(40) == pytest.approx(LR * 0.25)


def test_progress_outside_0_100_is_clamped():
    policy = LrPolicy('poly')
    assert policy.lr_at(-5) == LR and policy.lr_at(150) == 0.0


@pytest.mark.parametrize('kwargs, field, text', [
    ({'name': 'cosine'}, 'name', 'fixed, step, multistep, exp, inv, poly, sigmoid'),
    ({'base_lr': -0.1}, 'base_lr', '>= 0'),
    ({'base_lr': float('nan')}, 'base_lr', 'finite'),
    ({'base_lr': True}, 'base_lr', 'number'),
    ({'step_size': 0}, 'step_size', '> 0'),
    ({'gamma': -0.1}, 'gamma', '>= 0'),
    ({'gamma': 'abc'}, 'gamma', 'number'),
    ({'name': 'poly', 'power': -1}, 'power', '>= 0'),
    ({'name': 'multistep', 'stepvalues': '50,abc'}, 'stepvalues', "invalid value 'abc'"),
    ({'name': 'multistep', 'stepvalues': ''}, 'stepvalues', 'invalid value'),
    ({'name': 'multistep', 'stepvalues': '50,85,'}, 'stepvalues', 'invalid value'),
    ({'name': 'multistep', 'stepvalues': '85,50'}, 'stepvalues', 'increasing'),
    ({'name': 'multistep', 'stepvalues': (50, 50)}, 'stepvalues', 'increasing'),
    ({'name': 'multistep', 'stepvalues': '50,120'}, 'stepvalues', '0..100'),
    ({'name': 'multistep', 'stepvalues': ()}, 'stepvalues', 'at least one'),
])
def test_policy_option_errors_name_the_field(kwargs, field, text):
    with pytest.raises(OptionError) as info:
        LrPolicy(**kwargs)
    assert info.value.field == field
    assert text in str(info.value)


def test_lr_curve_is_the_101_point_preview():
    x, y = lr_curve()
    assert len(x) == len(y) == 101 and x[0] == 0 and x[-1] == 100
    assert list(x) == list(range(101))
    assert y[32] == LR and y[33] == pytest.approx(LR * 0.1) and y[99] == pytest.approx(LR * 1e-3)
    x, y = lr_curve(0.1, 'multistep', stepvalues='30,60', gamma=0.1)
    assert y[29] == pytest.approx(0.1) and y[30] == pytest.approx(0.01) and y[60] == pytest.approx(0.001)
    for name in POLICIES:  # DIGITS' defaults all decay (or stay flat)
        _, y = lr_curve(policy=name)
        assert all(b <= a for a, b in zip(y, y[1:])), name


def test_lr_curve_errors():
    with pytest.raises(OptionError) as info:
        lr_curve(policy='step', stepsize=10)
    assert info.value.field == 'stepsize'
    with pytest.raises(OptionError) as info:
        lr_curve(points=1)
    assert info.value.field == 'points'
    with pytest.raises(OptionError) as info:
        lr_curve(policy='nope')
    assert info.value.field == 'name'


def test_factor_is_rate_over_base_rate():
    policy = LrPolicy('exp', 0.2)
    for step in (0, 7, 50, 99):
        assert policy.factor(step, 100) == pytest.approx(policy.lr_at(step) / 0.2)
    assert LrPolicy('fixed', 0.0).factor(3, 10) == 1.0
    with pytest.raises(OptionError) as info:
        policy.factor(0, 0)
    assert info.value.field == 'total_steps'


def test_extreme_parameters_do_not_raise():
    assert LrPolicy('exp', gamma=1e300).lr_at(100) == math.inf
    assert LrPolicy('sigmoid', gamma=1e6).lr_at(100) == 0.0
    assert LrPolicy('sigmoid', gamma=-1e6).lr_at(100) == LR


# ---------------------------------------------------------------- optimizers

def _params():
    torch.manual_seed(0)
    return torch.nn.Linear(3, 2).parameters()


@pytest.mark.parametrize('solver, cls, expected', [
    ('sgd', torch.optim.SGD, {'momentum': 0.9, 'nesterov': False}),
    ('nesterov', torch.optim.SGD, {'momentum': 0.9, 'nesterov': True}),
    ('adagrad', torch.optim.Adagrad, {}),
    ('rmsprop', torch.optim.RMSprop, {'alpha': 0.99, 'momentum': 0.0}),
    ('adadelta', torch.optim.Adadelta, {'rho': 0.9}),
    ('adam', torch.optim.Adam, {'betas': (0.9, 0.999)}),
    ('adamw', torch.optim.AdamW, {'betas': (0.9, 0.999), 'weight_decay': 0.01}),
])
def test_make_optimizer_classes_and_hyper_parameters(solver, cls, expected):
    opt = make_optimizer(_params(), solver, lr=0.02)
    assert type(opt) is cls
    group = opt.param_groups[0]
    assert group['lr'] == 0.02
    expected = {'weight_decay': 0.02 / 100, **expected}
    for key, value in expected.items():
        assert group[key] == value, key


def test_make_optimizer_options():
    assert set(SOLVERS) == {'sgd', 'nesterov', 'adagrad', 'rmsprop', 'adadelta', 'adam', 'adamw'}
    opt = make_optimizer(_params(), 'SGD', lr=0.1, momentum=0.5, weight_decay=0.0)
    assert opt.param_groups[0]['momentum'] == 0.5 and opt.param_groups[0]['weight_decay'] == 0.0
    assert make_optimizer(_params(), 'rmsprop', rms_decay=0.9).param_groups[0]['alpha'] == 0.9
    assert make_optimizer(_params(), 'adamw', weight_decay=0.001).param_groups[0]['weight_decay'] == 0.001
    assert make_optimizer(_params(), 'sgd', lr=0.0).param_groups[0]['weight_decay'] == 0.0


@pytest.mark.parametrize('kwargs, field, text', [
    ({'solver': 'lbfgs'}, 'solver', 'sgd, nesterov, adagrad, rmsprop, adadelta, adam, adamw'),
    ({'lr': -1.0}, 'lr', '>= 0'),
    ({'momentum': 1.0}, 'momentum', '[0, 1)'),
    ({'solver': 'nesterov', 'momentum': 0.0}, 'momentum', 'momentum > 0'),
    ({'weight_decay': -1e-4}, 'weight_decay', '>= 0'),
    ({'rms_decay': 1.5}, 'rms_decay', '[0, 1)'),
])
def test_make_optimizer_option_errors(kwargs, field, text):
    with pytest.raises(OptionError) as info:
        make_optimizer(_params(), **kwargs)
    assert info.value.field == field
    assert text in str(info.value)


def test_frozen_parameters_are_left_out():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    for p in model[0].parameters():
        p.requires_grad_(False)
    trainable = {id(p) for p in model[1].parameters()}

    opt = make_optimizer(model.parameters(), 'adam')
    assert {id(p) for g in opt.param_groups for p in g['params']} == trainable

    groups = [{'params': model[0].parameters(), 'lr': 0.5}, {'params': list(model[1].parameters()), 'lr': 0.1}]
    opt = make_optimizer(groups, 'sgd', lr=0.01)
    assert len(opt.param_groups) == 1  # the all-frozen group is dropped
    assert {id(p) for p in opt.param_groups[0]['params']} == trainable
    assert opt.param_groups[0]['lr'] == 0.1 and opt.param_groups[0]['momentum'] == 0.9

    opt = make_optimizer([{'params': model[0].weight}, {'params': model[1].weight}])
    assert [p for g in opt.param_groups for p in g['params']] == [model[1].weight]


def test_everything_frozen_is_an_option_error():
    model = torch.nn.Linear(3, 2).requires_grad_(False)
    with pytest.raises(OptionError, match='frozen') as info:
        make_optimizer(model.parameters())
    assert info.value.field == 'parameters'
    with pytest.raises(OptionError, match='frozen'):
        make_optimizer([{'params': model.parameters()}])
    with pytest.raises(OptionError) as info:
        make_optimizer([model.weight, {'params': [model.bias]}])
    assert info.value.field == 'parameters'


# ---------------------------------------------------------------- scheduler

@pytest.mark.parametrize('name', POLICIES)
def test_scheduler_follows_policy_per_step(name):
    policy = LrPolicy(name, 0.05)
    total = 60
    opt = make_optimizer([torch.zeros(1, requires_grad=True)], 'sgd', lr=policy.base_lr)
    sched = make_scheduler(opt, policy, total)
    seen = []
    for _ in range(total):
        seen.append(opt.param_groups[0]['lr'])
        opt.step()
        sched.step()
    assert seen == [policy.lr_at(100 * s / total) for s in range(total)]


@pytest.mark.parametrize('name', POLICIES)
def test_scheduler_is_lambdalr_step_for_step(name):
    policy, total = LrPolicy(name, 0.05), 50
    a = make_optimizer([torch.zeros(1, requires_grad=True)], 'sgd', lr=policy.base_lr)
    b = make_optimizer([torch.zeros(1, requires_grad=True)], 'sgd', lr=policy.base_lr)
    ours = make_scheduler(a, policy, total)
    plain = torch.optim.lr_scheduler.LambdaLR(b, lambda step: policy.factor(step, total))
    for _ in range(total):
        a.step()
        b.step()
        ours.step()
        plain.step()
        assert a.param_groups[0]['lr'] == b.param_groups[0]['lr']
    assert ours.state_dict() == {**plain.state_dict(), 'lr_lambdas': [None]}


def test_scheduler_scales_every_group_from_its_own_rate():
    a, b = torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)
    opt = make_optimizer([{'params': [a], 'lr': 0.1}, {'params': [b], 'lr': 0.001}], 'sgd')
    sched = make_scheduler(opt, LrPolicy('step'), 3)  # step 1 of 3 = 33.3 % → one decay
    opt.step()
    sched.step()
    assert [g['lr'] for g in opt.param_groups] == pytest.approx([0.01, 0.0001])


def test_make_scheduler_rejects_bad_total():
    opt = make_optimizer([torch.zeros(1, requires_grad=True)])
    with pytest.raises(OptionError) as info:
        make_scheduler(opt, LrPolicy(), 0)
    assert info.value.field == 'total_steps'


def _run(solver: str, policy: LrPolicy, total: int, stop: int | None = None, state: bytes | None = None,
         scheduler_first: bool = True):
    """Train a tiny linear model; returns (lrs used, final weights, saved state at ``stop``)."""
    gen = torch.Generator().manual_seed(123)
    data = torch.randn(total, 8, 4, generator=gen)
    target = torch.randn(total, 8, 2, generator=gen)
    torch.manual_seed(7 if state is None else 99)  # a resumed model starts from other weights, then loads
    model = torch.nn.Linear(4, 2)
    start = 0
    opt = make_optimizer(model.parameters(), solver, lr=policy.base_lr)
    if state is None:
        sched = make_scheduler(opt, policy, total)
    else:
        saved = torch.load(io.BytesIO(state), weights_only=True)
        model.load_state_dict(saved['model'])
        if scheduler_first:
            sched = make_scheduler(opt, policy, total)
            opt.load_state_dict(saved['optimizer'])
        else:
            opt.load_state_dict(saved['optimizer'])
            sched = make_scheduler(opt, policy, total)
        sched.load_state_dict(saved['scheduler'])
        start = saved['step']
    lrs, blob = [], None
    for s in range(start, total):
        if s == stop:
            buf = io.BytesIO()
            torch.save({'model': model.state_dict(), 'optimizer': opt.state_dict(),
                        'scheduler': sched.state_dict(), 'step': s}, buf)
            blob = buf.getvalue()
            break
        lrs.append(opt.param_groups[0]['lr'])
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(data[s]), target[s]).backward()
        opt.step()
        sched.step()
    return lrs, [p.detach().clone() for p in model.parameters()], blob


@pytest.mark.parametrize('solver, policy, scheduler_first', [
    ('sgd', LrPolicy('step', 0.05), True),
    ('nesterov', LrPolicy('multistep', 0.05), False),
    ('adam', LrPolicy('sigmoid', 0.01), True),
    ('rmsprop', LrPolicy('poly', 0.01), False),
])
def test_resume_from_state_dicts_matches_uninterrupted_run(solver, policy, scheduler_first):
    total, stop = 40, 17
    full_lrs, full_weights, _ = _run(solver, policy, total)
    first_lrs, _, blob = _run(solver, policy, total, stop=stop)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # no "lr_scheduler.step() before optimizer.step()" complaints
        rest_lrs, weights, _ = _run(solver, policy, total, state=blob, scheduler_first=scheduler_first)
    assert first_lrs + rest_lrs == full_lrs
    assert len(set(full_lrs)) > 1
    for a, b in zip(weights, full_weights):
        assert torch.equal(a, b)


def test_step_decays_at_caffe_rounded_up_iterations():
    # DIGITS: stepsize = ceil(33% * 10) = 4, Caffe: lr = base * gamma ^ floor(iter / stepsize)
    policy = LrPolicy('step', 1.0, gamma=0.5, step_size=33)
    assert [policy.factor(s, 10) for s in range(11)] == [1, 1, 1, 1, .5, .5, .5, .5, .25, .25, .25]
    opt = make_optimizer([torch.zeros(1, requires_grad=True)], 'sgd', lr=1.0)
    sched = make_scheduler(opt, policy, 10)
    seen = []
    for _ in range(10):
        seen.append(opt.param_groups[0]['lr'])
        opt.step()
        sched.step()
    assert [i for i in range(1, 10) if seen[i] < seen[i - 1]] == [4, 8]
    x, y = lr_curve(1.0, 'step', gamma=0.5, step_size=33)
    assert len(x) == len(y) == 101 and y[32] == 1.0 and y[33] == 0.5


def test_multistep_decays_at_caffe_rounded_up_iterations():
    # stepvalues 33% and 66% of 10 iterations: ceil(3.3) = 4, ceil(6.6) = 7
    policy = LrPolicy('multistep', 1.0, gamma=0.5, stepvalues='33,66')
    assert [policy.factor(s, 10) for s in range(11)] == [1, 1, 1, 1, .5, .5, .5, .25, .25, .25, .25]
    policy = LrPolicy('multistep', 1.0, gamma=0.1, stepvalues='25,51')   # 7 steps: ceil(1.75) = 2, ceil(3.57) = 4
    assert [policy.factor(s, 7) for s in range(8)] == pytest.approx([1, 1, .1, .1, .01, .01, .01, .01])


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from([p for p in POLICIES if p not in ('step', 'multistep')]),
       total=st.integers(1, 500), data=st.data())
def test_factor_agrees_with_lr_at(name, total, data):
    step = data.draw(st.integers(0, total))
    policy = LrPolicy(name, 0.3)
    assert policy.factor(step, total) * 0.3 == pytest.approx(policy.lr_at(100 * step / total), rel=1e-12, abs=0)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 10000), min_size=1, max_size=6, unique=True))
def test_multistep_string_round_trip(values):
    values = sorted(v / 100 for v in values)
    policy = LrPolicy('multistep', stepvalues=','.join(repr(v) for v in values))
    assert policy.stepvalues == tuple(values)


# ---------------------------------------------------------------- iterations

def test_iterations_per_epoch():
    assert iterations_per_epoch(1000, 16) == 63
    assert iterations_per_epoch(1000, 10) == 100
    assert iterations_per_epoch(1000, 16, 4) == 16
    assert iterations_per_epoch(5, 64) == 1
    assert iterations_per_epoch(0, 64) == 1
    for args, field in (((10, 0), 'batch_size'), ((10, 4, 0), 'batch_accumulation'), ((-1, 4), 'train_count'),
                        ((10, 2.5), 'batch_size')):
        with pytest.raises(OptionError) as info:
            iterations_per_epoch(*args)
        assert info.value.field == field
