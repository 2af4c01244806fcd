"""The fit's one answer: what to train at a budget and the loss it will reach, from the recommended prediction.

Every output leads with it (`sweep predict`, `sweep verify`, report.md, the fit's W&B summary), so it is computed
here once. The recommended prediction is the default law unless the backtest showed a stacking of the laws predicts
better (sweep/fit/recommend.py). From the default law the answer is its compute-optimal N*, D* (CI of the law) and
the loss of a new run trained there (PI). From a stacking, N* is the heaviest law's (the run `sweep verify` trains:
the weights were chosen on the loss, which is flat in N near the optimum, so they say little about where N* lies,
and a mixture of the laws' N* can fall between them), with the range of the weighted laws' N* beside it, and the
loss is the stacked prediction of a run at that (N*, D*). A budget where fewer than two weighted laws predict is
answered by the default law, and the row says so.

A PI that has not measured the law's misfit is not an interval: where no backtest measured a lack-of-fit term from
two or more refits, the answer gives the loss without a PI and says why; a term borrowed from another law is named.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from sweep.fit import allocation
from sweep.fit.holdout import predict_run

LOOSE = 0.5
"""An interval wider than this fraction of its value pins the parameter down only loosely (a = 0.56 in [0.34, 0.73]
still allows a compute-optimal N* twice or half as large after a decade of compute)."""


@dataclass(frozen=True)
class Estimate:
    """A value and its interval (None: none could be given; `note` says why)."""

    value: float
    interval: list | None = None
    note: str = ""


@dataclass(frozen=True)
class Allocation:
    """The answer at one compute budget."""

    flops: float
    """The budget C, in the fit's FLOP convention."""
    factor: float
    """C over the largest fitted compute: how far the answer extrapolates."""
    n_params: Estimate
    """N*, with the law's CI."""
    n_tokens: Estimate
    """D* = C / (k N*), with the law's CI."""
    tokens_per_param: Estimate
    """D* / N*, with the law's CI."""
    loss: Estimate
    """The loss of a new run trained at (N*, D*), with its PI (None where the misfit was not measured)."""
    source: str = ""
    """What answered at this budget: the default law's name, or "stacked"."""
    n_params_range: list | None = None
    """With a stacking: the smallest and largest N* of the laws it weighs (0.05 or more)."""


@dataclass(frozen=True)
class Answer:
    """fit.json's "answer"."""

    source: str
    """The default law's name, or "stacked"."""
    why: str
    """One line: why this prediction and not another."""
    level: float
    """The intervals' level."""
    law: str
    """The law whose allocation exponents are given: the default, or the stacking's heaviest law."""
    a: Estimate
    """N* ∝ C^a."""
    b: Estimate
    """D* ∝ C^b."""
    determined: str
    """Whether the runs determine a and b: "yes", "loosely: ..." or "no: ..."."""
    rows: list = field(default_factory=list)
    """Allocation rows at 1x and each of the fit's extrapolation multiples of the largest fitted compute."""
    weights: dict = field(default_factory=dict)
    """The stacking's weights ({} when the default law is the answer)."""

    def as_dict(self) -> dict:
        return asdict(self)


def _est(x: dict) -> Estimate:
    v = float(x.get("value", float("nan")))
    return Estimate(v, list(x["interval"]) if x.get("interval") and np.isfinite(v) else None)


def _misfit(fit: dict, methods) -> tuple[bool, str]:
    """(whether the law's misfit was measured from 2 or more refits, a note naming a term borrowed from another law)."""
    terms = [((fit.get(m) or {}).get("lack_of_fit") or {}) for m in methods]
    ok = any(t.get("n_rows", 0) >= 3 and (t.get("refits") or 0) >= 2 for t in terms)
    pooled = [str(t["source"])[len("pooled from "):].split(":")[0] for t in terms
              if str(t.get("source", "")).startswith("pooled from ")]
    return ok, (f"misfit term borrowed from {', '.join(sorted(set(pooled)))}" if pooled else "")


