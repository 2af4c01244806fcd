"""The recommended prediction: approach 3 (the default law) unless a stacking of the laws has shown, on the
within-data backtest and with an interval, that it predicts held-out budgets better.

Scoring. Every method is scored on every held-out group of the leave-future-out backtest (one refit's predictions
of one held-out budget, or of one held-out size in a size split) by the log density of the measured losses under
its predictive distribution: a normal in log loss whose sd is the row's PI (law spread and run-to-run noise of the
refit) widened by the method's lack-of-fit term. That term is cross-fitted: for a run at held-out budget b it is
estimated on the method's rows at every other budget (the compute splits are nested, each later one predicting
budgets an earlier one did, so leaving out a refit would not leave out the runs it scores). The PI that is scored is
then the PI that gets mixed, and a method does not grade its own misfit. A method whose misfit the other budgets
cannot measure takes the pointwise largest of the terms the other methods measured (the pooled term).

Missing predictions. A method that predicted nothing for a held-out group (its refit skipped there, or its law has
no number at that point) is scored there with the lowest density any method reached at that group: abstaining is
never better than the worst forecast, as in forecasting competitions that score a missing forecast as the worst.
A law that predicts a fifth of the groups and is best there cannot then outweigh the laws that predicted them all.

Weights. The stacking weights (Yao et al. 2018) maximise the mixture's log score over the held-out groups plus
PRIOR sum_m log w_m (every law the backtest cannot rule out keeps a little weight) plus SHRINK log w_default: a
pseudo-group in which only the default predicts, so the weights shrink toward the default law and a few held-out
groups cannot move all of it.

The gate. Weights fitted and scored on the same groups flatter the stacking. The gate leaves out each held-out
budget in turn, across every split that predicted it: it re-estimates every lack-of-fit term and refits the weights
without that budget's runs, scores the stacking and the default on them, and takes the difference of their mean log
scores. The stacking is the answer only when the t interval (GATE_LEVEL, t with budgets - 1 degrees of freedom: the
budgets are few) of the mean difference lies above 0. Otherwise the default law is the answer, and the reason says
what the backtest could not show.

Two targets, each with its weights and gate: a run placed at the compute optimum (`weights`; every method, each
held-out group's best run, which the frontier methods' L*(C) predicts) and a run at a given N and D
(`weights_per_run`; the methods with an L(N, D), every held-out run).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp
from scipy.stats import norm, t as student_t

from sweep.fit import allocation, registry
from sweep.fit.lack_of_fit import MIN_ROWS, estimate, held_out_groups, per_split, pi_sd

DEFAULT = "approach3"
"""The default law: Chinchilla's L(N, D) fitted to every run (approach 3 as Besiroglu et al. 2024 replicated it)."""
FALLBACKS = (DEFAULT, "shared_exponent")
"""The default in this order when approach 3 was not fitted (it needs 3 sizes and 3 token counts)."""
MIN_GROUPS = 3
"""Held-out groups a method needs to be scored."""
PRIOR = 0.02
"""Weight of sum_m log w_m in the stacking objective: a symmetric Dirichlet(1 + PRIOR) prior's mode."""
SHRINK = 1.0
"""Pseudo-groups in which only the default predicts: a unit-information prior toward the default law (worth one
held-out group, Kass & Wasserman 1995)."""
GATE_LEVEL = 0.90
"""Two-sided level of the t interval on the stacking's cross-validated gain over the default."""
MIN_FOLDS_GATE = 3
"""Held-out budgets the gate needs: with fewer, no interval on the gain can be had, and the default is the answer."""
MIN_SD = 1e-3
"""Smallest sd of log loss a prediction is scored with (an interval of zero width would score -inf or +inf)."""


def _z(level: float) -> float:
    return float(norm.ppf(0.5 + level / 2))


def _groups(rows: list[dict]) -> dict:
    """The held-out groups whose predictions have an interval to score."""
    groups = {k: [r for r in g if r.get("interval")] for k, g in held_out_groups(rows).items()}
    return {k: g for k, g in groups.items() if g}


def _budget(r: dict):
    """The held-out run's budget: what a fold of the cross-fitting leaves out, across every split that predicted it."""
    return r.get("budget", r.get("group"))


