"""The one LSE estimator (sweep/fit/estimator.py): every method built on it gives the fit.json section it gave
before it was one estimator, number for number, and its run selections pick the runs they name.

The reference sections in data/lse_estimator_snapshot.json were written by the methods' own code before they were
made wrappers of the estimator (`python tests/test_lse_estimator.py --regenerate` rewrites them from the code as it
is now: only do that for a change that is meant to move the numbers, and say so in its commit).
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from sweep.fit import FitConfig, registry
from sweep.fit.inputs import prepare
from sweep.fit.simulate import Law, isoflop_sweep

SNAPSHOT = Path(__file__).resolve().parent / "data" / "lse_estimator_snapshot.json"
METHODS = ["approach3", "approach3_valley", "approach3_upper", "drift", "shared_exponent"]
CFG = dict(n_bootstrap=20, compare_conventions=False, budgets=[], backtest=False, grid_alpha=[0.0, 0.5, 1.0],
           grid_beta=[0.0, 0.5, 1.0], grid_e=[0.0, 0.5, 1.0], grid_a=[0.0, 5.0, 10.0], grid_b=[0.0, 5.0, 10.0])
"""A grid of 243 starts and 20 resamples: every step of each method runs, in seconds."""
TIMING = ("grid_seconds",)
"""Keys whose values are wall-clock times, not results."""


NO_LAW_INTERVALS = "approach3, law_intervals=False"
"""Approach 3 without the law's bootstrap: its PI's refits then start from the best optimum alone."""
CASES = METHODS + [NO_LAW_INTERVALS]


def sections() -> dict:
    """Each method's fit.json section on the simulated sweep, without its timings."""
    cfg = FitConfig(**CFG)
    data = prepare(isoflop_sweep(Law(), np.logspace(18, 20, 5), seed=1), cfg)
    out = {name: _strip(registry.get(name).fit(data, cfg).section()) for name in METHODS}
    out[NO_LAW_INTERVALS] = _strip(registry.get("approach3").fit(data, FitConfig(**{**CFG, "law_intervals": False}))
                                   .section())
    return out


def _strip(x):
    if isinstance(x, dict):
        return {k: _strip(v) for k, v in x.items() if k not in TIMING}
    if isinstance(x, (list, tuple)):
        return [_strip(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


def _leaves(x, path=()):
    """(path, value) of every leaf of nested dicts and lists."""
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _leaves(v, path + (i,))
    else:
        yield path, x


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return (np.isnan(a) and np.isnan(b)) or a == pytest.approx(b, rel=1e-9, abs=1e-12)
    return a == b


@pytest.fixture(scope="module")
def now():
    if not SNAPSHOT.exists():
        pytest.fail(f"{SNAPSHOT} missing: it is part of the repository")
    return sections()


@pytest.fixture(scope="module")
def before():
    return json.loads(SNAPSHOT.read_text())


@pytest.mark.parametrize("method", CASES)
def test_params_match_the_methods_before_the_estimator(method, now, before):
    got, ref = now[method]["params"], before[method]["params"]
    assert set(got) == set(ref)
    for k, v in ref.items():
        assert got[k] == pytest.approx(v, rel=1e-9, abs=1e-12), (method, k, got[k], v)


@pytest.mark.parametrize("method", CASES)
def test_every_key_and_value_of_the_section_matches(method, now, before):
    """Intervals, bootstrap and PI samples, residuals, noise and diagnostics too: the same keys, the same values."""
    got, ref = dict(_leaves(now[method])), dict(_leaves(before[method]))
    assert sorted(map(str, got)) == sorted(map(str, ref)), method
    moved = [(p, got[p], v) for p, v in ref.items() if not _same(got[p], v)]
    assert not moved, (method, moved[:5])


def test_the_snapshot_is_a_real_fit(before):
    """The reference is what the methods fit, not an empty or skipped section: the law's exponents come back."""
    for method in METHODS:
        assert "pi_samples" in before[method] and len(before[method]["samples"]["values"]) == CFG["n_bootstrap"]
    p = before["approach3"]["params"]
    assert p["alpha"] == pytest.approx(Law().alpha, abs=0.05) and p["beta"] == pytest.approx(Law().beta, abs=0.05)
    assert before["approach3_valley"]["valley"]["runs"] < before["approach3_valley"]["valley"]["of"]
    assert "samples" not in before[NO_LAW_INTERVALS] and "pi_samples" in before[NO_LAW_INTERVALS]


def test_selections_pick_the_runs_they_name():
    from sweep.fit.config import MethodSkipped
    from sweep.fit.selection import select, valley_runs

    cfg = FitConfig(**CFG)
    data = prepare(isoflop_sweep(Law(), np.logspace(18, 20, 5), seed=1), cfg)
    every = select(data, cfg, "all")
    assert every.runs.tolist() == list(range(data.loss.size)) and every.weights is None and not every.valleys
    idx = valley_runs(data, cfg.min_sizes_per_budget, cfg.parabola_window)
    valley, upper = select(data, cfg, "valley"), select(data, cfg, "upper")
    assert 0 < idx.size < data.loss.size and valley.budgets == 5
    assert valley.runs.tolist() == idx.tolist() == upper.runs.tolist() and valley.weights is None
    # upper: the valley runs, each weighted by its compute over the largest
    assert np.allclose(upper.weights, data.c[idx] / data.c[idx].max()) and upper.weights.max() == 1.0
    with pytest.raises(ValueError, match="choose from"):
        select(data, cfg, "lower")
    one_budget = data.subset(np.flatnonzero(data.budget == 0))
    with pytest.raises(MethodSkipped, match="my fit needs at least 2"):
        select(one_budget, cfg, "valley", "my fit")


def test_a_form_fits_on_any_selection():
    """Forms and selections are independent: the one-exponent law on the valley runs, which no method fits, gives
    a fit on those runs, labelled so."""
    from sweep.fit import estimator, shared_exponent
    from sweep.fit.selection import select

    cfg = FitConfig(**{**CFG, "n_bootstrap": 0})
    data = prepare(isoflop_sweep(Law(), np.logspace(18, 20, 5), seed=1), cfg)
    sel = select(data, cfg, "valley")
    got = estimator.fit(shared_exponent.FORM, sel, cfg)
    assert got.residuals.size == sel.runs.size < data.loss.size
    assert got.params["alpha"] == got.params["beta"] and 0.2 < got.params["alpha"] < 0.5
    assert got.noise.source.startswith("one-exponent law on the valley runs'")
    section = got.section(data, cfg)
    assert len(section["residuals"]) == data.loss.size and "samples" not in section


if __name__ == "__main__" and "--regenerate" in sys.argv:
    SNAPSHOT.write_text(json.dumps(sections(), indent=None, sort_keys=True) + "\n")
    print(f"wrote {SNAPSHOT}")
