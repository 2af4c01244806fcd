"""The fit: run every method on checked runs and assemble fit.json's content."""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Optional

import numpy as np

from sweep.fit import allocation, approach1, approach2, approach3, kaplan
from sweep.fit.backtest import SUB_GRID, backtest
from sweep.fit.bootstrap import percentile_interval, summarize
from sweep.fit.config import FitConfig, FitInputError, MethodSkipped
from sweep.fit.inputs import FitData, prepare
from sweep.fit.noise import Noise, from_replicates
from sweep.fit.noise import from_residuals as noise_from_residuals

log = logging.getLogger("sweep.fit")


def _run_approach3(data: FitData, cfg: FitConfig) -> dict:
    _approach3_applies(data)
    log_n, log_d, log_l = np.log(data.n), np.log(data.d), np.log(data.loss)
    grid = approach3.epoch_grid(cfg.grid_alpha, cfg.grid_beta, cfg.grid_e, cfg.grid_a, cfg.grid_b)
    t0 = time.perf_counter()
    best = approach3.fit_grid(log_n, log_d, log_l, cfg.huber_delta, grid)
    seconds = time.perf_counter() - t0
    point = approach3.natural(best.theta)
    samples = None
    starts = best.theta[None, :]
    if cfg.n_bootstrap > 0 and cfg.law_intervals:
        # Warm starts: the best optimum and, for sweeps small enough to afford it, the next two (a resample
        # can move the best basin); on large sweeps every resample stays near the original optimum.
        starts = np.vstack([best.theta] + [o[0] for o in best.optima[1:3 if data.loss.size <= 250 else 1]])
        boot = approach3.bootstrap(log_n, log_d, log_l, cfg.huber_delta, starts, cfg.n_bootstrap, cfg.seed)
        nat = approach3.lse_to_natural(boot)
        samples = np.column_stack([nat[k] for k in approach3.PARAM_NAMES])
    out = summarize(point, samples, list(approach3.PARAM_NAMES), cfg.interval)
    out["bootstrap"] = "runs resampled with replacement"
    residuals = log_l - np.log(allocation.loss_at("approach3", point, data.n, data.d))
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
    nz = from_replicates(data) or noise_from_residuals(residuals, 5, "approach 3")
    out["noise"] = nz.as_dict()
    if cfg.n_bootstrap > 0 and nz.ok:
        boot = approach3.parametric_bootstrap(log_n, log_d, best.theta, nz.sigma, cfg.huber_delta, starts,
                                              min(cfg.n_bootstrap, PI_REFITS), cfg.seed + 1)
        nat = approach3.lse_to_natural(boot)
        out["pi_samples"] = {"names": list(approach3.PARAM_NAMES),
                             "values": np.round(np.column_stack([nat[k] for k in approach3.PARAM_NAMES]), 10).tolist()}
    return out


PI_REFITS = 200
"""Refits on simulated sweeps behind approach 3's prediction intervals: each gets many noise draws, so the
interval's percentiles settle with far fewer refits than the law's confidence intervals need."""
COLLINEAR = 0.05
"""Approach 3 refuses a design whose (log N, log D) cloud is this thin: smallest / largest singular value of
the centred design. One IsoFLOP budget (log N + log D = const) gives about 0; 3 budgets spanning a decade ~0.3."""


def _approach3_applies(data: FitData) -> None:
    """Approach 3 needs N and D varied independently; otherwise E, A, B, alpha and beta trade off freely."""
    if data.loss.size <= 5:
        raise MethodSkipped(f"approach 3 has 5 parameters but only {data.loss.size} runs: add runs")
    n_sizes, n_tokens = np.unique(data.n).size, np.unique(data.d).size
    if n_sizes < 3 or n_tokens < 3:
        raise MethodSkipped(f"approach 3 needs at least 3 distinct N and 3 distinct D (got {n_sizes} and {n_tokens}): "
                            "with fewer, alpha and beta are not identified; add sizes or token counts")
    design = np.column_stack([np.log(data.n), np.log(data.d)])
    sv = np.linalg.svd(design - design.mean(0), compute_uv=False)
    if sv[1] < COLLINEAR * sv[0]:
        raise MethodSkipped(f"approach 3's (log N, log D) design is nearly collinear (singular values {sv[0]:.3g}, "
                            f"{sv[1]:.3g}), as in a single IsoFLOP budget: N and D effects cannot be separated; add "
                            "budgets (or token counts per size)")


