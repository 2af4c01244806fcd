"""`sweep plan|run|status`: a sweep config becomes a grid, a plan, and a Hydra multirun.

`sweep run experiment=NAME [overrides]` composes conf/sweep.yaml, expands the grid, refuses a plan
that cannot run, then starts a Hydra multirun over `run_index` with the chosen `hydra/launcher`
(basic: one run after another in this process; `parallel`: each run its own process on this
box, at most `launch.slots` at a time, or on a GPU box up to `launch.runs_per_gpu` runs on each of
`launch.gpus` GPUs, both chosen by `sweep run` when null, larger runs taking bigger shares
(packing.py), most FLOPs first (slots.py); `slurm`: one SLURM job per run through
hydra-submitit-launcher). Each job (job.py) reads its run from the plan `sweep run` writes, takes the run's lock
and calls `train()`, which skips a finished run and resumes an interrupted one. The schema lives in
sweep_config.py, GPU placement in placement.py, the sweep's bar in progress.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import sys
from typing import List, Optional, Tuple

from sweep.config import ConfigError, validate
from sweep.ladder.branching import branch_cost, clear_branch_points, describe_cost
from sweep.ladder.grid import (Grid, PlannedRun, adaptive_line, describe_dropped, family_line, planned_run,
                               run_hparams)
from sweep.launch import slurm_pack
from sweep.launch.job import hydra_multirun, write_job_plan
from sweep.launch.mps import mps_status, private_mps
from sweep.launch.packing import GpuInfo, Packing, detect_gpus
from sweep.launch.placement import describe_launch, resolve_launch, share_units, usable_cores
from sweep.ladder.plan import (MAIN_VERIFY_MULTIPLE, available_memory, check_plan, duration, estimate_seconds,
                               plan_table, probe_throughput, schedule_seconds)
from sweep.launch.progress import SweepProgress
from sweep.launch.slots import queue_folder, queue_order, write_queue
from sweep.ladder.status import run_state, status_table
from sweep.ladder.waves import run_waves
from sweep.ladder.sweep_config import (LaunchConfig, SweepConfig, check_sweep_folder, corpus_tokens, expand_sweep,
                                       load_sweep, planned_grid, read_plans, to_run_config, write_plans)
from sweep.store.results import human, run_dir, sweep_dir, write_json_atomic
from sweep.store.runs import Status, clear_done_checkpoint

log = logging.getLogger("sweep.launch.launch")


# ----------------------------------------------------------------------------- plan


def remote_device(sc: SweepConfig) -> bool:
    """A CUDA device asked for on a machine without CUDA (a SLURM login node): it is resolved where each job
    runs, and nothing here touches CUDA, measures its memory or probes its speed."""
    if not sc.train.device.startswith("cuda"):
        return False
    from sweep.run import cuda

    return not cuda.available()


def _device_name(sc: SweepConfig) -> str:
    if remote_device(sc):
        return sc.train.device
    from sweep.run import runtime

    return str(runtime.pick_device(sc.train))


def plan_problems(sc: SweepConfig, runs: List[PlannedRun], n_train: Optional[int]) -> List[str]:
    """check_plan against this machine's memory, or none when the device is resolved where each job runs."""
    device = _device_name(sc)
    return check_plan(runs, n_train, None if remote_device(sc) else available_memory(device), device)


def prepare_plan(sc: SweepConfig, probe: bool, estimate_corpus: bool = False):
    """(grid, corpus tokens, problems, estimated seconds per run)."""
    n_train = corpus_tokens(sc, estimate=estimate_corpus)
    g = expand_sweep(sc, n_train)
    problems = plan_problems(sc, g.runs, n_train)
    seconds = None
    if probe and not problems and not remote_device(sc):
        seconds = estimate_seconds(g.runs, probe_throughput(g.runs, steps=sc.launch.probe_steps))
    return g, n_train, problems, seconds


def _header(sc: SweepConfig, n_train: int) -> str:
    e = sc.experiment
    about = f": {e.description}" if e.description else ""
    return (f"sweep {sc.sweep_name!r}, experiment {e.name!r}{about}\n"
            f"corpus {sc.data.source}{'' if not sc.data.path else ' ' + sc.data.path}: {human(n_train)} train tokens, "
            f"vocab {sc.tokenizer.vocab_size}, seq_len {sc.model.seq_len}, {sc.train.tokens_per_step} tokens/step, "
            f"device {_device_name(sc)}"
            + (" (no CUDA on this machine: resolved where each job runs; memory and speed not checked here)"
               if remote_device(sc) else "") + f"\n{family_line(e)}")


