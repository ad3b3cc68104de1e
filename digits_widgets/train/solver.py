"""DIGITS' solvers and learning-rate policies on top of ``torch.optim``.

DIGITS describes every learning-rate policy over training progress in percent (0..100) rather than in
iterations, so the same settings mean the same curve whatever the dataset or batch size.  The formulas are
the ones of the DIGITS reference (inventory section 3.1); the preview curve (:func:`lr_curve`) and the
per-step scheduler (:func:`make_scheduler`) both evaluate :meth:`LrPolicy.lr_at`, so what the form draws is
what training uses. One refinement: the step and multistep policies decay at whole iterations, the percentage
rounded up as DIGITS did for Caffe (``stepsize = ceil(step_size% * total_iterations)``, each stepvalue
likewise; see :meth:`LrPolicy.factor`), so the scheduler's decays may come up to one iteration after the
preview's percent.

Options that fail validation raise :class:`~digits_widgets.errors.OptionError` whose ``field`` is the name
of the parameter at fault (``'name'``, ``'gamma'``, ``'solver'``, ...), so a form can mark the input.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import torch

from ..errors import OptionError

SOLVERS = ('sgd', 'nesterov', 'adagrad', 'rmsprop', 'adadelta', 'adam', 'adamw')
POLICIES = ('fixed', 'step', 'multistep', 'exp', 'inv', 'poly', 'sigmoid')
POLICY_DEFAULTS: dict[str, dict[str, Any]] = {
    'step': {'step_size': 33.0, 'gamma': 0.1},
    'multistep': {'stepvalues': (50.0, 85.0), 'gamma': 0.5},
    'exp': {'gamma': 0.95},
    'inv': {'gamma': 0.1, 'power': 0.5},
    'poly': {'power': 3.0},
    'sigmoid': {'step_size': 50.0, 'gamma': 0.1},
    'fixed': {},
}
_POLICY_PARAMS = ('gamma', 'step_size', 'stepvalues', 'power')


def _number(value: Any, field: str) -> float:
    """A finite float from a number or a numeric string (form fields arrive as text)."""
    if isinstance(value, bool):
        raise OptionError(f"{field} must be a number, got {value!r}", field=field)
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise OptionError(f"{field} must be a number, got {value!r}", field=field) from None
    if not isinstance(value, numbers.Real):
        raise OptionError(f"{field} must be a number, got {value!r}", field=field)
    value = float(value)
    if not math.isfinite(value):
        raise OptionError(f"{field} must be a finite number, got {value!r}", field=field)
    return value


def _parse_stepvalues(value: Any) -> tuple[float, ...]:
    """Multistep values from ``"50,85"`` or a sequence of numbers; DIGITS' error text is "invalid value"."""
    if isinstance(value, str):
        parts: list[Any] = value.split(',')
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        parts = [value]
    else:
        try:
            parts = list(value)
        except TypeError:
            raise OptionError(f"invalid value {value!r} for step values: give numbers such as '50,85'",
                              field='stepvalues') from None
    if not parts:
        raise OptionError("step values: give at least one percentage, such as '50,85'", field='stepvalues')
    values = []
    for part in parts:
        try:
            values.append(_number(part, 'stepvalues'))
        except OptionError:
            raise OptionError(f"invalid value {part!r} in step values {value!r}: each must be a number "
                              "(percent of training)", field='stepvalues') from None
    for v in values:
        if not 0.0 <= v <= 100.0:
            raise OptionError(f"invalid value {v:g} in step values: each must be within 0..100 "
                              "(percent of training)", field='stepvalues')
    if any(b <= a for a, b in zip(values, values[1:])):
        raise OptionError(f"invalid value: step values {', '.join(f'{v:g}' for v in values)} must be "
                          "strictly increasing", field='stepvalues')
    return tuple(values)


