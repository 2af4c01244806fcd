"""Chinchilla approach 2: per compute budget a parabola of loss in log N; vertices regressed on C.

Every step is vectorised over rows of losses, so the point fit is one row and the bootstrap is a batch:
the bootstrap is parametric (Porian et al.): each run's loss is redrawn with the sweep's run-to-run noise
(from seed replicates, else from the parabolas' residuals) and everything is refitted. Resampling runs
instead would drop sizes from budgets and budgets from the fit, widening the interval on a with a spread that
comes from the resampled design, not from the sweep's noise.
"""

from __future__ import annotations

import numpy as np

from sweep.fit.config import FitConfig, MethodSkipped
from sweep.fit.noise import Noise, from_replicates
from sweep.fit.method import Method, MethodFit, fmt
from sweep.fit.powerlaw import (FRONTIER_NAMES, frontier_exponents, frontier_optimum, loss_laws, no_law_lines,
                                weighted_line)

NAMES = FRONTIER_NAMES


def _size_means(data, m: np.ndarray, loss: np.ndarray):
    """Distinct log sizes of one budget and each row's mean loss per size (replicates averaged): (m,), (S, m)."""
    ln = np.log(data.n[m])
    sizes, inv = np.unique(ln, return_inverse=True)
    onehot = np.zeros((ln.size, sizes.size))
    onehot[np.arange(ln.size), inv.ravel()] = 1.0
    return sizes, (loss[:, m] @ onehot) / onehot.sum(0)


def budget_vertices(data, loss: np.ndarray, min_sizes: int, window: int) -> dict:
    """Each budget's parabola vertex for every row of losses (S, P).

    The window counts sizes, not rows: a budget's best size and `window` sizes each side (0: all sizes).
    Returns flops (B,), log_n_star, log_d_star, loss_star, kept (S, B), the window residuals relative to
    the fitted loss (row 0 only; their degrees of freedom), and per-budget records of row 0 with the
    reason a budget was dropped.
    """
    loss = np.atleast_2d(loss)
    n_rows = loss.shape[0]
    ids = np.unique(data.budget)
    shape = (n_rows, ids.size)
    log_n, log_d, loss_star = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    kept = np.zeros(shape, dtype=bool)
    flops, records, resid, dof = np.empty(ids.size), [], [], 0
    for j, bid in enumerate(ids):
        m = data.budget == bid
        flops[j] = float(np.exp(np.mean(np.log(data.c[m]))))
        sizes, y = _size_means(data, m, loss)
        rec = {"flops": flops[j], "n_runs": int(m.sum()), "n_sizes": int(sizes.size), "kept": False, "reason": ""}
        records.append(rec)
        if sizes.size < min_sizes:
            rec["reason"] = f"{sizes.size} size(s), needs {min_sizes}"
            continue
        rec["log_n_range"] = [float(sizes[0]), float(sizes[-1])]
        rec["sizes"] = np.exp(sizes).tolist()
        best = np.argmin(y, axis=1)
        lo = np.maximum(0, best - window) if window > 0 else np.zeros_like(best)
        hi = np.minimum(sizes.size, best + window + 1) if window > 0 else np.full_like(best, sizes.size)
        coef = np.full((n_rows, 3), np.nan)
        # A parabola is only a local model of loss vs log N: fitting it to sizes far from the
        # minimum tilts the vertex.
        for l0, h0 in set(zip(lo.tolist(), hi.tolist())):
            rows = np.flatnonzero((lo == l0) & (hi == h0))
            x = sizes[l0:h0] - sizes[l0:h0].mean()  # centred: better conditioned, shifted back below
            sol = np.linalg.lstsq(np.vander(x, 3), y[rows, l0:h0].T, rcond=None)[0].T
            c2, c1, c0 = sol[:, 0], sol[:, 1], sol[:, 2]
            shift = sizes[l0:h0].mean()
            coef[rows] = np.column_stack([c2, c1 - 2 * c2 * shift, c0 - c1 * shift + c2 * shift ** 2])
        with np.errstate(divide="ignore", invalid="ignore"):
            vertex = -coef[:, 1] / (2 * coef[:, 0])
        edge = (best == 0) | (best == sizes.size - 1)
        ok = ~edge & (coef[:, 0] > 0) & (vertex >= sizes[0]) & (vertex <= sizes[-1])
        ln_all, ld_all = np.log(data.n[m]), np.log(data.d[m])
        slope, icpt = np.polyfit(ln_all, ld_all, 1) if sizes.size > 1 else (0.0, ld_all.mean())
        log_n[:, j] = np.where(ok, vertex, np.nan)
        log_d[:, j] = np.where(ok, icpt + slope * vertex, np.nan)
        loss_star[:, j] = np.where(ok, coef[:, 0] * vertex ** 2 + coef[:, 1] * vertex + coef[:, 2], np.nan)
        kept[:, j] = ok
        rec["fit_range"] = [float(sizes[lo[0]]), float(sizes[hi[0] - 1])]
        rec["sizes_used"] = int(hi[0] - lo[0])
        rec["coef"] = coef[0].tolist()
        if edge[0]:
            side, fix = (("smallest", "add smaller models to this budget") if best[0] == 0
                         else ("largest", "add larger models to this budget"))
            rec["reason"] = f"minimum at the edge of the sampled sizes (the {side}): {fix}"
        elif not coef[0, 0] > 0:
            rec["reason"] = "parabola opens downward"
        elif not ok[0]:
            rec["reason"] = "vertex outside the sampled sizes"
        else:
            rec.update(kept=True, n_star=float(np.exp(vertex[0])), d_star=float(np.exp(log_d[0, j])),
                       loss_star=float(loss_star[0, j]))
        if ok[0] and hi[0] - lo[0] > 3:
            xs = sizes[lo[0]:hi[0]]
            fitted = np.polyval(coef[0], xs)
            resid.extend(((y[0, lo[0]:hi[0]] - fitted) / fitted).tolist())
            dof += xs.size - 3
    return {"flops": flops, "log_n_star": log_n, "log_d_star": log_d, "loss_star": loss_star, "kept": kept,
            "records": records, "residuals": np.array(resid), "dof": dof}