NO_PI = ("no PI: no backtest measured the law's misfit from 2 or more refits (it needs 4 or more compute budgets), so "
         "an interval would claim what nothing measured")


def at(fit: dict, flops: float) -> Allocation:
    """The recommended prediction's allocation and new-run loss at compute `flops`."""
    rec = fit.get("recommended") or {}
    level = fit["config"]["interval"]
    k = fit["data"]["flops_per_nd"]
    c_max = fit["data"]["flops_range"][1]
    noise = allocation.noise_of(fit)
    x = float(flops / c_max)
    default = rec.get("default") or rec.get("method")
    weights = {m: w for m, w in (rec.get("weights") or {}).items() if w > 0 and fit.get(m, {}).get("status") == "ok"}
    rows = {m: allocation.allocation_row(m, fit[m], float(flops), k, level, noise, extrapolation=x)
            for m in (weights if rec.get("stacked") else [default])}
    rows = {m: r for m, r in rows.items() if np.isfinite(r["n_star"]["value"])}
    stacked = rec.get("stacked") and sum(1 for m in rows if weights[m] > 0) >= 2
    if rec.get("stacked") and not stacked and default in fit and fit[default].get("status") == "ok":
        rows = {default: allocation.allocation_row(default, fit[default], float(flops), k, level, noise, extrapolation=x)}
    if not rows or not all(np.isfinite(r["n_star"]["value"]) for r in rows.values()):
        nan = Estimate(float("nan"), None, "the law gives no compute-optimal allocation here")
        return Allocation(float(flops), x, nan, nan, nan, nan, source=str(default))
    lead = max(rows, key=lambda m: weights.get(m, 0.0)) if stacked else next(iter(rows))
    n = _est(rows[lead]["n_star"])
    spread = sorted(r["n_star"]["value"] for m, r in rows.items() if weights.get(m, 0) >= 0.05) if stacked else []
    d = flops / (k * n.value)
    d_iv = [flops / (k * n.interval[1]), flops / (k * n.interval[0])] if n.interval else None
    tpp_iv = [d_iv[0] / n.interval[1], d_iv[1] / n.interval[0]] if n.interval else None
    if stacked:
        p = predict_run(fit, n.value, d, float(flops), None, at_optimum=True)
        pred = p["methods"].get(p["recommended"] or "", {})
        value, interval = pred.get("predicted"), pred.get("interval")
    else:
        value, interval = rows[lead]["loss"]["value"], rows[lead]["loss"].get("prediction_interval")
    measured, borrowed = _misfit(fit, list(rows))
    if value is None or not np.isfinite(value):
        loss = Estimate(float("nan"), None, "the recommended law gives no loss here")
    elif not measured:
        loss = Estimate(float(value), None, NO_PI)
    else:
        loss = Estimate(float(value), interval, borrowed)
    return Allocation(float(flops), x, n, Estimate(d, d_iv), Estimate(d / n.value, tpp_iv), loss,
                      source="stacked" if stacked else str(lead),
                      n_params_range=[spread[0], spread[-1]] if len(spread) >= 2 else None)


def loss_of_run(fit: dict, n: float, d: float) -> tuple[Estimate, str]:
    """The recommended prediction of a new run's loss at (N, D), and what made it (a law's name or "stacked")."""
    c = float(fit["data"]["flops_per_nd"]) * n * d
    p = predict_run(fit, float(n), float(d), c, None, at_optimum=False)
    lead = p["methods"].get(p["recommended"] or "", {})
    if not lead.get("predicted"):
        return Estimate(float("nan"), None, "no fitted law of N and D predicts this run"), str(p["recommended"])
    methods = [p["recommended"]] if p["recommended"] != "stacked" else list((fit.get("recommended") or {})
                                                                             .get("weights_per_run") or {})
    measured, borrowed = _misfit(fit, methods)
    if not measured:
        return Estimate(float(lead["predicted"]), None, NO_PI), str(p["recommended"])
    return Estimate(float(lead["predicted"]), lead.get("interval"), borrowed), str(p["recommended"])


