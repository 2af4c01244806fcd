"""The experiment schema: which model sizes and which token (or compute) budgets a sweep crosses, and its checks.

Every field is documented where it is declared; `validate_experiment` refuses an experiment that does not describe
exactly one kind of grid before anything is planned. grid.py expands a valid one into runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

from sweep.config import ConfigError
from sweep.ladder.shapes import FAMILIES


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
