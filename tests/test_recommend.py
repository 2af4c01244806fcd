"""The recommended prediction: methods ranked by the log score of their PIs on the leave-future-out backtest, and
stacked with the weights that maximise the mixture's log score (Yao et al. 2018)."""

import numpy as np
import pytest

from sweep.fit.recommend import DEFAULT, PRIOR, log_score, recommend, stack


def rows(errors, half_width, budgets=(2, 3, 3), split=("s1", "s1", "s2")):
    """Backtest rows: one held-out run per (split, budget), predicted `error` off with a PI of +-half_width."""
    out = []
    for i, (e, b, sp) in enumerate(zip(errors, budgets, split)):
        pred = 2.0 * (1 + e)
        out.append({"run": f"r{i}", "kind": "future", "split": sp, "budget": b, "extrapolation": 1.5 + b,
                    "measured": 2.0,
                    "predicted": pred, "interval": [pred * (1 - half_width), pred * (1 + half_width)],
                    "rel_error": e})
    return out


def fit_with(methods: dict, status="ok"):
    result = {"backtest": {"status": status, "reason": "too few budgets", "methods": {}}}
    for m, r in methods.items():
        result[m] = {"status": "ok", "params": {}}
        result["backtest"]["methods"][m] = {"status": "ok", "rows": r}
    return result


def test_the_method_that_extrapolated_best_is_recommended_and_a_narrow_miss_loses():
    result = fit_with({"approach3": rows([0.04, 0.05, 0.06], 0.01),  # confident and wrong
                       "kaplan": rows([0.01, -0.01, 0.015], 0.03)})   # close, honest intervals
    rec = recommend(result, ["approach3", "kaplan"], 0.95)
    assert rec["method"] == "kaplan" and rec["ranked"]
    assert rec["scores"]["kaplan"]["log_score"] > rec["scores"]["approach3"]["log_score"]
    assert rec["weights"]["kaplan"] > 0.99
    assert rec["scores"]["approach3"]["budgets"] == 3 and rec["scores"]["approach3"]["furthest"][1] == 0.05


def test_too_few_held_out_budgets_fall_back_to_the_default_and_say_so():
    result = fit_with({"approach3": rows([0.01], 0.02, budgets=(2,), split=("s1",)),
                       "kaplan": rows([0.0], 0.02, budgets=(2,), split=("s1",))})
    rec = recommend(result, ["approach3", "kaplan"], 0.95)
    assert rec["method"] == DEFAULT and not rec["ranked"] and "cannot be ranked" in rec["reason"]
    skipped = recommend(fit_with({"approach3": []}, status="skipped"), ["approach3"], 0.95)
    assert skipped["method"] == DEFAULT and "backtest was skipped" in skipped["reason"]
    # without approach 3 (2 sizes), the same family with one exponent comes before a law of another family
    two = recommend(fit_with({"kaplan": [], "shared_exponent": []}, status="skipped"), ["kaplan", "shared_exponent"],
                    0.95)
    assert two["method"] == "shared_exponent" and "default (shared_exponent)" in two["reason"]


def test_stacking_mixes_the_predictive_distributions():
    preds = {"a": {"predicted": 1.0, "interval": [0.9, 1.1]}, "b": {"predicted": 1.2, "interval": [1.08, 1.32]}}
    s = stack(preds, {"a": 0.5, "b": 0.5}, 0.95)
    assert s["predicted"] == pytest.approx(np.sqrt(1.0 * 1.2), rel=1e-9)  # the mean in log loss
    assert s["interval"][0] < 0.95 and s["interval"][1] > 1.25  # covers both methods' bulk
    assert stack(preds, {"a": 1.0}, 0.95) is None  # one method: nothing to stack
    one = stack(preds, {"a": 1.0, "b": 1e-9}, 0.95)
    assert one["interval"] == pytest.approx([0.9, 1.1], rel=0.01)


