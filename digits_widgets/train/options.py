"""Training options with DIGITS' names and defaults, checked once, stored in job.json.

The same names are the keyword arguments of ``dw.train`` and, in kebab case, the flags of the
``%%digits_model`` cell magic (``batch_size`` → ``--batch-size``). Each field also carries its DIGITS
label, help text, group, choices and bounds (:func:`.option_schema.opt`): the one description of the
options, from which the magic builds its flags and help and the model form its fields
(:func:`option_schema` lists them).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

from ..data.augment import FLIPS, QUAD_ROTATIONS, Augmentation
from ..errors import OptionError
from .option_schema import DATA, HARDWARE, POLICY, PRETRAINED, SNAPSHOTS, SOLVER, Option, opt, schema
from .solver import POLICIES, SOLVERS, LrPolicy

DEVICES_HELP = "auto, cpu, cuda, cuda:N or cuda:I,J (the GPUs I and J, as gpus=[I, J])"
# DIGITS' shown text for each choice (the values are the solver's and the augmentation's own)
POLICY_CHOICES = list(zip(("Fixed", "Step Down", "Step Down (arbitrary steps)", "Exponential Decay",
                           "Inverse Decay", "Polynomial Decay", "Sigmoid Decay"), POLICIES))
MEAN_CHOICES = [("None", "none"), ("Image", "image"), ("Pixel", "pixel")]
FLIP_CHOICES = list(zip(("None", "Horizontal", "Vertical", "Horizontal and/or Vertical"), FLIPS))
QUAD_ROT_CHOICES = list(zip(("None", "0, 90 or 270 degrees", "0 or 180 degrees", "0, 90, 180 or 270 degrees"),
                            QUAD_ROTATIONS))


@dataclass
class TrainOptions:
    """The options of one training; each field's label, help, group, choices and bounds are its metadata
    (:mod:`.option_schema`), which the ``%%digits_model`` flags and the model form are built from."""

    epochs: int = opt(30, label="Training epochs", group=SOLVER, min=1,
                      help="How many passes through the training data.")
    lr: float = opt(0.01, label="Base Learning Rate", group=SOLVER, min=0,
                    help="Affects how quickly the network learns. If you are getting NaN for your loss, you "
                         "probably need to lower this value.")
    solver: str = opt("sgd", label="Solver type", group=SOLVER, help="What type of solver will be used.",
                      choices=[(name.upper(), name) for name in SOLVERS])
    policy: str = opt("step", label="Policy", group=POLICY, choices=POLICY_CHOICES,
                      help="How the learning rate changes over training (DIGITS expresses every policy in percent "
                           "of training).")
    # the policy parameters; None → DIGITS' default for the policy (POLICY_DEFAULTS)
    gamma: float | None = opt(None, label="Gamma", group=POLICY, help="The policy's decay factor.")
    step_size: float | None = opt(None, label="Step Size", group=POLICY, help="Percent of training between steps.")
    stepvalues: tuple[float, ...] | str | None = opt(
        None, label="Step Values", group=POLICY, metavar="P1,P2",
        help="Percents of training, comma separated (e.g. 50,85).")
    power: float | None = opt(None, label="Power", group=POLICY, help="The policy's exponent.")
    batch_size: int | None = opt(None, label="Batch size", group=SOLVER, min=1,
                                 help="Images per batch; blank: the network's own, else 16.")
    val_batch_size: int | None = opt(None, label="Validation batch size", group=SOLVER, min=1, form=False,
                                     help="Validation batch size; unset: the training batch size.")
    batch_accumulation: int = opt(1, label="Batch Accumulation", group=SOLVER, min=1,
                                  help="Accumulate gradients over this many batches before each solver step.")
    snapshot_interval: float = opt(1.0, label="Snapshot interval (in epochs)", group=SOLVER, min=0,
                                   help="Epochs between snapshots; 0 keeps only the final one.")
    val_interval: float = opt(1.0, label="Validation interval (in epochs)", group=SOLVER, min=0,
                              help="Epochs between validations; 0 never validates.")
    seed: int | None = opt(None, label="Random seed", group=SOLVER, min=0,
                           help="If provided, sets the random seed for repeatable runs.")
    mean: str = opt("image", label="Subtract Mean", group=DATA, choices=MEAN_CHOICES,
                    help="Subtract the training mean image, or its per-channel pixel, from every image.")
    crop: int | None = opt(None, label="Crop Size", group=DATA, min=1,
                           help="Random square crop in training, centred otherwise.")
    flip: str = opt("none", label="Flipping", group=DATA, choices=FLIP_CHOICES,
                    help="Randomly flip each training image.")
    quad_rot: str = opt("none", label="Quadrilateral Rotation", group=DATA, choices=QUAD_ROT_CHOICES,
                        help="Randomly rotate each training image by multiples of 90 degrees.")
    noise: float = opt(0.0, label="Noise (stddev)", group=DATA, min=0, max=1,
                       help="Gaussian noise, fraction of the range (suggested 0.03).")
    hsv: bool = opt(False, label="HSV Shifting", group=DATA, help="Random hue, saturation and value shifts.")
    hsv_h: float = opt(0.02, label="Hue", group=DATA, min=0, max=0.5, help="Standard deviation of the hue shift.")
    hsv_s: float = opt(0.04, label="Saturation", group=DATA, min=0, max=0.5,
                       help="Standard deviation of the saturation shift.")
    hsv_v: float = opt(0.06, label="Value", group=DATA, min=0, max=0.5, help="Standard deviation of the value shift.")
    momentum: float = opt(0.9, label="Momentum", group=SOLVER, form=False, help="Momentum (sgd, nesterov, rmsprop).")
    weight_decay: float | None = opt(None, label="Weight decay", group=SOLVER, form=False,
                                     help="Weight decay; unset: lr / 100, as DIGITS.")
    rms_decay: float = opt(0.99, label="RMS decay value", group=SOLVER, min=0, max=1,
                           help="RMSprop's decay of the squared gradient.")
    shuffle: bool = opt(True, label="Shuffle Train Data", group=SOLVER, help="Shuffle the training data each epoch.")
    device: str = opt("auto", label="Device", group=HARDWARE,
                      help="auto: the first GPU when there is one, else the CPU.",
                      flag_help="Or cpu, cuda, cuda:N or cuda:I,J (the GPUs I and J, as --gpus I,J).")
    gpus: int | tuple[int, ...] = opt(   # more than 1 → torchrun with DistributedDataParallel
        1, label="GPU count", group=HARDWARE, min=1, metavar="N|I,J",
        help="Use this many GPUs (next available); more than 1 trains under torchrun with DistributedDataParallel.",
        flag_help="Or which: 0,2 (one GPU by index: 2, with the comma). The job waits until they are free.")
    share_gpus: bool = opt(False, label="Share the GPUs", group=HARDWARE,
                           help="Run beside other trainings that share (default: one training per GPU).")
    launcher: str = opt("auto", label="Launcher", group=HARDWARE, form=False,
                        choices=[("auto", "auto"), ("thread", "thread"), ("torchrun", "torchrun")],
                        help="auto (a thread, or torchrun when --gpus/--nproc > 1), thread or torchrun.")
    nproc: int | None = opt(None, label="Processes", group=HARDWARE, min=1, form=False,
                            help="torchrun processes; unset: --gpus.")
    amp: bool = opt(True, label="Mixed precision", group=HARDWARE, form=False, help="Use mixed precision on CUDA.")
    pretrained: str | None = opt(None, label="Pretrained model", group=PRETRAINED, metavar="JOB_OR_PATH",
                                 help="A snapshot file, or JOB:EPOCH of a model job (fine-tuning).")
    freeze: str | None = opt(None, label="Freeze layers (regex)", group=PRETRAINED, metavar="REGEX",
                             help="Parameters whose names match are not trained, e.g. ^(conv|fc1).")
    keep_best: bool = opt(True, label="Keep the best snapshot", group=SNAPSHOTS, form=False,
                          help="Keep snapshots/best.pt (lowest validation loss).")
    keep_last: int | None = opt(None, label="Keep last snapshots", group=SNAPSHOTS, min=1, form=False,
                                help="Keep only the last K epoch snapshots; unset: keep all.")
    early_stopping: int | None = opt(None, label="Early stopping", group=SNAPSHOTS, min=1, form=False,
                                     help="Stop after this many validations without a lower loss; unset: never.")
    tensorboard: bool = opt(True, label="TensorBoard", group=SNAPSHOTS, form=False,
                            help="Write TensorBoard events.")
    params: dict = opt(label="Network parameters", group=PRETRAINED, factory=dict, form=False, metavar="KEY=VALUE",
                       help="Values for a Torch7-style network(params).",
                       flag_help="One KEY=VALUE per flag, repeatable; numbers are parsed as int or float.")
    schedule_steps: int | None = opt(   # resume(keep_schedule=True) keeps the first run's
        None, label="Schedule steps", group=POLICY, min=1, form=False,
        help="Iterations the policy's percentages span; unset: the whole training.")

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
        """Refuse a value outside its schema's choices or bounds (the ones the model form enforces as the user
        types, read from each field's metadata), then what the metadata cannot say (GPUs, device, regex)."""
        for o in schema(type(self)):
            value = getattr(self, o.name)
            if o.choices and value not in o.values:
                raise OptionError(f"{o.name} must be one of {', '.join(map(str, o.values))} (got {value!r})",
                                  field=o.name)
            if value is None or o.name == "gpus":   # None: the policy's or the network's default; gpus below
                continue
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if o.kind in (int, float) and not number:
                raise OptionError(f"{o.name} must be a number (got {value!r})", field=o.name)
            if not number:
                continue
            if o.min is not None and value < o.min:
                raise OptionError(f"{o.name} must be at least {o.min:g} (got {value!r})", field=o.name)
            if o.max is not None and value > o.max:
                raise OptionError(f"{o.name} must be at most {o.max:g} (got {value!r})", field=o.name)
        if not self._gpus_ok():
            raise OptionError(f"gpus must be a count of at least 1 or a list of distinct GPU indices "
                              f"(got {self.gpus!r})", field="gpus")
        try:
            self.lr_policy()  # checks the policy parameters, under the solver's own names
        except OptionError as exc:
            raise OptionError(str(exc), field={"base_lr": "lr", "name": "policy"}.get(exc.field, exc.field)) from None
        self.augmentation()
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


def option_schema() -> tuple[Option, ...]:
    """Every training option with its label, help, group, choices and bounds, in field order (read from
    this module's ``TrainOptions`` at each call, so the magic and the form follow the class)."""
    return schema(TrainOptions)
