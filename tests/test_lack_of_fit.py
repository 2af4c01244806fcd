"""The PI's lack-of-fit term: estimated from the within-data backtest, it widens the interval when the law is
misspecified and stays near 0 when the law is right."""

import dataclasses
import json

import numpy as np
import pytest

from sweep.fit import allocation, lack_of_fit, report
from sweep.fit.config import FitConfig, FitInputError
from sweep.fit.laws import chinchilla_loss
from sweep.fit.pipeline import fit


def sweep_rows(law, seed=0, noise=0.003, budgets=5):
    """IsoFLOP budgets (5) over 1.5 decades x 7 sizes, from `law(n, d)` with multiplicative noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in np.logspace(17, 18.5, budgets):
        n_opt = 0.09 * c ** 0.5
        for n in n_opt * np.logspace(-0.6, 0.6, 7):
            d = c / (6 * n)
            rows.append({"n_params": n, "n_tokens": d, "loss": law(n, d) * np.exp(noise * rng.standard_normal()),
                         "status": "done"})
    return rows


TRUE = dict(E=1.7, A=400.0, B=410.0, alpha=0.34, beta=0.28)


def chinchilla(n, d):
    return chinchilla_loss(n, d, *TRUE.values())


def bending(n, d):
    """Not in any fitted family: the loss bends down faster than a power law as compute grows (a phase the small
    runs had not reached), so every law extrapolates too high, more the further it reaches."""
    return chinchilla(n, d) * np.exp(-0.005 * np.log(6 * n * d / 1e17) ** 2)


def fitted(law, small_grid):
    cfg = FitConfig(methods=["approach3"], n_bootstrap=60, compare_conventions=False, **small_grid)
    return fit(sweep_rows(law), cfg)


def pi_width(result, extrapolation):
    row = allocation.allocation_row("approach3", result["approach3"], result["data"]["flops_range"][1] * extrapolation,
                                    6.0, 0.95, allocation.noise_of(result), extrapolation=extrapolation)
    lo, hi = row["loss"]["prediction_interval"]
    return np.log(hi / lo), row


def test_a_misspecified_law_gets_a_wider_pi_that_grows_with_the_extrapolation(small_grid):
    good, bad = fitted(chinchilla, small_grid), fitted(bending, small_grid)
    k_bad = bad["approach3"]["lack_of_fit"]["kappa"]
    sd_good, sd_bad = (lack_of_fit.from_dict(r["approach3"]["lack_of_fit"]).sd(10.0) for r in (good, bad))
    assert k_bad > 0.002 and sd_bad > 5 * sd_good
    # the report says when a wide misfit term is only what few refits cannot rule out: for the correct law, not
    # for the misspecified one, whose misfit the backtest saw
    lof_of = lambda r: [r["approach3"]["lack_of_fit"]]  # noqa: E731
    assert good["approach3"]["lack_of_fit"]["best"] == 0 and bad["approach3"]["lack_of_fit"]["best"] > 0.001
    said = report.undetected_line(lof_of(good))
    assert len(said) == 2 and "No method's backtest detected a misfit" in said[1] and "from 3 refit(s)" in said[1]
    assert report.undetected_line(lof_of(bad)) == [] == report.undetected_line(lof_of(bad) + lof_of(good))
    assert report.undetected_line([{**lof_of(good)[0], "best": None}]) == []  # a fit.json written before
    w1, _ = pi_width(bad, 1.0)
    w10, row = pi_width(bad, 10.0)
    assert w10 > 1.5 * w1
    terms = row["loss"]["pi_terms"]
    span = bad["approach3"]["lack_of_fit"]["span"]
    assert span == pytest.approx(10 ** 1.5)  # the sweep's compute span
    assert terms["lack_of_fit"] == pytest.approx(sd_bad)
    # the fitter's term is kappa's posterior (lack_of_fit.PRIOR_SCALE), not an end of its likelihood interval
    for r in (good, bad):
        lof = r["approach3"]["lack_of_fit"]
        assert lof["mix"] and f"posterior rms (prior scale {100 * lack_of_fit.PRIOR_SCALE:.2g}%)" in lof["source"]
    assert terms["lack_of_fit"] == max(terms.values())  # the misfit dominates at 10x
    # without the term the same fit's PI at 10x would miss the truth it now covers
    c = bad["data"]["flops_range"][1] * 10
    n, d, _ = allocation.optimum("approach3", bad["approach3"]["params"], c, 6.0)
    truth = bending(n, d)
    lo, hi = row["loss"]["prediction_interval"]
    assert lo <= truth <= hi
    no_term = dict(bad["approach3"], lack_of_fit=None)
    bare = allocation.allocation_row("approach3", no_term, c, 6.0, 0.95, allocation.noise_of(bad), extrapolation=10.0)
    assert not bare["loss"]["prediction_interval"][0] <= truth <= bare["loss"]["prediction_interval"][1]


def test_the_correct_law_keeps_its_pi(small_grid):
    """No misfit is detected (the best kappa is 0); what is left is what 3 refits cannot rule out (kappa's posterior
    rms): at 10x a few times the 0.3% noise, where the misspecified law's is 6% (above)."""
    good = fitted(chinchilla, small_grid)
    lof = lack_of_fit.from_dict(good["approach3"]["lack_of_fit"])
    assert "best κ 0%" in lof.source and "of 3 refit(s)" in lof.source
    assert lof.sd(10.0) < 0.012


