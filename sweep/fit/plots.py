"""PNG plots of a fit (matplotlib, Agg backend), drawn from fit.json's content alone.

The first screen of report.md embeds three: scaling.png (Chinchilla's figure 3: the IsoFLOP curves, N*(C) and
D*(C) with the recommended law), loss_vs_compute.png (the runs and the recommended prediction of a new run's
loss) and residuals.png (the recommended law's misfit per run). The others compare the methods (appendix).
Every legend sits outside the axes, beside or below them, so that no legend hides a run or a curve; compute axes
end at the allocation table's last budget. What every figure shares is in plots_common.py, scaling.png in
plots_scaling.py, the other figures in plots_figures.py; write_plots draws them all, and every name of those
modules that others use is importable from here.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sweep.fit.plots_common import (  # noqa: F401  (re-exported: plots' names, wherever they live)
    COLORS, EXTRAPOLATION, MAX_BUDGET_LABELS, VERIFY, _band, _budget_scale, _envelope_where_runs_are, _Fit,
    _last_budget, _plt, _verification, legend_below, legend_beside)
from sweep.fit.plots_figures import (  # noqa: F401
    _allocation, _loss_vs_compute, _loss_vs_params, _residuals, _residuals_by_method, _slices, residual_law)
from sweep.fit.plots_scaling import _scaling, parabola_misses  # noqa: F401

log = logging.getLogger("sweep.fit")


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
