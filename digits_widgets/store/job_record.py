"""A job's record on disk: ``job.json``, how it is written and read, ids, statuses, and who owns it.

This is the part of a job that outlives any process. It is kept apart from the ``Job`` object so that
what the files look like (and how a dead owner is recognised from them) can be read in one place, and so
that nothing here needs threads, queues or the scheduler. ``job.json`` is always replaced whole (write a
temporary file, rename it over), so a reader in another process (a torchrun worker, a second kernel)
never sees half a record.
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import JobError

INITIALIZED, WAITING, RUNNING, DONE, ABORTED, ERROR = (
    "Initialized", "Waiting", "Running", "Done", "Aborted", "Error")
STATUSES = (INITIALIZED, WAITING, RUNNING, DONE, ABORTED, ERROR)
ACTIVE = frozenset({INITIALIZED, WAITING, RUNNING})
JOB_FILE = "job.json"


def jobs_dir() -> Path:
    """``$DIGITS_JOBS_DIR`` or ``./digits-jobs``, read at each call so tests and notebooks can switch."""
    return Path(os.environ.get("DIGITS_JOBS_DIR") or "digits-jobs").expanduser().resolve()


def new_job_id() -> str:
    """DIGITS' id format, ``YYYYmmdd-HHMMSS-xxxx``: sortable by creation time, unique by its 4 hex digits."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def write_json_atomic(path: Path, data: Any, durable: bool = True) -> None:
    """Write to a temporary file in the same folder and rename it over ``path``: readers never see half.
    ``durable`` also waits for the disk (fsync); progress updates skip that wait, status changes do not."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, default=_json_default)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def read_record(directory: Path) -> dict:
    """The parsed ``job.json`` of ``directory``; a JobError that names the file when it is missing or bad."""
    try:
        with open(Path(directory) / JOB_FILE) as f:
            return json.load(f)
    except FileNotFoundError:
        raise JobError(f"No job at {directory} (no {JOB_FILE})") from None
    except json.JSONDecodeError as exc:
        raise JobError(f"{Path(directory) / JOB_FILE} is not valid JSON: {exc}") from None


# ---- the owner: which process runs a job, and whether it still does ---------------------------------
def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _proc_stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from field 3 (the state) on, or None where there is no /proc entry to read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
        return stat[stat.rindex(")") + 2:].split()   # after "pid (comm)", which may hold spaces
    except (OSError, ValueError):
        return None


def _process_start(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (/proc/<pid>/stat field 22); None when unknown."""
    fields = _proc_stat(pid)
    try:
        return int(fields[19]) if fields else None
    except (ValueError, IndexError):
        return None


def owner_record() -> dict:
    """Who runs a job: this process, by pid, host and start time (so a reused pid is not taken for it)."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": _process_start(os.getpid())}


def owner_gone(owner: dict) -> str | None:
    """Why the process named in ``owner`` no longer runs (same host only), or None when it may still run."""
    if not owner or owner.get("host") != socket.gethostname():
        return None  # nobody claimed the job yet, or another machine runs it: cannot tell from here
    pid = int(owner.get("pid", -1))
    if not _pid_alive(pid) or (_proc_stat(pid) or ["?"])[0] in ("Z", "X"):   # a zombie has ended too
        return f"its process {pid} on {owner['host']} is gone"
    started, now = owner.get("started"), _process_start(pid)
    if started is not None and now is not None and started != now:
        return f"its process {pid} on {owner['host']} is gone (that pid now belongs to another process)"
    return None
