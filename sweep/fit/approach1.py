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
from sweep.fit.bootstrap import resample_indices
from sweep.fit.method import Method, MethodFit
from sweep.fit.powerlaw import (FRONTIER_NAMES, NO_LAW, frontier_exponents, frontier_optimum, loss_law, loss_laws,
                                no_law_lines)

NAMES = FRONTIER_NAMES
GRID_SIZE = 1500
"""FLOP values of the envelope grid (Hoffmann et al. used 1500); each run's final compute is added to it."""
LAW_POINTS = 100
"""Envelope points the loss law L(C) is fitted to (evenly spaced along the grid)."""


def envelope(c: np.ndarray, loss: np.ndarray, budget: np.ndarray | None = None) -> np.ndarray:
    """Indices of the runs on the frontier of final losses: each budget's best run, kept when it beats every
    cheaper budget's best.

    Runs of one budget have equal compute, so ordering them by C would order them by floating-point
    noise and let several of one budget in, mostly not its best; taking each budget's minimum first
    avoids that. Without budget ids every run is its own budget.
    """
    budget = np.arange(c.size) if budget is None else np.asarray(budget)
    best_of = {}
    for i in np.argsort(loss, kind="stable"):
        best_of.setdefault(int(budget[i]), int(i))
    cand = np.array(sorted(best_of.values(), key=lambda i: (c[i], loss[i])), dtype=int)
    keep, best = [], np.inf
    for i in cand:
        if loss[i] < best:
            keep.append(i)
            best = loss[i]
    return np.array(keep, dtype=int)


class CurveGrid:
    """Every run's log-loss curve interpolated on one log-spaced FLOP grid, computed once per fit.

    Run i's curve (tokens, loss) maps to compute through its own C / D, so the FLOP convention of c holds
    along the curve too. The grid spans from the smallest compute at which any curve has a point to the
    largest final compute. A run competes only where its curve covers the grid value (log-log linear
    interpolation between its own points, never extrapolation; inf elsewhere). The bootstrap reuses the
    matrix: a resample's envelope is the minimum over its rows.
    """

    def __init__(self, c: np.ndarray, d: np.ndarray, curves: list, grid_size: int = GRID_SIZE):
        self.per_token = c / d
        xs = [np.log(cv.tokens * k) for cv, k in zip(curves, self.per_token)]
        ys = [np.log(cv.loss) for cv in curves]
        lo, hi = min(x[0] for x in xs), np.log(c).max()
        self.grid = np.unique(np.concatenate([np.linspace(lo, hi, grid_size), np.log(c)]))
        self.log_loss = np.vstack([np.interp(self.grid, x, y, left=np.inf, right=np.inf) for x, y in zip(xs, ys)])

    def envelope(self, rows: np.ndarray | None = None) -> dict:
        """Arrays c, loss, d and run (the winning run's index into all runs) along the covered grid."""
        rows = np.arange(self.log_loss.shape[0]) if rows is None else np.unique(rows)
        sub = self.log_loss[rows]
        covered = np.isfinite(sub).any(axis=0)
        win = np.argmin(sub[:, covered], axis=0)
        run = rows[win]
        cs = np.exp(self.grid[covered])
        return {"c": cs, "loss": np.exp(sub[win, np.flatnonzero(covered)]), "d": cs / self.per_token[run], "run": run}


def curve_envelope(c: np.ndarray, d: np.ndarray, curves: list, grid_size: int = GRID_SIZE) -> dict:
    """The lower envelope of the runs' loss curves on a log-spaced FLOP grid (see CurveGrid).

    Returns arrays c, loss, d and run (the winning run's index) along the grid.

    Val-loss evaluations are few and averaged over many tokens, so unlike Hoffmann et al. (training-loss
    curves) there is no smoothing.

    Known bias (Hoffmann et al. mitigate it with several cosine lengths per size): an intermediate point
    is mid-schedule, its learning rate not yet decayed, so it sits above the loss a run trained for just
    that many tokens would reach. Between the ends of runs the envelope overstates the loss and favours
    runs whose schedule ends near that compute; approaches 2 and 3 use end-of-schedule points only.
    """
    return CurveGrid(c, d, curves, grid_size).envelope()


