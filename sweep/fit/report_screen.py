"""report.md's first screen: the answer (the recommended law's exponents, what to train at 1x, 10x and 100x the
largest budget and the loss it will reach), what the runs leave open and the runs that would settle it, one row per
method, and the verification's one-line summary the report opens with."""

from __future__ import annotations

import numpy as np

from sweep.fit import lack_of_fit, registry
from sweep.fit.method import fmt


def answer_of(result: dict) -> dict | None:
    """fit.json's "answer", computed from the fit when an older fit.json lacks it; None when no compute-optimal
    method applies (a fit of single-variable laws has no allocation to give)."""
    if result.get("answer"):
        return result["answer"]
    if not (result.get("recommended") or {}).get("method"):
        return None
    from sweep.fit.answer import answer

    return answer(result).as_dict()


def _est(e: dict | None, digits: int = 3) -> str:
    """'3.9e+08 [2.7e+08, 4.1e+08]'; 'n/a'; the value alone when there is no interval."""
    if not e or e.get("value") is None or not np.isfinite(e["value"]):
        return "n/a"
    iv = e.get("interval")
    return f"{e['value']:.{digits}g}" + (f" [{iv[0]:.{digits}g}, {iv[1]:.{digits}g}]" if iv else "")


def answer_screen(result: dict, plots: list[str]) -> list[str]:
    """The report's first screen (at most about 40 lines): the verification, the recommended law with a and b and
    whether the runs determine them, N*, D*, tokens/param and a new run's loss at 1x, 10x and 100x the largest
    budget, what the runs leave open and which runs would settle it, and the figures."""
    lines = ["# Scaling-law fit", "", "## Verification", ""]
    v = result.get("verification")
    lines += [f"**{summary_line(v)}**" if v else
              "None yet: `sweep verify flops=...` trains the run this fit predicts, beyond its largest budget, and "
              "scores the prediction below against it.", ""]
    ans = answer_of(result)
    d = result["data"]
    data_line = (f"From {d['n_runs']} runs: {len(_budgets(result))} compute budget(s), {d['flops_range'][0]:.3g} to "
                 f"{d['flops_range'][1]:.3g} FLOPs; {d['n_sizes']} model sizes, "
                 f"{min(d['points']['n']):.3g} to {max(d['points']['n']):.3g} parameters ({d['param_convention']}).")
    if not ans:
        return lines + ["## Answer", "", "No compute-optimal method applies to these runs (the appendix says why for "
                        "each): no allocation to give.", "", data_line, ""] + [f"![{p}]({p})" for p in plots] + [""]
    pct = f"{100 * ans['level']:.0f}%"
    det = ans["determined"]
    said = {"yes": "the runs determine them"}.get(det) or (
        f"the runs determine them only loosely ({det.split(': ', 1)[-1]})" if det.startswith("loosely")
        else f"the runs do **not** determine them ({det.split(': ', 1)[-1]})")
    who = (f"**a stacking of the laws** ({listed(ans['weights'])}); a and b are {ans['law']}'s, its heaviest law"
           if ans["source"] == "stacked" else f"**{ans['law']}**")
    lines += ["## Answer", "",
              f"Recommended: {who}. N* ∝ C^a, a = {_est(ans['a'])}; D* ∝ C^b, b = {_est(ans['b'])} ({pct} CI): "
              f"{said}.", f"Why this prediction: {ans['why'] or 'the only law fitted'}.", "",
              f"| × largest budget | C (FLOPs) | N* ({pct} CI) | D* ({pct} CI) | tokens/param | "
              f"new-run loss ({pct} PI) |", "| --- | --- | --- | --- | --- | --- |"]
    notes = []
    for row in ans["rows"]:
        loss = row["loss"]
        cell = _est(loss, 4)
        if loss.get("value") is not None and np.isfinite(loss["value"]) and not loss.get("interval"):
            cell += " (no PI)"
            notes.append(loss.get("note") or "")
        lines.append(f"| {row['factor']:.3g}x | {row['flops']:.3g} | {_est(row['n_params'])} | "
                     f"{_est(row['n_tokens'])} | {_est(row['tokens_per_param'])} | {cell} |")
    lines += [""] + ([f"No PI: {notes[0].removeprefix('no PI: ')}.", ""] if notes else []) + [data_line, ""]
    lines += ["## Not determined, and the runs that would determine it", ""]
    lines += [f"- {item}" for item in open_questions(result, ans)] + [""]
    if result.get("warnings"):
        lines += [f"{len(result['warnings'])} warning(s): see the appendix.", ""]
    return lines + [f"![{p}]({p})" for p in plots] + ([""] if plots else [])


