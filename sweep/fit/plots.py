"""PNG plots of a fit (matplotlib, Agg backend), drawn from fit.json's content alone."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sweep.fit import allocation, registry

log = logging.getLogger("sweep.fit")
COLORS = {name: m.color for name, m in registry.METHODS.items()}


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
        pts = self.result["data"]["points"]
        self.n, self.d, self.c, self.loss = (np.asarray(pts[k], float) for k in ("n", "d", "c", "loss"))
        self.budget = np.asarray(pts.get("budget", np.zeros(self.c.size)), int)
        self.plt = _plt()

    def save(self, fig, name: str) -> None:
        fig.tight_layout()
        fig.savefig(self.folder / name, dpi=110)
        self.plt.close(fig)
        self.written.append(name)

    def unpack(self) -> tuple:
        r = self.result
        ok = [m for m in r["config"]["methods"] if r.get(m, {}).get("status") == "ok"]
        return (self.plt, r, self.n, self.d, self.c, self.loss, r["data"]["flops_per_nd"], r["config"]["interval"], ok,
                self.budget, np.unique(self.budget), self.save)


def write_plots(result: dict, folder: Path) -> list[str]:
    """Write every plot that applies; returns their file names."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    x = _Fit(result, folder)
    cs = _compute_grid(x)
    _guarded(_isoflop, x)
    _guarded(_loss_vs_compute, x, cs)
    if any(x.result.get(m, {}).get("status") == "ok" for m in x.result["config"]["methods"]):
        _guarded(_allocation, x, cs)  # the compute-optimal allocation of the methods that apply
    _guarded(_loss_vs_params, x)
    _guarded(_residuals, x)
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
    fig, axes = plt.subplots(1, len(laws), figsize=(4.8 * len(laws), 4), squeeze=False)
    values = {"L(N)": (n, "parameters N"), "L(D)": (d, "tokens D"), "L(C)": (c, "compute C (FLOPs)")}
    for ax, (name, law) in zip(axes[0], laws.items()):
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
        ax.legend(fontsize=8)
    save(fig, "kaplan_slices.png")


def _isoflop(x: _Fit) -> None:
    """Approach 2: each budget's runs, its parabola and its minimum."""
    plt, result, n, d, c, loss, k, level, ok, budget, budget_ids, save = x.unpack()
    a2 = result.get("approach2", {})
    if a2.get("status") == "ok":
        fig, ax = plt.subplots(figsize=(7, 5))
        cmap = plt.get_cmap("viridis")
        for i, b in enumerate(a2["budgets"]):
            if b["n_sizes"] < result["config"]["min_sizes_per_budget"]:
                continue
            col = cmap(i / max(1, len(a2["budgets"]) - 1))
            m = budget == budget_ids[i]
            ax.scatter(n[m], loss[m], color=col, s=14, label=f"C = {b['flops']:.2g}" + ("" if b["kept"] else " (dropped)"))
            if "coef" in b:
                x = np.linspace(*b["log_n_range"], 100)
                ax.plot(np.exp(x), np.polyval(b["coef"], x), color=col, lw=1, ls="-" if b["kept"] else ":")
            if b["kept"]:
                ax.plot(b["n_star"], b["loss_star"], "kx", ms=8)
        v = result.get("verification")
        if v:
            ax.plot(v["n_params"], v["measured_loss"], "r*", ms=11,
                    label=f"verification run at C = {v['flops']:.2g} ({v['extrapolation']:.2g}x)")
        ax.set(xscale="log", xlabel="parameters N", ylabel="loss", title="IsoFLOP curves, parabolas and minima (x)")
        ax.legend(fontsize=8, title="compute budget (FLOPs)", title_fontsize=8)
        save(fig, "isoflop.png")



def _compute_grid(x: _Fit) -> np.ndarray:
    """The compute axis of the L*(C) and allocation plots: the fitted runs up to the furthest budget asked for."""
    cfg = x.result["config"]
    reach = max(x.c.max() * max(cfg.get("extrapolate_to") or [1.0]), *cfg["budgets"], x.c.max())
    return np.logspace(np.log10(x.c.min()), np.log10(reach), 60)


def _loss_vs_compute(x: _Fit, cs: np.ndarray) -> None:
    """Runs, curves, approach 1's envelope and every method's L*(C) with its interval."""
    plt, result, n, d, c, loss, k, level, ok, budget, budget_ids, save = x.unpack()
    fig, ax = plt.subplots(figsize=(7, 5))
    for i, curve in enumerate(result["data"].get("curves") or []):
        ax.plot(curve["c"], curve["loss"], color="0.8", lw=0.7, zorder=-1, label="training curves (val loss)" if i == 0 else None)
    ax.scatter(c, loss, s=10, color="0.6", label="runs (final loss)")
    a1 = result.get("approach1", {})
    if a1.get("envelope"):
        from_curves = a1.get("diagnostics", {}).get("source") == "curves"
        ax.plot(a1["envelope"]["c"], a1["envelope"]["loss"], "k-" if from_curves else "k.-", lw=1,
                label="envelope of the curves (approach 1)" if from_curves else "frontier of final losses (approach 1)")
    elif a1.get("frontier"):  # a fit.json written before the envelope was stored
        ax.plot(c[a1["frontier"]], loss[a1["frontier"]], "k.-", lw=1, label="frontier")
    for m in ok:
        rows = [allocation.allocation_row(m, result[m], x, k, level) for x in cs]
        values = np.array([r["loss"]["value"] for r in rows], float)
        if not np.isfinite(values).any():  # no loss law (L*(C) not fitted): no curve, so no legend entry
            continue
        ax.plot(cs, values, color=COLORS[m], label=m)
        if all("interval" in r["loss"] for r in rows):
            ax.fill_between(cs, [r["loss"]["interval"][0] for r in rows], [r["loss"]["interval"][1] for r in rows],
                            color=COLORS[m], alpha=0.15, label=f"{m}: {100 * level:.0f}% interval of the law")
    ax.axvspan(c.max(), cs.max(), color="0.9", zorder=-1, label="extrapolation")
    v = result.get("verification")
    if v:
        ax.plot(v["flops"], v["measured_loss"], "r*", ms=11, label=f"verification run (measured, {v['extrapolation']:.2g}x)")
    ax.set(xscale="log", xlabel="compute C (FLOPs)", ylabel="loss", title="Loss vs compute: compute-optimal predictions")
    ax.legend(fontsize=8)
    save(fig, "loss_vs_compute.png")


