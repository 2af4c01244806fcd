"""Grid expansion: an experiment (a few lines of config) becomes a list of fully specified runs.

Pure functions only: the same experiment, base config and vocabulary always expand to the same
runs in the same order, which is what lets every job of a multirun re-expand the grid and pick
its own run by index.

Three ways to give the grid (combinable with Hydra overrides):
  1. explicit: model sizes (`shapes` and/or `target_params_non_embedding`) x token budgets
     (`n_tokens`, absolute, or `tokens_per_param`, multiples of N);
  2. IsoFLOP (Chinchilla approach 2): compute budgets `flops_budgets` x model sizes, either the
     listed sizes or `sizes_per_budget` sizes spread around each budget's compute-optimal size;
     D follows from C and the model's exact FLOPs per token; runs that need more tokens than the
     corpus holds or fewer than `min_steps` steps are dropped with a warning naming them;
  3. target size: non-embedding parameter counts turned into shapes by `shape_for_params`.

Every run trains on a whole number of optimizer steps: D = steps * train.tokens_per_step.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from sweep.config import ConfigError, ModelConfig, RunConfig
from sweep.model import count_params, flops_per_token
from sweep.branching import branch
from sweep.planned import Grid, PlannedRun
from sweep.results import human, run_id, run_name


class DroppedRunsWarning(UserWarning):
    """Some grid points were dropped (corpus too small, too few steps, duplicates)."""


@dataclass
class ShapeConfig:
    """One model shape of an explicit grid."""

    n_layer: int = 2
    """Number of transformer blocks."""
    d_model: int = 64
    """Residual stream width."""
    n_head: int = 4
    """Attention heads; must divide d_model."""


@dataclass
class ExperimentConfig:
    """A sweep: which model sizes and which token (or compute) budgets to cross."""

    name: str = "custom"
    """Experiment name, recorded in every run's meta (and W&B config) as `experiment`."""
    description: str = ""
    """One line saying what the sweep measures (shown by `sweep plan`)."""
    shapes: List[ShapeConfig] = field(default_factory=list)
    """Explicit model shapes {n_layer, d_model, n_head}."""
    target_params_non_embedding: List[int] = field(default_factory=list)
    """Model sizes as non-embedding parameter counts, turned into shapes by the shape rule."""
    aspect_ratio: float = 32.0
    """Shape rule: the aimed-for d_model / n_layer."""
    head_dim: int = 16
    """Shape rule: d_model / n_head (d_model is a multiple of it)."""
    n_tokens: List[int] = field(default_factory=list)
    """Token budgets D in tokens (rounded to whole optimizer steps)."""
    tokens_per_param: List[float] = field(default_factory=list)
    """Token budgets as multiples of N (see param_convention)."""
    param_convention: str = "total"
    """Which N tokens_per_param and center_tokens_per_param refer to: 'total' or 'non_embedding'."""
    flops_budgets: List[float] = field(default_factory=list)
    """IsoFLOP compute budgets C in FLOPs (exact count, Chinchilla App. F)."""
    sizes_per_budget: int = 0
    """IsoFLOP: 0 crosses every budget with the listed sizes; k > 0 picks k sizes around each budget's optimum."""
    size_span: float = 16.0
    """IsoFLOP with sizes_per_budget: ratio of the largest to the smallest non-embedding size of a budget."""
    center_tokens_per_param: float = 20.0
    """IsoFLOP with sizes_per_budget: the centre size N satisfies D/N = this (Chinchilla's ~20)."""
    min_steps: int = 20
    """IsoFLOP: runs with fewer optimizer steps are dropped (too short to learn anything)."""
    seeds: List[int] = field(default_factory=list)
    """Training seeds to repeat grid points with, each its own run (own result.json and W&B run); the fitter
    takes their spread as the run-to-run noise. Empty: every point once, with train.seed."""
    seeds_at: str = "largest"
    """Which points the seeds repeat: 'largest' (the largest budget's points) or 'all'."""
    branching: bool = False
    """WSD only: train each size's longest budget once and branch the shorter ones from its checkpoint at their cooldown."""


# ----------------------------------------------------------------------------- shape rule


def _with_shape(base: ModelConfig, n_layer: int, d_model: int, n_head: int) -> ModelConfig:
    return dataclasses.replace(base, n_layer=int(n_layer), d_model=int(d_model), n_head=int(n_head))