def lof_without(rows_of: dict, level: float) -> dict:
    """{method: {budget: its lack-of-fit term estimated on its rows at every other budget, or None where those cannot
    measure it}}. The compute splits are nested (each later one predicts budgets the earlier ones did), so leaving a
    refit out would still estimate the term on the runs it scores; leaving the held-out budget out does not."""
    budgets = {_budget(r) for rows in rows_of.values() for g in _groups(rows).values() for r in g}
    out: dict = {}
    for m, rows in rows_of.items():
        out[m] = {}
        for b in budgets:
            est = estimate([r for r in rows if _budget(r) != b], level)
            out[m][b] = est if est.measured else None
    return out


def lof_sd(lofs: dict, method: str, budget) -> Callable:
    """lof(extrapolation, span) -> sd for the method's rows when `budget` is left out: its own term, else the
    pointwise largest of the terms the other methods measured (pooled), else 0."""
    own = lofs[method].get(budget)
    pool = [own] if own is not None else [lofs[o][budget] for o in lofs if lofs[o].get(budget) is not None]
    return lambda x, span: max((p.sd(x, span) for p in pool), default=0.0)


def densities(rows: list[dict], lof: Callable, level: float, best_only: bool) -> dict:
    """{(split, group, run, budget): log density of the measured loss} under each row's PI widened by the lack-of-fit
    term lof(row) -> lof(extrapolation, span); best_only keeps each group's lowest measured loss (run "best")."""
    z = _z(level)

    def density(r: dict) -> float:
        extra = lof(r)(r.get("reach", r["extrapolation"]), r.get("span", 1.0))
        sd = max(float(np.hypot(pi_sd(r, z), extra)), MIN_SD)
        return float(norm.logpdf(np.log(r["measured"] / r["predicted"]), scale=sd))

    out = {}
    for key, g in _groups(rows).items():
        if not best_only:
            out.update({key + (r["run"], _budget(r)): density(r) for r in g})
        elif (g[0].get("axis") or "compute") == "compute":  # a size split cut each budget's best run off
            best = min(g, key=lambda r: r["measured"])
            out[key + ("best", _budget(best))] = density(best)
    return out


def _matrix(dens: dict, methods: list[str]) -> tuple[list, np.ndarray]:
    """(keys, log densities (keys, methods)) over every key any method scored, a missing one filled with the
    lowest density any method reached at that key."""
    keys = sorted(set().union(*(set(dens[m]) for m in methods)), key=str)
    logp = np.array([[dens[m].get(k, np.nan) for m in methods] for k in keys])
    worst = np.nanmin(logp, axis=1)
    return keys, np.where(np.isfinite(logp), logp, worst[:, None])


def _key_weights(keys: list, unit: str) -> np.ndarray:
    """Each key's weight: each held-out group weighs 1 (each split 1 with unit "split"), spread over its runs."""
    groups = sorted({k[:2] for k in keys}, key=str)
    gw = dict(zip(groups, np.ones(len(groups)) if unit == "budget" else per_split(groups)))
    count = {g: sum(k[:2] == g for k in keys) for g in groups}
    return np.array([gw[k[:2]] / count[k[:2]] for k in keys])


def fit_weights(logp: np.ndarray, per: np.ndarray, default: int | None) -> np.ndarray:
    """argmax over the simplex of sum_i per_i log sum_m w_m p_im + PRIOR sum_m log w_m + SHRINK log w_default
    (concave in w), in softmax coordinates with its analytic gradient."""
    k = logp.shape[1]
    if k == 1:
        return np.ones(1)
    dens = np.exp(logp - logp.max(axis=1, keepdims=True))
    pull = np.full(k, PRIOR)
    if default is not None:
        pull[default] += SHRINK

    def neg(u):
        w = np.exp(u - u.max())
        w /= w.sum()
        mix = np.maximum(dens @ w, 1e-300)
        w_safe = np.maximum(w, 1e-300)
        value = -float(per @ np.log(mix)) - float(pull @ np.log(w_safe))
        grad = -(per / mix) @ dens - pull / w_safe
        return value, w * (grad - w @ grad)

    best = minimize(neg, np.zeros(k), jac=True, method="L-BFGS-B")
    w = np.exp(best.x - best.x.max())
    return w / w.sum()


def _mix(logp: np.ndarray, w: np.ndarray) -> np.ndarray:
    return logsumexp(logp + np.log(np.maximum(w, 1e-300)), axis=1)