def test_too_few_backtest_predictions_leave_the_term_out_and_say_so():
    lof = lack_of_fit.estimate([{"extrapolation": 2.0, "predicted": 1.0, "measured": 1.1, "interval": [0.9, 1.2]}], 0.95)
    assert lof.kappa == 0 and "needs 3" in lof.source


def test_the_backtest_also_holds_out_the_largest_sizes_and_measures_reach_in_n(small_grid):
    """A user's next run is a bigger model: the backtest fits the smaller sizes and predicts the larger, and each
    row's reach is its largest ratio of N, D or C to the fitted data's (so a bigger model at fitted compute counts)."""
    result = fitted(chinchilla, small_grid)
    assert result["backtest"]["unit"] == "budget"  # an IsoFLOP sweep: each held-out budget is a point
    assert "each held-out budget counted once" in report.render(result)
    rows = result["backtest"]["methods"]["approach3"]["rows"]
    size_rows = [r for r in rows if r["axis"] == "size"]
    assert size_rows and all(r["kind"] == "future" for r in size_rows)
    n = dict(zip(result["data"]["points"]["name"], result["data"]["points"]["n"]))
    for r in size_rows:
        assert r["group"] == n[r["run"]]  # the runs of one held-out size share a refit
        assert r["reach"] >= 1.0 and r["reach"] >= r["extrapolation"] - 1e-9
    assert max(r["reach"] for r in size_rows) > 1.5 > min(r["extrapolation"] for r in size_rows)
    # approaches 1 and 2 (L*(C) only) are not scored where the budgets' best runs were cut off
    assert all(r["axis"] == "compute" for r in result["backtest"]["methods"].get("approach2", {}).get("rows", []))


