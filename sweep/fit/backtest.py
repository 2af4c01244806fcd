"""Backtests: refit on part of the budgets, predict the held-out runs, score errors and prediction intervals.

Two families of splits, each row labelled with its extrapolation factor (the held-out run's compute over
the largest compute fitted):
- leave-future-out: for each budget k from the third on, fit budgets below k and predict every budget
  from k up; the largest factor is the furthest a sweep of this size can be checked on itself;
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


def splits(data: FitData) -> list[dict]:
    """The (kind, label, train runs, test runs) splits of the budgets, smallest compute first."""
    ids = np.unique(data.budget)
    out = []
    for k in _spread(list(range(2, ids.size)), MAX_SPLITS):
        out.append({"kind": "future", "label": f"fit budgets 1-{k}, predict {k + 1}-{ids.size}",
                    "train": np.flatnonzero(data.budget < ids[k]), "test": np.flatnonzero(data.budget >= ids[k])})
    for j in _spread(list(ids), MAX_SPLITS):
        out.append({"kind": "leave-one-out", "label": f"leave out budget {int(j) + 1}",
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
                                  backtest=False, law_intervals=False, **SUB_GRID)
    rows: dict = {m: [] for m in cfg.methods}
    skipped: dict = {}
    for sp in splits(data):
        train, test = sp["train"], sp["test"]
        try:
            fits = fit_methods(data.subset(train), sub_cfg, [])
        except Exception as exc:  # a failed refit must not sink the fit itself
            for m in cfg.methods:
                skipped.setdefault(m, []).append(f"{sp['label']}: {exc}")
            continue
        noise = Noise(**fits["noise"])
        c_fit = data.c[train].max()
        for m in cfg.methods:
            res = fits.get(m, {})
            if res.get("status") != "ok":
                skipped.setdefault(m, []).append(f"{sp['label']}: {res.get('reason')}")
                continue
            rows[m] += [{**r, "split": sp["label"], "kind": sp["kind"]}
                        for r in _predict(m, res, data, test, c_fit, sub_cfg, noise)]
    out = {"status": "ok", "n_budgets": int(n_budgets), "splits": len(splits(data)), "methods": {}}
    for m in cfg.methods:
        if not rows[m]:
            out["methods"][m] = {"status": "skipped", "reason": "; ".join(skipped.get(m, ["no split could be fitted"])[:3])}
            continue
        out["methods"][m] = {"status": "ok", "rows": rows[m],
                             "summary": {kind: _summary([r for r in rows[m] if r["kind"] == kind])
                                         for kind in ("future", "leave-one-out")},
                             "skipped_splits": skipped.get(m, [])}
    return out


def _predict(method: str, res: dict, data: FitData, test: np.ndarray, c_fit: float, cfg: FitConfig,
             noise: Noise) -> list[dict]:
    rows = []
    if allocation.loss_at(method, res["params"], 1.0, 1.0) is not None:
        for i in test:
            p = allocation.predict_at(method, res, data.n[i], data.d[i], cfg.interval, noise)
            rows.append({**_score(data.names[i], data.c[i] / c_fit, data.loss[i], p), "budget": int(data.budget[i])})
    else:
        for g in np.unique(data.budget[test]):
            idx = test[data.budget[test] == g]
            best = idx[np.argmin(data.loss[idx])]
            row = allocation.allocation_row(method, res, float(data.c[best]), data.flops_per_nd, cfg.interval, noise)
            rows.append({**_score(f"best run at {data.c[best]:.3g}", data.c[best] / c_fit, data.loss[best], row["loss"]),
                         "budget": int(g)})
    return rows


def _score(name, extrapolation: float, measured: float, pred: dict) -> dict:
    value = pred["value"]
    interval = pred.get("prediction_interval")
    ok = bool(np.isfinite(value))
    return {"run": str(name), "extrapolation": float(extrapolation), "measured": float(measured),
            "predicted": float(value) if ok else None, "interval": interval if ok else None,
            "rel_error": float(value / measured - 1) if ok else None,
            "covered": bool(interval[0] <= measured <= interval[1]) if ok and interval else None}


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
