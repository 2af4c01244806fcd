"""Backtest: fit on the runs below a compute threshold, predict the rest, score errors and interval coverage."""

from __future__ import annotations

import dataclasses

import numpy as np

from sweep.fit import allocation
from sweep.fit.config import FitConfig
from sweep.fit.inputs import FitData, group_budgets


def default_threshold(data: FitData, tolerance: float) -> float:
    """Hold out the top quarter of budgets (at least one): the threshold is the smallest held-out budget's compute."""
    ids = group_budgets(data.c, tolerance)
    n_budgets = ids.max() + 1
    first_held = n_budgets - max(1, n_budgets // 4)
    return float(data.c[ids >= first_held].min())


def backtest(data: FitData, cfg: FitConfig) -> dict:
    """Per method: predicted vs measured loss of every held-out run, relative errors, interval coverage."""
    from sweep.fit.pipeline import fit_methods  # the pipeline also calls us

    threshold = cfg.backtest_threshold or default_threshold(data, cfg.budget_tolerance)
    train = np.flatnonzero(data.c < threshold)
    test = np.flatnonzero(data.c >= threshold)
    if train.size < 6 or test.size == 0:
        return {"status": "skipped", "threshold": threshold,
                "reason": f"{train.size} runs below and {test.size} at or above the threshold {threshold:.3g}"}
    sub_cfg = dataclasses.replace(cfg, n_bootstrap=min(cfg.n_bootstrap, 100), compare_conventions=False, backtest=False)
    try:
        fits = fit_methods(data.subset(train), sub_cfg, [])
    except Exception as exc:  # a failed backtest must not sink the fit itself
        return {"status": "skipped", "threshold": threshold, "reason": f"fit on the early runs failed: {exc}"}
    out = {"status": "ok", "threshold": threshold, "n_train": int(train.size), "n_test": int(test.size), "methods": {}}
    for m, res in fits.items():
        if res.get("status") != "ok":
            out["methods"][m] = {"status": "skipped", "reason": res.get("reason")}
            continue
        rows = []
        if allocation.loss_at(m, res["params"], 1.0, 1.0) is not None:
            targets = [(data.names[i], data.n[i], data.d[i], data.loss[i]) for i in test]
            for name, n, d, loss in targets:
                p = allocation.predict_at(m, res, n, d, cfg.interval)
                rows.append(_score(name, loss, p))
        else:
            # Approaches 1 and 2 predict only the frontier: compare with each held-out budget's best run.
            ids = group_budgets(data.c, cfg.budget_tolerance)
            for g in np.unique(ids[test]):
                m_idx = test[ids[test] == g]
                best = m_idx[np.argmin(data.loss[m_idx])]
                row = allocation.allocation_row(m, res, float(data.c[best]), data.flops_per_nd, cfg.interval)
                rows.append(_score(f"frontier at {data.c[best]:.3g}", data.loss[best], row["loss"]))
        errs = np.array([r["rel_error"] for r in rows])
        cov = [r["covered"] for r in rows if r["covered"] is not None]
        out["methods"][m] = {"status": "ok", "rows": rows, "mean_abs_rel_error": float(np.mean(np.abs(errs))),
                             "max_abs_rel_error": float(np.max(np.abs(errs))),
                             "coverage": float(np.mean(cov)) if cov else None}
    return out


def _score(name, measured, pred: dict) -> dict:
    interval = pred.get("interval")
    covered = None if interval is None else bool(interval[0] <= measured <= interval[1])
    return {"run": str(name), "measured": float(measured), "predicted": pred["value"], "interval": interval,
            "rel_error": float(pred["value"] / measured - 1), "covered": covered}