def _budgets(result: dict) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """Each compute budget of the runs: (its median C, its runs' N sorted, their losses in that order)."""
    pts = result["data"]["points"]
    n, c, loss = (np.asarray(pts[k], float) for k in ("n", "c", "loss"))
    ids = np.asarray(pts.get("budget") or np.zeros(c.size), float)
    out = []
    for b in np.unique(ids):
        m = ids == b
        order = np.argsort(n[m])
        out.append((float(np.median(c[m])), n[m][order], loss[m][order]))
    return sorted(out, key=lambda t: t[0])


def next_runs(result: dict) -> dict:
    """Where the next runs would tell the most: two budgets beyond the largest at the sweep's own compute step,
    each with the sweep's number of sizes at its size spacing, centred on the recommended N* there."""
    from sweep.fit.answer import at

    budgets = _budgets(result)
    cs = [b[0] for b in budgets]
    # the sweep's own step, kept between 2x and a half decade: two budgets far apart say nothing about the next one
    step = float(np.median(np.diff(np.log(cs)))) if len(cs) > 1 else np.log(10 ** 0.5)
    step = float(np.exp(min(max(step, np.log(2.0)), np.log(10 ** 0.5))))
    per = [b[1] for b in budgets if b[1].size > 1]
    spacing = float(np.exp(np.median([np.median(np.diff(np.log(np.unique(s)))) for s in per
                                      if np.unique(s).size > 1] or [np.log(2.0)])))
    k = max(5, int(np.median([np.unique(s).size for s in per])) if per else 5)
    out = {"step": step, "spacing": spacing, "sizes": k, "budgets": []}
    for j in (1, 2):
        c = cs[-1] * step ** j
        n_star = at(result, c).n_params.value
        if not np.isfinite(n_star):
            continue
        half = (k - 1) / 2
        out["budgets"].append({"flops": c, "n_star": n_star, "lo": n_star * spacing ** -half,
                               "hi": n_star * spacing ** half})
    return out


def _valley_edges(result: dict) -> list[str]:
    """Budgets whose minimum sits at or next to the edge of the sizes sampled, or that approach 2 dropped for it:
    the sizes that would close each valley."""
    a2 = result.get("approach2") or {}
    out = []
    for b in a2.get("budgets", []) if a2.get("status") == "ok" else []:
        sizes = np.sort(np.asarray(b.get("sizes") or [], float))
        if sizes.size < 2:
            continue
        step = float(np.median(sizes[1:] / sizes[:-1]))
        reason = b.get("reason") or ""
        if not b.get("kept"):
            side = "below" if "smallest" in reason else "above" if "largest" in reason else "either side of"
            what = "dropped: its minimum at " + ("the smallest size" if side == "below" else "the largest size"
                                                 if side == "above" else reason.split(":")[0] or "an edge")
        elif b.get("n_star") and b["n_star"] < np.sqrt(sizes[0] * sizes[1]):
            side, what = "below", f"minimum {b['n_star']:.3g} by its smallest size"
        elif b.get("n_star") and b["n_star"] > np.sqrt(sizes[-1] * sizes[-2]):
            side, what = "above", f"minimum {b['n_star']:.3g} by its largest size"
        else:
            continue
        new = {"below": [sizes[0] / step, sizes[0] / step ** 2], "above": [sizes[-1] * step, sizes[-1] * step ** 2],
               "either side of": [sizes[0] / step, sizes[-1] * step]}[side]
        edge = {"below": f"{sizes[0]:.3g}", "above": f"{sizes[-1]:.3g}"}.get(side, f"{sizes[0]:.3g}-{sizes[-1]:.3g}")
        out.append(f"budget {b['flops']:.3g} ({what}) needs sizes {side} {edge}, e.g. {new[0]:.3g} and {new[1]:.3g}")
    return out