def frontier(data, cfg: FitConfig, grid: CurveGrid | None = None, rows: np.ndarray | None = None) -> dict:
    """Stage 1 of the fit: the envelope, the regressions of log N and log D on log C, and the (C, loss) points
    for L(C). rows: the runs of a bootstrap resample (None: all); grid: the curves' CurveGrid, if used.
    """
    rows = np.arange(data.loss.size) if rows is None else np.asarray(rows)
    if grid is not None:
        env = grid.envelope(rows)
        run, c_env, d_env, loss_env, source = env["run"], env["c"], env["d"], env["loss"], "curves"
        # Below the smallest final compute every point is early training, where the smallest model
        # wins by default whatever the law: N and D are regressed where some run has finished.
        late = np.flatnonzero(c_env >= data.c[rows].min() * (1 - 1e-9))
        if np.unique(data.n[run[late]]).size < 2:
            raise MethodSkipped(f"one model size (N = {data.n[run[late[0]] if late.size else run[0]]:.4g}) has the "
                                "lowest loss at every compute along the training curves where runs have finished: add "
                                "smaller and larger models to bracket the optimum")
    else:
        run = rows[envelope(data.c[rows], data.loss[rows], data.budget[rows])]
        sizes_per_budget = [np.unique(data.n[rows][data.budget[rows] == b]).size for b in np.unique(data.budget[rows])]
        if max(sizes_per_budget) < 2:
            raise MethodSkipped("every compute budget has one model size: each budget's best run is its only run, "
                                "so the frontier says nothing about the optimum (fit a results folder for its "
                                "training curves, or train several sizes per budget)")
        if np.unique(data.n[run]).size < 2:
            raise MethodSkipped(f"one model size (N = {data.n[run[0]]:.4g}) has the lowest loss at every budget: add "
                                "smaller and larger models to bracket the optimum")
        if np.unique(data.c[run]).size < 3:
            raise MethodSkipped(f"the frontier of final losses (each budget's best run) has {len(run)} point(s); "
                                "approach 1 needs 3 budgets (or training curves: fit a results folder with "
                                "metrics.jsonl)")
        c_env, d_env, loss_env, source = data.c[run], data.d[run], data.loss[run], "final"
        late = np.arange(run.size)
    n_env = data.n[run]
    lc = np.log(c_env[late])
    a, n_log0 = np.polyfit(lc, np.log(n_env[late]), 1)
    b, d_log0 = np.polyfit(lc, np.log(d_env[late]), 1)
    # L(C) likewise only where some run has finished its schedule: the early envelope's steep fall
    # would set the law's exponent and send its extrapolation toward zero loss. Neighbouring grid
    # values carry nearly the same information, so it is fitted on an evenly thinned subset (equal
    # weight per log C, and the bootstrap's refits cheaper).
    thin = late[np.unique(np.linspace(0, late.size - 1, min(late.size, LAW_POINTS)).round().astype(int))]
    _, first = np.unique(run, return_index=True)
    return {"n_log0": n_log0, "a": a, "d_log0": d_log0, "b": b, "law_x": c_env[thin], "law_loss": loss_env[thin],
            "frontier": run[np.sort(first)], "source": source,
            "envelope": {"c": c_env, "n": n_env, "d": d_env, "loss": loss_env, "run": run}}


def _grid(data, cfg: FitConfig) -> CurveGrid | None:
    return CurveGrid(data.c, data.d, data.curves) if cfg.approach1_curves and data.curves is not None else None