def _regress(v: dict, cfg: FitConfig) -> np.ndarray:
    """(S, 7) parameters from each row's kept vertices: log N* and log D* on log C, and L*(C)."""
    kept = v["kept"] & np.isfinite(v["log_n_star"])
    lc = np.broadcast_to(np.log(v["flops"]), kept.shape)
    w = kept.astype(float)
    a, n_log0 = weighted_line(lc, np.where(kept, v["log_n_star"], 0.0), w)
    b, d_log0 = weighted_line(lc, np.where(kept, v["log_d_star"], 0.0), w)
    few = kept.sum(1) < 2
    out = np.column_stack([n_log0, a, d_log0, b, np.full((kept.shape[0], 3), np.nan)])
    out[few] = np.nan
    xs = [v["flops"][k] for k in kept]
    ys = [v["loss_star"][i, k] for i, k in enumerate(kept)]
    out[:, 4:] = loss_laws(xs, ys, cfg)  # n/a from fewer than cfg.loss_law_min_points budgets
    return out


def noise(data, v: dict) -> Noise:
    """Run-to-run noise (relative) for the parametric bootstrap: seed replicates, else the residuals of the
    point fit's parabolas (v: its budget_vertices)."""
    rep = from_replicates(data)
    if rep is not None:
        return rep
    r = v["residuals"]
    if v["dof"] < 1:
        return Noise(sigma=float("nan"), dof=0, source="none: no budget has more sizes in its window than a parabola has "
                     "parameters, and no seed replicates")
    return Noise(sigma=float(np.sqrt(np.sum(r ** 2) / v["dof"])), dof=int(v["dof"]), source="parabola residuals")


