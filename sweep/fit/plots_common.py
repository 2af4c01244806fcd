"""What every figure of a fit shares: fit.json's content as arrays (_Fit), the figure grid, the legends placed
outside the axes, the verification run's marker, the extrapolation's shading, the CI bands and approach 1's
envelope where the runs are."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sweep.fit import registry

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
        from sweep.fit.report_screen import answer_of

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
