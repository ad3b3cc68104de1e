"""The torchrun entry point: ``torchrun ... -m digits_widgets.train.worker JOB_DIR [--resume]``.

Every rank runs the same trainer with DistributedDataParallel (gloo on CPU, NCCL on CUDA); rank 0 alone
writes the job's files and status, so the kernel can follow the job through its directory. The kernel's
scheduler picked the GPUs and passes them as CUDA_VISIBLE_DEVICES, so rank r uses ``cuda:r`` of those.
"""
from __future__ import annotations

import argparse
import os
from datetime import timedelta

import torch
import torch.distributed as dist

from ..store.jobs import ERROR, RUNNING, load_job
from .trainer import run_training


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("job_dir")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)

    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend, timeout=timedelta(minutes=10))
    rank, world = dist.get_rank(), dist.get_world_size()
    job = load_job(args.job_dir)
    main_rank = rank == 0
    if main_rank:
        job.set_status(RUNNING)
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "") if backend == "nccl" else ""
        job.log(f"torchrun worker: {world} processes, backend {backend}"
                + (f", GPUs {visible} (CUDA_VISIBLE_DEVICES, set by the scheduler)" if visible else ""), "train.log")
    try:   # the job's one ending path (store.job_runner), as in a thread; rank 0 alone writes it
        status = job.run_to_end(lambda j: run_training(j, rank=rank, world=world, local_rank=local_rank,
                                                       resume=args.resume), writes=main_rank)
    finally:
        dist.destroy_process_group()
    return 1 if status == ERROR else 0


if __name__ == "__main__":
    raise SystemExit(main())