def _dominant_term(result: dict, law: str, factor: float) -> tuple[str, float] | None:
    """The PI term that dominates the law's new-run loss nearest `factor` x the largest fitted compute."""
    rows = [r for r in (result.get(law) or {}).get("allocation", []) if r.get("extrapolation")]
    if not rows:
        return None
    row = min(rows, key=lambda r: abs(np.log(r["extrapolation"] / factor)))
    terms = {k: v for k, v in (row["loss"].get("pi_terms") or {}).items() if v}
    return max(terms.items(), key=lambda kv: kv[1]) if terms else None


def open_questions(result: dict, ans: dict) -> list[str]:
    """What the runs leave undetermined, each with the runs that would settle it, said from the data: which
    budgets (beyond the largest, at the sweep's step) and which sizes (either side of the valleys)."""
    nxt = next_runs(result)
    where = "; ".join(f"{b['flops']:.3g} FLOPs: N* ≈ {b['n_star']:.3g}, sizes {b['lo']:.3g} to {b['hi']:.3g}"
                      for b in nxt["budgets"])
    runs = (f"{len(nxt['budgets'])} budget(s) beyond the largest, {nxt['step']:.3g}x apart, "
            f"{nxt['sizes']} sizes each {nxt['spacing']:.3g}x apart around the recommended N* ({where})")
    items = []
    if ans["determined"] != "yes":
        items.append(f"a and b: {ans['determined']} ({len(_budgets(result))} budget(s) over "
                     f"{np.log10(result['data']['flops_range'][1] / result['data']['flops_range'][0]):.2g} decade(s) "
                     f"of compute). More budgets narrow them: {runs}.")
        runs = "the budgets above"
    if any(not r["loss"].get("interval") and np.isfinite(r["loss"].get("value") or np.nan) for r in ans["rows"]):
        items.append(f"the new-run loss has no PI: nothing measured the law's misfit out of sample; with 3 or more "
                     f"budgets the backtest does ({runs}).")
        runs = "the budgets above"
    far = max(ans["rows"], key=lambda r: r["factor"])
    top = _dominant_term(result, ans["law"], far["factor"])
    if top and far["loss"].get("interval"):
        iv = far["loss"]["interval"]
        lof = (result.get(ans["law"]) or {}).get("lack_of_fit") or {}
        why = {"lack_of_fit": "the law's misfit term, " + (
                   f"κ's posterior from {lof.get('refits', 'few')} refit(s) that saw none, with few refits mostly "
                   f"its {100 * lack_of_fit.PRIOR_SCALE:.2g}% prior"
                   if lof.get("best") == 0 else "a misfit the backtest measured"),
               "law": "the law's own uncertainty (bootstrap spread)",
               "noise": "run-to-run noise (seed replicates measure it)"}.get(top[0], top[0])
        items.append(f"the loss at {far['factor']:.3g}x: its PI [{iv[0]:.4g}, {iv[1]:.4g}] is mostly {why} "
                     f"(sd {100 * top[1]:.2g}%); each budget beyond the largest is one more backtest refit "
                     f"({runs}).")
        runs = "the budgets above"
    edges = _valley_edges(result)
    if edges:  # a few named, the rest counted: approach 2's section in the appendix lists every budget
        items.append(f"{len(edges)} IsoFLOP valley(s) open at an edge of their sizes: " + "; ".join(edges[:3])
                     + (f"; and {len(edges) - 3} more (approach 2's section)" if len(edges) > 3 else "") + ".")
    dis = (result.get("comparison") or {}).get("disagreements") or []
    if dis:
        items.append(f"the methods disagree beyond their intervals ({len(dis)} flag(s), the appendix lists them): "
                     f"{dis[0]}")
    if not items or runs != "the budgets above":
        items.append(("nothing above is left open by these runs; what they cannot test is the extrapolation "
                      "itself. " if not items else "to test the extrapolation: ") + runs[0].upper() + runs[1:] + ".")
    return items


