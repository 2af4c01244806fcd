"""Slots: which job of a sweep trains now when its jobs share a machine or its GPUs.

Under the parallel launcher every job starts at once and waits for a share: `units` slots of one
group (a GPU; the whole machine without GPUs). Slots are fcntl locks, so a killed job frees its
own. `sweep run` writes each wave's queue, most FLOPs first, and a job takes free slots only when
no job ahead of it in the queue that still waits could take them now (list scheduling, longest
first). Without the order, whichever job polled first won: the longest runs often went last and
trained while the other GPUs sat idle. A job ahead that fits nowhere yet holds nothing back: the
slots that are free go to jobs behind it rather than idle (scripts/bench_slots.py measured that
holding a GPU for it costs more than it saves).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from sweep.store.results import write_json_atomic
from sweep.store.locks import blocking_lock, lock_holder, release, try_lock

REGISTER_GRACE_S = 60.0
"""How long a job waits for jobs ahead of it in the queue that have not started waiting yet (still
starting up); one that never does (it failed before) is then passed over."""


def queue_order(runs) -> List[int]:
    """Run indices in the order they take shares: most training FLOPs first, ties by index."""
    return [r.index for r in sorted(runs, key=lambda r: (-r.flops, r.index))]


def pick_group(free: Sequence[int], ahead: Sequence[int], units: int) -> Optional[int]:
    """The group a job needing `units` slots takes now, or None to wait.

    `free`: free slots of each group; `ahead`: units of the jobs before this one in the queue that
    still wait. Those are served first, in order, each on the least busy group that fits it; one that
    fits nowhere yet is passed over."""
    free = list(free)

    def least_busy(groups):
        return max(groups, key=lambda g: free[g])  # max keeps the first of equals: the lowest index

    for need in ahead:
        fits = [g for g in range(len(free)) if free[g] >= need]
        if fits:
            free[least_busy(fits)] -= need
    fits = [g for g in range(len(free)) if free[g] >= units]
    return least_busy(fits) if fits else None


def _slot(folder: Path, group: int, capacity: int, u: int) -> Path:
    return folder / f"slot-{group * capacity + u}.lock"


def free_slots(folder: Path, groups: int, capacity: int) -> List[int]:
    return [sum(lock_holder(_slot(folder, g, capacity, u)) is None for u in range(capacity)) for g in range(groups)]


def _take_in(folder: Path, group: int, capacity: int, units: int) -> Optional[list]:
    got = []
    for u in range(capacity):
        lock = try_lock(_slot(folder, group, capacity, u), attempts=1)
        if lock is not None:
            got.append(lock)
            if len(got) == units:
                return got
    for lock in got:
        release(lock)
    return None


def take_share(folder: Path, groups: int, capacity: int, units: int, ahead: Sequence[int] = ()) \
        -> Optional[Tuple[list, int]]:
    """One try at `units` free slots of one group, after the jobs `ahead`: (locks, group) or None."""
    group = pick_group(free_slots(folder, groups, capacity), [min(a, capacity) for a in ahead], units)
    if group is None:
        return None
    got = _take_in(folder, group, capacity, units)
    return None if got is None else (got, group)


# ----------------------------------------------------------------------------- the launch's queue


def write_queue(folder: Path, order: List[int], units: Dict[int, int]) -> None:
    """The queue of one wave of jobs (`sweep run` writes it before launching them)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "queue.json", {"order": order, "units": {str(i): u for i, u in units.items()}})


def acquire_share(folder: Path, groups: int, capacity: int, units: int, index: int,
                  queue: Optional[Path] = None, poll_s: float = 1.0,
                  grace_s: float = REGISTER_GRACE_S) -> Tuple[list, int]:
    """Wait until run `index` may take `units` slots of one group; (locks, group).

    With a `queue` folder, the job waits behind the jobs ahead of it that still wait (holding
    `wait-<index>.lock`) or have not started waiting yet (for `grace_s` after this one did)."""
    units = min(units, capacity)
    order, owed = [], {}
    if queue is not None and (queue / "queue.json").exists():
        q = json.loads((queue / "queue.json").read_text())
        order, owed = q["order"], {int(i): u for i, u in q["units"].items()}
    if index not in order:  # launched some other way: first come, first served
        while True:
            taken = take_share(folder, groups, capacity, units)
            if taken is not None:
                return taken
            time.sleep(poll_s)
    before = order[:order.index(index)]
    waiting = try_lock(queue / f"wait-{index}.lock", attempts=1)
    since = time.monotonic()
    try:
        while True:
            with blocking_lock(queue / "mutex.lock"):
                early = time.monotonic() - since < grace_s
                ahead = [owed.get(i, 1) for i in before if not (queue / f"placed-{i}").exists()
                         and (early or lock_holder(queue / f"wait-{i}.lock") is not None)]
                taken = take_share(folder, groups, capacity, units, ahead)
                if taken is not None:
                    (queue / f"placed-{index}").touch()
                    return taken
            time.sleep(poll_s)
    finally:
        release(waiting)


def queue_folder(slots: Path) -> Path:
    """A fresh folder for one launch's queue (concurrent `sweep run`s of one sweep each have their own)."""
    return slots / f"queue-{os.getpid()}-{time.time_ns()}"
