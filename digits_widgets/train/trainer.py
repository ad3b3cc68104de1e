"""The training loop: one function you can read in one sitting, the same in a thread and under torchrun.

    run_training = prepare (the data, the network as ``setup.py`` builds it for every caller, pretrained
    weights, freezing, the solver) + fit: (resume from checkpoint.pt | validate at epoch 0) → for each
    epoch: train batches, log the train loss ~8 times, validate every val_interval, snapshot every
    snapshot_interval, checkpoint → final snapshot.

Rank 0 writes every file; all ranks take the same decisions at the same steps: rank 0 alone looks at
control/ (abort, pause) and broadcasts what it found, and early stopping follows the validation loss,
which is all-reduced, so every rank sees the same number. On CUDA: autocast (bf16, or fp16 with a GradScaler),
pinned memory and non-blocking copies (in the loader).
"""
from __future__ import annotations

import contextlib
import math
import re
import time
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from ..data.loader import BatchLoader, SplitData, Transform, mean_tensor
from ..errors import NetworkError, TrainingError
from ..store.jobs import JobAborted
from . import records
from .training_job import TrainingJob
from .options import TrainOptions
from .pretrained import load_pretrained
from .setup import RunSetup, check_first_batch, setup_network
from .solver import default_weight_decay, iterations_per_epoch, make_optimizer, make_scheduler


@dataclass
class Control:
    """Abort and pause requests, read from the job (thread) or its control files (torchrun).

    The files are looked at no more than five times a second: a small network reaches this check every
    few milliseconds, and each look is a system call that lets other threads take the GIL.
    """
    job: TrainingJob
    rank: int = 0
    world: int = 1
    LOOK_EVERY = 0.2   # seconds
    _files: tuple[bool, bool] = field(default=(False, False), init=False, repr=False)
    _look_due: float = field(default=0.0, init=False, repr=False)

    def _flags(self) -> tuple[bool, bool]:
        now = time.monotonic()
        if now >= self._look_due:
            self._look_due = now + self.LOOK_EVERY
            self._files = (self.job.path("control", "abort").exists(), self.job.paused)
        return self.job.abort_requested or self._files[0], self._files[1]

    def check(self, device: torch.device, epoch: float = 0.0, step: int = 0) -> None:
        """Raise JobAborted on every rank together; wait here while paused. train.log says where training
        really stopped for a pause and where it went on (a step under way finishes first)."""
        waited = False
        while True:
            aborted, paused = self._flags() if self.rank == 0 else (False, False)
            if self.world > 1:
                t = torch.tensor([float(aborted), float(paused)], device=device)
                dist.broadcast(t, 0)
                aborted, paused = bool(t[0]), bool(t[1])
            if aborted:
                raise JobAborted(f"Model {self.job.name!r} was aborted")
            if paused != waited and self.rank == 0:   # the first wait, or the first step after one
                self.job.log(f"{'Paused' if paused else 'Unpaused'} at epoch {epoch:.2f} (step {step})", "train.log")
            if not paused:
                return
            waited = True
            time.sleep(0.2)


@dataclass
class Averager:
    """Sample-weighted means of the loss and summaries over a window; all-reduced across ranks when
    distributed. Values stay tensors until ``result`` (no ``.item()`` per step: on CUDA that would wait
    for the GPU after every batch)."""
    values: dict = field(default_factory=dict)
    counts: list = field(default_factory=list)

    def add(self, values: dict, n: int) -> None:
        for k, v in values.items():
            self.values.setdefault(k, []).append(v)
        self.counts.append(n)

    def result(self, world: int, device: torch.device) -> dict:
        keys = sorted(self.values)
        weights = torch.tensor(self.counts, dtype=torch.float64, device=device)
        sums = [torch.stack([v if isinstance(v, torch.Tensor) else torch.as_tensor(v, device=device)
                             for v in self.values[k]]).double().reshape(-1) @ weights for k in keys]
        t = torch.stack(sums + [weights.sum()]) if keys else weights.sum().reshape(1)
        if world > 1:
            dist.all_reduce(t)
        out = t.tolist()   # the one device-to-host copy
        total = max(out[-1], 1.0)
        self.values, self.counts = {}, []
        return {k: out[i] / total for i, k in enumerate(keys)}


