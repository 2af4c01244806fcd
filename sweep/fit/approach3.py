"""Chinchilla approach 3: fit L = E + A/N^alpha + B/D^beta to every run at once (the estimator in
sweep/fit/estimator.py, the numerics in sweep/fit/lse.py)."""

from __future__ import annotations

import time

import numpy as np

from sweep.fit import estimator, lse
from sweep.fit.config import FitConfig, MethodSkipped
from sweep.fit.estimator import Form, LseFit, Point
from sweep.fit.laws import AT_BOUND, chinchilla_loss, chinchilla_optimum
from sweep.fit.lse import (PARAM_NAMES, bootstrap, epoch_grid, fit_grid, lse_to_natural, natural,  # noqa: F401
                           objective, polish)
from sweep.fit.method import Method, MethodFit
from sweep.fit.selection import select


def _point(log_n, log_d, log_l, cfg: FitConfig, weights) -> Point:
    """The grid fit: every start of the initialisation grid, the best distinct optima polished."""
    grid = lse.epoch_grid(cfg.grid_alpha, cfg.grid_beta, cfg.grid_e, cfg.grid_a, cfg.grid_b)
    t0 = time.perf_counter()
    best = lse.fit_grid(log_n, log_d, log_l, cfg.huber_delta, grid, weights=weights)
    seconds = time.perf_counter() - t0
    # Warm starts of the bootstraps: the best optimum and, for sweeps small enough to afford it, the next two (a
    # resample can move the best basin); on large sweeps every resample stays near the original optimum.
    starts = np.vstack([best.theta] + [o[0] for o in best.optima[1:3 if log_n.size <= 250 else 1]])
    return Point(best.theta, best.objective, starts, {"grid": best, "seconds": seconds})


def _natural(theta: np.ndarray) -> np.ndarray:
    """(E, A, B, alpha, beta) rows from (a, b, e, alpha, beta) rows."""
    nat = lse.lse_to_natural(theta)
    return np.column_stack([nat[k] for k in lse.PARAM_NAMES])


def _diagnostics(f: LseFit, cfg: FitConfig) -> dict:
    best, sub, weights = f.point.details["grid"], f.selection.data, f.selection.weights
    log_n, log_d, log_l = np.log(sub.n), np.log(sub.d), np.log(sub.loss)
    sensitivity = {}
    for factor in (0.1, 10.0):
        th, _ = lse.polish(best.theta, log_n, log_d, log_l, cfg.huber_delta * factor, weights)
        sensitivity[f"delta={cfg.huber_delta * factor:g}"] = lse.natural(th)
    # residuals in log-sum-exp form: a degenerate optimum (B ~ e^800, beta ~ 50) overflows the natural form
    residuals = f.residuals
    return {
        "objective": best.objective, "n_starts": best.n_starts, "grid_seconds": round(f.point.details["seconds"], 3),
        "distinct_optima": len(best.optima),
        "optima": [{"objective": o[1], "starts": o[2], **lse.natural(o[0])} for o in best.optima[:5]],
        "delta_sensitivity": sensitivity,
        "residual_rms": float(np.sqrt(np.mean(residuals ** 2))), "residual_max": float(np.max(np.abs(residuals))),
    }


def _applies(data) -> None:
    """Approach 3 needs N and D varied independently; otherwise E, A, B, alpha and beta trade off freely."""
    if data.loss.size <= 5:
        raise MethodSkipped(f"approach 3 has 5 parameters but only {data.loss.size} runs: add runs")
    n_sizes, n_tokens = np.unique(data.n).size, np.unique(data.d).size
    if n_sizes < 3 or n_tokens < 3:
        raise MethodSkipped(f"approach 3 needs at least 3 distinct N and 3 distinct D (got {n_sizes} and {n_tokens}): "
                            "with fewer, alpha and beta are not identified; add sizes or token counts")
    thin = collinear(data)
    if thin:
        raise MethodSkipped(f"approach 3's (log N, log D) design is nearly collinear ({thin}), as in a single IsoFLOP "
                            "budget: N and D effects cannot be separated; add budgets (or token counts per size)")