def test_stacking_weights_mix_two_laws_that_miss_in_different_places():
    # each is right where the other misses (2 of 3 held-out budgets for approach 3): a mixture covers all three,
    # and the weights that maximise its log score are ~2/3 and 1/3 (2 log w + log(1 - w)), not all-or-nothing
    result = fit_with({"approach3": rows([0.0, 0.05, 0.0], 0.01), "kaplan": rows([0.05, 0.0, 0.05], 0.01)})
    rec = recommend(result, ["approach3", "kaplan"], 0.95)
    assert rec["weights_per_run"]["approach3"] == pytest.approx(2 / 3, abs=0.03)
    assert rec["weights"]["approach3"] == pytest.approx(2 / 3, abs=0.03)
    # in a grid without IsoFLOP budgets each split weighs one: approach 3 is right on half of s1 (1/2) and on s2 (1),
    # so ~3/4 (1.5 log w + 0.5 log(1 - w))
    result["backtest"]["unit"] = "split"
    assert recommend(result, ["approach3", "kaplan"], 0.95)["weights_per_run"]["approach3"] == pytest.approx(3 / 4,
                                                                                                            abs=0.03)
    # a confident miss gets little weight next to an honest method, but not none (the prior keeps every weight off 0)
    result = fit_with({"approach3": rows([0.04, 0.05, 0.06], 0.01), "kaplan": rows([0.01, -0.01, 0.015], 0.03)})
    assert 0 < recommend(result, ["approach3", "kaplan"], 0.95)["weights_per_run"]["approach3"] < 0.01


def test_the_weights_are_the_posterior_mode_under_a_dirichlet_prior():
    """Each law covers where the other misses by 5 sd (densities ~e^-12 apart): the objective is then
    2 log w + log(1 - w) + PRIOR (log w + log(1 - w)), whose maximum is (2 + PRIOR) / (3 + 2 PRIOR); and a law that
    misses every held-out budget by 5 sd keeps a weight of about PRIOR / 3 (its gradient PRIOR / w against the 3
    budgets' ~1 each), where without the prior it would be 0."""
    result = fit_with({"approach3": rows([0.0, 0.05, 0.0], 0.01), "kaplan": rows([0.05, 0.0, 0.05], 0.01)})
    w = recommend(result, ["approach3", "kaplan"], 0.95)["weights_per_run"]["approach3"]
    assert w == pytest.approx((2 + PRIOR) / (3 + 2 * PRIOR), abs=1e-3)
    result = fit_with({"approach3": rows([0.0, 0.0, 0.0], 0.01), "kaplan": rows([0.05, 0.05, 0.05], 0.01)})
    assert recommend(result, ["approach3", "kaplan"], 0.95)["weights_per_run"]["kaplan"] == pytest.approx(
        PRIOR / (3 + 2 * PRIOR), rel=0.05)


def test_in_a_grid_each_split_weighs_one_point_however_many_runs_it_holds_out():
    """In a grid without IsoFLOP budgets each held-out "budget" is one run: a compute split that holds out 4 of them
    and a size split that holds out the largest size weigh the same. Approach 3 predicts the 4 runs well and misses
    the larger size by 5 sd; kaplan misses the 4 runs by 3 sd and gets the size right. Counted per budget (an IsoFLOP
    sweep's unit) approach 3 leads, 4 points to 1; counted per split kaplan does, with most of the stacking weight."""
    budgets, split = (2, 3, 4, 5, 9), ("compute",) * 4 + ("size",)
    result = fit_with({"approach3": rows([0.0, 0.0, 0.0, 0.0, 0.05], 0.02, budgets, split),
                       "kaplan": rows([0.03, 0.03, 0.03, 0.03, 0.0], 0.02, budgets, split)})
    assert recommend(result, ["approach3", "kaplan"], 0.95)["method"] == "approach3"
    result["backtest"]["unit"] = "split"
    rec = recommend(result, ["approach3", "kaplan"], 0.95)
    assert rec["method"] == "kaplan"
    kaplan = result["backtest"]["methods"]["kaplan"]["rows"]
    per_split = [log_score([r for r in kaplan if r["split"] == sp], 0.95) for sp in ("compute", "size")]
    assert rec["scores"]["kaplan"]["log_score"] == pytest.approx(np.mean(per_split), rel=1e-9)
    assert per_split[1] - per_split[0] > 4  # the 3 sd misses cost ~4.5 each
    assert rec["weights_per_run"]["kaplan"] > 0.5


