"""Starting training: in a thread of this kernel, or under torchrun for several GPUs or machines.

``dw.train(dataset, network, **options)`` creates the model job (network.py, options in job.json) and
returns at once. With one process the trainer runs in a daemon thread here; with ``gpus``/``nproc`` > 1
(or ``launcher='torchrun'``) it runs ``torchrun -m digits_widgets.train.worker JOB_DIR`` and a follower
thread turns the job's metrics file into the same events the thread runner emits.

Several machines: run on each node, with the job directory on shared storage,
``torchrun --nnodes=2 --node_rank=R --nproc_per_node=G --rdzv_backend=c10d --rdzv_endpoint=HOST:29400
-m digits_widgets.train.worker /shared/digits-jobs/JOB_ID``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from torch import nn

from ..data.dataset import DatasetJob
from ..errors import OptionError
from ..store import waiting
from ..store.jobs import ACTIVE, DONE, ERROR, create_job, find_job
from . import records
from .model_job import ModelJob
from .options import TrainOptions


def _network_text(network) -> tuple[str, object | None]:
    """(text for network.py, the object when the network is not text)."""
    if isinstance(network, str):
        return network, None
    label = type(network).__name__ if isinstance(network, nn.Module) else getattr(network, "__name__", repr(network))
    return (f"# This model was given as a Python object ({label}), not as source text.\n"
            "# After a kernel restart, resume it with job.resume(network=...).\n"), network


def train(dataset: "str | DatasetJob", network, name: str | None = None, *, start: bool = True,
          group: str = "", **options) -> ModelJob:
    """Create a model job on ``dataset`` and start training it in the background.

    ``network``: source text (a ``%%digits_model`` cell, ``dw.zoo.source('lenet')``), a Tower subclass,
    a torch7-style function, an ``nn.Module`` or an ``(nn.Module, loss)`` pair. ``options``: see
    ``TrainOptions`` (DIGITS' names and defaults). ``group``: DIGITS' optional group name.
    """
    opts = TrainOptions(**options)
    ds = find_job(dataset, kind="dataset")
    text, obj = _network_text(network)
    if obj is not None and opts.use_torchrun:
        raise OptionError("torchrun runs the network in other processes: give it as source text", field="launcher")
    job = create_job("model", ds.task or ds.type, name or f"{ds.name} model",
                     {"options": opts.to_dict(), "dataset": ds.id}, parents=[ds.id], group=group)
    job.path("network.py").write_text(text)
    job.network_object = obj
    return start_job(job) if start else job


def start_job(job: ModelJob, resume: bool = False) -> ModelJob:
    """Run (or resume) the job with the launcher its options ask for."""
    for flag in ("abort", "pause"):
        job.path("control", flag).unlink(missing_ok=True)
    if job.options.use_torchrun:
        return _start_torchrun(job, resume)
    from .trainer import run_training

    def work(j: ModelJob) -> None:
        ds = j.dataset
        if ds.is_running():  # a model may be queued on a dataset that is still being created
            j.log(f"Waiting for dataset {ds.name!r} to finish", "train.log")
            ds.wait()
        run_training(j, resume=resume)
    return job.start(work)


start = start_job


def _start_torchrun(job: ModelJob, resume: bool) -> ModelJob:
    opts = job.options
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={opts.processes}",
           "-m", "digits_widgets.train.worker", str(job.dir)] + (["--resume"] if resume else [])
    env = dict(os.environ, DIGITS_JOBS_DIR=str(job.dir.parent), PYTHONUNBUFFERED="1")
    job.set_status("Waiting")
    with open(job.path("torchrun.log"), "a") as out:
        job.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                       start_new_session=True)
    with job._lock:
        job.record["torchrun_pid"] = job.process.pid   # which launch the follower below speaks for
        job.save()
    job.log(f"Started torchrun ({opts.processes} processes): {' '.join(cmd)}", "train.log")
    job._watcher = threading.Thread(target=follow, args=(job,), daemon=True, name=f"digits-follow-{job.id}")
    job._watcher.start()
    return job


def follow(job: ModelJob, poll: float = 0.25) -> None:
    """Turn what another process writes (metrics.jsonl, job.json) into events for this kernel."""
    metrics_path = job.path(records.METRICS)
    offset, last_status = 0, None
    while True:
        proc_done = job.process is not None and job.process.poll() is not None
        try:
            job.reload()
        except Exception:  # noqa: BLE001 - a job.json being replaced; try again next tick
            pass
        status = job.record["status_history"][-1][0]
        if status != last_status:
            job.emit({"type": "status", "status": status, "error": job.error})
            last_status = status
        if metrics_path.exists():
            with open(metrics_path) as f:
                f.seek(offset)
                while (line := f.readline()).endswith("\n"):
                    offset = f.tell()
                    try:
                        job.emit({"type": "metric", **json.loads(line)})
                    except json.JSONDecodeError:
                        continue
        if job.progress:
            job.emit({"type": "progress", **job.progress})
        if proc_done or (job.process is None and job.status not in ACTIVE):  # status: a dead owner is Aborted
            break
        time.sleep(poll)
    with job._lock:
        job.reload()
        ours = job.process is not None and job.record.get("torchrun_pid") == job.process.pid
        if ours and job.record["status_history"][-1][0] in ACTIVE:   # not a newer launch (a resume) of the job
            _finish_torchrun(job)


def _finish_torchrun(job: ModelJob) -> None:
    """Record how torchrun ended when its workers could not (a crash, kill -9)."""
    code = job.process.returncode
    tail = _tail(job.path("torchrun.log"))
    job.set_status(ERROR if code else DONE, error=f"torchrun exited with code {code}\n{tail}" if code else None)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_for_metrics(job: ModelJob, count: int, phase: str = "val", timeout: float = 60.0) -> list[dict]:
    """Block until the job has logged ``count`` records of ``phase`` (handy in notebooks and tests)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        rows = job.metrics(phase)
        if len(rows) >= count or not job.is_running():
            return rows
        waiting.pumped_sleep(0.1)   # on the main thread the UI pump keeps the charts moving meanwhile
    return job.metrics(phase)
