"""The fit: run every method on checked runs and assemble fit.json's content."""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Optional

import numpy as np

from sweep.fit import allocation, approach1, approach2, approach3, kaplan
from sweep.fit.bootstrap import percentile_interval, refit, summarize
from sweep.fit.config import FitConfig, FitInputError, MethodSkipped
from sweep.fit.inputs import FitData, group_budgets, prepare

log = logging.getLogger("sweep.fit")


def _run_approach3(data: FitData, cfg: FitConfig) -> dict:
    if data.loss.size <= 5:
        raise MethodSkipped(f"approach 3 has 5 parameters but only {data.loss.size} runs: add runs")
    if np.unique(data.d).size < 2:
        raise MethodSkipped("approach 3 needs runs at several token counts")
    log_n, log_d, log_l = np.log(data.n), np.log(data.d), np.log(data.loss)
    grid = approach3.epoch_grid(cfg.grid_alpha, cfg.grid_beta, cfg.grid_e, cfg.grid_a, cfg.grid_b)
    t0 = time.perf_counter()
    best = approach3.fit_grid(log_n, log_d, log_l, cfg.huber_delta, grid)
    seconds = time.perf_counter() - t0
    point = approach3.natural(best.theta)
    samples = None
    if cfg.n_bootstrap > 0:
        starts = np.vstack([best.theta] + [o[0] for o in best.optima[1:3]])
        boot = approach3.bootstrap(log_n, log_d, log_l, cfg.huber_delta, starts, cfg.n_bootstrap, cfg.seed)
        nat = approach3.lse_to_natural(boot)
        samples = np.column_stack([nat[k] for k in approach3.PARAM_NAMES])
    out = summarize(point, samples, list(approach3.PARAM_NAMES), cfg.interval)
    resid = approach3.objective  # noqa: F841 (kept for readers: residuals below use the same form)
    pred = np.log(allocation.loss_at("approach3", point, data.n, data.d))
    residuals = log_l - pred
    sensitivity = {}
    for factor in (0.1, 10.0):
        th, f = approach3.polish(best.theta, log_n, log_d, log_l, cfg.huber_delta * factor)
        sensitivity[f"delta={cfg.huber_delta * factor:g}"] = approach3.natural(th)
    out["diagnostics"] = {
        "objective": best.objective, "n_starts": best.n_starts, "grid_seconds": round(seconds, 3),
        "distinct_optima": len(best.optima),
        "optima": [{"objective": o[1], "starts": o[2], **approach3.natural(o[0])} for o in best.optima[:5]],
        "delta_sensitivity": sensitivity,
        "residual_rms": float(np.sqrt(np.mean(residuals ** 2))), "residual_max": float(np.max(np.abs(residuals))),
    }
    out["residuals"] = residuals.tolist()
    return out


def _run_regression(module, name: str, data: FitData, cfg: FitConfig) -> dict:
    point = module.fit_point(data, cfg)
    samples = refit(data, lambda sub: module.fit_point(sub, cfg), cfg.n_bootstrap, cfg.seed, module.NAMES)
    out = summarize(point, samples, module.NAMES, cfg.interval)
    if name == "approach1":
        env = point["envelope"]
        out["frontier"] = [int(i) for i in point["frontier"]]
        out["envelope"] = {k: np.asarray(v).tolist() for k, v in env.items()}
        out["diagnostics"] = {"source": point["source"], "envelope_points": int(env["run"].size),
                              "runs_on_envelope": len(out["frontier"]),
                              "sizes_on_envelope": int(np.unique(env["n"]).size)}
    else:
        budgets = point["budgets"]
        out["budgets"] = budgets
        dropped = [b for b in budgets if not b["kept"]]
        out["diagnostics"] = {"budgets": len(budgets), "kept": len(budgets) - len(dropped),
                              "dropped": [{"flops": b["flops"], "reason": b["reason"]} for b in dropped]}
    return out