def stacking(scored: Callable, methods: list[str], default: str | None, unit: str) -> dict:
    """{weights, gate}: the stacking weights over `methods`, and the gate's verdict on whether the stacking beats the
    default out of sample (see the module docstring). scored(left_out) -> {method: densities} with every row's
    lack-of-fit term estimated without budget `left_out` (None: each row's own budget left out)."""
    dens = scored(None)
    methods = [m for m in methods if dens.get(m)]
    if not methods:
        return {"weights": {}, "gate": {"passed": False, "reason": "no method predicted a held-out run"}}
    keys, logp = _matrix(dens, methods)
    per = _key_weights(keys, unit)
    d = methods.index(default) if default in methods else None
    weights = dict(zip(methods, map(float, fit_weights(logp, per, d))))
    if d is None:
        return {"weights": weights, "gate": {"passed": False, "reason": f"the default ({default}) was not scored"}}
    if len(methods) == 1:
        return {"weights": weights, "gate": {"passed": False, "reason": "only the default was scored"}}
    gains = []
    for b in sorted({k[3] for k in keys}, key=str):
        fold = scored(b)
        f_keys, f_logp = _matrix({m: fold[m] for m in methods}, methods)
        inside = np.array([k[3] == b for k in f_keys])
        if len({k[:2] for k, i in zip(f_keys, inside) if not i}) < MIN_GROUPS or not inside.any():
            continue
        w = fit_weights(f_logp[~inside], _key_weights([k for k, i in zip(f_keys, inside) if not i], unit), d)
        p = _key_weights([k for k, i in zip(f_keys, inside) if i], unit)
        gains.append(float(p @ (_mix(f_logp[inside], w) - f_logp[inside, d]) / p.sum()))
    gate = {"folds": len(gains), "gains": gains}
    if len(gains) < MIN_FOLDS_GATE:
        gate.update(passed=False, reason=f"{len(gains)} held-out budget(s) could be left out with {MIN_GROUPS} "
                                         f"held-out groups to weigh on, the gate needs {MIN_FOLDS_GATE}: the backtest "
                                         f"cannot show that a stacking predicts better than {default}")
        return {"weights": weights, "gate": gate}
    g = np.array(gains)
    half = student_t.ppf(0.5 + GATE_LEVEL / 2, g.size - 1) * g.std(ddof=1) / np.sqrt(g.size)
    lo, hi = float(g.mean() - half), float(g.mean() + half)
    gate.update(gain=float(g.mean()), interval=[lo, hi], level=GATE_LEVEL, passed=bool(lo > 0))
    gate["reason"] = (f"the stacking's log score beat {default}'s by {g.mean():.3f} per held-out group, "
                      f"{100 * GATE_LEVEL:.0f}% interval [{lo:.3f}, {hi:.3f}] over {g.size} held-out budgets left "
                      f"out in turn" + ("" if lo > 0 else f": not shown to beat {default}"))
    return {"weights": weights, "gate": gate}


def log_score(dens: dict, unit: str = "budget") -> float:
    """A method's mean log density over the held-out groups it predicted, each group weighed once."""
    if not dens:
        return float("nan")
    keys = sorted(dens, key=str)
    per = _key_weights(keys, unit)
    return float(per @ np.array([dens[k] for k in keys]) / per.sum())


def default_of(result: dict, methods: list[str]) -> str | None:
    """The default law of this fit: the first of FALLBACKS that was fitted, else the first fitted method with an
    L(N, D), else the first fitted method."""
    ok = [m for m in methods if result.get(m, {}).get("status") == "ok"]
    for m in list(FALLBACKS) + [m for m in ok if registry.get(m).loss_at is not None] + ok:
        if m in ok:
            return m
    return None


