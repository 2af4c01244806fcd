"""Where each run of a sweep trains: how many at once, which GPU, how many threads, and its share of a GPU.

`resolve_launch` and `describe_launch` are pure (the box is passed in); `placed` and `acquire_run_share` run
in a job, before torch touches CUDA.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import List, Optional, Tuple

from sweep.config import RunConfig
from sweep.run.cores import usable_cores
from sweep.launch.mps import MpsStatus, client_device
from sweep.launch.packing import GpuInfo, Packing, decide_packing, gpu_units, memory_fraction
from sweep.ladder.planned import PlannedRun
from sweep.launch.slots import acquire_share
from sweep.ladder.sweep_config import LaunchConfig, n_slots


def resolve_launch(launch: LaunchConfig, runs: List[PlannedRun], gpus: GpuInfo,
                   cpu_cores: int) -> Tuple[LaunchConfig, Optional[Packing]]:
    """`launch` with null gpus and runs_per_gpu decided, and the packing decision (None without GPUs).

    Pure: the box (`gpus`, `cpu_cores`) is passed in, so a CPU test can ask what a GPU box would do.
    Chosen here, each GPU holds `runs_per_gpu` of the sweep's smallest runs, and a larger run takes a
    bigger share (packing.gpu_units, from `gpu_memory`); set by the user, every run takes one slot.
    """
    listed = [d for d in (launch.devices or "").split(",") if d.strip()]
    n_gpus = launch.gpus if launch.gpus is not None else (min(len(listed), gpus.count) if listed else gpus.count)
    packing = None
    if n_gpus > 0 and gpus.memory and runs:
        packing = decide_packing([r.cfg for r in runs], gpus.memory, cpus_per_gpu(cpu_cores, n_gpus))
    if launch.runs_per_gpu or packing is None:
        return dataclasses.replace(launch, gpus=n_gpus, runs_per_gpu=launch.runs_per_gpu or 1, gpu_memory=None), packing
    return dataclasses.replace(launch, gpus=n_gpus, runs_per_gpu=packing.capacity, gpu_memory=gpus.memory), packing


def cpus_per_gpu(cpu_cores: int, n_gpus: int) -> int:
    return max(1, cpu_cores // max(1, n_gpus))


def describe_launch(asked: LaunchConfig, launch: LaunchConfig, packing: Optional[Packing], gpus: GpuInfo,
                    mps: MpsStatus) -> str:
    """What hydra/launcher=parallel will do on this box, and why (printed by `sweep plan` and `sweep run`)."""
    if not launch.gpus:
        return (f"launch: no GPU for these runs; hydra/launcher=parallel runs {n_slots(launch)} at a time "
                f"(launch.slots)")
    where = f"{launch.gpus} GPU{'s' if launch.gpus > 1 else ''}" + (f" ({gpus.name})" if gpus.name else "")
    shared = packing is not None and asked.runs_per_gpu is None and len(set(packing.per_run)) > 1
    up_to = "up to " if shared else ""
    head = (f"launch: {up_to}{launch.runs_per_gpu} run{'s' if launch.runs_per_gpu > 1 else ''} per GPU x {where} = "
            f"{up_to}{n_slots(launch)} at a time under hydra/launcher=parallel")
    if packing is None:
        return head + " (no GPU memory known here: packing not checked)"
    if asked.runs_per_gpu is None:
        lines = [head, f"  packing: {packing.reason}"]
        if shared:
            counts = {k: packing.per_run.count(k) for k in sorted(set(packing.per_run), reverse=True)}
            lines.append(f"  shares: a GPU is {launch.runs_per_gpu} slots; a run the rule packs k to a GPU takes "
                         f"ceil({launch.runs_per_gpu}/k) of them: " + ", ".join(
                             f"{n} run{'s' if n > 1 else ''} at k={k}" for k, n in counts.items()))
    else:
        lines = [head, f"  packing: launch.runs_per_gpu={asked.runs_per_gpu} as set; the rule would pick "
                       f"{packing.runs_per_gpu} ({packing.reason})"]
        if asked.runs_per_gpu > max(packing.by_memory, 1):
            lines.append(f"  warning: more runs per GPU than fit in its memory by the estimate "
                         f"({packing.by_memory}): expect CUDA out-of-memory errors")
    lines.append("  " + mps.describe())
    return "\n".join(lines)


def share_units(cfg: RunConfig, launch: LaunchConfig) -> int:
    """Slots of a GPU the run takes (packing.gpu_units); one without GPUs or a known GPU memory."""
    if (launch.gpus or 0) > 0 and launch.gpu_memory:
        return gpu_units(cfg, launch.runs_per_gpu or 1, launch.gpu_memory,
                         cpus_per_gpu(usable_cores(), launch.gpus))
    return 1


def acquire_run_share(folder: Path, launch: LaunchConfig, index: int, units: int) -> Tuple[list, int]:
    """Wait for this run's share of one GPU (or of this machine), in the launch's queue order."""
    gpus = launch.gpus or 0
    groups, capacity = (gpus, launch.runs_per_gpu or 1) if gpus > 0 else (1, n_slots(launch))
    return acquire_share(folder / "multirun" / "slots", groups, capacity, units, index,
                         queue=Path(launch.queue) if launch.queue else None)


def job_cores() -> int:
    """Cores this job may use: its SLURM allocation's (SLURM_CPUS_PER_TASK) inside one, never more than its
    affinity mask and cgroup quota allow (usable_cores)."""
    cores = usable_cores()
    slurm_cpus = os.environ.get("SLURM_CPUS_PER_TASK", "").strip()
    if slurm_cpus.isdigit() and int(slurm_cpus) > 0:
        cores = min(cores, int(slurm_cpus))
    return cores


def placed(cfg: RunConfig, launch: LaunchConfig, slot: Optional[int], units: int = 1) -> RunConfig:
    """Threads and GPU for this job (`slot`: its GPU's index when there are GPUs): a run alone in a SLURM
    allocation uses its cores; runs sharing a machine or an allocation share its cores by the slots they hold."""
    threads = cfg.train.threads
    if threads is None and slot is None and os.environ.get("SLURM_CPUS_PER_TASK"):
        threads = job_cores()
    if slot is not None:
        if (launch.gpus or 0) > 0:
            # Before torch initialises CUDA: the run sees exactly one GPU, its slot's.
            # submitit's local executor rewrites CUDA_VISIBLE_DEVICES to 0..gpus-1 for each job, so
            # the devices `sweep run` itself was given arrive as launch.devices.
            given = launch.devices or os.environ.get("CUDA_VISIBLE_DEVICES", "")
            visible = [g.strip() for g in str(given).split(",") if g.strip()]
            visible = visible or [str(i) for i in range(launch.gpus)]
            os.environ["CUDA_VISIBLE_DEVICES"] = client_device(visible[slot % len(visible)])
            capacity = launch.runs_per_gpu or 1
            if launch.gpu_memory and capacity > 1:
                # its slots' part of the GPU less its own CUDA context: a run that outgrows its estimate runs out
                # of memory itself (and retries at a smaller micro-batch), not its neighbours
                share = cfg.train.memory_fraction or memory_fraction(min(units, capacity), capacity, launch.gpu_memory)
                cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, memory_fraction=share))
        if threads is None:
            # the job's cores (an allocation's inside SLURM), shared by every run packed beside it
            threads = max(1, job_cores() // n_slots(launch)) * units
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, threads=threads))