def _allocation(x: _Fit, cs: np.ndarray) -> None:
    """N*(C) and D*(C) of every method, with approach 1's envelope and approach 2's minima."""
    plt, result, n, d, c, loss, k, level, ok, budget, budget_ids, save = x.unpack()
    a1, a2 = result.get("approach1", {}), result.get("approach2", {})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    rows_of = {m: [allocation.allocation_row(m, result[m], x, k, level) for x in cs] for m in ok}
    envelope = a1.get("envelope") if "approach1" in ok else None
    for ax, key, runs in zip(axes, ("n_star", "d_star"), (n, d)):
        runs = list(runs) + (list(envelope["n" if key == "n_star" else "d"]) if envelope else [])
        # An undetermined exponent's interval can span hundreds of decades (1e-257 to 1e265 tokens): the axes keep
        # to the point estimates and the runs, and a band is cut at their edges.
        values = np.array([r[key]["value"] for rows in rows_of.values() for r in rows] + list(runs), float)
        values = values[np.isfinite(values) & (values > 0)]
        lo, hi = values.min() / 10, values.max() * 10
        for m, rows in rows_of.items():
            ax.plot(cs, [r[key]["value"] for r in rows], color=COLORS[m],
                    label=f"{m} (exponent {result[m]['exponents']['a' if key == 'n_star' else 'b']:.3f})")
            if all("interval" in r[key] for r in rows):
                band = np.clip(np.array([r[key]["interval"] for r in rows], float), lo, hi)
                ax.fill_between(cs, band[:, 0], band[:, 1], color=COLORS[m], alpha=0.12)
        ax.set_ylim(lo, hi)
    if "approach1" in ok and a1.get("envelope"):
        # What approach 1 regressed on: N and D of the lowest-loss run at each compute (a staircase with curves).
        for ax, key in zip(axes, ("n", "d")):
            ax.plot(a1["envelope"]["c"], a1["envelope"][key], color=COLORS["approach1"], lw=0.8, alpha=0.6,
                    ls="--", label="approach1 envelope")
    for b in a2.get("budgets", []) if a2.get("status") == "ok" else []:
        if b["kept"]:
            axes[0].plot(b["flops"], b["n_star"], "o", color=COLORS["approach2"], ms=4)
            axes[1].plot(b["flops"], b["d_star"], "o", color=COLORS["approach2"], ms=4)
    v = result.get("verification")
    if v:
        for ax, key in zip(axes, ("n_params", "n_tokens")):
            ax.plot(v["flops"], v[key], "r*", ms=11, label=f"verification run ({v['extrapolation']:.2g}x)")
    for ax, lab in zip(axes, ("N* (parameters)", "D* (tokens)")):
        ax.set(xscale="log", yscale="log", xlabel="compute C (FLOPs)", ylabel=lab, title=f"compute-optimal {lab}")
        ax.legend(fontsize=8)
    save(fig, "optimal_allocation.png")



def _loss_vs_params(x: _Fit) -> None:
    """Approach 3's L(N) at a few D, over the runs."""
    plt, result, n, d, c, loss, k, level, ok, budget, budget_ids, save = x.unpack()
    a3 = result.get("approach3", {})
    if a3.get("status") == "ok":
        fig, ax = plt.subplots(figsize=(7, 5))
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
        ax.legend(fontsize=8)
        save(fig, "loss_vs_params.png")



def _residuals(x: _Fit) -> None:
    """Each method's log-loss residuals against N, one line per budget."""
    plt, result, n, d, c, loss, k, level, ok, budget, budget_ids, save = x.unpack()
    with_resid = [m for m in ok if "residuals" in result[m]]
    if with_resid:
        fig, axes = plt.subplots(1, len(with_resid), figsize=(5.5 * len(with_resid), 4), squeeze=False)
        cmap = plt.get_cmap("viridis")
        resid_order = np.argsort(n)
        for ax, m in zip(axes[0], with_resid):
            r = np.asarray(result[m]["residuals"], float)
            for j, bid in enumerate(budget_ids):
                sel = resid_order[budget[resid_order] == bid]
                ax.plot(n[sel], r[sel], "o-", ms=3, lw=0.8, color=cmap(j / max(1, budget_ids.size - 1)),
                        label=f"C = {np.median(c[budget == bid]):.2g}")
            ax.axhline(0, color="k", lw=0.8)
            ax.set(xscale="log", xlabel="parameters N", ylabel="log loss residual (data - fit)",
                   title=f"{m} residuals per budget" + (
                       f"\n(fitted on the {result[m]['valley']['runs']} of {result[m]['valley']['of']} runs in the valleys)"
                       if "valley" in result[m] else ""))
            if budget_ids.size <= 12:
                ax.legend(fontsize=7)
        save(fig, "residuals.png")