# ----------------------------------------------------------------------------- GPUs and packing


def placement(sc: SweepConfig, runs: List[PlannedRun],
              gpus: Optional[GpuInfo] = None) -> Tuple[LaunchConfig, Optional[Packing], GpuInfo]:
    """resolve_launch for this box: its GPUs (`gpus`, else detected) when the runs train on CUDA, else none."""
    if not _device_name(sc).startswith("cuda") or remote_device(sc):
        gpus = GpuInfo(0, None)
    elif gpus is None:
        gpus = detect_gpus()
    asked = dataclasses.replace(sc.launch, devices=sc.launch.devices or os.environ.get("CUDA_VISIBLE_DEVICES") or None)
    launch, packing = resolve_launch(asked, runs, gpus, usable_cores())
    return launch, packing, gpus


def launch_line(sc: SweepConfig, launch: LaunchConfig, packing: Optional[Packing], gpus: GpuInfo) -> str:
    """How the runs are placed (describe_launch), or, for a CUDA sweep submitted from a machine without CUDA,
    that each job is placed on the GPU node it lands on."""
    if remote_device(sc):
        return (f"launch: train.device={sc.train.device} on the nodes the jobs run on; this machine has no CUDA to "
                f"measure, so each job takes one GPU there, one run per job unless launch.runs_per_gpu=K or "
                f"launch.gpu_memory=BYTES lets tiny runs share a job (docs/slurm.md)")
    return describe_launch(sc.launch, launch, packing, gpus, mps_status())


# ----------------------------------------------------------------------------- plan command


