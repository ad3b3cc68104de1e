"""Widget traffic of a training panel over a long fast run: messages per second and bytes per second.

    python bench/bench_widgets.py [--minutes 30] [--rate 500] [--budget 32]

What runs: a real ``TrainingPanel`` fed by a real ``Pump`` through the job's own event queues. The job is
synthetic (``create_job`` + ``job.emit``, no network) so that a long run costs seconds: a fast trainer
logs one train metric and one progress event per iteration (``--rate`` iterations a second), a
validation metric and a log line per epoch (``--epoch`` iterations). The pump runs in manual mode on a
simulated clock: each round advances it by ``Pump.interval`` (0.2 s, what the kernel's timer does at
most) and calls ``tick()`` once, so "per second" means per simulated second, i.e. per 5 rounds. The
clock is the pump's (``Pump(clock=...)``), so the panel's byte budget and its once-a-second label see
the same time.

How it is measured: ipywidgets 8 opens one comm per widget through ``comm.create_comm``; ``CommRecorder``
replaces that factory with one whose comms record every ``comm_msg`` they would publish: its size is the
JSON of the message data plus the lengths of its binary buffers (bqplot's arrays travel as buffers),
i.e. what a kernel would put on IOPub, less the envelope.

It prints, for the panel without a chart budget (every changed line resent every round) and with it:
messages/s, bytes/s, bytes/s over the first and the last third of the run (with the budget both stay
under it however long the run; validation lines still grow, one point per epoch), the most messages one
widget sent in one round, the longest a chart line lagged behind its data ("lag s", simulated seconds),
and the messages per second by widget. Both rows already send lines as float32 and move the bar and its
label only visibly; the pre-fix panel (float64 lines, bar and label every round) measured 21.5
messages/s and 106 KiB/s on a 10-minute run of this bench: 5 a second for each of the train-loss line,
the lr line, the bar and its label.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import comm
import numpy as np
from comm.base_comm import BaseComm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from digits_widgets.store.jobs import DONE, RUNNING, create_job  # noqa: E402
from digits_widgets.ui.pump import Pump  # noqa: E402
from digits_widgets.ui.series import DEFAULT_BYTES_PER_S  # noqa: E402
from digits_widgets.ui.training_panel import TrainingPanel  # noqa: E402


def message_bytes(data: Any, buffers: list | None) -> int:
    """What one comm message carries: its JSON data plus its binary buffers."""
    text = json.dumps(data, separators=(",", ":"), default=str)
    return len(text.encode()) + sum(memoryview(b).nbytes for b in buffers or ())


@dataclass
class Sent:
    round: int
    comm_id: str
    nbytes: int
    keys: tuple[str, ...]


@dataclass
class CommRecorder:
    """Replaces ``comm.create_comm`` while active: widgets created meanwhile get comms that record sends."""

    sent: list[Sent] = field(default_factory=list)
    round: int = 0
    _saved: Any = None

    def __enter__(self) -> "CommRecorder":
        recorder = self

        class RecordingComm(BaseComm):
            def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None,
                            buffers: list | None = None, **keys: Any) -> None:
                if msg_type == "comm_msg":
                    state = (data or {}).get("state", {})
                    recorder.sent.append(Sent(recorder.round, self.comm_id, message_bytes(data, buffers),
                                              tuple(sorted(state))))

        self._saved = comm.create_comm
        comm.create_comm = RecordingComm
        return self

    def __exit__(self, *exc: Any) -> None:
        comm.create_comm = self._saved

    def in_round(self, r: int) -> list[Sent]:
        return [s for s in self.sent if s.round == r]


class SimClock:
    """A monotonic clock that moves only when told (one pump round = ``Pump.interval``)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Run:
    """The traffic of one run: what was sent, per round, and what the panel showed at the end."""

    recorder: CommRecorder
    panel: TrainingPanel
    rounds: int
    interval: float
    names: dict[str, str]        # comm id -> widget name in the panel
    max_lag: float               # longest a chart line showed less than its series had (seconds)

    @property
    def seconds(self) -> float:
        return self.rounds * self.interval

    def live(self) -> list[Sent]:
        """Messages of the rounds while training ran (round 0 is construction, the last one the end)."""
        return [s for s in self.recorder.sent if 1 <= s.round <= self.rounds]

    def per_second(self, first: int = 1, last: int | None = None) -> tuple[float, float]:
        """(messages/s, bytes/s) over rounds ``first``..``last`` inclusive."""
        last = self.rounds if last is None else last
        sent = [s for s in self.recorder.sent if first <= s.round <= last]
        seconds = (last - first + 1) * self.interval
        return len(sent) / seconds, sum(s.nbytes for s in sent) / seconds

    def most_per_widget_round(self) -> int:
        counts = Counter((s.round, s.comm_id) for s in self.live())
        return max(counts.values(), default=0)

    def by_widget(self) -> dict[str, float]:
        counts = Counter(self.names.get(s.comm_id, "other") for s in self.live())
        return {name: n / self.seconds for name, n in counts.most_common()}


