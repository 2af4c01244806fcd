"""Which runs a law is fitted to, and how each weighs: every run, the IsoFLOP valleys, or the valleys weighted
toward the largest compute.

A law of N and D is a model of the loss around the compute-optimal frontier. A sweep's IsoFLOP grids also hold runs
far from it (models starved of tokens, or trained far past their optimum) whose losses follow whatever else limits
them; a fit to every run spends its parameters on those too. The valley selection keeps, per budget with at least
`fit.min_sizes_per_budget` sizes, the best size and `fit.parabola_window` sizes each side (approach 2's parabola
window, for the same reason). The upper selection keeps the same runs and weighs each by its compute, (C / C_max):
a law of fixed exponents fitted over a wide compute range takes their average over it, and the weighting lets the
largest budgets, where the extrapolation starts, set them. A soft weight rather than a cut keeps every budget, so the
within-data backtest refits it on as many splits as the valley selection.

A selection is not a law: sweep/fit/estimator.py fits any form on any selection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from sweep.fit.config import FitConfig, MethodSkipped

KINDS = ("all", "valley", "upper")

POWER = 1.0
"""Each valley run weighs (C / C_max)^POWER in the upper selection: a budget 10x below the largest counts a tenth,
100x below a hundredth; 1 (weight in proportion to compute) is the one choice made, not tuned to a table."""


@dataclass(frozen=True)
class Selection:
    """The runs a fit uses, out of a sweep's."""

    kind: str
    """"all", "valley" or "upper" (see the module docstring)."""
    data: object
    """The selected runs' FitData."""
    runs: np.ndarray
    """Their indices among the sweep's runs."""
    of: int
    """The sweep's number of runs."""
    budgets: int
    """IsoFLOP budgets with a valley ("valley" and "upper"); 0 for "all"."""
    weights: Optional[np.ndarray] = None
    """Per selected run, the weight of its loss in the fit and in both bootstraps; None: 1."""

    @property
    def valleys(self) -> bool:
        return self.kind != "all"


def valley_runs(data, min_sizes: int, window: int) -> np.ndarray:
    """Indices of the runs in each budget's valley: its best size (lowest mean loss over replicates) and `window`
    sizes each side (0: every size), in budgets with at least min_sizes distinct sizes."""
    keep = []
    for bid in np.unique(data.budget):
        idx = np.flatnonzero(data.budget == bid)
        sizes, inv = np.unique(data.n[idx], return_inverse=True)
        if sizes.size < min_sizes:
            continue
        mean_loss = np.bincount(inv.ravel(), data.loss[idx]) / np.bincount(inv.ravel())
        best = int(np.argmin(mean_loss))
        lo, hi = (best - window, best + window) if window > 0 else (0, sizes.size - 1)
        keep.append(idx[(inv.ravel() >= lo) & (inv.ravel() <= hi)])
    return np.sort(np.concatenate(keep)) if keep else np.array([], dtype=int)


def valleys(data, cfg: FitConfig, fit_name: str) -> tuple:
    """(the valley runs' FitData, their indices, their budgets), or MethodSkipped with fewer than 2 budgets that have
    a valley; fit_name names the fit in the reason."""
    idx = valley_runs(data, cfg.min_sizes_per_budget, cfg.parabola_window)
    budgets = np.unique(data.budget[idx]).size if idx.size else 0
    if budgets < 2:
        raise MethodSkipped(f"{budgets} IsoFLOP budget(s) with {cfg.min_sizes_per_budget} or more sizes: {fit_name} "
                            "needs at least 2 (approach 3 on every run stands)")
    return data.subset(idx), idx, budgets


def compute_weights(c: np.ndarray) -> np.ndarray:
    """Per run: (C / C_max)^POWER."""
    return (np.asarray(c, float) / np.max(c)) ** POWER


def select(data, cfg: FitConfig, kind: str, fit_name: str = "this fit") -> Selection:
    """The `kind` selection of a sweep's runs; MethodSkipped (naming fit_name) when the sweep has no valleys to
    select."""
    if kind == "all":
        return Selection("all", data, np.arange(data.loss.size), int(data.loss.size), 0)
    if kind not in KINDS:
        raise ValueError(f"run selection {kind!r}: choose from {KINDS}")
    sub, idx, budgets = valleys(data, cfg, fit_name)
    weights = compute_weights(sub.c) if kind == "upper" else None
    return Selection(kind, sub, idx, int(data.loss.size), int(budgets), weights)