def pick_device(choice: str, local_rank: int = 0) -> torch.device:
    if choice == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError(f"device={choice!r} but CUDA is not available here: use device='cpu' or 'auto'")
    return torch.device(choice)


def _scalars(out) -> dict:
    values = {"loss": out.loss.detach()}
    values.update({k: v.detach() for k, v in out.metrics.items()})
    return values


def schedule_change(opts: TrainOptions, step: int, before: int | None, now: int) -> str | None:
    """The warning for a resume whose learning-rate schedule spans other iterations than before.

    DIGITS' policies are in percent of training, so resuming with more epochs stretches them: the rate
    at the resume step jumps, later decays move. Said in train.log (and by the panel) rather than done
    silently; ``resume(keep_schedule=True)`` keeps the first run's iterations instead.
    """
    if before is None or before == now or opts.policy == "fixed":
        return None
    policy = opts.lr_policy()
    old, new = opts.lr * policy.factor(step, before), opts.lr * policy.factor(step, now)
    return (f"WARNING The learning-rate schedule ({opts.policy}) now spans {now} iterations instead of {before}: "
            f"its percentages stretch with the new number of epochs, so the rate at step {step} is {new:.4g} "
            f"instead of {old:.4g} and later decays move. To keep the original iterations, resume with "
            f"keep_schedule=True.")


@dataclass
class Run:
    """Everything ``fit`` needs, made by ``prepare``: the job's setup, the data, the model on its device,
    the solver and the intervals, in steps."""
    job: TrainingJob
    setup: RunSetup
    rank: int
    world: int
    device: torch.device
    control: Control
    train_data: SplitData
    train_loader: BatchLoader
    val_loader: BatchLoader | None
    model: torch.nn.Module          # the TrainableNet: what snapshots are taken of
    ddp: torch.nn.Module            # the same, wrapped in DistributedDataParallel when world > 1
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    autocast: object
    steps_per_epoch: int
    total_steps: int
    schedule_steps: int
    log_every: int
    val_every: int
    snap_every: int

    @property
    def main(self) -> bool:
        return self.rank == 0


