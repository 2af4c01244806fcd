"""report.md from fit.json's content: per-method tables, side by side, compute-optimal budgets, backtest, diagnostics."""

from __future__ import annotations

import json
from pathlib import Path

TITLES = {"approach1": "Chinchilla approach 1 (lowest loss at each compute)", "approach2": "Chinchilla approach 2 (IsoFLOP parabolas)",
          "approach3": "Chinchilla approach 3 (L = E + A/N^α + B/D^β)", "kaplan": "Kaplan et al. 2020 (joint L(N, D) + E)"}
EXTRAPOLATION_MARK = 10.0
"""Allocation rows beyond this multiple of the largest fitted compute are marked as far extrapolations."""
PLOTS = ["isoflop.png", "loss_vs_compute.png", "optimal_allocation.png", "loss_vs_params.png", "residuals.png"]


def _g(x, digits=4) -> str:
    return "n/a" if x is None or x != x else f"{x:.{digits}g}"  # x != x: NaN, a law that was not fitted


def _iv(interval, digits=4) -> str:
    return "" if not interval else f"[{_g(interval[0], digits)}, {_g(interval[1], digits)}]"


def render(result: dict, plots: list[str] | None = None) -> str:
    """The markdown report."""
    d = result["data"]
    lines = ["# Scaling-law fit", "",
             f"{d['n_runs']} runs ({d['n_branches']} from WSD cooldown branches), {d['n_sizes']} model sizes, "
             f"compute {d['flops_range'][0]:.3g} to {d['flops_range'][1]:.3g} FLOPs; parameters: "
             f"**{d['param_convention']}**, FLOPs: **{d['flop_convention']}** (C = {d['flops_per_nd']:.3g} N D). "
             f"D* = C / ({d['flops_per_nd']:.3g} N*) for every method at every C (the median of C / (N D) over the runs).", "",
             f"Two kinds of {100 * result['config']['interval']:.0f}% interval: **CI** (confidence interval of the law: "
             f"{result['config']['n_bootstrap']} bootstrap refits; where the law's curve is) and **PI** (prediction "
             "interval for one new run: the law's spread plus run-to-run noise; where a run you train will land). "
             + _noise_line(result.get("noise")), ""]
    if "kaplan" in result["config"]["methods"] and result["config"].get("kaplan_irreducible", True):
        lines += ["Kaplan's law is fitted with an irreducible term E (Kaplan et al. 2020 have none): "
                  "`fit.kaplan_irreducible=false` fits their form.", ""]
    methods = result["config"]["methods"]
    for m in methods:
        r = result.get(m, {})
        lines += [f"## {TITLES[m]}", ""]
        if r.get("status") != "ok":
            lines += [f"Skipped: {r.get('reason')}", ""]
            continue
        lines += ["| parameter | value | interval | bootstrap SE |", "| --- | --- | --- | --- |"]
        for k, v in r["params"].items():
            lines.append(f"| {k} | {_g(v, 6)} | {_iv(r['intervals'].get(k))} | {_g(r['se'].get(k))} |")
        ei = r.get("exponent_intervals", {})
        es = r.get("exponent_se", {})
        lines.append(f"| a (N* ∝ C^a) | {_g(r['exponents']['a'])} | {_iv(ei.get('a'))} | {_g(es.get('a'))} |")
        lines.append(f"| b (D* ∝ C^b) | {_g(r['exponents']['b'])} | {_iv(ei.get('b'))} | {_g(es.get('b'))} |")
        lines.append("")
        if r.get("n_resamples"):
            fin = r.get("finite", {})
            lines.append(f"Bootstrap: {r.get('bootstrap', 'runs resampled')}; {r['n_bootstrap_ok']} of {r['n_resamples']} "
                         "resamples gave every parameter finite"
                         + (f" (fewest finite: {min(fin, key=fin.get)}, {min(fin.values())})" if fin else "") + ".")
            lines.append("")
        if m == "kaplan":
            for name, law in r.get("single_variable", {}).items():
                if law["status"] == "ok":
                    lines.append(f"- {name}: x_c = {law['x_c']:.4g}, α = {law['alpha']:.4g}, E = {law['E']:.4g} "
                                 f"({law['n_points']} points)")
                else:
                    lines.append(f"- {name}: skipped ({law['reason']})")
            lines.append("")
        if m == "approach1" and "diagnostics" in r:
            diag = r["diagnostics"]
            if diag["source"] == "curves":
                lines.append(f"Envelope of the runs' val-loss curves (Hoffmann et al.): at each of {diag['envelope_points']} "
                             f"log-spaced FLOP values, the run with the lowest log-log interpolated loss; "
                             f"{diag['runs_on_envelope']} runs ({diag['sizes_on_envelope']} sizes) are on it. "
                             "Intermediate points are mid-schedule (learning rate not yet decayed), so they sit above "
                             "what a run of that length would reach: between the ends of runs the envelope overstates "
                             "the loss and favours runs whose schedule ends near that compute.")
            else:
                lines.append(f"Frontier of final losses ({diag['runs_on_envelope']} runs): no training curves were used, "
                             "so the envelope is each budget's best run (kept when it beats every cheaper budget's best); "
                             "N* per budget is then one of the sampled sizes, so a needs many budgets.")
            lines.append("")
        if m in ("approach1", "approach2") and r["params"]["loss_e"] != r["params"]["loss_e"]:
            lines.append("L*(C) n/a: the loss law E + (C_c/C)^α needs 4 or more points and a fitted floor E > 0 "
                         "to extrapolate; without a floor it falls toward zero loss. Approach 3 predicts losses here.")
            lines.append("")
        if m == "approach2":
            diag = r["diagnostics"]
            lines += [f"Budgets: {diag['kept']} kept of {diag['budgets']} "
                      f"(grouped by {'the planner' if result['data'].get('budget_source') == 'planner' else 'compute'}).", "",
                      "| budget C | runs | sizes | sizes in parabola | N* (vertex) | L* (vertex) | kept / why dropped |",
                      "| --- | --- | --- | --- | --- | --- | --- |"]
            for b in r["budgets"]:
                lines.append(f"| {b['flops']:.3g} | {b['n_runs']} | {b['n_sizes']} | {b.get('sizes_used', '')} | "
                             f"{_g(b.get('n_star'), 3)} | {_g(b.get('loss_star'))} | "
                             f"{'kept' if b['kept'] else b['reason']} |")
            lines.append("")
        if m == "approach3":
            diag = r["diagnostics"]
            lines.append(f"Grid: {diag['n_starts']} starts in {diag['grid_seconds']} s; objective {diag['objective']:.6g}; "
                         f"{diag['distinct_optima']} distinct optima near the best (objective, starts): "
                         + ", ".join(f"{o['objective']:.5g} ({o['starts']})" for o in diag["optima"][:4]) + ".")
            lines.append("Sensitivity to the Huber δ: " + "; ".join(
                f"{k}: α={v['alpha']:.4g}, β={v['beta']:.4g}, E={v['E']:.4g}" for k, v in diag["delta_sensitivity"].items()))
            lines.append(f"Residuals (log loss): rms {diag['residual_rms']:.4g}, max {diag['residual_max']:.4g}.")
            lines.append("")
    lines += ["## Side by side", "", "| method | a | interval | b | interval |", "| --- | --- | --- | --- | --- |"]
    for row in result["comparison"]["rows"]:
        lines.append(f"| {row['method']} | {_g(row['a'])} | {_iv(row['a_interval'])} | {_g(row['b'])} | {_iv(row['b_interval'])} |")
    lines.append("")
    for flag in result["comparison"]["disagreements"] or ["No disagreement beyond the intervals."]:
        lines.append(f"- {flag}")
    lines += ["", "## Compute-optimal allocation", "",
              f"Intervals: CI for N*, D*, tokens/param and the law's L*; PI for the loss of a run trained at that (N*, D*). "
              f"**far** marks budgets beyond {EXTRAPOLATION_MARK:g}x the largest fitted compute.", "",
              "| method | C (FLOPs) | × fitted C | N* | D* | tokens/param | L* (CI) | new run (PI) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for m in methods:
        for row in result.get(m, {}).get("allocation", []):
            cells = [f"{_g(row[k]['value'], 3)} {_iv(row[k].get('interval'), 3)}" for k in ("n_star", "d_star", "tokens_per_param", "loss")]
            x = row.get("extrapolation")
            mark = "" if x is None else (f"{x:.3g}" + (" **far**" if x > EXTRAPOLATION_MARK else ""))
            pi = _iv(row["loss"].get("prediction_interval"), 3) or "n/a"
            lines.append(f"| {m} | {row['flops']:.3g} | {mark} | " + " | ".join(cells) + f" | {pi} |")
    if result.get("conventions"):
        lines += ["", "## Conventions side by side (point estimates)", "",
                  "| params | FLOPs | method | a | b | tokens/param at C_ref |", "| --- | --- | --- | --- | --- | --- |"]
        for row in result["conventions"]:
            for m in methods:
                v = row.get(m)
                if v:
                    lines.append(f"| {row['param_convention']} | {row['flop_convention']} | {m} | {v['a']:.4g} | "
                                 f"{v['b']:.4g} | {v['tokens_per_param']:.4g} (C={row['reference_flops']:.3g}) |")
    lines += _backtest_lines(result.get("backtest"))
    if result.get("warnings"):
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in result["warnings"]]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def _noise_line(nz: dict | None) -> str:
    if not nz:
        return ""
    if nz["dof"] >= 1 and nz["sigma"] == nz["sigma"]:
        return (f"Run-to-run noise: sd {100 * nz['sigma']:.2f}% of the loss, from {nz['source']} "
                f"({nz['dof']} degrees of freedom).")
    return f"No prediction intervals: {nz['source']}."


def _backtest_lines(bt: dict | None) -> list[str]:
    if not bt:
        return []
    lines = ["", "## Backtest", ""]
    if bt["status"] != "ok":
        return lines + [f"Skipped: {bt['reason']}"]
    lines += [f"Refit on part of the {bt['n_budgets']} budgets, predict the held-out runs; scored against the PI. "
              "Leave-future-out fits the budgets below a threshold and predicts every budget from it up; "
              "leave-one-out fits all budgets but one. × fitted C: the held-out compute over the largest fitted one. "
              "n/a predictions are counted apart, never as covered.", "",
              "| method | splits | runs scored (n/a) | mean abs rel. error | max abs rel. error | PI coverage | "
              "furthest × fitted C: error |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for m, r in bt["methods"].items():
        if r["status"] != "ok":
            lines.append(f"| {m} | skipped: {r['reason']} | | | | | |")
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
    (folder / "fit.json").write_text(json.dumps(result, indent=1, default=float))
    path = folder / "report.md"
    path.write_text(render(result, plots))
    return path
