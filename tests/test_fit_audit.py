"""The fitter audit's defects, one test each, on simulated sweeps from a known Chinchilla law (sweep.fit.simulate)."""

import json

import numpy as np
import pandas as pd
import pytest

from sweep.fit import FitConfig, fit
from sweep.fit import allocation
from sweep.fit.inputs import Curve, prepare
from sweep.fit.pipeline import compare
from sweep.fit.approach3 import pi_noise
from sweep.fit.noise import from_fit
from sweep.fit.report import _noise_line, render
from sweep.fit.simulate import Law, isoflop_sweep, new_run_loss

LAW = Law()
BUDGETS = np.logspace(18, 20, 5)
SMALL_GRID = dict(grid_alpha=[0.0, 0.5, 1.0], grid_beta=[0.0, 0.5, 1.0], grid_e=[0.0, 0.5], grid_a=[0.0, 5.0, 10.0],
                  grid_b=[0.0, 5.0, 10.0])
QUICK = dict(compare_conventions=False, backtest=False, budgets=[], **SMALL_GRID)


def only(method, **kw):
    return FitConfig(methods=[method], **{**QUICK, **kw})


def test_final_loss_frontier_takes_each_budgets_best_run():
    # Runs of one budget differ in compute only by rounding: ordered by C, a worse run can come
    # first and "beat every cheaper run". The frontier must hold exactly each budget's best.
    runs = isoflop_sweep(LAW, BUDGETS, seed=1)
    rng = np.random.default_rng(0)
    for r in runs:
        r["flops"] *= 1 + 1e-9 * rng.standard_normal()
        del r["budget_index"]
    out = fit(runs, only("approach1", n_bootstrap=0))
    frontier = out["approach1"]["frontier"]
    best = [min(range(b * 7, b * 7 + 7), key=lambda i: runs[i]["loss"]) for b in range(5)]
    assert sorted(frontier) == best


def curve_runs():
    """An IsoFLOP sweep whose runs carry val-loss curves from 0.01% of their tokens (no schedule effect)."""
    rows = isoflop_sweep(LAW, BUDGETS, noise=0.0, seed=0, jitter=False)
    for r in rows:
        t = np.geomspace(r["n_tokens"] / 1e4, r["n_tokens"], 60)
        r["curve"] = Curve(t, LAW.loss(r["n_params"], t))
    return pd.DataFrame(rows)


def test_curve_envelope_regresses_only_where_runs_have_finished():
    # Below the smallest final compute the smallest model wins by default, whatever the law:
    # regressing there pulled a to 0.41 on noise-free curves (true 0.452).
    out = fit(curve_runs(), only("approach1", n_bootstrap=0))
    assert out["approach1"]["diagnostics"]["source"] == "curves"
    assert out["approach1"]["exponents"]["a"] == pytest.approx(LAW.a, abs=0.02)


def test_approach3_refuses_a_single_budget():
    runs = [r for r in isoflop_sweep(LAW, BUDGETS, seed=2) if r["budget_index"] == 2]
    out = fit(runs, FitConfig(methods=["approach3", "kaplan"], n_bootstrap=0, **QUICK))
    assert out["approach3"]["status"] == "skipped" and "collinear" in out["approach3"]["reason"]


def test_approach3_refuses_two_sizes():
    runs = [{"n_params": n, "n_tokens": d, "loss": float(LAW.loss(n, d))} for n in (1e7, 1e8)
            for d in np.geomspace(1e8, 1e10, 5)]
    out = fit(runs, FitConfig(methods=["approach3", "kaplan"], n_bootstrap=0, **QUICK))
    assert out["approach3"]["status"] == "skipped" and "3 distinct N" in out["approach3"]["reason"]


