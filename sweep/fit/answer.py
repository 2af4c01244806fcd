"""The fit's one answer: what to train at a budget and the loss it will reach, from the recommended prediction.

Every output leads with it (`sweep predict`, `sweep verify`, report.md, the fit's W&B summary), so it is computed
here once. The recommended prediction is the default law unless the backtest showed a stacking of the laws predicts
better (sweep/fit/recommend.py). From the default law the answer is its compute-optimal N*, D* (CI of the law) and
the loss of a new run trained there (PI). From a stacking, N* is the weighted mixture of the laws' N* (the mean of
log N*, and the mixture's quantiles of their intervals), D* = C / (k N*), and the loss the stacked prediction of a
run at that (N*, D*).

A PI that has not measured the law's misfit is not an interval: where no backtest measured a lack-of-fit term, the
answer gives the loss without a PI and says why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from sweep.fit import allocation
from sweep.fit.holdout import predict_run
from sweep.fit.recommend import stack

LOOSE = 0.5
"""An exponent's interval wider than this fraction of its value determines it only loosely."""


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


def _misfit_measured(fit: dict, methods) -> bool:
    return any(((fit.get(m) or {}).get("lack_of_fit") or {}).get("n_rows", 0) >= 3 for m in methods)


def at(fit: dict, flops: float) -> Allocation:
    """The recommended prediction's allocation and new-run loss at compute `flops`."""
    rec = fit.get("recommended") or {}
    level = fit["config"]["interval"]
    k = fit["data"]["flops_per_nd"]
    c_max = fit["data"]["flops_range"][1]
    noise = allocation.noise_of(fit)
    x = float(flops / c_max)
    weights = {m: w for m, w in (rec.get("weights") or {}).items() if w > 0 and fit.get(m, {}).get("status") == "ok"}
    laws = list(weights) if rec.get("stacked") else [rec.get("default") or rec.get("method")]
    rows = {m: allocation.allocation_row(m, fit[m], float(flops), k, level, noise, extrapolation=x) for m in laws}
    rows = {m: r for m, r in rows.items() if np.isfinite(r["n_star"]["value"])}
    if not rows:
        nan = Estimate(float("nan"), None, "the law gives no compute-optimal allocation here")
        return Allocation(float(flops), x, nan, nan, nan, nan)
    if len(rows) == 1:
        (m, row), = rows.items()
        n = _est(row["n_star"])
    else:
        mixed = stack({m: {"predicted": r["n_star"]["value"], "interval": r["n_star"].get("interval")}
                       for m, r in rows.items()}, weights, level)
        heaviest = max(rows, key=lambda m: weights[m])
        n = Estimate(mixed["predicted"], mixed["interval"]) if mixed else _est(rows[heaviest]["n_star"])
    d = flops / (k * n.value)
    d_iv = [flops / (k * n.interval[1]), flops / (k * n.interval[0])] if n.interval else None
    tpp_iv = [d_iv[0] / n.interval[1], d_iv[1] / n.interval[0]] if n.interval else None
    p = predict_run(fit, n.value, d, float(flops), None, at_optimum=True)
    lead = p["methods"].get(p["recommended"] or "", {})
    value = lead.get("predicted")
    if value is None:
        loss = Estimate(float("nan"), None, "the recommended law gives no loss here")
    elif not _misfit_measured(fit, laws):
        loss = Estimate(float(value), None, "no PI: no backtest measured the law's misfit (it needs 3 or more compute "
                                            "budgets), so an interval would claim what nothing measured")
    else:
        loss = Estimate(float(value), lead.get("interval"))
    return Allocation(float(flops), x, n, Estimate(d, d_iv), Estimate(d / n.value, tpp_iv), loss)


def loss_of_run(fit: dict, n: float, d: float) -> tuple[Estimate, str]:
    """The recommended prediction of a new run's loss at (N, D), and what made it (a law's name or "stacked")."""
    c = float(fit["data"]["flops_per_nd"]) * n * d
    p = predict_run(fit, float(n), float(d), c, None, at_optimum=False)
    lead = p["methods"].get(p["recommended"] or "", {})
    if not lead.get("predicted"):
        return Estimate(float("nan"), None, "no fitted law of N and D predicts this run"), str(p["recommended"])
    methods = [p["recommended"]] if p["recommended"] != "stacked" else list((fit.get("recommended") or {})
                                                                             .get("weights_per_run") or {})
    if not _misfit_measured(fit, methods):
        return Estimate(float(lead["predicted"]), None, "no PI: no backtest measured the law's misfit"), \
            str(p["recommended"])
    return Estimate(float(lead["predicted"]), lead.get("interval")), str(p["recommended"])


def determined(value: float, interval) -> str:
    """Whether an exponent is determined by the runs: "yes", "loosely: ..." or "no: ..."."""
    if value is None or not np.isfinite(value):
        return "no: not estimated"
    if not interval:
        return "no: no interval"
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
    return (f"C = {row['flops']:.3g} FLOPs ({row['factor']:.3g}x the largest fitted): "
            f"N* = {fmt_estimate(row['n_params'], 3)}, D* = {fmt_estimate(row['n_tokens'], 3)}, "
            f"tokens/param = {fmt_estimate(row['tokens_per_param'], 3)}, loss = {fmt_estimate(loss)}"
            + (f" ({100 * level:.0f}% PI for a new run)" if loss.get("interval") else
               f" ({loss.get('note') or 'no PI'})"))
