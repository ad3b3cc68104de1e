"""Finding jobs on disk: creating, loading, listing, looking up by id or name, and deleting them.

The jobs directory is the registry: there is no index file, a job is a folder with a ``job.json``. This
module turns folders into job objects of the right class (by the ``kind`` in the record; classes register
their kind when they are defined, see ``Job.__init_subclass__``) and hands back the live object where this
process runs the job, so a notebook that looks a running job up again follows the same events.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Iterator

from .._version import __version__ as version
from ..errors import JobError
from .job import Job
from .job_record import INITIALIZED, JOB_FILE, jobs_dir, new_job_id, read_record


def job_class(kind: str) -> type[Job]:
    """The class registered for ``kind`` (``Job`` itself for a kind whose module is not imported)."""
    return Job._registry.get(kind, Job)


def create_job(kind: str, type_: str, name: str, params: dict | None = None,
               parents: list[str] | None = None, root: Path | None = None, group: str = "") -> Job:
    """Make a new job directory with its job.json (status Initialized)."""
    if not name or not str(name).strip():
        raise JobError("A job needs a name")
    root = Path(root) if root is not None else jobs_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        while True:
            job_id = new_job_id()
            directory = root / job_id
            try:
                directory.mkdir()
                break
            except FileExistsError:
                continue
    except OSError as exc:
        raise JobError(f"Cannot create a job in the jobs directory {root} ({exc.strerror or exc}): "
                       "make it writable, or set DIGITS_JOBS_DIR to a folder you can write") from None
    record = {
        "id": job_id, "kind": kind, "type": type_, "name": str(name), "group": str(group or "").strip(),
        "params": params or {},
        "parents": list(parents or []), "created": time.time(),
        "status_history": [[INITIALIZED, time.time()]], "error": None, "info": {},
        "versions": {"digits_widgets": version},
    }
    job = job_class(kind)(directory, record)
    try:
        job.save()
    except OSError as exc:
        shutil.rmtree(directory, ignore_errors=True)
        raise JobError(f"Cannot write {directory / JOB_FILE} in the jobs directory {root} "
                       f"({exc.strerror or exc}): make it writable, or set DIGITS_JOBS_DIR to a folder "
                       "you can write") from None
    return job


def load_job(directory: Path) -> Job:
    """The live object when this process runs the job, else a fresh view of its directory."""
    key = str(Path(directory).resolve())
    with Job._live_lock:
        live = Job._live.get(key)
    if live is not None:
        return live
    record = read_record(directory)
    job = job_class(record.get("kind", ""))(Path(directory), record)
    job.settle_orphan()
    return job


def iter_jobs(root: Path | None = None) -> Iterator[Job]:
    root = Path(root) if root is not None else jobs_dir()
    if not root.is_dir():
        return
    for child in sorted(root.iterdir()):
        if (child / JOB_FILE).is_file():
            try:
                yield load_job(child)
            except JobError:
                continue  # a half-deleted or foreign directory is not a job


def list_jobs(kind: str | None = None, root: Path | None = None) -> list[Job]:
    """All jobs on disk, oldest first."""
    found = [j for j in iter_jobs(root) if kind is None or j.kind == kind]
    return sorted(found, key=lambda j: (j.created, j.id))


def find_job(id_or_name: "str | Job", kind: str | None = None, root: Path | None = None) -> Job:
    """A job by id, by unique name, or by the path of its directory."""
    if isinstance(id_or_name, Job):
        return id_or_name
    key = str(id_or_name)
    root = Path(root) if root is not None else jobs_dir()
    candidates = [Path(key)] if os.sep in key else []
    candidates.append(root / key)
    for cand in candidates:
        if (cand / JOB_FILE).is_file():
            job = load_job(cand)
            if kind is None or job.kind == kind:
                return job
    named = [j for j in iter_jobs(root) if j.name == key and (kind is None or j.kind == kind)]
    if len(named) == 1:
        return named[0]
    what = kind or "job"
    if len(named) > 1:
        ids = ", ".join(j.id for j in named)
        raise JobError(f"Several {what}s are named {key!r} ({ids}): use the id")
    raise JobError(f"No {what} with id or name {key!r} in {root}")


def dependents(job: Job, root: Path | None = None) -> list[Job]:
    """Jobs that name ``job`` as a parent (models trained on a dataset, fine-tunes of a model)."""
    return [j for j in iter_jobs(root) if job.id in j.parents]


def delete_job(id_or_name: "str | Job", root: Path | None = None, timeout: float = 30.0) -> None:
    """Delete a job directory; refused, with their names, while other jobs depend on it."""
    job = find_job(id_or_name, root=root)
    users = dependents(job, root)
    if users:
        names = ", ".join(f'"{u.name}" ({u.id})' for u in users)
        n = len(users)
        noun = "model" if all(u.kind == "model" for u in users) else "job"
        raise JobError(f'Cannot delete "{job.name}" because {n} {noun}{"s" if n > 1 else ""} '
                       f'depend{"" if n > 1 else "s"} on it: {names}')
    if job.is_owned_here():
        job.abort()
        job.wait(timeout, raise_on_error=False)
    with Job._live_lock:
        Job._live.pop(str(job.dir.resolve()), None)
    shutil.rmtree(job.dir)
