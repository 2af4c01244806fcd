"""Robust fits of single-variable power laws L(x) = E + (x_c / x)^alpha, shared by Kaplan and approaches 1-2."""

from __future__ import annotations

import numpy as np

from sweep.fit import solver
from sweep.fit.config import MethodSkipped


def fit_power_law(x: np.ndarray, loss: np.ndarray, irreducible: bool, delta: float, min_points: int = 4) -> dict:
    """Huber fit on log-loss residuals; returns {log_xc, alpha, e}. Needs 3 points (min_points with E)."""
    x, loss = np.asarray(x, float), np.asarray(loss, float)
    need = min_points if irreducible else 3
    if np.unique(x).size < need:
        raise MethodSkipped(f"power law needs {need} distinct x values, got {np.unique(x).size}")
    if not irreducible:
        slope, icpt = np.polyfit(np.log(x), np.log(loss), 1)
        alpha = -slope
        return {"log_xc": float(icpt / alpha) if alpha != 0 else float("nan"), "alpha": float(alpha), "e": 0.0}
    p = fit_power_law_batched(x[None, :], loss[None, :], np.ones((1, x.size), bool), delta, min_points)[0]
    return {"log_xc": float(p[0]), "alpha": float(p[1]), "e": float(p[2])}


E_STARTS = (0.0, 0.5, 0.9, 0.99)
"""Starting floors, as fractions of the smallest loss: E trades off against the amplitude, so one start is not enough."""


def fit_power_law_batched(x: np.ndarray, loss: np.ndarray, mask: np.ndarray, delta: float,
                          min_points: int = 4) -> np.ndarray:
    """L = E + (x_c/x)^alpha fitted to each row of (S, P) arrays at once (points where mask is False ignored).

    Returns (S, 3) rows of (log x_c, alpha, E); NaN rows where fewer than min_points distinct x are present.
    Fitted as E + exp(log_a - alpha * (log x - ref)) with ref the middle of each row's data: in the
    (log x_c, alpha) form a small change of alpha moves the curve by x^alpha across the whole range,
    so the optimiser stalls in a narrow valley far from the optimum. log x_c = ref + log_a / alpha.
    """
    x, loss, mask = np.asarray(x, float), np.asarray(loss, float), np.asarray(mask, bool)
    mask = mask & (np.nan_to_num(loss, nan=-1.0) > 0)  # a resample's parabola can put a vertex below zero loss
    n_rows, n_points = x.shape
    out = np.full((n_rows, 3), np.nan)
    lx = np.log(np.where(mask, x, 1.0))
    distinct = np.array([np.unique(lx[i, mask[i]]).size for i in range(n_rows)])
    rows = np.flatnonzero(distinct >= min_points)
    if rows.size == 0:
        return out
    lx, m = lx[rows], mask[rows]
    w = m.astype(float)
    ll = np.log(np.where(m, loss[rows], 1.0))
    ref = (lx * w).sum(1) / w.sum(1)
    u = np.where(m, lx - ref[:, None], 0.0)
    min_loss = np.where(m, loss[rows], np.inf).min(1)
    k = len(E_STARTS)
    # Starts: per floor fraction, a straight line through log(loss - E0) against u.
    starts = []
    for frac in E_STARTS:
        e0 = frac * min_loss
        y = np.log(np.maximum(np.where(m, loss[rows], 1.0) - e0[:, None], 1e-300))
        slope, icpt = weighted_line(u, y, w)
        starts.append(np.column_stack([icpt, np.clip(-slope, 1e-3, 10.0), e0]))
    theta0 = np.stack(starts, axis=1).reshape(-1, 3)  # (rows x starts, 3), a row's starts consecutive
    rep = np.repeat(np.arange(rows.size), k)
    u_r, ll_r, w_r = u[rep], ll[rep], w[rep]

    def resid(th, jac, ix):
        uu, yy = u_r[ix], ll_r[ix]
        t = np.exp(np.minimum(th[:, :1] - th[:, 1:2] * uu, 700.0))
        total = th[:, 2:3] + t
        r = np.log(np.maximum(total, 1e-300)) - yy
        if not jac:
            return r, None
        return r, np.stack([t / total, -uu * t / total, 1.0 / total], axis=-1)

    lower = np.column_stack([np.full(rep.size, -np.inf), np.full(rep.size, 1e-4), np.zeros(rep.size)])
    upper = np.column_stack([np.full(rep.size, np.inf), np.full(rep.size, 10.0), 0.999 * min_loss[rep]])
    theta, f = _solve(theta0, resid, delta, w_r, rep, lower, upper)
    best, _ = solver.best_per_group(theta, f, rows.size)
    out[rows] = np.column_stack([ref + best[:, 0] / best[:, 1], best[:, 1], best[:, 2]])
    return out


