"""report.md from fit.json's content: one screen with the answer (the verification, the recommended law's
exponents, what to train at 1x, 10x and 100x the largest budget and the loss it will reach, what the runs leave
open, the figures), one row per method, then an appendix with every method's section, the allocation table, the
backtest and the conventions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sweep.fit import lack_of_fit, registry, slices
from sweep.fit.laws import AT_BOUND
from sweep.fit.method import fmt
from sweep.store.results import write_bytes_atomic

EXTRAPOLATION_MARK = 10.0
"""Allocation rows beyond this multiple of the largest fitted compute are marked as far extrapolations."""
BODY_PLOTS = ["scaling.png", "loss_vs_compute.png", "residuals.png"]
"""The figures the first screen embeds; every other figure goes to the appendix."""


def _iv(interval, digits=4) -> str:
    return "" if not interval else f"[{fmt(interval[0], digits)}, {fmt(interval[1], digits)}]"


def render(result: dict, plots: list[str] | None = None) -> str:
    """The markdown report: the first screen (answer_screen), one row per method, then the appendix."""
    plots = list(plots or [])
    lines = answer_screen(result, [p for p in BODY_PLOTS if p in plots]) + method_rows(result)
    lines += ["## Appendix", "", "Everything behind the screen above: the verification against every method, how "
              "the recommended prediction was chosen, each method's parameters, the compute-optimal allocation of "
              "every method, the conventions and the backtest.", ""]
    lines += [("#" + line if line.startswith("#") else line) for line in _appendix(result)]
    rest = [p for p in plots if p not in BODY_PLOTS]
    if rest:
        lines += ["", "### More figures", ""] + [f"![{p}]({p})" for p in rest]
    return "\n".join(lines) + "\n"


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
                   f"an upper end from {lof.get('refits', 'few')} refit(s), not a misfit seen" if lof.get("best") == 0
                   else "a misfit the backtest measured"),
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


def _appendix(result: dict) -> list[str]:
    """Every fact behind the first screen, with the headings at the level render places them."""
    d = result["data"]
    lines = _verification_lines(result.get("verification")) + _recommended_lines(result.get("recommended"), result) + [
        "## Data and intervals", "",
        f"{d['n_runs']} runs ({d['n_branches']} from WSD cooldown branches), {d['n_sizes']} model sizes, "
        f"compute {d['flops_range'][0]:.3g} to {d['flops_range'][1]:.3g} FLOPs; parameters: "
        f"**{d['param_convention']}**, FLOPs: **{d['flop_convention']}** (C = {d['flops_per_nd']:.3g} N D). "
        f"D* = C / ({d['flops_per_nd']:.3g} N*) for every method at every C (the median of C / (N D) over the runs).", "",
        f"Two kinds of {100 * result['config']['interval']:.0f}% interval: **CI** (confidence interval of the law: "
        f"{result['config']['n_bootstrap']} bootstrap refits; where the law's curve is) and **PI** (prediction "
        "interval for one new run: the law's spread, run-to-run noise and, once the within-data backtest has run, "
        "the law's lack of fit at the run's extrapolation; where a run you train will land). "
        + _noise_line(result.get("noise")), ""]
    reps = d.get("replicates") or []
    if reps:
        lines += ["## Seed replicates", "", "Points trained with several seeds; their spread is the run-to-run noise "
                  "the prediction intervals use.", "",
                  "| N | D | C | runs | mean loss | seed sd |", "| --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {r['n']:.4g} | {r['d']:.4g} | {r['c']:.3g} | {r['runs']} | {r['mean_loss']:.4f} | "
                  f"{100 * r['sd_log_loss']:.2f}% |" for r in reps] + [""]
    methods = result["config"]["methods"]
    for m in methods:
        lines += _method_section(m, result)
    if any(result.get(m, {}).get("status") == "ok" for m in methods):
        lines += _compute_optimal_lines(result, methods)
    if result.get("conventions"):
        lines += ["", "## Conventions side by side (point estimates)", "",
                  "| params | FLOPs | method | a | b | tokens/param at C_ref |", "| --- | --- | --- | --- | --- | --- |"]
        for row in result["conventions"]:
            for m in methods:
                v = row.get(m)
                if v:
                    lines.append(f"| {row['param_convention']} | {row['flop_convention']} | {m} | {v['a']:.4g} | "
                                 f"{v['b']:.4g} | {v['tokens_per_param']:.4g} (C={row['reference_flops']:.3g}) |")
    if result.get("single_variable"):
        lines += [""] + slices.report(result["single_variable"])
    lines += _backtest_lines(result.get("backtest"), frozenset(
        m for m in result["config"]["methods"] if result.get(m, {}).get("status") == "skipped"))
    if result.get("warnings"):
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in result["warnings"]]
    return lines


def _method_section(m: str, result: dict) -> list[str]:
    """One method's parameters with their intervals and whether the runs determine each, and its diagnostics."""
    r = result.get(m, {})
    lines = [f"## {registry.get(m).title}", ""]
    if r.get("status") != "ok":
        return lines + [f"Skipped: {r.get('reason')}", ""]
    lines += ["| parameter | value | interval | bootstrap SE | determined? |", "| --- | --- | --- | --- | --- |"]
    fixed = registry.get(m).fixed
    for k, v in r["params"].items():
        iv = r["intervals"].get(k)
        if k in fixed:
            lines.append(f"| {k} | {fmt(v, 6)} | - | - | {fixed[k]} |")
            continue
        lines.append(f"| {k} | {fmt(v, 6)} | {_iv(iv)} | {fmt(r['se'].get(k))} | {undetermined(m, k, v, iv)} |")
    ei = r.get("exponent_intervals", {})
    es = r.get("exponent_se", {})
    for k, label in (("a", "a (N* ∝ C^a)"), ("b", "b (D* ∝ C^b)")):
        v = r["exponents"][k]
        lines.append(f"| {label} | {fmt(v)} | - | - | {fixed[k]} |" if k in fixed else
                     f"| {label} | {fmt(v)} | {_iv(ei.get(k))} | {fmt(es.get(k))} | "
                     f"{undetermined(m, k, v, ei.get(k))} |")
    lines.append("")
    if not r.get("n_resamples") and r.get("bootstrap"):
        lines += [f"No intervals: bootstrap {r['bootstrap']}", ""]
    if r.get("n_resamples"):
        fin = r.get("finite", {})
        lines.append(f"Bootstrap: {r.get('bootstrap', 'runs resampled')}; {r['n_bootstrap_ok']} of {r['n_resamples']} "
                     "resamples gave every parameter finite"
                     + (f" (fewest finite: {min(fin, key=fin.get)}, {min(fin.values())})" if fin else "") + ".")
        lines.append("")
    return lines + registry.get(m).report(r, result)