def fit_point(data, cfg: FitConfig) -> dict:
    """Regress log N and log D on log C along the envelope; fit the envelope's loss L(C).

    The envelope comes from the training curves when data has them and cfg.approach1_curves is set,
    else from each budget's best final loss ("source" says which).
    """
    out = frontier(data, cfg, _grid(data, cfg))
    x, y = out.pop("law_x"), out.pop("law_loss")
    law = loss_law(x, y, cfg) if x.size else dict(NO_LAW)
    out.update(loss_log_cc=law["log_xc"], loss_alpha=law["alpha"], loss_e=law["e"])
    return out


def bootstrap(data, cfg: FitConfig, n_boot: int, seed: int) -> np.ndarray | None:
    """(k, len(NAMES)) parameters refitted on resamples of the runs; the L(C) laws of all resamples in one batch."""
    if n_boot <= 0:
        return None
    grid = _grid(data, cfg)
    stage, xs, ys = [], [], []
    for idx in resample_indices(data.loss.size, n_boot, seed):
        try:
            f = frontier(data, cfg, grid, np.sort(idx))
        except (MethodSkipped, ValueError, np.linalg.LinAlgError):
            stage.append([np.nan] * 4)  # counted as a resample that gave nothing, not dropped
            xs.append(np.empty(0))
            ys.append(np.empty(0))
            continue
        stage.append([f["n_log0"], f["a"], f["d_log0"], f["b"]])
        xs.append(f["law_x"])
        ys.append(f["law_loss"])
    return np.column_stack([np.array(stage, float), loss_laws(xs, ys, cfg)])


def run(data, cfg: FitConfig) -> MethodFit:
    """Approach 1's fit: the point fit, the bootstrap over runs and the envelope (extra "frontier", "envelope")."""
    point = fit_point(data, cfg)
    env = point["envelope"]
    frontier_runs = [int(i) for i in point["frontier"]]
    notes = []
    if cfg.approach1_curves and point["source"] == "final":
        notes = ["approach 1: no training curves in the input (a table carries final losses only; a results "
                 "folder needs each run's metrics.jsonl, a W&B run its logged tokens and val_loss), so its "
                 "envelope is each budget's best final loss, which needs runs at many compute budgets"]
    return MethodFit.summarized(
        point, bootstrap(data, cfg, cfg.n_bootstrap, cfg.seed), NAMES, cfg.interval,
        bootstrap="runs resampled with replacement", notes=notes,
        diagnostics={"source": point["source"], "envelope_points": int(env["run"].size),
                     "runs_on_envelope": len(frontier_runs), "sizes_on_envelope": int(np.unique(env["n"]).size)},
        extra={"frontier": frontier_runs, "envelope": {k: np.asarray(v).tolist() for k, v in env.items()}})


def report(r: dict, fit: dict) -> list:
    diag = r["diagnostics"]
    if diag["source"] == "curves":
        line = (f"Envelope of the runs' val-loss curves (Hoffmann et al.): at each of {diag['envelope_points']} "
                f"log-spaced FLOP values, the run with the lowest log-log interpolated loss; "
                f"{diag['runs_on_envelope']} runs ({diag['sizes_on_envelope']} sizes) are on it. "
                "Intermediate points are mid-schedule (learning rate not yet decayed), so they sit above "
                "what a run of that length would reach: between the ends of runs the envelope overstates "
                "the loss and favours runs whose schedule ends near that compute.")
    else:
        line = (f"Frontier of final losses ({diag['runs_on_envelope']} runs): no training curves were used, "
                "so the envelope is each budget's best run (kept when it beats every cheaper budget's best); "
                "N* per budget is then one of the sampled sizes, so a needs many budgets.")
    return [line, ""] + no_law_lines(r)


METHOD = Method(name="approach1", title="Chinchilla approach 1 (lowest loss at each compute)", color="tab:blue",
                fit=run, exponents=frontier_exponents, optimum=frontier_optimum, report=report)
