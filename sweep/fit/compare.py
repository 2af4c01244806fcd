"""Two fits side by side (two corpora, tokenizers or architectures): exponents and the compute multiplier.

The compute multiplier is the number data-quality and architecture studies report: how much less compute
sweep B needs to reach the loss that sweep A's law gives at A's largest budget, both at their own
compute-optimal allocation. Its interval pairs bootstrap resamples of the two independent fits.
"""

from __future__ import annotations

import numpy as np

from sweep.fit import allocation, registry
from sweep.fit.bootstrap import percentile_interval

SEARCH_DECADES = 8.0
"""How far either side of A's largest budget B's equal-loss compute is searched (in decades)."""
GRID = 1601


def equal_loss_compute(method: str, params: dict, target_loss, flops_per_nd: float, around: float) -> np.ndarray:
    """Compute at which the law (point or samples) reaches target_loss at its optimal allocation; NaN where it
    never does within SEARCH_DECADES of `around` (e.g. the target is below its floor E)."""
    log_c = np.linspace(np.log(around) - SEARCH_DECADES * np.log(10), np.log(around) + SEARCH_DECADES * np.log(10), GRID)
    with np.errstate(all="ignore"):
        _, _, loss = allocation.optimum(method, {k: np.asarray(v, float)[..., None] for k, v in params.items()},
                                        np.exp(log_c), flops_per_nd)
    loss = np.atleast_2d(loss)
    target = np.atleast_1d(np.asarray(target_loss, float))[:, None]
    below = loss <= target
    first = np.argmax(below, axis=1)
    found = below.any(axis=1) & (first > 0) & np.isfinite(target[:, 0])
    out = np.full(loss.shape[0], np.nan)
    i = first[found]
    rows = np.flatnonzero(found)
    l0, l1 = loss[rows, i - 1], loss[rows, i]
    t = (l0 - target[rows, 0]) / (l0 - l1)  # linear in log C between the grid points around the crossing
    out[rows] = np.exp(log_c[i - 1] + t * (log_c[i] - log_c[i - 1]))
    return out


def compare_fits(fit_a: dict, fit_b: dict, method: str = "approach3", level: float = 0.95) -> dict:
    """Exponents of every method both fits have, and B's compute multiplier at A's largest budget under `method`."""
    rows = []
    for m in fit_a["config"]["methods"]:
        ra, rb = fit_a.get(m, {}), fit_b.get(m, {})
        if "a" in registry.get(m).fixed:  # the law's form sets its exponents: the same in every fit, not measured
            continue
        if ra.get("status") == "ok" and rb.get("status") == "ok":
            rows.append({"method": m, **{f"{k}_{side}": r["exponents"][k] for k in ("a", "b") for side, r in
                                          (("A", ra), ("B", rb))},
                         **{f"{k}_{side}_interval": r.get("exponent_intervals", {}).get(k) for k in ("a", "b")
                            for side, r in (("A", ra), ("B", rb))}})
    out = {"exponents": rows, "method": method}
    ra, rb = fit_a.get(method, {}), fit_b.get(method, {})
    if ra.get("status") != "ok" or rb.get("status") != "ok":
        out["multiplier"] = {"status": "n/a", "reason": f"{method} is not fitted in both (A: {ra.get('status')}, "
                                                        f"B: {rb.get('status')})"}
        return out
    c_a = fit_a["data"]["flops_range"][1]
    k_a, k_b = fit_a["data"]["flops_per_nd"], fit_b["data"]["flops_per_nd"]
    _, _, target = allocation.optimum(method, ra["params"], c_a, k_a)
    if not np.isfinite(target):
        out["multiplier"] = {"status": "n/a", "reason": f"{method} of A gives no loss at C = {c_a:.3g}"}
        return out
    c_b = equal_loss_compute(method, rb["params"], float(target), k_b, c_a)[0]
    mult = {"status": "ok", "reference_flops": float(c_a), "loss": float(target), "flops_b": float(c_b),
            "value": float(c_a / c_b) if np.isfinite(c_b) else float("nan")}
    if not np.isfinite(c_b):
        mult.update(status="n/a", reason=f"B's law never reaches A's loss {float(target):.4g} within "
                                         f"{SEARCH_DECADES:g} decades of {c_a:.3g} FLOPs (below B's floor E?)")
    sa, sb = allocation.sample_params(ra), allocation.sample_params(rb)
    if sa is not None and sb is not None:
        k = min(len(next(iter(sa.values()))), len(next(iter(sb.values()))))
        sa = {key: v[:k] for key, v in sa.items()}
        sb = {key: v[:k] for key, v in sb.items()}
        with np.errstate(all="ignore"):
            _, _, targets = allocation.optimum(method, sa, c_a, k_a)
        cbs = equal_loss_compute(method, sb, targets, k_b, c_a)
        ratios = c_a / cbs
        finite = np.isfinite(ratios)
        mult["finite"], mult["resamples"] = int(finite.sum()), int(k)
        if finite.sum() >= 2:
            mult["interval"] = percentile_interval(ratios[finite], level)
    out["multiplier"] = mult
    return out


def render(cmp: dict, name_a: str, name_b: str, level: float) -> str:
    """Markdown (also what `sweep compare` prints)."""
    def g(x):
        return "n/a" if x is None or x != x else f"{x:.4g}"

    def iv(x):
        return "" if not x else f" [{g(x[0])}, {g(x[1])}]"

    lines = [f"# {name_b} against {name_a}", "", f"{100 * level:.0f}% bootstrap intervals.", "",
             "| method | a (A) | a (B) | b (A) | b (B) |", "| --- | --- | --- | --- | --- |"]
    for r in cmp["exponents"]:
        lines.append(f"| {r['method']} | {g(r['a_A'])}{iv(r['a_A_interval'])} | {g(r['a_B'])}{iv(r['a_B_interval'])} | "
                     f"{g(r['b_A'])}{iv(r['b_A_interval'])} | {g(r['b_B'])}{iv(r['b_B_interval'])} |")
    m = cmp["multiplier"]
    lines.append("")
    if m["status"] != "ok":
        lines.append(f"Compute multiplier ({cmp['method']}): n/a: {m['reason']}")
    else:
        fin = f", {m['finite']} of {m['resamples']} resamples finite" if "resamples" in m else ""
        lines.append(f"Compute multiplier ({cmp['method']}): **{g(m['value'])}x**{iv(m.get('interval'))}{fin}: "
                     f"B reaches A's loss {m['loss']:.4g} (A's law at its largest budget, {m['reference_flops']:.3g} "
                     f"FLOPs) with {m['flops_b']:.3g} FLOPs. Above 1: B needs less compute.")
    return "\n".join(lines) + "\n"
