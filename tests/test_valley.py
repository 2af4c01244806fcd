"""Approach 3 on the IsoFLOP valleys: which runs it keeps, what it recovers when a grid's far ends follow another
limit, when it stands aside, and how the backtest scores the laws near the frontier."""

import numpy as np
import pytest

from sweep.fit import FitConfig, fit
from sweep.fit.backtest import scored_runs
from sweep.fit.config import MethodSkipped
from sweep.fit.inputs import prepare
from sweep.fit.report import render
from sweep.fit.simulate import Law, isoflop_sweep
from sweep.fit.valley import run, valley_runs

LAW = Law()
BUDGETS = np.logspace(18, 20, 5)
STARVED = 1.0
"""Tokens per parameter below which a run is starved in the sweep below: its loss is 25% above the law."""


def starved_sweep(seed=0) -> list:
    """11 sizes per budget, 2x apart around the optimum (~20 tokens/param): the largest 3 of each see fewer tokens
    than parameters, and their losses follow another limit (25% above the law), as a too-short warmup would make."""
    rows = isoflop_sweep(LAW, BUDGETS, sizes_per_budget=11, noise=0.005, seed=seed)
    for r in rows:
        if r["n_tokens"] / r["n_params"] < STARVED:
            r["loss"] *= 1.25
    return rows


CFG = dict(n_bootstrap=40, compare_conventions=False, budgets=[], grid_alpha=[0.0, 0.5, 1.0], grid_beta=[0.0, 0.5, 1.0],
           grid_e=[0.0, 0.5, 1.0], grid_a=[0.0, 5.0, 10.0], grid_b=[0.0, 5.0, 10.0])


@pytest.fixture(scope="module")
def starved_fit():
    return fit(starved_sweep(), FitConfig(methods=["approach3", "approach3_valley"], **CFG))


def test_each_budget_keeps_its_best_size_and_the_window_each_side():
    rows = [{"n_params": n, "n_tokens": 1e18 / (6 * n), "flops": 1e18, "loss": l, "status": "done"}
            for n, l in zip([1e7, 2e7, 4e7, 8e7, 1.6e8, 3.2e8, 6.4e8], [3.0, 2.8, 2.7, 2.65, 2.7, 2.9, 3.2])]
    rows += [{"n_params": n, "n_tokens": 1e19 / (6 * n), "flops": 1e19, "loss": l, "status": "done"}
             for n, l in zip([1e8, 2e8], [2.5, 2.4])]  # 2 sizes: no valley
    data = prepare(rows, FitConfig())
    kept = valley_runs(data, min_sizes=3, window=2)
    assert sorted(data.n[kept].tolist()) == [2e7, 4e7, 8e7, 1.6e8, 3.2e8]
    assert valley_runs(data, min_sizes=3, window=1).size == 3
    assert valley_runs(data, min_sizes=3, window=0).size == 7  # 0: every size of a budget that has a valley
    # the backtest scores the valley, and every run of a budget too small to have one
    cfg = FitConfig()
    assert scored_runs(data, cfg).sum() == 5 + 2


def test_the_valley_fit_recovers_the_law_that_starved_runs_hide_from_approach_3(starved_fit):
    v, a3 = starved_fit["approach3_valley"], starved_fit["approach3"]
    assert v["status"] == "ok" and a3["status"] == "ok"
    assert v["valley"]["runs"] == 25 and v["valley"]["of"] == 55
    n, d, truth = *LAW.optimum(100 * BUDGETS[-1])[:2], LAW.optimum(100 * BUDGETS[-1])[2]
    from sweep.fit.allocation import loss_at
    err_v = float(loss_at("approach3_valley", v["params"], n, d)) / truth - 1
    err_3 = float(loss_at("approach3", a3["params"], n, d)) / truth - 1
    assert abs(err_v) < 0.01, err_v  # the compute-optimal loss 100x beyond the sweep
    assert abs(err_3) > 2 * abs(err_v), (err_3, err_v)  # the test has teeth: every run misleads approach 3 here
    assert v["exponents"]["a"] == pytest.approx(LAW.a, abs=0.05)
    assert len(v["residuals"]) == 55  # one per run of the sweep, for the plots
    # the sweep's noise scale comes from the runs the law fits: the 0.5% noise, not the starved runs' misfit
    assert starved_fit["noise"]["source"] == "approach 3 on the valley runs' residuals"
    assert starved_fit["noise"]["sigma"] == pytest.approx(0.005, rel=0.4)
    assert a3["noise"]["sigma"] > 2 * starved_fit["noise"]["sigma"]


def test_the_backtest_ranks_the_laws_on_the_valleys_of_the_held_out_budgets(starved_fit):
    bt = starved_fit["backtest"]["methods"]["approach3_valley"]["rows"]
    assert bt and all(r["measured"] for r in bt)
    # no starved run is scored: tokens per parameter of every scored run above the starved limit
    names = {r["run"] for r in bt}
    starved = {r["run_id"] for r in starved_sweep() if r["n_tokens"] / r["n_params"] < STARVED}
    assert not names & starved
    assert starved_fit["backtest"]["scored_runs"] == 25
    assert "Scored: the 25 of 55 runs in their budget's valley" in render(starved_fit)
    rec = starved_fit["recommended"]
    assert rec["weights_per_run"].get("approach3_valley", 0) > 0.5, rec


def test_it_stands_aside_without_isoflop_budgets_and_says_why():
    rng = np.random.default_rng(0)
    rows = [{"n_params": n, "n_tokens": m * n, "loss": float(LAW.loss(n, m * n) * np.exp(0.005 * rng.standard_normal())),
             "status": "done"} for n in np.logspace(7, 8.6, 5) for m in (5, 10, 20, 40, 80, 160)]
    with pytest.raises(MethodSkipped, match="IsoFLOP budget"):
        run(prepare(rows, FitConfig()), FitConfig(**CFG))


def test_the_report_says_which_runs_it_fitted(starved_fit):
    text = render(starved_fit)
    assert "Fitted on 25 of 55 runs" in text
