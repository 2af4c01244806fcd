"""Every figure but scaling.png: the loss against compute and the residuals (report.md's first screen), and the
methods compared (every method's allocation, approach 3's L(N), the residuals per method, Kaplan's slices)."""

from __future__ import annotations

import numpy as np

from sweep.fit import allocation
from sweep.fit.plots_common import (COLORS, EXTRAPOLATION, VERIFY, _band, _budget_scale, _envelope_where_runs_are,
                                    _Fit, _verification, legend_beside, legend_below)


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