@dataclass(frozen=True)
class LrPolicy:
    """A DIGITS learning-rate policy; parameters left ``None`` take DIGITS' defaults (``POLICY_DEFAULTS``).

    After construction the fields hold the effective values: the name is lower-case, the policy's own
    parameters are floats (``stepvalues`` a tuple), and parameters the policy does not use are ``None`` so
    that equal curves compare equal.
    """

    name: str = 'step'
    base_lr: float = 0.01
    gamma: float | None = None
    step_size: float | None = None
    stepvalues: tuple[float, ...] | None = None
    power: float | None = None

    def __post_init__(self) -> None:
        name = self.name.strip().lower() if isinstance(self.name, str) else self.name
        if name not in POLICIES:
            raise OptionError(f"unknown learning-rate policy {self.name!r}: choose one of {', '.join(POLICIES)}",
                              field='name')
        base_lr = _number(self.base_lr, 'base_lr')
        if base_lr < 0:
            raise OptionError(f"base_lr must be >= 0, got {base_lr:g}", field='base_lr')
        resolved: dict[str, Any] = {'name': name, 'base_lr': base_lr}
        defaults = POLICY_DEFAULTS[name]
        for param in _POLICY_PARAMS:
            if param not in defaults:
                resolved[param] = None
                continue
            given = getattr(self, param)
            value = defaults[param] if given is None else given
            resolved[param] = _parse_stepvalues(value) if param == 'stepvalues' else _number(value, param)
        self._check(resolved)
        for key, value in resolved.items():
            object.__setattr__(self, key, value)

    @staticmethod
    def _check(p: dict[str, Any]) -> None:
        """Ranges that keep the learning rate non-negative and defined over 0..100 %."""
        name = p['name']
        if name in ('step', 'multistep', 'exp', 'inv') and p['gamma'] < 0:
            raise OptionError(f"gamma must be >= 0 for the {name} policy, got {p['gamma']:g}", field='gamma')
        if name == 'step' and p['step_size'] <= 0:
            raise OptionError(f"step_size must be > 0 (percent of training), got {p['step_size']:g}",
                              field='step_size')
        if name in ('inv', 'poly') and p['power'] < 0:
            raise OptionError(f"power must be >= 0 for the {name} policy, got {p['power']:g}", field='power')

    def multiplier(self, progress: float) -> float:
        """The policy's curve for a base rate of 1 at ``progress`` percent (clamped to 0..100)."""
        p = min(max(float(progress), 0.0), 100.0)
        name = self.name
        try:
            if name == 'fixed':
                return 1.0
            if name == 'step':
                return self.gamma ** math.floor(p / self.step_size)
            if name == 'multistep':
                return self.gamma ** sum(1 for v in self.stepvalues if v <= p)
            if name == 'exp':
                return self.gamma ** p
            if name == 'inv':
                return (1.0 + self.gamma * p) ** (-self.power)
            if name == 'poly':
                return (1.0 - p / 100.0) ** self.power
            z = self.gamma * (p - self.step_size)  # sigmoid, written so exp() cannot overflow
            if z >= 0:
                e = math.exp(-z)
                return e / (1.0 + e)
            return 1.0 / (1.0 + math.exp(z))
        except OverflowError:
            return math.inf

    def lr_at(self, progress: float) -> float:
        """Learning rate at ``progress`` percent of training (0..100; values outside are clamped)."""
        return self.base_lr * self.multiplier(progress)

    def factor(self, step: int, total_steps: int) -> float:
        """Multiplier of the base rate at optimizer step ``step`` of ``total_steps`` (what LambdaLR needs).

        The step and multistep policies decay at the iterations Caffe used under DIGITS: each percentage is
        turned into an iteration count rounded up (``stepsize = ceil(step_size * total_steps / 100)``, each
        stepvalue likewise) and the rate is ``gamma ** floor(step / stepsize)`` (multistep: one factor of
        ``gamma`` per stepvalue reached), so with 10 steps and a 33 % step size the decays come at steps 4
        and 8, not at 4 and 7 as the percent curve alone would put them.
        """
        if total_steps < 1:
            raise OptionError(f"total_steps must be >= 1, got {total_steps}", field='total_steps')
        scale = total_steps / 100.0   # DIGITS' caffe_train.py: scale = max_iter / 100, then ceil(value * scale)
        if self.name == 'step':
            stepsize = max(1, math.ceil(self.step_size * scale))
            return self.gamma ** (min(max(step, 0), total_steps) // stepsize)
        if self.name == 'multistep':
            step = min(max(step, 0), total_steps)
            return self.gamma ** sum(1 for v in self.stepvalues if math.ceil(v * scale) <= step)
        return self.multiplier(100.0 * step / total_steps)


def lr_curve(base_lr: float = 0.01, policy: str = 'step', points: int = 101,
             **params: Any) -> tuple[np.ndarray, np.ndarray]:
    """The preview DIGITS draws: ``x`` = 0..100 percent of training in ``points`` steps, ``y`` = learning rate."""
    unknown = sorted(set(params) - set(_POLICY_PARAMS))
    if unknown:
        raise OptionError(f"unknown learning-rate parameter {unknown[0]!r}: use {', '.join(_POLICY_PARAMS)}",
                          field=unknown[0])
    if isinstance(points, bool) or not isinstance(points, numbers.Integral) or points < 2:
        raise OptionError(f"points must be an integer >= 2, got {points!r}", field='points')
    lr_policy = LrPolicy(name=policy, base_lr=base_lr, **params)
    x = np.linspace(0.0, 100.0, int(points))
    y = np.array([lr_policy.lr_at(p) for p in x], dtype=np.float64)
    return x, y


def _trainable(parameters: Iterable[Any]) -> list[Any]:
    """Tensors or param-group dicts with frozen (``requires_grad=False``) parameters and empty groups removed."""
    items = list(parameters)
    if all(isinstance(item, dict) for item in items) and items:
        groups = []
        for group in items:
            params = group.get('params', [])
            params = [params] if isinstance(params, torch.Tensor) else list(params)
            kept = [p for p in params if p.requires_grad]
            if kept:
                groups.append({**group, 'params': kept})
        return groups
    if not all(isinstance(item, torch.Tensor) for item in items):
        raise OptionError("parameters must be tensors or param-group dicts, not a mix of both or other objects",
                          field='parameters')
    return [p for p in items if p.requires_grad]


def default_weight_decay(solver: str, lr: float, weight_decay: float | None) -> float:
    """The weight decay a solver runs with: the given one, else DIGITS' ``lr / 100`` (AdamW: PyTorch's 0.01,
    its decay being decoupled). Caffe networks scale it per blob with ``decay_mult``."""
    if weight_decay is not None:
        return weight_decay
    return 0.01 if str(solver).strip().lower() == 'adamw' else float(lr) / 100.0


def make_optimizer(parameters: Iterable[Any], solver: str = 'sgd', lr: float = 0.01, momentum: float = 0.9,
                   weight_decay: float | None = None, rms_decay: float = 0.99) -> torch.optim.Optimizer:
    """A ``torch.optim`` optimizer for a DIGITS solver type, with DIGITS' (Caffe's) settings.

    * ``weight_decay`` defaults to ``lr / 100`` (DIGITS) for every solver but AdamW, whose decay is decoupled
      and multiplied by the rate again, so it keeps PyTorch's default 0.01.
    * ``momentum`` plays its Caffe roles: SGD momentum (Nesterov for ``nesterov``), AdaDelta's decay ``rho`` and
      Adam/AdamW's ``beta1`` (0.9 = PyTorch's defaults); AdaGrad and RMSprop run without momentum as in Caffe.
    * RMSprop's ``alpha`` is DIGITS' "RMS decay value" ``rms_decay`` (0.99); epsilons are PyTorch's defaults.

    Frozen parameters (``requires_grad=False``) are left out of the optimizer.
    """
    name = solver.strip().lower() if isinstance(solver, str) else solver
    if name not in SOLVERS:
        raise OptionError(f"unknown solver {solver!r}: choose one of {', '.join(SOLVERS)}", field='solver')
    lr = _number(lr, 'lr')
    if lr < 0:
        raise OptionError(f"lr must be >= 0, got {lr:g}", field='lr')
    momentum = _number(momentum, 'momentum')
    if not 0.0 <= momentum < 1.0:
        raise OptionError(f"momentum must be within [0, 1), got {momentum:g}", field='momentum')
    if name == 'nesterov' and momentum == 0:
        raise OptionError("the nesterov solver needs momentum > 0", field='momentum')
    rms_decay = _number(rms_decay, 'rms_decay')
    if not 0.0 <= rms_decay < 1.0:
        raise OptionError(f"rms_decay must be within [0, 1), got {rms_decay:g}", field='rms_decay')
    weight_decay = _number(default_weight_decay(name, lr, weight_decay), 'weight_decay')
    if weight_decay < 0:
        raise OptionError(f"weight_decay must be >= 0, got {weight_decay:g}", field='weight_decay')

    params = _trainable(parameters)
    if not params:
        raise OptionError("no trainable parameters: none were given or every layer is frozen "
                          "(requires_grad=False); unfreeze at least one", field='parameters')
    optim = torch.optim
    if name in ('sgd', 'nesterov'):
        return optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=name == 'nesterov')
    if name == 'adagrad':
        return optim.Adagrad(params, lr=lr, weight_decay=weight_decay)
    if name == 'rmsprop':
        return optim.RMSprop(params, lr=lr, alpha=rms_decay, momentum=0.0, weight_decay=weight_decay)
    if name == 'adadelta':
        return optim.Adadelta(params, lr=lr, rho=momentum, weight_decay=weight_decay)
    cls = optim.Adam if name == 'adam' else optim.AdamW
    return cls(params, lr=lr, betas=(momentum, 0.999), weight_decay=weight_decay)


