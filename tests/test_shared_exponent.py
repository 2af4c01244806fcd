"""Gadre et al.'s one-exponent law (L = E + A/N^α + B/D^α): recovered from sweeps drawn from it, its allocation
reported as fixed by the form, and its predictions scored beside the other laws."""

import numpy as np
import pytest

from sweep.fit import FitConfig, fit
from sweep.fit.holdout import predict_run
from sweep.fit.laws import chinchilla_loss
from sweep.fit.config import MethodSkipped
from sweep.fit.inputs import prepare
from sweep.fit.report import render
from sweep.fit.shared_exponent import run

LAW = dict(E=1.8, A=300.0, B=900.0, alpha=0.3, beta=0.3)


def runs_from(law: dict, seed=0, noise=0.003) -> list:
    """An N x tokens-per-parameter grid (Gadre et al.'s design: 5 sizes x M from 5 to 160), multiplicative noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in np.logspace(7, 8.6, 5):
        for m in (5, 10, 20, 40, 80, 160):
            d = m * n
            rows.append({"n_params": n, "n_tokens": d, "status": "done",
                         "loss": chinchilla_loss(n, d, *law.values()) * np.exp(noise * rng.standard_normal())})
    return rows


@pytest.fixture(scope="module")
def one_exponent_fit():
    cfg = FitConfig(methods=["approach3", "shared_exponent"], n_bootstrap=60, compare_conventions=False, budgets=[],
                    grid_alpha=[0.0, 0.5, 1.0], grid_beta=[0.0, 0.5, 1.0], grid_e=[0.0, 0.5], grid_a=[0.0, 5.0, 10.0],
                    grid_b=[0.0, 5.0, 10.0])
    return fit(runs_from(LAW), cfg)


def test_the_one_exponent_law_recovers_its_own_parameters(one_exponent_fit):
    r = one_exponent_fit["shared_exponent"]
    assert r["status"] == "ok"
    assert r["params"]["alpha"] == r["params"]["beta"]
    assert r["params"]["alpha"] == pytest.approx(LAW["alpha"], abs=0.03)
    assert r["params"]["E"] == pytest.approx(LAW["E"], rel=0.05)
    for k in ("E", "alpha"):
        lo, hi = r["intervals"][k]
        assert lo <= LAW[k] <= hi, (k, lo, hi)
    assert r["exponents"] == {"a": pytest.approx(0.5), "b": pytest.approx(0.5)}


def test_its_prediction_ten_times_out_is_within_a_percent_and_covered(one_exponent_fit):
    n, d = 10 ** 9.1, 40 * 10 ** 9.1  # 10x the largest size, ~12x the largest compute
    truth = chinchilla_loss(n, d, *LAW.values())
    p = predict_run(one_exponent_fit, n, d, 6 * n * d, truth, at_optimum=False)["methods"]["shared_exponent"]
    assert abs(p["rel_error"]) < 0.01
    assert p["covered"]


def test_the_report_says_its_allocation_is_fixed_by_the_form_not_measured(one_exponent_fit):
    r = one_exponent_fit["shared_exponent"]
    assert "a" not in r.get("exponent_intervals", {})  # a zero-width interval would read as precision
    text = render(one_exponent_fit)
    assert "| a (N* ∝ C^a) | 0.5 | - | - | fixed by the form (α = β) |" in text
    assert "| beta |" in text and "= α (one exponent)" in text
    assert "| shared_exponent | 0.5 | fixed by the form (α = β) | 0.5 | fixed by the form (α = β) |" in text


def test_it_refuses_too_few_runs_with_the_reason():
    rows = runs_from(LAW)[:4]
    with pytest.raises(MethodSkipped, match="4 parameters but only 4 runs"):
        run(prepare(rows, FitConfig(), []), FitConfig())


def test_sweep_compare_leaves_its_fixed_exponents_out(one_exponent_fit):
    from sweep.fit.compare import compare_fits

    rows = compare_fits(one_exponent_fit, one_exponent_fit)["exponents"]
    assert [r["method"] for r in rows] == ["approach3"]  # 0.5 against 0.5 would read as two sweeps agreeing
