"""Chinchilla approach 1: the lower envelope of loss vs compute; N and D on the envelope regressed on C."""

from __future__ import annotations

import numpy as np

from sweep.fit.config import FitConfig, MethodSkipped
from sweep.fit.powerlaw import fit_power_law

NAMES = ["n_log0", "a", "d_log0", "b", "loss_log_cc", "loss_alpha", "loss_e"]


def envelope(c: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Indices of the runs on the compute frontier: each beats every run with less compute."""
    order = np.argsort(c, kind="stable")
    keep, best = [], np.inf
    for i in order:
        if loss[i] < best:
            keep.append(i)
            best = loss[i]
    return np.array(keep, dtype=int)


def fit_point(data, cfg: FitConfig) -> dict:
    """Regress log N and log D of the frontier runs on log C; fit the frontier loss L(C)."""
    idx = envelope(data.c, data.loss)
    if np.unique(data.c[idx]).size < 3:
        raise MethodSkipped(f"the compute frontier has {len(idx)} run(s); approach 1 needs 3 at distinct compute")
    lc = np.log(data.c[idx])
    a, n_log0 = np.polyfit(lc, np.log(data.n[idx]), 1)
    b, d_log0 = np.polyfit(lc, np.log(data.d[idx]), 1)
    try:
        law = fit_power_law(data.c[idx], data.loss[idx], cfg.kaplan_irreducible and idx.size >= 4, cfg.huber_delta)
    except MethodSkipped:
        law = {"log_xc": float("nan"), "alpha": float("nan"), "e": float("nan")}
    return {"n_log0": n_log0, "a": a, "d_log0": d_log0, "b": b, "loss_log_cc": law["log_xc"],
            "loss_alpha": law["alpha"], "loss_e": law["e"], "frontier": idx}
