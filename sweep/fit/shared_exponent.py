"""Gadre et al. 2024's one-exponent law: L = E + A/N^alpha + B/D^alpha, approach 3 with beta = alpha.

Four parameters instead of five. With one exponent the compute-optimal split is fixed by the form: N* and D*
both grow as C^0.5 (a = b = 0.5), and only their ratio, (A/B)^(1/(2 alpha)), is fitted. It earns its place where
approach 3's five parameters are poorly determined (few runs, a short compute span, E drifting to its bound)
and the data do not tell alpha from beta; the within-data backtest decides (sweep/fit/recommend.py). Its
parameters are stored under approach 3's names with beta = alpha, so approach 3's loss, optimum and exponents
apply unchanged. Fitted like approach 3, by the same estimator (sweep/fit/estimator.py) on every run: log-sum-exp
form, Huber loss on log-loss residuals summed over runs, batched Levenberg-Marquardt from a grid of starts; its law interval from runs resampled with replacement, its
prediction interval from refits on sweeps simulated from the fitted law with the run-to-run noise (`noise.from_fit`).
"""

from __future__ import annotations

import itertools

import numpy as np

from sweep.fit import approach3, estimator, lse
from sweep.fit.config import FitConfig, MethodSkipped
from sweep.fit.estimator import Form, LseFit, Point
from sweep.fit.method import Method, MethodFit
from sweep.fit.selection import select

LOWER = np.array([-np.inf, -np.inf, -np.inf, 0.0])
"""Bounds of (a, b, e, alpha): the exponent is >= 0, as approach 3's are."""


def _residuals(theta, log_n, log_d, log_l, jac):
    """Approach 3's residuals with beta = alpha: (S, P) and the Jacobian (S, P, 4) for rows (a, b, e, alpha)."""
    r, j = lse._residuals(np.column_stack([theta, theta[:, 3]]), log_n, log_d, log_l, jac)
    if j is None:
        return r, None
    return r, np.concatenate([j[..., :3], j[..., 3:4] + j[..., 4:5]], axis=-1)


def _grid(cfg: FitConfig) -> np.ndarray:
    """Starts (a, b, e, alpha) from approach 3's grid values, alpha taken from its alpha grid (0 excluded)."""
    alphas = [x for x in (cfg.grid_alpha or [0.5, 1.0, 1.5, 2.0]) if x > 0] or [0.5]
    es = cfg.grid_e or [-1.0, 0.0, 1.0]
    as_, bs = cfg.grid_a or [0.0, 10.0, 20.0], cfg.grid_b or [0.0, 10.0, 20.0]
    return np.array([(a, b, e, al) for al, e, a, b in itertools.product(alphas, es, as_, bs)], float)


SOLVER = dict(residuals=_residuals, lower=LOWER, stall_tol=1e-12)
"""What lse's solver needs to fit this form instead of approach 3's."""


def _natural(theta: np.ndarray) -> np.ndarray:
    """(E, A, B, alpha, beta) rows from (a, b, e, alpha) rows."""
    theta = np.atleast_2d(theta)
    return np.column_stack([np.exp(theta[:, 2]), np.exp(theta[:, 0]), np.exp(theta[:, 1]), theta[:, 3], theta[:, 3]])


def _applies(data) -> None:
    if data.loss.size <= 4:
        raise MethodSkipped(f"the one-exponent law has 4 parameters but only {data.loss.size} runs: add runs")
    if np.unique(data.n).size < 2 or np.unique(data.d).size < 2:
        raise MethodSkipped("the one-exponent law needs runs at several sizes and several token counts")
    thin = approach3.collinear(data)
    if thin:
        raise MethodSkipped(f"the (log N, log D) design is nearly collinear ({thin}), as in a single IsoFLOP budget: "
                            "N and D effects cannot be separated")


def _point(log_n, log_d, log_l, cfg: FitConfig, weights) -> Point:
    theta, f, _ = lse.batched_lm(_grid(cfg), log_n, log_d, log_l, cfg.huber_delta, weights=weights, **SOLVER)
    if not np.isfinite(f).any():
        raise MethodSkipped("the one-exponent law's fit failed from every start")
    best = theta[np.nanargmin(f)]
    return Point(best, float(np.nanmin(f)), best[None, :], {"n_starts": int(len(f))})


def _diagnostics(fit: LseFit, cfg: FitConfig) -> dict:
    return {"objective": fit.point.objective, "n_starts": fit.point.details["n_starts"],
            "residual_rms": float(np.sqrt(np.mean(fit.residuals ** 2)))}


FORM = Form(names=lse.PARAM_NAMES, width=4, label="one-exponent law", point=_point, natural=_natural,
            loss_at=approach3.loss_at, diagnostics=_diagnostics, applies=_applies, residuals=_residuals, lower=LOWER,
            options=dict(stall_tol=1e-12))
"""The one-exponent law as the estimator (sweep/fit/estimator.py) fits it; parameters under approach 3's names."""


def run(data, cfg: FitConfig) -> MethodFit:
    """The one-exponent law's fit on every run."""
    return estimator.fit(FORM, select(data, cfg, "all"), cfg).result(data, cfg)


def report(r: dict, fit: dict) -> list:
    return [f"One exponent for N and D (α = β = {r['params']['alpha']:.4g}): the form fixes a = b = 0.5, so its "
            f"exponents say nothing about the data; its loss predictions are what it adds. Residuals (log loss): rms "
            f"{r['diagnostics']['residual_rms']:.4g}." + approach3.pi_noise(r.get("noise")), ""]


METHOD = Method(name="shared_exponent", title="Gadre et al. 2024's one-exponent law (L = E + A/N^α + B/D^α)",
                color="tab:brown", fit=run, exponents=approach3.exponents, optimum=approach3.optimum,
                loss_at=approach3.loss_at, report=report,
                fixed={"beta": "= α (one exponent)", "a": "fixed by the form (α = β)", "b": "fixed by the form (α = β)"})