def test_a_grid_of_four_sizes_is_checked_on_its_largest_size(small_grid):
    """Gadre et al.'s design: 4 sizes, each trained at many token counts (no IsoFLOP budgets). Its compute splits
    hold out the small models trained longest; the size split fits the 3 smaller sizes and predicts the largest at
    every token count, the extrapolation a user of such a grid asks for."""
    sizes = [1e7, 8e7, 1.5e8, 4e8]
    runs = [{"n_params": n, "n_tokens": 20 * n * m, "loss": chinchilla(n, 20 * n * m), "status": "done"}
            for n in sizes for m in (0.25, 0.5, 1, 2, 4, 8, 16)]
    cfg = FitConfig(methods=["approach3", "shared_exponent"], n_bootstrap=20, compare_conventions=False, **small_grid)
    result = fit(runs, cfg)
    backtest = result["backtest"]
    assert backtest["unit"] == "split"  # no IsoFLOP budgets: each split weighs one point (recommend.group_weights)
    assert "each split of the backtest counted once" in report.render(result)
    rows = backtest["methods"]["shared_exponent"]["rows"]
    size_rows = [r for r in rows if r["axis"] == "size"]
    assert {r["split"] for r in size_rows} == {"fit N < 4e+08, predict the 1 larger size(s)"}
    assert len(size_rows) == 7 and {r["group"] for r in size_rows} == {4e8}
    assert min(r["reach"] for r in size_rows) == pytest.approx(4e8 / 1.5e8)


def held_out(mean_error: float, runs: int = 8, groups: int = 10, noise: float = 0.01, law: float = 0.001) -> list:
    """Backtest rows: `groups` held-out budgets of `runs` runs each, each from a refit of its own, every budget missed
    by `mean_error` in log loss on average (its runs scattered by +-noise around that), each row with its PI's
    terms."""
    z = 1.959964
    rows = []
    for g in range(groups):
        for i in range(runs):
            e = mean_error + noise * (1 if i % 2 else -1)
            sd = np.hypot(law, noise)
            rows.append({"split": f"fit {g}", "group": g, "extrapolation": 2.0, "reach": 2.0, "predicted": np.exp(e),
                         "measured": 1.0, "interval": [np.exp(e - z * sd), np.exp(e + z * sd)],
                         "pi_terms": {"law": law, "noise": noise, "lack_of_fit": 0.0}})
    return rows


def test_a_budget_missed_by_as_much_as_the_noise_is_a_misfit_not_noise():
    """A held-out budget's mean error over its m runs carries noise / sqrt(m), not a single run's noise: 30 budgets
    of 8 runs each missed by 1% with 1% run noise is a misfit (counted as noise, the term stayed near 0)."""
    missed = lack_of_fit.estimate(held_out(0.01, groups=30), 0.95)
    assert 0.009 < missed.sd(2.0) < 0.013
    assert "best κ 0%" not in missed.source
    on_target = lack_of_fit.estimate(held_out(0.0, groups=30), 0.95)
    assert on_target.sd(2.0) < 0.002
    # rows without their PI's terms fall back to the PI's sd: the same misfit then hides in the noise
    bare = lack_of_fit.estimate([{k: v for k, v in r.items() if k != "pi_terms"} for r in held_out(0.01, groups=30)],
                                0.95)
    assert "best κ 0%" in bare.source and bare.sd(2.0) < 0.6 * missed.sd(2.0)


def curvature_rows(c: float, spans=(1.15, 2.3, 3.45), total=4.6, with_span=True) -> list:
    """Leave-future-out rows of a sweep over `total` in ln compute whose law misses by a curvature c in log compute:
    a refit over a span S (ln) extrapolated t beyond it misses by c (t^2 + S t + S^2 / 6), 5 runs per budget."""
    rows = []
    for k, s in enumerate(spans):
        for t in np.arange(1.15, total - s + 0.01, 1.15):
            e = c * (t * t + s * t + s * s / 6)
            for i in range(5):
                rows.append({"split": f"fit {k}", "group": round(float(t), 2), "kind": "future", "axis": "compute",
                             "extrapolation": float(np.exp(t)), "reach": float(np.exp(t)),
                             "predicted": float(np.exp(e + 0.005 * (1 if i % 2 else -1))), "measured": 1.0,
                             "interval": [0.9, 1.1], "pi_terms": {"law": 0.002, "noise": 0.005, "lack_of_fit": 0.0},
                             **({"span": float(np.exp(s))} if with_span else {})})
    return rows


