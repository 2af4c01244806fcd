"""Several tiny runs in one SLURM job: under hydra/launcher=slurm or slurm_gpu, runs the packing rule puts k > 1
to a GPU share one job (and its GPU) instead of taking a whole GPU each.

On a login node there is no GPU to measure, so the rule needs the nodes' GPU memory stated
(`launch.gpu_memory`, bytes) or the count given outright (`launch.runs_per_gpu`); without either, each
job trains one run, as before. `sweep run` groups each wave's runs, most FLOPs first, into jobs of at
most a GPU's worth of shares (`job_groups`, pure), so that runs of one job take about as long and the
job holds its GPU no longer than its longest run needs. Hydra then starts one job per group; the job
starts one process per run, and those take their shares of the job's GPU through the slot code
(slots.py) and train as a job of the parallel launcher would (placement.placed): one visible GPU, a
memory fraction when the GPU memory is known, and the job's cores divided among them.

Preemption: SLURM signals every process of the job. Each run checkpoints at its next step boundary and
stops without requeueing (preempt.REQUEUE_ENV); the job's own process waits for all of them and only
then requeues the job once (SIGTERM: preempt.requeue_slurm_job; SIGUSR2: submitit's handler). The
requeued job starts the same group again, and each run resumes from its checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from sweep.ladder.planned import PlannedRun
from sweep.ladder.sweep_config import LaunchConfig, SweepConfig
from sweep.launch.packing import decide_packing, gpu_units
from sweep.launch.slots import queue_order, write_queue
from sweep.run.preempt import Preempted
from sweep.store.results import write_json_atomic


# ----------------------------------------------------------------------------- grouping (pure)


def slurm_launcher(overrides: Sequence[str]) -> bool:
    """Whether these `sweep run` overrides choose a SLURM launcher (slurm, slurm_gpu or one derived from them)."""
    asked = next((a.split("=", 1)[1] for a in reversed(overrides) if a.startswith("hydra/launcher=")), "")
    return asked.startswith("slurm")


def shares(runs: Sequence[PlannedRun], launch: LaunchConfig) -> tuple:
    """(capacity, {run index: units}): a job's GPU divided into `capacity` shares and each run's part of it.

    `launch.runs_per_gpu` as given: that many runs per job, one share each. Else from `launch.gpu_memory`
    (the nodes' GPU memory, bytes) by the packing rule, for CUDA runs: the sweep's smallest runs k to a
    GPU, a larger run a bigger share (packing.gpu_units). Else (1, one each): a job per run."""
    ones = {r.index: 1 for r in runs}
    if launch.runs_per_gpu:
        return launch.runs_per_gpu, ones
    if not launch.gpu_memory or not runs or not runs[0].cfg.train.device.startswith("cuda"):
        return 1, ones
    capacity = decide_packing([r.cfg for r in runs], launch.gpu_memory).capacity
    return capacity, {r.index: gpu_units(r.cfg, capacity, launch.gpu_memory) for r in runs}


def pack_groups(runs: Sequence[PlannedRun], capacity: int, units: Dict[int, int]) -> List[List[int]]:
    """Run indices grouped into jobs: in queue order (most FLOPs first), each job filled until the next run's
    units would pass `capacity`. Neighbours in that order have similar FLOPs, so a job's runs end at about
    the same time; a run of `capacity` units or more has a job of its own."""
    groups: List[List[int]] = []
    used = capacity
    for index in queue_order(runs):
        need = min(units.get(index, 1), capacity)
        if used + need > capacity:
            groups.append([])
            used = 0
        groups[-1].append(index)
        used += need
    return groups


def job_groups(overrides: Sequence[str], launch: LaunchConfig, runs: Sequence[PlannedRun]) -> Optional[dict]:
    """The grouping of a wave for a SLURM launcher, or None where every job would train one run (another
    launcher, or the rule gives k = 1): {"groups": [[index, ...], ...], "capacity", "units", "gpu_memory"}."""
    if not slurm_launcher(overrides) or not runs:
        return None
    capacity, units = shares(runs, launch)
    groups = pack_groups(runs, capacity, units)
    if all(len(g) == 1 for g in groups):
        return None
    return {"groups": groups, "capacity": capacity, "units": {str(i): u for i, u in units.items()},
            "gpu_memory": launch.gpu_memory}


def describe(grouping: dict) -> str:
    """One line for `sweep run`: how many jobs for how many runs, and why."""
    groups = grouping["groups"]
    n = sum(len(g) for g in groups)
    return (f"launch: {n} runs in {len(groups)} SLURM job{'s' if len(groups) > 1 else ''}, up to {grouping['capacity']} shares of one job's GPU "
            f"each (launch.runs_per_gpu / launch.gpu_memory; most FLOPs first, so a job's runs end together)")


# ----------------------------------------------------------------------------- `sweep run`'s side


def groups_path(plan: Path) -> Path:
    """Where a wave's grouping lies, beside the jobs' plan (a requeued job reads it again)."""
    return plan.with_name(plan.stem + ".groups.json")


def launch_groups(overrides: List[str], plan: Path, grouping: dict) -> int:
    """One SLURM job per group of the wave whose jobs' plan is `plan`; the multirun's return code."""
    groups = grouping["groups"]
    write_json_atomic(groups_path(plan), {**grouping, "groups": {str(g[0]): g for g in groups}})
    leaders = ",".join(str(g[0]) for g in groups)
    from sweep.launch.job import hydra_multirun

    return hydra_multirun(overrides + [f"run_index={leaders}", f"launch.plan='{plan}'"], task=group_task)


# ----------------------------------------------------------------------------- the job's side


def group_task(composed) -> dict:
    """Hydra task of a grouped job (module level so submitit can pickle it)."""
    from sweep.ladder.sweep_config import from_omegaconf

    return run_group(from_omegaconf(composed))


class GroupStopped(Preempted):
    """A grouped job was asked to stop and all its runs have stopped at their checkpoints. A Preempted, so that
    StopRequest requeues the job, and a BaseException, so that submitit records no result for it."""

    def __init__(self, signum: int, members: List[int]):
        self.signum, self.step, self.steps = signum, None, None
        BaseException.__init__(self, f"stopped by {signal.Signals(signum).name}: runs {members} of this job "
                                     f"left at their checkpoints")


def run_group(sc: SweepConfig) -> dict:
    """Train the group led by run `sc.run_index`: one process per run sharing this job's GPU (or cores).

    A stop signal is passed on to the runs; once all have stopped at a checkpoint, this process requeues
    the job (StopRequest) and leaves with GroupStopped, without a result, so that submitit waits for the
    requeued job."""
    from sweep.launch.job import run_job
    from sweep.run.preempt import REQUEUE_ENV, StopRequest

    grouping = json.loads(groups_path(Path(sc.launch.plan)).read_text())
    members = grouping["groups"][str(sc.run_index)]
    if len(members) == 1:
        return run_job(sc)
    capacity = int(grouping["capacity"])
    where = os.environ.get("SLURM_JOB_ID") or str(os.getpid())
    queue = Path(sc.launch.plan).parent.parent / "slots" / f"slurm-{where}-{time.time_ns()}"
    write_queue(queue, members, {i: int(grouping["units"][str(i)]) for i in members})
    env = {**os.environ, REQUEUE_ENV: "0"}
    children = {i: subprocess.Popen([sys.executable, "-m", "sweep.launch.slurm_pack", sc.launch.plan, str(i),
                                     str(queue), str(capacity), json.dumps(grouping.get("gpu_memory"))], env=env)
                for i in members}
    passed_on = None
    try:
        with StopRequest() as stop:
            while any(p.poll() is None for p in children.values()):
                if stop.signum is not None and stop.signum != passed_on:
                    passed_on = stop.signum
                    for p in children.values():
                        if p.poll() is None:
                            p.send_signal(stop.signum)
                time.sleep(0.5)
            stopped = [i for i, p in children.items() if p.returncode != 0]
            if stop.signum is not None and stopped:  # StopRequest requeues the job as it leaves, now that all stopped
                raise GroupStopped(stop.signum, stopped)
    finally:
        shutil.rmtree(queue, ignore_errors=True)
    codes = {i: p.returncode for i, p in children.items()}
    failed = {i: c for i, c in codes.items() if c != 0}
    if failed:
        raise RuntimeError(f"runs of this job's group exited with {failed} (their logs are in this job's log)")
    return {"runs": members, "returncodes": codes}


def train_member(plan: str, index: int, queue: Path, capacity: int, gpu_memory: Optional[int]) -> dict:
    """One run of a grouped job: take its share of the job's GPU (or cores) in the group's queue, then train
    it as a parallel launcher's job would."""
    from sweep.ladder.branching import resolve_init
    from sweep.launch.job import read_job_plan, train_once
    from sweep.launch.placement import placed
    from sweep.launch.slots import acquire_share
    from sweep.run.cores import usable_cores
    from sweep.store.locks import release

    cfg, n_tokens, _, launch = read_job_plan(plan, index)
    units = int(json.loads(queue.joinpath("queue.json").read_text())["units"][str(index)])
    gpu = cfg.train.device.startswith("cuda")
    here = dataclasses.replace(launch, gpus=1 if gpu else 0, runs_per_gpu=capacity, slots=capacity,
                               gpu_memory=gpu_memory if gpu else None,
                               devices=os.environ.get("CUDA_VISIBLE_DEVICES") or None, queue=str(queue))
    if cfg.train.threads is None:  # the job's cores, shared by its runs (not all of SLURM_CPUS_PER_TASK each)
        threads = max(1, usable_cores() // capacity) * units
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, threads=threads))
    locks, slot = acquire_share(queue, 1, capacity, units, index, queue=queue)
    try:
        return train_once(resolve_init(placed(cfg, here, slot, len(locks))), n_tokens, launch.retry_failed,
                          launch.progress)
    finally:
        for lock in locks:
            release(lock)


def main(argv: List[str]) -> int:
    plan, index, queue, capacity, gpu_memory = argv
    try:
        train_member(plan, int(index), Path(queue), int(capacity), json.loads(gpu_memory))
    except Preempted as exc:
        print(f"[sweep] {exc}", file=sys.stderr)
        return 128 + exc.signum
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
