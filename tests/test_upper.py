"""Approach 3 on the upper half of the compute range: which budgets it keeps, what it recovers on data from its own
law, what it gains when a sweep's small budgets bend more than its large ones, and when it stands aside."""

import numpy as np
import pytest

from sweep.fit import FitConfig, fit, registry
from sweep.fit.allocation import loss_at
from sweep.fit.config import MethodSkipped
from sweep.fit.inputs import prepare
from sweep.fit.report import render
from sweep.fit.simulate import Law, isoflop_sweep
from sweep.fit.upper import run, upper_runs

LAW = Law()
BUDGETS = np.logspace(18, 20, 5)
SMALL = Law(E=1.2, A=406.4, B=410.7, alpha=0.45, beta=0.38)
"""The law the two smallest budgets follow in the drifting sweep: steeper exponents and a lower floor, as small
models whose warm-up and embeddings weigh more bend more (the two laws agree near 1e18-1e19 FLOPs within ~10%)."""
CFG = dict(n_bootstrap=40, compare_conventions=False, budgets=[], backtest=False, grid_alpha=[0.0, 0.5, 1.0],
           grid_beta=[0.0, 0.5, 1.0], grid_e=[0.0, 0.5, 1.0], grid_a=[0.0, 5.0, 10.0], grid_b=[0.0, 5.0, 10.0])


def drifting_sweep(seed=0) -> list:
    rows = isoflop_sweep(LAW, BUDGETS, noise=0.003, seed=seed)
    for r in rows:
        if r["flops"] < 5e18:
            n, d = r["n_params"], r["n_tokens"]
            r["loss"] = float(SMALL.loss(n, d) * r["loss"] / LAW.loss(n, d))  # the same noise draw
    return rows


def test_it_keeps_the_valleys_of_the_budgets_in_the_upper_half_of_log_compute():
    data = prepare(isoflop_sweep(LAW, BUDGETS, sizes_per_budget=9, noise=0.0, seed=1), FitConfig())
    idx, kept = upper_runs(data, min_sizes=3, window=2)
    assert sorted(np.unique(data.c[idx]).round(-15).tolist()) == sorted(BUDGETS[2:].round(-15).tolist())
    assert idx.size == 3 * 5  # each kept budget's best size and 2 each side
    assert kept.size == 3


def test_on_data_from_its_own_law_it_recovers_the_law():
    result = fit(isoflop_sweep(LAW, BUDGETS, noise=0.003, seed=2), FitConfig(methods=["approach3_upper"], **CFG))
    u = result["approach3_upper"]
    assert u["status"] == "ok"
    assert u["upper"]["budgets"] == 3 and u["upper"]["flops_from"] == pytest.approx(1e19, rel=0.01)
    assert u["exponents"]["a"] == pytest.approx(LAW.a, abs=0.05)
    n, d, truth = LAW.optimum(10 * BUDGETS[-1])
    assert float(loss_at("approach3_upper", u["params"], n, d)) == pytest.approx(truth, rel=0.01)
    assert len(u["residuals"]) == 35  # one per run of the sweep, for the plots
    text = render(result)
    assert "the 3 IsoFLOP budgets from 1e+19 FLOPs, the upper half" in text


def test_where_small_budgets_bend_more_it_extrapolates_the_large_ones():
    result = fit(drifting_sweep(), FitConfig(methods=["approach3_valley", "approach3_upper"], **CFG))
    n, d, truth = LAW.optimum(10 * BUDGETS[-1])
    err = {m: float(loss_at(m, result[m]["params"], n, d)) / truth - 1 for m in ("approach3_valley", "approach3_upper")}
    assert abs(err["approach3_upper"]) < 0.01, err
    assert abs(err["approach3_valley"]) > 3 * abs(err["approach3_upper"]), err  # the whole range inherits the bend


def test_it_stands_aside_without_three_upper_budgets():
    data = prepare(isoflop_sweep(LAW, BUDGETS[:4], noise=0.003, seed=3), FitConfig())
    with pytest.raises(MethodSkipped, match="upper half of the compute range"):
        run(data, FitConfig(**CFG))


def test_a_fit_runs_it_only_when_named():
    """Its intervals under-cover (module docstring): a default fit leaves it out, fit.methods brings it in."""
    assert "approach3_upper" not in registry.defaults() and "approach3_valley" in registry.defaults()
    rows = isoflop_sweep(LAW, BUDGETS, noise=0.003, seed=4)
    default = fit(rows, FitConfig(**{**CFG, "n_bootstrap": 0}))
    assert "approach3_upper" not in default["config"]["methods"] and "approach3_upper" not in default
    assert default["approach3_valley"]["status"] == "ok"
