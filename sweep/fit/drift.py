"""Approach 3 with a data exponent that drifts with the model size, fitted on the IsoFLOP valleys (Farseer-style).

L = E + A/N^alpha + B/D^beta(N), beta(N) = beta (N / N0)^delta, N0 the geometric mean of the fitted sizes (delta = 0
is approach 3). Li et al. 2025 (Farseer) found larger models using data differently from smaller ones: the data
term's exponent is not one number across a sweep. A law with one beta fitted on the small budgets then bends the
wrong way beyond them, with one sign per sweep. One more parameter lets the valleys say which way the data term
drifts; whether that extrapolates better than the fixed exponent is the within-data backtest's question
(sweep/fit/recommend.py), not this module's.

Fitted like `approach3_valley`, by the same estimator (sweep/fit/estimator.py) on the same valley selection (each
IsoFLOP budget's best size and `fit.parabola_window` sizes each side, in budgets with `fit.min_sizes_per_budget`
sizes or more): log-sum-exp form, Huber loss on log-loss residuals, batched Levenberg-Marquardt from approach 3's
best fit on the same runs with several delta; the law interval from resampled valley runs, the PI from refits on
sweeps simulated from the fitted law. |delta| is bounded by DELTA_MAX. The
compute-optimal N* has no closed form: it is found on a grid in log N (`optimum`), and a and b are the local slopes
of log N* and log D* in log C at the largest fitted compute.
"""

from __future__ import annotations

import numpy as np

from sweep.fit import approach3, estimator, lse
from sweep.fit.config import FitConfig, MethodSkipped
from sweep.fit.estimator import Form, LseFit, Point
from sweep.fit.method import Method, MethodFit
from sweep.fit.selection import select

DELTA_MAX = 0.25
"""Bound on |delta|: over the two decades of N a sweep spans, beta changes by up to e^(0.25 ln 100) ~ 3x."""
LAW = ("E", "A", "B", "alpha", "beta", "delta")
FIXED = ("n_ref", "c_ref", "flops_per_nd")
NAMES = LAW + FIXED
LOWER = np.array([-np.inf, -np.inf, -np.inf, 0.0, 0.0, -DELTA_MAX])
UPPER = np.array([np.inf, np.inf, np.inf, np.inf, np.inf, DELTA_MAX])
DELTA_STARTS = (-0.1, -0.03, 0.0, 0.03, 0.1)
"""delta's starts, each beside approach 3's best fit on the same runs."""


def form(log_ref: float) -> dict:
    """What lse's solver and bootstraps need to fit this law with N0 = exp(log_ref): its residuals (rows (a, b, e,
    alpha, beta, delta)) and bounds."""
    def residuals(theta, log_n, log_d, log_l, with_jacobian=True):
        # approach 3's residuals with log D scaled by beta(N) / beta = (N / N0)^delta, per start: (S, P)
        u = log_n - log_ref
        g = np.exp(theta[:, 5, None] * u)
        r, j = lse._residuals(theta[:, :5], log_n, g * log_d, log_l, with_jacobian)
        if j is None:
            return r, None
        # d r / d delta = d r / d beta * beta * u (beta(N) = beta e^(delta u))
        return r, np.concatenate([j, j[..., 4:5] * theta[:, 4, None, None] * u[..., None]], axis=-1)

    return dict(residuals=residuals, lower=LOWER, upper=UPPER, stall_tol=1e-12)


def _natural(theta: np.ndarray, fixed: tuple) -> np.ndarray:
    """(E, A, B, alpha, beta, delta, n_ref, c_ref, flops_per_nd) rows from (a, b, e, alpha, beta, delta) rows."""
    theta = np.atleast_2d(theta)
    with np.errstate(over="ignore"):  # a degenerate resample (B ~ e^800) reads inf, and its interval n/a
        return np.column_stack([np.exp(theta[:, 2]), np.exp(theta[:, 0]), np.exp(theta[:, 1]), theta[:, 3:6],
                                np.tile(np.asarray(fixed, float), (len(theta), 1))])


def _form(v, data) -> Form:
    """The drifting law as the estimator fits it on the valley runs v of the sweep data: N0 the geometric mean of
    v's sizes; its starts are approach 3's best fit on the same runs with each of DELTA_STARTS."""
    log_ref = float(np.mean(np.log(np.unique(v.n))))
    fixed = (float(np.exp(log_ref)), float(data.c.max()), float(data.flops_per_nd))
    solver = form(log_ref)

    def point(log_n, log_d, log_l, cfg: FitConfig, weights) -> Point:
        grid = lse.epoch_grid(cfg.grid_alpha, cfg.grid_beta, cfg.grid_e, cfg.grid_a, cfg.grid_b)
        base = lse.fit_grid(log_n, log_d, log_l, cfg.huber_delta, grid, weights=weights).theta
        starts = np.array([np.r_[base, d] for d in DELTA_STARTS])
        theta, f, _ = lse.batched_lm(starts, log_n, log_d, log_l, cfg.huber_delta, weights=weights, **solver)
        if not np.isfinite(f).any():
            raise MethodSkipped("the drifting data exponent's fit failed from every start")
        best = theta[np.nanargmin(f)]
        return Point(best, float(np.nanmin(f)), best[None, :])

    def diagnostics(fit: LseFit, cfg: FitConfig) -> dict:
        sel, p, resid = fit.selection, fit.params, fit.residuals
        return {"objective": fit.point.objective, "runs": int(sel.runs.size), "of": sel.of, "budgets": sel.budgets,
                "residual_rms": float(np.sqrt(np.mean(resid ** 2))),
                "beta_range": [float(p["beta"] * (sel.data.n.min() / p["n_ref"]) ** p["delta"]),
                               float(p["beta"] * (sel.data.n.max() / p["n_ref"]) ** p["delta"])]}

    return Form(names=NAMES, width=len(LAW), label="the drifting data exponent", point=point,
                natural=lambda theta: _natural(theta, fixed), loss_at=loss_at, diagnostics=diagnostics,
                applies=approach3._applies, residuals=solver["residuals"], lower=solver["lower"],
                options={k: v for k, v in solver.items() if k not in ("residuals", "lower")})


