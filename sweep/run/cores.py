"""How many CPU cores this process may use (no torch: a job waiting for its slot asks too)."""

from __future__ import annotations

import os
from pathlib import Path


def usable_cores() -> int:
    """CPU cores this process may run on: its affinity mask (taskset, SLURM, containers' cpusets) and a cgroup
    v2 quota (docker --cpus), not os.cpu_count(), which counts the whole machine."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)
