"""Widget traffic of the training panel, counted on the comms: at most one message per widget per round,
none for what did not visibly change, and bytes per second under the chart budget over a long run.

The recorder and the synthetic run are the bench's (bench/bench_widgets.py), so the bench's figures and
these bounds are measured the same way.
"""
from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from digits_widgets.store.jobs import DONE, RUNNING, create_job
from digits_widgets.ui.pump import Pump
from digits_widgets.ui.series import DEFAULT_BYTES_PER_S, ByteBudget
from digits_widgets.ui.training_panel import TrainingPanel


def _load_bench():
    path = Path(__file__).resolve().parents[1] / "bench" / "bench_widgets.py"
    spec = importlib.util.spec_from_file_location("bench_widgets", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


class Feed:
    """A running classification job, its panel on a simulated clock, and a recorder of every send."""

    def __init__(self, total: int = 100_000, epochs: int = 100):
        self.recorder = bench.CommRecorder().__enter__()
        self.clock = bench.SimClock()
        self.pump = Pump(find_loop=lambda: None, clock=self.clock)
        self.job = create_job("model", "classification", "traffic", {"options": {"epochs": epochs}})
        self.job.set_status(RUNNING)
        self.panel = TrainingPanel(self.job, pump=self.pump)
        self.total, self.epochs, self.step = total, epochs, 0

    def close(self) -> None:
        self.recorder.__exit__(None, None, None)

    def iterations(self, n: int, rate: float = 500.0, samples_per_s: float = 32_000.0) -> None:
        for _ in range(n):
            self.step += 1
            epoch = self.step / (self.total / self.epochs)
            t = 1.7e9 + self.step / rate
            self.job.emit({"type": "metric", "phase": "train", "epoch": epoch, "step": self.step, "time": t,
                           "loss": 1 / self.step, "lr": 0.01, "samples_per_s": samples_per_s})
            self.job.emit({"type": "progress", "done": self.step, "total": self.total, "rate": rate, "time": t,
                           "eta": (self.total - self.step) / rate, "stage": f"epoch {int(np.ceil(epoch))}/100"})

    def round(self) -> Counter:
        """One pump round (0.2 s later); what each widget sent in it, by name."""
        self.clock.now += self.pump.interval
        self.recorder.round += 1
        self.pump.tick()
        names = bench.widget_names(self.panel)
        return Counter(names.get(s.comm_id, s.comm_id) for s in self.recorder.in_round(self.recorder.round))


@pytest.fixture
def feed():
    f = Feed()
    yield f
    f.close()


def test_each_widget_sends_at_most_once_a_round_and_only_what_changed(feed):
    rounds = []
    for _ in range(50):
        feed.iterations(100)
        rounds.append(feed.round())
    assert all(n == 1 for counts in rounds for n in counts.values()), rounds
    sent = sum(rounds, Counter())
    assert not {"title", "status", "log"} & set(sent), f"no status or log event, yet {sent}"
    assert sent["progress_label"] <= 11, "a label whose epoch stays the same changes at most once a second"

    quiet = next((i for i in range(1, 8) if not feed.round()), None)   # what was held back goes out, then...
    assert quiet is not None and quiet * feed.pump.interval <= 1.2, "held-back changes show within ~1 s"
    assert not feed.round(), "...no event, nothing held back: nothing is sent"
    feed.iterations(1)                  # 1 of 100,000: the bar would move by a hundredth of a pixel
    assert "progress" not in feed.round(), "an invisible move of the bar sends nothing"


def test_points_held_back_by_the_budget_show_within_about_a_second_without_more_events(feed):
    for _ in range(30):                 # long enough for full 1000-point lines: over the byte budget
        feed.iterations(400)
        feed.round()
    train = feed.panel.lines[0]
    feed.iterations(400)
    feed.round()
    shown_after = None
    for i in range(1, 11):              # no further events: the catch-up round must show the newest point
        if bench.shows_all(train):
            shown_after = i * feed.pump.interval
            break
        feed.round()
    assert shown_after is not None and shown_after <= 1.2, f"newest point shown after {shown_after} s"


def test_bytes_per_second_stay_under_the_budget_over_a_long_run_and_the_end_is_complete():
    run = bench.synthetic_run(minutes=4, rate=500, epoch=500)
    msgs, nbytes = run.per_second()
    third = run.rounds // 3
    _, first = run.per_second(1, third)
    _, last = run.per_second(run.rounds - third + 1)
    budget = DEFAULT_BYTES_PER_S
    # bounded, not constant: validation lines still grow (one point a second here), within the budget
    assert nbytes <= 1.05 * budget and max(first, last) <= 1.05 * budget, \
        f"{nbytes:.0f} B/s over the run; first third {first:.0f}, last third {last:.0f} B/s"
    assert msgs <= 10, f"{msgs:.1f} messages/s"
    assert run.most_per_widget_round() == 1
    assert run.max_lag <= 1.5, f"a line lagged {run.max_lag:.1f} s behind its data"
    for line in run.panel.lines:        # the job ended: every line shows everything, whatever the budget
        assert bench.shows_all(line), line.line.labels
    assert run.panel.progress.value == run.panel.progress.max


def test_the_byte_budget_bounds_what_it_lets_through_and_never_starves_a_large_message():
    clock = bench.SimClock()
    budget = ByteBudget(1000, clock)
    spent, start = 0, clock.now
    for i in range(1000):
        cost = 3000 if i % 10 == 0 else 100     # one message larger than the whole burst now and then
        if budget.try_spend(cost):
            spent += cost
        clock.now += 0.05
    seconds = clock.now - start
    assert spent <= budget.burst + budget.rate * seconds + 3000
    assert spent >= 0.8 * budget.rate * seconds, "the budget is used, not wasted"
    assert budget.wait(3000) <= 1.0 + 1e-9, "a message over the burst waits at most for a full bucket"
    with pytest.raises(ValueError):
        ByteBudget(0)


def test_without_a_budget_every_changed_line_goes_every_round():
    clock = bench.SimClock()
    with bench.CommRecorder() as recorder:
        pump = Pump(find_loop=lambda: None, clock=clock)
        job = create_job("model", "regression", "unbudgeted", {"options": {"epochs": 10}})
        job.set_status(RUNNING)
        panel = TrainingPanel(job, pump=pump, bytes_per_s=None)
        line_ids = {s.line.model_id for s in panel.lines}
        for r in range(1, 21):
            for step in range(r * 1000, r * 1000 + 1000):
                job.emit({"type": "metric", "phase": "train", "epoch": step / 1000, "step": step,
                          "time": 1.7e9 + step, "loss": 1.0, "lr": 0.1})
            clock.now += pump.interval
            recorder.round = r
            pump.tick()
            assert sum(s.comm_id in line_ids for s in recorder.in_round(r)) == 2, "train loss and lr"
        job.set_status(DONE)
        pump.tick()
