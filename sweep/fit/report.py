"""report.md from fit.json's content: per-method tables, side by side, compute-optimal budgets, backtest, diagnostics."""

from __future__ import annotations

import json
from pathlib import Path

TITLES = {"approach1": "Chinchilla approach 1 (lowest loss at each compute)", "approach2": "Chinchilla approach 2 (IsoFLOP parabolas)",
          "approach3": "Chinchilla approach 3 (L = E + A/N^α + B/D^β)", "kaplan": "Kaplan et al. 2020 (joint L(N, D))"}
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
             f"Intervals: {100 * result['config']['interval']:.0f}% bootstrap percentile, "
             f"{result['config']['n_bootstrap']} resamples over runs.", ""]
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
        lines.append(f"| a (N* ∝ C^a) | {_g(r['exponents']['a'])} | {_iv(ei.get('a'))} | |")
        lines.append(f"| b (D* ∝ C^b) | {_g(r['exponents']['b'])} | {_iv(ei.get('b'))} | |")
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
                             "so only runs that beat every cheaper run count; this needs many compute budgets.")
            lines.append("")
        if m == "approach2":
            diag = r["diagnostics"]
            lines.append(f"Budgets: {diag['kept']} kept of {diag['budgets']}.")
            few = [b for b in diag["dropped"] if "size(s)" in b["reason"]]
            if few:
                lines.append(f"- {len(few)} budget(s) with too few sizes for a parabola")
            for b in diag["dropped"]:
                if b not in few:
                    lines.append(f"- dropped {b['flops']:.3g} FLOPs: {b['reason']}")
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
              "| method | C (FLOPs) | N* | D* | tokens/param | loss |", "| --- | --- | --- | --- | --- | --- |"]
    for m in methods:
        for row in result.get(m, {}).get("allocation", []):
            cells = [f"{_g(row[k]['value'], 3)} {_iv(row[k].get('interval'), 3)}" for k in ("n_star", "d_star", "tokens_per_param", "loss")]
            lines.append(f"| {m} | {row['flops']:.3g} | " + " | ".join(cells) + " |")
    if result.get("conventions"):
        lines += ["", "## Conventions side by side (point estimates)", "",
                  "| params | FLOPs | method | a | b | tokens/param at C_ref |", "| --- | --- | --- | --- | --- | --- |"]
        for row in result["conventions"]:
            for m in methods:
                v = row.get(m)
                if v:
                    lines.append(f"| {row['param_convention']} | {row['flop_convention']} | {m} | {v['a']:.4g} | "
                                 f"{v['b']:.4g} | {v['tokens_per_param']:.4g} (C={row['reference_flops']:.3g}) |")
    bt = result.get("backtest")
    if bt:
        lines += ["", "## Backtest", ""]
        if bt["status"] != "ok":
            lines.append(f"Skipped: {bt['reason']}")
        else:
            lines += [f"Fitted on {bt['n_train']} runs below {bt['threshold']:.3g} FLOPs, predicted {bt['n_test']} above.", "",
                      "| method | mean abs rel. error | max abs rel. error | interval coverage |", "| --- | --- | --- | --- |"]
            for m, r in bt["methods"].items():
                if r["status"] == "ok":
                    cov = "n/a" if r["coverage"] is None else f"{100 * r['coverage']:.0f}%"
                    lines.append(f"| {m} | {100 * r['mean_abs_rel_error']:.3f}% | {100 * r['max_abs_rel_error']:.3f}% | {cov} |")
                else:
                    lines.append(f"| {m} | skipped: {r['reason']} | | |")
    if result.get("warnings"):
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in result["warnings"]]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def write(result: dict, folder: Path, plots: list[str] | None = None) -> Path:
    """Write fit.json and report.md into folder; returns the report's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fit.json").write_text(json.dumps(result, indent=1, default=float))
    path = folder / "report.md"
    path.write_text(render(result, plots))
    return path
