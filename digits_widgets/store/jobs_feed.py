"""Following the jobs directory as a whole: which jobs came, changed or went since the last look.

The jobs table (``ui/jobs_panel.py``) shows every job and refreshes once a second. Listing the jobs
(``list_jobs``) parses every ``job.json`` each time, which grows with the number of jobs although almost
none of them change. :class:`JobsFeed` is the jobs directory's side of the one job feed (``store/feed.py``
follows one job's events): each :meth:`JobsFeed.poll` lists the job directories (``os.scandir``) and
stats each ``job.json``, and re-reads only those whose file appeared or changed (its inode, mtime or size:
``job.json`` is replaced whole by a rename, so a rewrite gives a new inode). An idle directory of N jobs
costs N stats, no parse. What changed comes back as a :class:`JobsChange` (added, changed, removed).

The jobs are loaded with ``load_job``, so a job this process runs is its live object (its status and
progress current in memory, ahead of what ``job.json`` holds). A job left Waiting or Running by a process
that has died is settled (``Job.settle_orphan``: Aborted on disk) and reported as changed, as listing the
jobs would settle it. A ``job.json`` that does not parse (half-written by a writer that does not rename,
or foreign) is skipped without error and read again once its file changes.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import JobError
from .job import Job
from .job_record import ACTIVE, JOB_FILE, jobs_dir
from .registry import load_job

_Signature = tuple[int, int, int]   # (inode, mtime in ns, size) of a job.json


@dataclass
class JobsChange:
    """What one :meth:`JobsFeed.poll` found, by job id: new jobs, jobs whose record changed, jobs gone."""

    added: dict[str, Job] = field(default_factory=dict)
    changed: dict[str, Job] = field(default_factory=dict)
    removed: dict[str, Job] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)


@dataclass
class _Entry:
    signature: _Signature    # of the job.json last read (or tried)
    job: Job | None          # the last job read from it; None until it has parsed once


class JobsFeed:
    """The jobs of a jobs directory (``root``, else ``jobs_dir()`` read at each poll), kept current by
    :meth:`poll` at the cost of one stat per job (see the module's docstring)."""

    def __init__(self, root: Path | None = None) -> None:
        self._root = Path(root) if root is not None else None
        self._entries: dict[str, _Entry] = {}   # job directory path → what its job.json last gave

    @property
    def jobs(self) -> dict[str, Job]:
        """The jobs as of the last poll, by id."""
        return {e.job.id: e.job for e in self._entries.values() if e.job is not None}

    def poll(self) -> JobsChange:
        """Look at the directory once: re-read what changed, and say what did."""
        change = JobsChange()
        found = _scan(self._root if self._root is not None else jobs_dir())
        for path in [p for p in self._entries if p not in found]:
            gone = self._entries.pop(path).job
            if gone is not None:
                change.removed[gone.id] = gone
        for path, signature in found.items():
            entry = self._entries.get(path)
            if entry is None or entry.signature != signature:
                self._read(path, signature, entry, change)
            elif entry.job is not None and _orphaned(entry.job):
                change.changed[entry.job.id] = entry.job   # its owner died: Aborted now, on disk too
        return change

    def _read(self, path: str, signature: _Signature, entry: _Entry | None, change: JobsChange) -> None:
        old = entry.job if entry is not None else None
        try:
            job = load_job(Path(path))
            job_id = job.id
        except (JobError, OSError, KeyError, TypeError, ValueError, AttributeError):
            # not a job's record (yet): half-written in place, or foreign; the old job stays until it parses
            self._entries[path] = _Entry(signature, old)
            return
        self._entries[path] = _Entry(signature, job)
        if old is not None and old.id != job_id:
            change.removed[old.id] = old
            old = None
        (change.added if old is None else change.changed)[job_id] = job


def _scan(root: Path) -> dict[str, _Signature]:
    """Each job directory of ``root`` (one holding a job.json file) → its job.json's signature."""
    found: dict[str, _Signature] = {}
    try:
        entries = list(os.scandir(root))
    except (FileNotFoundError, NotADirectoryError):
        return found   # no jobs yet
    for entry in entries:
        try:
            if not entry.is_dir():
                continue
            st = os.stat(os.path.join(entry.path, JOB_FILE))
        except OSError:
            continue   # no job.json: not a job, or deleted meanwhile
        if stat.S_ISREG(st.st_mode):
            found[entry.path] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return found


def _orphaned(job: Job) -> bool:
    """Whether ``job``'s record says Waiting or Running while the process that ran it has died; settles
    it (Aborted, with the reason) when so. Asks the owner only for a record that is still active."""
    try:
        return job.record["status_history"][-1][0] in ACTIVE and job.settle_orphan()
    except (KeyError, IndexError, TypeError):
        return False


__all__ = ["JobsFeed", "JobsChange"]
