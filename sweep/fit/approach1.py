"""Chinchilla approach 1: the lowest loss reached at each compute; N and D there regressed on C.

With training curves (a results folder), this is Hoffmann et al. 2022's procedure: each run's loss
curve becomes a continuous map from FLOPs to loss, and at every FLOP value of a log-spaced grid the
run with the lowest loss marks (C, N, D) on the envelope. Without curves (tables, W&B summaries) only
each run's final loss is known, and the envelope shrinks to the compute frontier of final points,
which needs runs at many budgets (an IsoFLOP sweep of 3 budgets gives 3 points at most).
"""

from __future__ import annotations

import numpy as np

from sweep.fit.config import FitConfig, MethodSkipped
from sweep.fit.powerlaw import NO_LAW, loss_law

NAMES = ["n_log0", "a", "d_log0", "b", "loss_log_cc", "loss_alpha", "loss_e"]
GRID_SIZE = 1500
"""FLOP values of the envelope grid (Hoffmann et al. used 1500); each run's final compute is added to it."""
LAW_POINTS = 100
"""Envelope points the loss law L(C) is fitted to (evenly spaced along the grid)."""


def envelope(c: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Indices of the runs on the compute frontier: each beats every run with less compute."""
    order = np.argsort(c, kind="stable")
    keep, best = [], np.inf
    for i in order:
        if loss[i] < best:
            keep.append(i)
            best = loss[i]
    return np.array(keep, dtype=int)


def curve_envelope(c: np.ndarray, d: np.ndarray, curves: list, grid_size: int = GRID_SIZE) -> dict:
    """The lower envelope of the runs' loss curves on a log-spaced FLOP grid.

    Run i's curve (tokens, loss) maps to compute through its own C / D, so the FLOP convention of c holds
    along the curve too. The grid spans from the smallest compute at which any curve has a point to the
    largest final compute. At each grid value, only runs whose curve covers it compete (log-log linear
    interpolation between a run's own points, never extrapolation); values no run covers are dropped.
    Returns arrays c, loss, d and run (the winning run's index) along the grid.

    Val-loss evaluations are few and averaged over many tokens, so unlike Hoffmann et al. (training-loss
    curves) there is no smoothing.

    Known bias (Hoffmann et al. mitigate it with several cosine lengths per size): an intermediate point
    is mid-schedule, its learning rate not yet decayed, so it sits above the loss a run trained for just
    that many tokens would reach. Between the ends of runs the envelope overstates the loss and favours
    runs whose schedule ends near that compute; approaches 2 and 3 use end-of-schedule points only.
    """
    per_token = c / d
    xs = [np.log(cv.tokens * k) for cv, k in zip(curves, per_token)]
    ys = [np.log(cv.loss) for cv in curves]
    lo, hi = min(x[0] for x in xs), np.log(c).max()
    grid = np.unique(np.concatenate([np.linspace(lo, hi, grid_size), np.log(c)]))
    log_loss = np.vstack([np.interp(grid, x, y, left=np.inf, right=np.inf) for x, y in zip(xs, ys)])
    covered = np.isfinite(log_loss).any(axis=0)
    run = np.argmin(log_loss[:, covered], axis=0)
    grid = grid[covered]
    cs = np.exp(grid)
    return {"c": cs, "loss": np.exp(log_loss[run, np.flatnonzero(covered)]), "d": cs / per_token[run], "run": run}


def fit_point(data, cfg: FitConfig) -> dict:
    """Regress log N and log D on log C along the envelope; fit the envelope's loss L(C).

    The envelope comes from the training curves when data has them and cfg.approach1_curves is set,
    else from the runs' final points ("source" says which).
    """
    if cfg.approach1_curves and data.curves is not None:
        env = curve_envelope(data.c, data.d, data.curves)
        run, c_env, d_env, loss_env, source = env["run"], env["c"], env["d"], env["loss"], "curves"
        if np.unique(data.n[run]).size < 2:
            raise MethodSkipped(f"one model size (N = {data.n[run[0]]:.4g}) has the lowest loss at every compute "
                                "along the training curves: add smaller and larger models to bracket the optimum")
    else:
        run = envelope(data.c, data.loss)
        if np.unique(data.c[run]).size < 3:
            raise MethodSkipped(f"the compute frontier of final losses has {len(run)} run(s); approach 1 needs 3 at "
                                "distinct compute (or training curves: fit a results folder with metrics.jsonl)")
        c_env, d_env, loss_env, source = data.c[run], data.d[run], data.loss[run], "final"
    n_env = data.n[run]
    lc = np.log(c_env)
    a, n_log0 = np.polyfit(lc, np.log(n_env), 1)
    b, d_log0 = np.polyfit(lc, np.log(d_env), 1)
    # L(C) only where some run has finished its schedule: below the smallest final compute the
    # envelope is all early-training points, whose steep fall would set the law's exponent and
    # send its extrapolation toward zero loss. Neighbouring grid values carry nearly the same
    # information, so it is fitted on an evenly thinned subset (equal weight per log C, and the
    # bootstrap's refits ~10x cheaper).
    late = np.flatnonzero(c_env >= data.c.min() * (1 - 1e-9))
    thin = late[np.unique(np.linspace(0, late.size - 1, min(late.size, LAW_POINTS)).round().astype(int))]
    law = loss_law(c_env[thin], loss_env[thin], cfg) if late.size else dict(NO_LAW)
    _, first = np.unique(run, return_index=True)
    return {"n_log0": n_log0, "a": a, "d_log0": d_log0, "b": b, "loss_log_cc": law["log_xc"],
            "loss_alpha": law["alpha"], "loss_e": law["e"], "frontier": run[np.sort(first)], "source": source,
            "envelope": {"c": c_env, "n": n_env, "d": d_env, "loss": loss_env, "run": run}}
