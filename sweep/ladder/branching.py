"""WSD cooldown branches: several token budgets of one model size from one training run.

Runs of one size under a warmup-stable-decay schedule compute the same thing until the shorter
one's cooldown starts: same init, same data order (a pure function of seed and step) and the same
constant learning rate (Hägele et al. 2024). `branch` turns such a group of planned runs into one
trunk (the longest run, which keeps a checkpoint where each shorter budget's cooldown starts) and
branches (the shorter runs, which start from that checkpoint and train only their cooldown). A
branch computes exactly what an independent WSD run of its length computes, so it keeps that run's
run_id and result; only the cost changes. `branch_cost` says by how much.

Pure functions; the only file system access is `resolve_init`, which a launcher calls just before
training a branch.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import warnings
from pathlib import Path
from typing import Dict, List

from sweep.config import ConfigError, RunConfig, to_dict
from sweep.ladder.planned import PlannedRun
from sweep.run.schedule import cooldown_start, lr_factor  # the trainer's own rule, so they cannot drift apart
from sweep.store.results import NOT_IN_RUN_ID, human, read_result, run_dir, run_id
from sweep.store.runs import RunFolder, Status


class BranchingWarning(UserWarning):
    """branch() changed a setting so that the runs of a group can share one trunk."""


# Settings that never change what a run computes, among them the ones branch() itself sets: runs
# differing only in these (and the budget) share a trunk.
_NOT_IN_GROUP = NOT_IN_RUN_ID


def _group_key(cfg: RunConfig) -> str:
    d = to_dict(cfg)
    key = {"results_dir": str(cfg.results_dir), "sweep_name": cfg.sweep_name}
    for section in ("model", "data", "tokenizer", "train"):
        key[section] = {k: v for k, v in d[section].items() if k not in _NOT_IN_GROUP.get(section, ())}
    # warmup_fraction only matters while warmup_steps is unset; branch() sets warmup_steps per group
    key["train"].pop("warmup_steps")
    return json.dumps(key, sort_keys=True, default=str)


def _with_train(run: PlannedRun, meta: dict | None = None, **train_changes) -> PlannedRun:
    """A copy of `run` with train settings and meta changed (run_id recomputed; never mutates `run`)."""
    cfg = dataclasses.replace(run.cfg, train=dataclasses.replace(run.cfg.train, **train_changes),
                              meta={**run.cfg.meta, **(meta or {})})
    return dataclasses.replace(run, cfg=cfg, run_id=run_id(cfg, run.n_tokens))


def _shared_warmup(group: List[PlannedRun]) -> int:
    """warmup_steps every run of a group uses: the set value, or the shortest run's warmup_fraction."""
    t = group[0].cfg.train
    if t.warmup_steps is not None:
        return int(t.warmup_steps)
    shortest = min(group, key=lambda r: r.steps)
    return min(int(round(t.warmup_fraction * shortest.steps)), shortest.steps - 1)


def _check_same_prefix(trunk: PlannedRun, run: PlannedRun, start: int) -> None:
    """Raise ConfigError unless trunk and run have the same learning rate at every step before `start`."""
    for step in range(start):
        if lr_factor(step, trunk.steps, trunk.cfg.train) != lr_factor(step, run.steps, run.cfg.train):
            raise ConfigError(
                f"experiment.branching: {run.run_name} ({run.steps} steps) cannot branch from {trunk.run_name} "
                f"({trunk.steps} steps): their learning rates differ at step {step}, before the branch point "
                f"{start} (train.warmup_steps={run.cfg.train.warmup_steps} longer than the short run?): "
                f"lower train.warmup_steps or drop the shortest budget")


