"""Every method's prediction of runs a fit never saw, scored against their measured losses.

One function for `sweep verify` (the run it trains beyond the sweep) and for scripts/check_public.py (published
runs held out of a fit): each method predicts L(N, D) at the run's own N and D where it has such a law, else
L*(C) at the run's compute, with its prediction interval for a new run at that extrapolation; the recommended
methods' stacking is added beside them, and leads when there is one.
"""

from __future__ import annotations

from sweep.fit import allocation
from sweep.fit.recommend import stack


def predict_run(fit: dict, n: float, d: float, c: float, measured: float) -> dict:
    """{"methods": {method: {predicted, interval, law_interval, rel_error, covered, basis, pi_terms}, "stacked": ...},
    "recommended": the method (or "stacked") that leads, "extrapolation": c over the largest fitted compute}.

    n, d and c are in the fit's conventions (fit["data"]["param_convention"], ["flop_convention"])."""
    level = fit["config"]["interval"]
    noise = allocation.noise_of(fit)
    x = float(c / fit["data"]["flops_range"][1])
    methods = {}
    for m in fit["config"]["methods"]:
        r = fit.get(m, {})
        if r.get("status") != "ok":
            methods[m] = {"predicted": None, "reason": r.get("reason")}
            continue
        pred = allocation.predict_at(m, r, float(n), float(d), level, noise, extrapolation=x)
        basis = "L(N, D) at the run's N and D"
        if pred is None:
            pred = allocation.allocation_row(m, r, float(c), fit["data"]["flops_per_nd"], level, noise,
                                             extrapolation=x)["loss"]
            basis = "L*(C) at the run's compute"
        value = pred["value"]
        ok = value == value  # NaN: the method has no loss law here
        pi = pred.get("prediction_interval") if ok else None
        methods[m] = {"predicted": value if ok else None, "interval": pi,
                      "law_interval": pred.get("interval") if ok else None,
                      "rel_error": value / measured - 1 if ok else None,
                      "covered": None if not pi else bool(pi[0] <= measured <= pi[1]), "basis": basis,
                      "pi_terms": pred.get("pi_terms") if ok else None}
    rec = fit.get("recommended") or {}
    lead = rec.get("method")
    stacked = stack(methods, rec.get("weights") or {}, level)
    if stacked is not None:
        value, pi = stacked["predicted"], stacked["interval"]
        methods["stacked"] = {"predicted": value, "interval": pi, "rel_error": value / measured - 1,
                              "covered": bool(pi[0] <= measured <= pi[1]),
                              "basis": "weighted mixture of " + ", ".join(f"{m} {w:.2f}"
                                                                          for m, w in stacked["weights"].items())}
        lead = "stacked"
    return {"methods": methods, "recommended": lead, "extrapolation": x}
