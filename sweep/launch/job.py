"""One job of a sweep's Hydra multirun: read its run from the plan `sweep run` wrote, take its share, train it.

`sweep run` writes the wave's plan (`write_job_plan`) and starts the multirun (`hydra_multirun`); under every
launcher (basic, parallel, SLURM) each job calls `hydra_task`, which reads its run back (`read_job_plan`),
takes a slot or GPU share under the parallel launcher, and trains it unless it is finished or held
(`train_once`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from typing import List, Optional, Tuple

from sweep.compose import conf_dir
from sweep.config import ConfigError, RunConfig, from_dict, to_dict
from sweep.ladder.branching import resolve_init
from sweep.ladder.planned import PlannedRun
from sweep.ladder.sweep_config import LaunchConfig, SweepConfig, from_omegaconf, register_sweep_configs
from sweep.launch.placement import acquire_run_share, placed, share_units
from sweep.store.locks import RunLocked, release
from sweep.store.results import run_id, sweep_dir, write_json_atomic
from sweep.store.runs import RunFolder, Status

log = logging.getLogger("sweep.launch.job")


def write_job_plan(path: Path, runs: List[PlannedRun], launch: LaunchConfig) -> None:
    """What every job of a wave needs, written once by `sweep run`: the resolved launch settings and each
    run's whole config. Kept after the wave: SLURM requeues a job, which then reads it again."""
    write_json_atomic(path, {
        "launch": dataclasses.asdict(launch),
        "runs": {str(r.index): {"config": to_dict(r.cfg), "n_tokens": r.n_tokens, "run_id": r.run_id,
                                "units": share_units(r.cfg, launch)} for r in runs},
    })


def read_job_plan(path: str, index: Optional[int]) -> Tuple[RunConfig, int, int, LaunchConfig]:
    """(run config, n_tokens, units, launch settings) of run `index` in a jobs' plan."""
    try:
        plan = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"launch.plan={path}: cannot read the jobs' plan ({exc}); jobs are started by "
                          f"`sweep run`, which writes it") from None
    entry = plan["runs"].get(str(index))
    if entry is None:
        raise ConfigError(f"run_index={index}: not in this wave's plan {path} (runs {sorted(map(int, plan['runs']))})")
    cfg = from_dict(entry["config"])
    if run_id(cfg, int(entry["n_tokens"])) != entry["run_id"]:  # the config must come back exactly as planned
        raise ConfigError(f"launch.plan={path}: run {index}'s config does not give its planned run_id {entry['run_id']}")
    return cfg, int(entry["n_tokens"]), int(entry["units"]), LaunchConfig(**plan["launch"])


def train_once(cfg: RunConfig, n_tokens: int, retry_failed: bool = False, progress: bool = True) -> dict:
    """Train one run unless it is finished or another process holds it; never raises for a failed run."""
    from sweep.run import runtime

    runtime.pick_device(cfg.train)  # a GPU-sized run on a node without a GPU: refused before its folder exists
    folder = RunFolder.of(cfg, n_tokens)
    rdir = folder.path
    try:
        with folder.lock():
            existing = folder.result()
            status = existing.get("status") if existing else None
            if status in (Status.DONE, Status.DIVERGED) or (status == Status.FAILED and not retry_failed):
                note = "" if status != Status.FAILED else " (retry with `sweep run --retry-failed`)"
                print(f"[sweep] run {rdir.name} ({existing.get('run_name')}) is {status}{note}; skipping",
                      file=sys.stderr)
                return {"run_id": rdir.name, "status": status}
            from sweep.run.train import train

            try:
                result = train(cfg, progress=progress)
            except Exception as exc:  # recorded in result.json by train(); the other runs go on
                log.error("run %s failed: %s", rdir.name, exc)
                return {"run_id": rdir.name, "status": "failed", "error": str(exc)[-2000:]}
            return {"run_id": rdir.name, "status": result.get("status"), "final_val_loss": result.get("final_val_loss")}
    except RunLocked as exc:
        print(f"[sweep] {exc}; skipping it here", file=sys.stderr)
        return {"run_id": rdir.name, "status": "running"}


def run_job(sc: SweepConfig) -> dict:
    """One multirun job: read run `sc.run_index` from the wave's written plan, take a slot if the launcher runs
    jobs side by side, and train it."""
    if not sc.launch.plan:
        raise ConfigError(f"run_index={sc.run_index}: a job needs the plan `sweep run` writes (launch.plan); "
                          f"start the sweep with `sweep run`")
    cfg, n_tokens, units, launch = read_job_plan(sc.launch.plan, sc.run_index)
    # Under the parallel launcher (submitit's local executor) every job starts at once: the slots
    # keep at most launch.slots of them training. Basic runs one at a time; SLURM schedules itself.
    parallel = bool(os.environ.get("SUBMITIT_LOCAL_JOB_ID"))
    folder = sweep_dir(cfg.results_dir, cfg.sweep_name)
    locks, slot = acquire_run_share(folder, launch, sc.run_index, units) if parallel else ([], None)
    try:
        # a trunk that finished without this branch's point (trained before branching was on)
        # never writes it: the branch then trains from step 0, to the same result
        cfg = resolve_init(placed(cfg, launch, slot, len(locks) or 1))
        return train_once(cfg, n_tokens, launch.retry_failed, launch.progress)
    finally:
        for lock in locks:
            release(lock)


def hydra_task(composed) -> dict:
    """Hydra task function (module level so submitit can pickle it)."""
    return run_job(from_omegaconf(composed))


def hydra_multirun(overrides: List[str], task=None) -> int:
    """`sweep --multirun OVERRIDES` through Hydra's own entry point (and so its launcher plugins); each job runs
    `task` (default hydra_task: one run; sweep.launch.slurm_pack's group_task: a group of runs sharing a job)."""
    import hydra
    from hydra.core.global_hydra import GlobalHydra

    register_sweep_configs()
    GlobalHydra.instance().clear()
    saved = sys.argv
    sys.argv = [saved[0] if saved else "sweep", "--multirun", *overrides]
    try:
        hydra.main(config_path=str(conf_dir()), config_name="sweep", version_base="1.3")(task or hydra_task)()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = saved
        GlobalHydra.instance().clear()
    return 0
