"""One batched Levenberg-Marquardt solver for every nonlinear fit: many starts or resamples at once.

A bootstrap of 1000 resamples x a few warm starts is one numpy batch here instead of thousands of
scipy calls: each row of theta advances with its own damping and step acceptance, so every row only
ever moves downhill. Huber losses are handled by IRLS weights min(1, delta/|r|), which majorise the
Huber loss; delta = inf is plain least squares. Bounds, when given, are enforced by projecting each
trial step onto the box.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from sweep.fit.laws import huber, huber_grad

ResidualFn = Callable[..., tuple]
"""resid_fn(theta (s, k), jac: bool, rows (s,)) -> (residuals (s, P), Jacobian (s, P, k) or None).

rows are the indices of theta's rows in the whole batch, for problems whose data differ by row."""


def objective(resid_fn: ResidualFn, theta, delta: float, weights, rows) -> np.ndarray:
    """Summed (weighted) Huber loss of the residuals for each row of theta: (S,)."""
    r, _ = resid_fn(theta, False, rows)
    return (huber(r, delta) * weights).sum(axis=1)


def batched_lm(theta0, resid_fn: ResidualFn, delta: float = np.inf, weights=None, max_iter=500, stall_tol=1e-10,
               warmup=20, inferior=1.02, inferior_tol=1e-4, merge_tol=1e-4, groups=None,
               lower: Optional[np.ndarray] = None, upper: Optional[np.ndarray] = None):
    """Minimise the summed Huber objective from every row of theta0 (S, k) at once.

    weights: None, (P,) or (S, P) per-point multiplicities (bootstrap counts; 0 drops a point).
    groups: None or (S,) integer ids of independent problems (bootstrap resamples): objectives
    are only compared, and starts only merged, within a group.
    A start stops when its objective gained less than stall_tol (relative) over the last 10
    iterations; after `warmup` iterations, a start more than `inferior` times the best objective
    that gained less than inferior_tol over the last 10 iterations is stopped too: it sits in a
    worse basin (kept, with its objective, for the diagnostics). Active starts closer than
    merge_tol to one another are merged (one representative goes on for all of them).
    Returns (theta (S, k), objective (S,), iterations used).
    """
    theta = np.array(theta0, dtype=float)
    n_starts, k = theta.shape
    r0, _ = resid_fn(theta[:1], False, np.arange(1))
    n_points = r0.shape[1]
    w = np.ones((n_starts, n_points)) if weights is None else np.broadcast_to(weights, (n_starts, n_points))
    lo = None if lower is None else np.broadcast_to(np.asarray(lower, float), (n_starts, k))
    hi = None if upper is None else np.broadcast_to(np.asarray(upper, float), (n_starts, k))
    if lo is not None or hi is not None:
        theta = np.clip(theta, lo, hi)
    lam = np.full(n_starts, 1e-3)
    with np.errstate(over="ignore", invalid="ignore"):
        f = objective(resid_fn, theta, delta, w, np.arange(n_starts))
    history = [f.copy()]
    active = np.ones(n_starts, dtype=bool)
    merged_into = np.full(n_starts, -1)
    groups = np.zeros(n_starts, dtype=int) if groups is None else np.asarray(groups)
    n_groups = int(groups.max()) + 1
    eye = np.eye(k)
    it = 0
    for it in range(1, max_iter + 1):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        th, wi = theta[idx], w[idx]
        with np.errstate(over="ignore", invalid="ignore"):
            r, jac = resid_fn(th, True, idx)
            grad = np.einsum("sp,spk->sk", wi * huber_grad(r, delta), jac)
            irls = wi * np.minimum(1.0, delta / np.maximum(np.abs(r), 1e-300))
            jw = jac * np.sqrt(irls)[..., None]
            hess = np.matmul(jw.transpose(0, 2, 1), jw)
        diag = np.einsum("skk->sk", hess)
        lhs = hess + lam[idx, None, None] * (eye * diag[:, None, :]) + 1e-12 * eye
        bad = ~np.all(np.isfinite(lhs), axis=(1, 2)) | ~np.all(np.isfinite(grad), axis=1)
        lhs[bad], grad[bad] = eye, 0.0
        step = np.linalg.solve(lhs, -grad[..., None])[..., 0]
        cand = th + step
        if lo is not None or hi is not None:
            cand = np.clip(cand, None if lo is None else lo[idx], None if hi is None else hi[idx])
        with np.errstate(over="ignore", invalid="ignore"):
            f_new = objective(resid_fn, cand, delta, wi, idx)
        better = np.isfinite(f_new) & (f_new < f[idx])
        theta[idx[better]] = cand[better]
        f[idx[better]] = f_new[better]
        lam[idx] = np.where(better, np.maximum(lam[idx] / 3, 1e-9), lam[idx] * 4)
        history.append(f.copy())
        if it >= 10:
            with np.errstate(invalid="ignore"):
                gain = (history[-11][idx] - f[idx]) / np.maximum(np.abs(f[idx]), 1e-300)
            done = (gain < stall_tol) | (lam[idx] > 1e12) | bad
            if it >= warmup:
                group_best = np.full(n_groups, np.inf)
                np.minimum.at(group_best, groups, np.where(np.isnan(f), np.inf, f))
                done |= (f[idx] > inferior * group_best[groups[idx]]) & (gain < inferior_tol)
            active[idx[done]] = False
            history = history[-11:]
        if it >= warmup and it % 10 == 0:
            _merge_duplicates(theta, groups, active, merged_into, merge_tol)
    # Merged starts end wherever their representative ended.
    for i in np.flatnonzero(merged_into >= 0):
        j = merged_into[i]
        while merged_into[j] >= 0:
            j = merged_into[j]
        theta[i], f[i] = theta[j], f[j]
    return theta, f, it


def _merge_duplicates(theta, groups, active, merged_into, tol):
    """Stop active starts that sit in the same tol-cell as another active start (they would follow
    the same path); each remembers its representative in merged_into (-1: not merged)."""
    idx = np.flatnonzero(active)
    if idx.size < 2:
        return
    cells = np.column_stack([groups[idx], np.round(theta[idx] / tol)])
    _, first, inverse = np.unique(cells, axis=0, return_index=True, return_inverse=True)
    rep = idx[first[inverse.ravel()]]
    dup = rep != idx
    merged_into[idx[dup]] = rep[dup]
    active[idx[dup]] = False


def best_per_group(theta: np.ndarray, f: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows laid out as n_groups consecutive blocks of equal size: each block's lowest-objective row and objective."""
    k = theta.shape[1]
    f = np.where(np.isfinite(f), f, np.inf).reshape(n_groups, -1)
    best = np.argmin(f, axis=1)
    return theta.reshape(n_groups, -1, k)[np.arange(n_groups), best], f[np.arange(n_groups), best]
