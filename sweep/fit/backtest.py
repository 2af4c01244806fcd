"""Backtests: refit on part of the budgets, predict the held-out runs, score errors and prediction intervals.

Three kinds of split, each row labelled with its extrapolation factor (the held-out run's compute over
the largest compute fitted) and its reach (the largest of its N, D and C over the largest fitted: a bigger model
at the same compute is an extrapolation too):
- leave-future-out, in compute: for each budget k from the third on, fit budgets below k and predict every budget
  from k up; the largest factor is the furthest a sweep of this size can be checked on itself;
- leave-future-out, in size: fit the smaller models, predict the larger ones at every budget (a user's next run
  is a bigger model; a sweep whose budgets overlap in compute is only checked this way);
- leave-one-budget-out: fit every budget but one and predict it (interpolation, except at the ends).
Methods with a full L(N, D) predict each held-out run at its (N, D); approaches 1 and 2, which only know
the frontier, predict each held-out budget's best run from L*(C). Intervals are the prediction intervals
for a new run; a method that gives no number (n/a) is listed but not scored.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sweep.fit import allocation
from sweep.fit.config import FitConfig
from sweep.fit.inputs import FitData
from sweep.fit.noise import Noise
from sweep.fit.selection import valley_runs

SUB_BOOTSTRAP = 100
"""Resamples of each backtest refit (fewer than the main fit's: there is one refit per split)."""
MAX_SPLITS = 5
"""Of each kind at most this many splits, evenly spread (always the furthest leave-future-out and both ends
for leave-one-out): a sweep of 20 budgets would otherwise cost 38 refits."""
SUB_GRID = dict(grid_alpha=[0.0, 1.0, 2.0], grid_beta=[0.0, 1.0, 2.0], grid_e=[-1.0, 0.0, 1.0],
                grid_a=[0.0, 10.0, 20.0], grid_b=[0.0, 10.0, 20.0])
"""Approach 3's starts in the refits: 243 of the main fit's grid, spanning the same ranges."""


def _spread(values: list, k: int) -> list:
    return [values[i] for i in np.unique(np.linspace(0, len(values) - 1, min(k, len(values))).round().astype(int))]


SIZE_SPLITS = 3
"""Leave-future-out splits in size: fit the sizes below a cut, predict the rest, cuts in the upper half of the sizes."""
MIN_SIZES = 6
"""Distinct sizes an IsoFLOP sweep needs before it is split by size (the fit keeps at least 3 below the cut). With
fewer, a cut leaves each budget 2-3 sizes, no valley to refit the valley methods on, and a ranking of the methods
on the splits each could be refitted on, which favours a method that skipped the hard ones."""
MIN_SIZES_GRID = 4
"""The same in a grid without IsoFLOP budgets (`unit` "split"), whose every size has all its token counts: 4 sizes
x many token counts are checked by predicting the largest size from the 3 below, the extrapolation
the grid's user asks for, where its compute splits hold out the small models trained longest."""


def splits(data: FitData, grid: bool = False) -> list[dict]:
    """The (kind, axis, label, train runs, test runs) splits, smallest compute (or size) first; grid: a sweep without
    IsoFLOP budgets (see `unit`)."""
    ids = np.unique(data.budget)
    out = []
    for k in _spread(list(range(2, ids.size)), MAX_SPLITS):
        out.append({"kind": "future", "axis": "compute", "label": f"fit budgets 1-{k}, predict {k + 1}-{ids.size}",
                    "train": np.flatnonzero(data.budget < ids[k]), "test": np.flatnonzero(data.budget >= ids[k])})
    sizes = np.unique(data.n)
    if sizes.size >= (MIN_SIZES_GRID if grid else MIN_SIZES):
        for k in _spread(list(range(max(3, sizes.size // 2), sizes.size)), SIZE_SPLITS):
            out.append({"kind": "future", "axis": "size", "label": f"fit N < {sizes[k]:.3g}, predict the "
                                                                   f"{sizes.size - k} larger size(s)",
                        "train": np.flatnonzero(data.n < sizes[k]), "test": np.flatnonzero(data.n >= sizes[k])})
    for j in _spread(list(ids), MAX_SPLITS):
        out.append({"kind": "leave-one-out", "axis": "compute", "label": f"leave out budget {int(j) + 1}",
                    "train": np.flatnonzero(data.budget != j), "test": np.flatnonzero(data.budget == j)})
    return out


def backtest(data: FitData, cfg: FitConfig, fit_methods) -> dict:
    """Per method: every split's predictions of held-out runs, and errors and coverage by kind of split.

    fit_methods is the pipeline's function (passed in, so this module does not import the pipeline).
    """
    n_budgets = np.unique(data.budget).size
    if n_budgets < 3:
        return {"status": "skipped", "reason": f"{n_budgets} compute budget(s): a backtest needs 3 (fit 2, predict 1)"}
    sub_cfg = dataclasses.replace(cfg, n_bootstrap=min(cfg.n_bootstrap, SUB_BOOTSTRAP), compare_conventions=False,
                                  backtest=False, law_intervals=False, loss_law_min_points=3, **SUB_GRID)
    rows: dict = {m: [] for m in cfg.methods}
    skipped: dict = {}
    scored = scored_runs(data, cfg)
    unit_ = unit(data, cfg)
    all_splits = splits(data, grid=unit_ == "split")
    for sp in all_splits:
        train, test = sp["train"], sp["test"][scored[sp["test"]]]
        if not test.size:
            continue
        try:
            fits = fit_methods(data.subset(train), sub_cfg, [])
        except Exception as exc:  # a failed refit must not sink the fit itself
            for m in cfg.methods:
                skipped.setdefault(m, []).append(f"{sp['label']}: {exc}")
            continue
        noise = Noise(**fits["noise"])
        fitted = data.subset(train)
        for m in cfg.methods:
            res = fits.get(m, {})
            if res.get("status") != "ok":
                skipped.setdefault(m, []).append(f"{sp['label']}: {res.get('reason')}")
                continue
            rows[m] += [{**r, "split": sp["label"], "kind": sp["kind"], "axis": sp["axis"]}
                        for r in _predict(m, res, data, test, fitted, sub_cfg, noise, sp["axis"])]
    out = {"status": "ok", "n_budgets": int(n_budgets), "splits": len(all_splits), "methods": {},
           "unit": unit_,
           "scored_runs": int(scored.sum()), "n_runs": int(data.loss.size), "window": cfg.parabola_window}
    for m in cfg.methods:
        if not rows[m]:
            out["methods"][m] = {"status": "skipped", "reason": "; ".join(skipped.get(m, ["no split could be fitted"])[:3])}
            continue
        out["methods"][m] = {"status": "ok", "rows": rows[m],
                             "summary": {kind: _summary([r for r in rows[m] if r["kind"] == kind])
                                         for kind in ("future", "leave-one-out")},
                             "skipped_splits": skipped.get(m, [])}
    return out


MIN_ISOFLOP_BUDGETS = 3
"""Budgets with `fit.min_sizes_per_budget` sizes or more that make a sweep an IsoFLOP sweep for `unit`."""


def unit(data: FitData, cfg: FitConfig) -> str:
    """What counts as one point when the backtest's held-out predictions are scored (sweep/fit/recommend.py):
    "budget" in an IsoFLOP sweep (MIN_ISOFLOP_BUDGETS budgets of several sizes), each held-out budget a new point of
    the frontier; "split" in a grid without IsoFLOP budgets (sizes trained at several token counts, every run a
    compute, a "budget", of its own): there a compute split holds out the small models trained longest by the
    dozen, single runs of a few sizes that share their refit's error, and counted one by one they would outvote the
    size split, whose larger model is what the grid's user asks about. Each split then weighs one point, as in the
    lack-of-fit term. In an IsoFLOP sweep each held-out budget is a point of the frontier a user extrapolates, so
    budgets stay the unit there."""
    isoflop = sum(k >= cfg.min_sizes_per_budget for k in sizes_per_budget(data).values())
    return "budget" if isoflop >= MIN_ISOFLOP_BUDGETS else "split"


def sizes_per_budget(data: FitData) -> dict:
    """{budget id: its number of distinct model sizes}."""
    return {b: np.unique(data.n[data.budget == b]).size for b in np.unique(data.budget)}


def scored_runs(data: FitData, cfg: FitConfig) -> np.ndarray:
    """Mask of the runs the backtest scores: each IsoFLOP budget's valley (its best size and parabola_window sizes
    each side), and every run of a budget too small to have one. The laws are models of the loss near the
    compute-optimal frontier, and the runs a user acts on are there; a grid's far ends (models starved of tokens,
    D < N) follow other limits and would rank the laws by how they fit those."""
    mask = np.zeros(data.loss.size, dtype=bool)
    for bid, k in sizes_per_budget(data).items():
        mask[data.budget == bid] = k < cfg.min_sizes_per_budget
    mask[valley_runs(data, cfg.min_sizes_per_budget, cfg.parabola_window)] = True
    return mask


def _predict(method: str, res: dict, data: FitData, test: np.ndarray, fitted: FitData, cfg: FitConfig,
             noise: Noise, axis: str) -> list[dict]:
    """Scored rows of the held-out runs; `group` is what they share a refit's error with: their budget (their size
    in a size split)."""
    rows = []
    c_fit = fitted.c.max()
    span = float(c_fit / fitted.c.min())  # the lack-of-fit term's growth depends on the span the refit saw
    if allocation.loss_at(method, res["params"], 1.0, 1.0) is not None:
        for i in test:
            p = allocation.predict_at(method, res, data.n[i], data.d[i], cfg.interval, noise)
            rows.append({**_score(data.names[i], data.c[i] / c_fit, reach_of(data, i, fitted), data.loss[i], p),
                         "budget": int(data.budget[i]), "span": span,
                         "group": int(data.budget[i]) if axis == "compute" else float(data.n[i])})
    elif axis == "compute":  # L*(C) predicts a budget's best run; in a size split the best runs are cut off
        for g in np.unique(data.budget[test]):
            idx = test[data.budget[test] == g]
            best = idx[np.argmin(data.loss[idx])]
            row = allocation.allocation_row(method, res, float(data.c[best]), data.flops_per_nd, cfg.interval, noise)
            rows.append({**_score(f"best run at {data.c[best]:.3g}", data.c[best] / c_fit, reach_of(data, best, fitted),
                                  data.loss[best], row["loss"]), "budget": int(g), "group": int(g),
                         "span": span})
    return rows


def reach_of(data: FitData, i: int, fitted: FitData) -> float:
    return reach(data.n[i], data.d[i], data.c[i], fitted.n.max(), fitted.d.max(), fitted.c.max())


def reach(n: float, d: float, c: float, n_max: float, d_max: float, c_max: float) -> float:
    """How far a run lies past the fitted data: the largest of N, D and C over the largest fitted (at least 1)."""
    return float(max(1.0, n / n_max, d / d_max, c / c_max))


def _score(name, extrapolation: float, reach_: float, measured: float, pred: dict) -> dict:
    value = pred["value"]
    interval = pred.get("prediction_interval")
    ok = bool(np.isfinite(value))
    return {"run": str(name), "extrapolation": float(extrapolation), "reach": reach_, "measured": float(measured),
            "predicted": float(value) if ok else None, "interval": interval if ok else None,
            "rel_error": float(value / measured - 1) if ok else None,
            "covered": bool(interval[0] <= measured <= interval[1]) if ok and interval else None,
            "pi_terms": pred.get("pi_terms") if ok else None}


def _summary(rows: list[dict]) -> dict:
    """Errors and coverage over the rows that have a number; n/a rows counted apart, never as covered."""
    errs = np.array([abs(r["rel_error"]) for r in rows if r["rel_error"] is not None])
    cov = [r["covered"] for r in rows if r["covered"] is not None]
    far = max((r for r in rows if r["rel_error"] is not None), key=lambda r: r["extrapolation"], default=None)
    return {"n": len(rows), "n_scored": int(errs.size), "n_na": int(sum(r["rel_error"] is None for r in rows)),
            "mean_abs_rel_error": float(errs.mean()) if errs.size else None,
            "max_abs_rel_error": float(errs.max()) if errs.size else None,
            "coverage": float(np.mean(cov)) if cov else None, "n_intervals": len(cov),
            "max_extrapolation": float(far["extrapolation"]) if far else None,
            "error_at_max_extrapolation": float(far["rel_error"]) if far else None}
