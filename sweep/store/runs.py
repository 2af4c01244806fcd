"""One run's folder, the only code that knows its file names: result, curve, progress, checkpoint, lock.

    <results_dir>/<sweep_name>/runs/<run_id>/
        result.json     status, final losses, N, D, C, provenance (written once, atomically)
        metrics.jsonl   the curve, a row per logged step (appended; a torn last line is dropped on read)
        progress.json   step / steps while training (what `sweep status` shows)
        checkpoint.pt   resume state; deleted when the run is done
        .lock           held by the process training it (sweep.store.locks)

A run's status is `Status`: done, diverged or failed when its result says so, running while some process
holds its lock, pending otherwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import List, Optional

from sweep.config import RunConfig
from sweep.store.locks import LOCK_FILE, RunLocked, lock_holder, run_lock
from sweep.store.results import load_result, read_jsonl, read_result, run_dir, write_json_atomic


class Status(str, Enum):
    """A run's status; str-valued, so it compares with and serialises as the plain word."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    DIVERGED = "diverged"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


FINISHED = (Status.DONE, Status.DIVERGED, Status.FAILED)
"""Statuses a result.json records; a run in one of them is not trained again (unless asked)."""


@dataclass
class RunState:
    """One run's state as `sweep status` shows it."""

    status: Status
    """See Status."""
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


@dataclass(frozen=True)
class RunFolder:
    """A run's folder (which may not exist yet)."""

    path: Path

    @classmethod
    def of(cls, cfg: RunConfig, n_tokens: int) -> "RunFolder":
        return cls(run_dir(cfg, n_tokens))

    @property
    def result_path(self) -> Path:
        return self.path / "result.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def progress_path(self) -> Path:
        return self.path / "progress.json"

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_FILE

    def result(self) -> Optional[dict]:
        """The result, or None when missing or unreadable (lenient: for listings)."""
        return read_result(self.result_path)

    def load(self, expect_run_id: Optional[str] = None) -> Optional[dict]:
        """The result, None when there is none, ResultError when it cannot be trusted (strict: before training)."""
        return load_result(self.result_path, expect_run_id)

    def write_result(self, record: dict) -> None:
        write_json_atomic(self.result_path, record)

    def progress(self) -> dict:
        try:
            obj = json.loads(self.progress_path.read_text())
        except (OSError, ValueError):
            return {}
        return obj if isinstance(obj, dict) else {}

    def write_progress(self, progress: dict) -> None:
        write_json_atomic(self.progress_path, progress)

    def metrics(self) -> List[dict]:
        """The curve's rows (a torn last line dropped)."""
        return read_jsonl(self.metrics_path)

    def lock(self, attempts: int = 5):
        """Context manager holding the run's lock (RunLocked if another live process trains it)."""
        return run_lock(self.path, attempts=attempts)

    def holder(self) -> Optional[dict]:
        return lock_holder(self.lock_path)

    def state(self) -> RunState:
        holder = self.holder()
        progress = self.progress()
        step, steps = progress.get("step"), progress.get("steps")
        if holder is not None:
            return RunState(Status.RUNNING, step, steps, holder=holder)
        result = self.result()
        if result is not None and result.get("status") in FINISHED:
            loss = result.get("final_val_loss")
            return RunState(Status(result["status"]), result.get("steps"), result.get("steps"),
                            final_val_loss=loss if isinstance(loss, (int, float)) else None,
                            wall_seconds=result.get("wall_seconds"), error=_error_tail(result.get("error")))
        return RunState(Status.PENDING, step, steps)


def run_folders(sweep_path: Path) -> List[RunFolder]:
    """Every run folder of a sweep, in name order."""
    runs = Path(sweep_path) / "runs"
    return [RunFolder(d) for d in sorted(p for p in runs.iterdir() if p.is_dir())] if runs.is_dir() else []


def result_folders(folder: Path) -> List[RunFolder]:
    """Run folders with a result.json under a sweep folder (its runs/) or directly under `folder`."""
    runs = run_folders(folder)
    if not runs:
        runs = [RunFolder(d) for d in sorted(p for p in Path(folder).iterdir() if p.is_dir())] \
            if Path(folder).is_dir() else []
    return [r for r in runs if r.result_path.exists()]


def clear_done_checkpoint(rdir: Path) -> bool:
    """Delete the checkpoint.pt of a done run: a kill between writing its result.json and deleting
    the checkpoint leaves it behind. Under the run's lock; False when there is nothing to delete or
    another process holds the run."""
    ckpt = Path(rdir) / "checkpoint.pt"
    if not ckpt.exists():
        return False
    try:
        with run_lock(rdir, attempts=1):
            if (read_result(rdir) or {}).get("status") != "done":
                return False
            ckpt.unlink(missing_ok=True)
            return True
    except RunLocked:
        return False
