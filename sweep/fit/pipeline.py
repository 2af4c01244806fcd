"""The fit: run every method on checked runs and assemble fit.json's content."""

from __future__ import annotations

import dataclasses
import logging
from typing import Optional

import numpy as np

from sweep.fit import allocation, lack_of_fit, registry, slices
from sweep.fit.backtest import SUB_GRID, backtest
from sweep.fit.bootstrap import percentile_interval
from sweep.fit.config import FitConfig, FitInputError, MethodSkipped
from sweep.fit.inputs import FitData, prepare
from sweep.fit.method import MethodFit
from sweep.fit.noise import Noise, from_replicates
from sweep.fit.answer import answer
from sweep.fit.recommend import recommend

log = logging.getLogger("sweep.fit")


def run_method(name: str, fitted: MethodFit, cfg: FitConfig) -> dict:
    """Method `name`'s fit.json section (status ok) from its fit: the fit's section, the allocation exponents and
    (from its samples as fit.json stores them) their intervals."""
    out = fitted.section()
    a, b = allocation.exponents(name, out["params"])
    out["exponents"] = {"a": float(a), "b": float(b)}
    samples = allocation.sample_params(out)
    if samples is not None and "a" not in registry.get(name).fixed:
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
    """The sweep's run-to-run noise for prediction intervals: seed replicates, else the residual scale of the
    method that ranks first (Method.noise_priority: approach 3, then approach 2's parabolas, then Kaplan)."""
    rep = from_replicates(data)
    if rep is not None:
        return rep
    ranked = sorted((m for m in registry.METHODS.values() if m.noise_priority is not None), key=lambda m: m.noise_priority)
    for m in (m.name for m in ranked):
        nz = methods.get(m, {}).get("noise")
        if methods.get(m, {}).get("status") == "ok" and nz and np.isfinite(nz["sigma"]) and nz["dof"] >= 1:
            return Noise(**nz)
    return Noise(sigma=float("nan"), dof=0, source="none: no method left residual degrees of freedom and the sweep "
                                                    "has no seed replicates")


def replicate_table(data: FitData) -> list[dict]:
    """Per point trained more than once (seeds): N, D, runs, mean loss and the sd of log loss (~ relative sd)."""
    rows = []
    for g in np.unique(data.replicate):
        m = data.replicate == g
        if m.sum() >= 2:
            ll = np.log(data.loss[m])
            rows.append({"n": float(data.n[m][0]), "d": float(data.d[m][0]), "c": float(np.median(data.c[m])),
                         "runs": int(m.sum()), "mean_loss": float(data.loss[m].mean()), "sd_log_loss": float(ll.std(ddof=1))})
    return sorted(rows, key=lambda r: (r["c"], r["n"]))


def report_budgets(data: FitData, cfg: FitConfig) -> list[float]:
    """Budgets for the compute-optimal table: the sampled range's ends and middle, the extrapolation multiples of
    its largest compute (cfg.extrapolate_to), plus the configured ones."""
    lo, hi = np.log10(data.c.min()), np.log10(data.c.max())
    sampled = [10 ** lo, 10 ** ((lo + hi) / 2), 10 ** hi] + [10 ** hi * k for k in cfg.extrapolate_to]
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
            fitted = registry.get(m).fit(data, cfg)
            out[m] = run_method(m, fitted, cfg)
            notes += fitted.notes
        except MethodSkipped as exc:
            out[m] = {"status": "skipped", "reason": str(exc)}
            # why is said once, by the method's own section of the report and its row of the console table
            notes.append(f"{m} skipped (its section of the report says why)")
    nz = sweep_noise(data, out)
    for m in cfg.methods:
        if out[m].get("status") == "ok":
            out[m]["allocation"] = [allocation.allocation_row(m, out[m], c, data.flops_per_nd, cfg.interval, nz,
                                                              extrapolation=c / data.c.max())
                                    for c in report_budgets(data, cfg)]
    out["noise"] = nz.as_dict()
    return out