def test_approach2_window_counts_sizes_not_rows():
    # Three seeds per point (losses a hair apart) must not move N*: the window is over sizes.
    runs = isoflop_sweep(LAW, BUDGETS, seed=3)
    tripled = [{**r, "run_id": f"{r['run_id']}-s{k}", "loss": r["loss"] * (1 + 1e-4 * (k - 1))}
               for r in runs for k in range(3)]
    cfg = only("approach2", n_bootstrap=0)
    n1 = fit(runs, cfg)["approach2"]["allocation"][0]["n_star"]["value"]
    n3 = fit(tripled, cfg)["approach2"]["allocation"][0]["n_star"]["value"]
    assert n3 == pytest.approx(n1, rel=0.01)


def test_budgets_follow_the_planner_under_the_6nd_convention():
    # Budgets planned on exact FLOPs: under C = 6 N D one budget's runs spread ~20% (attention's
    # share of FLOPs shrinks with N). Grouping by C split 5 budgets into many; budget_index keeps 5.
    runs = isoflop_sweep(LAW, BUDGETS, seed=4, noise=0.0)
    for r in runs:
        k = 6.0 * (1 + 2e7 / r["n_params"]) ** 0.5  # exact FLOPs per (N D), larger for small models
        r["n_tokens"] = r["flops"] / (k * r["n_params"])
    out = fit(runs, FitConfig(methods=["approach2"], n_bootstrap=0, flop_convention="6nd", **QUICK))
    assert out["data"]["budget_source"] == "planner"
    assert out["approach2"]["diagnostics"]["budgets"] == 5
    assert out["approach2"]["diagnostics"]["kept"] == 5


def test_approach2_intervals_are_not_inflated():
    # Resampling runs pooled across budgets dropped sizes and budgets: the interval on a came out ~1.7x
    # too wide. Its width must match the spread of a over repeated sweeps.
    a, width, covered = [], [], []
    for seed in range(30):
        r = fit(isoflop_sweep(LAW, BUDGETS, seed=seed), only("approach2", n_bootstrap=200, seed=seed))["approach2"]
        lo, hi = r["exponent_intervals"]["a"]
        a.append(r["exponents"]["a"])
        width.append(hi - lo)
        covered.append(lo <= LAW.a <= hi)
    ratio = np.mean(width) / (2 * 1.96 * np.std(a, ddof=1))
    assert 0.7 < ratio < 1.35, ratio
    assert np.mean(covered) >= 0.85


@pytest.mark.slow
def test_approach3_prediction_intervals_cover_new_runs_at_10x():
    # The law's bootstrap interval alone covered ~83% of new runs: it leaves out run-to-run noise.
    hits, law_only = [], []
    for seed in range(20):
        out = fit(isoflop_sweep(LAW, BUDGETS, seed=seed), only("approach3", n_bootstrap=100, seed=seed))
        noise = allocation.noise_of(out)
        row = allocation.allocation_row("approach3", out["approach3"], 1e21, 6.0, 0.95, noise)
        measured = new_run_loss(LAW, row["n_star"]["value"], row["d_star"]["value"], 0.01,
                                np.random.default_rng(100 + seed))
        pi, ci = row["loss"]["prediction_interval"], row["loss"]["interval"]
        assert pi[0] <= ci[0] and ci[1] <= pi[1]
        hits.append(pi[0] <= measured <= pi[1])
        law_only.append(ci[0] <= measured <= ci[1])
    assert np.mean(hits) >= 0.85
    assert np.mean(hits) > np.mean(law_only)


def test_noise_comes_from_seed_replicates_when_the_sweep_has_them():
    rng = np.random.default_rng(5)
    runs = []
    for r in isoflop_sweep(LAW, BUDGETS, seed=5, noise=0.0):
        for s in range(3):
            runs.append({**r, "run_id": f"{r['run_id']}-{s}", "seed": s, "loss": r["loss"] * np.exp(0.01 * rng.standard_normal())})
    out = fit(runs, only("approach3", n_bootstrap=20))
    assert out["noise"]["source"].startswith("seed replicates") and out["noise"]["dof"] == 70
    assert out["noise"]["sigma"] == pytest.approx(0.01, rel=0.25)
    reps = out["data"]["replicates"]
    assert len(reps) == 35 and all(r["runs"] == 3 for r in reps)
    assert "## Seed replicates" in render(out) and "seed sd" in render(out)


