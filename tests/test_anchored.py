"""Approach 3's valley shape on a fitted frontier: the penalty and the levels it is built from, what it recovers on
data from approach 3's law and from its own (a frontier that falls unlike the valleys' shape implies), and when it
stands aside."""

import numpy as np
import pytest

from sweep.fit import FitConfig, fit
from sweep.fit.allocation import loss_at, optimum
from sweep.fit.anchored import frontier_loss, levels, penalty, report, run
from sweep.fit.config import MethodSkipped
from sweep.fit.inputs import prepare
from sweep.fit.report import render
from sweep.fit.simulate import Law, isoflop_sweep

LAW = Law()
BUDGETS = np.logspace(18, 20, 5)
SHAPE = {"E": LAW.E, "A": LAW.A, "B": LAW.B, "alpha": LAW.alpha, "beta": LAW.beta, "flops_per_nd": 6.0}
CFG = dict(n_bootstrap=40, compare_conventions=False, budgets=[], backtest=False, grid_alpha=[0.0, 0.5, 1.0],
           grid_beta=[0.0, 0.5, 1.0], grid_e=[0.0, 0.5, 1.0], grid_a=[0.0, 5.0, 10.0], grid_b=[0.0, 5.0, 10.0])


def frontier(c):
    """The optimum's loss in the re-anchored sweep: a floor 0.25 higher than LAW's and a shallower descent (2.34 at
    1e18, 2.10 at 1e20, 2.04 at 1e21; LAW's own L*(C): 3.54, 2.60, 2.33), as when a sweep's larger budgets gain
    less than the shape of its valleys implies."""
    return 1.94 + (1e16 / np.asarray(c, float)) ** 0.2


def anchored_sweep(seed=0) -> list:
    """LAW's valleys, each budget's level moved onto frontier(C): loss = frontier(C) + LAW(N, D) - LAW*(C)."""
    rows = isoflop_sweep(LAW, BUDGETS, noise=0.003, seed=seed)
    for r in rows:
        shift = frontier(r["flops"]) - LAW.optimum(r["flops"])[2]
        r["loss"] = float(r["loss"] + shift * r["loss"] / LAW.loss(r["n_params"], r["n_tokens"]))
    return rows


def test_the_penalty_is_what_a_run_gives_up_to_its_budgets_optimum():
    n, d, l_star = LAW.optimum(1e19)
    assert float(penalty(SHAPE, n, d)) == pytest.approx(0.0, abs=1e-12)
    assert float(penalty(SHAPE, 2 * n, d / 2)) == pytest.approx(float(LAW.loss(2 * n, d / 2)) - l_star, rel=1e-9)
    assert float(penalty(SHAPE, 4 * n, d / 4)) > float(penalty(SHAPE, 2 * n, d / 2)) > 0
    # without noise every valley run gives its budget's optimum loss exactly
    data = prepare(isoflop_sweep(LAW, BUDGETS, noise=0.0, seed=1), FitConfig())
    c, level = levels(SHAPE, 6.0, data.n, data.d, data.loss, data.budget)
    assert c == pytest.approx(BUDGETS, rel=1e-9)
    assert level == pytest.approx(LAW.optimum(BUDGETS)[2], rel=1e-9)


def test_on_data_from_approach_3s_law_it_recovers_the_law():
    result = fit(isoflop_sweep(LAW, BUDGETS, noise=0.003, seed=2), FitConfig(methods=["approach3_anchored"], **CFG))
    r = result["approach3_anchored"]
    assert r["status"] == "ok" and r["anchor"]["budgets"] == 5
    assert r["exponents"]["a"] == pytest.approx(LAW.a, abs=0.05)
    n, d, truth = LAW.optimum(10 * BUDGETS[-1])
    assert float(loss_at("approach3_anchored", r["params"], n, d)) == pytest.approx(truth, rel=0.01)
    # at the optimum the run's loss is the frontier's, and every method's (N*, D*, L*) agree on the point fit
    n_star, d_star, l_star = optimum("approach3_anchored", r["params"], 1e21, 6.0)
    assert float(loss_at("approach3_anchored", r["params"], n_star, d_star)) == pytest.approx(float(l_star), rel=1e-9)
    assert float(l_star) == pytest.approx(float(frontier_loss(r["params"], 1e21)), rel=1e-12)
    assert len(r["residuals"]) == 35  # one per run of the sweep, for the plots
    assert len(r["samples"]["values"]) == 40 and r["finite"]["E_C"] >= 36
    text = render(result)
    assert "each budget's level (its valley runs' mean loss less that penalty) fitted by L*(C)" in text
    assert "| flops_per_nd | 6 | - | - | the sweep's FLOPs per N·D" in text
    assert "at the lower bound" not in text
    flat = {**r, "params": {**r["params"], "alpha": 0.01, "beta": 0.0100001}}
    assert report(flat, result)[0].startswith("alpha and beta at the lower bound 0.01: the valleys do not determine")


def test_where_the_frontier_falls_unlike_the_valleys_shape_it_follows_the_frontier():
    result = fit(anchored_sweep(), FitConfig(methods=["approach3_valley", "approach3_anchored"], **CFG))
    c = 10 * BUDGETS[-1]
    n, d, _ = LAW.optimum(c)
    truth = float(frontier(c))
    err = {m: float(loss_at(m, result[m]["params"], n, d)) / truth - 1 for m in ("approach3_valley", "approach3_anchored")}
    assert abs(err["approach3_anchored"]) < 0.01, err
    assert abs(err["approach3_valley"]) > 3 * abs(err["approach3_anchored"]), err
    # the valleys' shape is LAW's, so the allocation is too
    assert result["approach3_anchored"]["exponents"]["a"] == pytest.approx(LAW.a, abs=0.05)
    assert result["approach3_anchored"]["params"]["E_C"] == pytest.approx(1.94, abs=0.15)


def test_it_stands_aside_without_a_frontier_to_fit():
    """L*(C) has three parameters: the levels of 3 budgets leave it no degree of freedom (4 are needed)."""
    data = prepare(isoflop_sweep(LAW, BUDGETS[:3], noise=0.003, seed=3), FitConfig())
    with pytest.raises(MethodSkipped, match="3 IsoFLOP budget.s. with 3 or more sizes: L.*C. needs the levels of 4"):
        run(data, FitConfig(**CFG))


def test_a_default_fit_leaves_it_out_and_fit_methods_runs_it_beside_the_valley_fit():
    rows = isoflop_sweep(LAW, BUDGETS, noise=0.003, seed=4)
    default = fit(rows, FitConfig(**{**CFG, "n_bootstrap": 0}))
    assert "approach3_anchored" not in default["config"]["methods"] and "approach3_anchored" not in default
    named = fit(rows, FitConfig(**{**CFG, "n_bootstrap": 0, "methods": ["approach3_valley", "approach3_anchored"]}))
    assert named["approach3_anchored"]["status"] == "ok" and named["approach3_valley"]["status"] == "ok"