def _run_kaplan(data: FitData, cfg: FitConfig) -> dict:
    point = kaplan.fit_point(data, cfg)
    start = [point[k] for k in kaplan.NAMES]
    samples = refit(data, lambda sub: kaplan.fit_point(sub, cfg, start=start), cfg.n_bootstrap, cfg.seed, kaplan.NAMES)
    out = summarize(point, samples, kaplan.NAMES, cfg.interval)
    out["natural"] = {"N_c": float(np.exp(point["log_nc"])), "D_c": float(np.exp(point["log_dc"])),
                      "alpha_N": point["alpha_n"], "alpha_D": point["alpha_d"], "E": point["e"]}
    out["single_variable"] = kaplan.single_variable_laws(data, cfg)
    pred = np.log(allocation.loss_at("kaplan", point, data.n, data.d))
    out["residuals"] = (np.log(data.loss) - pred).tolist()
    return out


def run_method(name: str, data: FitData, cfg: FitConfig) -> dict:
    """One method's result dict (status ok), or raise MethodSkipped."""
    if name == "approach3":
        out = _run_approach3(data, cfg)
    elif name == "kaplan":
        out = _run_kaplan(data, cfg)
    else:
        out = _run_regression(approach1 if name == "approach1" else approach2, name, data, cfg)
    a, b = allocation.exponents(name, out["params"])
    out["exponents"] = {"a": float(a), "b": float(b)}
    samples = allocation.sample_params(out)
    if samples is not None:
        sa, sb = allocation.exponents(name, samples)
        out["exponent_intervals"] = {"a": percentile_interval(sa, cfg.interval), "b": percentile_interval(sb, cfg.interval)}
    out["status"] = "ok"
    return out


def report_budgets(data: FitData, cfg: FitConfig) -> list[float]:
    """Budgets for the compute-optimal table: the sampled range's ends and middle, plus the configured ones."""
    lo, hi = np.log10(data.c.min()), np.log10(data.c.max())
    sampled = [10 ** lo, 10 ** ((lo + hi) / 2), 10 ** hi]
    return sorted({float(f"{x:.3g}") for x in sampled} | {float(x) for x in cfg.budgets})


def compare(result: dict, methods: list, budgets: list) -> dict:
    """Side-by-side exponents and tokens/param; flag method pairs whose intervals for a do not overlap."""
    rows, flags = [], []
    for m in methods:
        r = result.get(m, {})
        if r.get("status") != "ok":
            continue
        rows.append({"method": m, "a": r["exponents"]["a"], "b": r["exponents"]["b"],
                     "a_interval": r.get("exponent_intervals", {}).get("a"),
                     "b_interval": r.get("exponent_intervals", {}).get("b"),
                     "tokens_per_param": {str(row["flops"]): row["tokens_per_param"] for row in r["allocation"]}})
    for i, x in enumerate(rows):
        for y in rows[i + 1:]:
            if x["a_interval"] and y["a_interval"]:
                if x["a_interval"][1] < y["a_interval"][0] or y["a_interval"][1] < x["a_interval"][0]:
                    flags.append(f"{x['method']} and {y['method']} disagree on a beyond their intervals "
                                 f"({x['a']:.3f} vs {y['a']:.3f})")
    return {"rows": rows, "disagreements": flags}


def fit_methods(data: FitData, cfg: FitConfig, notes: list) -> dict:
    """Every requested method on data: {method: result or {status: skipped, reason}}."""
    out = {}
    for m in cfg.methods:
        try:
            out[m] = run_method(m, data, cfg)
            out[m]["allocation"] = [allocation.allocation_row(m, out[m], c, data.flops_per_nd, cfg.interval)
                                    for c in report_budgets(data, cfg)]
            if m == "approach1" and cfg.approach1_curves and out[m]["diagnostics"]["source"] == "final":
                notes.append("approach 1: no training curves in the input (tables and W&B summaries carry final "
                             "losses only; a results folder needs each run's metrics.jsonl), so its envelope is the "
                             "compute frontier of final losses, which needs runs at many compute budgets")
        except MethodSkipped as exc:
            out[m] = {"status": "skipped", "reason": str(exc)}
            notes.append(f"{m} skipped: {exc}")
    return out