def _residual_noise(misfit: float, seed: int = 3):
    """from_fit on a real IsoFLOP sweep's design, with residuals = 0.5% noise + a smooth misfit of the law (a tilt in
    log N that grows with the budget, as a law with the wrong exponents leaves, and a level per budget)."""
    data = prepare(isoflop_sweep(LAW, BUDGETS, seed=seed), FitConfig())
    rng = np.random.default_rng(seed)
    u = np.log(data.n) - np.array([np.log(data.n[data.budget == b]).mean() for b in data.budget])
    residuals = 0.005 * rng.standard_normal(data.n.size) + misfit * (data.budget - 2) * (u + 0.5)
    return from_fit(residuals, data, 5, "approach 3")


def test_noise_is_the_residual_scale_where_the_law_fits_and_the_differenced_one_where_it_misfits():
    fits = _residual_noise(0.0)
    assert fits.source == "approach 3 residuals" and fits.dof == 30
    assert fits.sigma == pytest.approx(0.005, rel=0.3)
    misfit = _residual_noise(0.02)  # a residual scale several times the noise: a misfit, not noise
    assert misfit.source.startswith("approach 3 residuals differenced along the sweep, 25 pseudo-residuals")
    assert misfit.sigma == pytest.approx(0.005, rel=0.3)
    assert misfit.dof == 12  # neighbouring pseudo-residuals share runs: about half their count
    scale = float(misfit.source.split("residual scale ")[1].rstrip(")"))
    assert scale > 3 * misfit.sigma  # what the residual scale alone would have called noise
    assert "the excess is the law's misfit, left to the lack-of-fit term" in _noise_line(misfit.as_dict())
    assert "run-to-run noise plus whatever the law does not fit" in _noise_line(fits.as_dict())
    assert pi_noise(misfit.as_dict()).startswith(" The PI's refits on simulated sweeps draw noise sd 0.00")
    assert pi_noise(fits.as_dict()) == ""  # the residual scale needs no word


def test_every_interval_says_how_many_resamples_were_finite():
    out = fit(isoflop_sweep(LAW, BUDGETS, seed=6), FitConfig(methods=["approach1", "approach2"], n_bootstrap=50,
                                                             **{**QUICK, "budgets": [1e22]}))
    for m in ("approach1", "approach2"):
        r = out[m]
        assert r["n_resamples"] == 50 and 0 < r["n_bootstrap_ok"] <= 50
        loss = r["allocation"][-1]["loss"]
        assert loss["resamples"] == 50 and 0 <= loss["finite"] <= 50
    assert "resamples gave every parameter finite" in render(out)


def test_backtest_reaches_far_and_never_counts_na_as_covered():
    runs = isoflop_sweep(LAW, BUDGETS, seed=7)
    out = fit(runs, FitConfig(methods=["approach1", "approach3"], n_bootstrap=30, compare_conventions=False,
                              budgets=[], **SMALL_GRID))
    bt = out["backtest"]
    assert bt["status"] == "ok"
    a3 = bt["methods"]["approach3"]
    far = max(r["extrapolation"] for r in a3["rows"] if r["kind"] == "future")
    assert far == pytest.approx(100 / 3.16227766, rel=1e-3)  # budgets 1-2 fitted, budget 5 predicted
    assert {r["kind"] for r in a3["rows"]} == {"future", "leave-one-out"}
    assert all(r["covered"] is not None for r in a3["rows"])
    a1 = bt["methods"]["approach1"]
    na = [r for r in a1.get("rows", []) if r["predicted"] is None]
    assert all(r["covered"] is None for r in na)
    for sm in a1.get("summary", {}).values():
        assert sm["n_scored"] + sm["n_na"] == sm["n"]
    text = render(out)
    assert "nan%" not in text and "furthest × fitted C" in text


