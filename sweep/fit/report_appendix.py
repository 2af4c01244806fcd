"""report.md's appendix: the verification against every method, the recommended prediction and the backtest's
scores, the data and intervals, each method's section, the side-by-side and compute-optimal allocation tables, the
lack-of-fit terms, the conventions, the single-variable laws, the backtest and the warnings."""

from __future__ import annotations

from scipy.stats import chi2

from sweep.fit import lack_of_fit, registry, slices
from sweep.fit.answer import determined
from sweep.fit.laws import AT_BOUND
from sweep.fit.method import fmt
from sweep.fit.report_screen import listed, summary_line

EXTRAPOLATION_MARK = 10.0
"""Allocation rows beyond this multiple of the largest fitted compute are marked as far extrapolations."""


def _iv(interval, digits=4) -> str:
    return "" if not interval else f"[{fmt(interval[0], digits)}, {fmt(interval[1], digits)}]"


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
                      + (f" ({span:.3g}x here)" if span else "") + ", from the leave-future-out backtest's "
                      "errors beyond their own PIs: κ² is its posterior mean under their likelihood and a "
                      f"half-normal prior of scale {100 * lack_of_fit.PRIOR_SCALE:.2g}% on κ (a few refits lean on "
                      "the prior); where a misfit was detected (κ = 0 outside its "
                      f"{100 * chi2.cdf(lack_of_fit.DETECT_LR, 1):.0f}% interval) the posterior runs over the "
                      "growths γ in [1, 2] too, so far out the term grows as the growths the backtest cannot tell "
                      "apart do, on average.",
                  ""] + lof_lines + undetected_line(list(terms.values()))
    return lines


def undetected_line(terms: list[dict]) -> list[str]:
    """Where no measured term saw a misfit (best κ 0 for each) the PIs' misfit term is κ's posterior from a few
    refits, mostly its prior, not a misfit seen: a researcher reading a wide PI needs to know that, and that more
    refits tighten it."""
    measured = [t for t in terms if t.get("n_rows", 0) >= lack_of_fit.MIN_ROWS and t.get("best") is not None]
    if not measured or any(t["best"] > 0 for t in measured):
        return []
    refits = max(t.get("refits", 0) for t in measured)
    return ["", f"No method's backtest detected a misfit (best κ 0 for each), from {refits} refit(s): the κ each PI "
                f"uses is its posterior rms under a {100 * lack_of_fit.PRIOR_SCALE:.2g}% half-normal prior, with "
                f"few refits mostly the prior's, so far out the misfit term is the backtest's uncertainty, not a "
                f"misfit seen. Budgets beyond the largest fitted compute (each one more refit) tighten it."]


SIGNED = {"delta": "no drift: approach 3"}
"""Parameters that may take either sign, with what their 0 means: judged by whether their interval excludes 0."""


def undetermined(method: str, name: str, value, interval) -> str:
    """'yes', or why the runs do not determine the parameter: it sits at its bound, its interval is wider than the
    value (the data allow anything from about 0 to twice the estimate) or does not contain it (`answer.determined`);
    'loosely' when the interval is wider than LOOSE of the value."""
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
    if not interval:
        return "no interval"
    verdict, _, why = determined(value, interval).partition(": ")
    return verdict if not why else f"**{verdict}**: {why}"


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
