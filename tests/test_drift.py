"""Approach 3 with a data exponent that drifts with N, on the valleys: what it recovers on data from its own law,
that approach 3 cannot, its numerical optimum against the closed form where the drift is 0, and when it stands
aside."""

import numpy as np
import pytest

from sweep.fit import FitConfig, fit
from sweep.fit.allocation import loss_at
from sweep.fit.config import MethodSkipped
from sweep.fit.drift import optimum, run
from sweep.fit.inputs import prepare
from sweep.fit.laws import chinchilla_optimum
from sweep.fit.report import render
from sweep.fit.simulate import DataTermLaw, Law, isoflop_sweep

LAW = DataTermLaw()
"""beta = 0.28 (N / 1e8)^0.02 grows from 0.27 at N = 1e7 to 0.29 at 1e9, enough to move the 1e22 optimum's N* 10x
(5e10 against approach 3's 5e9 at drift 0): a data term no fixed exponent follows."""
BUDGETS = np.logspace(18, 20, 5)
CFG = dict(n_bootstrap=40, compare_conventions=False, budgets=[], backtest=False, grid_alpha=[0.0, 0.5, 1.0],
           grid_beta=[0.0, 0.5, 1.0], grid_e=[0.0, 0.5, 1.0], grid_a=[0.0, 5.0, 10.0], grid_b=[0.0, 5.0, 10.0])


@pytest.fixture(scope="module")
def own_law_fit():
    rows = isoflop_sweep(LAW, BUDGETS, sizes_per_budget=9, noise=0.003, seed=3)
    return fit(rows, FitConfig(methods=["approach3", "drift"], **CFG))


def test_on_data_from_its_own_law_it_recovers_the_drift_and_extrapolates(own_law_fit):
    d, a3 = own_law_fit["drift"], own_law_fit["approach3"]
    assert d["status"] == "ok" and a3["status"] == "ok"
    # beta(N) = beta (N / N0)^delta: the same law as beta_true (N / 1e8)^drift, so delta is the drift
    assert d["params"]["delta"] == pytest.approx(LAW.drift, abs=0.005)
    beta_at_1e8 = d["params"]["beta"] * (1e8 / d["params"]["n_ref"]) ** d["params"]["delta"]
    assert beta_at_1e8 == pytest.approx(LAW.beta, abs=0.03)
    assert d["diagnostics"]["runs"] == 25 and d["diagnostics"]["of"] == 45  # each valley: the best size, 2 each side
    assert len(d["residuals"]) == 45
    n, dd, truth = LAW.optimum(100 * BUDGETS[-1])
    err_drift = float(loss_at("drift", d["params"], n, dd)) / truth - 1
    err_a3 = float(loss_at("approach3", a3["params"], n, dd)) / truth - 1
    assert abs(err_drift) < 0.01, err_drift  # 100x past the largest fitted compute
    assert abs(err_a3) > 2 * abs(err_drift), (err_a3, err_drift)  # the test has teeth: approach 3 cannot bend so
    # a is local (N* is no power law here): the law's own slope at the largest fitted compute
    n1, n2 = LAW.optimum(BUDGETS[-1] * np.exp(-0.5))[0], LAW.optimum(BUDGETS[-1] * np.exp(0.5))[0]
    assert d["exponents"]["a"] == pytest.approx(np.log(n2 / n1), abs=0.05)
    lo, hi = d["exponent_intervals"]["a"]
    assert lo < d["exponents"]["a"] < hi


def test_its_optimum_is_approach_3s_where_the_drift_is_0():
    law = Law()
    params = {"E": law.E, "A": law.A, "B": law.B, "alpha": law.alpha, "beta": law.beta, "delta": 0.0,
              "n_ref": 1e8, "c_ref": 1e20, "flops_per_nd": 6.0}
    flops = np.array([1e18, 1e21, 1e24])
    n, d, loss = optimum(params, flops, 6.0)
    n0, d0, loss0 = chinchilla_optimum(flops, law.E, law.A, law.B, law.alpha, law.beta, 6.0)
    assert n == pytest.approx(n0, rel=1e-3) and d == pytest.approx(d0, rel=1e-3) and loss == pytest.approx(loss0, rel=1e-9)
    # bootstrap draws broadcast: one row per draw and budget; a draw with no minimum in range reads NaN
    draws = {**params, "alpha": np.array([law.alpha, 0.0])}
    n, _, loss = optimum(draws, 1e21, 6.0)
    assert n.shape == (2,) and np.isfinite(n[0]) and np.isnan(n[1])


def test_it_stands_aside_without_isoflop_budgets_and_says_why():
    rows = [{"n_params": n, "n_tokens": m * n, "loss": float(LAW.loss(n, m * n)), "status": "done"}
            for n in np.logspace(7, 8.6, 5) for m in (5, 10, 20, 40, 80, 160)]
    with pytest.raises(MethodSkipped, match="IsoFLOP budget"):
        run(prepare(rows, FitConfig()), FitConfig(**CFG))


def test_the_report_says_how_far_the_data_exponent_drifts(own_law_fit):
    text = render(own_law_fit)
    assert "Fitted to 25 of 45 runs, the valleys of 5 IsoFLOP budgets" in text
    lo, hi = own_law_fit["drift"]["diagnostics"]["beta_range"]
    assert lo < hi  # it grows with N, as the law's does
    assert f"runs from {lo:.3g} at the smallest fitted size to {hi:.3g} at the largest" in text
