"""The calibration laws of sweep/fit/simulate.py (forms no default was chosen on) and the oracle half-width that
scripts/check_coverage.py --oracle scores the recommended prediction against. Pure numpy/scipy, no fit pipeline."""

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import brentq, least_squares

from sweep.fit.simulate import (CALIBRATION_LAWS, BrokenModelLaw, CurvedModelLaw, DataFloorLaw, Law, isoflop_sweep,
                                narrowest_halfwidth)

BUDGETS = np.logspace(18, 20, 5)


@pytest.mark.parametrize("name", list(CALIBRATION_LAWS))
def test_numeric_optimum_matches_a_brute_force_grid(name):
    """At 1e19 and 1e22 FLOPs, the law's optimum is the lowest loss on a dense grid of 200001 sizes over 9 decades
    (a step of 0.01% in N), to the search's 0.2%-in-log10-N resolution in N* and 1e-6 in L*."""
    law = CALIBRATION_LAWS[name]()
    for c in (1e19, 1e22):
        n, d, loss = law.optimum(c)
        grid = np.logspace(5, 14, 200001)
        losses = law.loss(grid, c / (6.0 * grid))
        assert n == pytest.approx(grid[np.argmin(losses)], rel=5e-3)
        assert d == pytest.approx(c / (6.0 * n), rel=1e-12)
        assert loss == pytest.approx(losses.min(), rel=1e-6)
        assert loss == pytest.approx(float(law.loss(n, d)), rel=1e-12)
    # an array of budgets gives the same optima as one at a time
    ns, _, ls = law.optimum(np.array([1e19, 1e22]))
    assert ns[1] == pytest.approx(law.optimum(1e22)[0]) and ls[0] == pytest.approx(law.optimum(1e19)[2])


@pytest.mark.parametrize("law", [CurvedModelLaw(curvature=0.0), DataFloorLaw(e_d=0.0), BrokenModelLaw(delta=0.0)])
def test_each_calibration_law_reduces_to_hoffmann_at_zero(law):
    n, d = np.logspace(7, 10, 7), np.logspace(9, 12, 7)
    np.testing.assert_allclose(law.loss(n, d), Law().loss(n, d), rtol=1e-12)
    assert law.optimum(1e21)[0] == pytest.approx(Law().optimum(1e21)[0], rel=5e-3)


def chinchilla_fit(law: Law):
    """Least squares of log L = LSE(a - alpha log N, b - beta log D, e) (approach 3's form, written out here so the
    test does not depend on the fitter's internals) on the law's noiseless IsoFLOP sweep, best of 32 starts:
    (theta, log residuals)."""
    runs = isoflop_sweep(law, BUDGETS, noise=0.0, jitter=False)
    log_n, log_d, log_l = (np.log([r[k] for r in runs]) for k in ("n_params", "n_tokens", "loss"))

    def resid(t):
        return np.logaddexp.reduce([t[0] - t[3] * log_n, t[1] - t[4] * log_d, t[2] + 0 * log_n], axis=0) - log_l

    best = None
    for a, b, e, alpha, beta in itertools.product((4.0, 7.0), (4.0, 7.0), (0.0, 0.5), (0.2, 0.45), (0.2, 0.45)):
        r = least_squares(resid, [a, b, e, alpha, beta], bounds=([-np.inf] * 3 + [0, 0], [np.inf] * 5),
                          xtol=1e-12, ftol=1e-12, gtol=1e-12)
        if best is None or r.cost < best.cost:
            best = r
    return best.x, best.fun


def test_the_chinchilla_fit_recovers_hoffmanns_law_exactly():
    """The control for the next test: the same fit on Hoffmann et al.'s own noiseless sweep leaves no residual."""
    theta, res = chinchilla_fit(Law())
    assert np.sqrt(np.mean(res ** 2)) < 1e-8
    np.testing.assert_allclose(theta[3:], [0.34, 0.28], atol=1e-6)


@pytest.mark.parametrize("name", list(CALIBRATION_LAWS))
def test_no_calibration_law_is_a_chinchilla_law(name):
    """Chinchilla's form fitted to the law's noiseless sweep leaves a systematic residual: an rms log residual of
    over 0.05% (a tenth of the run-to-run noise the checks simulate; Hoffmann's own leaves < 1e-8), largest where
    the form bends away, at a budget's edge sizes or at the smallest or largest budget."""
    law = CALIBRATION_LAWS[name]()
    _, res = chinchilla_fit(law)
    assert np.sqrt(np.mean(res ** 2)) > 5e-4
    per_budget = np.abs(res).reshape(len(BUDGETS), -1)
    worst = np.unravel_index(np.argmax(per_budget), per_budget.shape)
    assert worst[1] in (0, per_budget.shape[1] - 1) or worst[0] in (0, len(BUDGETS) - 1)


