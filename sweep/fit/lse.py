"""The numerics of approach 3: fit L = E + A/N^alpha + B/D^beta to every run at once.

The fit is Hoffmann et al.'s (as replicated by Besiroglu et al. 2024): log-sum-exp form
log L = LSE(a - alpha log N, b - beta log D, e), Huber loss on log-loss residuals SUMMED over
points, minimised from every start of an initialisation grid.

Speed: a plain scipy loop over the 4500-start grid takes minutes. Here all starts advance
together in numpy: a batched Levenberg-Marquardt on the Huber objective (Gauss-Newton with the
IRLS weights min(1, delta/|r|), which majorise the Huber loss), each start with its own damping
and step acceptance, so every start only ever moves downhill. The few distinct best candidates
are then polished with scipy's L-BFGS-B on the same objective with its analytic gradient. The
bootstrap reuses the batched solver: a resample is a vector of per-point counts, so many
resamples x a few warm starts run as one batch.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from sweep.fit import solver
from sweep.fit.laws import huber, huber_grad, lse_to_natural

PARAM_NAMES = ("E", "A", "B", "alpha", "beta")
LOWER = np.array([-np.inf, -np.inf, -np.inf, 0.0, 0.0])
"""Bounds of (a, b, e, alpha, beta): the exponents are >= 0. A negative alpha makes a bigger model worse at every D,
which no sweep means; unbounded, a sweep whose small budgets mislead (large models starved of tokens) reaches one,
and its extrapolation in N then runs away."""


def epoch_grid(alphas=None, betas=None, es=None, as_=None, bs=None) -> np.ndarray:
    """Besiroglu et al.'s initialisation grid as rows of (a, b, e, alpha, beta); 4500 starts by default."""
    alphas = np.arange(0, 2.01, 0.5) if alphas is None else np.asarray(alphas, float)
    betas = np.arange(0, 2.01, 0.5) if betas is None else np.asarray(betas, float)
    es = np.arange(-1, 1.01, 0.5) if es is None else np.asarray(es, float)
    as_ = np.arange(0, 26, 5) if as_ is None else np.asarray(as_, float)
    bs = np.arange(0, 26, 5) if bs is None else np.asarray(bs, float)
    return np.array([(a, b, e, al, be) for al, be, e, a, b in itertools.product(alphas, betas, es, as_, bs)],
                    dtype=float)


def _residuals(theta, log_n, log_d, log_l, with_jacobian=True):
    """Residuals r = LSE(...) - log L (S, P) and, optionally, their Jacobian (S, P, 5) for starts theta (S, 5)."""
    a, b, e, alpha, beta = (theta[:, i, None] for i in range(5))
    z0 = a - alpha * log_n
    z1 = b - beta * log_d
    m = np.maximum(np.maximum(z0, z1), e)
    p0, p1, p2 = np.exp(z0 - m), np.exp(z1 - m), np.exp(e - m)
    s = p0 + p1 + p2
    r = m + np.log(s) - log_l
    if not with_jacobian:
        return r, None
    p0 /= s
    p1 /= s
    p2 /= s
    jac = np.stack([p0, p1, p2, -p0 * log_n, -p1 * log_d], axis=-1)
    return r, jac


def log_residuals(theta, log_n, log_d, log_l) -> np.ndarray:
    """log L(theta) - log loss at every point, for one theta (5,)."""
    return _residuals(np.atleast_2d(np.asarray(theta, float)), log_n, log_d, log_l, with_jacobian=False)[0][0]


def objective(theta, log_n, log_d, log_l, delta, weights=None):
    """Summed Huber loss of log-loss residuals for each start: theta (S, 5) -> (S,)."""
    r, _ = _residuals(np.atleast_2d(np.asarray(theta, float)), log_n, log_d, log_l, with_jacobian=False)
    h = huber(r, delta)
    return (h if weights is None else h * weights).sum(axis=1)


