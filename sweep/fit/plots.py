"""PNG plots of a fit (matplotlib, Agg backend), drawn from fit.json's content alone.

The first screen of report.md embeds three: scaling.png (Chinchilla's figure 3: the IsoFLOP curves, N*(C) and
D*(C) with the recommended law), loss_vs_compute.png (the runs and the recommended prediction of a new run's
loss) and residuals.png (the recommended law's misfit per run). The others compare the methods (appendix).
Every legend sits outside the axes, beside or below them, so that no legend hides a run or a curve; compute axes
end at the allocation table's last budget.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sweep.fit import allocation, registry

log = logging.getLogger("sweep.fit")
COLORS = {name: m.color for name, m in registry.METHODS.items()}
VERIFY = dict(marker="*", color="red", ms=13, ls="none", mec="k", mew=0.5, zorder=5)
"""The verification run's marker, the same in every figure."""
EXTRAPOLATION = dict(color="0.92", zorder=-2)
"""The shading of what lies beyond the fitted runs."""
MAX_BUDGET_LABELS = 8
"""Budgets named one by one in a legend; beyond this many (Epoch's table has dozens) the legend gives the colour
scale's ends and the largest misses instead, and stays shorter than the figure."""


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@dataclass
class _Fit:
    """What every plot reads: fit.json's content as arrays, and where the figures go."""

    result: dict
    folder: Path
    written: list = field(default_factory=list)

    def __post_init__(self):
        from sweep.fit.report import answer_of

        pts = self.result["data"]["points"]
        self.n, self.d, self.c, self.loss = (np.asarray(pts[k], float) for k in ("n", "d", "c", "loss"))
        self.budget = np.asarray(pts.get("budget") or np.zeros(self.c.size), int)
        self.plt = _plt()
        self.answer = answer_of(self.result)
        self.last = _last_budget(self)
        self.cs = np.logspace(np.log10(self.c.min()), np.log10(self.last), 40)
        self._curve = None

    def save(self, fig, name: str) -> None:
        # the figures' constrained layout makes room for the legends outside the axes
        fig.savefig(self.folder / name, dpi=110)
        self.plt.close(fig)
        self.written.append(name)

    def unpack(self) -> tuple:
        r = self.result
        ok = [m for m in r["config"]["methods"] if r.get(m, {}).get("status") == "ok"]
        return (self.plt, r, self.n, self.d, self.c, self.loss, r["data"]["flops_per_nd"], r["config"]["interval"], ok,
                self.budget, np.unique(self.budget), self.save)

    def answer_curve(self) -> list[dict]:
        """The recommended prediction (sweep.fit.answer.at) at each compute of the grid, computed once."""
        if self._curve is None:
            from dataclasses import asdict

            from sweep.fit.answer import at

            self._curve = [asdict(at(self.result, float(c))) for c in self.cs] if self.answer else []
        return self._curve

    def xlim(self, ax) -> None:
        """A compute axis from just below the smallest run to the allocation table's last budget."""
        ax.set_xlim(self.c.min() / 1.3, self.last)

    def figure(self, ncols: int, width: float, height: float, below: bool = False):
        """A row of panels; with `below`, an empty axes under each to hold its legend (legend_below): one grid row,
        so the panels stay aligned whatever their legends' lengths, and the layout makes room for each legend."""
        fig = self.plt.figure(figsize=(width * ncols, height), layout="constrained")
        gs = fig.add_gridspec(2 if below else 1, ncols, height_ratios=[1, 0.02] if below else [1])
        axes = [fig.add_subplot(gs[0, i]) for i in range(ncols)]
        holders = [fig.add_subplot(gs[1, i]) for i in range(ncols)] if below else None
        for h in holders or []:
            h.axis("off")
        return fig, axes, holders


