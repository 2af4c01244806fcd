"""Approach 3 on the IsoFLOP valleys, each run weighted by its compute: the law read where the extrapolation starts.

A law of fixed exponents fitted over a wide compute range takes their average over it. Real sweeps drift: their
small budgets bend more than their large ones (warm-up and embeddings weigh more in small models, a learning rate
tuned at one size suits its neighbours less), so a fit over the whole range leans on the small budgets and its
extrapolation inherits their curvature. This method fits approach 3 to the valley runs (sweep/fit/valley.py)
with each run's Huber loss weighted by (C / C_max), the upper selection of sweep/fit/selection.py in the one
estimator (sweep/fit/estimator.py): the largest budgets set its exponents and floor, the small ones only steady
them. It pays with fewer effective runs: on a sweep whose every budget follows one law it is a noisier copy of
approach 3, with wider intervals. Which of them extrapolates better
on a given sweep is the within-data backtest's question (sweep/fit/recommend.py); a soft weight rather than a cut
keeps every budget, so its backtest refits as many splits as the valley fit's (a hard cut to the upper budgets
leaves a sweep of a few budgets too few refits to measure its lack of fit).

Not run by default (`Method.default`; name it in `fit.methods`): it is approach 3's law on a weighting of the runs,
not a law of its own (docs/decisions/history-fit-docstrings.md has what was measured).
"""

from __future__ import annotations

from sweep.fit import approach3, estimator
from sweep.fit.config import FitConfig
from sweep.fit.method import Method, MethodFit
from sweep.fit.selection import POWER, compute_weights, select  # noqa: F401 (POWER, compute_weights: importable here)


def run(data, cfg: FitConfig) -> MethodFit:
    """Approach 3's fit on the valley runs weighted by compute, with what was selected (extra "upper")."""
    sel = select(data, cfg, "upper", "a fit weighted toward the largest compute")
    out = estimator.fit(approach3.FORM, sel, cfg).result(data, cfg)
    w = sel.weights
    out.extra["upper"] = {"runs": int(sel.runs.size), "of": sel.of, "budgets": sel.budgets, "power": POWER,
                    "effective_runs": float(w.sum() ** 2 / (w ** 2).sum()), "window": cfg.parabola_window,
                    "run_ids": [data.names[i] for i in sel.runs]}
    return out


def report(r: dict, fit: dict) -> list:
    u = r["upper"]
    return [f"Fitted on {u['runs']} of {u['of']} runs, each IsoFLOP budget's valley (best size and {u['window']} "
            f"sizes each side) in {u['budgets']} budgets, each run weighted by (C / C_max)^{u['power']:g}: "
            f"{u['effective_runs']:.3g} runs' worth of data, most of it from the largest budgets. Residuals (log loss) "
            f"of the valley runs: rms {r['diagnostics']['residual_rms']:.4g}." + approach3.pi_noise(r.get("noise")), ""]


METHOD = Method(name="approach3_upper", title="Approach 3 on the IsoFLOP valleys, weighted toward the largest compute",
                color="tab:cyan", fit=run, exponents=approach3.exponents, optimum=approach3.optimum,
                loss_at=approach3.loss_at, report=report, default=False)