def compare_conventions(runs, cfg: FitConfig) -> list[dict]:
    """Point fits of every method under each available parameter/FLOP convention, side by side."""
    rows = []
    probe = prepare(runs, cfg, [])
    for p_conv, f_conv in probe.available_conventions:
        sub = dataclasses.replace(cfg, param_convention=p_conv, flop_convention=f_conv, n_bootstrap=0,
                                  compare_conventions=False, backtest=False)
        data = prepare(runs, sub, [])
        res = fit_methods(data, sub, [])
        mid = report_budgets(data, sub)[1]
        row = {"param_convention": p_conv, "flop_convention": f_conv, "reference_flops": mid}
        for m in cfg.methods:
            if res[m].get("status") == "ok":
                n, d, _ = allocation.optimum(m, res[m]["params"], mid, data.flops_per_nd)
                row[m] = {"a": res[m]["exponents"]["a"], "b": res[m]["exponents"]["b"],
                          "tokens_per_param": float(d / n)}
            else:
                row[m] = None
        rows.append(row)
    return rows


def fit(runs, cfg: Optional[FitConfig] = None) -> dict:
    """Fit every configured method to runs (DataFrame or list of dicts); returns fit.json's content."""
    from sweep.fit.backtest import backtest

    cfg = (cfg or FitConfig()).validate()
    notes: list = []
    data = prepare(runs, cfg, notes)
    result: dict = {
        "config": dataclasses.asdict(cfg),
        "data": {"n_runs": int(data.loss.size), "n_branches": data.n_branches, "n_sizes": int(np.unique(data.n).size),
                 "param_convention": cfg.param_convention, "flop_convention": cfg.flop_convention,
                 "flops_per_nd": data.flops_per_nd, "flops_range": [float(data.c.min()), float(data.c.max())],
                 "points": {"name": data.names, "n": data.n.tolist(), "d": data.d.tolist(), "c": data.c.tolist(),
                            "loss": data.loss.tolist(),
                            "budget": group_budgets(data.c, cfg.budget_tolerance).tolist()}},
    }
    if data.curves is not None:
        # Each run's val-loss curve in this fit's FLOP convention, for the loss-vs-compute plot.
        result["data"]["curves"] = [{"c": (cv.tokens * c / d).tolist(), "loss": cv.loss.tolist()}
                                    for cv, c, d in zip(data.curves, data.c, data.d)]
    result.update(fit_methods(data, cfg, notes))
    for m in cfg.methods:  # said here, not in fit_methods: backtest and convention sub-fits skip quietly
        if result[m].get("status") == "skipped":
            log.warning("%s skipped: %s", m, result[m]["reason"])
    for b in result.get("approach2", {}).get("budgets", []):
        if not b["kept"] and b["n_sizes"] >= cfg.min_sizes_per_budget:
            notes.append(f"approach 2: budget {b['flops']:.3g} FLOPs dropped: {b['reason']}")
            log.warning(notes[-1])
    if all(result[m].get("status") != "ok" for m in cfg.methods):
        reasons = "; ".join(f"{m}: {result[m]['reason']}" for m in cfg.methods)
        raise FitInputError(f"no method applies to these {data.loss.size} runs ({reasons})")
    result["comparison"] = compare(result, cfg.methods, report_budgets(data, cfg))
    if cfg.backtest:
        result["backtest"] = backtest(data, cfg)
    if cfg.compare_conventions and len(data.available_conventions) > 1:
        result["conventions"] = compare_conventions(runs, cfg)
    result["warnings"] = notes
    return result
