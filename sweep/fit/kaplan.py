"""Kaplan et al. 2020's joint law L(N, D) + E (its single-variable laws L(N), L(D), L(C) are in sweep/fit/slices.py)."""

from __future__ import annotations

import numpy as np

from sweep.fit import solver
from sweep.fit.bootstrap import resample_indices
from sweep.fit.config import FitConfig, MethodSkipped
from sweep.fit.laws import kaplan_joint_loss, kaplan_optimum
from sweep.fit.method import Method, MethodFit
from sweep.fit.noise import from_residuals

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
    if np.unique(data.d).size < 2 or np.unique(data.n).size < 2:
        raise MethodSkipped("joint L(N, D) needs runs at several sizes and several token counts")
    log_n, log_d, log_l = np.log(data.n), np.log(data.d), np.log(data.loss)
    e_max = 0.999 * data.loss.min() if irreducible else 1e-12
    lo, hi = [-np.inf, -np.inf, 1e-3, 1e-3, 0.0], [np.inf, np.inf, 5.0, 5.0, e_max]

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
    theta0 = np.clip(np.asarray(starts, float), lo, np.array(hi) - 1e-12)
    # All starts in one batch of the shared solver (one group: the same problem from every start).
    theta, f, _ = solver.batched_lm(theta0, lambda th, jac, rows: _joint_residuals(th, log_n, log_d, log_l, jac), delta,
                                    lower=lo, upper=hi, stall_tol=1e-10)
    if not np.isfinite(f).any():
        raise MethodSkipped("joint L(N, D) fit failed from every start")
    return dict(zip(NAMES, map(float, theta[np.argmin(np.where(np.isfinite(f), f, np.inf))])))


def _joint_residuals(theta, log_n, log_d, log_l, jac):
    """Residuals of log L (S, P) and their Jacobian (S, P, 5) for rows theta (S, 5) of the joint law's parameters."""
    log_nc, log_dc, alpha_n, alpha_d, e = (theta[:, i, None] for i in range(5))
    z1 = alpha_n / alpha_d * (log_nc - log_n)
    z2 = log_dc - log_d
    inner = np.logaddexp(z1, z2)
    t = np.exp(np.minimum(alpha_d * inner, 700.0))
    total = e + t
    r = np.log(np.maximum(total, 1e-300)) - log_l
    if not jac:
        return r, None
    s1, s2 = np.exp(z1 - inner), np.exp(z2 - inner)
    g = t / total
    j = np.stack([g * alpha_n * s1, g * alpha_d * s2, g * s1 * (log_nc - log_n), g * (inner - s1 * z1),
                  np.broadcast_to(1.0 / total, r.shape)], axis=-1)
    return r, j


BOOT_ITER = 150
"""LM iterations per resample: warm-started at the point fit, nearly all converge in far fewer; the few that
wander along the law's flat directions (E against N_c, D_c) would otherwise set the cost of the whole batch."""


def bootstrap(data, cfg: FitConfig, point: dict, n_boot: int, seed: int) -> np.ndarray | None:
    """(n_boot, 5) joint-law parameters refitted on resamples of the runs, all warm-started from the point
    fit and solved as one batch; resamples whose fit failed are NaN rows."""
    if n_boot <= 0:
        return None
    log_n, log_d, log_l = np.log(data.n), np.log(data.d), np.log(data.loss)
    counts = np.stack([np.bincount(i, minlength=log_n.size) for i in resample_indices(log_n.size, n_boot, seed)])
    e_max = 0.999 * data.loss.min() if cfg.kaplan_irreducible else 1e-12
    lower, upper = [-np.inf, -np.inf, 1e-3, 1e-3, 0.0], [np.inf, np.inf, 5.0, 5.0, e_max]
    theta0 = np.tile([point[k] for k in NAMES], (n_boot, 1))
    theta, f, _ = solver.batched_lm(theta0, lambda th, jac, rows: _joint_residuals(th, log_n, log_d, log_l, jac),
                                    cfg.huber_delta, weights=counts.astype(float), groups=np.arange(n_boot),
                                    lower=lower, upper=upper, stall_tol=1e-8, max_iter=BOOT_ITER)
    theta[~np.isfinite(f)] = np.nan
    # A resample that lost every run at some token count cannot pin the law; its fit says nothing.
    theta[np.array([np.unique(log_d[c > 0]).size < 2 for c in counts])] = np.nan
    return theta


def run(data, cfg: FitConfig) -> MethodFit:
    """Kaplan's fit: the joint law with its bootstrap (extra "natural": its parameters in Kaplan's terms)."""
    point = fit_joint(data, cfg.kaplan_irreducible, cfg.huber_delta)
    samples = bootstrap(data, cfg, point, cfg.n_bootstrap, cfg.seed)
    residuals = np.log(data.loss) - np.log(loss_at(point, data.n, data.d))
    return MethodFit.summarized(
        point, samples, NAMES, cfg.interval, bootstrap="runs resampled with replacement", residuals=residuals,
        noise=from_residuals(residuals, 4 + cfg.kaplan_irreducible, "kaplan"),
        extra={"natural": {"N_c": float(np.exp(point["log_nc"])), "D_c": float(np.exp(point["log_dc"])),
                           "alpha_N": point["alpha_n"], "alpha_D": point["alpha_d"], "E": point["e"]}})


def exponents(params: dict):
    """a = alpha_D / (alpha_N + alpha_D), b = alpha_N / (alpha_N + alpha_D)."""
    alpha_n, alpha_d = np.asarray(params["alpha_n"], float), np.asarray(params["alpha_d"], float)
    return alpha_d / (alpha_n + alpha_d), alpha_n / (alpha_n + alpha_d)


def _natural(params: dict):
    log_nc, log_dc, alpha_n, alpha_d, e = (np.asarray(params[k], float) for k in NAMES)
    return np.exp(log_nc), np.exp(log_dc), alpha_n, alpha_d, e


def optimum(params: dict, flops, flops_per_nd: float):
    return kaplan_optimum(np.asarray(flops, float), *_natural(params), flops_per_nd)


def loss_at(params: dict, n, d):
    return kaplan_joint_loss(n, d, *_natural(params))


def report(r: dict, fit: dict) -> list:
    lines = []
    if fit["config"].get("kaplan_irreducible", True):
        lines += ["Fitted with an irreducible term E (Kaplan et al. 2020 have none): `fit.kaplan_irreducible=false` "
                  "fits their form.", ""]
    lines.append("Kaplan's single-variable laws L(N), L(D), L(C) have their own section below.")
    return lines + [""]


METHOD = Method(name="kaplan", title="Kaplan et al. 2020 (joint L(N, D) + E)", color="tab:red", fit=run,
                exponents=exponents, optimum=optimum, loss_at=loss_at, report=report, noise_priority=2)