def shows_all(line: Any) -> bool:
    """Whether a chart line shows every point its series holds (sent as float32, see series.SeriesLine)."""
    x, y = (a.astype(np.float32) for a in line.series.arrays())
    return np.array_equal(line.line.x, x) and np.array_equal(line.line.y, y)


def widget_names(panel: TrainingPanel) -> dict[str, str]:
    names = {w.model_id: n for n, w in [("title", panel.title), ("progress", panel.progress),
                                        ("progress_label", panel.progress_label), ("status", panel.status),
                                        ("log", panel.log_html)]}
    for line in panel.lines:
        names[line.line.model_id] = f"line {line.line.labels[0]}"
    for axis in (*panel.figure.axes, *panel.lr_figure.axes):
        names[axis.model_id] = "axes"
    return names


def synthetic_run(minutes: float = 30.0, rate: int = 500, epoch: int = 1000,
                  bytes_per_s: float | None = DEFAULT_BYTES_PER_S, capacity: int = 1000) -> Run:
    """A classification job trained for ``minutes`` (simulated) at ``rate`` iterations a second."""
    clock = SimClock()
    with CommRecorder() as recorder:
        pump = Pump(find_loop=lambda: None, clock=clock)
        per_round = max(1, round(rate * pump.interval))
        rounds = max(1, round(minutes * 60 / pump.interval))
        steps = rounds * per_round
        epochs = max(1, -(-steps // epoch))
        job = create_job("model", "classification", "bench widgets", {"options": {"epochs": epochs}})
        job.set_status(RUNNING)
        panel = TrainingPanel(job, pump=pump, capacity=capacity, bytes_per_s=bytes_per_s)
        t0 = 1.7e9
        job.emit({"type": "metric", "phase": "val", "epoch": 0.0, "step": 0, "loss": 2.3, "accuracy": 0.1,
                  "time": t0})
        step, max_lag = 0, 0.0
        for r in range(1, rounds + 1):
            for _ in range(per_round):
                step += 1
                e = step / epoch
                job.emit({"type": "metric", "phase": "train", "epoch": e, "step": step, "time": t0 + step / rate,
                          "loss": 2.3 / (1 + e) + 0.05 * np.sin(step), "lr": 0.01 * 0.5 ** (e // 10),
                          "samples_per_s": rate * 64 * (1 + 0.03 * np.sin(step / 7))})
                job.emit({"type": "progress", "done": step, "total": steps, "rate": float(rate),
                          "eta": (steps - step) / rate, "stage": f"epoch {int(np.ceil(e))}/{epochs}",
                          "time": t0 + step / rate})
                if step % epoch == 0:
                    job.emit({"type": "metric", "phase": "val", "epoch": e, "step": step, "loss": 2.3 / (1 + e),
                              "accuracy": 1 - 0.9 / (1 + e), "time": t0 + step / rate + 1e-3})
                    job.emit({"type": "log", "line": f"epoch {int(e)}: val loss {2.3 / (1 + e):.4f}"})
            clock.now += pump.interval
            recorder.round = r
            pump.tick()
            stale = [line.sent_at for line in panel.charts.lines if line.series.changed]
            max_lag = max([max_lag, *(clock.now - t for t in stale)])
        clock.now += pump.interval
        recorder.round = rounds + 1
        job.set_status(DONE)
        pump.tick()
    return Run(recorder, panel, rounds, pump.interval, widget_names(panel), max_lag)


def report(label: str, run: Run) -> None:
    third = run.rounds // 3
    msgs, nbytes = run.per_second()
    _, first = run.per_second(1, third)
    _, last = run.per_second(run.rounds - third + 1)
    print(f"{label:22s} {msgs:8.1f} {nbytes / 1024:10.1f} {first / 1024:10.1f} {last / 1024:10.1f} "
          f"{last / max(first, 1):6.2f} {run.most_per_widget_round():5d} {run.max_lag:6.1f}")
    print("    messages/s by widget: " + ", ".join(f"{n} {v:.2f}" for n, v in run.by_widget().items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="simulated training time")
    parser.add_argument("--rate", type=int, default=500, help="iterations a second (one metric + progress each)")
    parser.add_argument("--epoch", type=int, default=1000, help="iterations per epoch (one validation each)")
    parser.add_argument("--budget", type=float, default=DEFAULT_BYTES_PER_S / 1024, help="chart KiB/s per panel")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dw-bench-widgets-"))
    os.environ["DIGITS_JOBS_DIR"] = str(work / "jobs")
    try:
        print(f"{args.minutes:g} simulated minutes at {args.rate} iterations/s, {args.epoch} per epoch, "
              f"5 pump rounds/s")
        print(f"{'panel':22s} {'msgs/s':>8s} {'KiB/s':>10s} {'1st third':>10s} {'last third':>10s} "
              f"{'growth':>6s} {'max/w/round':>5s} {'lag s':>6s}")
        for label, budget in (("no chart budget", None), (f"budget {args.budget:g} KiB/s", args.budget * 1024)):
            run = synthetic_run(args.minutes, args.rate, args.epoch, budget)
            report(label, run)
            for line in run.panel.lines:   # the end of the run is always complete, budget or not
                assert shows_all(line), f"{line.line.labels[0]} not flushed at the end"
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
