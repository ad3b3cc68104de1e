"""The headless entry points that ``import digits_widgets as dw`` exposes: list, open and delete jobs."""
from __future__ import annotations

import time

from .store.jobs import Job, delete_job, find_job, list_jobs


class JobList(list):
    """A list of jobs that prints as a table in a notebook (the home page of DIGITS, in text)."""

    def table(self) -> str:
        rows = [("id", "kind", "type", "name", "status", "created")]
        for j in self:
            rows.append((j.id, j.kind, j.type, j.name, j.status,
                         time.strftime("%Y-%m-%d %H:%M", time.localtime(j.created))))
        widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows)

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(self.table() if self else "(no jobs)")


def jobs(kind: str | None = None) -> JobList:
    """Every job in the jobs directory (``$DIGITS_JOBS_DIR`` or ``./digits-jobs``), oldest first."""
    return JobList(list_jobs(kind))


def job(id_or_name: "str | Job") -> Job:
    """Reopen a job by id or name, e.g. after a kernel restart."""
    return find_job(id_or_name)


def delete(id_or_name: "str | Job") -> None:
    """Delete a job; refused while models depend on it (their names are in the error)."""
    delete_job(id_or_name)