def recommend(result: dict, methods: list[str], level: float) -> dict:
    """fit.json's "recommended": {default, method (the default, or "stacked"), stacked, stacked_per_run, reason,
    scores: {method: {log_score, budgets, mean_abs_error, furthest}}, weights, weights_per_run, gate,
    gate_per_run}."""
    bt = result.get("backtest") or {}
    unit = bt.get("unit", "budget")
    default = default_of(result, methods)
    ok = [m for m in methods if result.get(m, {}).get("status") == "ok"]
    rows_of = {m: (bt.get("methods", {}).get(m, {}).get("rows", []) if bt.get("status") == "ok" else []) for m in ok}
    lofs = lof_without(rows_of, level)

    def scorer(ms: list[str], best_only: bool) -> Callable:
        def scored(left_out) -> dict:
            return {m: densities(rows_of[m], lambda r, m=m: lof_sd(lofs, m, _budget(r) if left_out is None
                                                                    else left_out), level, best_only) for m in ms}
        return scored

    per_run, best = scorer(ok, False)(None), scorer(ok, True)(None)
    scores = {}
    for m in ok:
        scored = [r for g in _groups(rows_of[m]).values() for r in g]
        far = max(scored, key=lambda r: r["extrapolation"], default=None)
        scores[m] = {"log_score": log_score(per_run[m] or best[m], unit), "budgets": len(_groups(rows_of[m])),
                     "mean_abs_error": float(np.mean([abs(r["rel_error"]) for r in scored])) if scored else None,
                     "furthest": [far["extrapolation"], far["rel_error"]] if far else None}
    ranked = [m for m in ok if scores[m]["budgets"] >= MIN_GROUPS]
    out = {"default": default, "method": default, "stacked": False, "stacked_per_run": False, "scores": scores,
           "weights": {}, "weights_per_run": {}, "gate": None, "gate_per_run": None}
    if default is None:
        return {**out, "reason": "no method was fitted"}
    if not ranked:
        why = (f"the backtest was skipped ({bt.get('reason')})" if bt.get("status") != "ok"
               else f"no method has {MIN_GROUPS} held-out groups in the leave-future-out backtest")
        return {**out, "reason": f"{why}: nothing can show a stacking predicts better, so the default ({default}) is "
                                 f"the answer"}
    at_opt = stacking(scorer(ranked, True), ranked, default, unit)
    laws = [m for m in ranked if registry.get(m).loss_at is not None]
    run = stacking(scorer(laws, False), laws, default, unit)
    c_max = (result.get("data") or {}).get("flops_range", [None, None])[1]
    reach = [1.0, *((result.get("config") or {}).get("extrapolate_to") or [])]
    usable = c_max is None or all(predicts_at(result, m, c_max * x) for m, w in at_opt["weights"].items()
                                  if w >= 0.05 for x in reach)
    stacked = at_opt["gate"]["passed"] and usable
    out.update(weights=at_opt["weights"], weights_per_run=run["weights"], gate=at_opt["gate"],
               gate_per_run=run["gate"], stacked=stacked, stacked_per_run=run["gate"]["passed"],
               method="stacked" if stacked else default)
    if stacked:
        reason = f"a stacking of the laws: {at_opt['gate']['reason']}"
    elif at_opt["gate"]["passed"]:
        reason = (f"the default ({default}): a law the stacking weighs gives no compute-optimal loss at a budget the "
                  f"answer covers")
    else:
        reason = f"the default ({default}): {at_opt['gate']['reason']}"
    return {**out, "reason": reason}


def stack(predictions: dict, weights: dict, level: float) -> dict | None:
    """The weighted mixture of methods' predictive distributions for one run: each a normal in log loss centred on
    its prediction with the sd its PI implies. {predicted, interval, weights} (the point is the mixture's mean in
    log loss); None unless two or more weighted methods predicted it."""
    z = _z(level)
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
        for _ in range(80):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if cdf(mid) < q else (lo, mid)
        return float(np.exp((lo + hi) / 2))

    tail = (1 - level) / 2
    return {"predicted": float(np.exp(sum(w * mu for w, mu, _ in parts))),
            "interval": [quantile(tail), quantile(1 - tail)],
            "weights": {m: round(weights[m] / total, 4) for m, p in predictions.items()
                        if weights.get(m, 0) > 0 and p.get("predicted") and p.get("interval")}}


def verification_method(result: dict, flops: float) -> tuple[str, str]:
    """The method whose compute-optimal (N*, D*) at `flops` a verification run takes, and why: the default law
    unless the stacking is the answer, then the stacking's heaviest method whose fit predicts at `flops`."""
    rec = result.get("recommended") or {}
    if rec.get("stacked"):
        weighted = sorted(((w, m) for m, w in (rec.get("weights") or {}).items()
                           if w > 0 and predicts_at(result, m, flops)), reverse=True)
        if weighted:
            w, m = weighted[0]
            return m, f"the heaviest law of the stacking that is the answer, weight {w:.2f}"
    m = rec.get("default") or rec.get("method")
    if m and m != "stacked" and result.get(m, {}).get("status") == "ok":
        return m, "the default law, the answer"
    return DEFAULT, "the default law"


def predicts_at(result: dict, method: str, flops: float) -> bool:
    """Whether the method's fit gives a finite compute-optimal N* and loss at `flops`."""
    r = result.get(method, {})
    if r.get("status") != "ok":
        return False
    with np.errstate(all="ignore"):
        n, _, loss = allocation.optimum(method, r["params"], float(flops), result["data"]["flops_per_nd"])
    return bool(np.isfinite(n) and n > 0 and np.isfinite(loss))
