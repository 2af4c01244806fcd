"""The figures of a fit: drawn from fit.json alone, and never the reason a fit is lost."""

import json
import logging

import numpy as np

from sweep.fit import FitConfig, fit
from sweep.fit import plots
from sweep.fit.simulate import Law, isoflop_sweep

QUICK = dict(compare_conventions=False, backtest=False, budgets=[], methods=["approach3"], n_bootstrap=20,
             grid_alpha=[0.0, 0.5], grid_beta=[0.0, 0.5], grid_e=[0.0], grid_a=[0.0, 5.0], grid_b=[0.0, 5.0])


def _fit() -> dict:
    return json.loads(json.dumps(fit(isoflop_sweep(Law(), np.logspace(18, 20, 5), seed=2), FitConfig(**QUICK))))


def test_an_interval_hundreds_of_decades_wide_is_cut_at_the_axes(tmp_path, monkeypatch):
    # an undetermined exponent in a few resamples puts N* at 1e-250 and D* at 1e260 (a tiny CPU sweep did this,
    # and matplotlib's log ticks overflowed, taking the whole `sweep fit` down before fit.json was written)
    out = _fit()
    s = out["approach3"]["samples"]
    vals = np.asarray(s["values"], float)
    for name, value in {"A": 1e300, "B": 1.0, "alpha": 0.52, "beta": 0.52}.items():
        vals[:5, s["names"].index(name)] = value
    s["values"] = vals.tolist()
    limits = {}
    save = plots._Fit.save

    def keep_limits(self, fig, name):
        limits[name] = [ax.get_ylim() for ax in fig.axes if ax.axison]  # not the empty axes holding legends
        save(self, fig, name)

    monkeypatch.setattr(plots._Fit, "save", keep_limits)
    written = plots.write_plots(out, tmp_path)
    assert "optimal_allocation.png" in written and (tmp_path / "optimal_allocation.png").stat().st_size > 1000
    (n_lo, n_hi), (d_lo, d_hi) = limits["optimal_allocation.png"]
    # N* and D* of a sweep from 1e18 to 1e20 FLOPs, with 10x either side: not 1e-250 to 1e300
    assert 1e5 < n_lo < n_hi < 1e13 and 1e7 < d_lo < d_hi < 1e15, limits
    _, (n_lo, n_hi), (d_lo, d_hi) = limits["scaling.png"]  # the recommended law's N*(C) and D*(C) panels too
    assert 1e5 < n_lo < n_hi < 1e13 and 1e7 < d_lo < d_hi < 1e15, limits


def test_a_figure_that_cannot_be_drawn_is_left_out_with_a_warning(tmp_path, monkeypatch, caplog):
    def _allocation(x, cs):
        raise OverflowError("cannot convert float infinity to integer")

    monkeypatch.setattr(plots, "_allocation", _allocation)
    with caplog.at_level(logging.WARNING, logger="sweep.fit"):
        written = plots.write_plots(_fit(), tmp_path)
    assert "optimal_allocation.png" not in written
    assert {"loss_vs_compute.png", "residuals.png"} <= set(written)  # the others still drawn
    assert "plot allocation left out: OverflowError" in caplog.text
