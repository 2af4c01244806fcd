"""Approach 3 fitted near the compute-optimal frontier: each IsoFLOP budget's valley, not every run.

L = E + A/N^alpha + B/D^beta is a model of the loss around the frontier. A sweep's IsoFLOP grids also hold runs
far from it: models starved of tokens (D < N) or trained far past their optimum, whose losses follow whatever
else limits them (warmup, a schedule cut short, a learning rate tuned for another size). Fitted to every run,
approach 3 spends its five parameters on those, and they, not the frontier, set its floor and exponents.
Approach 2 keeps each budget's parabola local for the same reason (its `parabola_window`);
this method fits approach 3 to the same window: per budget with at least `min_sizes_per_budget` sizes, the best
size and `parabola_window` sizes each side. Budgets with fewer sizes, and sweeps without IsoFLOP budgets, leave
nothing to select: the method is skipped there and approach 3 stands.

Which of the two extrapolates better is the data's question, not this module's: both are scored by the
within-data backtest and stacked by it (sweep/fit/recommend.py). Its parameters, intervals and prediction
intervals are approach 3's, computed on the valley runs; its residuals are reported for every run (the plots
align them with the sweep), and its noise scale comes from the valley runs only.
"""

from __future__ import annotations

import numpy as np

from sweep.fit import approach3
from sweep.fit.config import FitConfig, MethodSkipped
from sweep.fit.method import Method


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


def fit_on_valleys(data, cfg: FitConfig, fit_name: str, weigh=None) -> tuple[dict, np.ndarray, int]:
    """(approach 3's section fitted on the valley runs, with every run's residual; their indices; their budgets).
    weigh(the valley runs' FitData) -> per-run weights of the fit, or None; fit_name names the fit in its errors."""
    sub, idx, budgets = valleys(data, cfg, fit_name)
    try:
        out = approach3.run(sub, cfg, weights=None if weigh is None else weigh(sub))
    except MethodSkipped as e:
        raise MethodSkipped(f"on the {idx.size} valley runs: {e}") from None
    if out["noise"]["source"].startswith("approach 3"):
        out["noise"]["source"] = out["noise"]["source"].replace("approach 3", "approach 3 on the valley runs'", 1)
    # every run's residual, so that plots line them up with the sweep; off-valley ones show what the fit left out
    out["residuals"] = (np.log(data.loss) - np.log(approach3.loss_at(out["params"], data.n, data.d))).tolist()
    return out, idx, budgets


def run(data, cfg: FitConfig) -> dict:
    """Approach 3's section of fit.json, fitted on the valley runs, with what was selected."""
    idx = valley_runs(data, cfg.min_sizes_per_budget, cfg.parabola_window)
    if idx.size == data.loss.size and np.unique(data.budget[idx]).size >= 2:  # else fit_on_valleys says why not
        raise MethodSkipped("every run is in its budget's valley: this fit would be approach 3's")
    out, idx, budgets = fit_on_valleys(data, cfg, "a valley fit")
    out["valley"] = {"runs": int(idx.size), "of": int(data.loss.size), "budgets": budgets,
                     "window": cfg.parabola_window, "run_ids": [data.names[i] for i in idx]}
    return out


def report(r: dict, fit: dict) -> list:
    v = r["valley"]
    return [f"Fitted on {v['runs']} of {v['of']} runs: each of {v['budgets']} IsoFLOP budgets' best size and "
            f"{v['window']} sizes each side (fit.parabola_window). Residuals (log loss) of the valley runs: rms "
            f"{r['diagnostics']['residual_rms']:.4g}.", ""]


METHOD = Method(name="approach3_valley", title="Approach 3 on the IsoFLOP valleys (L = E + A/N^α + B/D^β)",
                color="tab:olive", fit=run, exponents=approach3.exponents, optimum=approach3.optimum,
                loss_at=approach3.loss_at, report=report, noise_priority=-1, default=False)
