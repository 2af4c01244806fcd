"""Compute-optimal allocation and loss predictions from any method's parameters (point or bootstrap samples)."""

from __future__ import annotations

import numpy as np

from sweep.fit.bootstrap import percentile_interval
from sweep.fit.laws import chinchilla_loss, chinchilla_optimum, kaplan_joint_loss, kaplan_optimum
from sweep.fit.powerlaw import power_law_value


def _p(params: dict, names) -> list:
    return [np.asarray(params[k], float) for k in names]


def exponents(method: str, params: dict):
    """(a, b) with N* ∝ C^a and D* ∝ C^b."""
    if method == "approach3":
        alpha, beta = _p(params, ["alpha", "beta"])
        return beta / (alpha + beta), alpha / (alpha + beta)
    if method == "kaplan":
        alpha_n, alpha_d = _p(params, ["alpha_n", "alpha_d"])
        return alpha_d / (alpha_n + alpha_d), alpha_n / (alpha_n + alpha_d)
    return np.asarray(params["a"], float), np.asarray(params["b"], float)


def optimum(method: str, params: dict, flops, flops_per_nd: float):
    """(N*, D*, L*) at compute `flops`; arrays broadcast over parameter samples."""
    flops = np.asarray(flops, float)
    if method == "approach3":
        e, a, b, alpha, beta = _p(params, ["E", "A", "B", "alpha", "beta"])
        return chinchilla_optimum(flops, e, a, b, alpha, beta, flops_per_nd)
    if method == "kaplan":
        log_nc, log_dc, alpha_n, alpha_d, e = _p(params, ["log_nc", "log_dc", "alpha_n", "alpha_d", "e"])
        return kaplan_optimum(flops, np.exp(log_nc), np.exp(log_dc), alpha_n, alpha_d, e, flops_per_nd)
    n_log0, a, d_log0, b, lcc, la, le = _p(params, ["n_log0", "a", "d_log0", "b", "loss_log_cc", "loss_alpha", "loss_e"])
    lc = np.log(flops)
    return np.exp(n_log0 + a * lc), np.exp(d_log0 + b * lc), power_law_value(flops, lcc, la, le)


def loss_at(method: str, params: dict, n, d):
    """Predicted loss at (N, D) for the methods with a full L(N, D); None for approaches 1 and 2."""
    if method == "approach3":
        e, a, b, alpha, beta = _p(params, ["E", "A", "B", "alpha", "beta"])
        return chinchilla_loss(n, d, e, a, b, alpha, beta)
    if method == "kaplan":
        log_nc, log_dc, alpha_n, alpha_d, e = _p(params, ["log_nc", "log_dc", "alpha_n", "alpha_d", "e"])
        return kaplan_joint_loss(n, d, np.exp(log_nc), np.exp(log_dc), alpha_n, alpha_d, e)
    return None


def sample_params(result: dict) -> dict | None:
    """Bootstrap samples of a method's parameters as {name: (k,) array}, or None."""
    s = result.get("samples")
    if not s:
        return None
    vals = np.asarray(s["values"], float)
    return {k: vals[:, j] for j, k in enumerate(s["names"])}


def _with_interval(point, samples, level):
    out = {"value": float(point)}
    if samples is not None:
        ok = np.isfinite(samples)
        if ok.sum() >= 2:
            out["interval"] = percentile_interval(samples[ok], level)
    return out


def allocation_row(method: str, result: dict, flops: float, flops_per_nd: float, level: float) -> dict:
    """N*, D*, tokens/param and L* at one budget, each with its percentile interval."""
    n, d, loss = optimum(method, result["params"], flops, flops_per_nd)
    samples = sample_params(result)
    if samples is not None:
        with np.errstate(all="ignore"):
            ns, ds, ls = optimum(method, samples, flops, flops_per_nd)
        ts = ds / ns
    else:
        ns = ds = ls = ts = None
    return {"flops": float(flops), "n_star": _with_interval(n, ns, level), "d_star": _with_interval(d, ds, level),
            "tokens_per_param": _with_interval(d / n, ts, level), "loss": _with_interval(loss, ls, level)}


def predict_at(method: str, result: dict, n: float, d: float, level: float) -> dict | None:
    """Predicted loss at (N, D) with its interval, or None when the method has no L(N, D)."""
    point = loss_at(method, result["params"], n, d)
    if point is None:
        return None
    samples = sample_params(result)
    with np.errstate(all="ignore"):
        ls = loss_at(method, samples, n, d) if samples is not None else None
    return _with_interval(point, ls, level)
