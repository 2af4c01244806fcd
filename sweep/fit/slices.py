"""Kaplan et al. 2020's single-variable laws, each on the slice of runs it needs: L(N) over sizes trained on
ample data, L(D) over token counts at ample size, L(C) on the compute frontier.

They need no IsoFLOP design: a sweep of sizes at one D (Kaplan's Fig. 1 right, `experiment=kaplan_model_size`) has
an L(N), one size at several D (`experiment=kaplan_data_size`) an L(D). The pipeline fits them on every sweep, and a
sweep that only has them still gets a fit (their section of the report and kaplan_slices.png).
"""

from __future__ import annotations

import numpy as np

from sweep.fit.approach1 import envelope
from sweep.fit.config import FitConfig, MethodSkipped
from sweep.fit.inputs import group_budgets
from sweep.fit.powerlaw import fit_power_law


def data_rich_slice(data, min_tokens_per_param: float):
    """Per model size its longest run, kept when that run saw at least min_tokens_per_param tokens per parameter."""
    idx = []
    for n in np.unique(data.n):
        m = np.flatnonzero(data.n == n)
        i = m[np.argmax(data.d[m])]
        if data.d[i] / data.n[i] >= min_tokens_per_param:
            idx.append(i)
    return np.array(idx, dtype=int)


def model_rich_slice(data, tolerance: float):
    """Per token count (within tolerance) the lowest loss over sizes, kept when at least 2 sizes saw it; a sweep of
    one size keeps each of its runs (its L(D) is that size's, which the report says)."""
    ids = group_budgets(data.d, tolerance)
    one_size = np.unique(data.n).size == 1
    idx = []
    for g in np.unique(ids):
        m = np.flatnonzero(ids == g)
        if one_size or np.unique(data.n[m]).size >= 2:
            idx.append(m[np.argmin(data.loss[m])])
    return np.array(idx, dtype=int)


def single_variable_laws(data, cfg: FitConfig) -> dict:
    """{"L(N)" | "L(D)" | "L(C)": {status, x_c, alpha, E, n_points, idx (the slice's runs)} or {status: skipped,
    reason}}: L = E + (x_c / x)^alpha on each slice (E = 0 with fit.kaplan_irreducible=false)."""
    need = 3 + cfg.kaplan_irreducible
    one_size = np.unique(data.n).size == 1
    slices = {
        "L(N)": (data_rich_slice(data, cfg.data_rich_tokens_per_param), data.n,
                 f"no data-rich slice: fewer than {need} sizes whose longest run saw "
                 f">= {cfg.data_rich_tokens_per_param:g} tokens/param (data_rich_tokens_per_param)"),
        "L(D)": (model_rich_slice(data, cfg.budget_tolerance), data.d,
                 f"fewer than {need} token counts seen by 2+ sizes" + (" (or by the one size)" if one_size else "")),
        "L(C)": (envelope(data.c, data.loss, data.budget), data.c, "compute frontier too short"),
    }
    laws = {}
    for name, (idx, x, why) in slices.items():
        try:
            if idx.size < need:
                raise MethodSkipped(f"{why}: {idx.size} point(s)")
            p = fit_power_law(x[idx], data.loss[idx], cfg.kaplan_irreducible, cfg.huber_delta)
            laws[name] = {"status": "ok", "x_c": float(np.exp(p["log_xc"])), "alpha": p["alpha"], "E": p["e"],
                          "n_points": int(idx.size), "idx": idx.tolist()}
        except MethodSkipped as exc:
            laws[name] = {"status": "skipped", "reason": str(exc), "n_points": int(idx.size)}
    if one_size and laws["L(D)"]["status"] == "ok":
        laws["L(D)"]["note"] = f"one model size ({data.n[0]:.3g} parameters): the L(D) of that size, not a model-rich slice"
    return laws


def describe(law: dict) -> str:
    """One fitted law in words: its exponent, scale and floor (flagged when the floor sits at its bound 0)."""
    floor = " (at its bound 0: no floor)" if law["E"] <= 1e-6 else ""
    return f"α = {law['alpha']:.4g}, x_c = {law['x_c']:.4g}, E = {law['E']:.4g}{floor} ({law['n_points']} points)"


def report(laws: dict) -> list[str]:
    """report.md's section."""
    lines = ["## Single-variable laws (Kaplan et al. 2020)", "",
             "Each on the slice of runs it needs, L = E + (x_c / x)^α: L(N) over sizes trained on ample data, L(D) over "
             "token counts at ample size, L(C) on the compute frontier. kaplan_slices.png draws them.", ""]
    for name, law in laws.items():
        if law["status"] == "ok":
            lines.append(f"- {name}: {describe(law)}" + (f"; {law['note']}" if law.get("note") else ""))
        else:
            lines.append(f"- {name}: skipped ({law['reason']})")
    return lines + [""]
