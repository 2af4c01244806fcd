"""Kaplan et al. 2020 laws: L(N) on a data-rich slice, L(D), L(C) on the compute frontier, and the joint L(N, D)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares

from sweep.fit.approach1 import envelope
from sweep.fit.config import FitConfig, MethodSkipped
from sweep.fit.inputs import group_budgets
from sweep.fit.powerlaw import fit_power_law

NAMES = ["log_nc", "log_dc", "alpha_n", "alpha_d", "e"]


def joint_log_loss(p, log_n, log_d):
    """log L of L = E + [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D, p = (log N_c, log D_c, alpha_N, alpha_D, E)."""
    log_nc, log_dc, alpha_n, alpha_d, e = p
    inner = np.logaddexp(alpha_n / alpha_d * (log_nc - log_n), log_dc - log_d)
    with np.errstate(over="ignore"):  # a far-off trial point gives inf, a residual the optimiser steps away from
        return np.log(e + np.exp(alpha_d * inner))


def fit_joint(data, irreducible: bool, delta: float, start=None) -> dict:
    """Huber fit of the joint law on log-loss residuals, from a small grid of starts (or one warm start)."""
    n_free = 5 if irreducible else 4
    if data.loss.size <= n_free:
        raise MethodSkipped(f"joint L(N, D) has {n_free} parameters but only {data.loss.size} runs")
    if np.unique(data.d).size < 2:
        raise MethodSkipped("joint L(N, D) needs runs at several token counts")
    log_n, log_d, log_l = np.log(data.n), np.log(data.d), np.log(data.loss)
    e_max = 0.999 * data.loss.min() if irreducible else 1e-12
    lo, hi = [-np.inf, -np.inf, 1e-3, 1e-3, 0.0], [np.inf, np.inf, 5.0, 5.0, e_max]

    def resid(p):
        return joint_log_loss(p, log_n, log_d) - log_l

    starts = [start] if start is not None else []
    if start is None:
        for alpha_n in (0.1, 0.3, 0.6):
            for alpha_d in (0.1, 0.3, 0.6):
                for frac in ((0.0, 0.5) if irreducible else (0.0,)):
                    e0 = frac * data.loss.min()
                    # Put each term of the bracket at half the reducible loss at the data's centre.
                    target = np.log(np.median(data.loss) - e0) / alpha_d - np.log(2)
                    starts.append([np.median(log_n) + target * alpha_d / alpha_n, np.median(log_d) + target,
                                   alpha_n, alpha_d, e0])
    best = None
    for p0 in starts:
        p0 = np.clip(np.asarray(p0, float), lo, np.array(hi) - 1e-12)
        try:
            res = least_squares(resid, p0, loss="huber", f_scale=delta, bounds=(lo, hi), x_scale="jac", max_nfev=300)
        except ValueError:
            continue
        if best is None or res.cost < best.cost:
            best = res
    if best is None:
        raise MethodSkipped("joint L(N, D) fit failed from every start")
    return dict(zip(NAMES, map(float, best.x)))


def data_rich_slice(data, min_tokens_per_param: float):
    """Per model size its longest run, kept when that run saw at least min_tokens_per_param tokens per parameter."""
    idx = []
    for n in np.unique(data.n):
        m = np.flatnonzero(data.n == n)
        i = m[np.argmax(data.d[m])]
        if data.d[i] / data.n[i] >= min_tokens_per_param:
            idx.append(i)
    return np.array(idx, dtype=int)


def model_rich_slice(data, tolerance: float):
    """Per token count (within tolerance) the lowest loss over sizes, kept when at least 2 sizes saw it."""
    ids = group_budgets(data.d, tolerance)
    idx = []
    for g in np.unique(ids):
        m = np.flatnonzero(ids == g)
        if np.unique(data.n[m]).size >= 2:
            idx.append(m[np.argmin(data.loss[m])])
    return np.array(idx, dtype=int)


def fit_point(data, cfg: FitConfig, start=None) -> dict:
    """The joint law (which drives allocation) plus the single-variable laws (skipped with reasons when inapplicable)."""
    out = fit_joint(data, cfg.kaplan_irreducible, cfg.huber_delta, start)
    return out


def single_variable_laws(data, cfg: FitConfig) -> dict:
    """L(N), L(D), L(C) fits: {name: {status, params or reason, n_points}}."""
    slices = {
        "L(N)": (data_rich_slice(data, cfg.data_rich_tokens_per_param), data.n,
                 f"no data-rich slice: fewer than {3 + cfg.kaplan_irreducible} sizes whose longest run saw "
                 f">= {cfg.data_rich_tokens_per_param:g} tokens/param (data_rich_tokens_per_param)"),
        "L(D)": (model_rich_slice(data, cfg.budget_tolerance), data.d,
                 f"fewer than {3 + cfg.kaplan_irreducible} token counts seen by 2+ sizes"),
        "L(C)": (envelope(data.c, data.loss), data.c, "compute frontier too short"),
    }
    laws = {}
    for name, (idx, x, why) in slices.items():
        try:
            if idx.size < 3 + cfg.kaplan_irreducible:
                raise MethodSkipped(why)
            p = fit_power_law(x[idx], data.loss[idx], cfg.kaplan_irreducible, cfg.huber_delta)
            laws[name] = {"status": "ok", "x_c": float(np.exp(p["log_xc"])), "alpha": p["alpha"], "E": p["e"],
                          "n_points": int(idx.size)}
        except MethodSkipped as exc:
            laws[name] = {"status": "skipped", "reason": str(exc), "n_points": int(idx.size)}
    return laws