def parallel_estimate(sc: SweepConfig, g: Grid) -> Optional[str]:
    """On a CPU box with several cores: the sweep's wall time with one run per core (hydra/launcher=parallel
    launch.slots=<cores>, what `sweep main` uses), from a probe at one thread per run, plus for an IsoFLOP
    ladder the run `sweep main` verifies at MAIN_VERIFY_MULTIPLE x its largest budget."""
    cores = usable_cores()
    if _device_name(sc) != "cpu" or cores < 2 or not g.runs:
        return None
    slots = sc.launch.slots if sc.launch.slots > 1 else cores
    per_run = estimate_seconds(g.runs, probe_throughput(g.runs, steps=sc.launch.probe_steps,
                                                        threads=max(1, cores // slots)))
    wall = schedule_seconds(g.runs, per_run, slots)
    line = (f"with hydra/launcher=parallel launch.slots={slots} (one thread each"
            f"{', a wave per budget' if sc.experiment.centre == 'adaptive' else ''}): about {duration(wall)}")
    if sc.experiment.flops_budgets:
        top = max(sc.experiment.flops_budgets)
        middle = sorted((r for r in g.runs if r.cfg.meta.get("budget_flops") == top), key=lambda r: r.n_params)
        middle = middle[len(middle) // 2]
        # probed as the verification run will train: its D is 5x the middle run's, so the batch rule gives it
        # larger steps, which run faster per FLOP (default ladder, 2-core EPYC: 2.0 min estimated this way, 2.3
        # at the middle run's batch, 2.0 measured)
        base, vocab = to_run_config(sc), sc.tokenizer.vocab_size
        d_verify = MAIN_VERIFY_MULTIPLE * top / middle.flops_per_token
        train = run_hparams(base, sc.experiment, middle.cfg.model, d_verify, vocab, {})
        run = planned_run(0, dataclasses.replace(base, train=train), middle.cfg.model,
                          max(1, round(d_verify / train.tokens_per_step)), vocab, dict(middle.cfg.meta))
        verify = estimate_seconds([run], probe_throughput([run], steps=sc.launch.probe_steps))[0]
        line += (f"; `sweep main` adds its verification run at {MAIN_VERIFY_MULTIPLE:g}x ({MAIN_VERIFY_MULTIPLE * top:.2g}"
                 f" FLOPs, about {duration(verify)}) and the fit (about 1m): about {duration(wall + verify + 60)} "
                 f"in all")
    return line


def plan_command(argv: List[str]) -> int:
    sc = load_sweep(argv)
    check_sweep_folder(sc)
    g, n_train, problems, seconds = prepare_plan(sc, probe=sc.launch.probe, estimate_corpus=sc.launch.estimate_corpus)
    print(_header(sc, n_train))
    if sc.experiment.centre == "adaptive":
        print(adaptive_line(sc.experiment))
    if g.dropped:
        print(describe_dropped(g.dropped))
    print(plan_table(g.runs, seconds))
    if sc.launch.probe and not problems:
        line = parallel_estimate(sc, g)
        if line:
            print(line)
    if sc.experiment.branching:
        print(describe_cost(branch_cost(g.runs)))
    launch, packing, gpus = placement(sc, g.runs)
    print(launch_line(sc, launch, packing, gpus))
    launcher, why = choose_launcher(sc, argv, gpus, g.runs)
    if why:
        print(why.replace("launcher: ", "launcher: `sweep run` will use ", 1))
    if problems:
        print("refusing this plan:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    return 0


def asked_launcher(overrides: List[str]) -> Optional[str]:
    """The Hydra launcher named on the command line (the last hydra/launcher=...), or None."""
    return next((a.split("=", 1)[1] for a in reversed(overrides) if a.startswith("hydra/launcher=")), None)


def choose_launcher(sc: SweepConfig, overrides: List[str], gpus: Optional[GpuInfo] = None,
                    runs: Optional[List[PlannedRun]] = None) -> Tuple[str, str]:
    """(Hydra launcher, why it was chosen here or ''). The one asked for; else basic, except where the runs train
    on this box's GPUs and basic would leave them idle: with several GPUs (basic trains one run at a time on GPU
    0), or with one GPU the packing rule shares among k > 1 of `runs` (basic trains tiny runs one at a time, each
    compiling from cold). There the parallel launcher: one job per GPU slot, packed by sweep/launch/packing.py."""
    asked = asked_launcher(overrides)
    if asked is not None:
        return asked, ""
    if remote_device(sc) or not _device_name(sc).startswith("cuda"):
        return "basic", ""
    gpus = gpus or detect_gpus()
    if gpus.count >= 2:
        return "parallel", (f"launcher: hydra/launcher=parallel, for the {gpus.count} GPUs this box shows (basic "
                            f"would train one run at a time on GPU 0); pass hydra/launcher=basic to keep to one")
    if gpus.count == 1 and runs:
        launch, _, _ = placement(sc, runs, gpus)
        if launch.gpus and (launch.runs_per_gpu or 1) > 1:
            return "parallel", (f"launcher: hydra/launcher=parallel, to pack up to {launch.runs_per_gpu} runs on "
                                f"this box's one GPU as the packing rule says (basic would train them one at a time, "
                                f"each compiling from cold); pass hydra/launcher=basic to train one at a time")
    return "basic", ""


def plan_record(sc: SweepConfig, g: Grid, n_train: int) -> dict:
    """What `sweep status` needs to list pending runs without re-reading the corpus."""
    runs = [{"index": r.index, "run_id": r.run_id, "run_name": r.run_name, "n_params": r.n_params,
             "n_params_non_embedding": r.n_params_non_embedding, "n_tokens": r.n_tokens, "steps": r.steps,
             "flops": r.flops, "flops_6nd": r.flops_6nd, "meta": r.cfg.meta} for r in g.runs]
    dropped = [{"run_name": r.run_name, "reason": reason} for r, reason in g.dropped]
    return {"sweep_name": sc.sweep_name, "experiment": sc.experiment.name, "corpus_tokens": n_train,
            "runs": runs, "dropped": dropped}


# ----------------------------------------------------------------------------- commands


def split_flags(argv: List[str]) -> tuple:
    overrides, retry = [], False
    for a in argv:
        if a in ("--retry-failed", "--retry_failed"):
            retry = True
        elif a.startswith("--"):
            raise ConfigError(f"unknown option {a!r}: `sweep run` takes --retry-failed and Hydra overrides key=value")
        else:
            overrides.append(a)
    return overrides, retry


def _status_rows(runs) -> list:
    rows = []
    for r in runs:
        rows.append({"index": r.index, "run_name": r.run_name, "run_id": r.run_id, "n_params": r.n_params,
                     "n_tokens": r.n_tokens, "flops": r.flops, "state": run_state(run_dir(r.cfg, r.n_tokens))})
    return rows


def run_command(argv: List[str]) -> int:
    overrides, retry = split_flags(argv)
    if retry:
        overrides.append("launch.retry_failed=true")
    # `run_index=3` or `run_index=0,2` runs part of the grid; a list is no Hydra value, so it is taken out first
    chosen = [a for a in overrides if a.startswith("run_index=")]
    overrides = [a for a in overrides if not a.startswith("run_index=")]
    sc = load_sweep(overrides)
    check_sweep_folder(sc)
    if not any(a.startswith("sweep_name=") for a in overrides):  # the jobs compose the name load_sweep chose
        overrides = [*overrides, f"sweep_name={sc.sweep_name}"]
    launcher = asked_launcher(overrides) or "basic"  # a machine without CUDA chooses no other
    if remote_device(sc) and not launcher.startswith("slurm"):
        raise ConfigError(f"train.device={sc.train.device!r} but this machine has no CUDA, and hydra/launcher={launcher} "
                          f"trains here: submit to GPU nodes with hydra/launcher=slurm_gpu (the device is resolved there), "
                          f"or train here with train.device=cpu or auto")
    if sc.experiment.centre == "adaptive" and sc.experiment.flops_budgets and not chosen:
        return _run_adaptive(sc, overrides, retry)
    g, n_train, problems, _ = prepare_plan(sc, probe=False)
    overrides = _with_launcher(sc, overrides, g.runs)
    if not _announce(sc, g, n_train, problems):
        return 2
    wanted = set(range(len(g.runs)))
    if chosen:
        try:
            wanted = {int(x) for x in chosen[-1].split("=", 1)[1].split(",")}
        except ValueError:
            raise ConfigError(f"{chosen[-1]}: give run indices as integers, e.g. run_index=0,2") from None
        if not wanted <= set(range(len(g.runs))):
            raise ConfigError(f"{chosen[-1]}: this grid has runs 0..{len(g.runs) - 1}")
    rc = _launch(sc, g, overrides, wanted, retry)
    return _finish(g, rc)


def _with_launcher(sc: SweepConfig, overrides: List[str], runs: List[PlannedRun]) -> List[str]:
    """`overrides` with the launcher choose_launcher picks for `runs` on this box, saying why, when none was named."""
    launcher, why = choose_launcher(sc, overrides, runs=runs)
    if not why:
        return overrides
    print(why)
    return [*overrides, f"hydra/launcher={launcher}"]


def _announce(sc: SweepConfig, g: Grid, n_train: int, problems: List[str]) -> bool:
    """Print the plan; False (after saying why) when it is refused. Records plan.json when it is not."""
    print(_header(sc, n_train))
    if g.dropped:
        print(describe_dropped(g.dropped))
    print(plan_table(g.runs))
    if sc.experiment.branching:
        print(describe_cost(branch_cost(g.runs)))
    if problems:
        print("refusing this plan:\n  " + "\n  ".join(problems), file=sys.stderr)
        return False
    write_json_atomic(sweep_dir(sc.results_dir, sc.sweep_name) / "plan.json", plan_record(sc, g, n_train))
    return True


def _launch(sc: SweepConfig, g: Grid, overrides: List[str], wanted: set, retry: bool) -> int:
    """Train the pending runs among `wanted` through the configured Hydra launcher; the multirun's return code."""
    # Decided once here, then given to every job: a job must not touch CUDA before _placed pins its GPU.
    launch, packing, gpus = placement(sc, g.runs)
    print(launch_line(sc, launch, packing, gpus))
    todo = []
    for r in g.runs:
        if r.index not in wanted:
            continue
        status = run_state(run_dir(r.cfg, r.n_tokens)).status
        if status == Status.PENDING or (status == Status.FAILED and retry):
            todo.append(r.index)
    skipped = len(wanted) - len(todo)
    if skipped:
        print(f"{skipped} of {len(wanted)} runs are finished or running elsewhere; launching the other {len(todo)}")
    rc = 0
    shared_gpu = bool(todo) and (launch.gpus or 0) > 0 and launch.runs_per_gpu > 1
    mps = private_mps() if sc.launch.mps and shared_gpu else contextlib.nullcontext()
    # WSD branches start from their trunk's checkpoint: parallel and SLURM launchers run jobs in
    # any order, so trunks (and unbranched runs) go first as one multirun, then the branches.
    waves = [[i for i in todo if g.runs[i].cfg.train.init_from is None],
             [i for i in todo if g.runs[i].cfg.train.init_from is not None]]
    with mps as started, SweepProgress([g.runs[i] for i in sorted(wanted)],
                                       enabled=sc.launch.progress and bool(todo)):
        if started is not None:
            print(started.describe())
        for k, wave in enumerate(w for w in waves if w):
            queue = queue_folder(sweep_dir(sc.results_dir, sc.sweep_name).absolute() / "multirun" / "slots")
            write_queue(queue, queue_order([g.runs[i] for i in wave]),
                        {i: share_units(g.runs[i].cfg, launch) for i in wave})
            plan = sweep_dir(sc.results_dir, sc.sweep_name).absolute() / "multirun" / "plans" / f"wave-{k}.json"
            write_job_plan(plan, [g.runs[i] for i in wave], dataclasses.replace(launch, queue=str(queue)))
            grouping = slurm_pack.job_groups(overrides, sc.launch, [g.runs[i] for i in wave])
            try:
                if grouping:  # tiny runs sharing a SLURM job's GPU
                    print(slurm_pack.describe(grouping))
                    rc = slurm_pack.launch_groups(overrides, plan, grouping) or rc
                    continue
                rc = hydra_multirun(overrides + [f"run_index={','.join(map(str, wave))}", f"launch.plan='{plan}'"]) or rc
            finally:
                shutil.rmtree(queue, ignore_errors=True)
    return rc


def _finish(g: Grid, rc: int) -> int:
    """Tidy checkpoints, print the status table; 0 when every run is done."""
    for r in g.runs:
        clear_done_checkpoint(run_dir(r.cfg, r.n_tokens))
    removed = clear_branch_points(g.runs)
    if removed:
        print(f"removed {len(removed)} branch-point checkpoint{'s' if len(removed) > 1 else ''} "
              f"that every branch has finished with")
    rows = _status_rows(g.runs)
    print(status_table(rows))
    all_done = all(row["state"].status == Status.DONE for row in rows)
    return rc or (0 if all_done else 1)


def budget_results(sc: SweepConfig, g: Grid, budgets) -> dict:
    """{budget index: [(N, final val loss)]} of the finished runs of `budgets`, N as the experiment counts it."""
    out: dict = {}
    for r in g.runs:
        b = r.cfg.meta.get("budget_index")
        if b not in budgets:
            continue
        state = run_state(run_dir(r.cfg, r.n_tokens))
        if state.status == Status.DONE and state.final_val_loss is not None:
            n = r.n_params if sc.experiment.param_convention == "total" else r.n_params_non_embedding
            out.setdefault(b, []).append((float(n), float(state.final_val_loss)))
    return out


def _run_adaptive(sc: SweepConfig, overrides: List[str], retry: bool) -> int:
    """An adaptive ladder: one wave per budget, smallest first, each centred by what the earlier ones found,
    and extended where its minimum lands at an edge (sweep/ladder/waves.py)."""
    g, n_train, problems, _ = prepare_plan(sc, probe=False)
    overrides = _with_launcher(sc, overrides, g.runs)
    print(adaptive_line(sc.experiment))
    if not _announce(sc, g, n_train, problems):
        return 2
    codes = []

    def train_wave(g: Grid, wave: set) -> list:
        runs = [g.runs[i] for i in sorted(wave)]
        for r in runs:
            validate(r.cfg)
        problems = plan_problems(sc, runs, n_train)
        if problems:
            raise ConfigError("refusing this wave:\n  " + "\n  ".join(problems))
        write_json_atomic(sweep_dir(sc.results_dir, sc.sweep_name) / "plan.json", plan_record(sc, g, n_train))
        codes.append(_launch(sc, g, overrides, wave, retry))
        b = runs[0].cfg.meta.get("budget_index")
        return budget_results(sc, g, {b}).get(b, [])

    g, _ = run_waves(sc.experiment, to_run_config(sc), sc.tokenizer.vocab_size, n_train, read_plans(sc), train_wave,
                     save=lambda plans: write_plans(sc, plans))
    return _finish(g, next((c for c in codes if c), 0))


def status_command(argv: List[str]) -> int:
    sc = load_sweep(argv)
    check_sweep_folder(sc)
    g, n_train = planned_grid(sc)
    print(f"sweep {sc.sweep_name!r}, experiment {sc.experiment.name!r}: {sweep_dir(sc.results_dir, sc.sweep_name)}")
    if n_train is None and sc.experiment.flops_budgets:
        print("(no plan recorded yet: runs the corpus is too small for are not dropped from this list)")
    print(status_table(_status_rows(g.runs)))
    return 0
