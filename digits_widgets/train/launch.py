"""Starting training: in a thread of this kernel, or under torchrun for several GPUs or machines.

``dw.train(dataset, network, **options)`` creates the model job (network.py, options in job.json) and
returns at once. With one process the trainer runs in a daemon thread here; with ``gpus``/``nproc`` > 1
(or ``launcher='torchrun'``) it runs ``torchrun -m digits_widgets.train.worker JOB_DIR`` and a follower
thread turns the job's metrics file into the same events the thread runner emits.

Every training goes through the kernel's scheduler (``store/scheduler.py``): it asks for its GPUs (by
index with ``gpus=[0, 2]`` / ``device='cuda:2'``, else the next free ones) or, without GPUs, for a CPU
training slot, and stays Waiting until they are free. A thread run uses ``cuda:<its GPU>``; a torchrun
sees only its GPUs, through ``CUDA_VISIBLE_DEVICES``.

Several machines: run on each node, with the job directory on shared storage,
``torchrun --nnodes=2 --node_rank=R --nproc_per_node=G --rdzv_backend=c10d --rdzv_endpoint=HOST:29400
-m digits_widgets.train.worker /shared/digits-jobs/JOB_ID``.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from torch import nn

from ..data.dataset import DatasetJob
from ..errors import JobError, OptionError
from ..store import waiting
from ..store import scheduler
from ..store.feed import DirectoryFeed
from ..store.tail import last_lines
from ..store.jobs import ACTIVE, DONE, ERROR, WAITING, create_job, find_job
from . import records
from .training_job import TrainingJob
from .options import TrainOptions


def _network_text(network) -> tuple[str, object | None]:
    """(text for network.py, the object when the network is not text)."""
    if isinstance(network, str):
        return network, None
    label = type(network).__name__ if isinstance(network, nn.Module) else getattr(network, "__name__", repr(network))
    return (f"# This model was given as a Python object ({label}), not as source text.\n"
            "# After a kernel restart, resume it with job.resume(network=...).\n"), network


def train(dataset: "str | DatasetJob", network, name: str | None = None, *, start: bool = True,
          group: str = "", **options) -> TrainingJob:
    """Create a model job on ``dataset`` and start training it in the background; returns the job, a
    ``dw.Model`` (the class registered for models).

    ``network``: source text (a ``%%digits_model`` cell, ``dw.zoo.source('lenet')``), a Tower subclass,
    a torch7-style function, an ``nn.Module`` or an ``(nn.Module, loss)`` pair. ``options``: see
    ``TrainOptions`` (DIGITS' names and defaults). ``group``: DIGITS' optional group name.
    """
    opts = TrainOptions(**options)
    scheduler.default().check(resource_request(opts))   # a GPU that does not exist: refused before any job
    ds = find_job(dataset, kind="dataset")
    text, obj = _network_text(network)
    if obj is not None and opts.use_torchrun:
        raise OptionError("torchrun runs the network in other processes: give it as source text", field="launcher")
    job = create_job("model", ds.task or ds.type, name or f"{ds.name} model",
                     {"options": opts.to_dict(), "dataset": ds.id}, parents=[ds.id], group=group)
    job.path("network.py").write_text(text)
    job.network_object = obj
    return start_job(job) if start else job


def _cuda_count() -> int:
    """The GPUs torch sees, asked once, at the first training (the store never imports torch)."""
    import torch
    return torch.cuda.device_count()


def resource_request(opts: TrainOptions) -> scheduler.Request:
    """What a training asks the scheduler for: its GPUs (by index, else a count of the next free ones),
    or a CPU training slot on ``device='cpu'`` and on a machine without GPUs (as DIGITS did)."""
    gpus = scheduler.default().gpu_count(_cuda_count)
    if opts.device == "cpu" or gpus == 0:
        return scheduler.Request(scheduler.CPU)
    return scheduler.Request(scheduler.GPU, gpus=opts.gpu_indices, count=opts.gpu_count, share=opts.share_gpus)


def visible_devices(gpus: tuple[int, ...], environ: "dict[str, str] | None" = None) -> str:
    """CUDA_VISIBLE_DEVICES for a launch on ``gpus`` (this kernel's numbering, which is relative to the
    kernel's own CUDA_VISIBLE_DEVICES when that is set, so the devices are mapped through it)."""
    env = os.environ if environ is None else environ
    mine = [d.strip() for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return ",".join(mine[i] if i < len(mine) else str(i) for i in gpus) if mine else ",".join(map(str, gpus))


def start_job(job: TrainingJob, resume: bool = False) -> TrainingJob:
    """Run (or resume) the job with the launcher its options ask for, once the scheduler grants it."""
    for flag in ("abort", "pause"):
        job.path("control", flag).unlink(missing_ok=True)
    request = resource_request(job.options)
    if job.options.use_torchrun:
        return _start_torchrun(job, resume, request)
    from .trainer import run_training

    def work(j: TrainingJob) -> None:
        ds = j.dataset
        if ds.is_running():  # a model may be queued on a dataset that is still being created
            j.log(f"Waiting for dataset {ds.name!r} to finish", "train.log")
            ds.wait()
        gpus = j.grant.gpus if j.grant is not None else ()
        if gpus and j.options.device != "cpu":
            import torch
            if torch.cuda.is_available():
                torch.cuda.set_device(gpus[0])   # this thread's "cuda" is its GPU, for device='cuda' too
            run_training(j, resume=resume, local_rank=gpus[0])   # device auto → cuda:<its GPU>
        else:
            run_training(j, resume=resume)
    return job.start(work, request=request)


def resume(job: TrainingJob, network=None, keep_schedule: bool = False, **changes) -> TrainingJob:
    """``job.resume()``: continue from checkpoint.pt (after an abort, a crash or a kernel restart), exactly.
    The run goes through the scheduler like a new one: it waits, Waiting, while its GPUs or CPU slot are busy.

    ``changes`` are training options (``epochs=60``). The learning-rate policy is in percent of
    training, so more epochs stretch it (train.log and the panel say so); ``keep_schedule=True`` keeps
    the first run's iterations, and past them the rate stays where the schedule ended. A job made with
    ``start=False`` starts here from scratch.
    """
    if job.is_running() and job.status != "Initialized":
        raise JobError(f"Model {job.name!r} is still {job.status}")
    if keep_schedule:
        changes["schedule_steps"] = _first_schedule_steps(job)
    if network is not None:
        job.network_object = network
    if changes:
        opts = job.options.to_dict()
        opts.update(changes)
        job.record["params"]["options"] = TrainOptions.from_dict(opts).to_dict()
        job.save()
    return start_job(job, resume=job.path(records.CHECKPOINT).exists())


def _first_schedule_steps(job: TrainingJob) -> int:
    """The iterations the first run's learning-rate schedule spanned, from the checkpoint."""
    if not job.path(records.CHECKPOINT).exists():
        raise JobError(f"Model {job.name!r} has no checkpoint, so there is no schedule to keep: "
                       "resume without keep_schedule")
    ck = records.load(job.path(records.CHECKPOINT), map_location="cpu")
    kept = ck.get("first_schedule_steps", ck.get("schedule_steps"))
    if kept is None:
        raise JobError(f"Model {job.name!r}'s checkpoint predates schedule tracking: "
                       "resume without keep_schedule")
    return int(kept)


def _start_torchrun(job: TrainingJob, resume: bool, request: scheduler.Request) -> TrainingJob:
    """Queue the launch; a thread starts torchrun when the scheduler grants it, then follows the job."""
    job._abort.clear()
    job.grant, job.process = None, None
    job._ticket = scheduler.default().submit(job.id, request)
    job.set_status(WAITING)
    job._watcher = threading.Thread(target=_launch_when_granted, args=(job, resume), daemon=True,
                                    name=f"digits-follow-{job.id}")
    job._watcher.start()
    return job


def _launch_when_granted(job: TrainingJob, resume: bool) -> None:
    if not job.wait_for_resources():
        return   # aborted while queued: Aborted is written, nothing was started
    opts = job.options
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={opts.processes}",
           "-m", "digits_widgets.train.worker", str(job.dir)] + (["--resume"] if resume else [])
    env = dict(os.environ, DIGITS_JOBS_DIR=str(job.dir.parent), PYTHONUNBUFFERED="1")
    if job.grant.gpus:
        env["CUDA_VISIBLE_DEVICES"] = visible_devices(job.grant.gpus)
    try:
        with open(job.path("torchrun.log"), "a") as out:
            job.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                           start_new_session=True)
    except OSError as exc:
        job.end(ERROR, f"Cannot start torchrun ({exc.strerror or exc}): {' '.join(cmd)}")
        return
    with job._lock:
        job.record["torchrun_pid"] = job.process.pid   # which launch the follower below speaks for
        job.save()
    gpus = f" on GPUs {env['CUDA_VISIBLE_DEVICES']}" if job.grant.gpus else ""
    job.log(f"Started torchrun ({opts.processes} processes{gpus}): {' '.join(cmd)}", "train.log")
    follow(job)


def follow(job: TrainingJob, poll: float = 0.25) -> None:
    """Emit, for this kernel's subscribers, what the torchrun workers write (``store.feed.DirectoryFeed``),
    until torchrun ends; then record how it ended if its workers could not."""
    directory = DirectoryFeed(job, records.METRICS)
    while True:
        proc_done = job.process is not None and job.process.poll() is not None
        for event in directory.poll():
            job.emit(event)
        if proc_done or (job.process is None and job.status not in ACTIVE):  # status: a dead owner is Aborted
            break
        time.sleep(poll)
    with job._lock:
        job.reload()
        if job.process is None or job.record.get("torchrun_pid") != job.process.pid:
            return   # a newer launch (a resume) of the job speaks for it now
        if job.record["status_history"][-1][0] in ACTIVE:   # its workers could not write how it ended
            code = job.process.returncode
            tail = "\n".join(last_lines(job.path("torchrun.log"), 20))
            job.end(ERROR if code else DONE, f"torchrun exited with code {code}\n{tail}" if code else None)
        else:
            job.release_resources()


def wait_for_metrics(job: TrainingJob, count: int, phase: str = "val", timeout: float = 60.0) -> list[dict]:
    """Block until the job has logged ``count`` records of ``phase`` (handy in notebooks and tests)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        rows = job.metrics(phase)
        if len(rows) >= count or not job.is_running():
            return rows
        waiting.pumped_sleep(0.1)   # on the main thread the UI pump keeps the charts moving meanwhile
    return job.metrics(phase)