def test_the_term_grows_with_the_span_the_final_fit_extrapolates_from():
    """The backtest's refits see less of the sweep than the final fit; a curvature the law cannot absorb makes the
    final fit miss a 10x extrapolation by more than a refit missed one. The term reads the refits' spans and
    extrapolates from the final fit's: it reaches about that error, and one blind to the spans stays under it, more so
    the further it reaches."""
    assert lack_of_fit.growth(10.0, 2.0, 1.0) == pytest.approx((1 + np.log(10)) ** 2)
    assert lack_of_fit.growth(10.0, 2.0, 100.0) == pytest.approx((1 + np.log(10)) * (1 + np.log(10) + np.log(100)))
    c = 0.003
    truth = c * (np.log(10) ** 2 + 4.6 * np.log(10) + 4.6 ** 2 / 6)  # the final fit (4.6 ln) at 10x: 5.8%
    aware = lack_of_fit.estimate(curvature_rows(c), 0.95, span=np.exp(4.6))
    blind = lack_of_fit.estimate(curvature_rows(c, with_span=False), 0.95)
    assert aware.gamma == 2.0 and aware.span == pytest.approx(np.exp(4.6))
    assert aware.sd(10.0) > 0.95 * truth  # kappa's posterior rms, about the error: a 95% PI spans 1.96 of it
    far = c * (np.log(100) ** 2 + 4.6 * np.log(100) + 4.6 ** 2 / 6)
    assert aware.sd(100.0) > 0.85 * far  # near it far out, averaged over the growths the rows cannot tell apart
    # blind, the best growth is too slow (gamma 1.4) and the term stays under the final fit's error
    assert blind.gamma < 2.0 and blind.sd(10.0) < 0.85 * truth and blind.sd(10.0) < 0.85 * aware.sd(10.0)


def test_a_detected_misfit_takes_the_fastest_growth_the_backtest_cannot_rule_out():
    """The backtest's refits reach a few x: a misfit seen there rarely says how fast it grows (gamma). The "upper"
    term (lack_of_fit_rules.py's upper50, the fitter's before) is the upper end of the lack of fit at the extrapolation
    asked for over kappa and gamma jointly, so far out it grows as fast as the rows allow; with no misfit detected
    (kappa ~ 0, gamma unidentified) it stays linear."""
    lof = lack_of_fit.estimate(curvature_rows(0.003, with_span=False), 0.95, end="upper")
    grown = dict(lof.upper)
    assert lof.gamma < 2.0 and 1.0 in grown and 2.0 in grown
    assert lof.sd(100.0) == pytest.approx(grown[2.0] * lack_of_fit.growth(100.0, 2.0))
    assert lof.sd(100.0) > 1.4 * lof.kappa * lack_of_fit.growth(100.0, lof.gamma)
    for x in (1.0, 3.0, 10.0, 100.0):
        assert lof.sd(x) >= lof.kappa * lack_of_fit.growth(x, lof.gamma) - 1e-12
    on_target = lack_of_fit.estimate(held_out(0.0, groups=30), 0.95, end="upper")
    assert "best κ 0%" in on_target.source and on_target.upper == ((1.0, on_target.kappa),)
    # a fit.json written before the pairs were kept reads kappa at gamma
    old = lack_of_fit.from_dict({k: v for k, v in lof.as_dict().items() if k != "upper"})
    assert old.sd(100.0) == pytest.approx(lof.kappa * lack_of_fit.growth(100.0, lof.gamma))