def batched_lm(theta0, log_n, log_d, log_l, delta, weights=None, residuals=_residuals, lower=LOWER, **options):
    """`solver.batched_lm` on approach 3's residuals (or another form's `residuals`, with its `lower` bounds):
    every row of theta0 (S, k) minimised at once."""
    return solver.batched_lm(theta0, lambda th, jac, rows: residuals(th, log_n, log_d, log_l, jac), delta,
                             weights=weights, lower=lower, **options)


def polish(theta0, log_n, log_d, log_l, delta, weights=None):
    """scipy L-BFGS-B from theta0 (5,) with the analytic gradient; returns (theta, objective)."""
    w = np.ones(log_n.size) if weights is None else np.asarray(weights, float)

    def fun(th):
        r, jac = _residuals(th[None, :], log_n, log_d, log_l)
        return float((w * huber(r[0], delta)).sum()), (w * huber_grad(r[0], delta)) @ jac[0]

    bounds = [(None if np.isinf(lo) else lo, None) for lo in LOWER]
    res = minimize(fun, np.clip(np.asarray(theta0, float), LOWER, None), jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"maxiter": 10000, "ftol": 1e-15, "gtol": 1e-12})
    return res.x, float(res.fun)


def distinct_optima(theta, f, rel_tol=1e-5, param_tol=1e-2):
    """Group converged starts into distinct optima: a list of (theta, objective, count), best first.

    Two starts share an optimum when their objectives agree to rel_tol and their parameters to
    param_tol (relative to the larger of 1 and the parameter's size). Sorted by objective, a start
    can only join one of the groups whose objective is within rel_tol, so the scan is linear.
    """
    # Compare E itself, not e = log E: optima with E -> 0 differ only in an irrelevant, huge negative e.
    theta = np.column_stack([theta[:, :2], np.exp(np.minimum(theta[:, 2], 50.0)), theta[:, 3:]])
    order = np.argsort(f)
    groups: list[list] = []
    open_groups: list[list] = []
    for i in order:
        if not np.isfinite(f[i]):
            continue
        open_groups = [g for g in open_groups if f[i] - g[1] <= rel_tol * max(abs(g[1]), 1e-300)]
        for g in open_groups:
            if np.all(np.abs(theta[i] - g[0]) <= param_tol * np.maximum(1.0, np.abs(g[0]))):
                g[2] += 1
                break
        else:
            g = [theta[i].copy(), float(f[i]), 1]
            groups.append(g)
            open_groups.append(g)
    return [(np.r_[g[0][:2], np.log(max(g[0][2], 1e-300)), g[0][3:]], g[1], g[2]) for g in groups]


@dataclass
class Approach3Fit:
    """Result of one approach-3 fit on one data set."""

    theta: np.ndarray
    """Best (a, b, e, alpha, beta) found."""
    objective: float
    """Summed Huber loss at theta."""
    n_starts: int
    """Number of initialisation-grid starts."""
    optima: list
    """Distinct optima the grid reached: (theta, objective, count), best first."""


GRID_POINTS = 250
"""Above this many runs, the grid's starts are advanced on an even subsample of SUBSAMPLE runs (spread over
compute and size) to find the basins; the best distinct optima are then refined on every run. A sweep of up to
GRID_POINTS runs uses every run from every start."""
SUBSAMPLE = 100


def _subsample(log_n, log_d, size: int) -> np.ndarray:
    order = np.lexsort((log_n, log_n + log_d))  # by compute, then size
    return order[np.unique(np.linspace(0, order.size - 1, size).round().astype(int))]