def test_the_curved_laws_misfit_grows_with_the_extrapolation():
    """The misfit grows with the extrapolation: the fitted Chinchilla law's loss at the true optimum of 100x the
    largest budget misses by over 0.5%, more than at the largest budget itself."""
    law = CurvedModelLaw()
    theta, _ = chinchilla_fit(law)

    def miss(c):
        n, d, loss = law.optimum(c)
        pred = np.exp(np.logaddexp.reduce([theta[0] - theta[3] * np.log(n), theta[1] - theta[4] * np.log(d),
                                           theta[2]]))
        return pred / loss - 1

    assert abs(miss(1e22)) > 0.005
    assert abs(miss(1e22)) > 3 * abs(miss(1e20))


def test_narrowest_halfwidth_is_the_least_rescaling_that_covers_the_share():
    """The oracle rescales every PI by one factor: after that rescaling exactly 90% of the runs are covered; it
    does not depend on how wide the PIs were to begin with (doubling every log width gives the same answer); and
    predictions that all hit their runs need no width at all."""
    rng = np.random.default_rng(0)
    pred_err = rng.normal(0, 0.02, 200)  # log(measured / predicted)
    width = rng.uniform(0.02, 0.06, 200)  # each PI's log half-width, its own relative width
    rows = [{"ratios": (np.exp(-w), np.exp(w), np.exp(m))} for w, m in zip(width, pred_err)]
    at90 = narrowest_halfwidth(rows, 0.9)
    # the factor the oracle used: with symmetric log widths its half-width is the median of sinh(k w), monotone in k
    k = brentq(lambda x: np.median(np.sinh(x * width)) - at90, 1e-3, 10, xtol=1e-14)
    assert np.sum(np.abs(pred_err) / width <= k * (1 + 1e-6)) == 180  # 90% of 200, no more
    wide = [{"ratios": (np.exp(-2 * w), np.exp(2 * w), np.exp(m))} for w, m in zip(width, pred_err)]
    assert narrowest_halfwidth(wide, 0.9) == pytest.approx(at90, rel=1e-9)
    exact = [{"ratios": (np.exp(-w), np.exp(w), 1.0)} for w in width]
    assert narrowest_halfwidth(exact, 0.9) == 0.0
    assert narrowest_halfwidth(rows, 0.5) < at90 < narrowest_halfwidth(rows, 0.99)


def test_oracle_summary_scores_the_recommended_prediction_against_the_oracle(capsys):
    """check_coverage.py --oracle's summary: coverage is the share of seeds whose PI covered, the half-widths are
    medians, the oracle is narrowest_halfwidth over the seeds' 95% PIs, and the ratio is the 95% PI's median
    half-width over the oracle (ratio90: the 90% PI's). A seed without a recommended prediction at a multiple is
    left out there."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from check_coverage import MULTIPLES, oracle_summary

    per_seed = []
    for i in range(10):
        miss = 0.01 * (i + 1) * (1 if i % 2 else -1)  # 1%..10% off, alternating sides
        row = {}
        for mult in MULTIPLES:
            row.update({f"pi_{mult}x": abs(miss) <= 0.08, f"pi90_{mult}x": abs(miss) <= 0.06,
                        f"hw_{mult}x": 0.08, f"hw90_{mult}x": 0.06, f"err_{mult}x": miss, f"lead_{mult}x": "stacked",
                        f"ratios_{mult}x": (0.92, 1.08, 1 + miss)})
        per_seed.append({"recommended": row})
    per_seed.append({"recommended": {**{f"{k}_{m}x": None for k in ("pi", "pi90", "err", "hw", "hw90", "ratios",
                                                                   "lead") for m in MULTIPLES}}})
    per_seed.append({})  # no recommended prediction at all
    out = oracle_summary(per_seed, "test")
    oracle = narrowest_halfwidth([{"ratios": (0.92, 1.08, 1 + 0.01 * (i + 1) * (1 if i % 2 else -1))}
                                  for i in range(10)], 0.9)
    for mult in MULTIPLES:
        assert out[f"pi95_{mult}x"] == pytest.approx(0.8)
        assert out[f"pi90_{mult}x"] == pytest.approx(0.6)
        assert out[f"hw95_{mult}x"] == pytest.approx(0.08)
        assert out[f"oracle90_{mult}x"] == pytest.approx(oracle)
        assert out[f"ratio_{mult}x"] == pytest.approx(0.08 / oracle)
        assert out[f"ratio90_{mult}x"] == pytest.approx(0.06 / oracle)  # like for like: the 90% PI's own width
        assert out[f"err_{mult}x"] == pytest.approx(0.055)
    assert 0.08 < oracle < 0.1  # the 9th-worst run is 9% off: the 8% PIs must widen to reach it
    assert "stacked 10" in capsys.readouterr().out