def method_rows(result: dict) -> list[str]:
    """One row per method: its exponents, the loss it gives a new run at the first extrapolation, its backtest."""
    methods = result["config"]["methods"]
    factor = next((f for f in result["config"].get("extrapolate_to") or [] if f > 1), None)
    rec = result.get("recommended") or {}
    ans = answer_of(result) or {}
    pct = f"{100 * result['config']['interval']:.0f}%"
    lines = ["## Methods", "", "Each method's full section is in the appendix. Backtest: mean abs error on held-out "
             "budgets, and at the furthest × fitted C.", "",
             f"| method | a ({pct} CI) | b ({pct} CI) | loss at {factor or 1:g}x ({pct} PI) | backtest |",
             "| --- | --- | --- | --- | --- |"]
    for m in methods:
        r = result.get(m, {})
        w = (ans.get("weights") or {}).get(m)
        name = m + (" (recommended)" if m == ans.get("source") else f" (weight {w:.2f})" if w else "")
        if r.get("status") != "ok":
            lines.append(f"| {name} | skipped | | | |")
            continue
        fixed = registry.get(m).fixed
        ab = [fixed[k] if k in fixed else _est({"value": r["exponents"][k],
                                                 "interval": (r.get("exponent_intervals") or {}).get(k)})
              for k in ("a", "b")]
        rows = [x for x in r.get("allocation", []) if x.get("extrapolation")]
        loss = "n/a"
        if rows and factor:
            row = min(rows, key=lambda x: abs(np.log(x["extrapolation"] / factor)))
            measured = ((r.get("lack_of_fit") or {}).get("n_rows") or 0) >= lack_of_fit.MIN_ROWS
            # as in the answer: a PI without a measured misfit term claims what nothing measured
            loss = _est({"value": row["loss"]["value"],
                         "interval": row["loss"].get("prediction_interval") if measured else None}, 4)
            loss += "" if measured or loss == "n/a" else " (no PI)"
        sc = (rec.get("scores") or {}).get(m) or {}
        bt = "n/a" if sc.get("mean_abs_error") is None else f"{100 * sc['mean_abs_error']:.2f}%" + (
            f"; {sc['furthest'][0]:.3g}x: {100 * sc['furthest'][1]:+.2f}%" if sc.get("furthest") else "")
        lines.append(f"| {name} | {ab[0]} | {ab[1]} | {loss} | {bt} |")
    return lines + [""]


def listed(weights: dict) -> str:
    """Stacking weights, largest first: 'kaplan 0.51, approach3 0.49'; those under 0.005 (the prior's floor, see
    recommend.PRIOR) counted, not listed: 'approach3 0.97, kaplan 0.02, 3 more under 0.005'."""
    shown = [f"{m} {w:.2f}" for m, w in sorted(weights.items(), key=lambda kv: -kv[1]) if w >= 0.005]
    rest = sum(w < 0.005 for w in weights.values())
    return ", ".join(shown + ([f"{rest} more under 0.005"] if rest else []))


def summary_line(v: dict) -> str:
    """The line report.md opens with: the recommended method's prediction when the fit has one."""
    lead = v.get("recommended") or v["method"]
    m = v["methods"].get(lead, {})
    if m.get("predicted") is None and lead != v["method"]:
        lead, m = v["method"], v["methods"].get(v["method"], {})
    if m.get("predicted") is None:
        return (f"Verification at {v['extrapolation']:.3g}x the largest fitted compute: measured {v['measured_loss']:.4f}; "
                f"{lead} gives no prediction ({m.get('reason', 'no loss law')}).")
    iv = m.get("interval")
    return (f"Verification at {v['extrapolation']:.3g}x the largest fitted compute ({v['flops']:.3g} FLOPs, "
            f"N = {fmt(v['n_params'], 3)}, D = {fmt(v['n_tokens'], 3)}): {lead}"
            f"{' (recommended)' if lead == v.get('recommended') else ''} predicted {m['predicted']:.4f}"
            + (f" [{iv[0]:.4f}, {iv[1]:.4f}] ({100 * v['interval_level']:.0f}% PI)" if iv else " (no interval)")
            + f", measured {v['measured_loss']:.4f}: error {100 * m['rel_error']:+.2f}%"
            + ("" if m.get("covered") is None else ("; inside the interval" if m["covered"] else "; OUTSIDE the interval"))
            + ".")