def determined(value: float, interval) -> str:
    """Whether a parameter is determined by the runs: "yes", "loosely: ..." or "no: ...". A value outside its own
    bootstrap interval is not determined however narrow the interval: the resamples that gave a finite fit do not
    centre on it (typically a fit at the edge of its range that most resamples leave), so the interval describes
    some other fit's uncertainty."""
    if value is None or not np.isfinite(value):
        return "no: not estimated"
    if not interval:
        return "no: no interval"
    if not np.all(np.isfinite(interval)):
        return "no: no finite interval"
    if not interval[0] <= value <= interval[1]:
        return "no: the value is outside its interval, whose resamples do not centre on this fit"
    width = interval[1] - interval[0]
    if width > abs(value):
        return "no: interval wider than the value"
    if width > LOOSE * abs(value):
        return f"loosely: interval {100 * width / abs(value):.0f}% of the value"
    return "yes"


def answer(fit: dict) -> Answer:
    """The fit's answer: the recommended prediction at 1x and at each extrapolation multiple of the largest fitted
    compute, its allocation exponents and why it is the one."""
    rec = fit.get("recommended") or {}
    c_max = fit["data"]["flops_range"][1]
    stacked = bool(rec.get("stacked"))
    weights = {m: w for m, w in (rec.get("weights") or {}).items() if w > 0} if stacked else {}
    law = max(weights, key=weights.get) if weights else (rec.get("default") or rec.get("method"))
    r = fit.get(law) or {}
    ex, ei = r.get("exponents") or {}, r.get("exponent_intervals") or {}
    a = Estimate(float(ex.get("a", float("nan"))), ei.get("a"))
    b = Estimate(float(ex.get("b", float("nan"))), ei.get("b"))
    det_a, det_b = determined(a.value, a.interval), determined(b.value, b.interval)
    worst = next((d for d in (det_a, det_b) if d.startswith("no")), next((d for d in (det_a, det_b) if d != "yes"),
                                                                          "yes"))
    factors = [1.0, *fit["config"].get("extrapolate_to", [10.0, 100.0])]
    return Answer(source="stacked" if stacked else str(law), why=rec.get("reason", ""),
                  level=fit["config"]["interval"], law=str(law), a=a, b=b,
                  determined=worst,
                  rows=[at(fit, c_max * f) for f in factors], weights=weights)


def fmt_estimate(e: dict | Estimate, digits: int = 4) -> str:
    """'1.23e+05 [9.1e+04, 1.6e+05]', 'n/a', or the value alone when there is no interval."""
    e = e if isinstance(e, dict) else asdict(e)
    v = e.get("value")
    if v is None or not np.isfinite(v):
        return "n/a"
    iv = e.get("interval")
    return f"{v:.{digits}g}" + (f" [{iv[0]:.{digits}g}, {iv[1]:.{digits}g}]" if iv else "")


def line(row: dict | Allocation, level: float) -> str:
    """One line of the answer at a budget: C, how far out, N*, D*, tokens/param and the new-run loss."""
    row = row if isinstance(row, dict) else asdict(row)
    loss = row["loss"]
    spread = row.get("n_params_range")
    notes = ([f"N* across the stacked laws {spread[0]:.3g} to {spread[1]:.3g}"] if spread else []) + \
        ([loss["note"]] if loss.get("note") and loss.get("interval") else [])
    return (f"C = {row['flops']:.3g} FLOPs ({row['factor']:.3g}x the largest fitted): "
            f"N* = {fmt_estimate(row['n_params'], 3)}, D* = {fmt_estimate(row['n_tokens'], 3)}, "
            f"tokens/param = {fmt_estimate(row['tokens_per_param'], 3)}, loss = {fmt_estimate(loss)}"
            + (f" ({100 * level:.0f}% PI for a new run)" if loss.get("interval") else
               f" ({loss.get('note') or 'no PI'})") + "".join(f"; {n}" for n in notes))
