"""Kaplan et al.'s single-variable laws on the sweeps they need: sizes at one D (L(N)), one size at several D
(L(D)). Such a sweep has no compute-optimal method and is still fitted, with its section and kaplan_slices.png."""

import numpy as np
import pytest

from sweep.fit import FitConfig, FitInputError, fit
from sweep.fit.plots import write_plots
from sweep.fit.report import render


def noisy(loss, i):
    return loss * np.exp(0.002 * np.sin(7.0 * i))  # deterministic, small


def model_size_sweep():
    """experiment=kaplan_model_size's design: 5 sizes at 4M tokens, L(N) = 1.5 + (3e3 / N)^0.3 (x_c = 3e3)."""
    return [{"n_params": n, "n_tokens": 4e6, "loss": noisy(1.5 + (3e3 / n) ** 0.3, i), "status": "done"}
            for i, n in enumerate([6e3, 2.1e4, 4.9e4, 9.6e4, 1.67e5])]


def data_size_sweep():
    """experiment=kaplan_data_size's design: one size at 6 token counts, L(D) = 1.2 + (2e4 / D)^0.25."""
    return [{"n_params": 6e4, "n_tokens": d, "loss": noisy(1.2 + (2e4 / d) ** 0.25, i), "status": "done"}
            for i, d in enumerate([2.5e5, 5e5, 1e6, 2e6, 4e6, 8e6])]


@pytest.mark.parametrize("runs, law, alpha, floor", [(model_size_sweep, "L(N)", 0.3, 1.5),
                                                     (data_size_sweep, "L(D)", 0.25, 1.2)])
def test_a_kaplan_sweep_is_fitted_by_its_single_variable_law(tmp_path, runs, law, alpha, floor):
    result = fit(runs(), FitConfig(n_bootstrap=10, compare_conventions=False))
    assert all(result[m]["status"] == "skipped" for m in result["config"]["methods"])
    fitted = result["single_variable"][law]
    assert fitted["status"] == "ok" and fitted["alpha"] == pytest.approx(alpha, abs=0.05)
    assert fitted["E"] == pytest.approx(floor, abs=0.1)
    assert any("no compute-optimal method applies" in w for w in result["warnings"])
    assert "kaplan_slices.png" in write_plots(result, tmp_path) and (tmp_path / "kaplan_slices.png").stat().st_size > 1000
    report = render(result)
    assert "## Single-variable laws" in report and f"- {law}: α = " in report
    assert "## Compute-optimal allocation" not in report  # no method to allocate with


def test_approach1_does_not_call_every_run_a_frontier():
    """Sizes at one D: each compute has one run, so "each budget's best run" is every run, not an optimum."""
    with pytest.raises(FitInputError, match="approach1: every compute budget has one model size"):
        fit(model_size_sweep(), FitConfig(n_bootstrap=0, compare_conventions=False, methods=["approach1"]))


def test_one_size_without_a_law_is_still_refused():
    runs = [{"n_params": 1e6, "n_tokens": d, "loss": 3.0 - 0.1 * i, "status": "done"}
            for i, d in enumerate([1e7, 2e7, 4e7])]  # 3 token counts: L(D) with a floor needs 4
    with pytest.raises(FitInputError, match="only one model size.*several sizes"):
        fit(runs, FitConfig(n_bootstrap=0, compare_conventions=False))
    same = [{"n_params": 1e6, "n_tokens": 1e8, "loss": 3.0 + 0.01 * i, "status": "done"} for i in range(6)]
    with pytest.raises(FitInputError, match="only one model size"):  # one size, one D: nothing varies
        fit(same, FitConfig(n_bootstrap=0, compare_conventions=False))