def _run_approach1(data: FitData, cfg: FitConfig) -> dict:
    point = approach1.fit_point(data, cfg)
    samples = approach1.bootstrap(data, cfg, cfg.n_bootstrap, cfg.seed)
    out = summarize(point, samples, approach1.NAMES, cfg.interval)
    out["bootstrap"] = "runs resampled with replacement"
    env = point["envelope"]
    out["frontier"] = [int(i) for i in point["frontier"]]
    out["envelope"] = {k: np.asarray(v).tolist() for k, v in env.items()}
    out["diagnostics"] = {"source": point["source"], "envelope_points": int(env["run"].size),
                          "runs_on_envelope": len(out["frontier"]), "sizes_on_envelope": int(np.unique(env["n"]).size)}
    return out


def _run_approach2(data: FitData, cfg: FitConfig) -> dict:
    point = approach2.fit_point(data, cfg)
    nz = approach2.noise(data, cfg)
    samples = approach2.bootstrap(data, cfg, cfg.n_bootstrap, cfg.seed, nz.sigma)
    out = summarize(point, samples, approach2.NAMES, cfg.interval)
    out["bootstrap"] = (f"parametric: every run's loss redrawn with noise sd {nz.sigma:.3g} ({nz.source})"
                        if samples is not None else f"none ({nz.source})")
    out["noise"] = nz.as_dict()
    budgets = point["budgets"]
    out["budgets"] = budgets
    dropped = [b for b in budgets if not b["kept"]]
    out["diagnostics"] = {"budgets": len(budgets), "kept": len(budgets) - len(dropped),
                          "dropped": [{"flops": b["flops"], "reason": b["reason"]} for b in dropped]}
    return out


def _run_kaplan(data: FitData, cfg: FitConfig) -> dict:
    point = kaplan.fit_point(data, cfg)
    samples = kaplan.bootstrap(data, cfg, point, cfg.n_bootstrap, cfg.seed)
    out = summarize(point, samples, kaplan.NAMES, cfg.interval)
    out["bootstrap"] = "runs resampled with replacement"
    out["natural"] = {"N_c": float(np.exp(point["log_nc"])), "D_c": float(np.exp(point["log_dc"])),
                      "alpha_N": point["alpha_n"], "alpha_D": point["alpha_d"], "E": point["e"]}
    out["single_variable"] = kaplan.single_variable_laws(data, cfg)
    residuals = np.log(data.loss) - np.log(allocation.loss_at("kaplan", point, data.n, data.d))
    out["residuals"] = residuals.tolist()
    out["noise"] = noise_from_residuals(residuals, 4 + cfg.kaplan_irreducible, "kaplan").as_dict()
    return out


RUNNERS = {"approach1": _run_approach1, "approach2": _run_approach2, "approach3": _run_approach3,
           "kaplan": _run_kaplan}
"""One function per method: data and options in, the method's section of fit.json out (or MethodSkipped)."""


def run_method(name: str, data: FitData, cfg: FitConfig) -> dict:
    """One method's result dict (status ok), or raise MethodSkipped."""
    out = RUNNERS[name](data, cfg)
    a, b = allocation.exponents(name, out["params"])
    out["exponents"] = {"a": float(a), "b": float(b)}
    samples = allocation.sample_params(out)
    if samples is not None:
        with np.errstate(all="ignore"):
            sa, sb = allocation.exponents(name, samples)
        out["exponent_intervals"] = {"a": percentile_interval(sa, cfg.interval), "b": percentile_interval(sb, cfg.interval)}
        out["exponent_se"] = {"a": _se(sa), "b": _se(sb)}
        out["exponent_finite"] = int(np.sum(np.isfinite(sa)))
    out["status"] = "ok"
    return out


def _se(x: np.ndarray) -> float:
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    return float(np.std(x, ddof=1)) if x.size >= 2 else float("nan")


def sweep_noise(data: FitData, methods: dict) -> Noise:
    """The sweep's run-to-run noise for prediction intervals: seed replicates, else the most flexible law's
    residual scale (approach 3, then approach 2's parabolas, then Kaplan)."""
    rep = from_replicates(data)
    if rep is not None:
        return rep
    for m in ("approach3", "approach2", "kaplan"):
        nz = methods.get(m, {}).get("noise")
        if methods.get(m, {}).get("status") == "ok" and nz and np.isfinite(nz["sigma"]) and nz["dof"] >= 1:
            return Noise(**nz)
    return Noise(sigma=float("nan"), dof=0, source="none: no method left residual degrees of freedom and the sweep "
                                                    "has no seed replicates")


def report_budgets(data: FitData, cfg: FitConfig) -> list[float]:
    """Budgets for the compute-optimal table: the sampled range's ends and middle, plus the configured ones."""
    lo, hi = np.log10(data.c.min()), np.log10(data.c.max())
    sampled = [10 ** lo, 10 ** ((lo + hi) / 2), 10 ** hi]
    return sorted({float(f"{x:.3g}") for x in sampled} | {float(x) for x in cfg.budgets})