def test_d_star_spends_the_same_compute_for_every_method():
    out = fit(isoflop_sweep(LAW, BUDGETS, seed=8), FitConfig(n_bootstrap=0, **{**QUICK, "budgets": [1e22]}))
    k = out["data"]["flops_per_nd"]
    for m in ("approach1", "approach2", "approach3", "kaplan"):
        row = out[m]["allocation"][-1]
        assert k * row["n_star"]["value"] * row["d_star"]["value"] == pytest.approx(1e22, rel=1e-9), m
    text = render(out)
    assert f"D* = C / ({k:.3g} N*)" in text and "L(N, D) + E" in text and "**far**" in text


def test_disagreement_is_flagged_on_tokens_per_param_and_loss():
    def method(a, tpp, loss):
        row = {"flops": 1e21, "tokens_per_param": {"value": tpp, "interval": [tpp * 0.9, tpp * 1.1]},
               "loss": {"value": loss, "interval": [loss - 0.01, loss + 0.01]}}
        return {"status": "ok", "exponents": {"a": a, "b": 1 - a}, "exponent_intervals": {"a": [a - 0.1, a + 0.1]},
                "allocation": [row]}

    result = {"approach1": method(0.50, 136.0, 2.30), "approach3": method(0.48, 30.0, 2.30)}
    flags = compare(result, ["approach1", "approach3"], [1e21])["disagreements"]
    assert len(flags) == 1 and "tokens/param" in flags[0]
    result["approach1"] = method(0.50, 30.0, 2.10)
    flags = compare(result, ["approach1", "approach3"], [1e21])["disagreements"]
    assert len(flags) == 1 and "L*" in flags[0]


def test_compare_finds_the_compute_multiplier(tmp_path):
    from sweep.fit.cli import compare_command

    law_b = Law(E=1.6)
    for name, law, seed in (("a", LAW, 1), ("b", law_b, 2)):
        pd.DataFrame(isoflop_sweep(law, BUDGETS, seed=seed, noise=0.003)).to_csv(tmp_path / f"{name}.csv", index=False)
        out = fit(pd.read_csv(tmp_path / f"{name}.csv"), only("approach3", n_bootstrap=100))
        (tmp_path / name).mkdir()
        (tmp_path / name / "fit.json").write_text(json.dumps(out))
    assert compare_command([str(tmp_path / "a"), str(tmp_path / "b"), f"output={tmp_path / 'cmp'}"]) == 0
    cmp = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    m = cmp["multiplier"]
    # The truth: the compute at which B's optimal loss equals A's at 1e20.
    target = LAW.optimum(1e20)[2]
    cs = np.geomspace(1e17, 1e21, 20001)
    c_b = cs[np.argmin(np.abs(law_b.optimum(cs)[2] - target))]
    assert m["status"] == "ok" and m["value"] == pytest.approx(1e20 / c_b, rel=0.2)
    assert m["interval"][0] <= 1e20 / c_b <= m["interval"][1]
    assert m["finite"] == m["resamples"] == 100
    assert (tmp_path / "cmp" / "compare.md").read_text().startswith("# ")


def test_prepare_keeps_the_planner_budget_from_result_json(tmp_path):
    from sweep.fit.inputs import load_results_folder

    for i, r in enumerate(isoflop_sweep(LAW, BUDGETS[:3], seed=9)):
        d = tmp_path / "runs" / f"r{i}"
        d.mkdir(parents=True)
        d.joinpath("result.json").write_text(json.dumps({
            "run_id": f"r{i}", "status": "done", "final_val_loss": r["loss"], "n_params": r["n_params"],
            "n_tokens": r["n_tokens"], "flops": r["flops"] * (1 + 0.1 * (i % 2)), "meta": {"budget_index": r["budget_index"]}}))
    data = prepare(load_results_folder(tmp_path, [], curves=False), FitConfig())
    assert data.budget_source == "planner" and np.unique(data.budget).size == 3


