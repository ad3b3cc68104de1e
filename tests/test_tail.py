"""store.tail: the last lines of a log, and a file followed from an offset, complete lines only."""
from __future__ import annotations

import os

from digits_widgets.store.tail import Tail, last_lines


def test_last_lines_reads_only_the_end(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("".join(f"line {i}\n" for i in range(1000)))
    assert last_lines(log, 3) == ["line 997", "line 998", "line 999"]
    # a small window: the first line it sees is cut, so it is dropped
    assert last_lines(log, 100, max_bytes=30) == ["line 997", "line 998", "line 999"]
    assert last_lines(tmp_path / "missing.log") == []
    log.write_bytes(b"caf\xc3")   # a cut multi-byte character does not raise
    assert last_lines(log) == ["caf\ufffd"]


def test_tail_hands_out_complete_lines_and_starts_over(tmp_path):
    path = tmp_path / "metrics.jsonl"
    tail = Tail(path)
    assert tail.read() == [] and tail.restarted   # missing: nothing yet
    path.write_text("a\nb\nhalf")
    assert tail.read() == ["a", "b"] and tail.restarted
    assert tail.read() == [] and not tail.restarted
    with open(path, "a") as f:
        f.write(" done\nc\n")
    assert tail.read() == ["half done", "c"] and not tail.restarted
    new = tmp_path / "new.jsonl"
    new.write_text("x\n")
    os.replace(new, path)   # replaced (a resume trims metrics.jsonl): read from the start again
    assert tail.read() == ["x"] and tail.restarted
    path.write_text("")     # cut
    assert tail.read() == [] and tail.restarted
