"""Every method's prediction of runs a fit never saw, scored against their measured losses.

One function for `sweep verify` (the run it trains beyond the sweep) and for scripts/check_public.py (published
runs held out of a fit): each method predicts L(N, D) at the run's own N and D where it has such a law, else
L*(C) at the run's compute, with its prediction interval for a new run at that extrapolation. The recommended
prediction leads: the default law, or the stacking of the laws where the backtest showed that it predicts better
(sweep/fit/recommend.py).
"""

from __future__ import annotations

from sweep.fit import allocation
from sweep.fit.backtest import reach
from sweep.fit.recommend import stack


def predict_run(fit: dict, n: float, d: float, c: float, measured: float | None, at_optimum: bool = True) -> dict:
    """{"methods": {method: {predicted, interval, law_interval, rel_error, covered, basis, pi_terms}, "stacked": ...},
    "recommended": the method (or "stacked") that leads, "extrapolation": c over the largest fitted compute,
    "reach": the largest of N, D and C over the largest fitted (the PI's lack-of-fit term grows with it)}.

    n, d and c are in the fit's conventions (fit["data"]["param_convention"], ["flop_convention"]); with measured
    None (a run not trained yet) rel_error and covered are None.
    at_optimum: the run was placed at a compute-optimal allocation (a verification run), so the frontier methods'
    L*(C) predicts it too; otherwise only methods with an L(N, D) predict it, and only they are recommended."""
    level = fit["config"]["interval"]
    noise = allocation.noise_of(fit)
    x = float(c / fit["data"]["flops_range"][1])
    pts = fit["data"]["points"]
    far = reach(n, d, c, max(pts["n"]), max(pts["d"]), max(pts["c"]))
    methods = {}
    for m in fit["config"]["methods"]:
        r = fit.get(m, {})
        if r.get("status") != "ok":
            methods[m] = {"predicted": None, "reason": r.get("reason")}
            continue
        pred = allocation.predict_at(m, r, float(n), float(d), level, noise, extrapolation=far)
        basis = "L(N, D) at the run's N and D"
        if pred is None:
            pred = allocation.allocation_row(m, r, float(c), fit["data"]["flops_per_nd"], level, noise,
                                             extrapolation=far)["loss"]
            basis = "L*(C) at the run's compute"
        value = pred["value"]
        ok = value == value  # NaN: the method has no loss law here
        pi = pred.get("prediction_interval") if ok else None
        methods[m] = {"predicted": value if ok else None, "interval": pi,
                      "law_interval": pred.get("interval") if ok else None,
                      "rel_error": value / measured - 1 if ok and measured else None,
                      "covered": None if not pi or not measured else bool(pi[0] <= measured <= pi[1]), "basis": basis,
                      "pi_terms": pred.get("pi_terms") if ok else None}
    rec = fit.get("recommended") or {}
    lead = rec.get("default") or rec.get("method")
    use = rec.get("stacked") if at_optimum else rec.get("stacked_per_run")
    weights = (rec.get("weights") if at_optimum else rec.get("weights_per_run")) or {}
    if not at_optimum:
        per_run = [m for m, v in methods.items() if v.get("basis", "").startswith("L(N, D)")]
        if lead not in per_run:
            scored = {m: s["log_score"] for m, s in (rec.get("scores") or {}).items()
                      if m in per_run and s["log_score"] == s["log_score"]}
            lead = max(scored, key=scored.get) if scored else next(iter(per_run), None)
    stacked = stack(methods, weights, level) if use else None
    if stacked is not None:
        value, pi = stacked["predicted"], stacked["interval"]
        methods["stacked"] = {"predicted": value, "interval": pi, "rel_error": value / measured - 1 if measured else None,
                              "covered": bool(pi[0] <= measured <= pi[1]) if measured else None,
                              "basis": "weighted mixture of " + ", ".join(f"{m} {w:.2f}"
                                                                          for m, w in stacked["weights"].items())}
        lead = "stacked"
    return {"methods": methods, "recommended": lead, "extrapolation": x, "reach": far}