@pytest.mark.parametrize("name", ["model_term", "data_term"])
def test_the_misspecified_simulators_have_their_optimum_where_they_say(name):
    """check_coverage.py --law model_term draws sweeps from a law no method can express (the model exponent grows
    with D, so N* grows slower than Chinchilla's), --law data_term from the `drift` method's family (the data
    exponent grows with N, so N* grows faster): each optimum is the argmin of the law's own loss at fixed compute,
    and drift 0 is Hoffmann et al.'s law."""
    from sweep.fit.simulate import DataTermLaw, ModelTermLaw

    kind = {"model_term": ModelTermLaw, "data_term": DataTermLaw}[name]
    law = kind()
    n, d, loss = law.optimum(1e19)
    assert 6 * n * d == pytest.approx(1e19) and loss == pytest.approx(float(law.loss(n, d)))
    for k in (0.8, 1.25):
        assert law.loss(n * k, 1e19 / (6 * n * k)) > loss
    assert (law.a - Law().a) * (1 if name == "data_term" else -1) > 0.05
    assert kind(drift=0.0).loss(1e8, 1e10) == pytest.approx(float(Law().loss(1e8, 1e10)))


def test_the_report_says_how_well_each_parameter_is_determined():
    from sweep.fit.report import undetermined

    assert undetermined("approach2", "a", 0.534, [0.464, 0.625]) == "yes"  # 30% of the value
    assert undetermined("approach3", "a", 0.561, [0.337, 0.728]) == "**loosely**: interval 70% of the value"
    assert undetermined("approach3", "alpha", 0.50, [0.31, 0.95]) == "**no**: interval wider than the value"
    assert undetermined("kaplan", "e", 0.0, [0.0, 0.0]) == "**no**: at its bound 0"
    # a drift may take either sign: its 0 is no bound, and an interval that excludes 0 says which way it goes
    assert undetermined("drift", "delta", -0.031, [-0.065, -0.019]) == ("its sign: the interval excludes 0 (width "
                                                                        "148% of the value)")
    assert undetermined("drift", "delta", 0.004, [-0.01, 0.02]) == "**no**: the interval includes 0 (no drift: approach 3)"
    # a main-job fit (approach 2's loss law) whose point sat outside the interval its finite resamples gave, and
    # read "yes" because that interval was narrow
    outside = "**no**: the value is outside its interval, whose resamples do not centre on this fit"
    assert undetermined("approach2", "loss_log_cc", 32.45, [25.42, 29.25]) == outside
    assert undetermined("approach2", "loss_e", 0.21, [0.657, 1.879]) == outside
    assert undetermined("approach3", "a", 0.728, [0.337, 0.728]) == "**loosely**: interval 54% of the value"  # an end
    assert undetermined("approach2", "a", 0.5, [float("nan"), float("nan")]) == "**no**: no finite interval"


def test_the_grid_check_scores_every_method_on_the_larger_models_a_grid_predicts():
    """check_coverage.py --design grid: Gadre et al.'s design (no IsoFLOP budgets), each target a larger model than
    the grid's; every method and the recommended prediction get a scored row per target."""
    import argparse
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("check_coverage",
                                                  Path(__file__).resolve().parents[1] / "scripts" / "check_coverage.py")
    cc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cc)
    cc.METHODS[:] = ["approach3", "shared_exponent"]
    out = cc.score_grid_seed(Law(), 0, argparse.Namespace(noise=0.01, n_bootstrap=20))
    assert set(out) >= {"approach3", "shared_exponent", "recommended"}
    for rows in (out["approach3"], out["recommended"]):
        assert len(rows) == len(cc.GRID_TARGETS)
        assert all(abs(r["error"]) < 0.1 and 0 < r["halfwidth"] < 0.5 and r["covered"] is not None for r in rows)
    assert min(n for n, _ in cc.GRID_TARGETS) > 3 * max(cc.GRID_SIZES)  # the targets are larger models
