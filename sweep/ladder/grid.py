"""Grid expansion: an experiment (a few lines of config) becomes a list of fully specified runs.

The schema and its checks live in experiment.py, the shape rule in shapes.py, the LR/batch rules in hparams.py.

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
from typing import Any, Dict, List, Optional, Tuple

from sweep.config import ConfigError, ModelConfig, RunConfig
from sweep.run.counts import count_params, flops_per_token
from sweep.ladder.adaptive import BudgetPlan, Plans, prior_centre, prior_plan
from sweep.ladder.branching import branch
from sweep.ladder.experiment import ExperimentConfig, validate_experiment
from sweep.ladder.hparams import rule_lr, rule_tokens_per_step
from sweep.ladder.shapes import (depth_shape, describe_family, free_shape_for_params, mixed_shapes,
                          shape_for, spread_depths, with_shape)
from sweep.ladder.planned import Grid, PlannedRun
from sweep.store.results import human, run_id, run_name


class DroppedRunsWarning(UserWarning):
    """Some grid points were dropped (corpus too small, too few steps, duplicates)."""


# ----------------------------------------------------------------------------- shape rule


def shape_for_params(target: float, aspect_ratio: float, head_dim: int, base: ModelConfig,
                     vocab_size: int = 256) -> ModelConfig:
    """The 'free' rule's shape for a non-embedding count (see `sweep.ladder.shapes.free_shape_for_params`)."""
    return free_shape_for_params(target, aspect_ratio, head_dim, base, vocab_size)


# ----------------------------------------------------------------------------- expansion


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
