"""scaling.png, Chinchilla's figure 3 and the first figure of report.md: the IsoFLOP curves with their
parabolas, then N*(C) and D*(C) with the recommended law."""

from __future__ import annotations

import numpy as np

from sweep.fit.plots_common import (COLORS, EXTRAPOLATION, MAX_BUDGET_LABELS, VERIFY, _band, _budget_scale, _Fit,
                                    _verification, legend_below)


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