def loss_at(params: dict, n, d):
    return chinchilla_loss(n, d, *[np.asarray(params[k], float) for k in ("E", "A", "B", "alpha", "beta")])


FORM = Form(names=lse.PARAM_NAMES, width=5, label="approach 3", point=_point, natural=_natural, loss_at=loss_at,
            diagnostics=_diagnostics, applies=_applies)
"""Chinchilla's law in log-sum-exp form, L = E + A/N^alpha + B/D^beta, for the estimator
(sweep/fit/estimator.py)."""


def run(data, cfg: FitConfig) -> MethodFit:
    """Approach 3's fit: the grid fit on every run, both bootstraps, residuals and diagnostics."""
    return estimator.fit(FORM, select(data, cfg, "all"), cfg).result(data, cfg)


COLLINEAR = 0.05
"""Approach 3 refuses a design whose (log N, log D) cloud is this thin: smallest / largest singular value of
the centred design. One IsoFLOP budget (log N + log D = const) gives about 0; 3 budgets spanning a decade ~0.3."""


def collinear(data) -> str | None:
    """'singular values x, y' when the centred (log N, log D) cloud is thinner than COLLINEAR, else None."""
    design = np.column_stack([np.log(data.n), np.log(data.d)])
    sv = np.linalg.svd(design - design.mean(0), compute_uv=False)
    return f"singular values {sv[0]:.3g}, {sv[1]:.3g}" if sv[1] < COLLINEAR * sv[0] else None


def exponents(params: dict):
    """a = beta / (alpha + beta), b = alpha / (alpha + beta)."""
    alpha, beta = np.asarray(params["alpha"], float), np.asarray(params["beta"], float)
    return beta / (alpha + beta), alpha / (alpha + beta)


def optimum(params: dict, flops, flops_per_nd: float):
    p = [np.asarray(params[k], float) for k in ("E", "A", "B", "alpha", "beta")]
    return chinchilla_optimum(np.asarray(flops, float), *p, flops_per_nd)


def report(r: dict, fit: dict) -> list:
    diag = r["diagnostics"]
    floor = []
    if r["params"]["E"] < AT_BOUND:
        floor = [f"E is at its lower bound ({r['params']['E']:.3g}, in effect 0): these runs do not determine an "
                 "irreducible loss, so its interval above is degenerate, not exact, and the law has no floor: its "
                 "loss keeps falling with compute. Extrapolate only a few times past the fitted compute, or add runs "
                 "that approach the floor (more compute, more tokens per parameter).", ""]
    return floor + [f"Grid: {diag['n_starts']} starts in {diag['grid_seconds']} s; objective {diag['objective']:.6g}; "
            f"{diag['distinct_optima']} distinct optima near the best (objective, starts): "
            + ", ".join(f"{o['objective']:.5g} ({o['starts']})" for o in diag["optima"][:4]) + ".",
            "Sensitivity to the Huber δ: " + "; ".join(
                f"{k}: α={v['alpha']:.4g}, β={v['beta']:.4g}, E={v['E']:.4g}" for k, v in diag["delta_sensitivity"].items()),
            f"Residuals (log loss): rms {diag['residual_rms']:.4g}, max {diag['residual_max']:.4g}."
            + pi_noise(r.get("noise")), ""]


def pi_noise(nz: dict | None) -> str:
    """What the PI's refits on simulated sweeps draw their noise from, where it is not the residual scale."""
    if not nz or "differenced" not in nz.get("source", ""):
        return ""
    return (f" The PI's refits on simulated sweeps draw noise sd {nz['sigma']:.3g}, from the {nz['source']}: the rest "
            f"of the residuals is the law's misfit, which the lack-of-fit term carries.")


METHOD = Method(name="approach3", title="Chinchilla approach 3 (L = E + A/N^α + B/D^β)", color="tab:green", fit=run,
                exponents=exponents, optimum=optimum, loss_at=loss_at, report=report, noise_priority=0)
