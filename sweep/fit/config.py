"""Options of a scaling-law fit (`FitConfig`) and the errors a fit raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

class FitInputError(ValueError):
    """The runs cannot be fitted; the message names the problem and the fix."""


class MethodSkipped(Exception):
    """A method does not apply to these runs; the message is the reason recorded in fit.json."""


@dataclass
class FitConfig:
    """How to turn runs into scaling-law fits."""

    param_convention: str = "total"
    """'total' (n_params) or 'non_embedding' (n_params_non_embedding, Kaplan's convention)."""
    flop_convention: str = "exact"
    """'exact' (the runs' flops column: IsoFLOP budgets stay equal across sizes) or '6nd' (C = 6 N D, N per param_convention)."""
    huber_delta: float = 1e-3
    """Huber threshold on log-loss residuals (approach 3 and the Kaplan fits)."""
    grid_alpha: List[float] = field(default_factory=lambda: [0.0, 0.5, 1.0, 1.5, 2.0])
    """Approach-3 initialisation grid: alpha values."""
    grid_beta: List[float] = field(default_factory=lambda: [0.0, 0.5, 1.0, 1.5, 2.0])
    """Approach-3 initialisation grid: beta values."""
    grid_e: List[float] = field(default_factory=lambda: [-1.0, -0.5, 0.0, 0.5, 1.0])
    """Approach-3 initialisation grid: e = log E values."""
    grid_a: List[float] = field(default_factory=lambda: [0.0, 5.0, 10.0, 15.0, 20.0, 25.0])
    """Approach-3 initialisation grid: a = log A values."""
    grid_b: List[float] = field(default_factory=lambda: [0.0, 5.0, 10.0, 15.0, 20.0, 25.0])
    """Approach-3 initialisation grid: b = log B values."""
    n_bootstrap: int = 200
    """Bootstrap resamples over runs for every interval (0 disables intervals)."""
    seed: int = 0
    """Seed of the bootstrap resampling."""
    interval: float = 0.95
    """Coverage of the percentile intervals."""
    budget_tolerance: float = 0.05
    """Runs whose compute agrees within this relative tolerance count as one budget."""
    min_sizes_per_budget: int = 3
    """Approach 2: fewest distinct model sizes a budget needs for its parabola."""
    parabola_window: int = 2
    """Approach 2: fit each budget's parabola to its best size and this many neighbours each side (0: all sizes)."""
    data_rich_tokens_per_param: float = 20.0
    """Kaplan L(N): a size joins the data-rich slice when its longest run saw this many tokens per parameter."""
    approach1_curves: bool = True
    """Approach 1 on the envelope of every run's val-loss curve (Hoffmann et al.); False: final losses only."""
    kaplan_irreducible: bool = True
    """Add an irreducible term E to the Kaplan laws."""
    loss_law_min_points: int = 4
    """Approaches 1 and 2: fewest frontier points (budgets) their loss law L*(C) = E + (C_c / C)^alpha is fitted to.
    From 3 its three parameters pass through them exactly, with no residual to check it by, so the final fit waits
    for 4; the backtest's refits take 3, so that a sweep of 5 budgets scores the law on 3 held-out budgets (fit 3,
    predict 2; fit 4, predict 1) instead of 1, and the law can be ranked and stacked."""
    budgets: List[float] = field(default_factory=list)
    """Further budgets (FLOPs) for the compute-optimal table and plots, e.g. [1e18, 1e21], besides the sampled
    range and `extrapolate_to`: far past the data a law says little, so none by default."""
    extrapolate_to: List[float] = field(default_factory=lambda: [10.0, 100.0])
    """Rows of the compute-optimal table (and the plots' reach) at these multiples of the largest fitted compute."""
    methods: Optional[List[str]] = None
    """Methods to run, by name in sweep.fit.registry (approach1, approach2, approach3, kaplan, ...); None: every
    default one (all but approach3_upper, whose intervals are not yet calibrated)."""
    compare_conventions: bool = True
    """Also fit under every other available parameter/FLOP convention (point estimates) for the side-by-side table."""
    backtest: bool = True
    """Run the backtest."""
    law_intervals: bool = True
    """Approach 3: resample runs for the law's confidence intervals (the backtest's refits skip it: they are
    scored on prediction intervals, which come from refits on simulated sweeps)."""

    def validate(self) -> "FitConfig":
        if any(not (k > 0) for k in self.extrapolate_to) or any(not (c > 0) for c in self.budgets):
            raise FitInputError(f"extrapolate_to={list(self.extrapolate_to)}, budgets={list(self.budgets)}: every value "
                                f"must be positive (multiples of the largest fitted compute; FLOPs)")
        if self.param_convention not in ("total", "non_embedding"):
            raise FitInputError(f"param_convention={self.param_convention!r}: use 'total' or 'non_embedding'")
        if self.flop_convention not in ("6nd", "exact"):
            raise FitInputError(f"flop_convention={self.flop_convention!r}: use '6nd' or 'exact'")
        if not 0 < self.interval < 1:
            raise FitInputError(f"interval={self.interval}: a coverage strictly between 0 and 1, e.g. 0.95")
        if self.loss_law_min_points < 3:
            raise FitInputError(f"loss_law_min_points={self.loss_law_min_points}: E + (C_c / C)^alpha has 3 "
                                f"parameters, so at least 3")
        if self.huber_delta <= 0 or self.budget_tolerance < 0 or self.n_bootstrap < 0:
            raise FitInputError("huber_delta must be > 0, budget_tolerance and n_bootstrap >= 0")
        return self
