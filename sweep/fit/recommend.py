"""The recommended prediction: the method whose predictions held up best when it extrapolated inside the data.

Which law extrapolates best depends on the sweep (approach 3 on one, Kaplan's form on another), so the fit does not
assume one. It scores every method that predicted held-out runs in the leave-future-out backtest with a proper
scoring rule: the log score of each prediction's PI, read as a normal in log loss (its sd from the PI's width). A
narrow interval that misses scores badly; a wide one that covers scores only fairly; a method with small errors and
honest intervals scores best. Each held-out budget of each split counts once (its runs share one refit; in a grid
without IsoFLOP budgets each split counts once, see backtest.unit), and the method with the best mean score is
recommended (leave-future-out cross-validation, Bürkner, Gabry & Vehtari 2020). With a few held-out budgets the
ranking is itself noisy, and two laws that miss on opposite sides predict better together than either alone, so the
recommended prediction of a new run is a stacking of the ranked methods' predictive distributions (Yao et al. 2018):
the weights that maximise the log score of the mixture on the held-out runs every stacked method predicted, each
held-out group (or split) counted once, under a weak Dirichlet prior (PRIOR) that keeps a few held-out budgets from
putting all the weight on one law: a law the backtest cannot tell apart from the best keeps a few percent, and the
stacked PI widens where the laws disagree.
Two sets of weights, for two targets:
- `weights_per_run`: a run at a given N and D (a public run, a user's next model): only methods with an L(N, D),
  stacked on every held-out run they all predicted;
- `weights`: a run placed at the compute optimum (`sweep verify`): every method, stacked on each held-out budget's
  best run (what approaches 1 and 2's L*(C) predicts) that two or more methods predicted, each run's mixture over
  the methods that predicted it: the frontier methods and the anchored fit cannot be refitted on the early splits,
  and the budgets all of them predicted are often too few to stack on (on scripts/check_coverage.py's data_term
  law the weights were then empty, and the run went where a ranking of each method on groups of its own put it).
Every method stays in the report beside it.

With fewer than MIN_GROUPS scored budgets for every method, nothing can be ranked: the default (approach 3, else
the one-exponent law) is recommended and the report says why.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.stats import norm

from sweep.fit import allocation, registry
from sweep.fit.lack_of_fit import held_out_groups, per_split, pi_sd

DEFAULT = "approach3"
"""Recommended when the backtest cannot rank the methods: the law with a full L(N, D) and a floor."""
FALLBACKS = (DEFAULT, "shared_exponent")
"""In this order when the default was not fitted (approach 3 needs 3 sizes and 3 token counts): the same family
with one exponent, 4 parameters, before a law of another family."""
MIN_GROUPS = 3
"""Held-out budgets (over the leave-future-out splits) a method needs to be scored."""
PRIOR = 0.02
"""The stacking weights maximise the mixture's log score plus PRIOR * sum_m log w_m: the mode of their posterior
under a symmetric Dirichlet(1 + PRIOR) prior, so that no weight reaches exactly 0 on a few held-out budgets. A few
budgets of short extrapolations can favour one law at every budget and still not say how it extrapolates 10x
further; without the prior the weights then sat at a corner, and the stacked PI was that one law's. Measured
(2026-12-04, scripts/check_coverage.py's fits with the recommended prediction recomputed per prior, see
docs/fitting.md): on the model_term law (outside every family, 100 seeds) the recommended PI's coverage at 10x /
100x went from 0.84 / 0.83 to 0.88 / 0.83 (0.01), 0.91 / 0.87 (0.015), 0.93 / 0.92 (0.02),
its half-width from 7.7% / 12.0% to 9.8% / 18.1% at 0.02; on the correct law from 1.14x / 1.17x approach 3's
half-width to 1.23x / 1.31x. 0.02 is the least that keeps 90% at both reaches on the law outside every family."""
MIN_SD = 1e-3
"""Smallest sd of log loss a prediction is scored with (an interval of zero width would score -inf or +inf)."""


def _groups(rows: list[dict]) -> dict:
    """The held-out budgets whose predictions have an interval to score."""
    groups = {k: [r for r in g if r.get("interval")] for k, g in held_out_groups(rows).items()}
    return {k: g for k, g in groups.items() if g}


def log_score(rows: list[dict], level: float, keys=None, unit: str = "budget") -> float:
    """Mean log predictive density of the measured losses (log space), each held-out budget weighted once (each split,
    with unit "split"); only the held-out groups in `keys` when given."""
    z = norm.ppf(0.5 + level / 2)
    groups = {k: g for k, g in _groups(rows).items() if keys is None or k in keys}
    scores = [float(np.mean([norm.logpdf(np.log(r["measured"] / r["predicted"]), scale=max(pi_sd(r, z), MIN_SD))
                             for r in g])) for g in groups.values()]
    return float(np.average(scores, weights=group_weights(list(groups), unit))) if scores else float("nan")


def group_weights(keys: list, unit: str = "budget") -> np.ndarray:
    """Each held-out (split, group)'s weight in the scores: 1 with unit "budget" (an IsoFLOP sweep's held-out budgets,
    each a new point of the frontier; the splits that hold out many reach furthest, and counting their budgets
    weighs the long extrapolations a user's next run needs), 1 / (the split's groups) with unit "split" (a grid
    without IsoFLOP budgets, where each held-out "budget" is one run: see backtest.unit)."""
    return np.ones(len(keys)) if unit == "budget" else per_split(keys)


def recommend(result: dict, methods: list[str], level: float) -> dict:
    """{method, reason, scores: {method: {log_score, budgets, mean_abs_error, furthest: [x, error]}}}."""
    bt = result.get("backtest") or {}
    unit = bt.get("unit", "budget")
    scores = {}
    for m in methods:
        if result.get(m, {}).get("status") != "ok":
            continue
        rows = bt.get("methods", {}).get(m, {}).get("rows", []) if bt.get("status") == "ok" else []
        groups = _groups(rows)
        scored = [r for g in groups.values() for r in g]
        far = max(scored, key=lambda r: r["extrapolation"], default=None)
        scores[m] = {"log_score": log_score(rows, level, unit=unit), "budgets": len(groups),
                     "mean_abs_error": float(np.mean([abs(r["rel_error"]) for r in scored])) if scored else None,
                     "furthest": [far["extrapolation"], far["rel_error"]] if far else None}
    ranked = {m: s for m, s in scores.items() if s["budgets"] >= MIN_GROUPS and np.isfinite(s["log_score"])}
    if not ranked:
        why = (f"the backtest was skipped ({bt.get('reason')})" if bt.get("status") != "ok"
               else f"no method has {MIN_GROUPS} held-out budgets in the leave-future-out backtest")
        fallback = next((m for m in FALLBACKS if m in scores), next(iter(scores), None))
        return {"method": fallback, "reason": f"{why}: the methods cannot be ranked, so the default ({fallback}) is "
                                              f"recommended", "scores": scores, "ranked": False}
    rows_of = {m: bt["methods"][m]["rows"] for m in ranked}
    # methods that predicted different splits (a refit can skip one) are compared on the groups they all predicted
    common = set.intersection(*(set(_groups(rows_of[m])) for m in ranked))
    shared = len(ranked) > 1 and len(common) >= MIN_GROUPS
    if shared:
        for m in ranked:
            ranked[m] = {**ranked[m], "log_score": log_score(rows_of[m], level, common, unit), "budgets": len(common)}
    # The best single method must predict with its final fit: a frontier method can score well in the backtest's
    # refits and still have no loss law on all the data (L*(C) n/a without a fitted floor).
    c_max = (result.get("data") or {}).get("flops_range", [None, None])[1]
    usable = [m for m in ranked if c_max is None or predicts_at(result, m, c_max)] or list(ranked)
    best = max(usable, key=lambda m: ranked[m]["log_score"])
    unused = [m for m in ranked if m not in usable]
    z = norm.ppf(0.5 + level / 2)
    per_run = [m for m in ranked if registry.get(m).loss_at is not None]
    # The frontier methods and the anchored fit need several IsoFLOP budgets, so the early splits cannot refit them:
    # the budgets every method predicted are then too few to stack on (the weights were empty, and the run was placed
    # by a ranking of each method on groups of its own), so each held-out budget is scored by the methods it has.
    weights = stacking_weights({m: _log_densities(rows_of[m], z, best_only=True) for m in ranked}, unit,
                               partial=True)
    weights_per_run = stacking_weights({m: _log_densities(rows_of[m], z, best_only=False) for m in per_run}, unit)
    others = ", ".join(f"{m} {s['log_score']:.2f}" for m, s in sorted(ranked.items(), key=lambda kv: -kv[1]["log_score"])
                       if m != best)
    over = ("groups every ranked method predicted" if shared else "groups" if len(ranked) < 2 else
            f"groups of its own (the ranked methods share fewer than {MIN_GROUPS}: each is scored on those it predicted)")
    return {"method": best, "reason": f"best log score of the PI on the leave-future-out backtest"
                                      f"{' among the methods whose final fit predicts a loss' if unused else ''} "
                                      f"({ranked[best]['log_score']:.2f} over {ranked[best]['budgets']} held-out "
                                      f"{over}{'; ' + others if others else ''})"
                                      + (f"; {', '.join(unused)}: no loss law in the final fit" if unused else ""),
            "scores": scores, "ranked": True,
            "weights": weights, "weights_per_run": weights_per_run}


def _log_densities(rows: list[dict], z: float, best_only: bool) -> dict:
    """{(split, group, run): log density of the measured loss under the row's predictive distribution} over the
    scored leave-future-out rows; best_only keeps each group's lowest measured loss (keyed without the run)."""
    def density(r: dict) -> float:
        return float(norm.logpdf(np.log(r["measured"] / r["predicted"]), scale=max(pi_sd(r, z), MIN_SD)))

    out = {}
    for key, g in _groups(rows).items():
        if not best_only:
            out.update({key + (r["run"],): density(r) for r in g})
        elif (g[0].get("axis") or "compute") == "compute":  # a size split cut each budget's best run off
            out[key + ("best",)] = density(min(g, key=lambda r: r["measured"]))
    return out


def stacking_weights(densities: dict, unit: str = "budget", partial: bool = False) -> dict:
    """Stacking of predictive distributions (Yao et al. 2018): the simplex weights that maximise
    sum_groups weight_g mean_runs log sum_m w_m p_m(run) over the runs every method scored (weight_g from
    group_weights), plus PRIOR * sum_m log w_m (see PRIOR). {} with fewer than MIN_GROUPS groups in common or no
    method; one method gets weight 1.

    partial: over the runs two or more methods scored instead, each run's mixture over the methods that scored it
    (sum_m w_m p_m / sum_m w_m): a method is then weighed where it predicted, not dropped nor the runs it missed;
    a method that shares no run with another gets weight 0."""
    methods = list(densities)
    if not methods:  # e.g. only frontier methods were fitted: none predicts a run at a given N and D
        return {}
    if len(methods) == 1:
        return {methods[0]: 1.0}
    if partial:
        keys = set.union(*(set(d) for d in densities.values()))
        common = sorted((k for k in keys if sum(k in d for d in densities.values()) >= 2), key=str)
        methods = [m for m in methods if any(k in densities[m] for k in common)]  # the rest: weight 0
    else:
        common = sorted(set.intersection(*(set(d) for d in densities.values())), key=str)
    groups: dict = {}
    for k in common:
        groups.setdefault(k[:2], []).append(k)
    if len(groups) < MIN_GROUPS:
        return {}
    logp = np.array([[densities[m].get(k, np.nan) for m in methods] for k in common])  # (runs, methods)
    scored = np.isfinite(logp)
    top = np.nanmax(logp, 1)
    density = np.where(scored, np.exp(np.where(scored, logp, 0.0) - top[:, None]), 0.0)
    per_group = dict(zip(groups, group_weights(list(groups), unit)))
    per = np.array([per_group[k[:2]] / len(groups[k[:2]]) for k in common])
    starts = [np.zeros(len(methods))] + [np.eye(len(methods))[i] * 3 for i in range(len(methods))]
    w = _max_mixture(density, scored.astype(float), per, starts)
    stacked = dict(zip(methods, w))
    return {m: float(stacked.get(m, 0.0)) for m in densities}


def _max_mixture(density: np.ndarray, scored: np.ndarray, per: np.ndarray, starts: list) -> np.ndarray:
    """argmax over the simplex of sum_i per_i log(density_i . w / scored_i . w) + PRIOR sum_m log w_m, in softmax
    coordinates with its analytic gradient (L-BFGS), the best of `starts` (the mixture over the methods that scored
    each run is not concave in w: a start per corner). density: (runs, methods), each row scaled by its largest."""
    def neg(u):
        w = np.exp(u - u.max())
        w /= w.sum()
        dw, sw = np.maximum(density @ w, 1e-300), np.maximum(scored @ w, 1e-300)
        w_safe = np.maximum(w, 1e-300)
        value = -float(per @ (np.log(dw) - np.log(sw))) - PRIOR * float(np.sum(np.log(w_safe)))
        grad = -((per / dw) @ density - (per / sw) @ scored) - PRIOR / w_safe  # d value / d w
        return value, w * (grad - w @ grad)  # through the softmax

    best = min((minimize(neg, u0, jac=True, method="L-BFGS-B") for u0 in starts), key=lambda r: r.fun)
    w = np.exp(best.x - best.x.max())
    return w / w.sum()


def stack(predictions: dict, weights: dict, level: float) -> dict | None:
    """The weighted mixture of methods' predictive distributions for one run: each a normal in log loss centred on
    its prediction with the sd its PI implies. {predicted, interval, weights} (the point is the mixture's mean in
    log loss); None unless two or more weighted methods predicted it."""
    z = norm.ppf(0.5 + level / 2)
    parts = [(weights[m], np.log(p["predicted"]), max(pi_sd(p, z), MIN_SD))
             for m, p in predictions.items() if weights.get(m, 0) > 0 and p.get("predicted") and p.get("interval")]
    if len(parts) < 2:
        return None
    total = sum(w for w, _, _ in parts)
    parts = [(w / total, mu, sd) for w, mu, sd in parts]

    def cdf(x):
        return sum(w * norm.cdf(x, mu, sd) for w, mu, sd in parts)

    def quantile(q):
        lo, hi = min(mu - 10 * sd for _, mu, sd in parts), max(mu + 10 * sd for _, mu, sd in parts)
        for _ in range(100):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if cdf(mid) < q else (lo, mid)
        return float(np.exp((lo + hi) / 2))

    tail = (1 - level) / 2
    return {"predicted": float(np.exp(sum(w * mu for w, mu, _ in parts))),
            "interval": [quantile(tail), quantile(1 - tail)],
            "weights": {m: round(weights[m] / total, 4) for m, p in predictions.items()
                        if weights.get(m, 0) > 0 and p.get("predicted") and p.get("interval")}}


def verification_method(result: dict, flops: float) -> tuple[str, str]:
    """The method whose compute-optimal (N*, D*) at `flops` a verification run takes, and why.

    The run tests the prediction that leads, so it goes where that prediction's weight lies: the heaviest method of
    the at-optimum stacking (`weights`) whose own fit gives a finite N* and loss at `flops`. The best single method by
    log score is not used for this: it can be a frontier method whose final fit has no loss law (its L*(C) n/a) and
    whose allocation exponent is undetermined, and the run would then land where nothing that leads predicts it.
    Without weights (the backtest could not rank the methods): the recommended method, else approach 3."""
    rec = result.get("recommended") or {}
    weighted = sorted(((w, m) for m, w in (rec.get("weights") or {}).items()
                       if w > 0 and predicts_at(result, m, flops)), reverse=True)
    if weighted:
        w, m = weighted[0]
        return m, f"the heaviest method of the at-optimum stacking, weight {w:.2f}"
    m = rec.get("method")
    if m and result.get(m, {}).get("status") == "ok":
        return m, "the recommended method"
    return DEFAULT, "the default: no recommended method"


def predicts_at(result: dict, method: str, flops: float) -> bool:
    """Whether the method's fit gives a finite compute-optimal N* and loss at `flops`."""
    r = result.get(method, {})
    if r.get("status") != "ok":
        return False
    with np.errstate(all="ignore"):
        n, _, loss = allocation.optimum(method, r["params"], float(flops), result["data"]["flops_per_nd"])
    return bool(np.isfinite(n) and n > 0 and np.isfinite(loss))