def fit_point(data, cfg: FitConfig) -> dict:
    """Regress log N* and log D* of the kept budgets on log C; fit the vertex losses L*(C)."""
    v = budget_vertices(data, data.loss[None, :], cfg.min_sizes_per_budget, cfg.parabola_window)
    budgets = v["records"]
    kept = [b for b in budgets if b["kept"]]
    if not any(b["n_sizes"] >= cfg.min_sizes_per_budget for b in budgets):
        how = ("the planner's budget_index" if data.budget_source == "planner"
               else f"runs within budget_tolerance={cfg.budget_tolerance} of each other's compute")
        raise MethodSkipped(f"no compute budget has {cfg.min_sizes_per_budget} model sizes (budgets by {how}): "
                            "approach 2 needs IsoFLOP sweeps")
    if len(kept) < 2:
        dropped = "; ".join(f"{b['flops']:.3g}: {b['reason']}" for b in budgets if not b["kept"])
        raise MethodSkipped(f"{len(kept)} usable budget(s), approach 2 needs 2 (dropped {dropped}); "
                            "add sizes on both sides of each budget's minimum")
    p = _regress(v, cfg)[0]
    return {**dict(zip(NAMES, map(float, p))), "budgets": budgets, "noise": noise(data, v)}


def bootstrap(data, cfg: FitConfig, n_boot: int, seed: int, sigma: float) -> np.ndarray | None:
    """(n_boot, 7) parameters refitted on losses redrawn as loss * exp(sigma z); rows that failed are NaN."""
    if n_boot <= 0 or not np.isfinite(sigma):
        return None
    rng = np.random.default_rng(seed)
    loss = data.loss[None, :] * np.exp(sigma * rng.standard_normal((n_boot, data.loss.size)))
    v = budget_vertices(data, loss, cfg.min_sizes_per_budget, cfg.parabola_window)
    return _regress(v, cfg)


def run(data, cfg: FitConfig) -> MethodFit:
    """Approach 2's fit: the point fit, the parametric bootstrap and the per-budget records (extra "budgets")."""
    point = fit_point(data, cfg)
    nz = point["noise"]
    samples = bootstrap(data, cfg, cfg.n_bootstrap, cfg.seed, nz.sigma)
    budgets = point["budgets"]
    dropped = [b for b in budgets if not b["kept"]]
    return MethodFit.summarized(
        point, samples, NAMES, cfg.interval, noise=nz,
        bootstrap=(f"parametric: every run's loss redrawn with noise sd {nz.sigma:.3g} ({nz.source})"
                   if samples is not None else "not run: " + nz.source.removeprefix("none: ")),
        diagnostics={"budgets": len(budgets), "kept": len(budgets) - len(dropped),
                     "dropped": [{"flops": b["flops"], "reason": b["reason"]} for b in dropped]},
        notes=[f"approach 2: budget {b['flops']:.3g} FLOPs dropped: {b['reason']}" for b in dropped
               if b["n_sizes"] >= cfg.min_sizes_per_budget],
        extra={"budgets": budgets})


def report(r: dict, fit: dict) -> list:
    diag = r["diagnostics"]
    lines = no_law_lines(r) + [
        f"Budgets: {diag['kept']} kept of {diag['budgets']} "
        f"(grouped by {'the planner' if fit['data'].get('budget_source') == 'planner' else 'compute'}).", "",
        "| budget C | runs | sizes | sizes in parabola | N* (vertex) | L* (vertex) | kept / why dropped |",
        "| --- | --- | --- | --- | --- | --- | --- |"]
    for b in r["budgets"]:
        lines.append(f"| {b['flops']:.3g} | {b['n_runs']} | {b['n_sizes']} | {b.get('sizes_used', '')} | "
                     f"{fmt(b.get('n_star'), 3)} | {fmt(b.get('loss_star'))} | {'kept' if b['kept'] else b['reason']} |")
    return lines + [""]


METHOD = Method(name="approach2", title="Chinchilla approach 2 (IsoFLOP parabolas)", color="tab:orange", fit=run,
                exponents=frontier_exponents, optimum=frontier_optimum, report=report, noise_priority=1)