def _last_budget(x: _Fit) -> float:
    """The allocation table's last budget (the answer's rows and every method's), or the furthest asked for."""
    r = x.result
    rows = [row["flops"] for m in r["config"]["methods"] for row in (r.get(m) or {}).get("allocation") or []]
    rows += [row["flops"] for row in (x.answer or {}).get("rows", [])]
    if rows:
        return float(max(rows))
    cfg = r["config"]
    return float(max(x.c.max() * max(cfg.get("extrapolate_to") or [1.0]), *(cfg.get("budgets") or []), x.c.max()))


def legend_beside(ax, **kw):
    """A legend to the right of the axes, clear of the data."""
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=8, **kw)


def legend_below(ax, holder, **kw):
    """ax's legend in the empty axes under it (_Fit.figure(below=True)): clear of its data and of the panel beside."""
    return holder.legend(*ax.get_legend_handles_labels(), loc="upper center", borderaxespad=0.0, fontsize=8, **kw)


def write_plots(result: dict, folder: Path) -> list[str]:
    """Write every plot that applies; returns their file names."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    x = _Fit(result, folder)
    if x.answer:
        _guarded(_scaling, x)
    _guarded(_loss_vs_compute, x, x.cs)
    _guarded(_residuals, x)
    if any(x.result.get(m, {}).get("status") == "ok" for m in x.result["config"]["methods"]):
        _guarded(_allocation, x, x.cs)  # the compute-optimal allocation of every method that applies
    _guarded(_loss_vs_params, x)
    _guarded(_residuals_by_method, x)
    _guarded(_slices, x)
    return x.written


def _guarded(plot, x: _Fit, *args):
    """A figure that cannot be drawn is left out with a warning: the fit, its report and the other figures stand."""
    try:
        return plot(x, *args)
    except Exception as exc:  # matplotlib raises many kinds on degenerate data; none may lose the fit
        log.warning("plot %s left out: %s: %s", plot.__name__.lstrip("_"), type(exc).__name__, exc)
        x.plt.close("all")
        return None


def _slices(x: _Fit) -> None:
    """Kaplan's single-variable laws, each over its slice of runs: L(N), L(D) and L(C) on log-log axes."""
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    plt, result, n, d, c, loss, k, level, ok, budget, budget_ids, save = x.unpack()
    laws = {name: law for name, law in (result.get("single_variable") or {}).items() if law["status"] == "ok"}
    if not laws:
        return
    fig, axes, holders = x.figure(len(laws), 4.8, 5.0, below=True)
    values = {"L(N)": (n, "parameters N"), "L(D)": (d, "tokens D"), "L(C)": (c, "compute C (FLOPs)")}
    for ax, holder, (name, law) in zip(axes, holders, laws.items()):
        xs, label = values[name]
        idx = np.asarray(law.get("idx", []), int)
        ax.scatter(xs, loss, s=8, color="0.8", label="all runs")
        if idx.size:
            ax.scatter(xs[idx], loss[idx], s=16, color="tab:red", label="the slice fitted")
        grid = np.logspace(np.log10(xs.min()), np.log10(xs.max()), 50)
        ax.plot(grid, law["E"] + (law["x_c"] / grid) ** law["alpha"], color="k", lw=1,
                label=f"α = {law['alpha']:.3f}" + (f", E = {law['E']:.3g}" if law["E"] > 0 else ""))
        ax.set(xscale="log", yscale="log", xlabel=label, ylabel="loss", title=name)
        ax.yaxis.set_major_formatter(FormatStrFormatter("%.2f"))  # losses span < 2x: plain numbers read better
        ax.yaxis.set_minor_formatter(FormatStrFormatter("%.2f"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        legend_below(ax, holder)
    save(fig, "kaplan_slices.png")


def parabola_misses(x: _Fit) -> list[dict]:
    """Approach 2's kept and dropped budgets with their runs and how far the parabola misses the smallest and the
    largest size (measured minus parabola, in loss): the valley's shape the parabola does not follow."""
    a2 = x.result.get("approach2", {})
    if a2.get("status") != "ok":
        return []
    ids = np.unique(x.budget)
    out = []
    for i, b in enumerate(a2["budgets"]):
        if i >= ids.size or b["n_sizes"] < x.result["config"]["min_sizes_per_budget"]:
            continue
        m = np.flatnonzero(x.budget == ids[i])
        m = m[np.argsort(x.n[m])]
        miss = None
        if "coef" in b:
            fit = np.polyval(b["coef"], np.log(x.n[m]))
            miss = (float(x.loss[m][0] - fit[0]), float(x.loss[m][-1] - fit[-1]))
        out.append({"budget": b, "idx": m, "miss": miss})
    return out


def _budget_scale(ax, cmap, flops) -> None:
    """Legend entries for the ends of the budgets' colour scale, in place of one entry per budget."""
    ax.scatter([], [], color=cmap(0.0), s=16, label=f"smallest budget, {min(flops):.2g} FLOPs")
    ax.scatter([], [], color=cmap(0.9), s=16, label=f"largest budget, {max(flops):.2g} FLOPs "
                                                    f"({len(flops)} budgets, colours between)")


def _verification(x: _Fit) -> dict | None:
    return x.result.get("verification")


def _band(ax, xs, rows, key, color, lo, hi, **kw):
    """A CI band of rows[*][key], cut at [lo, hi]: an undetermined exponent's interval can span hundreds of decades
    (1e-257 to 1e265 tokens), and the axes keep to the estimates and the runs."""
    if rows and all((r[key] or {}).get("interval") for r in rows):
        band = np.clip(np.array([r[key]["interval"] for r in rows], float), lo, hi)
        ax.fill_between(xs, band[:, 0], band[:, 1], color=color, alpha=0.18, lw=0, **kw)


def _scaling(x: _Fit) -> None:
    """Chinchilla's figure 3: the IsoFLOP curves with their parabolas and minima (and how far each parabola misses
    its smallest and largest size), then N*(C) and D*(C) with the recommended law's line, its CI band and its
    exponent; every panel marks the verification run and shades the extrapolation."""
    plt, result, n, d, c, loss, k, level, ok, budget, budget_ids, save = x.unpack()
    ans = x.answer
    v = _verification(x)
    fig, axes, holders = x.figure(3, 4.9, 5.6, below=True)
    ax = axes[0]
    cmap = plt.get_cmap("viridis")
    valleys = parabola_misses(x)
    if valleys:
        named = len(valleys) <= MAX_BUDGET_LABELS
        for i, val in enumerate(valleys):
            b, m = val["budget"], val["idx"]
            col = cmap(i / max(1, len(valleys) - 1) * 0.9)
            miss = "" if val["miss"] is None else f": misses {val['miss'][0]:+.3f} / {val['miss'][1]:+.3f}"
            ax.scatter(n[m], loss[m], color=col, s=16, zorder=3,
                       label=f"{b['flops']:.2g}{miss}" + ("" if b["kept"] else " (dropped)") if named else None)
            if "coef" in b:
                # dotted over every size of the budget, solid where it was fitted: the gap at the ends is the miss
                grid = np.linspace(np.log(n[m][0]), np.log(n[m][-1]), 80)
                ax.plot(np.exp(grid), np.polyval(b["coef"], grid), color=col, lw=0.8, ls=":")
                inside = (grid >= b["fit_range"][0] - 1e-9) & (grid <= b["fit_range"][1] + 1e-9)
                ax.plot(np.exp(grid[inside]), np.polyval(b["coef"], grid[inside]), color=col, lw=1.3,
                        ls="-" if b["kept"] else ":")
            if b["kept"]:
                ax.plot(b["n_star"], b["loss_star"], "kx", ms=7, mew=1.5, zorder=4)
        if not named:
            _budget_scale(ax, cmap, [val["budget"]["flops"] for val in valleys])
            kept = [val for val in valleys if val["miss"] and val["budget"]["kept"]]
            for j, side in ((0, "smallest"), (1, "largest")):
                worst = max(((val["miss"][j], val["budget"]["flops"]) for val in kept), key=lambda t: abs(t[0]),
                            default=None)
                if worst:
                    ax.plot([], [], ls="none", label=f"largest miss of a kept budget at its {side} size: "
                                                     f"{worst[0]:+.3f} (budget {worst[1]:.2g})")
        ax.plot([], [], "kx", ms=7, mew=1.5, label="parabola minimum")
        title = "IsoFLOP curves and parabolas"
        legend_title = "budget (FLOPs): parabola misses\nsmallest / largest size (loss)"
    else:  # no parabolas (approach 2 did not apply): the runs per budget
        for j, bid in enumerate(budget_ids):
            sel = np.flatnonzero(budget == bid)
            sel = sel[np.argsort(n[sel])]
            ax.plot(n[sel], loss[sel], "o-", ms=4, lw=0.8, color=cmap(j / max(1, budget_ids.size - 1) * 0.9),
                    label=f"{np.median(c[sel]):.2g}" if budget_ids.size <= 12 else None)
        title = "runs per budget (approach 2 did not apply)"
        legend_title = "budget (FLOPs)"
    n_hi = n.max()
    if v:
        ax.plot(v["n_params"], v["measured_loss"], **VERIFY,
                label=f"verification run ({v['extrapolation']:.2g}x, measured)")
        if v["n_params"] > n_hi:
            ax.axvspan(n_hi, v["n_params"] * 1.3, **EXTRAPOLATION, label="beyond the runs' sizes")
    ax.set(xscale="log", xlabel="parameters N", ylabel="loss", title=title)
    legend_below(ax, holders[0], title=legend_title, title_fontsize=8)

    curve = x.answer_curve()
    a2 = result.get("approach2", {})
    minima = [b for b in a2.get("budgets", []) if b.get("kept")] if a2.get("status") == "ok" else []
    who = "stacking" if ans["source"] == "stacked" else ans["law"]
    for ax, holder, key, run_key, ver_key, exp, label in (
            (axes[1], holders[1], "n_params", "n_star", "n_params", "a", "N*"),
            (axes[2], holders[2], "n_tokens", "d_star", "n_tokens", "b", "D*")):
        values = np.array([r[key]["value"] for r in curve], float)
        pts = [b[run_key] for b in minima]
        finite = np.concatenate([values[np.isfinite(values) & (values > 0)], np.asarray(pts, float)])
        if not finite.size:
            continue
        lo, hi = finite.min() / 10, finite.max() * 10
        e = ans[exp]
        iv = e.get("interval")
        ax.plot(x.cs, values, color=COLORS.get(ans["law"], "k"), lw=1.8,
                label=f"{who}: {label} ∝ C^{e['value']:.3f}" + (f" [{iv[0]:.3f}, {iv[1]:.3f}]" if iv else ""))
        _band(ax, x.cs, curve, key, COLORS.get(ans["law"], "k"), lo, hi,
              label=f"{100 * level:.0f}% CI of the law")
        if pts:
            ax.plot([b["flops"] for b in minima], pts, "o", color="k", ms=5, zorder=4,
                    label="IsoFLOP minima (approach 2)")
        if v:
            ax.plot(v["flops"], v[ver_key], **VERIFY, label=f"verification run ({v['extrapolation']:.2g}x)")
        ax.axvspan(c.max(), x.last, **EXTRAPOLATION, label="extrapolation")
        unit = "parameters" if key == "n_params" else "tokens"
        ax.set(xscale="log", yscale="log", xlabel="compute C (FLOPs)", ylabel=f"{label} ({unit})", ylim=(lo, hi),
               title=f"compute-optimal {label} ({unit})")
        x.xlim(ax)
        legend_below(ax, holder)
    save(fig, "scaling.png")


def _envelope_where_runs_are(x: _Fit) -> dict | None:
    """Approach 1's envelope cut to the compute the runs span: below the smallest run's final compute it is only
    the first steps of the smallest models, which no run measured as a final point."""
    env = (x.result.get("approach1") or {}).get("envelope")
    if not env:
        return None
    cs = np.asarray(env["c"], float)
    keep = (cs >= x.c.min() * (1 - 1e-9)) & (cs <= x.c.max() * (1 + 1e-9))
    if keep.sum() < 2:
        return None
    return {key: np.asarray(env[key], float)[keep] for key in ("c", "n", "d", "loss") if key in env}


def _loss_vs_compute(x: _Fit, cs: np.ndarray) -> None:
    """The runs, the recommended prediction of a new run's loss at the compute optimum with its PI band, the
    verification run, and every other law's L*(C) as a thin line without a band."""
    plt, result, n, d, c, loss, k, level, ok, budget, budget_ids, save = x.unpack()
    fig, axes, _ = x.figure(1, 9.2, 4.8)
    ax = axes[0]
    for i, curve in enumerate(result["data"].get("curves") or []):
        ax.plot(curve["c"], curve["loss"], color="0.85", lw=0.6, zorder=-1,
                label="training curves (val loss)" if i == 0 else None)
    ax.scatter(c, loss, s=12, color="0.45", zorder=3, label="runs (final loss)")
    env = _envelope_where_runs_are(x)
    if env is not None and "approach1" in ok:
        from_curves = result["approach1"].get("diagnostics", {}).get("source") == "curves"
        ax.plot(env["c"], env["loss"], "k-" if from_curves else "k.-", lw=1,
                label="envelope of the curves (approach 1)" if from_curves else "frontier of final losses (approach 1)")
    ans = x.answer
    shown = []
    if ans:
        curve = x.answer_curve()
        values = np.array([r["loss"]["value"] for r in curve], float)
        if np.isfinite(values).any():
            lead = ans["law"] if ans["source"] != "stacked" else "stacked"
            color = COLORS.get(ans["law"], "k")
            have_pi = all(r["loss"].get("interval") for r in curve)
            ax.plot(cs, values, color=color, lw=2, zorder=4, label=f"recommended ({lead}): a new run at N*, D*"
                    + ("" if have_pi else "\n(no PI: its misfit was not measured)"))
            shown.append(values)
            if have_pi:
                band = np.array([r["loss"]["interval"] for r in curve], float)
                ax.fill_between(cs, band[:, 0], band[:, 1], color=color, alpha=0.2, lw=0,
                                label=f"its {100 * level:.0f}% PI")
                shown.append(band.ravel())
    for m in ok:
        if ans and m == ans["law"] and ans["source"] != "stacked":
            continue
        rows = [allocation.allocation_row(m, result[m], float(cx), k, level) for cx in cs]
        values = np.array([r["loss"]["value"] for r in rows], float)
        if not np.isfinite(values).any():  # no loss law (L*(C) not fitted): no curve, so no legend entry
            continue
        ax.plot(cs, values, color=COLORS[m], lw=0.8, alpha=0.9, label=f"{m}: L*(C)")
        shown.append(values)
    ax.axvspan(c.max(), x.last, **EXTRAPOLATION, label="extrapolation")
    v = _verification(x)
    if v:
        ax.plot(v["flops"], v["measured_loss"], **VERIFY, label=f"verification run ({v['extrapolation']:.2g}x, measured)")
        shown.append(np.array([v["measured_loss"]]))
    # the loss axis keeps to the runs and the predictions: the training curves' first steps would squash them
    ys = np.concatenate([loss] + [np.asarray(s, float) for s in shown])
    ys = ys[np.isfinite(ys)]
    pad = 0.05 * (ys.max() - ys.min() or 1.0)
    ax.set(xscale="log", xlabel="compute C (FLOPs)", ylabel="loss", ylim=(ys.min() - pad, ys.max() + pad),
           title="Loss vs compute: the recommended prediction")
    x.xlim(ax)
    legend_beside(ax)
    save(fig, "loss_vs_compute.png")


def _allocation(x: _Fit, cs: np.ndarray) -> None:
    """N*(C) and D*(C) of every method, with approach 1's envelope where the runs are and approach 2's minima."""
    plt, result, n, d, c, loss, k, level, ok, budget, budget_ids, save = x.unpack()
    a2 = result.get("approach2", {})
    fig, axes, holders = x.figure(2, 5.6, 6.0, below=True)
    rows_of = {m: [allocation.allocation_row(m, result[m], float(cx), k, level) for cx in cs] for m in ok}
    envelope = _envelope_where_runs_are(x) if "approach1" in ok else None
    for ax, key, runs in zip(axes, ("n_star", "d_star"), (n, d)):
        runs = list(runs) + (list(envelope["n" if key == "n_star" else "d"]) if envelope else [])
        values = np.array([r[key]["value"] for rows in rows_of.values() for r in rows] + list(runs), float)
        values = values[np.isfinite(values) & (values > 0)]
        lo, hi = values.min() / 10, values.max() * 10
        for m, rows in rows_of.items():
            ax.plot(cs, [r[key]["value"] for r in rows], color=COLORS[m],
                    label=f"{m} (exponent {result[m]['exponents']['a' if key == 'n_star' else 'b']:.3f})")
            _band(ax, cs, rows, key, COLORS[m], lo, hi)
        ax.set_ylim(lo, hi)
    if envelope is not None:
        # What approach 1 regressed on: N and D of the lowest-loss run at each compute (a staircase with curves).
        for ax, key in zip(axes, ("n", "d")):
            ax.plot(envelope["c"], envelope[key], color=COLORS["approach1"], lw=0.8, alpha=0.6, ls="--",
                    label="approach1 envelope (where runs are)")
    kept = [b for b in a2.get("budgets", []) if b["kept"]] if a2.get("status") == "ok" else []
    for ax, key in zip(axes, ("n_star", "d_star")):
        if kept:
            ax.plot([b["flops"] for b in kept], [b[key] for b in kept], "o", color=COLORS["approach2"], ms=4,
                    label="IsoFLOP minima (approach 2)")
    v = _verification(x)
    if v:
        for ax, key in zip(axes, ("n_params", "n_tokens")):
            ax.plot(v["flops"], v[key], **VERIFY, label=f"verification run ({v['extrapolation']:.2g}x)")
    for ax, holder, lab in zip(axes, holders, ("N* (parameters)", "D* (tokens)")):
        ax.axvspan(c.max(), x.last, **EXTRAPOLATION, label="extrapolation")
        ax.set(xscale="log", yscale="log", xlabel="compute C (FLOPs)", ylabel=lab, title=f"every method's {lab}")
        x.xlim(ax)
        legend_below(ax, holder)
    save(fig, "optimal_allocation.png")


def _loss_vs_params(x: _Fit) -> None:
    """Approach 3's L(N) at a few D, over the runs."""
    plt, result, n, d, c, loss, k, level, ok, budget, budget_ids, save = x.unpack()
    a3 = result.get("approach3", {})
    if a3.get("status") == "ok":
        fig, axes, _ = x.figure(1, 7.8, 4.8)
        ax = axes[0]
        ds = np.unique(np.round(np.log10(d), 1))
        cmap = plt.get_cmap("plasma")
        sel = ds[np.linspace(0, ds.size - 1, min(6, ds.size)).astype(int)]
        ns = np.logspace(np.log10(n.min()), np.log10(n.max()), 50)
        for i, ld in enumerate(sel):
            col = cmap(i / max(1, sel.size - 1) * 0.9)
            m = np.abs(np.round(np.log10(d), 1) - ld) < 0.05
            ax.scatter(n[m], loss[m], color=col, s=14)
            ax.plot(ns, allocation.loss_at("approach3", a3["params"], ns, 10 ** ld), color=col, lw=1, label=f"D ≈ 1e{ld:.1f}")
        ax.set(xscale="log", xlabel="parameters N", ylabel="loss", title="L(N) per D (approach 3 fit)")
        legend_beside(ax)
        save(fig, "loss_vs_params.png")


def residual_law(x: _Fit) -> str | None:
    """The law whose per-run residuals residuals.png shows: the recommended one, else the first that has them."""
    ok = [m for m in x.result["config"]["methods"] if x.result.get(m, {}).get("status") == "ok"
          and "residuals" in x.result[m]]
    lead = (x.answer or {}).get("law")
    return lead if lead in ok else (ok[0] if ok else None)


def _residuals(x: _Fit) -> None:
    """The recommended law's misfit per run (log loss, data minus fit) against N and against D, one colour per
    budget: a pattern here (a smile across a budget, a drift with D) is what the law does not capture."""
    plt, result, n, d, c, loss, k, level, ok, budget, budget_ids, save = x.unpack()
    law = residual_law(x)
    if law is None:
        return
    r = np.asarray(result[law]["residuals"], float)
    fig, axes, _ = x.figure(2, 5.4, 4.2)
    cmap = plt.get_cmap("viridis")
    for ax, xs, lab in zip(axes, (n, d), ("parameters N", "tokens D")):
        for j, bid in enumerate(budget_ids):
            sel = np.flatnonzero(budget == bid)
            sel = sel[np.argsort(xs[sel])]
            ax.plot(xs[sel], 100 * r[sel], "o-", ms=4, lw=0.8, color=cmap(j / max(1, budget_ids.size - 1) * 0.9),
                    label=f"C = {np.median(c[sel]):.2g}" if ax is axes[1] and budget_ids.size <= 12 else None)
        ax.axhline(0, color="k", lw=0.8)
        lim = 1.15 * max(np.nanmax(np.abs(100 * r)), 1e-3)
        ax.set(xscale="log", xlabel=lab, ylabel="residual, % of the loss (data - fit)", ylim=(-lim, lim),
               title=f"{law} residuals against {lab.split()[-1]}")
    note = (f"\n(fitted on the {result[law]['valley']['runs']} of {result[law]['valley']['of']} runs in the valleys)"
            if "valley" in result[law] else "")
    lead = (x.answer or {}).get("law")
    why = "" if law == lead else f" ({lead}, which the answer's exponents come from, has no per-run fit)"
    fig.suptitle(f"{law}'s misfit per run: rms {100 * np.sqrt(np.nanmean(r ** 2)):.2f}%" + why + note, fontsize=10)
    if budget_ids.size > 12:
        _budget_scale(axes[1], cmap, [float(np.median(c[budget == bid])) for bid in budget_ids])
    legend_beside(axes[1], title="budget (FLOPs)", title_fontsize=8)
    save(fig, "residuals.png")


def _residuals_by_method(x: _Fit) -> None:
    """Each method's log-loss residuals against N, one line per budget (the methods side by side)."""
    plt, result, n, d, c, loss, k, level, ok, budget, budget_ids, save = x.unpack()
    with_resid = [m for m in ok if "residuals" in result[m]]
    if len(with_resid) < 2:  # one law alone is residuals.png
        return
    fig, axes, _ = x.figure(len(with_resid), 4.2, 4)
    cmap = plt.get_cmap("viridis")
    order = np.argsort(n)
    for ax, m in zip(axes, with_resid):
        r = np.asarray(result[m]["residuals"], float)
        for j, bid in enumerate(budget_ids):
            sel = order[budget[order] == bid]
            ax.plot(n[sel], r[sel], "o-", ms=3, lw=0.8, color=cmap(j / max(1, budget_ids.size - 1) * 0.9),
                    label=f"C = {np.median(c[budget == bid]):.2g}" if ax is axes[-1] else None)
        ax.axhline(0, color="k", lw=0.8)
        ax.set(xscale="log", xlabel="parameters N", ylabel="log loss residual (data - fit)",
               title=f"{m} residuals per budget" + (
                   f"\n(fitted on the {result[m]['valley']['runs']} of {result[m]['valley']['of']} runs in the valleys)"
                   if "valley" in result[m] else ""))
    if budget_ids.size <= 12:
        legend_beside(axes[-1], title="budget (FLOPs)", title_fontsize=8)
    save(fig, "residuals_by_method.png")