def branch(runs: List[PlannedRun]) -> List[PlannedRun]:
    """Plan WSD runs as trunks and cooldown branches; trunks come before their branches.

    Runs are grouped by everything but the budget (model shape, data, tokenizer, train settings,
    results folder). In a group of two or more, the longest run is the trunk: it keeps a checkpoint
    at each shorter run's cooldown start (`train.save_at_steps`); each shorter run starts from there
    (`train.init_from`) with meta `branch: true`, `parent: <trunk run_id>`, `branch_step`,
    `shared_prefix_flops` and `own_flops`. Every run of a group gets one `train.warmup_steps` (a
    warmup_fraction would give each length its own warmup): the set value, or the shortest run's
    warmup_fraction of its steps, with a BranchingWarning. A run whose cooldown is the whole run has
    nothing to share and stays independent. Indices are renumbered in the returned order.
    """
    not_wsd = [r for r in runs if r.cfg.train.schedule != "wsd"]
    if not_wsd:
        raise ConfigError(
            f"experiment.branching needs train.schedule=wsd, but {len(not_wsd)} run(s) use "
            f"{sorted({r.cfg.train.schedule for r in not_wsd})} (e.g. {not_wsd[0].run_name}): "
            f"set train.schedule=wsd or experiment.branching=false")
    groups: Dict[str, List[PlannedRun]] = {}
    for r in runs:
        groups.setdefault(_group_key(r.cfg), []).append(r)

    out: List[PlannedRun] = []
    for group in groups.values():
        if len(group) == 1:
            out.extend(group)
            continue
        warmup = _shared_warmup(group)
        if group[0].cfg.train.warmup_steps is None:
            warnings.warn(
                f"experiment.branching: train.warmup_steps is unset, so every run of size {group[0].run_name.rsplit('-D', 1)[0]} "
                f"gets train.warmup_steps={warmup} (train.warmup_fraction={group[0].cfg.train.warmup_fraction} of the "
                f"shortest run's {min(r.steps for r in group)} steps) to share one warmup; set train.warmup_steps "
                f"to choose it", BranchingWarning, stacklevel=2)
        group = [_with_train(r, warmup_steps=warmup) for r in group]
        trunk = max(group, key=lambda r: r.steps)
        branches = sorted((r for r in group if r is not trunk), key=lambda r: r.steps)
        starts = {}
        for r in branches:
            start = cooldown_start(r.steps, r.cfg.train)
            if start > 0:
                _check_same_prefix(trunk, r, start)
                starts[r.run_id] = start
        trunk = _with_train(trunk, save_at_steps=sorted(set(starts.values())),
                            meta={"trunk": True} if starts else None)
        out.append(trunk)
        trunk_dir = run_dir(trunk.cfg, trunk.n_tokens)
        for r in branches:
            start = starts.get(r.run_id)
            if start is None:
                out.append(r)
                continue
            prefix = start * r.cfg.train.tokens_per_step * r.flops_per_token
            out.append(_with_train(r, init_from=str(trunk_dir / f"branch-{start}.pt"), meta={
                "branch": True, "parent": trunk.run_id, "branch_step": start,
                "shared_prefix_flops": prefix, "own_flops": r.flops - prefix}))
    return [dataclasses.replace(r, index=i) for i, r in enumerate(out)]


def is_branch(run: PlannedRun) -> bool:
    """Whether a planned run starts from a trunk's checkpoint."""
    return bool(run.cfg.meta.get("branch")) and run.cfg.train.init_from is not None


def clear_branch_points(runs: List[PlannedRun]) -> List[Path]:
    """Delete the trunk checkpoints every branch started from has finished with; return them.

    A branch point is a whole training state (weights and AdamW moments, ~16 bytes a parameter),
    kept only so its branches can start; once each of them is done or diverged nothing reads it
    (a branch retried later without it trains from step 0, to the same result)."""
    users: Dict[str, List[PlannedRun]] = {}
    for r in runs:
        if is_branch(r):
            users.setdefault(r.cfg.train.init_from, []).append(r)
    removed = []
    for path, branches in users.items():
        finished = all((read_result(run_dir(b.cfg, b.n_tokens)) or {}).get("status") in (Status.DONE, Status.DIVERGED)
                       for b in branches)
        if finished and Path(path).exists():
            Path(path).unlink(missing_ok=True)
            removed.append(Path(path))
    return removed