class _PolicyScheduler(torch.optim.lr_scheduler.LambdaLR):
    """LambdaLR whose ``load_state_dict`` also puts the saved rates back into the optimizer.

    Plain LambdaLR only applies the restored position at the next ``step()``, so the first step after a resume
    would run at the rate of step 0 when the optimizer state was loaded before the scheduler was built.
    """

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group['lr'] = lr

    def step(self, epoch: int | None = None) -> None:
        """LambdaLR's step, without its per-call checks once the first steps have passed them.

        The trainer steps after every optimizer step, every few hundred microseconds on a small network;
        the same state (``last_epoch``, ``_step_count``, ``_last_lr``) and the same rates come out.
        """
        if epoch is not None or self._step_count < 2 or any(
                isinstance(g['lr'], torch.Tensor) for g in self.optimizer.param_groups):
            super().step(epoch)   # PyTorch's ordering warnings, tensor rates, the deprecated epoch form
            return
        self._step_count += 1
        self.last_epoch += 1
        rates = [base * factor(self.last_epoch) for factor, base in zip(self.lr_lambdas, self.base_lrs)]
        for group, lr in zip(self.optimizer.param_groups, rates):
            group['lr'] = lr
        self._last_lr = rates


def make_scheduler(optimizer: torch.optim.Optimizer, policy: LrPolicy,
                   total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-optimizer-step scheduler: each group's rate = its initial rate * ``policy.factor(step, total_steps)``.

    Call ``scheduler.step()`` after every ``optimizer.step()``.  Resume with ``state_dict()`` /
    ``load_state_dict()`` on a freshly made optimizer and scheduler (the state holds only plain numbers, so
    ``torch.load(weights_only=True)`` reads it).
    """
    if isinstance(total_steps, bool) or not isinstance(total_steps, numbers.Integral) or total_steps < 1:
        raise OptionError(f"total_steps must be an integer >= 1, got {total_steps!r}", field='total_steps')
    total = int(total_steps)

    def lr_lambda(step: int) -> float:
        return policy.factor(step, total)

    return _PolicyScheduler(optimizer, lr_lambda)


def iterations_per_epoch(train_count: int, batch_size: int, batch_accumulation: int = 1) -> int:
    """Optimizer steps per epoch, ``ceil(train_count / (batch_size * batch_accumulation))``, at least 1 (DIGITS)."""
    for field, value, low in (('train_count', train_count, 0), ('batch_size', batch_size, 1),
                              ('batch_accumulation', batch_accumulation, 1)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise OptionError(f"{field} must be an integer >= {low}, got {value!r}", field=field)
    per_step = int(batch_size) * int(batch_accumulation)
    return max(1, -(-int(train_count) // per_step))
