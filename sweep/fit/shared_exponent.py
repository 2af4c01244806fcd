"""Gadre et al. 2024's one-exponent law: L = E + A/N^alpha + B/D^alpha, approach 3 with beta = alpha.

Four parameters instead of five. With one exponent the compute-optimal split is fixed by the form: N* and D*
both grow as C^0.5 (a = b = 0.5), and only their ratio, (A/B)^(1/(2 alpha)), is fitted. It earns its place where
approach 3's five parameters are poorly determined (few runs, a short compute span, E drifting to its bound)
and the data do not tell alpha from beta; the within-data backtest decides (sweep/fit/recommend.py). Its
parameters are stored under approach 3's names with beta = alpha, so approach 3's loss, optimum and exponents
apply unchanged. Fitted like approach 3: log-sum-exp form, Huber loss on log-loss residuals summed over runs,
batched Levenberg-Marquardt from a grid of starts; its law interval from runs resampled with replacement, its
prediction interval from refits on sweeps simulated from the fitted law with the run-to-run noise (`noise.from_fit`).
"""

from __future__ import annotations

import itertools

import numpy as np

from sweep.fit import approach3, lse
from sweep.fit.bootstrap import PI_REFITS, summarize
from sweep.fit.config import FitConfig, MethodSkipped
from sweep.fit.method import Method
from sweep.fit.noise import from_fit, from_replicates

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


FORM = dict(residuals=_residuals, lower=LOWER, stall_tol=1e-12)
"""What lse's solver and bootstraps need to fit this form instead of approach 3's."""


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


def run(data, cfg: FitConfig) -> dict:
    """The one-exponent law's section of fit.json."""
    _applies(data)
    log_n, log_d, log_l = np.log(data.n), np.log(data.d), np.log(data.loss)
    theta, f, _ = lse.batched_lm(_grid(cfg), log_n, log_d, log_l, cfg.huber_delta, **FORM)
    if not np.isfinite(f).any():
        raise MethodSkipped("the one-exponent law's fit failed from every start")
    best = theta[np.nanargmin(f)]
    names = list(lse.PARAM_NAMES)
    point = dict(zip(names, _natural(best)[0].tolist()))
    residuals = -_residuals(best[None, :], log_n, log_d, log_l, False)[0][0]
    nz = from_replicates(data) or from_fit(residuals, data, 4, "one-exponent law")
    samples = pis = None
    if cfg.n_bootstrap > 0 and cfg.law_intervals:
        samples = _natural(lse.bootstrap(log_n, log_d, log_l, cfg.huber_delta, best, cfg.n_bootstrap, cfg.seed, **FORM))
    if cfg.n_bootstrap > 0 and nz.ok:
        # refits on sweeps simulated from the fitted law: the law's spread if its form is right (approach 3 does
        # the same; resampling runs overstates it)
        pis = _natural(lse.parametric_bootstrap(log_n, log_d, best, nz.sigma, cfg.huber_delta, best,
                                                min(cfg.n_bootstrap, PI_REFITS), cfg.seed + 1, **FORM))
    out = summarize(point, samples, names, cfg.interval)
    out["bootstrap"] = "runs resampled with replacement"
    if pis is not None:
        out["pi_samples"] = {"names": names, "values": np.round(pis, 10).tolist()}
    out["residuals"] = residuals.tolist()
    out["noise"] = nz.as_dict()
    out["diagnostics"] = {"objective": float(np.nanmin(f)), "n_starts": int(len(f)),
                          "residual_rms": float(np.sqrt(np.mean(residuals ** 2)))}
    return out


def report(r: dict, fit: dict) -> list:
    return [f"One exponent for N and D (α = β = {r['params']['alpha']:.4g}): the form fixes a = b = 0.5, so its "
            f"exponents say nothing about the data; its loss predictions are what it adds. Residuals (log loss): rms "
            f"{r['diagnostics']['residual_rms']:.4g}." + approach3.pi_noise(r.get("noise")), ""]


METHOD = Method(name="shared_exponent", title="Gadre et al. 2024's one-exponent law (L = E + A/N^α + B/D^α)",
                color="tab:brown", fit=run, exponents=approach3.exponents, optimum=approach3.optimum,
                loss_at=approach3.loss_at, report=report,
                fixed={"beta": "= α (one exponent)", "a": "fixed by the form (α = β)", "b": "fixed by the form (α = β)"})
