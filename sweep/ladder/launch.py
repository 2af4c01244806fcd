"""`sweep plan|run|status`: a sweep config becomes a grid, a plan, and a Hydra multirun.

`sweep run experiment=NAME [overrides]` composes conf/sweep.yaml, expands the grid, refuses a plan
that cannot run, then starts a Hydra multirun over `run_index` with the chosen `hydra/launcher`
(basic: one run after another in this process; `parallel`: each run its own process on this
box, at most `launch.slots` at a time, or on a GPU box up to `launch.runs_per_gpu` runs on each of
`launch.gpus` GPUs, both chosen by `sweep run` when null, larger runs taking bigger shares
(sweep/packing.py), most FLOPs first (sweep/slots.py); `slurm`: one SLURM job per run through
hydra-submitit-launcher). Each job re-expands the grid (deterministic), takes the run's lock and
calls `train()`, which skips a finished run and resumes an interrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

from sweep.ladder.branching import branch_cost, clear_branch_points, describe_cost, is_branch, resolve_init
from sweep.compose import compose, conf_dir
from sweep.config import ConfigError, RunConfig, from_dict, to_dict, validate
from sweep.ladder.grid import ExperimentConfig, Grid, PlannedRun, describe_dropped, family_line, grid
from sweep.ladder.mps import MpsStatus, mps_status, private_mps
from sweep.ladder.packing import GpuInfo, Packing, decide_packing, detect_gpus, gpu_units
from sweep.ladder.plan import available_memory, check_plan, estimate_seconds, plan_table, probe_throughput
from sweep.store.locks import RunLocked
from sweep.store.runs import FINISHED, RunFolder, Status, clear_done_checkpoint
from sweep.store.results import human, run_dir, run_id, sweep_dir, write_json_atomic
from sweep.ladder.slots import acquire_share, queue_folder, queue_order, write_queue
from sweep.ladder.status import run_state, status_table
from sweep.store.locks import release

log = logging.getLogger("sweep.ladder.launch")


@dataclass
class LaunchConfig:
    """How `sweep run` executes the grid (never changes a run's result)."""

    slots: int = 1
    """Runs at once on this machine under hydra/launcher=parallel when it has no GPU (each its own process)."""
    gpus: Optional[int] = None
    """GPUs for hydra/launcher=parallel, one per run (slots = gpus * runs_per_gpu); null: all CUDA GPUs seen."""
    runs_per_gpu: Optional[int] = None
    """Runs sharing one GPU at a time (tiny models leave it idle); null: from model size and memory (packing.py)."""
    devices: Optional[str] = None
    """CUDA devices the parallel launcher hands out, e.g. '2,3'; null: CUDA_VISIBLE_DEVICES of `sweep run`, else all."""
    mps: bool = False
    """Start a private CUDA MPS daemon for the sweep when runs share a GPU (their kernels then run side by side)."""
    retry_failed: bool = False
    """Train failed runs again (`sweep run --retry-failed`); by default they are left as they are."""
    progress: bool = True
    """Show progress bars (the sweep's and each run's)."""
    probe: bool = True
    """`sweep plan`: time a few steps on this device to estimate wall time."""
    probe_steps: int = 10
    """Timed steps per probed shape."""
    gpu_memory: Optional[int] = None
    """Bytes of one GPU; `sweep run` sets it for its jobs so each takes its own share of a GPU (null: one slot each)."""
    corpus_tokens: Optional[int] = None
    """Train tokens of the corpus; `sweep run` sets it for its jobs so they need not read the data."""
    queue: Optional[str] = None
    """Folder of the queue in which the parallel launcher's jobs take their shares (set by `sweep run` in the
    jobs' plan)."""
    plan: Optional[str] = None
    """The jobs' plan `sweep run` writes for a wave (multirun/plans/wave-*.json): each run's full config and
    the resolved launch settings. A job reads its run from it; it never re-expands the grid."""


@dataclass
class SweepConfig(RunConfig):
    """conf/sweep.yaml: the base run config, the experiment (grid) and the launch settings."""

    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    launch: LaunchConfig = field(default_factory=LaunchConfig)
    run_index: Optional[int] = None
    """The run a multirun job trains (set by `sweep run`)."""


# ----------------------------------------------------------------------------- config


def register_sweep_configs() -> None:
    from hydra.core.config_store import ConfigStore

    from sweep.config import register_configs

    register_configs()
    ConfigStore.instance().store(name="sweep_schema", node=SweepConfig)


def load_sweep(overrides: List[str]) -> SweepConfig:
    """A SweepConfig from conf/sweep.yaml and Hydra overrides."""
    register_sweep_configs()
    return from_omegaconf(compose("sweep", overrides))


def from_omegaconf(composed) -> SweepConfig:
    from omegaconf import OmegaConf

    sc = OmegaConf.to_object(composed)
    # Single runs of a sweep (and W&B filters) know which experiment they belong to.
    if not sc.meta.get("experiment"):
        sc.meta = {**sc.meta, "experiment": sc.experiment.name}
    validate(to_run_config(sc))
    validate_launch(sc.launch)
    return sc


def to_run_config(sc: SweepConfig) -> RunConfig:
    return RunConfig(**{f.name: getattr(sc, f.name) for f in dataclasses.fields(RunConfig)})


def validate_launch(launch: LaunchConfig) -> None:
    if launch.gpus is not None and launch.gpus < 0:
        raise ConfigError(f"launch.gpus={launch.gpus}: must be >= 0, or null for every GPU of this box")
    if launch.runs_per_gpu is not None and launch.runs_per_gpu < 1:
        raise ConfigError(f"launch.runs_per_gpu={launch.runs_per_gpu}: must be >= 1, or null to choose it from "
                          f"model size and GPU memory")


def n_slots(launch: LaunchConfig) -> int:
    """Runs at once under the parallel launcher. `sweep run` resolves null gpus/runs_per_gpu before
    launching (resolve_launch); a job that still sees null treats it as no GPU / one run each."""
    gpus, per_gpu = launch.gpus or 0, launch.runs_per_gpu or 1
    return gpus * per_gpu if gpus > 0 else max(1, launch.slots)


def corpus_tokens(sc: SweepConfig) -> int:
    """Train tokens of the sweep's corpus (prepares and caches it on first use)."""
    if sc.launch.corpus_tokens is not None:
        return int(sc.launch.corpus_tokens)
    from sweep.run.data import prepare_data

    data = prepare_data(sc.data, sc.tokenizer, progress=sc.launch.progress)
    if data.vocab_size != sc.tokenizer.vocab_size:
        raise ConfigError(f"tokenizer.vocab_size={sc.tokenizer.vocab_size} but the tokenizer has "
                          f"{data.vocab_size} tokens: set tokenizer.vocab_size={data.vocab_size}")
    return data.n_train_tokens


def expand_sweep(sc: SweepConfig, n_train_tokens: Optional[int]) -> Grid:
    g = grid(sc.experiment, to_run_config(sc), sc.tokenizer.vocab_size, n_train_tokens)
    for r in g.runs:
        validate(r.cfg)
    return g


# ----------------------------------------------------------------------------- plan


def _device_name(sc: SweepConfig) -> str:
    from sweep.run import runtime

    return str(runtime.pick_device(sc.train))


def prepare_plan(sc: SweepConfig, probe: bool):
    """(grid, corpus tokens, problems, estimated seconds per run)."""
    n_train = corpus_tokens(sc)
    g = expand_sweep(sc, n_train)
    device = _device_name(sc)
    problems = check_plan(g.runs, n_train, available_memory(device), device)
    seconds = None
    if probe and not problems:
        seconds = estimate_seconds(g.runs, probe_throughput(g.runs, steps=sc.launch.probe_steps))
    return g, n_train, problems, seconds


def _header(sc: SweepConfig, n_train: int) -> str:
    e = sc.experiment
    about = f": {e.description}" if e.description else ""
    return (f"sweep {sc.sweep_name!r}, experiment {e.name!r}{about}\n"
            f"corpus {sc.data.source}{'' if not sc.data.path else ' ' + sc.data.path}: {human(n_train)} train tokens, "
            f"vocab {sc.tokenizer.vocab_size}, seq_len {sc.model.seq_len}, {sc.train.tokens_per_step} tokens/step, "
            f"device {_device_name(sc)}\n{family_line(e)}")


# ----------------------------------------------------------------------------- GPUs and packing


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


def placement(sc: SweepConfig, runs: List[PlannedRun]) -> Tuple[LaunchConfig, Optional[Packing], GpuInfo]:
    """resolve_launch for this box: its GPUs when the runs train on CUDA, else none."""
    gpus = detect_gpus() if _device_name(sc).startswith("cuda") else GpuInfo(0, None)
    asked = dataclasses.replace(sc.launch, devices=sc.launch.devices or os.environ.get("CUDA_VISIBLE_DEVICES") or None)
    launch, packing = resolve_launch(asked, runs, gpus, os.cpu_count() or 1)
    return launch, packing, gpus


# ----------------------------------------------------------------------------- plan command


def plan_command(argv: List[str]) -> int:
    sc = load_sweep(argv)
    g, n_train, problems, seconds = prepare_plan(sc, probe=sc.launch.probe)
    print(_header(sc, n_train))
    if g.dropped:
        print(describe_dropped(g.dropped))
    print(plan_table(g.runs, seconds))
    if sc.experiment.branching:
        print(describe_cost(branch_cost(g.runs)))
    launch, packing, gpus = placement(sc, g.runs)
    print(describe_launch(sc.launch, launch, packing, gpus, mps_status()))
    if problems:
        print("refusing this plan:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    return 0


def plan_record(sc: SweepConfig, g: Grid, n_train: int) -> dict:
    """What `sweep status` needs to list pending runs without re-reading the corpus."""
    runs = [{"index": r.index, "run_id": r.run_id, "run_name": r.run_name, "n_params": r.n_params,
             "n_params_non_embedding": r.n_params_non_embedding, "n_tokens": r.n_tokens, "steps": r.steps,
             "flops": r.flops, "flops_6nd": r.flops_6nd, "meta": r.cfg.meta} for r in g.runs]
    dropped = [{"run_name": r.run_name, "reason": reason} for r, reason in g.dropped]
    return {"sweep_name": sc.sweep_name, "experiment": sc.experiment.name, "corpus_tokens": n_train,
            "runs": runs, "dropped": dropped}


# ----------------------------------------------------------------------------- jobs


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


def share_units(cfg: RunConfig, launch: LaunchConfig) -> int:
    """Slots of a GPU the run takes (packing.gpu_units); one without GPUs or a known GPU memory."""
    if (launch.gpus or 0) > 0 and launch.gpu_memory:
        return gpu_units(cfg, launch.runs_per_gpu or 1, launch.gpu_memory,
                         cpus_per_gpu(os.cpu_count() or 1, launch.gpus))
    return 1


def _acquire_share(folder: Path, launch: LaunchConfig, index: int, units: int) -> Tuple[list, int]:
    """Wait for this run's share of one GPU (or of this machine), in the launch's queue order."""
    gpus = launch.gpus or 0
    groups, capacity = (gpus, launch.runs_per_gpu or 1) if gpus > 0 else (1, n_slots(launch))
    return acquire_share(folder / "multirun" / "slots", groups, capacity, units, index,
                         queue=Path(launch.queue) if launch.queue else None)


def _placed(cfg: RunConfig, launch: LaunchConfig, slot: Optional[int], units: int = 1) -> RunConfig:
    """Threads and GPU for this job (`slot`: its GPU's index when there are GPUs): sequential runs
    use every core, parallel ones share them by the slots they hold."""
    threads = cfg.train.threads
    slurm_cpus = os.environ.get("SLURM_CPUS_PER_TASK")
    if threads is None and slurm_cpus:
        threads = int(slurm_cpus)
    if slot is not None:
        if (launch.gpus or 0) > 0:
            # Before torch initialises CUDA: the run sees exactly one GPU, its slot's.
            # submitit's local executor rewrites CUDA_VISIBLE_DEVICES to 0..gpus-1 for each job, so
            # the devices `sweep run` itself was given arrive as launch.devices.
            given = launch.devices or os.environ.get("CUDA_VISIBLE_DEVICES", "")
            visible = [g.strip() for g in str(given).split(",") if g.strip()]
            visible = visible or [str(i) for i in range(launch.gpus)]
            os.environ["CUDA_VISIBLE_DEVICES"] = visible[slot % len(visible)]
        if threads is None:
            threads = max(1, (os.cpu_count() or 1) // n_slots(launch)) * units
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, threads=threads))


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
    locks, slot = _acquire_share(folder, launch, sc.run_index, units) if parallel else ([], None)
    try:
        # a trunk that finished without this branch's point (trained before branching was on)
        # never writes it: the branch then trains from step 0, to the same result
        cfg = resolve_init(_placed(cfg, launch, slot, len(locks) or 1))
        return train_once(cfg, n_tokens, launch.retry_failed, launch.progress)
    finally:
        for lock in locks:
            release(lock)


def _job(composed) -> dict:
    """Hydra task function (module level so submitit can pickle it)."""
    return run_job(from_omegaconf(composed))


def _hydra_multirun(overrides: List[str]) -> int:
    """`sweep --multirun OVERRIDES` through Hydra's own entry point (and so its launcher plugins)."""
    import hydra
    from hydra.core.global_hydra import GlobalHydra

    register_sweep_configs()
    GlobalHydra.instance().clear()
    saved = sys.argv
    sys.argv = [saved[0] if saved else "sweep", "--multirun", *overrides]
    try:
        hydra.main(config_path=str(conf_dir()), config_name="sweep", version_base="1.3")(_job)()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = saved
        GlobalHydra.instance().clear()
    return 0


# ----------------------------------------------------------------------------- progress


class SweepProgress:
    """A bar for the whole sweep (FLOPs done / total, runs done / total), polled from the results
    folder so it works whichever process or machine trains the runs."""

    def __init__(self, runs: List[PlannedRun], interval: float = 2.0, enabled: bool = True):
        self.runs, self.interval, self.enabled = runs, interval, enabled
        self._stop = threading.Event()
        self._thread = None
        self.bar = None

    @staticmethod
    def own_flops(r: PlannedRun) -> tuple:
        """(FLOPs the run trains itself, its first step): a WSD branch starts at its trunk's branch
        point, so the shared prefix is counted once, in the trunk."""
        start = int(r.cfg.meta.get("branch_step", 0)) if is_branch(r) else 0
        return r.flops - start * r.cfg.train.tokens_per_step * r.flops_per_token, start

    def poll(self) -> tuple:
        finished, flops = 0, 0.0
        for r in self.runs:
            own, start = self.own_flops(r)
            s = run_state(run_dir(r.cfg, r.n_tokens))
            if s.status in FINISHED:
                finished += 1
                flops += own
            elif s.step is not None and s.steps and s.steps > start:
                flops += own * min(max(s.step - start, 0) / (s.steps - start), 1.0)
        return finished, flops

    def _update(self) -> None:
        finished, flops = self.poll()
        self.bar.set_description(f"sweep {finished}/{len(self.runs)} runs", refresh=False)
        self.bar.n = flops
        self.bar.refresh()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._update()

    def __enter__(self):
        if self.enabled and self.runs:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=sum(self.own_flops(r)[0] for r in self.runs), unit="FLOP", unit_scale=True,
                            desc=f"sweep 0/{len(self.runs)} runs", mininterval=1.0, dynamic_ncols=True)
            self._update()
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._update()
            self.bar.close()


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
    sc = load_sweep(overrides)
    g, n_train, problems, _ = prepare_plan(sc, probe=False)
    print(_header(sc, n_train))
    if g.dropped:
        print(describe_dropped(g.dropped))
    print(plan_table(g.runs))
    if sc.experiment.branching:
        print(describe_cost(branch_cost(g.runs)))
    if problems:
        print("refusing this plan:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    write_json_atomic(sweep_dir(sc.results_dir, sc.sweep_name) / "plan.json", plan_record(sc, g, n_train))
    # Decided once here, then given to every job: a job must not touch CUDA before _placed pins its GPU.
    launch, packing, gpus = placement(sc, g.runs)
    print(describe_launch(sc.launch, launch, packing, gpus, mps_status()))

    # `run_index=3` or `run_index=0,2` runs part of the grid
    chosen = [a for a in overrides if a.startswith("run_index=")]
    overrides = [a for a in overrides if not a.startswith("run_index=")]
    wanted = set(range(len(g.runs)))
    if chosen:
        try:
            wanted = {int(x) for x in chosen[-1].split("=", 1)[1].split(",")}
        except ValueError:
            raise ConfigError(f"{chosen[-1]}: give run indices as integers, e.g. run_index=0,2") from None
        if not wanted <= set(range(len(g.runs))):
            raise ConfigError(f"{chosen[-1]}: this grid has runs 0..{len(g.runs) - 1}")
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
    with mps as started, SweepProgress(g.runs, enabled=sc.launch.progress and bool(todo)):
        if started is not None:
            print(started.describe())
        for k, wave in enumerate(w for w in waves if w):
            queue = queue_folder(sweep_dir(sc.results_dir, sc.sweep_name).absolute() / "multirun" / "slots")
            write_queue(queue, queue_order([g.runs[i] for i in wave]),
                        {i: share_units(g.runs[i].cfg, launch) for i in wave})
            plan = sweep_dir(sc.results_dir, sc.sweep_name).absolute() / "multirun" / "plans" / f"wave-{k}.json"
            write_job_plan(plan, [g.runs[i] for i in wave], dataclasses.replace(launch, queue=str(queue)))
            try:
                rc = _hydra_multirun(overrides + [f"run_index={','.join(map(str, wave))}", f"launch.plan='{plan}'"]) or rc
            finally:
                shutil.rmtree(queue, ignore_errors=True)
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


def status_command(argv: List[str]) -> int:
    sc = load_sweep(argv)
    plan_path = sweep_dir(sc.results_dir, sc.sweep_name) / "plan.json"
    n_train = sc.launch.corpus_tokens
    try:
        recorded = json.loads(plan_path.read_text())
    except (OSError, ValueError):
        recorded = None
    if n_train is None and recorded and recorded.get("experiment") == sc.experiment.name:
        n_train = recorded.get("corpus_tokens")
    # Without a recorded corpus size the grid is shown before corpus-size drops (nothing has run yet).
    g = expand_sweep(sc, n_train)
    print(f"sweep {sc.sweep_name!r}, experiment {sc.experiment.name!r}: {sweep_dir(sc.results_dir, sc.sweep_name)}")
    if n_train is None and sc.experiment.flops_budgets:
        print("(no plan recorded yet: runs the corpus is too small for are not dropped from this list)")
    print(status_table(_status_rows(g.runs)))
    return 0
