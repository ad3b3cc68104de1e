"""Training options with DIGITS' names and defaults, checked once, stored in job.json.

The same names are the keyword arguments of ``dw.train`` and, in kebab case, the flags of the
``%%digits_model`` cell magic (``batch_size`` → ``--batch-size``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields

from ..data.augment import Augmentation
from ..errors import OptionError
from .solver import POLICIES, SOLVERS, LrPolicy

DEVICES_HELP = "auto, cpu, cuda, cuda:N or cuda:I,J (the GPUs I and J, as gpus=[I, J])"


@dataclass
class TrainOptions:
    epochs: int = 30                      # DIGITS "Training epochs"
    lr: float = 0.01                      # "Base Learning Rate"
    solver: str = "sgd"                   # sgd nesterov adagrad rmsprop adadelta adam adamw
    policy: str = "step"                  # fixed step multistep exp inv poly sigmoid
    gamma: float | None = None            # policy parameters; None → DIGITS' default for the policy
    step_size: float | None = None        # percent of training (step, sigmoid)
    stepvalues: tuple[float, ...] | str | None = None   # percent of training (multistep), e.g. "50,85"
    power: float | None = None            # inv, poly
    batch_size: int | None = None         # None → the network's own, else 16 (DIGITS/Torch default)
    val_batch_size: int | None = None
    batch_accumulation: int = 1
    snapshot_interval: float = 1.0        # epochs; 0 → only the final snapshot
    val_interval: float = 1.0             # epochs; 0 → no validation
    seed: int | None = None
    mean: str = "image"                   # none image pixel
    crop: int | None = None
    flip: str = "none"
    quad_rot: str = "none"
    noise: float = 0.0
    hsv: bool = False
    hsv_h: float = 0.02
    hsv_s: float = 0.04
    hsv_v: float = 0.06
    momentum: float = 0.9
    weight_decay: float | None = None     # None → lr / 100, as DIGITS
    rms_decay: float = 0.99
    shuffle: bool = True
    device: str = "auto"
    gpus: int | tuple[int, ...] = 1       # a count (next available) or GPU indices [0, 2]; more than 1 →
    #                                       torchrun with DistributedDataParallel
    share_gpus: bool = False              # let other sharing trainings use the same GPUs at once
    launcher: str = "auto"                # auto (thread, or torchrun when gpus/nproc > 1), thread, torchrun
    nproc: int | None = None              # torchrun processes (defaults to gpus)
    amp: bool = True                      # mixed precision on CUDA
    pretrained: str | None = None         # model job id/name, or a snapshot path
    freeze: str | None = None             # regex of parameter names to freeze, e.g. "^(conv|fc1)"
    keep_best: bool = True                # keep snapshots/best.pt (lowest val loss)
    keep_last: int | None = None          # keep only the last K epoch snapshots
    early_stopping: int | None = None     # patience in validations without a better val loss
    tensorboard: bool = True              # tb/ events when the tensorboard package is installed
    params: dict = field(default_factory=dict)   # extra values for torch7-style network(params)
    schedule_steps: int | None = None     # iterations the policy's percentages span; None → the whole
    #                                       training (``resume(keep_schedule=True)`` keeps the first run's)

    def __post_init__(self) -> None:
        if isinstance(self.gpus, list):
            self.gpus = tuple(self.gpus)
        dev = str(self.device)
        if dev.startswith("cuda:") and "," in dev:   # "cuda:0,1": a spelling of gpus=[0, 1]
            try:
                indices = tuple(int(part) for part in dev[5:].split(","))
            except ValueError:
                raise OptionError(f"device must be {DEVICES_HELP} (got {dev!r})", field="device") from None
            if self.gpus not in (1, indices):
                raise OptionError(f"device={dev!r} and gpus={self.gpus!r} disagree: give the GPUs once, "
                                  f"as gpus={list(indices)}", field="gpus")
            self.device, self.gpus = "cuda", indices
        one = dev[5:] if dev.startswith("cuda:") and dev[5:].isdigit() else None
        if one is not None and isinstance(self.gpus, tuple) and self.gpus != (int(one),):
            raise OptionError(f"device={dev!r} and gpus={list(self.gpus)!r} disagree: give the GPUs once, "
                              "as gpus=[...]", field="gpus")
        self.validate()

    def validate(self) -> None:
        if self.solver not in SOLVERS:
            raise OptionError(f"solver must be one of {', '.join(SOLVERS)} (got {self.solver!r})", field="solver")
        if self.policy not in POLICIES:
            raise OptionError(f"policy must be one of {', '.join(POLICIES)} (got {self.policy!r})", field="policy")
        checks = [("epochs", self.epochs > 0, "greater than 0"),
                  ("lr", self.lr >= 0, "at least 0. If you are getting NaN for your loss, lower it"),
                  ("batch_accumulation", self.batch_accumulation >= 1, "at least 1"),
                  ("snapshot_interval", self.snapshot_interval >= 0, "at least 0"),
                  ("val_interval", self.val_interval >= 0, "at least 0"),
                  ("gpus", self._gpus_ok(), "a count of at least 1 or a list of distinct GPU indices"),
                  ("batch_size", self.batch_size is None or self.batch_size >= 1, "at least 1"),
                  ("val_batch_size", self.val_batch_size is None or self.val_batch_size >= 1, "at least 1"),
                  ("crop", self.crop is None or self.crop >= 1, "at least 1"),
                  ("keep_last", self.keep_last is None or self.keep_last >= 1, "at least 1"),
                  ("early_stopping", self.early_stopping is None or self.early_stopping >= 1, "at least 1"),
                  ("nproc", self.nproc is None or self.nproc >= 1, "at least 1"),
                  ("seed", self.seed is None or self.seed >= 0, "at least 0"),
                  ("schedule_steps", self.schedule_steps is None or self.schedule_steps >= 1, "at least 1")]
        for name, ok, what in checks:
            if not ok:
                raise OptionError(f"{name} must be {what} (got {getattr(self, name)!r})", field=name)
        try:
            self.lr_policy()  # checks the policy parameters, under the solver's own names
        except OptionError as exc:
            raise OptionError(str(exc), field={"base_lr": "lr", "name": "policy"}.get(exc.field, exc.field)) from None
        self.augmentation()
        if self.mean not in ("none", "image", "pixel"):
            raise OptionError(f"mean must be none, image or pixel (got {self.mean!r})", field="mean")
        if self.launcher not in ("auto", "thread", "torchrun"):
            raise OptionError(f"launcher must be auto, thread or torchrun (got {self.launcher!r})", field="launcher")
        dev = str(self.device)
        if not (dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
            raise OptionError(f"device must be {DEVICES_HELP} (got {dev!r})", field="device")
        if self.freeze:
            import re
            try:
                re.compile(self.freeze)
            except re.error as exc:
                raise OptionError(f"freeze is not a valid regular expression: {exc}", field="freeze") from None

    def _gpus_ok(self) -> bool:
        if isinstance(self.gpus, tuple):
            return bool(self.gpus) and len(set(self.gpus)) == len(self.gpus) and all(
                isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in self.gpus)
        return isinstance(self.gpus, int) and not isinstance(self.gpus, bool) and self.gpus >= 1

    @property
    def gpu_indices(self) -> tuple[int, ...]:
        """The GPUs asked for by index (``gpus=[0, 2]`` or ``device='cuda:2'``); () for "next available"."""
        if isinstance(self.gpus, tuple):
            return self.gpus
        dev = str(self.device)
        return (int(dev[5:]),) if dev.startswith("cuda:") else ()

    @property
    def gpu_count(self) -> int:
        """How many GPUs the training uses when it runs on GPUs: one per process."""
        return len(self.gpus) if isinstance(self.gpus, tuple) else self.processes

    def lr_policy(self) -> LrPolicy:
        return LrPolicy(name=self.policy, base_lr=self.lr, gamma=self.gamma, step_size=self.step_size,
                        stepvalues=self.stepvalues, power=self.power)

    def augmentation(self) -> Augmentation:
        return Augmentation(flip=self.flip, quad_rot=self.quad_rot, noise=self.noise, hsv=self.hsv,
                            hsv_h=self.hsv_h, hsv_s=self.hsv_s, hsv_v=self.hsv_v)

    @property
    def processes(self) -> int:
        return self.nproc or (len(self.gpus) if isinstance(self.gpus, tuple) else self.gpus)

    @property
    def use_torchrun(self) -> bool:
        return self.launcher == "torchrun" or (self.launcher == "auto" and self.processes > 1)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for key in ("stepvalues", "gpus"):
            if isinstance(d[key], tuple):
                d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainOptions":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise OptionError(f"Unknown training option(s): {', '.join(unknown)}. Known: {', '.join(sorted(known))}",
                              field=unknown[0])
        d = dict(d)
        for key in ("stepvalues", "gpus"):
            if isinstance(d.get(key), list):
                d[key] = tuple(d[key])
        return cls(**d)


OPTION_NAMES = tuple(f.name for f in fields(TrainOptions))