def prepare(job: TrainingJob, rank: int = 0, world: int = 1, local_rank: int = 0) -> Run:
    """The job's data, network (``setup.setup_network``), pretrained weights, frozen layers and solver."""
    opts = job.options
    main = rank == 0
    device = pick_device(opts.device, local_rank)
    seed = opts.seed if opts.seed is not None else 0
    torch.manual_seed(seed)

    # ---- data --------------------------------------------------------------------------------
    ds = job.dataset.require_done()
    train_data = SplitData(ds.db_path("train"), ds.db_path("train", "labels"), ds.task)
    val_data = (SplitData(ds.db_path("val"), ds.db_path("val", "labels"), ds.task)
                if ds.count("val") and opts.val_interval > 0 else None)
    mean = mean_tensor(ds.mean() if opts.mean != "none" else None, opts.mean, train_data.shape)

    # ---- network -----------------------------------------------------------------------------
    definition = job.network_object if job.network_object is not None else job.network_source()
    try:  # the shapes as the training data has them
        maps = ds.label_shape if train_data.label_kind == "index_image" else None
        setup = setup_network(definition, train_data.shape, ds.nclasses, opts, name=job.name, label_shape=maps)
    except NetworkError as exc:  # say which data it was built for: the dataset decides the shapes
        headline = str(exc)[:len(str(exc)) - len(exc.traceback_text)].strip()
        labels = "class indices" if ds.task == "classification" else ds.label_shape
        raise NetworkError(f"{headline}\nThe dataset's images are (C, H, W) = {train_data.shape}"
                           f"{f' cropped to {opts.crop}' if opts.crop else ''}, its labels {labels}",
                           exc.traceback_text) from None
    transform = Transform(mean, setup.crop, opts.augmentation())
    batch = setup.batch_size
    if batch % world:
        raise TrainingError(f"batch_size {batch} must be divisible by the number of processes ({world})")
    train_loader = BatchLoader(train_data, batch // world, transform, train=opts.shuffle, seed=seed,
                               device=device, rank=rank, world_size=world)
    val_loader = (BatchLoader(val_data, max(1, setup.val_batch_size // world), transform, train=False,
                              seed=seed, device=device, rank=rank, world_size=world)
                  if val_data is not None else None)

    setup.module.to(device)
    if opts.pretrained:
        report = load_pretrained(setup.module, opts.pretrained)
        if main:
            job.log(report, "train.log")
        setup = setup.tuned()   # the network's fine_tune_hook, now that the pretrained weights are in
    model = setup.module.to(device)
    check_first_batch(setup.network, *next(iter(train_loader)))
    if opts.freeze:
        frozen = []
        for pname, p in model.inner.named_parameters():  # the user's own names, as in snapshots
            if re.search(opts.freeze, pname):
                p.requires_grad_(False)
                frozen.append(pname)
        if main:
            job.log(f"Frozen {len(frozen)} parameter tensors matching {opts.freeze!r}: {', '.join(frozen)}", "train.log")
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if world > 1 else model

    # ---- solver ------------------------------------------------------------------------------
    steps_per_epoch = iterations_per_epoch(train_loader.samples, batch // world, opts.batch_accumulation)
    groups = getattr(model.inner, "param_groups", None)  # Caffe: lr_mult / decay_mult per blob
    parameters = (groups(opts.lr, default_weight_decay(opts.solver, opts.lr, opts.weight_decay))
                  if callable(groups) else model.parameters())
    optimizer = make_optimizer(parameters, opts.solver, opts.lr, momentum=opts.momentum,
                               weight_decay=opts.weight_decay, rms_decay=opts.rms_decay)
    schedule_steps = opts.schedule_steps or steps_per_epoch * opts.epochs   # what the policy's percentages are of
    use_amp = opts.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    return Run(job=job, setup=setup, rank=rank, world=world, device=device, control=Control(job, rank, world),
               train_data=train_data, train_loader=train_loader, val_loader=val_loader, model=model, ddp=ddp,
               optimizer=optimizer, scheduler=make_scheduler(optimizer, opts.lr_policy(), schedule_steps),
               scaler=torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16),
               autocast=(lambda: torch.autocast("cuda", dtype=amp_dtype)) if use_amp else contextlib.nullcontext,
               steps_per_epoch=steps_per_epoch, total_steps=steps_per_epoch * opts.epochs,
               schedule_steps=schedule_steps,
               log_every=max(1, min(math.ceil(len(train_loader) / 8), math.ceil(5000 / batch))),
               val_every=max(1, round(opts.val_interval * steps_per_epoch)) if val_loader else 0,
               snap_every=max(1, round(opts.snapshot_interval * steps_per_epoch)) if opts.snapshot_interval > 0 else 0)


def run_training(job: TrainingJob, *, rank: int = 0, world: int = 1, local_rank: int = 0,
                 resume: bool = False) -> None:
    """Train (or resume) the job on this process: rank ``rank`` of ``world``, on GPU ``local_rank``."""
    fit(prepare(job, rank, world, local_rank), resume)


def fit(run: Run, resume: bool = False) -> None:
    """The loop: (resume from checkpoint.pt | validate at epoch 0) → epochs → final snapshot."""
    job, opts, main, world, device = run.job, run.job.options, run.main, run.world, run.device
    batch = run.setup.batch_size
    model, ddp, optimizer, scheduler, scaler, autocast = (run.model, run.ddp, run.optimizer, run.scheduler,
                                                         run.scaler, run.autocast)
    train_data, train_loader, val_loader, control = run.train_data, run.train_loader, run.val_loader, run.control
    steps_per_epoch, total_steps, schedule_steps = run.steps_per_epoch, run.total_steps, run.schedule_steps
    log_every, val_every, snap_every = run.log_every, run.val_every, run.snap_every

    step, start_epoch, best_val, stale = 0, 0, math.inf, 0
    first_schedule = schedule_steps   # the first run's, carried through resumes for keep_schedule
    if resume:
        ck = records.load(job.path(records.CHECKPOINT), map_location=device)
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        for group, rate, base in zip(optimizer.param_groups, scheduler.lr_lambdas, scheduler.base_lrs):
            group["lr"] = base * rate(scheduler.last_epoch)   # this run's schedule from the first step on
        scaler.load_state_dict(ck["scaler"])
        step, start_epoch, best_val, stale = ck["step"], ck["epoch"], ck["best_val"], ck["stale"]
        torch.set_rng_state(ck["rng"].cpu())
        first_schedule = ck.get("first_schedule_steps", ck.get("schedule_steps", schedule_steps))
        if main:
            records.truncate_metrics(job.path(records.METRICS), step)
            job.log(f"Resumed from checkpoint at epoch {start_epoch} (step {step})", "train.log")
            warning = schedule_change(opts, step, ck.get("schedule_steps"), schedule_steps)
            if warning:
                job.log(warning, "train.log")
    log = records.MetricsLog(job, opts.tensorboard) if main else None  # after the truncation above

    def validate(epoch: float) -> float:
        ddp.eval()
        avg = Averager()
        with torch.no_grad(), autocast():
            for x, y in val_loader:
                avg.add(_scalars(ddp(x, y)), len(x))
        ddp.train()
        result = avg.result(world, device)
        if main:
            log.write({"phase": "val", "epoch": epoch, "step": step, **result, "time": time.time()})
        return result["loss"]

    try:
        if main:
            job.log(f"Training {opts.epochs} epochs of {steps_per_epoch} steps, batch {batch} on {device} "
                    f"x{world}, {train_data.__len__()} train samples "
                    f"({'in memory' if train_data.in_memory else 'streamed'})", "train.log")
        if val_loader is not None and not resume:
            validate(0.0)
        ddp.train()
        for epoch in range(start_epoch, opts.epochs):
            train_loader.set_epoch(epoch)
            avg, seen, t0 = Averager(), 0, time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            last = len(train_loader) - 1
            for i, (x, y) in enumerate(train_loader):
                stepping = (i + 1) % opts.batch_accumulation == 0 or i == last
                sync = contextlib.nullcontext() if stepping or world == 1 else ddp.no_sync()
                with sync:
                    with autocast():
                        out = ddp(x, y)
                    loss = out.loss if opts.batch_accumulation == 1 else out.loss / opts.batch_accumulation
                    scaler.scale(loss).backward()
                avg.add(_scalars(out), len(x))
                seen += len(x)
                if not stepping:
                    continue
                lr = optimizer.param_groups[0]["lr"]  # the rate this step used
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                step += 1
                if step % log_every == 0 or i == last:
                    result = avg.result(world, device)
                    if not math.isfinite(result["loss"]):
                        raise TrainingError(f"Model diverged with loss = {result['loss']} : Try decreasing your "
                                            f"learning rate (now {opts.lr:g})")
                    rate = seen * world / max(time.perf_counter() - t0, 1e-9)
                    if main:
                        log.write({"phase": "train", "epoch": step / steps_per_epoch, "step": step, **result,
                                   "lr": lr, "samples_per_s": rate, "time": time.time()})
                        job.report_progress(step, total_steps, f"epoch {epoch + 1}/{opts.epochs}")
                    control.check(device, step / steps_per_epoch, step)
                if val_every and step % val_every == 0:
                    val_loss = validate(step / steps_per_epoch)
                    if val_loss < best_val:
                        best_val, stale = val_loss, 0
                        if main and opts.keep_best:
                            records.atomic_save({"model": model.state_dict(), "epoch": step / steps_per_epoch,
                                                 "val_loss": val_loss}, job.path(records.SNAPSHOTS, "best.pt"))
                    else:
                        stale += 1
                if main and snap_every and step % snap_every == 0:
                    records.save_snapshot(job.dir, model.state_dict(), step / steps_per_epoch, opts.keep_last)
            if main:  # ranks were seeded alike and draw alike, so rank 0's RNG state serves them all
                records.atomic_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                     "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                                     "epoch": epoch + 1, "step": step, "best_val": best_val, "stale": stale,
                                     "schedule_steps": schedule_steps, "first_schedule_steps": first_schedule,
                                     "rng": torch.get_rng_state()}, job.path(records.CHECKPOINT))
            if opts.early_stopping and stale >= opts.early_stopping:
                if main:
                    job.log(f"Early stopping: val loss has not improved for {stale} validations "
                            f"(best {best_val:.6g})", "train.log")
                break
        if main:
            snaps, final = records.list_snapshots(job.dir), step / steps_per_epoch
            if not snaps or snaps[-1][0] < final - 1e-9:  # the last epoch always has a snapshot
                records.save_snapshot(job.dir, model.state_dict(), final, opts.keep_last)
            job.report_progress(total_steps, total_steps, "done")
    finally:
        if log is not None:
            log.close()
