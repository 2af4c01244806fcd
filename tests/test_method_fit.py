"""Method.fit returns a MethodFit (sweep/fit/method.py); its section() is the method's fit.json section, and the
pipeline adds the exponents and the status to it. A method that does not apply still raises MethodSkipped."""

import json

import numpy as np
import pytest

from sweep.fit import FitConfig, MethodSkipped, registry
from sweep.fit.inputs import prepare
from sweep.fit.method import MethodFit
from sweep.fit.noise import Noise
from sweep.fit.pipeline import fit_methods, run_method
from sweep.fit.simulate import Law, isoflop_sweep

N_BOOT = 4
CFG = dict(n_bootstrap=N_BOOT, compare_conventions=False, budgets=[], backtest=False, grid_alpha=[0.0, 0.5, 1.0],
           grid_beta=[0.0, 0.5, 1.0], grid_e=[0.0, 0.5, 1.0], grid_a=[0.0, 5.0, 10.0], grid_b=[0.0, 5.0, 10.0])
"""A small grid and a few resamples: every step of every method runs, in seconds."""
EXTRA = {"approach1": {"frontier", "envelope"}, "approach2": {"budgets"}, "kaplan": {"natural"},
         "approach3_valley": {"valley"}, "approach3_upper": {"upper"}, "approach3_anchored": {"anchor"}}
"""The method-specific keys each method's report and plots read from its section."""


@pytest.fixture(scope="module")
def sweep():
    cfg = FitConfig(**CFG)
    return prepare(isoflop_sweep(Law(), np.logspace(18, 20, 5), seed=1), cfg), cfg


@pytest.fixture(scope="module")
def fits(sweep):
    data, cfg = sweep
    return {name: m.fit(data, cfg) for name, m in registry.METHODS.items()}


@pytest.mark.parametrize("name", list(registry.METHODS))
def test_every_registered_method_returns_a_method_fit(name, fits):
    got = fits[name]
    assert isinstance(got, MethodFit), type(got)
    assert got.params and all(isinstance(v, float) for v in got.params.values())
    assert set(got.extra) == EXTRA.get(name, set())
    # every method here draws its law's bootstrap: one row per resample, one column per parameter
    assert got.samples.shape == (N_BOOT, len(got.params)) and got.n_resamples == N_BOOT
    section = json.loads(json.dumps(got.section()))  # what fit.json holds
    assert section["params"] == got.params and section["samples"]["names"] == list(got.params)
    assert np.allclose(section["samples"]["values"], got.samples, equal_nan=True, atol=1e-10)
    assert set(got.extra) <= set(section) and "notes" not in section
    assert section["intervals"].keys() <= got.params.keys() and section["bootstrap"] == got.bootstrap


def test_section_is_the_summary_then_what_was_measured_then_the_methods_own_keys():
    nz = Noise(sigma=0.01, dof=3, source="test")
    got = MethodFit(params={"a": 1.0, "b": 2.0}, bootstrap="none", intervals={"a": [0.5, 1.5]}, se={"a": 0.25},
                    samples=np.array([[1.0, 2.0], [1.000000000004, np.nan]]), residuals=np.array([0.1, -0.1]),
                    noise=nz, diagnostics={"rms": 0.1}, notes=["a warning"], extra={"own": [1, 2]})
    section = got.section()
    assert list(section) == ["params", "intervals", "se", "finite", "n_bootstrap_ok", "n_resamples", "samples",
                             "bootstrap", "residuals", "noise", "diagnostics", "own"]
    values = section["samples"]["values"]
    assert section["samples"]["names"] == ["a", "b"] and values[0] == [1.0, 2.0] and values[1][0] == 1.0  # rounded
    assert np.isnan(values[1][1])  # a resample that gave nothing stays NaN
    assert section["residuals"] == [0.1, -0.1] and section["noise"] == nz.as_dict() and section["own"] == [1, 2]
    # what a method did not measure is absent, not null: readers test for the key
    bare = MethodFit(params={"a": 1.0}, bootstrap="not run").section()
    assert list(bare) == ["params", "intervals", "se", "finite", "n_bootstrap_ok", "n_resamples", "bootstrap"]


def test_summarized_keeps_no_samples_from_fewer_than_two_resamples():
    one = MethodFit.summarized({"a": 1.0, "b": 2.0}, np.array([[1.1, 2.1]]), ["a", "b"], 0.9, bootstrap="x")
    assert one.samples is None and one.intervals == {} and one.n_resamples == 0
    two = MethodFit.summarized({"a": 1.0, "b": 2.0}, np.array([[1.1, 2.1], [0.9, np.nan]]), ["a", "b"], 0.9,
                               bootstrap="x")
    assert two.samples.shape == (2, 2) and two.finite == {"a": 2, "b": 1} and two.n_bootstrap_ok == 1
    assert two.intervals["a"] == pytest.approx([0.91, 1.09]) and "b" not in two.intervals


def test_run_method_adds_the_exponents_and_the_status_to_the_section(sweep, fits):
    data, cfg = sweep
    got = fits["approach3"]
    section = got.section()
    out = run_method("approach3", got, cfg)
    assert {k: out[k] for k in section} == section and out["status"] == "ok"
    a, b = registry.get("approach3").exponents(got.params)
    assert out["exponents"] == {"a": pytest.approx(float(a), abs=1e-15), "b": pytest.approx(float(b), abs=1e-15)}
    assert out["exponent_intervals"]["a"][0] <= out["exponents"]["a"] <= out["exponent_intervals"]["a"][1]
    assert out["exponent_finite"] == N_BOOT


def test_fit_methods_moves_a_methods_notes_to_the_fits_warnings(sweep, fits):
    """Approach 1 on final losses (no training curves) notes it; the note goes to the fit's warnings, not its
    section."""
    data, cfg = sweep
    assert len(fits["approach1"].notes) == 1 and "no training curves" in fits["approach1"].notes[0]
    notes = []
    out = fit_methods(data, FitConfig(**{**CFG, "methods": ["approach1"]}), notes)
    assert notes == fits["approach1"].notes
    assert out["approach1"]["status"] == "ok" and "notes" not in out["approach1"]


@pytest.mark.parametrize("name, runs, reason", [
    ("approach2", dict(sizes_per_budget=2), "no compute budget has 3 model sizes"),
    ("approach3_valley", dict(budgets=[1e19]), "needs at least 2"),
    ("approach3", dict(budgets=[1e19]), "design is nearly collinear"),
])
def test_a_method_that_does_not_apply_raises_method_skipped_with_its_reason(name, runs, reason):
    cfg = FitConfig(**{**CFG, "methods": [name]})
    runs = {"budgets": np.logspace(18, 20, 5), **runs}
    data = prepare(isoflop_sweep(Law(), runs.pop("budgets"), seed=1, **runs), cfg)
    with pytest.raises(MethodSkipped, match=reason) as exc:
        registry.get(name).fit(data, cfg)
    notes = []
    out = fit_methods(data, cfg, notes)
    assert out[name] == {"status": "skipped", "reason": str(exc.value)}
    assert notes == [f"{name} skipped (its section of the report says why)"]
