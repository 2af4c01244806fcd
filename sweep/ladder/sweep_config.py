"""The sweep's config: conf/sweep.yaml's schema (a run config, the experiment, the launch settings), loaded
through Hydra and expanded into the grid."""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from sweep.compose import compose
from sweep.config import ConfigError, RunConfig, validate
from sweep.ladder.adaptive import Plans, plans_from_json, plans_to_json
from sweep.ladder.experiment import ExperimentConfig
from sweep.ladder.grid import Grid, grid
from sweep.store.results import human as human_count, sweep_dir, write_json_atomic


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
    """Train tokens of the corpus; `sweep run` sets it for its jobs so they need not read the data. Given to
    `sweep plan`, the plan uses it instead of reading (or downloading) the corpus."""
    estimate_corpus: bool = False
    """`sweep plan` only: when the corpus is not cached, estimate its train tokens from its size on disk (or
    data.max_bytes for a hub corpus) instead of reading or downloading it; the plan says it is an estimate."""
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


def register_sweep_configs() -> None:
    from hydra.core.config_store import ConfigStore

    from sweep.config import register_configs

    register_configs()
    ConfigStore.instance().store(name="sweep_schema", node=SweepConfig)


def load_sweep(overrides: List[str]) -> SweepConfig:
    """A SweepConfig from conf/sweep.yaml and Hydra overrides.

    An experiment file that inherits the default (`defaults: [default]`) without naming itself takes the name
    of its file as experiment.name; without a sweep_name of its own (or `sweep_name=` on the command line) it
    takes its experiment.name as sweep_name: its runs go to their own folder, never into the main job's."""
    register_sweep_configs()
    composed, choices = compose("sweep", overrides, choices=True)
    chosen = choices.get("experiment")
    if chosen and chosen != DEFAULT_EXPERIMENT:
        if composed.experiment.name == DEFAULT_EXPERIMENT:
            composed.experiment.name = chosen
        if composed.sweep_name == DEFAULT_EXPERIMENT and not any(
                o.lstrip("+~").startswith("sweep_name=") for o in overrides):
            composed.sweep_name = composed.experiment.name
    return from_omegaconf(composed)


DEFAULT_EXPERIMENT = "default"
"""conf/experiment/default.yaml's experiment.name and sweep_name: the main job's."""


def recorded_plan(sc: SweepConfig) -> dict:
    """The sweep folder's plan.json as the last `sweep run` wrote it; {} when there is none (or it is unreadable)."""
    try:
        recorded = json.loads((sweep_dir(sc.results_dir, sc.sweep_name) / "plan.json").read_text())
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def check_sweep_folder(sc: SweepConfig) -> None:
    """Refuse a sweep folder planned for another experiment (its plan.json says which): the two grids' runs would
    be mixed in one folder, one status table and one fit."""
    other = recorded_plan(sc).get("experiment")
    if other and other != sc.experiment.name:
        raise ConfigError(
            f"sweep_name={sc.sweep_name!r}: {sweep_dir(sc.results_dir, sc.sweep_name)} holds experiment {other!r}, "
            f"and this is experiment {sc.experiment.name!r}; their runs must not be mixed: give this one its own "
            f"folder (sweep_name={sc.experiment.name}), or run experiment={other} to continue that sweep")


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


def corpus_tokens(sc: SweepConfig, estimate: bool = False) -> int:
    """Train tokens of the sweep's corpus: launch.corpus_tokens when given, else the cached corpus's; else, with
    `estimate` (`sweep plan launch.estimate_corpus=true`), an estimate from its size that reads and downloads
    nothing; else it is prepared and cached now, after saying what that does."""
    if sc.launch.corpus_tokens is not None:
        return int(sc.launch.corpus_tokens)
    from sweep.run.data import cached_data, describe_build, estimate_train_tokens, prepare_data

    data = cached_data(sc.data, sc.tokenizer)
    if data is None and estimate:
        tokens, how = estimate_train_tokens(sc.data, sc.tokenizer)
        if tokens is None:
            raise ConfigError(f"launch.estimate_corpus=true: {how}")
        print(f"[sweep] corpus not read: {human_count(tokens)} train tokens {how}; `sweep run` reads it "
              f"(launch.corpus_tokens=N plans from a known count)", file=sys.stderr)
        return tokens
    if data is None:
        print(f"[sweep] the corpus is not cached yet: this {describe_build(sc.data, sc.tokenizer)}. "
              f"`sweep plan launch.estimate_corpus=true` plans without it, from its size", file=sys.stderr)
        data = prepare_data(sc.data, sc.tokenizer, progress=sc.launch.progress)
    if data.vocab_size != sc.tokenizer.vocab_size:
        raise ConfigError(f"tokenizer.vocab_size={sc.tokenizer.vocab_size} but the tokenizer has "
                          f"{data.vocab_size} tokens: set tokenizer.vocab_size={data.vocab_size}")
    return data.n_train_tokens


LADDER_FILE = "ladder.json"
"""An adaptive ladder's decisions (centres and edge extensions per budget), in the sweep folder: written by
`sweep run` after every wave, read by every command that expands the grid, so all of them agree."""


def ladder_path(sc: SweepConfig) -> Path:
    return sweep_dir(sc.results_dir, sc.sweep_name) / LADDER_FILE


def read_plans(sc: SweepConfig) -> Plans:
    """The adaptive ladder's recorded plans ({} before the first wave, or for another experiment's folder)."""
    if sc.experiment.centre != "adaptive":
        return {}
    try:
        raw = json.loads(ladder_path(sc).read_text())
    except (OSError, ValueError):
        return {}
    if raw.get("experiment") != sc.experiment.name or raw.get("flops_budgets") != list(sc.experiment.flops_budgets):
        return {}
    return plans_from_json(raw.get("budgets"))


def write_plans(sc: SweepConfig, plans: Plans) -> None:
    write_json_atomic(ladder_path(sc), {"experiment": sc.experiment.name,
                                        "flops_budgets": list(sc.experiment.flops_budgets),
                                        "budgets": plans_to_json(plans)})


def expand_sweep(sc: SweepConfig, n_train_tokens: Optional[int], plans: Optional[Plans] = None) -> Grid:
    """The sweep's grid; an adaptive ladder's plans default to those recorded in its folder."""
    if plans is None:
        plans = read_plans(sc)
    g = grid(sc.experiment, to_run_config(sc), sc.tokenizer.vocab_size, n_train_tokens, plans)
    for r in g.runs:
        validate(r.cfg)
    return g


def plan(sweep: "SweepConfig | List[str]", n_train_tokens: Optional[int] = None) -> Grid:
    """The ladder of a sweep, each run with its exact N, D, C, LR and batch: from a SweepConfig or from Hydra
    overrides composed with conf/ (e.g. ["experiment=default"]). Without n_train_tokens the grid keeps runs
    the corpus may be too small for (`sweep plan` reads the corpus and drops them)."""
    sc = load_sweep(list(sweep)) if isinstance(sweep, (list, tuple)) else sweep
    return expand_sweep(sc, n_train_tokens)


def planned_grid(sc: SweepConfig):
    """(grid, corpus tokens or None) of a sweep as its last `sweep run` planned it, without reading the corpus:
    the corpus size comes from launch.corpus_tokens or the recorded plan.json. Without either, the grid is
    the one before corpus-size drops (nothing has run yet)."""
    n_train = sc.launch.corpus_tokens
    recorded = recorded_plan(sc)
    if n_train is None and recorded.get("experiment") == sc.experiment.name:
        n_train = recorded.get("corpus_tokens")
    return expand_sweep(sc, n_train), n_train
