"""Grid expansion: an experiment (a few lines of config) becomes a list of fully specified runs.

Why ~350 lines: the experiment schema and its expansion belong together (every field is read here);
the shape rule (shapes.py) and the LR/batch rules (hparams.py) live apart.

Pure functions only: the same experiment, base config and vocabulary always expand to the same
runs in the same order, so `sweep plan`, `sweep run` and `sweep status` agree on every run and its index.

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
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from sweep.config import ConfigError, ModelConfig, RunConfig
from sweep.run.counts import count_params, flops_per_token
from sweep.ladder.adaptive import BudgetPlan, Plans, prior_centre, prior_plan
from sweep.ladder.branching import branch
from sweep.ladder.hparams import rule_lr, rule_tokens_per_step
from sweep.ladder.shapes import (FAMILIES, depth_shape, describe_family, free_shape_for_params, mixed_shapes,
                          shape_for, spread_depths, with_shape)
from sweep.ladder.planned import Grid, PlannedRun
from sweep.store.results import human, run_id, run_name


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
    family: str = "depth"
    """Shape rule for sizes given as counts: 'depth' (one knob: d_model = aspect_ratio * n_layer in whole heads,
    n_layer >= min_layers, so depth and width grow together) or 'free' (closest count near the aspect ratio;
    may mix depths)."""
    aspect_ratio: float = 32.0
    """Shape rule: the aimed-for d_model / n_layer."""
    head_dim: int = 16
    """Shape rule: d_model / n_head (d_model is a multiple of it)."""
    min_layers: int = 2
    """Depth family: the shallowest member (one-layer transformers cannot form induction heads)."""
    allow_mixed_shapes: bool = False
    """Accept a grid whose depth or width decreases somewhere as N grows (a law fitted over two kinds of model
    extrapolates neither)."""
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
    """IsoFLOP with sizes_per_budget: the centre size N satisfies D/N = this (Chinchilla's ~20); with
    centre='adaptive', only the first budget's."""
    centre: str = "tokens_per_param"
    """IsoFLOP with sizes_per_budget: 'tokens_per_param' centres every budget where D/N = center_tokens_per_param;
    'adaptive' trains the budgets in waves, smallest first, and centres each later budget on the N* that the
    finished budgets' minima predict (sweep/ladder/adaptive.py); the depth family then takes sizes_per_budget
    consecutive depths, and a budget whose minimum lands at an edge gets edge_extensions more sizes there."""
    centre_exponent_prior: float = 0.5
    """Adaptive: the slope of log N* against log C used while only one budget has a located minimum."""
    edge_extensions: int = 1
    """Adaptive: at most this many sizes added on the side where a budget's minimum lands at an edge."""
    min_steps: int = 20
    """IsoFLOP: runs with fewer optimizer steps are dropped (too short to learn anything)."""
    lr_exponent: float = 0.0
    """Peak LR per run: train.lr * (N / lr_ref_params) ** lr_exponent, N as param_convention counts it; 0 gives
    every run train.lr. OLMo's ladder: -1/3. `sweep tune` fits it."""
    lr_ref_params: float = 1.0e5
    """The N at which the LR rule gives train.lr."""
    batch_exponent: float = 0.0
    """Tokens per optimizer step per run: train.tokens_per_step * (D / batch_ref_tokens) ** batch_exponent, in a
    power-of-two number of sequences; 0 keeps train.tokens_per_step. Power Lines: 0.38."""
    batch_ref_tokens: float = 1.0e6
    """The D at which the batch rule gives train.tokens_per_step."""
    lr_multipliers: List[float] = field(default_factory=list)
    """LR tuning sweep: every point once per multiple of its rule LR (e.g. [0.25, 0.5, 1, 2, 4]); `sweep tune`
    reads the results. Empty: the rule LR only."""
    seeds: List[int] = field(default_factory=list)
    """Training seeds to repeat grid points with, each its own run (own result.json and W&B run); the fitter
    takes their spread as the run-to-run noise. Empty: every point once, with train.seed."""
    seeds_at: str = "largest"
    """Which points the seeds repeat: 'largest' (the largest budget's points) or 'all'."""
    seeds_sizes: int = 0
    """With seeds_at='largest': how many of that budget's sizes the seeds repeat, the middle ones (around its
    centre, where the optimum is expected); 0: every size."""
    branching: bool = False
    """WSD only: train each size's longest budget once and branch the shorter ones from its checkpoint at their cooldown."""


# ----------------------------------------------------------------------------- shape rule


def shape_for_params(target: float, aspect_ratio: float, head_dim: int, base: ModelConfig,
                     vocab_size: int = 256) -> ModelConfig:
    """The 'free' rule's shape for a non-embedding count (see `sweep.ladder.shapes.free_shape_for_params`)."""
    return free_shape_for_params(target, aspect_ratio, head_dim, base, vocab_size)


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
    if exp.family not in FAMILIES:
        raise ConfigError(f"experiment.family={exp.family!r}: must be one of {', '.join(map(repr, FAMILIES))}")
    if exp.lr_ref_params <= 0 or exp.batch_ref_tokens <= 0:
        raise ConfigError(f"experiment.lr_ref_params={exp.lr_ref_params}, batch_ref_tokens={exp.batch_ref_tokens}: "
                          f"must be positive")
    if any(k <= 0 for k in exp.lr_multipliers) or len(set(exp.lr_multipliers)) != len(exp.lr_multipliers):
        raise ConfigError(f"experiment.lr_multipliers={list(exp.lr_multipliers)}: give distinct positive multiples, "
                          f"e.g. [0.25, 0.5, 1, 2, 4]")
    if exp.min_layers < 1:
        raise ConfigError(f"experiment.min_layers={exp.min_layers}: must be >= 1")
    if exp.seeds_at not in ("largest", "all"):
        raise ConfigError(f"experiment.seeds_at={exp.seeds_at!r}: must be 'largest' or 'all'")
    if len(set(exp.seeds)) != len(exp.seeds) or any(s < 0 for s in exp.seeds):
        raise ConfigError(f"experiment.seeds={list(exp.seeds)}: give distinct non-negative seeds, e.g. [0,1,2]")
    if exp.seeds_sizes < 0:
        raise ConfigError(f"experiment.seeds_sizes={exp.seeds_sizes}: must be >= 0 (0: every size)")
    n_sizes = exp.sizes_per_budget or len(sizes)
    if len(exp.seeds) > 1 and n_sizes == 1 and exp.flops_budgets:
        raise ConfigError(f"experiment.seeds={list(exp.seeds)} at a budget with one size: the replicates would measure "
                          f"noise, but approach 2 needs at least 3 sizes per budget for its valley; raise "
                          f"experiment.sizes_per_budget (or list more sizes)")
    if exp.centre not in ("tokens_per_param", "adaptive"):
        raise ConfigError(f"experiment.centre={exp.centre!r}: must be 'tokens_per_param' or 'adaptive'")
    if exp.centre == "adaptive":
        if exp.sizes_per_budget < 3:
            raise ConfigError(f"experiment.centre=adaptive with experiment.sizes_per_budget={exp.sizes_per_budget}: "
                              f"the first wave cannot be fitted (a minimum needs a size on each side of the best, "
                              f"so at least 3 sizes per budget); set sizes_per_budget >= 3 (5 recommended)")
        if len(exp.flops_budgets) < 2:
            raise ConfigError("experiment.centre=adaptive needs at least 2 experiment.flops_budgets: the first is "
                              "centred by the prior, the later ones by the fit of the earlier ones")
        if sorted(exp.flops_budgets) != list(exp.flops_budgets):
            raise ConfigError(f"experiment.flops_budgets={list(exp.flops_budgets)}: an adaptive ladder trains them in "
                              f"waves, smallest first; list them in ascending order")
        if exp.edge_extensions < 0 or not 0 < exp.centre_exponent_prior < 2:
            raise ConfigError(f"experiment.edge_extensions={exp.edge_extensions} (>= 0), centre_exponent_prior="
                              f"{exp.centre_exponent_prior} (in (0, 2)): out of range")


def _sizes(exp: ExperimentConfig, base: ModelConfig, vocab_size: int) -> List[tuple]:
    """(ModelConfig, coordinates) for every listed size, in the order given."""
    out = [(with_shape(base, s.n_layer, s.d_model, s.n_head), {}) for s in exp.shapes]
    for t in exp.target_params_non_embedding:
        m = shape_for(t, exp.family, "non_embedding", exp.aspect_ratio, exp.head_dim, base, vocab_size,
                      exp.min_layers)
        out.append((m, {"target_params_non_embedding": int(t)}))
    return out


def shape_for_n(n: float, exp: ExperimentConfig, base: ModelConfig, vocab_size: int) -> ModelConfig:
    """The experiment's shape rule aimed at N under exp.param_convention ('total' includes embeddings)."""
    return shape_for(n, exp.family, exp.param_convention, exp.aspect_ratio, exp.head_dim, base, vocab_size,
                     exp.min_layers)


def _auto_sizes(exp: ExperimentConfig, base: ModelConfig, vocab_size: int, budget: float,
                plan: Optional[BudgetPlan] = None) -> List[tuple]:
    """`sizes_per_budget` sizes around the budget's centre: log-spaced over `size_span` around N where D/N =
    center_tokens_per_param; adaptive (`plan`): around plan.centre_params, in consecutive depths for the depth
    family, plus the plan's edge extensions."""
    # C = 6 * N * D and D = r * N give the centre N = sqrt(C / (6 r)); good enough to centre a
    # parabola, the fit finds the actual minimum.
    centre = plan.centre_params if plan is not None else prior_centre(budget, exp.center_tokens_per_param)
    k = exp.sizes_per_budget
    targets = [centre * exp.size_span ** (0.0 if k == 1 else j / (k - 1) - 0.5) for j in range(k)]
    coords = {"param_convention": exp.param_convention}
    if plan is not None:
        coords["centred_by"] = plan.reason
    if plan is not None and exp.family == "depth":
        models = consecutive_depths(exp, base, vocab_size, centre, k, plan.extend_below, plan.extend_above)
        middle = shape_for_n(centre, exp, base, vocab_size).n_layer
        return [(m, {**coords, "target_params": int(round(centre)), "depth_offset": m.n_layer - middle,
                     **({"size_role": "edge extension"} if _is_extension(m, models, plan) else {})}) for m in models]
    if plan is not None:  # free family: extensions continue the log spacing
        step = exp.size_span ** (1.0 / max(k - 1, 1))
        targets = ([targets[0] / step ** j for j in range(plan.extend_below, 0, -1)] + targets
                   + [targets[-1] * step ** j for j in range(1, plan.extend_above + 1)])
    if exp.family == "depth":
        models = spread_depths(targets, lambda n: shape_for_n(n, exp, base, vocab_size),
                               lambda m: depth_shape(m.n_layer + 1, exp.aspect_ratio, exp.head_dim, base))
    else:
        models = [shape_for_n(n, exp, base, vocab_size) for n in targets]
    return [(m, {**coords, "target_params": int(round(n))}) for m, n in zip(models, targets)]


def consecutive_depths(exp: ExperimentConfig, base: ModelConfig, vocab_size: int, centre: float, k: int,
                       below: int = 0, above: int = 0) -> List[ModelConfig]:
    """k consecutive members of the depth family around the one closest to `centre` (shifted up at the family's
    floor), then `below` shallower and `above` deeper ones where the family has them."""
    middle = shape_for_n(centre, exp, base, vocab_size).n_layer
    first = max(exp.min_layers, middle - (k - 1) // 2)
    lo = max(exp.min_layers, first - below)
    return [depth_shape(L, exp.aspect_ratio, exp.head_dim, base) for L in range(lo, first + k + above)]


def _is_extension(m: ModelConfig, models: List[ModelConfig], plan: BudgetPlan) -> bool:
    depths = [x.n_layer for x in models]
    i = depths.index(m.n_layer)
    return i < plan.extend_below or i >= len(depths) - plan.extend_above


def can_extend(exp: ExperimentConfig, base: ModelConfig, vocab_size: int, plan: BudgetPlan) -> Tuple[bool, bool]:
    """(a smaller size exists, a larger one exists) for the budget's next edge extension."""
    if exp.family != "depth":
        return True, True
    models = consecutive_depths(exp, base, vocab_size, plan.centre_params, exp.sizes_per_budget,
                                plan.extend_below, plan.extend_above)
    return models[0].n_layer > exp.min_layers, True


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


def budget_plans(exp: ExperimentConfig, plans: Optional[Plans]) -> Dict[int, BudgetPlan]:
    """Every budget's plan for an adaptive ladder: the recorded ones, and for budgets not reached yet a
    provisional one (the prior centre, marked so)."""
    out = dict(plans or {})
    for b, c in enumerate(exp.flops_budgets):
        if b not in out:
            out[b] = prior_plan(c, exp.center_tokens_per_param)
            if b:
                out[b].reason += " (provisional: set after the earlier waves)"
    return out


def grid(exp: ExperimentConfig, base: RunConfig, vocab_size: int,
         n_train_tokens: Optional[int] = None, plans: Optional[Plans] = None) -> Grid:
    """Expand `exp` over `base`; the runs kept and the points dropped, with reasons. Pure: an adaptive ladder's
    centres and extensions come in as `plans` (budget index -> BudgetPlan, recorded by `sweep run`)."""
    validate_experiment(exp)
    if exp.branching and base.train.schedule != "wsd":
        raise ConfigError(f"experiment.branching=true needs train.schedule=wsd (got {base.train.schedule!r}): "
                          f"only a warmup-stable-decay run can be branched at its cooldown")
    points = []  # (model, tokens aimed at, coordinates)
    if exp.flops_budgets:
        adaptive = budget_plans(exp, plans) if exp.centre == "adaptive" else {}
        for b, budget in enumerate(exp.flops_budgets):
            sizes = _auto_sizes(exp, base.model, vocab_size, budget, adaptive.get(b)) if exp.sizes_per_budget else \
                _sizes(exp, base.model, vocab_size)
            for model, coords in sizes:
                fpt = flops_per_token(model, vocab_size)["flops_per_token"]
                points.append((model, budget / fpt, {**coords, "budget_flops": float(budget), "budget_index": b}))
    else:
        for model, coords in _sizes(exp, base.model, vocab_size):
            if exp.n_tokens:
                for d in exp.n_tokens:
                    points.append((model, d, {**coords, "n_tokens_target": int(d)}))
            else:
                for r in exp.tokens_per_param:
                    points.append((model, r * _n(model, exp, vocab_size),
                                   {**coords, "tokens_per_param_target": float(r)}))

    runs, dropped, seen = [], [], set()
    isoflop = bool(exp.flops_budgets)
    for model, d_target, coords in _with_lr_multipliers(_with_seeds(points, exp), exp):
        meta = {"experiment": exp.name, **coords}
        train = run_hparams(base, exp, model, d_target, vocab_size, coords)
        tps = train.tokens_per_step
        steps = round(d_target / tps)
        run = planned_run(len(runs), dataclasses.replace(base, train=train), model, max(int(steps), 0),
                          vocab_size, meta)
        reason = None
        if steps < 1:
            reason = f"budget too small for one step of {tps} tokens"
        elif isoflop and steps < exp.min_steps:
            reason = f"{steps} steps < experiment.min_steps={exp.min_steps}"
        elif isoflop and n_train_tokens is not None and run.n_tokens > n_train_tokens and not base.data.allow_repeat:
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
    mixed = mixed_shapes([r.cfg.model for r in runs], vocab_size)
    if mixed and not exp.allow_mixed_shapes:
        raise ConfigError(
            f"experiment {exp.name!r}: the grid's shapes are not one family: {mixed}, so depth or width shrinks as N "
            f"grows and the fitted law would mix two kinds of model. Use experiment.family=depth (one knob), list "
            f"shapes that grow in both, or set experiment.allow_mixed_shapes=true to fit them anyway")
    if exp.branching:
        runs = branch(runs)
    return Grid(runs=runs, dropped=dropped)


def _budget_key(coords: dict) -> float:
    """How large a point's budget is, whatever kind of grid it comes from."""
    for k in ("budget_flops", "n_tokens_target", "tokens_per_param_target"):
        if k in coords:
            return float(coords[k])
    return 0.0


def _n(model: ModelConfig, exp: ExperimentConfig, vocab_size: int) -> int:
    counts = count_params(model, vocab_size)
    return counts["n_params"] if exp.param_convention == "total" else counts["n_params_non_embedding"]


def run_hparams(base: RunConfig, exp: ExperimentConfig, model: ModelConfig, d_target: float, vocab_size: int,
                 coords: dict) -> Any:
    """The run's TrainConfig: seed, LR and tokens per step from the experiment's rules."""
    t = base.train
    lr = rule_lr(t.lr, _n(model, exp, vocab_size), exp.lr_ref_params, exp.lr_exponent) * coords.get("lr_multiplier", 1.0)
    tps = rule_tokens_per_step(t.tokens_per_step, d_target, exp.batch_ref_tokens, exp.batch_exponent, model.seq_len)
    return dataclasses.replace(t, seed=coords.get("seed", t.seed), lr=lr, tokens_per_step=tps)


def _with_lr_multipliers(points: List[tuple], exp: ExperimentConfig) -> List[tuple]:
    """Each point once per LR multiple (coordinates gain `lr_multiplier`), for a tuning sweep."""
    if not exp.lr_multipliers:
        return points
    return [(m, d, {**c, "lr_multiplier": float(k)}) for m, d, c in points for k in exp.lr_multipliers]


def _with_seeds(points: List[tuple], exp: ExperimentConfig) -> List[tuple]:
    """Each point the seeds apply to, once per seed (coordinates gain `seed`); the others as they are. 'largest'
    means the experiment's largest budget (not the largest expanded so far), and seeds_sizes > 0 its middle
    sizes only."""
    if not exp.seeds:
        return points
    top = max(exp.flops_budgets) if exp.flops_budgets else max((_budget_key(c) for _, _, c in points), default=0.0)
    at_top = [i for i, (_, _, c) in enumerate(points) if _budget_key(c) == top and c.get("size_role") is None]
    if exp.seeds_sizes and len(at_top) > exp.seeds_sizes:
        first = (len(at_top) - exp.seeds_sizes) // 2
        at_top = at_top[first:first + exp.seeds_sizes]
    chosen = set(range(len(points))) if exp.seeds_at == "all" else set(at_top)
    out = []
    for i, (model, steps, coords) in enumerate(points):
        if i in chosen:
            out += [(model, steps, {**coords, "seed": int(s)}) for s in exp.seeds]
        else:
            out.append((model, steps, coords))
    return out


def family_line(exp: ExperimentConfig) -> str:
    """The model family the experiment's sizes come from, in one line."""
    explicit = bool(exp.shapes) and not exp.target_params_non_embedding and not exp.sizes_per_budget
    line = describe_family(exp.family, exp.aspect_ratio, exp.head_dim, exp.min_layers, explicit)
    return line + (" (mixed shapes allowed)" if exp.allow_mixed_shapes else "")


def adaptive_line(exp: ExperimentConfig) -> str:
    """How an adaptive ladder picks its sizes, in a few lines (what `sweep plan` and `sweep run` print)."""
    if exp.centre != "adaptive":
        return ""
    return (f"sizes: adaptive, {exp.sizes_per_budget} per budget{' (consecutive depths)' if exp.family == 'depth' else ''}"
            f"; budgets train in waves, smallest first.\n"
            f"  budget 1 is centred where D/N = {exp.center_tokens_per_param:g}; each later budget at the N* that "
            f"the earlier budgets' minima predict\n"
            f"  (a line in log N* vs log C; slope {exp.centre_exponent_prior:g} through a single minimum); a budget "
            f"whose minimum lands at an edge\n"
            f"  gets up to {exp.edge_extensions} more size(s) on that side. Sizes shown for budgets not yet reached "
            f"are provisional.")


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