def _solve(theta0, resid, delta, weights, groups, lower, upper):
    theta, f, _ = solver.batched_lm(theta0, resid, delta, weights=weights, groups=groups, lower=lower, upper=upper,
                                    stall_tol=1e-12)
    return theta, f


def weighted_line(u: np.ndarray, y: np.ndarray, w: np.ndarray):
    """Per-row weighted least-squares line y = icpt + slope * u: (slope, icpt) arrays."""
    sw = w.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):  # a row with no weight gives nan: no line there
        mu, my = (w * u).sum(1) / sw, (w * y).sum(1) / sw
    var = (w * (u - mu[:, None]) ** 2).sum(1)
    slope = np.where(var > 0, (w * (u - mu[:, None]) * (y - my[:, None])).sum(1) / np.maximum(var, 1e-300), 0.0)
    return slope, my - slope * mu


def power_law_value(x, log_xc, alpha, e):
    """E + (x_c / x)^alpha, broadcasting over parameter samples."""
    return e + np.exp(alpha * (log_xc - np.log(x)))


NO_LAW = {"log_xc": float("nan"), "alpha": float("nan"), "e": float("nan")}


def loss_law(x: np.ndarray, loss: np.ndarray, cfg) -> dict:
    """L(x) for approaches 1 and 2's loss predictions, or NaNs (printed n/a) where it cannot extrapolate.

    Without a floor a power law falls toward zero loss far beyond the data, so there is no law when
    E cannot be fitted (fewer than cfg.loss_law_min_points points) or comes out at its bound 0.
    """
    try:
        law = fit_power_law(x, loss, cfg.kaplan_irreducible, cfg.huber_delta, cfg.loss_law_min_points)
    except MethodSkipped:
        return dict(NO_LAW)
    if cfg.kaplan_irreducible and law["e"] <= 1e-6 * float(np.min(loss)):
        return dict(NO_LAW)
    return law


def loss_laws(xs: list, ys: list, cfg) -> np.ndarray:
    """`loss_law` for many point sets at once (bootstrap resamples): (k, 3) rows of (log x_c, alpha, E), NaN rows
    where no law could be fitted, by the same rules."""
    k = len(xs)
    width = max((len(x) for x in xs), default=0)
    x = np.ones((k, max(width, 1)))
    y = np.ones_like(x)
    mask = np.zeros_like(x, dtype=bool)
    for i, (xi, yi) in enumerate(zip(xs, ys)):
        x[i, :len(xi)], y[i, :len(yi)], mask[i, :len(xi)] = xi, yi, True
    if not cfg.kaplan_irreducible:
        out = np.full((k, 3), np.nan)
        for i in range(k):
            try:
                law = fit_power_law(x[i, mask[i]], y[i, mask[i]], False, cfg.huber_delta)
                out[i] = [law["log_xc"], law["alpha"], law["e"]]
            except (MethodSkipped, ValueError, np.linalg.LinAlgError):
                pass
        return out
    out = fit_power_law_batched(x, y, mask, cfg.huber_delta, cfg.loss_law_min_points)
    min_loss = np.where(mask, y, np.inf).min(axis=1)
    out[out[:, 2] <= 1e-6 * min_loss] = np.nan  # E at its bound 0: no floor, no extrapolation
    return out


FRONTIER_NAMES = ["n_log0", "a", "d_log0", "b", "loss_log_cc", "loss_alpha", "loss_e"]
"""Parameters of approaches 1 and 2: log N* = n_log0 + a log C, log D* = d_log0 + b log C, and L*(C)."""


def frontier_exponents(params: dict):
    """(a, b) of the regressions of log N* and log D* on log C."""
    return np.asarray(params["a"], float), np.asarray(params["b"], float)


def frontier_optimum(params: dict, flops, flops_per_nd: float):
    """(N*, D*, L*) at flops: N* from the regression, D* = C / (k N*), L* from the loss law (NaN without one).

    D* comes from C = k N* D*, as approach 3 and Kaplan do, so that every method's (N*, D*) spends the same C;
    the regressed exponent b is reported beside it (b + a = 1 only when k is constant)."""
    flops = np.asarray(flops, float)
    n_log0, a, lcc, la, le = (np.asarray(params[k], float) for k in ("n_log0", "a", "loss_log_cc", "loss_alpha", "loss_e"))
    n = np.exp(n_log0 + a * np.log(flops))
    return n, flops / (flops_per_nd * n), power_law_value(flops, lcc, la, le)


def no_law_lines(result: dict) -> list:
    """The report's reason when a frontier method's L*(C) could not be fitted."""
    if result["params"]["loss_e"] == result["params"]["loss_e"]:
        return []
    return ["L*(C) n/a: the loss law E + (C_c/C)^α needs 4 or more points and a fitted floor E > 0 to extrapolate; "
            "without a floor it falls toward zero loss. Approach 3 predicts losses here.", ""]
