"""scripts/check_public.py's cluster bootstrap and figures, on constructed runs (fast; the script on the published
tables is tests/test_fit_published.py's slow test)."""

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from check_public import cluster_bootstrap, differences, figures, per_fit, worse_beyond_interval  # noqa: E402


def _sweeps(seed: int, spread: float, n_fits: int = 20, n_runs: int = 10) -> list:
    """n_fits fits' runs: each fit misses all its runs by one shared offset (N(0, spread)) plus each run's own
    noise (N(0, 0.2)); the population's median is 0."""
    rng = np.random.default_rng(seed)
    return [rng.normal(0, spread) + rng.normal(0, 0.2, n_runs) for _ in range(n_fits)]


def test_redrawing_fits_covers_the_true_median_where_redrawing_runs_does_not():
    """Runs of one fit share its error: over 40 such tables the cluster interval covers the population's median
    (0) about as often as it claims, while one interval over the runs pooled as one cluster (runs redrawn) is about
    three times too narrow and covers about half the time."""
    clustered, naive = [], []
    for seed in range(40):
        fits = _sweeps(seed, 1.0)
        _, lo, hi = cluster_bootstrap(fits, np.median, n_resamples=400, seed=seed)
        clustered.append(lo <= 0 <= hi)
        _, lo, hi = cluster_bootstrap([np.concatenate(fits)], np.median, n_resamples=400, seed=seed)
        naive.append(lo <= 0 <= hi)
    assert np.mean(clustered) >= 0.85
    assert np.mean(naive) <= 0.7


def test_the_interval_widens_with_the_spread_between_fits():
    """The same runs' noise in every fit, fits apart by 0, 0.5 and 2 times one set of offsets: identical fits give
    an interval of width 0 (every resample pools the same runs), and the width grows with the spread."""
    rng = np.random.default_rng(3)
    noise, offsets = rng.normal(0, 0.1, 10), rng.normal(0, 1, 20)
    widths = []
    for scale in (0.0, 0.5, 2.0):
        point, lo, hi = cluster_bootstrap([noise + scale * o for o in offsets], np.median, n_resamples=500, seed=1)
        assert lo <= point <= hi
        widths.append(hi - lo)
    assert widths[0] == 0
    assert 0 < widths[1] < widths[2]


def test_a_difference_whose_fits_all_favour_one_side_excludes_zero():
    """Recommended minus approach 3: where every fit's runs miss more under the recommended prediction, the whole
    interval lies above 0 (the verdict is worse); where half the fits favour each side by the same margins, it
    holds 0 (no worse)."""
    rng = np.random.default_rng(5)
    base = [np.abs(rng.normal(0, 0.01, 8)) for _ in range(12)]
    margins = np.linspace(0.001, 0.01, 12)
    worse = [np.column_stack([b + m, b]) for b, m in zip(base, margins)]
    point, lo, hi = cluster_bootstrap(worse, differences, n_resamples=500, seed=0)
    pooled = np.concatenate(worse)
    assert point[0] == pytest.approx(np.median(pooled[:, 0]) - np.median(pooled[:, 1]))
    assert point[1] == pytest.approx(np.mean(pooled[:, 0]) - np.mean(pooled[:, 1]))
    assert lo[0] > 0 and lo[1] > 0 and worse_beyond_interval(lo[0])
    mixed = [np.column_stack([b + m, b]) if i % 2 else np.column_stack([b, b + m])
             for i, (b, m) in enumerate(zip(base, margins))]
    _, lo, hi = cluster_bootstrap(mixed, differences, n_resamples=500, seed=0)
    assert lo[0] < 0 < hi[0] and not worse_beyond_interval(lo[0])


def test_the_verdict_is_worse_only_when_the_whole_interval_lies_above_zero():
    assert worse_beyond_interval(1e-6)
    assert not worse_beyond_interval(0.0)
    assert not worse_beyond_interval(-0.01)
    assert not worse_beyond_interval(float("nan"))


def test_strata_keep_the_mix_of_tables_and_one_fit_has_its_runs_redrawn():
    """A table of one fit whose runs all read 0 and a table of two fits whose runs read 1: redrawn within tables,
    every resample pools a third zeros, so the mean's interval is the point; redrawn across them it is not. A lone
    fit with runs that differ has its runs redrawn, so its interval has width; a seed repeats its interval."""
    clusters = [np.zeros(10), np.ones(10), np.ones(10)]
    assert cluster_bootstrap(clusters, np.mean, 300, 0, strata=["a", "b", "b"]) == pytest.approx((2 / 3,) * 3)
    _, lo, hi = cluster_bootstrap(clusters, np.mean, 300, 0)
    assert lo < 2 / 3 < hi
    one = [np.arange(10.0)]
    point, lo, hi = cluster_bootstrap(one, np.mean, 300, 7)
    assert point == 4.5 and lo < 4.5 < hi
    assert cluster_bootstrap(one, np.mean, 300, 7) == (point, lo, hi)
    with pytest.raises(ValueError):
        cluster_bootstrap(clusters, np.mean, 10, 0, strata=["a"])


def test_the_five_figures_skip_runs_without_a_value():
    """Median, p90 and max |error|, coverage and median half-width, each over the runs that have that value; a
    figure no run has is NaN, without a warning."""
    rows = np.array([[0.01, 1, 0.05], [0.02, 0, np.nan], [0.03, np.nan, 0.07], [np.nan, 1, 0.09]])
    assert figures(rows) == pytest.approx([0.02, np.percentile([0.01, 0.02, 0.03], 90), 0.03, 2 / 3, 0.07])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = figures(np.array([[0.01, np.nan, np.nan]]))
        assert got[:3] == pytest.approx([0.01] * 3) and np.isnan(got[3:]).all()
        assert np.isnan(differences(np.array([[0.01, np.nan]]))).all()


def test_per_fit_sets_each_runs_methods_side_by_side():
    """One cluster per fit, one row per held-out run: (error, covered, half-width) of the recommended prediction
    then approach 3's, NaN where a method gave none; methods not asked for are left out."""
    scored = [
        {"split": "f1", "run": "r0", "method": "recommended", "error": 0.01, "covered": True, "halfwidth": 0.05},
        {"split": "f1", "run": "r0", "method": "approach3", "error": 0.02, "covered": False, "halfwidth": 0.03},
        {"split": "f1", "run": "r0", "method": "kaplan", "error": 0.5, "covered": False, "halfwidth": 0.01},
        {"split": "f1", "run": "r1", "method": "recommended", "error": 0.03, "covered": True, "halfwidth": 0.06},
        {"split": "f1", "run": "r1", "method": "approach3", "error": None, "covered": None, "halfwidth": None},
        {"split": "f2", "run": "r0", "method": "recommended", "error": 0.04, "covered": False, "halfwidth": None},
    ]
    got = per_fit(scored, ("recommended", "approach3"))
    assert list(got) == ["f1", "f2"]
    np.testing.assert_array_equal(got["f1"], [[0.01, 1, 0.05, 0.02, 0, 0.03], [0.03, 1, 0.06] + [np.nan] * 3])
    np.testing.assert_array_equal(got["f2"], [[0.04, 0, np.nan] + [np.nan] * 3])


def test_the_script_says_its_tables_shaped_the_defaults():
    """Its docstring (the --help text) calls its figures a validation score and forbids choosing defaults from
    them; the claim that nothing is tuned to the tables is gone."""
    import check_public

    doc = " ".join(check_public.__doc__.split())
    assert "validation score, not a test score" in doc and "Never choose a default from its line" in doc
    assert "tuned to these tables" not in doc
    assert "validation score, not a test score" in check_public.NOTICE
