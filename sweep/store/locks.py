"""The one lock implementation: exclusive fcntl locks on files, with the holder's pid and host inside.

fcntl.flock dies with its process, so a killed process never leaves a stale lock. Used for a run's
folder (`run_lock`, `<run>/.lock`, by the runner and by train()) and for the launcher's GPU slots and
queue (`try_lock` / `release` on any file). `lock_holder` answers who holds one without taking it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import IO, Optional

LOCK_FILE = ".lock"
"""Per-run lock file, `<run_dir>/.lock`."""


def _me() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname()}


def _holder(f) -> dict:
    f.seek(0)
    try:
        obj = json.loads(f.read() or "{}")
        return obj if isinstance(obj, dict) else {}
    except ValueError:
        return {}


def _flock(f, attempts: int, wait: float) -> bool:
    """Take the exclusive lock on open file f with a few short retries (`sweep status` holds a shared lock
    for an instant while it looks); False when another process keeps it."""
    for attempt in range(attempts):
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            if attempt == attempts - 1:
                return False
            time.sleep(wait)
    return False


def _write_holder(f) -> None:
    f.seek(0)
    f.truncate()
    f.write(json.dumps({**_me(), "time": time.time()}) + "\n")
    f.flush()


def try_lock(path: Path, attempts: int = 5, wait: float = 0.2) -> Optional[IO]:
    """Take the exclusive lock at `path`; the open file (keep it, then `release` it) or None if another
    process holds it. The holder's pid and host are written into the file for `sweep status`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a+")
    if not _flock(f, attempts, wait):
        f.close()
        return None
    _write_holder(f)
    return f


def release(lock: Optional[IO]) -> None:
    """Let go of a lock from try_lock; the holder is cleared first, so the file never names a process that let go."""
    if lock is not None:
        lock.seek(0)
        lock.truncate()
        lock.flush()
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
            return _holder(f)
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    return None


@contextlib.contextmanager
def blocking_lock(path: Path):
    """Hold the exclusive lock at `path` for the `with` block, waiting for it: for writes that take
    milliseconds and where every writer must get its turn (the sweep index)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


class RunLocked(RuntimeError):
    """Another live process is training this run."""

    def __init__(self, run_path: Path, holder: dict):
        self.run_path, self.holder = Path(run_path), holder
        super().__init__(f"run {Path(run_path).name} is being trained by pid {holder.get('pid')} on host "
                         f"{holder.get('host')} (lock {Path(run_path) / LOCK_FILE}); wait for it, or stop that "
                         f"process: a killed process frees the lock at once")


_held_locks: dict[str, int] = {}
"""realpath of a lock file -> nesting depth, for locks this process holds through run_lock."""


@contextlib.contextmanager
def run_lock(path: str | Path, attempts: int = 5, wait: float = 0.2):
    """Hold the exclusive lock of a run folder (`<path>/.lock`) for the `with` block; RunLocked if another
    live process holds it.

    Re-entrant within a process: a nested run_lock, or one taken while this process holds the file
    through try_lock (recognised by the pid written in it), passes through, so the sweep runner and
    train() can both guard the same run."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    lock_path = folder / LOCK_FILE
    key = os.path.realpath(lock_path)
    if _held_locks.get(key):
        _held_locks[key] += 1
        try:
            yield
        finally:
            _held_locks[key] -= 1
        return
    f = open(lock_path, "a+")
    if not _flock(f, 1, wait):
        holder = _holder(f)
        if {k: holder.get(k) for k in ("pid", "host")} == _me():
            f.close()
            yield  # this process already holds it through try_lock
            return
        if attempts <= 1 or not _flock(f, attempts - 1, wait):
            holder = _holder(f)
            f.close()
            raise RunLocked(folder, holder)
    _write_holder(f)
    _held_locks[key] = 1
    try:
        yield
    finally:
        del _held_locks[key]
        release(f)
