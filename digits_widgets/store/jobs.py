"""Jobs on disk, as one import: ``from digits_widgets.store.jobs import Job, create_job, DONE, ...``.

Widgets, the training thread and torchrun workers all meet at a job directory, with ``job.json`` as the
single source of truth. The code lives by role, and this module gathers its public names so that callers
need not know the split:

- ``job_record.py``: the record on disk: statuses, ``job.json`` written atomically and read, ids, the jobs
  directory, the owner (pid, host, start time) and how a dead owner is recognised.
- ``job.py``: the ``Job`` object: identity, status, saving, the log, progress, events for the UI pump.
- ``job_runner.py``: running a job's work in a thread (queue, abort, wait) and ``JobAborted``.
- ``registry.py``: creating, loading, listing, finding and deleting jobs; kind → class.
"""
from __future__ import annotations

from .job import Job
from .job_record import (ABORTED, ACTIVE, DONE, ERROR, INITIALIZED, JOB_FILE, RUNNING, STATUSES, WAITING,
                         _proc_stat, jobs_dir, new_job_id, owner_gone, owner_record, read_record,
                         write_json_atomic)
from .job_runner import JobAborted, JobRunner
from .registry import create_job, delete_job, dependents, find_job, iter_jobs, job_class, list_jobs, load_job

_read_record = read_record   # the old private names, which tests still use: _read_record, _proc_stat

__all__ = [
    "ABORTED", "ACTIVE", "DONE", "ERROR", "INITIALIZED", "JOB_FILE", "RUNNING", "STATUSES", "WAITING",
    "Job", "JobAborted", "JobRunner", "create_job", "delete_job", "dependents", "find_job", "iter_jobs",
    "job_class", "jobs_dir", "list_jobs", "load_job", "new_job_id", "owner_gone", "owner_record",
    "read_record", "write_json_atomic",
]
