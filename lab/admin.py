"""The machine owner's view of a shared app: every job with its owner and state, what each owner
holds on disk, and a stop that works on anyone's run.

Admins are login names listed in $FTA_ADMIN (comma-separated): only a server-checked login can be
one (a browser id never is), and every function here is called by a handler that has checked that
first. Plain functions over the job queue and the folders, testable without a browser.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .jobs import JobQueue
from .ownership import run_owner

ADMIN_ENV = "FTA_ADMIN"
LOGIN_PREFIX = "user:"   # lab.identity: a login's owner string


def admins() -> set[str]:
    """The admin login names from $FTA_ADMIN."""
    return {n.strip() for n in os.environ.get(ADMIN_ENV, "").split(",") if n.strip()}


def is_admin(owner: str | None) -> bool:
    """Whether this server-checked owner ("user:<name>") is an admin."""
    return isinstance(owner, str) and owner.startswith(LOGIN_PREFIX) and owner[len(LOGIN_PREFIX):] in admins()


def folder_mb(folder: Path) -> float:
    """Bytes under `folder` (links not followed), in MB."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return round(total / 1e6, 1)


def jobs_frame(queue: JobQueue):
    """Every run folder the lab made: job id, owner, state, queue place, message, disk use."""
    import pandas as pd

    rows = []
    runs_dir = queue.runs_dir
    folders = sorted((p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")),
                     key=lambda p: p.name, reverse=True) if runs_dir.is_dir() else []
    for folder in folders:
        owner = run_owner(runs_dir, folder.name)
        if owner is None:
            continue
        status = queue.status(folder.name)
        rows.append({"Job": folder.name, "Owner": owner, "State": status.state,
                     "Place": status.place, "Message": status.message, "Disk MB": folder_mb(folder)})
    columns = ["Job", "Owner", "State", "Place", "Message", "Disk MB"]
    return pd.DataFrame(rows, columns=columns)


def usage_frame(jobs, uploads_root: Path):
    """Per owner: runs, runs waiting or training, and MB of run folders; then the uploads folder's MB."""
    import pandas as pd

    if jobs.empty:
        per_owner = pd.DataFrame(columns=["Owner", "Runs", "Active", "Runs MB"])
    else:
        grouped = jobs.groupby("Owner")
        per_owner = pd.DataFrame({"Runs": grouped.size(),
                                  "Active": grouped["State"].apply(lambda s: int(s.isin(["queued", "running"]).sum())),
                                  "Runs MB": grouped["Disk MB"].sum().round(1)}).reset_index()
    uploads = folder_mb(uploads_root) if uploads_root.is_dir() else 0.0
    return per_owner, uploads


def overview(queue: JobQueue, uploads_root: Path) -> dict[str, Any]:
    """{"jobs": frame, "usage": frame, "markdown": totals in a line}."""
    jobs = jobs_frame(queue)
    usage, uploads_mb = usage_frame(jobs, Path(uploads_root))
    active = int(jobs["State"].isin(["queued", "running"]).sum()) if not jobs.empty else 0
    return {"jobs": jobs, "usage": usage,
            "markdown": (f"{len(jobs)} runs by {len(usage)} people; {active} waiting or training; "
                         f"{jobs['Disk MB'].sum() if not jobs.empty else 0:.1f} MB in run folders, "
                         f"{uploads_mb:.1f} MB of uploads.")}


def stop_any(queue: JobQueue, job_id: Any) -> str:
    """Stop (or take out of the queue) anyone's job; one line saying what happened."""
    if not isinstance(job_id, str) or not job_id.strip() or run_owner(queue.runs_dir, job_id.strip()) is None:
        return "**No such job.**"
    status = queue.stop(job_id.strip(), wait=False)
    return f"`{job_id.strip()}`: {status.state} — {status.message}"