def test_the_level_moves_kappas_end_not_what_counts_as_a_misfit():
    """end="upper" (the alternatives upper50/68/90): three refits that each miss by half their PI's sd: kappa = 0
    sits just inside its 68% interval, just outside its 50% one. A misfit is detected at the 68% threshold whatever the
    level, because detection switches on the growth gamma > 1 far out (with the level's own threshold it did, and a
    100x PI took gamma 1.7); the level only moves the end of kappa's interval, and "best" takes kappa at 0."""
    rows = held_out(0.005, groups=3)
    assert lack_of_fit.KAPPA_LR == pytest.approx(0.455, abs=1e-3)
    ends = {lr: lack_of_fit.estimate(rows, 0.95, end="upper", kappa_lr=lr)
            for lr in (lack_of_fit.KAPPA_LR, 1.0, 2.706)}
    for lof in ends.values():
        assert lof.best == 0.0 and lof.gamma == 1.0 and len(lof.upper) == 1
    fifty = ends[lack_of_fit.KAPPA_LR]
    assert 0.003 < fifty.kappa < 0.85 * ends[1.0].kappa < 0.85 * 0.7 * ends[2.706].kappa
    assert lack_of_fit.estimate(rows, 0.95, end="upper").kappa == fifty.kappa
    assert "50% upper end used" in fifty.source and "68% upper end used" in ends[1.0].source
    best = lack_of_fit.estimate(rows, 0.95, end="best")
    assert best.kappa == 0.0 and best.sd(100.0) == 0.0 and best.source.endswith(", used")
    # a clear misfit is detected at every level; its best kappa does not depend on the level
    missed = [lack_of_fit.estimate(held_out(0.008, groups=3), 0.95, end="upper", kappa_lr=lr) for lr in (0.455, 2.706)]
    assert missed[0].best == missed[1].best > 0.003 and missed[0].kappa < missed[1].kappa


def test_the_term_is_estimated_from_compute_extrapolations_when_there_are_enough():
    """A size split predicts bigger models at compute the refit saw: many held-out sizes from three refits, each
    missed less than a run beyond the largest budget. They would outnumber the compute groups and pull the term
    down, so with 3 or more compute groups only those count."""
    rows = curvature_rows(0.003)
    sizes = [{**r, "split": f"size {k % 3}", "group": 1e8 * (1 + k), "axis": "size", "extrapolation": 1.0,
              "reach": 2.0, "predicted": 1.0} for k, r in enumerate(rows[:20])]
    only = lack_of_fit.estimate(rows, 0.95, span=100.0)
    both = lack_of_fit.estimate(rows + sizes, 0.95, span=100.0)
    assert both.kappa == pytest.approx(only.kappa) and both.n_rows == only.n_rows == 6
    sizes_only = lack_of_fit.estimate(sizes + rows[:5], 0.95, span=100.0)  # one compute group: every group counts
    assert sizes_only.n_rows == 21


def test_a_term_the_backtest_could_not_measure_takes_the_pooled_term_not_zero(small_grid):
    """Approach 2's loss law needs 3 budgets in a backtest refit, so on 4 budgets one refit (fit 3, predict 1)
    predicts one budget: its own misfit is unknown. Its PI then takes the largest term the other methods measured
    (approach 3's: 3 held-out budgets of 2 refits), said so in its source, instead of printing 0%; a fit where no
    method measured one reads "misfit not measured"."""
    cfg = FitConfig(methods=["approach2", "approach3"], n_bootstrap=40, compare_conventions=False, **small_grid)
    result = fit(sweep_rows(chinchilla, budgets=4), cfg)
    a2, a3 = (lack_of_fit.from_dict(result[m]["lack_of_fit"]) for m in ("approach2", "approach3"))
    assert a3.measured and a2.source.startswith("pooled from approach3: approach2's backtest could not measure it")
    assert a2.sd(10.0) == pytest.approx(a3.sd(10.0)) and a2.sd(10.0) > 0
    far = {m: result[m]["allocation"][-1]["loss"] for m in ("approach2", "approach3")}
    assert far["approach2"]["pi_terms"]["lack_of_fit"] == pytest.approx(far["approach3"]["pi_terms"]["lack_of_fit"])
    assert "misfit" in report.pi_terms(far["approach3"]["pi_terms"]) and "not measured" not in report.pi_terms(
        far["approach3"]["pi_terms"])
    alone = fit(sweep_rows(chinchilla, budgets=4), dataclasses.replace(cfg, methods=["approach2"]))
    assert not lack_of_fit.from_dict(alone["approach2"]["lack_of_fit"]).measured
    terms = alone["approach2"]["allocation"][-1]["loss"]["pi_terms"]
    assert terms["lack_of_fit"] is None and report.pi_terms(terms).endswith("misfit not measured")


