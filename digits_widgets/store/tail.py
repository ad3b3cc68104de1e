"""Reading a job's text files while they grow: the last lines of a log, and the lines appended since last time.

Writers append whole lines (train.log, create.log, metrics.jsonl), but a reader can catch one half
written. ``last_lines`` reads only the end of a file; ``Tail`` keeps an offset and hands out complete
lines only, so a line being written waits for the next read (``records`` parses them as JSON lines: so
``store.feed`` and the jobs table's ``records.MetricsTail`` read metrics.jsonl). Both read bytes and
decode with ``errors="replace"``: a cut multi-byte character never raises.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

WINDOW = 64 * 1024   # bytes from the end that last_lines reads: far more than a screenful of log lines


def last_lines(path: str | os.PathLike, n: int = 20, max_bytes: int = WINDOW) -> list[str]:
    """The last ``n`` lines of a text file without reading all of it; [] when it cannot be read."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - max_bytes))
            rows = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []
    if size > max_bytes and rows:
        rows = rows[1:]   # the window began inside this one
    return rows[-n:]


class Tail:
    """Follows one file from an offset: :meth:`read` returns the complete lines appended since the last read.

    ``restarted`` says that the last read began at the file's start: the first read, or the file was
    replaced or cut (a resume trims metrics.jsonl by replacing it), so whatever the caller built from
    earlier lines no longer holds. A missing file reads as no lines, and starts over when it comes back.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.inode, self.offset, self.restarted = -1, 0, False

    def read(self) -> list[str]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self.inode, self.offset, self.restarted = -1, 0, True
            return []
        self.restarted = st.st_ino != self.inode or st.st_size < self.offset
        if self.restarted:
            self.inode, self.offset = st.st_ino, 0
        if st.st_size == self.offset:
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            chunk = f.read(st.st_size - self.offset)
        complete = chunk[:chunk.rfind(b"\n") + 1]   # a line being written now waits for the next read
        self.offset += len(complete)
        return complete.decode("utf-8", "replace").splitlines()

    def records(self) -> list[dict]:
        """:meth:`read` for a JSON-lines file (metrics.jsonl): each new line parsed, a line that is not JSON
        skipped."""
        return json_records(self.read())


def json_records(lines: "list[str]") -> list[dict]:
    """JSON-lines records parsed, a line that is not JSON (one being written) skipped."""
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


__all__ = ["Tail", "last_lines", "json_records", "WINDOW"]