LOOSE = 0.5
"""An interval wider than this fraction of its value pins the parameter down only loosely (a = 0.56 in [0.34, 0.73]
still allows a compute-optimal N* twice or half as large after a decade of compute)."""


def _compute_optimal_lines(result: dict, methods: list) -> list[str]:
    """The methods side by side, the compute-optimal allocation table and the lack-of-fit terms."""
    lines: list[str] = []
    lines += ["## Side by side", "", "| method | a | interval | b | interval |", "| --- | --- | --- | --- | --- |"]
    for row in result["comparison"]["rows"]:
        fixed = registry.get(row["method"]).fixed
        a_iv, b_iv = (fixed[k] if k in fixed else _iv(row[f"{k}_interval"]) for k in ("a", "b"))
        lines.append(f"| {row['method']} | {fmt(row['a'])} | {a_iv} | {fmt(row['b'])} | {b_iv} |")
    lines.append("")
    for flag in result["comparison"]["disagreements"] or ["No disagreement beyond the intervals."]:
        lines.append(f"- {flag}")
    lines += ["", "## Compute-optimal allocation", "",
              f"Intervals: CI for N*, D*, tokens/param and the law's L*; PI for the loss of a run trained at that (N*, D*). "
              f"**far** marks budgets beyond {EXTRAPOLATION_MARK:g}x the largest fitted compute.", "",
              "PI terms: the sd of log loss each source adds (law: bootstrap spread; noise: run to run; misfit: the law's "
              "lack of fit at this extrapolation, from the within-data backtest), the largest in bold.", "",
              "| method | C (FLOPs) | × fitted C | N* | D* | tokens/param | L* (CI) | new run (PI) | PI terms |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for m in methods:
        for row in result.get(m, {}).get("allocation", []):
            cells = [f"{fmt(row[k]['value'], 3)} {_iv(row[k].get('interval'), 3)}" for k in ("n_star", "d_star", "tokens_per_param", "loss")]
            x = row.get("extrapolation")
            mark = "" if x is None else (f"{x:.3g}" + (" **far**" if x > EXTRAPOLATION_MARK else ""))
            pi = _iv(row["loss"].get("prediction_interval"), 3) or "n/a"
            lines.append(f"| {m} | {row['flops']:.3g} | {mark} | " + " | ".join(cells) + f" | {pi} | "
                         f"{pi_terms(row['loss'].get('pi_terms'))} |")
    terms = {m: result[m]["lack_of_fit"] for m in methods
             if result.get(m, {}).get("status") == "ok" and result[m].get("lack_of_fit")}
    lof_lines = [f"- {m}: " + lack_of_fit_line(lof) for m, lof in terms.items()]
    if lof_lines:
        span = next((result[m]["lack_of_fit"].get("span") for m in methods
                     if (result.get(m, {}).get("lack_of_fit") or {}).get("span")), None)
        lines += ["", "Lack of fit in the PIs: sd = κ ((1 + t)(1 + t + ln S))^(γ/2), t = ln x, at x times the largest "
                      "fitted compute, S the compute span fitted"
                      + (f" ({span:.3g}x here)" if span else "") + ", κ by maximum likelihood from the "
                      "leave-future-out backtest's errors beyond their own PIs (the upper end of its ~68% interval; where a misfit "
                      "was detected, of κ and γ jointly at each x: far out it grows as fast as the backtest does not "
                      "rule out).",
                  ""] + lof_lines + undetected_line(list(terms.values()))
    return lines


def undetected_line(terms: list[dict]) -> list[str]:
    """Where no measured term saw a misfit (best κ 0 for each) the PIs' misfit term is an upper end from a few
    refits, not a misfit seen: a researcher reading a wide PI needs to know that, and that more refits tighten it."""
    measured = [t for t in terms if t.get("n_rows", 0) >= lack_of_fit.MIN_ROWS and t.get("best") is not None]
    if not measured or any(t["best"] > 0 for t in measured):
        return []
    refits = max(t.get("refits", 0) for t in measured)
    return ["", f"No method's backtest detected a misfit (best κ 0 for each), from {refits} refit(s): the κ each PI "
                f"uses is the largest their errors cannot rule out, so far out the misfit term is the backtest's "
                f"uncertainty, not a misfit seen. Budgets beyond the largest fitted compute (each one more refit) "
                f"tighten it."]


SIGNED = {"delta": "no drift: approach 3"}
"""Parameters that may take either sign, with what their 0 means: judged by whether their interval excludes 0."""


def undetermined(method: str, name: str, value, interval) -> str:
    """'yes', or why the runs do not determine the parameter: it sits at its bound, or its interval is wider than
    the value (the data allow anything from about 0 to twice the estimate); 'loosely' when the interval is wider
    than LOOSE of the value."""
    if value is None or value != value:
        return "**no**: not estimated"
    if name in SIGNED:  # 0 is inside its range, not a bound: what the runs say is its sign
        if not interval:
            return "no interval"
        return ("**no**: the interval includes 0 (" + SIGNED[name] + ")" if interval[0] <= 0 <= interval[1] else
                f"its sign: the interval excludes 0 (width {100 * (interval[1] - interval[0]) / abs(value):.0f}% of "
                f"the value)")
    if name not in ("a", "b") and abs(value) < AT_BOUND:
        return "**no**: at its bound 0"
    if interval and interval[1] - interval[0] > abs(value):
        return "**no**: interval wider than the value"
    if interval and interval[1] - interval[0] > LOOSE * abs(value):
        return f"**loosely**: interval {100 * (interval[1] - interval[0]) / abs(value):.0f}% of the value"
    return "yes" if interval else "no interval"


def pi_terms(terms: dict | None) -> str:
    """'law 0.4%, noise 0.3%, **misfit 1.2%**': each term's sd, the dominant one in bold ('misfit not measured'
    where the backtest could not estimate it)."""
    if not terms:
        return "n/a"
    names = {"law": "law", "noise": "noise", "lack_of_fit": "misfit"}
    top = max(terms, key=lambda k: terms[k] or 0.0)
    return ", ".join(f"{names[k]} not measured" if v is None else
                     (f"**{names[k]} {100 * v:.2g}%**" if k == top else f"{names[k]} {100 * v:.2g}%")
                     for k, v in terms.items())


def lack_of_fit_line(lof: dict | None) -> str:
    if not lof:
        return "not estimated"
    if lof["kappa"] <= 0:
        return f"κ = 0 ({lof['source']})"
    term = lack_of_fit.from_dict(lof)
    return (f"κ = {100 * lof['kappa']:.2g}%, γ = {lof.get('gamma', 1.0):.2g} ({lof['source']}); sd at 10x: "
            f"{100 * term.sd(10.0):.2g}%, at 100x: {100 * term.sd(100.0):.2g}%")


def _recommended_lines(rec: dict | None, result: dict) -> list[str]:
    """What the report's predictions lead with (the default law, or the stacking where the backtest showed it
    predicts better), why, the weights the backtest found, and every method's backtest score beside them."""
    if not rec or not rec.get("method"):
        return []
    lines = ["## Recommended prediction", ""]
    default = rec.get("default") or rec["method"]
    if rec.get("stacked"):
        lines += [f"**A stacking of the laws' predictive distributions** (Yao et al. 2018), shrunk toward the default "
                  f"law ({default}): {rec['reason']}."]
    else:
        lines += [f"**{default}**: {rec['reason']}."]
    if len(rec.get("weights") or {}) > 1:
        lines += ["", "The stacking the backtest weighed" + (" (used)" if rec.get("stacked") else " (not used)") + ":",
                  f"- a run at the compute optimum (`sweep verify`): {listed(rec['weights'])};"]
        if rec.get("weights_per_run"):
            lines.append(f"- a run at any N and D (`sweep predict n_params=... n_tokens=...`): "
                         f"{listed(rec['weights_per_run'])}"
                         + (" (used)." if rec.get("stacked_per_run") else " (not used).")
                         + (f" Its gate: {rec['gate_per_run']['reason']}." if rec.get("gate_per_run") else ""))
    lines.append("")
    per_split = (result.get("backtest") or {}).get("unit") == "split"
    lines += ["Every method stays below; the log score is the mean log density of each held-out run's measured loss "
              "under the method's PI (higher is better: small errors with honest intervals), "
              + ("each split of the backtest counted once (a grid without IsoFLOP budgets: its held-out \"budgets\" "
                 "are single runs that share their refit's error)." if per_split else
                 "each held-out budget counted once."), "",
              "| method | log score | held-out budgets | mean abs error | furthest × fitted C: error |",
              "| --- | --- | --- | --- | --- |"]
    for m, sc in rec["scores"].items():
        ls = "n/a" if sc["log_score"] != sc["log_score"] else f"{sc['log_score']:.2f}"
        err = "n/a" if sc["mean_abs_error"] is None else f"{100 * sc['mean_abs_error']:.2f}%"
        far = "n/a" if not sc["furthest"] else f"{sc['furthest'][0]:.3g}x: {100 * sc['furthest'][1]:+.2f}%"
        lines.append(f"| {m}{' (default)' if m == default else ''} | {ls} | {sc['budgets']} | {err} | {far} |")
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


def _verification_lines(v: dict | None) -> list[str]:
    """The report's opening section: the run the fit predicted, trained, against every method's prediction."""
    if not v:
        return []
    lines = ["## Verification, every method", "", f"**{summary_line(v)}**", "",
             f"Run {v['run_name']} ({v['run_id']}): trained by `sweep verify` at {v['flops']:.3g} FLOPs, "
             f"{v['extrapolation']:.3g}x the largest fitted compute"
             + (f", {v['epochs']:.3f} epochs of the corpus" if v.get("epochs", 0) > 1 else "")
             + f", at {v['method']}'s compute-optimal N* and D*"
             + (f" ({v['method_reason']})" if v.get("method_reason") else "") + f". Intervals: {v['interval_kind']}."
             + (f" {v['method']}'s optimum N* = {fmt(v['target_n_params'], 3)} would have needed more passes over the "
                f"corpus than allowed, so the smallest larger shape of the family whose D fits was trained: it tests "
                f"the law's L(N, D), off the predicted optimum." if v.get("corpus_limited") else ""), "",
             "| method | predicted | interval | measured | error | covered | basis |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for m, r in v["methods"].items():
        if r.get("predicted") is None:
            lines.append(f"| {m} | n/a | | {v['measured_loss']:.4f} | | | {r.get('reason') or 'no loss law'} |")
            continue
        iv = r.get("interval")
        cov = "n/a" if r.get("covered") is None else ("yes" if r["covered"] else "**no**")
        lines.append(f"| {m} | {r['predicted']:.4f} | {_iv(iv) or 'n/a'} | {v['measured_loss']:.4f} | "
                     f"{100 * r['rel_error']:+.2f}% | {cov} | {r['basis']}; PI terms: {pi_terms(r.get('pi_terms'))} |")
    return lines + [""]


def _noise_line(nz: dict | None) -> str:
    if not nz:
        return ""
    if nz["dof"] >= 1 and nz["sigma"] == nz["sigma"]:
        if nz["source"].startswith("seed replicates"):
            return (f"Run-to-run noise: sd {100 * nz['sigma']:.2f}% of the loss, from {nz['source']} "
                    f"({nz['dof']} degrees of freedom).")
        if "differenced" in nz["source"]:
            return (f"Noise in the prediction intervals: sd {100 * nz['sigma']:.2f}% of the loss, from {nz['source']}, "
                    f"{nz['dof']} degrees of freedom: the residuals are larger than their run-to-run part, so the "
                    f"excess is the law's misfit, left to the lack-of-fit term. Seed replicates (experiment.seeds) "
                    f"would measure the noise directly.")
        # residuals hold what the law does not fit as well as the seed-to-seed spread: say so
        return (f"Noise in the prediction intervals: sd {100 * nz['sigma']:.2f}% of the loss, the residual scale of "
                f"{nz['source']} ({nz['dof']} degrees of freedom): run-to-run noise plus whatever the law does not fit. "
                f"Seed replicates (experiment.seeds) would measure the run-to-run part alone.")
    return f"No prediction intervals: {nz['source']}."


def _scored_note(bt: dict) -> str:
    if bt.get("scored_runs", bt.get("n_runs")) == bt.get("n_runs"):
        return ""
    return (f" Scored: the {bt['scored_runs']} of {bt['n_runs']} runs in their budget's valley (its best size and "
            f"{bt['window']} sizes each side, fit.parabola_window), where the laws are meant to hold and a next run "
            "would be; the grid's far ends are predicted but not scored.")


def _backtest_lines(bt: dict | None, skipped_in_fit: frozenset = frozenset()) -> list[str]:
    if not bt:
        return []
    lines = ["", "## Backtest", ""]
    if bt["status"] != "ok":
        return lines + [f"Skipped: {bt['reason']}"]
    lines += [f"Refit on part of the {bt['n_budgets']} budgets, predict the held-out runs; scored against the PI. "
              "Leave-future-out fits the budgets below a threshold and predicts every budget from it up (with 6 or "
              "more sizes also the sizes below a cut, predicting the larger ones); "
              "leave-one-out fits all budgets but one. × fitted C: the held-out compute over the largest fitted one. "
              "n/a predictions are counted apart, never as covered." + _scored_note(bt), "",
              "| method | splits | runs scored (n/a) | mean abs rel. error | max abs rel. error | PI coverage | "
              "furthest × fitted C: error |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for m, r in bt["methods"].items():
        if r["status"] != "ok":
            # a method the full fit skipped already has its reason in its own section: said once per report
            why = "skipped, as in the full fit (its section says why)" if m in skipped_in_fit else f"skipped: {r['reason']}"
            lines.append(f"| {m} | {why} | | | | | |")
            continue
        for kind, sm in r["summary"].items():
            if not sm["n"]:
                continue
            cov = "n/a" if sm["coverage"] is None else f"{100 * sm['coverage']:.0f}% of {sm['n_intervals']}"
            far = ("n/a" if sm["max_extrapolation"] is None
                   else f"{sm['max_extrapolation']:.3g}x: {100 * sm['error_at_max_extrapolation']:+.2f}%")
            err = lambda x: "n/a" if x is None else f"{100 * x:.2f}%"  # noqa: E731
            lines.append(f"| {m} | {kind} | {sm['n_scored']} ({sm['n_na']}) | {err(sm['mean_abs_rel_error'])} | "
                         f"{err(sm['max_abs_rel_error'])} | {cov} | {far} |")
    return lines


def write(result: dict, folder: Path, plots: list[str] | None = None) -> Path:
    """Write fit.json and report.md into folder; returns the report's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(folder / "fit.json", json.dumps(result, indent=1, default=float).encode())
    path = folder / "report.md"
    write_bytes_atomic(path, render(result, plots).encode())
    return path