def test_a_frontier_loss_law_is_scored_on_three_held_out_budgets_of_a_five_budget_sweep(small_grid):
    """The final fit's L*(C) waits for 4 budgets; the backtest's refits fit it from 3, so a sweep of 5 budgets scores
    approach 2 on 3 held-out budgets (fit 3, predict 4-5; fit 4, predict 5), not 1: it is ranked, stacked and its
    misfit measured, beside approach 3."""
    cfg = FitConfig(methods=["approach2", "approach3"], n_bootstrap=40, compare_conventions=False, **small_grid)
    result = fit(sweep_rows(chinchilla), cfg)
    rows = [r for r in result["backtest"]["methods"]["approach2"]["rows"] if r["kind"] == "future" and r["predicted"]]
    assert sorted({r["split"] for r in rows}) == ["fit budgets 1-3, predict 4-5", "fit budgets 1-4, predict 5-5"]
    assert result["recommended"]["scores"]["approach2"]["budgets"] == 3
    assert set(result["recommended"]["weights"]) == {"approach2", "approach3"}
    assert lack_of_fit.from_dict(result["approach2"]["lack_of_fit"]).measured
    assert np.isfinite(result["approach2"]["params"]["loss_e"])  # the final fit's law, from 5 budgets
    with pytest.raises(FitInputError, match="loss_law_min_points=2: .* at least 3"):
        FitConfig(loss_law_min_points=2).validate()


def test_the_posterior_term_follows_its_prior_on_few_refits_and_the_data_on_many():
    """The fitter's term (estimate(end="posterior"), the default): kappa^2's posterior mean under a half-normal
    prior. With 3 refits that saw no misfit the term still moves with the prior's scale (few refits leave kappa's tail
    to the prior); with 30 refits missing by 1% it is the misfit's size, nearly whatever the prior; and it stays a
    fit.json-able term."""
    few = {tau: lack_of_fit.estimate(held_out(0.0, groups=3), 0.95, end="posterior", prior_scale=tau)
           for tau in (0.005, 0.02)}
    assert 0.001 < few[0.005].sd(1.0) < 0.005 and few[0.02].sd(1.0) > 1.3 * few[0.005].sd(1.0)
    assert few[0.02].sd(10.0) == pytest.approx(few[0.02].sd(1.0) * lack_of_fit.growth(10.0, 1.0), rel=1e-9)
    many = [lack_of_fit.estimate(held_out(0.01, groups=30), 0.95, end="posterior", prior_scale=tau)
            for tau in (0.005, 0.02)]
    assert all(len(t.mix) == 11 for t in many)  # detected: every growth, weighted by its marginal likelihood
    assert 0.008 < many[0].sd(2.0) < many[1].sd(2.0) < 0.013 and many[1].sd(2.0) - many[0].sd(2.0) < 0.002
    # rows that say nothing about kappa (their PIs 10x wider than any kappa searched): the posterior is the prior,
    # and a half-normal of scale tau has E[kappa^2] = tau^2
    flat = lack_of_fit.estimate(held_out(0.0, groups=3, law=10.0), 0.95, end="posterior", prior_scale=0.01)
    assert flat.sd(1.0) == pytest.approx(0.01, rel=2e-3)
    stored = lack_of_fit.from_dict(json.loads(json.dumps(few[0.02].as_dict())))
    assert stored.sd(100.0) == pytest.approx(few[0.02].sd(100.0)) and "posterior rms" in stored.source