def shape_for_params(target: float, aspect_ratio: float, head_dim: int, base: ModelConfig,
                     vocab_size: int = 256) -> ModelConfig:
    """The shape whose non-embedding parameter count is closest to `target`.

    Rule: non-embedding N is about 12 * n_layer * d_model^2 and we aim for
    d_model = aspect_ratio * n_layer, so n_layer ~ (N / (12 * aspect_ratio^2))^(1/3). Around that
    depth (n_layer -1 .. +1, at least 1) every d_model that is a multiple of `head_dim` near
    sqrt(N / (12 * n_layer)) is scored by its exact count (norms, biases and d_mlp included);
    the closest count wins among shapes whose d_model/n_layer is within a factor 2 of the aspect
    ratio (any shape if none is), ties going to the aspect ratio nearer the aim.
    n_head = d_model / head_dim. The achieved N is in the PlannedRun, never assumed.
    """
    if target <= 0:
        raise ConfigError(f"experiment.target_params_non_embedding={target!r}: must be positive")
    if aspect_ratio <= 0 or head_dim <= 0:
        raise ConfigError(f"experiment.aspect_ratio={aspect_ratio!r}, head_dim={head_dim!r}: must be positive")
    depth = (target / (12.0 * aspect_ratio**2)) ** (1.0 / 3.0)
    layers = range(max(1, math.floor(depth) - 1), math.ceil(depth) + 2)
    candidates = []
    for n_layer in layers:
        width = math.sqrt(target / (12.0 * n_layer))
        k = max(1, math.floor(width / head_dim))
        for d_model in {k * head_dim, (k + 1) * head_dim}:
            m = _with_shape(base, n_layer, d_model, d_model // head_dim)
            n = count_params(m, vocab_size)["n_params_non_embedding"]
            aspect_err = abs(math.log((d_model / n_layer) / aspect_ratio))
            candidates.append((abs(math.log(n / target)), aspect_err, m))
    in_range = [c for c in candidates if c[1] <= math.log(2.0) + 1e-9] or candidates
    return min(in_range, key=lambda c: (round(c[0], 9), c[1]))[2]


# ----------------------------------------------------------------------------- expansion


def validate_experiment(exp: ExperimentConfig) -> None:
    """Raise ConfigError when the experiment does not describe exactly one kind of grid."""
    budgets = {k: getattr(exp, k) for k in ("n_tokens", "tokens_per_param", "flops_budgets") if getattr(exp, k)}
    if len(budgets) != 1:
        raise ConfigError(
            f"experiment: set exactly one of experiment.n_tokens, experiment.tokens_per_param, "
            f"experiment.flops_budgets (got {sorted(budgets) or 'none'})")
    for k, values in budgets.items():
        if any(v is None or v <= 0 for v in values):
            raise ConfigError(f"experiment.{k}={list(values)!r}: every value must be positive")
    sizes = list(exp.shapes) + list(exp.target_params_non_embedding)
    if exp.sizes_per_budget < 0:
        raise ConfigError(f"experiment.sizes_per_budget={exp.sizes_per_budget}: must be >= 0")
    if exp.sizes_per_budget > 0:
        if not exp.flops_budgets:
            raise ConfigError("experiment.sizes_per_budget: only for IsoFLOP grids (experiment.flops_budgets)")
        if sizes:
            raise ConfigError("experiment.sizes_per_budget > 0 picks sizes itself: leave experiment.shapes "
                              "and experiment.target_params_non_embedding empty (or set sizes_per_budget=0)")
        if exp.size_span < 1:
            raise ConfigError(f"experiment.size_span={exp.size_span}: must be >= 1")
    elif not sizes:
        raise ConfigError("experiment: give model sizes (experiment.shapes or experiment.target_params_non_embedding)"
                          " or, for IsoFLOP, experiment.sizes_per_budget > 0")
    for s in exp.shapes:
        if s.n_layer <= 0 or s.d_model <= 0 or s.n_head <= 0 or s.d_model % s.n_head:
            raise ConfigError(f"experiment.shapes: {s} needs positive sizes and n_head dividing d_model")
    if exp.param_convention not in ("total", "non_embedding"):
        raise ConfigError(f"experiment.param_convention={exp.param_convention!r}: must be 'total' or 'non_embedding'")
    if exp.min_steps < 1:
        raise ConfigError(f"experiment.min_steps={exp.min_steps}: must be >= 1")
    if exp.seeds_at not in ("largest", "all"):
        raise ConfigError(f"experiment.seeds_at={exp.seeds_at!r}: must be 'largest' or 'all'")
    if len(set(exp.seeds)) != len(exp.seeds) or any(s < 0 for s in exp.seeds):
        raise ConfigError(f"experiment.seeds={list(exp.seeds)}: give distinct non-negative seeds, e.g. [0,1,2]")


def _sizes(exp: ExperimentConfig, base: ModelConfig, vocab_size: int) -> List[tuple]:
    """(ModelConfig, coordinates) for every listed size, in the order given."""
    out = [(_with_shape(base, s.n_layer, s.d_model, s.n_head), {}) for s in exp.shapes]
    for t in exp.target_params_non_embedding:
        m = shape_for_params(t, exp.aspect_ratio, exp.head_dim, base, vocab_size)
        out.append((m, {"target_params_non_embedding": int(t)}))
    return out


def shape_for_n(n: float, exp: ExperimentConfig, base: ModelConfig, vocab_size: int) -> ModelConfig:
    """The shape rule aimed at N under exp.param_convention ('total' includes embeddings)."""
    if exp.param_convention == "non_embedding":
        return shape_for_params(n, exp.aspect_ratio, exp.head_dim, base, vocab_size)
    # Embeddings depend on the width the rule picks, so scan non-embedding targets from 1% to 100%
    # of N and keep the shape whose total count is closest to N.
    best = None
    for k in range(81):
        m = shape_for_params(n * 10 ** (-2 + 2 * k / 80), exp.aspect_ratio, exp.head_dim, base, vocab_size)
        err = abs(math.log(count_params(m, vocab_size)["n_params"] / n))
        if best is None or err < best[0] - 1e-12:
            best = (err, m)
    return best[1]


def _auto_sizes(exp: ExperimentConfig, base: ModelConfig, vocab_size: int, budget: float) -> List[tuple]:
    """`sizes_per_budget` sizes log-spaced over `size_span` around the budget's optimum N."""
    # C = 6 * N * D and D = r * N give the centre N = sqrt(C / (6 r)); good enough to centre a
    # parabola, the fit finds the actual minimum.
    centre = math.sqrt(budget / (6.0 * exp.center_tokens_per_param))
    k = exp.sizes_per_budget
    out = []
    for j in range(k):
        frac = 0.0 if k == 1 else j / (k - 1) - 0.5
        n = centre * exp.size_span**frac
        m = shape_for_n(n, exp, base, vocab_size)
        out.append((m, {"target_params": int(round(n)), "param_convention": exp.param_convention}))
    return out


def planned_run(index: int, base: RunConfig, model: ModelConfig, steps: int, vocab_size: int,
             meta: Dict[str, Any]) -> PlannedRun:
    n_tokens = int(steps) * base.train.tokens_per_step
    counts = count_params(model, vocab_size)
    fpt = flops_per_token(model, vocab_size)["flops_per_token"]
    cfg = dataclasses.replace(
        base,
        model=model,
        budget=dataclasses.replace(base.budget, n_tokens=n_tokens, tokens_per_param=None, flops=None),
        meta={**base.meta, **meta, "n_params": counts["n_params"],
              "n_params_non_embedding": counts["n_params_non_embedding"], "n_tokens": n_tokens},
    )
    n = counts["n_params"]
    return PlannedRun(
        index=index, cfg=cfg, run_id=run_id(cfg, n_tokens), run_name=run_name(cfg, n_tokens),
        n_params=n, n_params_non_embedding=counts["n_params_non_embedding"], n_tokens=n_tokens,
        steps=int(steps), flops_per_token=fpt, flops=fpt * n_tokens, flops_6nd=6.0 * n * n_tokens,
        tokens_per_param=n_tokens / n,
    )


def grid(exp: ExperimentConfig, base: RunConfig, vocab_size: int,
         n_train_tokens: Optional[int] = None) -> Grid:
    """Expand `exp` over `base`; the runs kept and the points dropped, with reasons. Pure."""
    validate_experiment(exp)
    if exp.branching and base.train.schedule != "wsd":
        raise ConfigError(f"experiment.branching=true needs train.schedule=wsd (got {base.train.schedule!r}): "
                          f"only a warmup-stable-decay run can be branched at its cooldown")
    tps = base.train.tokens_per_step
    points = []  # (model, steps, coordinates)
    if exp.flops_budgets:
        for b, budget in enumerate(exp.flops_budgets):
            sizes = _auto_sizes(exp, base.model, vocab_size, budget) if exp.sizes_per_budget else \
                _sizes(exp, base.model, vocab_size)
            for model, coords in sizes:
                fpt = flops_per_token(model, vocab_size)["flops_per_token"]
                steps = round(budget / (fpt * tps))
                points.append((model, steps, {**coords, "budget_flops": float(budget), "budget_index": b}))
    else:
        for model, coords in _sizes(exp, base.model, vocab_size):
            counts = count_params(model, vocab_size)
            n = counts["n_params"] if exp.param_convention == "total" else counts["n_params_non_embedding"]
            if exp.n_tokens:
                for d in exp.n_tokens:
                    points.append((model, round(d / tps), {**coords, "n_tokens_target": int(d)}))
            else:
                for r in exp.tokens_per_param:
                    points.append((model, round(r * n / tps), {**coords, "tokens_per_param_target": float(r)}))

    runs, dropped, seen = [], [], set()
    isoflop = bool(exp.flops_budgets)
    for model, steps, coords in _with_seeds(points, exp):
        meta = {"experiment": exp.name, **coords}
        seeded = base if "seed" not in coords else dataclasses.replace(
            base, train=dataclasses.replace(base.train, seed=coords["seed"]))
        run = planned_run(len(runs), seeded, model, max(int(steps), 0), vocab_size, meta)
        reason = None
        if steps < 1:
            reason = f"budget too small for one step of {tps} tokens"
        elif isoflop and steps < exp.min_steps:
            reason = f"{steps} steps < experiment.min_steps={exp.min_steps}"
        elif isoflop and n_train_tokens is not None and run.n_tokens > n_train_tokens:
            reason = f"needs {human(run.n_tokens)} tokens, corpus has {human(n_train_tokens)}"
        elif run.run_id in seen:
            reason = "duplicate of an earlier grid point (same shape and tokens)"
        if reason is not None and (isoflop or reason.startswith("duplicate")):
            dropped.append((run, reason))
            continue
        seen.add(run.run_id)
        runs.append(run)
    # indices must be consecutive after dropping: the multirun addresses runs by position
    for i, r in enumerate(runs):
        r.index = i
    if exp.branching:
        runs = branch(runs)
    return Grid(runs=runs, dropped=dropped)


def _budget_key(coords: dict) -> float:
    """How large a point's budget is, whatever kind of grid it comes from."""
    for k in ("budget_flops", "n_tokens_target", "tokens_per_param_target"):
        if k in coords:
            return float(coords[k])
    return 0.0


def _with_seeds(points: List[tuple], exp: ExperimentConfig) -> List[tuple]:
    """Each point the seeds apply to, once per seed (coordinates gain `seed`); the others as they are."""
    if not exp.seeds:
        return points
    top = max(_budget_key(c) for _, _, c in points) if points else 0.0
    out = []
    for model, steps, coords in points:
        if exp.seeds_at == "all" or _budget_key(coords) == top:
            out += [(model, steps, {**coords, "seed": int(s)}) for s in exp.seeds]
        else:
            out.append((model, steps, coords))
    return out


def describe_dropped(dropped: List[tuple]) -> str:
    lines = [f"dropped {len(dropped)} grid point(s):"]
    for run, reason in dropped:
        c = run.cfg.meta.get("budget_flops")
        at = f" at C={c:.3g}" if c is not None else ""
        lines.append(f"  {run.run_name} (N={human(run.n_params)}){at}: {reason}")
    return "\n".join(lines)


def expand(exp: ExperimentConfig, base: RunConfig, vocab_size: int,
           n_train_tokens: Optional[int] = None) -> List[PlannedRun]:
    """The runs of `exp` over `base`; dropped points raise a DroppedRunsWarning naming them."""
    g = grid(exp, base, vocab_size, n_train_tokens)
    if g.dropped:
        warnings.warn(describe_dropped(g.dropped), DroppedRunsWarning, stacklevel=2)
    return g.runs
