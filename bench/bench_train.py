"""Trainer throughput against a bare PyTorch loop, per tutorial network, measured in the same run.

    python bench/bench_train.py [--quick] [--rounds 3] [--only NAME ...]

For each network: a dataset is made on disk (LMDB, as a user would), the trainer runs through ``dw.train``
in its background thread with metrics, snapshots (every epoch), checkpoints and an event subscriber
drained on the main thread (what the UI pump does). Validation is off in both, since the bare loop has
none. The trainer's rate is taken from its own metrics records (samples between the first and last train
record / time between them), so dataset decoding and network building at start-up are not counted.

The bare loop trains the same network (same builder, same optimizer, same batch size) on the same
samples held in memory as tensors (already transformed), with nothing else: forward, backward, step.
It runs before and after the trainer, in a thread of its own as the trainer does, for as many steps as
the trainer's measured window. One round is bare, trainer, bare; the ratio of a round is the trainer's
rate over the mean of its two bare rates, and the table shows the median over ``--rounds`` rounds
(default 3) with the lowest and highest. Target: >= 0.95. Run it on a quiet machine: on 2 shared cores a
single short measurement of the same loop swings by +-30%, which is why rounds and medians.
"""
from __future__ import annotations

import argparse
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import digits_widgets as dw  # noqa: E402
from digits_widgets.data import tutorial_data  # noqa: E402
from digits_widgets.data.loader import SplitData, Transform, mean_tensor  # noqa: E402
from digits_widgets.nets import zoo  # noqa: E402
from digits_widgets.nets.network import build_network  # noqa: E402
from digits_widgets.train.solver import make_optimizer  # noqa: E402


def make_datasets(work: Path, quick: bool) -> dict[str, dw.DatasetJob]:
    k = 4 if quick else 1
    tri = dw.generate_triangles(str(work / "tri"), count=1600 // k, size=32, grid=2, seed=0)
    pairs = tutorial_data.write_degraded_pairs(work / "pairs", count=400 // k, size=32, seed=0)
    tutorial_data.write_digit_folders(work / "digits")
    jobs = {
        "grads32": dw.datasets.gradients("grads32", train_count=20000 // k, val_count=0, image_size=32, seed=0),
        "grads28": dw.datasets.gradients("grads28", train_count=10000 // k, val_count=0, image_size=28, seed=0),
        "digits": dw.datasets.classification("digits", str(work / "digits"), image_size=28, channels=1,
                                             pct_val=0, seed=0),
        "triangles": dw.datasets.processing("triangles", tri["input"], tri["target"], val_percent=0, seed=0),
        "pairs": dw.datasets.processing("pairs", pairs["source"], pairs["target"], val_percent=0, seed=0),
    }
    for job in jobs.values():
        job.wait()
    return jobs


# network → (dataset, batch size, epochs, solver, lr, mean)
CASES = {
    "gradients_regression": ("grads32", 64, 8, "sgd", 0.01, "image"),
    "autoencoder": ("grads28", 64, 6, "sgd", 0.001, "image"),   # smooth gradients diverge at 0.01
    "lenet": ("digits", 64, 6, "sgd", 0.01, "image"),
    "segmentation_fcn": ("triangles", 16, 2, "adam", 0.001, "pixel"),
    "srcnn": ("pairs", 16, 2, "adam", 0.0001, "none"),
}


def in_thread(fn, *args):
    """Run ``fn`` in a fresh thread, as the trainer runs, so both see the same threading conditions."""
    out: list = []
    t = threading.Thread(target=lambda: out.append(fn(*args)))
    t.start()
    t.join()
    return out[0]


def bare_rate(ds: dw.DatasetJob, name: str, batch: int, solver: str, lr: float, mean: str, steps: int) -> float:
    data = SplitData(ds.db_path("train"), ds.db_path("train", "labels"), ds.task)
    x, y = data.batch(torch.arange(len(data)))
    x, y = Transform(mean_tensor(ds.mean(), mean, data.shape))(x, y, train=False)
    torch.manual_seed(0)
    net = build_network(zoo.source(name), tuple(x.shape[1:]), ds.nclasses).module
    opt = make_optimizer(net.parameters(), solver, lr)
    net.train()
    g = torch.Generator().manual_seed(0)
    warmup = 5  # first steps pay one-off costs (lazy imports, allocator); the trainer's rate skips them too
    done, t0 = -warmup, time.perf_counter()
    while done < steps:
        perm = torch.randperm(len(x), generator=g)
        for s in range(0, len(x) - batch + 1, batch):
            idx = perm[s:s + batch]
            out = net(x[idx], y[idx] if y is not None else None)
            out.loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            done += 1
            if done == 0:
                t0 = time.perf_counter()
            if done >= steps:
                break
    return steps * batch / (time.perf_counter() - t0)


def trainer_rate(ds: dw.DatasetJob, name: str, batch: int, epochs: int, solver: str, lr: float,
                 mean: str) -> tuple[float, int]:
    job = dw.train(ds, zoo.source(name), f"bench {name}", epochs=epochs, batch_size=batch, solver=solver, lr=lr,
                   mean=mean, val_interval=0, snapshot_interval=1, seed=0)
    q = job.subscribe()
    events = 0
    while job.is_running():  # what the UI pump does: drain the queue on the main thread ~5 times a second
        time.sleep(0.2)
        while True:
            try:
                q.get_nowait()
                events += 1
            except queue.Empty:
                break
    job.wait()
    rows = job.metrics("train")
    first, last = rows[0], rows[-1]
    samples = (last["step"] - first["step"]) * batch
    return samples / (last["time"] - first["time"]), last["step"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller datasets (a smoke run, noisier ratios)")
    parser.add_argument("--only", nargs="*", choices=sorted(CASES))
    parser.add_argument("--rounds", type=int, default=3, help="bare/trainer/bare rounds per network (median)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dw-bench-train-"))
    os.environ["DIGITS_JOBS_DIR"] = str(work / "jobs")
    try:
        datasets = make_datasets(work, args.quick)
        print(f"{'network':24s} {'batch':>5s} {'trainer/s':>10s} {'bare/s':>10s} {'ratio':>6s}  (min-max of "
              f"{args.rounds} rounds)")
        for name in args.only or CASES:
            ds_name, batch, epochs, solver, lr, mean = CASES[name]
            ds = datasets[ds_name]
            steps = max(20, epochs * ds.count("train") // batch * 7 // 8)   # the trainer's measured window
            rounds = []
            for _ in range(args.rounds):
                before = in_thread(bare_rate, ds, name, batch, solver, lr, mean, steps)
                ours, _ = trainer_rate(ds, name, batch, epochs, solver, lr, mean)
                after = in_thread(bare_rate, ds, name, batch, solver, lr, mean, steps)
                rounds.append((ours / ((before + after) / 2), ours, (before + after) / 2))
            ratio, ours, bare = sorted(rounds)[len(rounds) // 2]
            low, high = min(r[0] for r in rounds), max(r[0] for r in rounds)
            print(f"{name:24s} {batch:5d} {ours:10,.0f} {bare:10,.0f} {ratio:6.2f}  ({low:.2f}-{high:.2f})",
                  flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