def test_with_nothing_detected_any_growth_matches_linear_where_the_refits_reached_and_grows_faster_past_them():
    """undetected="any" (scripts/lack_of_fit_rules.py's upper50g and post1g): with no misfit detected every growth is
    kept. The refits all reached 2x, where every growth's kappa end gives the same term; past them the fastest growth
    leads (upper) or the growths are averaged (posterior). A detected misfit is read as before."""
    rows = held_out(0.0, groups=3)
    linear, anyg = (lack_of_fit.estimate(rows, 0.95, end="upper", undetected=u) for u in ("linear", "any"))
    assert anyg.best == 0.0 and len(anyg.upper) == 11 and len(linear.upper) == 1
    assert anyg.sd(2.0) == pytest.approx(linear.sd(2.0), rel=1e-4)
    assert anyg.sd(100.0) == pytest.approx(max(k * lack_of_fit.growth(100.0, g) for g, k in anyg.upper))
    assert anyg.sd(100.0) > 2 * linear.sd(100.0)
    post = {u: lack_of_fit.estimate(rows, 0.95, end="posterior", undetected=u) for u in ("linear", "any")}
    assert len(post["linear"].mix) == 1 and len(post["any"].mix) == 11
    assert post["any"].sd(2.0) == pytest.approx(post["linear"].sd(2.0), rel=0.15)
    assert post["any"].sd(100.0) > 1.5 * post["linear"].sd(100.0)
    missed = held_out(0.008, groups=3)
    assert all(lack_of_fit.estimate(missed, 0.95, end=e, undetected="any") == lack_of_fit.estimate(missed, 0.95, end=e)
               for e in ("upper", "posterior"))


def test_the_default_term_is_kappas_posterior_under_the_prior_scale():
    """estimate's default end is the posterior with PRIOR_SCALE: the same term as asking for it, and not the upper end
    of kappa's likelihood interval, on rows with no misfit and on rows with one."""
    for rows in (held_out(0.0, groups=3), held_out(0.008, groups=3), curvature_rows(0.003)):
        default = lack_of_fit.estimate(rows, 0.95)
        assert default == lack_of_fit.estimate(rows, 0.95, end="posterior", prior_scale=lack_of_fit.PRIOR_SCALE)
        assert default.mix and default != lack_of_fit.estimate(rows, 0.95, end="upper")
    assert lack_of_fit.PRIOR_SCALE == 0.01


def test_a_pooled_term_is_the_pointwise_largest_of_its_members_of_any_kind():
    """A method whose backtest could not measure its misfit takes the pooled term: at every reach and span the largest
    of the measured terms, a posterior one (a sum over growths) and an upper-end one (a max over (gamma, kappa) pairs)
    alike, also read back from fit.json. Here each member leads somewhere, so the first member alone, or the
    smaller, would fail."""
    fast = lack_of_fit.LackOfFit(0.004, 2.0, 5, "posterior", span=100.0, mix=((1.5, 4e-6), (2.0, 1.2e-5)))
    flat = lack_of_fit.LackOfFit(0.02, 1.0, 4, "upper", span=100.0, upper=((1.0, 0.02),))
    pool = lack_of_fit.pooled([fast, flat], "pooled from a, b")
    read = lack_of_fit.from_dict(json.loads(json.dumps(pool.as_dict())))
    assert pool.measured and read.measured and pool.source == "pooled from a, b"
    assert fast.sd(1.0) < flat.sd(1.0) and fast.sd(100.0) > flat.sd(100.0)
    for x in (1.0, 3.0, 10.0, 100.0):
        for span in (None, 10.0, 1000.0):
            want = max(fast.sd(x, span), flat.sd(x, span))
            assert pool.sd(x, span) == pytest.approx(want, rel=1e-12) and read.sd(x, span) == pytest.approx(want)
