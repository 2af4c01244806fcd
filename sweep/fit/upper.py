"""Approach 3 on the IsoFLOP valleys of the upper half of the compute range: the law read where the extrapolation
starts.

A law of fixed exponents fitted over a wide compute range takes their average over it. Real sweeps drift: their
small budgets bend more than their large ones (warm-up and embeddings weigh more in small models, a learning rate
tuned at one size suits its neighbours less), so a fit over the whole range leans on the small budgets and its
extrapolation inherits their curvature. On Porian et al.'s configurations, approach 3 on the valleys fitted to the
budgets up to 1e18 FLOPs puts E at 2.9 ("Optimizer tuning (no decay)", OpenWebText2) where the same fit over every
budget up to 2.6e19 puts it at 1.8, and misses the largest budget by up to 10%. This method fits approach 3 to the
valley runs (sweep/fit/valley.py) of the budgets in the upper half of the sweep's log-compute range only, so that
its exponents and floor are those of the largest runs. It pays with fewer runs: its law and its prediction
intervals are wider, and on a sweep whose every budget follows one law it is a noisier copy of approach 3. Whether
it extrapolates better on a given sweep is the within-data backtest's question: named in `fit.methods`, it is
scored and stacked like every other method (sweep/fit/recommend.py).

It needs MIN_BUDGETS budgets with a valley in the upper half (a sweep of 5 or more budgets), and is skipped
otherwise. It is not run by default (`Method.default`): where small budgets bend more its point predictions beat
approach 3's, on every run and on the valleys, but its intervals are not yet honest. Its within-data backtest
refits the upper half of each split's budgets, so a sweep of 5-7 budgets gives it 0-2 refits, too few to measure
its own lack of fit, and its PI then covers less than it says. Measured 2026-12-03 (docs/fitting.md): stacked with
every other method it took the recommended prediction on Porian et al.'s tables from a median error of 2.26% to
1.66% and a PI half-width of 12.8% to 4.5%, but the PI's coverage from 97% to 84%; on the misspecified simulation
at 100x, from 0.90 to 0.875. Name it to use it: `fit.methods=[approach1,approach2,approach3,kaplan,
shared_exponent,approach3_valley,approach3_upper]`.
"""

from __future__ import annotations

import numpy as np

from sweep.fit import approach3
from sweep.fit.config import FitConfig, MethodSkipped
from sweep.fit.method import Method
from sweep.fit.valley import valley_runs

UPPER = 0.5
"""Which budgets it keeps: those at or above this fraction of the valley budgets' log-compute range (0.5: the upper
half). One fixed choice, not tuned to a table: half keeps enough budgets for approach 3's five parameters on a sweep
of 5 or more, and leaves out the budgets whose curvature the extrapolation should not inherit."""


MIN_BUDGETS = 3
"""Upper budgets with a valley it needs: with 2 (10 runs for five parameters) its refits were noise."""


def upper_runs(data, min_sizes: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices of the valley runs of the upper budgets, those budgets' ids)."""
    idx = valley_runs(data, min_sizes, window)
    if not idx.size:
        return idx, np.array([], dtype=int)
    budgets = np.unique(data.budget[idx])
    log_c = np.array([np.log(np.median(data.c[data.budget == b])) for b in budgets])
    cut = log_c.min() + UPPER * (log_c.max() - log_c.min())
    kept = budgets[log_c >= cut - 1e-9]
    return idx[np.isin(data.budget[idx], kept)], kept


def run(data, cfg: FitConfig) -> dict:
    """Approach 3's section of fit.json, fitted on the upper budgets' valley runs, with what was selected."""
    idx, kept = upper_runs(data, cfg.min_sizes_per_budget, cfg.parabola_window)
    if kept.size < MIN_BUDGETS:
        raise MethodSkipped(f"{kept.size} IsoFLOP budget(s) with a valley in the upper half of the compute range: "
                            f"this fit needs at least {MIN_BUDGETS} (a sweep of 5 or more budgets with "
                            f"{cfg.min_sizes_per_budget} sizes each)")
    try:
        out = approach3.run(data.subset(idx), cfg)
    except MethodSkipped as e:
        raise MethodSkipped(f"on the {idx.size} valley runs of the upper budgets: {e}") from None
    if out["noise"]["source"].startswith("approach 3"):
        out["noise"]["source"] = out["noise"]["source"].replace("approach 3", "approach 3 on the upper valleys'", 1)
    # every run's residual, so that plots line them up with the sweep; the smaller budgets show the drift left out
    out["residuals"] = (np.log(data.loss) - np.log(approach3.loss_at(out["params"], data.n, data.d))).tolist()
    c = [float(np.median(data.c[data.budget == b])) for b in kept]
    out["upper"] = {"runs": int(idx.size), "of": int(data.loss.size), "budgets": int(kept.size),
                    "flops_from": min(c), "window": cfg.parabola_window, "run_ids": [data.names[i] for i in idx]}
    return out


def report(r: dict, fit: dict) -> list:
    u = r["upper"]
    return [f"Fitted on {u['runs']} of {u['of']} runs: the valleys (best size and {u['window']} sizes each side) of "
            f"the {u['budgets']} IsoFLOP budgets from {u['flops_from']:.3g} FLOPs, the upper half of the sweep's "
            f"log-compute range. Residuals (log loss) of those runs: rms {r['diagnostics']['residual_rms']:.4g}."
            + approach3.pi_noise(r.get("noise")), ""]


METHOD = Method(name="approach3_upper", title="Approach 3 on the upper half of the compute range (IsoFLOP valleys)",
                color="tab:cyan", fit=run, exponents=approach3.exponents, optimum=approach3.optimum,
                loss_at=approach3.loss_at, report=report, default=False)