def _apart(x: dict, y: dict, ratio: float) -> bool:
    """Two estimates disagree: their intervals do not overlap, or (without intervals) they differ by more than ratio."""
    if not (np.isfinite(x["value"]) and np.isfinite(y["value"])):
        return False
    ix, iy = x.get("interval"), y.get("interval")
    if ix and iy:
        return ix[1] < iy[0] or iy[1] < ix[0]
    return max(x["value"], y["value"]) > ratio * min(x["value"], y["value"])


def compare(result: dict, methods: list, budgets: list) -> dict:
    """Side-by-side exponents and tokens/param; flag method pairs that disagree beyond their intervals on a,
    on tokens/param or on the loss L* at any reported budget."""
    rows, flags = [], []
    ok = [m for m in methods if result.get(m, {}).get("status") == "ok"]
    for m in ok:
        r = result[m]
        rows.append({"method": m, "a": r["exponents"]["a"], "b": r["exponents"]["b"],
                     "a_interval": r.get("exponent_intervals", {}).get("a"),
                     "b_interval": r.get("exponent_intervals", {}).get("b"),
                     "tokens_per_param": {str(row["flops"]): row["tokens_per_param"] for row in r["allocation"]}})
    for i, x in enumerate(ok):
        for y in ok[i + 1:]:
            rx, ry = result[x], result[y]
            ax = {"value": rx["exponents"]["a"], "interval": rx.get("exponent_intervals", {}).get("a")}
            ay = {"value": ry["exponents"]["a"], "interval": ry.get("exponent_intervals", {}).get("a")}
            if ax["interval"] and ay["interval"] and _apart(ax, ay, np.inf):
                flags.append(f"{x} and {y} disagree on a beyond their intervals ({ax['value']:.3f} vs {ay['value']:.3f})")
            for key, what, ratio in (("tokens_per_param", "tokens/param", 1.5), ("loss", "L*", 1.02)):
                apart = [(p["flops"], p[key]["value"], q[key]["value"]) for p, q in zip(rx["allocation"], ry["allocation"])
                         if _apart(p[key], q[key], ratio)]
                if apart:
                    c, vx, vy = apart[-1]
                    flags.append(f"{x} and {y} disagree on {what} at {len(apart)} budget(s), e.g. C = {c:.3g}: "
                                 f"{vx:.4g} vs {vy:.4g}")
    return {"rows": rows, "disagreements": flags}


def fit_methods(data: FitData, cfg: FitConfig, notes: list) -> dict:
    """Every requested method on data: {method: result or {status: skipped, reason}}, plus "noise"."""
    out = {}
    for m in cfg.methods:
        try:
            out[m] = run_method(m, data, cfg)
            if m == "approach1" and cfg.approach1_curves and out[m]["diagnostics"]["source"] == "final":
                notes.append("approach 1: no training curves in the input (tables and W&B summaries carry final "
                             "losses only; a results folder needs each run's metrics.jsonl), so its envelope is each "
                             "budget's best final loss, which needs runs at many compute budgets")
        except MethodSkipped as exc:
            out[m] = {"status": "skipped", "reason": str(exc)}
            notes.append(f"{m} skipped: {exc}")
    nz = sweep_noise(data, out)
    for m in cfg.methods:
        if out[m].get("status") == "ok":
            out[m]["allocation"] = [allocation.allocation_row(m, out[m], c, data.flops_per_nd, cfg.interval, nz,
                                                              extrapolation=c / data.c.max())
                                    for c in report_budgets(data, cfg)]
    out["noise"] = nz.as_dict()
    return out


def compare_conventions(runs, cfg: FitConfig, main: FitData, main_result: dict) -> list[dict]:
    """Point fits of every method under each available parameter/FLOP convention, side by side.

    A convention whose (N, C) equal the main fit's (a table whose flops are 6ND) reuses the main fit; the
    others are point fits from approach 3's coarse grid (backtest.SUB_GRID)."""
    rows = []
    probe = prepare(runs, cfg, [])
    fitted = [(main, main_result)]
    for p_conv, f_conv in probe.available_conventions:
        sub = dataclasses.replace(cfg, param_convention=p_conv, flop_convention=f_conv, n_bootstrap=0,
                                  compare_conventions=False, backtest=False, **SUB_GRID)
        data = prepare(runs, sub, [])
        res = next((r for d, r in fitted if np.allclose(d.n, data.n, rtol=1e-9) and np.allclose(d.c, data.c, rtol=1e-9)),
                   None)
        if res is None:
            res = fit_methods(data, sub, [])
            fitted.append((data, res))
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
                            "budget": data.budget.tolist()},
                 "budget_source": data.budget_source},
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
        result["backtest"] = backtest(data, cfg, fit_methods)
    if cfg.compare_conventions and len(data.available_conventions) > 1:
        result["conventions"] = compare_conventions(runs, cfg, data, result)
    result["warnings"] = notes
    return result
