"""Chinchilla approach 2: per compute budget a parabola of loss in log N; vertices regressed on C."""

from __future__ import annotations

import warnings

import numpy as np

from sweep.fit.config import FitConfig, MethodSkipped
from sweep.fit.inputs import group_budgets
from sweep.fit.powerlaw import loss_law

NAMES = ["n_log0", "a", "d_log0", "b", "loss_log_cc", "loss_alpha", "loss_e"]


def isoflop_parabolas(data, tolerance: float, min_sizes: int, window: int = 2) -> list[dict]:
    """One record per budget: its parabola (loss = c2 x^2 + c1 x + c0, x = log N), vertex and whether it is kept."""
    ids = group_budgets(data.c, tolerance)
    out = []
    for bid in np.unique(ids):
        m = ids == bid
        ln, loss, ld = np.log(data.n[m]), data.loss[m], np.log(data.d[m])
        rec = {"flops": float(np.exp(np.mean(np.log(data.c[m])))), "n_runs": int(m.sum()),
               "n_sizes": int(np.unique(ln).size), "kept": False, "reason": ""}
        out.append(rec)
        if rec["n_sizes"] < min_sizes:
            rec["reason"] = f"{rec['n_sizes']} size(s), needs {min_sizes}"
            continue
        order = np.argsort(ln)
        best = int(np.argmin(loss[order]))
        rec["log_n_range"] = [float(ln.min()), float(ln.max())]
        if best in (0, len(order) - 1):
            side, fix = (("smallest", "add smaller models to this budget") if best == 0
                         else ("largest", "add larger models to this budget"))
            rec["reason"] = f"minimum at the edge of the sampled sizes (the {side}): {fix}"
            continue
        # A parabola is only a local model of loss vs log N: fitting it to sizes far from the
        # minimum tilts the vertex (on Porian et al.'s sweeps, a = 0.07 off with all sizes).
        sel = order[max(0, best - window): best + window + 1] if window > 0 else order
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # resamples repeat sizes: a poorly conditioned fit is caught below
            coef = np.polyfit(ln[sel], loss[sel], 2)
        rec["coef"] = coef.tolist()
        rec["fit_range"] = [float(ln[sel].min()), float(ln[sel].max())]
        if coef[0] <= 0:
            rec["reason"] = "parabola opens downward"
            continue
        x = -coef[1] / (2 * coef[0])
        if not ln.min() <= x <= ln.max():
            rec["reason"] = "vertex outside the sampled sizes"
            continue
        slope, icpt = np.polyfit(ln, ld, 1) if np.unique(ln).size > 1 else (0.0, ld.mean())
        rec.update(kept=True, n_star=float(np.exp(x)), d_star=float(np.exp(icpt + slope * x)),
                   loss_star=float(np.polyval(coef, x)))
    return out


def fit_point(data, cfg: FitConfig) -> dict:
    """Regress log N* and log D* of the kept budgets on log C; fit the vertex losses L*(C)."""
    budgets = isoflop_parabolas(data, cfg.budget_tolerance, cfg.min_sizes_per_budget, cfg.parabola_window)
    kept = [b for b in budgets if b["kept"]]
    if not any(b["n_sizes"] >= cfg.min_sizes_per_budget for b in budgets):
        raise MethodSkipped(f"no compute budget has {cfg.min_sizes_per_budget} model sizes (runs within "
                            f"budget_tolerance={cfg.budget_tolerance} of each other's compute form a budget): "
                            "approach 2 needs IsoFLOP sweeps")
    if len(kept) < 2:
        dropped = "; ".join(f"{b['flops']:.3g}: {b['reason']}" for b in budgets if not b["kept"])
        raise MethodSkipped(f"{len(kept)} usable budget(s), approach 2 needs 2 (dropped {dropped}); "
                            "add sizes on both sides of each budget's minimum")
    lc = np.log([b["flops"] for b in kept])
    a, n_log0 = np.polyfit(lc, np.log([b["n_star"] for b in kept]), 1)
    b_, d_log0 = np.polyfit(lc, np.log([b["d_star"] for b in kept]), 1)
    loss_star = np.array([b["loss_star"] for b in kept])
    law = loss_law(np.exp(lc), loss_star, cfg)  # n/a from fewer than 4 budgets
    return {"n_log0": n_log0, "a": a, "d_log0": d_log0, "b": b_, "loss_log_cc": law["log_xc"],
            "loss_alpha": law["alpha"], "loss_e": law["e"], "budgets": budgets}