def test_a_run_off_the_optimum_is_predicted_by_laws_of_n_and_d_only():
    """approach 1's L*(C) only predicts a run at the compute optimum: the per-run weights leave it out."""
    result = fit_with({"approach1": rows([0.0, 0.0, 0.0], 0.02), "approach3": rows([0.01, 0.01, 0.01], 0.02),
                       "kaplan": rows([-0.01, -0.01, -0.01], 0.02)})
    rec = recommend(result, ["approach1", "approach3", "kaplan"], 0.95)
    assert set(rec["weights_per_run"]) == {"approach3", "kaplan"}
    assert set(rec["weights"]) == {"approach1", "approach3", "kaplan"} and rec["weights"]["approach1"] > 0.3


def test_methods_that_predicted_different_splits_are_ranked_on_the_groups_they_share():
    """kaplan also predicted a split approach 3 skipped (and missed it badly): on the groups both predicted kaplan
    was better, so it is ranked first there, as the stacking weights say."""
    a3 = rows([0.03, 0.03, 0.03], 0.01)
    kaplan = rows([0.0, 0.0, 0.0], 0.02) + rows([0.2, 0.2, 0.2], 0.01, budgets=(5, 6, 7), split=("s3",) * 3)
    rec = recommend(fit_with({"approach3": a3, "kaplan": kaplan}), ["approach3", "kaplan"], 0.95)
    assert rec["method"] == "kaplan" and "3 held-out groups every ranked method predicted" in rec["reason"]
    assert rec["weights_per_run"]["kaplan"] > 0.99
    assert rec["scores"]["kaplan"]["budgets"] == 6  # the table still shows everything each method predicted


def test_methods_that_share_too_few_groups_are_each_scored_on_their_own_and_the_reason_says_so():
    """approach 3 predicted split s1's budgets 2-3 and s2's 3; kaplan only s2's 3 and a split s3 of its own: they
    share one group, too few to compare them on, so the reason does not claim a common footing."""
    a3 = rows([0.0, 0.0, 0.0], 0.02)
    kaplan = rows([0.01], 0.02, budgets=(3,), split=("s2",)) + rows([0.0, 0.0], 0.02, budgets=(5, 6), split=("s3",) * 2)
    rec = recommend(fit_with({"approach3": a3, "kaplan": kaplan}), ["approach3", "kaplan"], 0.95)
    assert "groups of its own (the ranked methods share fewer than 3" in rec["reason"]
    assert "every ranked method predicted" not in rec["reason"]
    assert rec["weights_per_run"] == {}  # nothing to stack on


def test_the_report_leads_with_the_weights_the_predictions_use_not_the_best_single_method():
    """The best single method by log score can differ from what the stacking puts its weight on (a run at the
    optimum is scored on each budget's best run only): the section names the weights first, per target."""
    from sweep.fit.report import _recommended_lines

    result = fit_with({"approach3": rows([0.02, -0.02, 0.01], 0.03) + rows([0.03, -0.03, 0.02], 0.03, split=("s3",) * 3),
                       "kaplan": rows([-0.02, 0.02, -0.01], 0.03) + rows([-0.03, 0.03, -0.02], 0.03, split=("s3",) * 3)})
    rec = recommend(result, ["approach3", "kaplan"], 0.95)
    text = "\n".join(_recommended_lines(rec, result))
    lead = text.split("Best single method")[0]
    assert "a run at the compute optimum" in lead and "a run at any N and D" in lead
    for m, w in rec["weights"].items():
        assert f"{m} {w:.2f}" in lead
    assert f"| {rec['method']} (best single) |" in text and "(recommended)" not in text


def test_a_fit_of_frontier_methods_only_recommends_without_per_run_weights(isoflop_runs, small_grid):
    """approach2 alone (no law of N and D): the per-run stacking has no method; it is empty, not a crash."""
    from sweep.fit import FitConfig, fit

    out = fit(isoflop_runs(), FitConfig(methods=["approach2"], n_bootstrap=20, compare_conventions=False, budgets=[],
                                        **small_grid))
    rec = out["recommended"]
    assert rec["method"] == "approach2" and rec["weights_per_run"] == {}
    assert rec["weights"] == {"approach2": 1.0}


