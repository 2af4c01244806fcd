"""Approach 3 fitted near the compute-optimal frontier: each IsoFLOP budget's valley, not every run.

L = E + A/N^alpha + B/D^beta is a model of the loss around the frontier. A sweep's IsoFLOP grids also hold runs
far from it: models starved of tokens (D < N) or trained far past their optimum, whose losses follow whatever
else limits them (warmup, a schedule cut short, a learning rate tuned for another size). Fitted to every run,
approach 3 spends its five parameters on those, and they, not the frontier, set its floor and exponents.
Approach 2 keeps each budget's parabola local for the same reason (its `parabola_window`); this method fits
approach 3 to the same window: per budget with at least `min_sizes_per_budget` sizes, the best
size and `parabola_window` sizes each side. Budgets with fewer sizes, and sweeps without IsoFLOP budgets, leave
nothing to select: the method is skipped there and approach 3 stands.

Which of the two extrapolates better is the data's question, not this module's: both are scored by the
within-data backtest and stacked by it (sweep/fit/recommend.py). It is approach 3's form on the valley selection
(sweep/fit/selection.py) in the one estimator (sweep/fit/estimator.py): its parameters, intervals and prediction
intervals are approach 3's, computed on the valley runs; its residuals are reported for every run (the plots
align them with the sweep), and its noise scale comes from the valley runs only.
"""

from __future__ import annotations

import numpy as np

from sweep.fit import approach3, estimator
from sweep.fit.config import FitConfig, MethodSkipped
from sweep.fit.method import Method, MethodFit
from sweep.fit.selection import select, valley_runs, valleys  # noqa: F401 (valley_runs, valleys: importable here)


def run(data, cfg: FitConfig) -> MethodFit:
    """Approach 3's fit on the valley runs, with what was selected (extra "valley")."""
    idx = valley_runs(data, cfg.min_sizes_per_budget, cfg.parabola_window)
    if idx.size == data.loss.size and np.unique(data.budget[idx]).size >= 2:  # else select says why not
        raise MethodSkipped("every run is in its budget's valley: this fit would be approach 3's")
    sel = select(data, cfg, "valley", "a valley fit")
    out = estimator.fit(approach3.FORM, sel, cfg).result(data, cfg)
    out.extra["valley"] = {"runs": int(sel.runs.size), "of": sel.of, "budgets": sel.budgets,
                     "window": cfg.parabola_window, "run_ids": [data.names[i] for i in sel.runs]}
    return out


def report(r: dict, fit: dict) -> list:
    v = r["valley"]
    return [f"Fitted on {v['runs']} of {v['of']} runs: each of {v['budgets']} IsoFLOP budgets' best size and "
            f"{v['window']} sizes each side (fit.parabola_window). Residuals (log loss) of the valley runs: rms "
            f"{r['diagnostics']['residual_rms']:.4g}.", ""]


METHOD = Method(name="approach3_valley", title="Approach 3 on the IsoFLOP valleys (L = E + A/N^α + B/D^β)",
                color="tab:olive", fit=run, exponents=approach3.exponents, optimum=approach3.optimum,
                loss_at=approach3.loss_at, report=report, noise_priority=-1, default=False)