def branch_cost(runs: List[PlannedRun]) -> dict:
    """FLOPs of a branched plan (`branch` output): trunks in full plus each branch's own steps,
    against independent runs and against the longest run of each group alone; per group and total.

    {"groups": [{trunk, run_name, n_runs, branched_flops, independent_flops, longest_flops,
    ratio_to_longest, saving}], "branches": {run_id: {parent, shared_prefix_flops, own_flops}},
    "total": {...same sums...}}. Runs in no group count in full on every side.
    """
    by_id = {r.run_id: r for r in runs}
    groups: Dict[str, dict] = {}
    branches: Dict[str, dict] = {}
    for r in runs:
        parent = r.cfg.meta.get("parent") if is_branch(r) else None
        if parent is not None and parent not in by_id:
            raise ConfigError(f"branch {r.run_name} names parent {parent}, which is not in this plan: "
                              f"pass the trunk together with its branches")
        head = parent or r.run_id
        g = groups.setdefault(head, {"trunk": head, "run_name": by_id[head].run_name, "n_runs": 0,
                                     "branched_flops": 0.0, "independent_flops": 0.0, "longest_flops": 0.0})
        g["n_runs"] += 1
        g["independent_flops"] += r.flops
        g["longest_flops"] = max(g["longest_flops"], r.flops)
        if parent is None:
            g["branched_flops"] += r.flops
        else:
            prefix = r.cfg.meta["branch_step"] * r.cfg.train.tokens_per_step * r.flops_per_token
            g["branched_flops"] += r.flops - prefix
            branches[r.run_id] = {"run_name": r.run_name, "parent": parent, "shared_prefix_flops": prefix,
                                  "own_flops": r.flops - prefix}
    rows = list(groups.values())
    total = {k: sum(g[k] for g in rows) for k in ("n_runs", "branched_flops", "independent_flops", "longest_flops")}
    for g in rows + [total]:
        g["ratio_to_longest"] = g["branched_flops"] / g["longest_flops"] if g["longest_flops"] else float("nan")
        g["saving"] = 1.0 - g["branched_flops"] / g["independent_flops"] if g["independent_flops"] else 0.0
    return {"groups": rows, "branches": branches, "total": total}


def describe_cost(cost: dict) -> str:
    """Lines for `sweep plan`: the compute the branches save against independent runs."""
    t = cost["total"]
    n_branches = len(cost["branches"])
    if not n_branches:
        return "no WSD cooldown branches in this plan (each group has one run)"
    lines = [f"WSD cooldown branches: {n_branches} of {t['n_runs']} runs start from a trunk's checkpoint"]
    for g in cost["groups"]:
        if g["n_runs"] > 1:
            lines.append(f"  {g['run_name']}: {g['n_runs']} budgets for {g['ratio_to_longest']:.2f}x the longest run "
                         f"({human(g['branched_flops'])} FLOPs vs {human(g['independent_flops'])} independent)")
    lines.append(f"  total {human(t['branched_flops'])} FLOPs vs {human(t['independent_flops'])} as independent runs: "
                 f"{100 * t['saving']:.0f}% saved, {t['ratio_to_longest']:.2f}x the longest runs alone")
    return "\n".join(lines)


def resolve_init(cfg: RunConfig) -> RunConfig:
    """The config to train a branch with, just before training it.

    When the trunk finished (done or diverged) without the branch point on disk, e.g. it was trained
    before this budget joined the sweep, the file will never come: train the branch from step 0
    instead, which computes the same result at the full cost. Otherwise `cfg` as it is (a missing
    file with the trunk still pending or running makes train() fail with "run the trunk first").
    """
    path = cfg.train.init_from
    if not path or Path(path).exists():
        return cfg
    status = (RunFolder(Path(path).parent).result() or {}).get("status")
    if status not in (Status.DONE, Status.DIVERGED):
        return cfg
    print(f"[sweep] {path} is missing but its trunk is {status}: training this branch from step 0 "
          f"(same result, full cost)", file=sys.stderr)
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, init_from=None))