def test_the_verification_run_goes_where_the_leading_prediction_puts_its_weight(isoflop_runs, small_grid):
    """A main job here ranked approach 1 best by log score, while its final fit had no loss law (L*(C) n/a) and an a
    of 1.05 [0.03, 1.50]; the run went to its N* (2.5x Kaplan's, which carried all the at-optimum weight) and
    measured 7% above the stacking that led. The run goes to the heaviest stacked method that predicts there."""
    from sweep.fit import FitConfig, fit
    from sweep.fit.recommend import verification_method

    out = fit(isoflop_runs(), FitConfig(methods=["approach1", "approach3", "kaplan"], n_bootstrap=20, backtest=False,
                                        compare_conventions=False, budgets=[], **small_grid))
    c = 1e21
    out["recommended"] = {"method": "approach1", "weights": {"approach1": 0.0, "approach3": 0.3, "kaplan": 0.7}}
    assert verification_method(out, c) == ("kaplan", "the heaviest method of the at-optimum stacking, weight 0.70")
    out["recommended"]["weights"] = {"approach1": 0.8, "approach3": 0.2}
    assert verification_method(out, c)[0] == "approach1"
    out["approach1"]["params"] = {**out["approach1"]["params"], "loss_e": float("nan")}  # its L*(C) n/a
    assert verification_method(out, c)[0] == "approach3"
    out["recommended"] = {"method": "kaplan"}  # the backtest could not rank: no weights
    assert verification_method(out, c) == ("kaplan", "the recommended method")
    out["recommended"] = {}
    assert verification_method(out, c) == (DEFAULT, "the default: no recommended method")


def test_the_best_single_method_predicts_with_its_final_fit(isoflop_runs, small_grid):
    """A frontier method that scored best in the backtest's refits but has no loss law on all the data (L*(C) n/a)
    is not the best single method; the reason names it."""
    from sweep.fit import FitConfig, fit

    out = fit(isoflop_runs(), FitConfig(methods=["approach1", "approach3"], n_bootstrap=20, backtest=False,
                                        compare_conventions=False, budgets=[], **small_grid))
    out["backtest"] = {"status": "ok", "methods": {"approach1": {"status": "ok", "rows": rows([0.001] * 3, 0.02)},
                                                   "approach3": {"status": "ok", "rows": rows([0.01] * 3, 0.03)}}}
    assert recommend(out, ["approach1", "approach3"], 0.95)["method"] == "approach1"
    out["approach1"]["params"] = {**out["approach1"]["params"], "loss_e": float("nan")}
    rec = recommend(out, ["approach1", "approach3"], 0.95)
    assert rec["method"] == "approach3"
    assert rec["reason"].endswith("; approach1: no loss law in the final fit")
    assert "among the methods whose final fit predicts a loss" in rec["reason"]


def test_at_optimum_stacking_weighs_methods_the_early_splits_could_not_refit():
    # approach 3 predicted every held-out budget, 5% high with a narrow PI; the anchored fit and Kaplan's could only be
    # refitted on some splits (as frontier and anchored fits on the early cuts), and were right there. Only one budget
    # was predicted by all three, so stacking on those alone gave no weights, and the run was placed by a ranking of
    # each method on groups of its own.
    result = fit_with({
        "approach3": rows([0.05] * 5, 0.01, budgets=(2, 3, 4, 3, 4), split=("s1", "s1", "s1", "s2", "s2")),
        "approach3_anchored": rows([0.0] * 3, 0.02, budgets=(3, 4, 4), split=("s1", "s1", "s2")),
        "kaplan": rows([0.005] * 3, 0.02, budgets=(2, 3, 4), split=("s1", "s2", "s2")),
        "shared_exponent": rows([0.0] * 3, 0.02, budgets=(5, 6, 7), split=("s3", "s3", "s3"))})  # shares no budget
    rec = recommend(result, ["approach3", "approach3_anchored", "kaplan", "shared_exponent"], 0.95)
    w = rec["weights"]
    assert w["approach3"] < 0.01 and w["approach3_anchored"] + w["kaplan"] > 0.99
    assert w["shared_exponent"] == 0.0  # nothing to weigh it against
    assert sum(w.values()) == pytest.approx(1.0)
    # a run at a given N and D keeps the stacking on the runs every method predicted (measured: scored on the runs
    # some methods missed, Epoch's table's recommended PI covered 84% instead of 89%)
    assert rec["weights_per_run"] == {}


def test_the_report_lists_the_weights_above_the_priors_floor_and_counts_the_rest():
    from sweep.fit.report import listed

    assert listed({"kaplan": 0.02, "approach3": 0.97, "drift": 0.004, "approach1": 1e-9}) == \
        "approach3 0.97, kaplan 0.02, 2 more under 0.005"
    assert listed({"approach3": 1.0}) == "approach3 1.00"