def fit_grid(log_n, log_d, log_l, delta, grid, n_polish=3, weights=None) -> Approach3Fit:
    """Approach 3 from every start of `grid`: batched LM, then L-BFGS-B polish of the best distinct optima."""
    if weights is None and log_n.size > GRID_POINTS:
        sub = _subsample(log_n, log_d, SUBSAMPLE)
        theta, f, _ = batched_lm(grid, log_n[sub], log_d[sub], log_l[sub], delta)
        keep = np.argsort(f)[:1000]
        candidates = np.array([o[0] for o in distinct_optima(theta[keep], f[keep])[:20]])
        theta, f, _ = batched_lm(candidates, log_n, log_d, log_l, delta)
    else:
        theta, f, _ = batched_lm(grid, log_n, log_d, log_l, delta, weights=weights)
    # Only starts near the best matter for the optimum and its diagnostics; clustering all
    # 4500 (many stopped early in poor basins) would cost more than the fit.
    best = np.nanmin(f)
    keep = np.argsort(f)[:1000]
    keep = keep[f[keep] <= 10 * best]
    optima = distinct_optima(theta[keep], f[keep])
    best_theta, best_f = theta[np.nanargmin(f)], best
    for th, fo, _ in optima[:n_polish]:
        if fo > 1.01 * best:
            break
        pt, pf = polish(th, log_n, log_d, log_l, delta, weights)
        if pf < best_f:
            best_theta, best_f = pt, pf
    return Approach3Fit(theta=np.asarray(best_theta, float), objective=float(best_f), n_starts=len(grid), optima=optima)


def bootstrap(log_n, log_d, log_l, delta, starts, n_boot, seed, chunk=250, residuals=_residuals, lower=LOWER,
              weights=None, **options):
    """Refit on n_boot resamples of the points (counts drawn with replacement), warm-started from `starts` (K, 5).

    Returns the best (a, b, e, alpha, beta) per resample, (n_boot, 5); the same seed gives the same draws.
    Another form of the law passes its `residuals` and `lower` bounds (rows of its own width); `weights` (per
    point) weigh each resample's points beside their counts, as in the fit they resample.
    """
    rng = np.random.default_rng(seed)
    n_points = log_n.size
    starts = np.atleast_2d(starts)
    k, width = starts.shape
    out = np.empty((n_boot, width))
    for lo in range(0, n_boot, chunk):
        hi = min(n_boot, lo + chunk)
        counts = np.stack([np.bincount(rng.integers(0, n_points, n_points), minlength=n_points)
                           for _ in range(hi - lo)]).astype(float)
        w = np.repeat(counts if weights is None else counts * np.asarray(weights, float)[None, :], k, axis=0)
        th0 = np.tile(starts, (hi - lo, 1))
        th, f, _ = batched_lm(th0, log_n, log_d, log_l, delta, weights=w, groups=np.repeat(np.arange(hi - lo), k),
                              residuals=residuals, lower=lower, **options)
        f = f.reshape(hi - lo, k)
        best = np.argmin(f, axis=1)
        out[lo:hi] = th.reshape(hi - lo, k, width)[np.arange(hi - lo), best]
    return out


def parametric_bootstrap(log_n, log_d, theta, sigma, delta, starts, n_boot, seed, chunk=250, residuals=_residuals,
                         lower=LOWER, weights=None, **options):
    """Refit on n_boot sweeps simulated from the fitted law: log L = LSE(theta) + sigma z at the same (N, D).

    The spread of these refits is the law's uncertainty if the law's form is right and runs differ by
    noise sigma; prediction intervals use it (resampling runs also resamples the design, a spread that a new run at
    a given (N, D) does not have).
    Returns (n_boot, 5) rows of (a, b, e, alpha, beta); `weights` (per point) as in the fit it repeats.
    """
    rng = np.random.default_rng(seed)
    fitted = residuals(np.atleast_2d(theta), log_n, log_d, np.zeros_like(log_n), False)[0][0]
    starts = np.atleast_2d(starts)
    k, width = starts.shape
    out = np.empty((n_boot, width))
    for lo in range(0, n_boot, chunk):
        hi = min(n_boot, lo + chunk)
        sims = fitted + sigma * rng.standard_normal((hi - lo, log_n.size))
        per_row = np.repeat(sims, k, axis=0)
        th, f, _ = solver.batched_lm(np.tile(starts, (hi - lo, 1)),
                                     lambda th, jac, rows: residuals(th, log_n, log_d, per_row[rows], jac), delta,
                                     groups=np.repeat(np.arange(hi - lo), k), lower=lower, weights=weights,
                                     **options)
        out[lo:hi], _ = solver.best_per_group(th, f, hi - lo)
    return out


def natural(theta) -> dict:
    """Best-fit parameters as a plain dict {E, A, B, alpha, beta}."""
    return {k: float(v) for k, v in lse_to_natural(theta).items()}

