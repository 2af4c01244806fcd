"""Robust fits of single-variable power laws L(x) = E + (x_c / x)^alpha, shared by Kaplan and approaches 1-2."""

from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares

from sweep.fit.config import MethodSkipped


def fit_power_law(x: np.ndarray, loss: np.ndarray, irreducible: bool, delta: float) -> dict:
    """Huber fit on log-loss residuals; returns {log_xc, alpha, e}. Needs 3 points (4 with E)."""
    x, loss = np.asarray(x, float), np.asarray(loss, float)
    need = 4 if irreducible else 3
    if np.unique(x).size < need:
        raise MethodSkipped(f"power law needs {need} distinct x values, got {np.unique(x).size}")
    lx, ll = np.log(x), np.log(loss)
    if not irreducible:
        slope, icpt = np.polyfit(lx, ll, 1)
        alpha = -slope
        return {"log_xc": float(icpt / alpha) if alpha != 0 else float("nan"), "alpha": float(alpha), "e": 0.0}

    # Fitted as E + exp(log_a - alpha * (log x - ref)) with ref the middle of the data: in the
    # (log x_c, alpha) form a small change of alpha moves the curve by x^alpha across the whole range,
    # so the optimiser stalls in a narrow valley far from the optimum. log x_c = ref + log_a / alpha.
    ref = float(np.mean(lx))
    u = lx - ref

    def resid(p):
        log_a, alpha, e = p
        with np.errstate(over="ignore"):
            return np.log(e + np.exp(log_a - alpha * u)) - ll

    best = None
    for frac in (0.0, 0.5, 0.9, 0.99):
        e0 = frac * loss.min()
        if np.unique(lx).size < 2:
            break
        slope, icpt = np.polyfit(u, np.log(loss - e0), 1)
        p0 = [icpt, max(-slope, 1e-3), e0]
        # Tight tolerances: with Huber's small f_scale the cost is tiny, and scipy's default relative
        # ftol/xtol (1e-8) stop it far from the optimum. The cap on evaluations keeps a bootstrap of
        # near-flat fits (E against the amplitude) cheap.
        res = least_squares(resid, np.clip(p0, [-np.inf, 1e-4, 0.0], [np.inf, 10.0, 0.998 * loss.min()]),
                            loss="huber", f_scale=delta, max_nfev=400, ftol=1e-12, xtol=1e-12, gtol=1e-12,
                            bounds=([-np.inf, 1e-4, 0.0], [np.inf, 10.0, 0.999 * loss.min()]))
        if best is None or res.cost < best.cost:
            best = res
    log_a, alpha, e = best.x
    return {"log_xc": float(ref + log_a / alpha), "alpha": float(alpha), "e": float(e)}


def power_law_value(x, log_xc, alpha, e):
    """E + (x_c / x)^alpha, broadcasting over parameter samples."""
    return e + np.exp(alpha * (log_xc - np.log(x)))


NO_LAW = {"log_xc": float("nan"), "alpha": float("nan"), "e": float("nan")}


def loss_law(x: np.ndarray, loss: np.ndarray, cfg) -> dict:
    """L(x) for approaches 1 and 2's loss predictions, or NaNs (printed n/a) where it cannot extrapolate.

    Without a floor a power law falls toward zero loss far beyond the data, so there is no law when
    E cannot be fitted (fewer than 4 points) or comes out at its bound 0.
    """
    try:
        law = fit_power_law(x, loss, cfg.kaplan_irreducible, cfg.huber_delta)
    except MethodSkipped:
        return dict(NO_LAW)
    if cfg.kaplan_irreducible and law["e"] <= 1e-6 * float(np.min(loss)):
        return dict(NO_LAW)
    return law