def run(data, cfg: FitConfig) -> MethodFit:
    """This method's fit: the fit on the valley runs, both bootstraps, every run's residual."""
    sel = select(data, cfg, "valley", "the drifting data exponent, fitted on the valleys,")
    fit = estimator.fit(_form(sel.data, data), sel, cfg, noise_label="the drifting data exponent's valley runs")
    return fit.result(data, cfg, bootstrap="valley runs resampled with replacement")


def _params(params: dict) -> dict:
    return {k: np.asarray(params[k], float) for k in NAMES}


def loss_at(params: dict, n, d):
    """L(N, D); parameters and (n, d) broadcast."""
    p = _params(params)
    n, d = np.asarray(n, float), np.asarray(d, float)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        beta = p["beta"] * np.power(n / p["n_ref"], p["delta"])
        return p["E"] + p["A"] / np.power(n, p["alpha"]) + p["B"] / np.power(d, beta)


GRID = np.linspace(-12.0, 12.0, 241)
"""log N offsets from sqrt(C / k) searched for N* (a factor e^12 ~ 1.6e5 each side), then refined."""


def optimum(params: dict, flops, flops_per_nd: float):
    """(N*, D*, L*) at compute `flops` under C = k N D, by search in log N; arrays broadcast over parameter samples
    and budgets. NaN where the loss has no minimum inside the search range (a degenerate draw)."""
    p = _params(params)
    shape = np.broadcast_shapes(np.shape(flops), *(v.shape for v in p.values()))
    x = np.broadcast_to(np.asarray(flops, float) / flops_per_nd, shape).ravel()
    flat = {k: np.broadcast_to(v, shape).ravel()[:, None] for k, v in p.items()}
    centre, step = 0.5 * np.log(x), GRID[1] - GRID[0]
    offsets = GRID
    with np.errstate(all="ignore"):
        for level in range(3):  # the grid, then twice a finer one around its best point
            log_n = centre[:, None] + offsets[None, :]
            loss = loss_at(flat, np.exp(log_n), x[:, None] / np.exp(log_n))
            loss = np.where(np.isfinite(loss), loss, np.inf)
            j = np.argmin(loss, axis=1)
            centre = log_n[np.arange(j.size), j]
            if level == 0:  # a minimum at the search range's edge, or none, is no optimum (a degenerate draw)
                inside = (j > 0) & (j < offsets.size - 1) & np.isfinite(loss[np.arange(j.size), j])
                centre = np.where(inside, centre, np.nan)
            offsets = np.linspace(-step, step, 41)
            step = offsets[1] - offsets[0]
        n = np.exp(centre)
        d = x / n
        loss = loss_at({k: v[:, 0] for k, v in flat.items()}, n, d)
    return n.reshape(shape), d.reshape(shape), loss.reshape(shape)


def exponents(params: dict):
    """The local a = d log N* / d log C and b = 1 - a at the largest fitted compute (the law is no power law in C)."""
    p = _params(params)
    c = np.stack([p["c_ref"] * np.exp(-0.5), p["c_ref"] * np.exp(0.5)])
    n, _, _ = optimum(params, c, float(np.ravel(p["flops_per_nd"])[0]))
    with np.errstate(all="ignore"):
        a = np.log(n[1] / n[0])
    return a, 1.0 - a


def report(r: dict, fit: dict) -> list:
    dg, p = r["diagnostics"], r["params"]
    return [f"Fitted to {dg['runs']} of {dg['of']} runs, the valleys of {dg['budgets']} IsoFLOP budgets. The data "
            f"exponent β(N) = β (N / N0)^δ runs from {dg['beta_range'][0]:.3g} at the smallest fitted size to "
            f"{dg['beta_range'][1]:.3g} at the largest (N0 = n_ref = {p['n_ref']:.3g}; δ = 0 is approach 3). a and b "
            f"are local, at the largest fitted compute ({p['c_ref']:.3g} FLOPs). Residuals (log loss) on the valley "
            f"runs: rms {dg['residual_rms']:.4g}." + approach3.pi_noise(r.get("noise")), ""]


METHOD = Method(name="drift", title="Approach 3 with a data exponent that drifts with N, on the valleys "
                                    "(L = E + A/N^α + B/D^(β (N/N0)^δ))",
                color="tab:purple", fit=run, exponents=exponents, optimum=optimum, loss_at=loss_at, report=report, default=False,
                fixed={"n_ref": "N0: the geometric mean of the fitted sizes", "c_ref": "the largest fitted compute",
                       "flops_per_nd": "the sweep's FLOPs per N·D (C = k N D)"})