def add_lack_of_fit(result: dict, data: FitData, cfg: FitConfig) -> None:
    """Each method's lack-of-fit term from its leave-future-out backtest, and its allocation rows again with it. A
    method whose misfit its backtest could not measure takes the pointwise largest of the terms measured by the
    methods that could (pooled): its PI then claims no more than the other laws' misses allow."""
    bt = result["backtest"]
    nz = Noise(**result["noise"])
    span = float(data.c.max() / data.c.min())
    terms = {}
    for m in cfg.methods:
        if result[m].get("status") != "ok":
            continue
        rows = bt.get("methods", {}).get(m, {}).get("rows", []) if bt.get("status") == "ok" else []
        terms[m] = lack_of_fit.estimate(rows, cfg.interval, span=span)
    measured = {m: t for m, t in terms.items() if t.measured}
    for m, lof in terms.items():
        if bt.get("status") != "ok":
            lof = dataclasses.replace(lof, source=f"not estimated: the backtest was skipped ({bt.get('reason')}); the "
                                                  f"interval has no lack-of-fit term")
        elif not lof.measured and measured:
            lof = lack_of_fit.pooled(list(measured.values()), f"pooled from {', '.join(measured)}: {m}'s backtest "
                                                              f"could not measure it ({lof.source}); the pointwise "
                                                              f"largest of their terms is used")
        result[m]["lack_of_fit"] = lof.as_dict()
        result[m]["allocation"] = [allocation.allocation_row(m, result[m], c, data.flops_per_nd, cfg.interval, nz,
                                                             extrapolation=c / data.c.max())
                                   for c in report_budgets(data, cfg)]


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


def conclude(result: dict, data: FitData, cfg: FitConfig) -> None:
    """What the fit concludes from its methods' fits and their backtest: each method's lack-of-fit term (and its
    allocation rows again with it), the recommended prediction and the answer. Nothing before it depends on them, so a
    study of these rules can re-run this alone on stored fits (scripts/check_coverage.py --cache)."""
    if cfg.backtest:
        add_lack_of_fit(result, data, cfg)
    result["recommended"] = recommend(result, cfg.methods, cfg.interval)
    result["answer"] = answer(result).as_dict()


def fit(runs, cfg: Optional[FitConfig] = None) -> dict:
    """Fit every configured method to runs (DataFrame or list of dicts); returns fit.json's content."""
    cfg = (cfg or FitConfig()).validate()
    cfg = dataclasses.replace(cfg, methods=list(cfg.methods or registry.defaults()))
    for m in cfg.methods:
        registry.get(m)  # an unknown name fails here, before any fitting
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
                 "budget_source": data.budget_source, "replicates": replicate_table(data)},
    }
    if data.curves is not None:
        # Each run's val-loss curve in this fit's FLOP convention, for the loss-vs-compute plot.
        result["data"]["curves"] = [{"c": (cv.tokens * c / d).tolist(), "loss": cv.loss.tolist()}
                                    for cv, c, d in zip(data.curves, data.c, data.d)]
    before = len(notes)
    result.update(fit_methods(data, cfg, notes))
    for note in notes[before:]:  # said here, not in fit_methods: backtest and convention sub-fits stay quiet
        log.warning(note)
    if "kaplan" in cfg.methods:  # Kaplan's single-variable laws go with his method
        result["single_variable"] = slices.single_variable_laws(data, cfg)
    if all(result[m].get("status") != "ok" for m in cfg.methods):
        if not any(law["status"] == "ok" for law in result.get("single_variable", {}).values()):
            if np.unique(data.n).size < 2:
                raise FitInputError(f"only one model size ({data.n[0]:.3g} parameters): a scaling law needs runs at "
                                    f"several sizes (or, for L(D) alone, at {3 + cfg.kaplan_irreducible} or more token "
                                    f"counts)")
            reasons = "; ".join(f"{m}: {result[m]['reason']}" for m in cfg.methods)
            raise FitInputError(f"no method applies to these {data.loss.size} runs ({reasons})")
        # a Kaplan-style sweep (sizes at one D, or one size at several D): its single-variable laws are the fit
        note = ("no compute-optimal method applies to these runs (each method's section says why); the fit is the "
                "single-variable laws: " + ", ".join(k for k, law in result["single_variable"].items()
                                                     if law["status"] == "ok"))
        log.warning(note)
        notes.append(note)
        result.update(comparison={"rows": [], "disagreements": []},
                      backtest={"status": "skipped", "reason": "no compute-optimal method applies"},
                      recommended={"method": None, "reason": "no compute-optimal method applies", "scores": {}})
        result["warnings"] = notes
        return result
    result["comparison"] = compare(result, cfg.methods, report_budgets(data, cfg))
    result["backtest"] = backtest(data, cfg, fit_methods) if cfg.backtest else \
        {"status": "skipped", "reason": "fit.backtest=false"}
    conclude(result, data, cfg)
    if cfg.compare_conventions and len(data.available_conventions) > 1:
        result["conventions"] = compare_conventions(runs, cfg, data, result)
    result["warnings"] = notes
    return result
