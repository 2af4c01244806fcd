"""What each run of a sweep is doing, read from its results folder; and the per-run lock.

A run is `done`, `diverged` or `failed` when its result.json says so, `running` while some process
holds its lock (an fcntl lock dies with its process, so a killed run never looks running), and
`pending` otherwise (with the step of its checkpoint when an interrupted run will resume).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, List, Optional

from sweep.results import human, read_result

LOCK_NAME = ".lock"


# ----------------------------------------------------------------------------- locks


def try_lock(path: Path, attempts: int = 5) -> Optional[IO]:
    """Take the exclusive lock at `path`; the open file (keep it) or None if another process holds it.

    A few short retries, because `sweep status` holds a shared lock for an instant while it looks.
    The holder's pid and host are written into the file for `sweep status`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a+")
    for attempt in range(attempts):
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError:
            if attempt == attempts - 1:
                f.close()
                return None
            time.sleep(0.2)
    f.seek(0)
    f.truncate()
    f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}) + "\n")
    f.flush()
    return f


def release(lock: Optional[IO]) -> None:
    if lock is not None:
        fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
        lock.close()


def lock_holder(path: Path) -> Optional[dict]:
    """{'pid', 'host'} of the live holder of the lock at `path`, or None when nobody holds it."""
    path = Path(path)
    if not path.exists():
        return None
    with open(path, "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            try:
                return json.loads(f.read() or "{}")
            except ValueError:
                return {}
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    return None


# ----------------------------------------------------------------------------- run state


@dataclass
class RunState:
    """One run's state as `sweep status` shows it."""

    status: str
    """'pending', 'running', 'done', 'diverged' or 'failed'."""
    step: Optional[int] = None
    """Latest step written to progress.json (running or interrupted runs)."""
    steps: Optional[int] = None
    """Total steps of the run."""
    final_val_loss: Optional[float] = None
    """For done runs."""
    wall_seconds: Optional[float] = None
    """For finished runs."""
    error: Optional[str] = None
    """Last lines of the error, for failed runs."""
    holder: Optional[dict] = None
    """pid/host of the process running it."""


def _error_tail(error: Optional[str], lines: int = 3) -> Optional[str]:
    if not error:
        return None
    return "\n".join(str(error).rstrip().splitlines()[-lines:])


def run_state(run_dir: Path) -> RunState:
    """The state of the run whose folder is `run_dir` (which may not exist yet)."""
    run_dir = Path(run_dir)
    holder = lock_holder(run_dir / LOCK_NAME)
    progress = {}
    try:
        progress = json.loads((run_dir / "progress.json").read_text())
    except (OSError, ValueError):
        pass
    step, steps = progress.get("step"), progress.get("steps")
    result = read_result(run_dir)
    if holder is not None:
        return RunState("running", step, steps, holder=holder)
    if result is not None and result.get("status") in ("done", "diverged", "failed"):
        loss = result.get("final_val_loss")
        return RunState(result["status"], result.get("steps"), result.get("steps"),
                        final_val_loss=loss if isinstance(loss, (int, float)) else None,
                        wall_seconds=result.get("wall_seconds"), error=_error_tail(result.get("error")))
    return RunState("pending", step, steps)


def status_table(rows: List[dict]) -> str:
    """rows: {'index', 'run_name', 'run_id', 'n_params', 'n_tokens', 'flops', 'state'}; a table and totals."""
    head = f"{'#':>3} {'run':<22} {'id':<12} {'N':>7} {'D':>7} {'C':>9}  {'status':<9} detail"
    lines = [head, "-" * len(head)]
    counts, flops_done, flops_total = {}, 0.0, 0.0
    for r in rows:
        s: RunState = r["state"]
        counts[s.status] = counts.get(s.status, 0) + 1
        flops_total += r["flops"]
        detail = ""
        if s.status == "done":
            flops_done += r["flops"]
            detail = f"val_loss={s.final_val_loss:.4f}" if s.final_val_loss is not None else ""
            if s.wall_seconds:
                detail += f" in {s.wall_seconds:.0f}s"
        elif s.status in ("running", "pending") and s.step is not None and s.steps:
            flops_done += r["flops"] * s.step / s.steps
            where = f" on {s.holder.get('host')} pid {s.holder.get('pid')}" if s.holder else ""
            verb = "step" if s.status == "running" else "checkpointed run at step"
            detail = f"{verb} {s.step}/{s.steps} ({100 * s.step / s.steps:.0f}%){where}"
        elif s.status == "diverged":
            flops_done += r["flops"]
        lines.append(f"{r['index']:>3} {r['run_name']:<22} {r['run_id']:<12} {human(r['n_params']):>7} "
                     f"{human(r['n_tokens']):>7} {r['flops']:>9.3g}  {s.status:<9} {detail}".rstrip())
        if s.status == "failed" and s.error:
            lines.extend("      | " + line for line in s.error.splitlines())
    lines.append("-" * len(head))
    order = ["done", "running", "pending", "diverged", "failed"]
    summary = ", ".join(f"{counts[k]} {k}" for k in order if counts.get(k))
    pct = 100 * flops_done / flops_total if flops_total else 0.0
    lines.append(f"total: {len(rows)} runs ({summary or 'none'}); FLOPs {flops_done:.3g} / {flops_total:.3g} "
                 f"({pct:.0f}%)")
    return "\n".join(lines)
