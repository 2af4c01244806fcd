"""The recommended prediction: the default law (approach 3) unless a stacking of the laws, shrunk toward it, beats
it out of sample on the leave-future-out backtest; each method scored on every held-out group, a missing prediction
scored as the worst, with its lack-of-fit term cross-fitted."""

import numpy as np
import pytest

from sweep.fit.recommend import DEFAULT, PRIOR, SHRINK, fit_weights, recommend, stack, stacking, verification_method


def rows(errors, half_width, budgets=(2, 3, 3), split=("s1", "s1", "s2")):
    """Backtest rows: one held-out run per (split, budget), predicted `error` off with a PI of +-half_width."""
    out = []
    for i, (e, b, sp) in enumerate(zip(errors, budgets, split)):
        pred = 2.0 * (1 + e)
        out.append({"run": f"r{i}", "kind": "future", "split": sp, "budget": b, "extrapolation": 1.5 + b,
                    "measured": 2.0, "span": 10.0,
                    "predicted": pred, "interval": [pred * (1 - half_width), pred * (1 + half_width)],
                    "rel_error": e})
    return out


def many(error, half_width: float, n_budgets: int = 7) -> list[dict]:
    """Rows of nested leave-future-out refits of a sweep of n_budgets: refit k fits budgets 1..k and predicts
    k+1..n_budgets, each held-out budget `error(k, b)` off with a PI of +-half_width."""
    out = []
    for k in range(2, n_budgets):
        held = tuple(range(k + 1, n_budgets + 1))
        out += rows([error(k, b) for b in held], half_width, budgets=held, split=(f"fit 1-{k}",) * len(held))
    return out


def fit_with(methods: dict, status="ok"):
    result = {"backtest": {"status": status, "reason": "too few budgets", "methods": {}}}
    for m, r in methods.items():
        result[m] = {"status": "ok", "params": {}}
        result["backtest"]["methods"][m] = {"status": "ok", "rows": r}
    return result


SPLITS = ("s1", "s2", "s3", "s4", "s5")


def test_a_stacking_that_beats_the_default_out_of_sample_is_the_answer():
    """approach 3 misses every held-out budget by 6% with a +-1% PI; kaplan is right with an honest +-3%: over the
    five held-out budgets each left out in turn (from every refit that predicted it), the stacking (mostly kaplan)
    beats approach 3 at every one, so the gate passes."""
    a3 = many(lambda k, b: 0.06, 0.01)
    kaplan = many(lambda k, b: 0.005 * (b % 2), 0.03)
    rec = recommend(fit_with({"approach3": a3, "kaplan": kaplan}), ["approach3", "kaplan"], 0.95)
    assert rec["default"] == DEFAULT and rec["stacked"] and rec["method"] == "stacked"
    assert rec["gate"]["passed"] and rec["gate"]["interval"][0] > 0 and rec["gate"]["folds"] == 5
    assert rec["weights"]["kaplan"] > 0.8 and rec["stacked_per_run"]
    assert rec["reason"].startswith("a stacking of the laws")


def test_the_default_is_the_answer_where_the_backtest_cannot_show_a_gain():
    # two laws equally good, errors of either sign: no interval on the gain excludes 0
    a3 = many(lambda k, b: 0.01 * (-1) ** b, 0.03)
    kaplan = many(lambda k, b: -0.01 * (-1) ** b, 0.03)
    rec = recommend(fit_with({"approach3": a3, "kaplan": kaplan}), ["approach3", "kaplan"], 0.95)
    assert not rec["stacked"] and rec["method"] == DEFAULT and not rec["gate"]["passed"]
    assert "not shown to beat approach3" in rec["reason"]
    # kaplan clearly better, but 4 budgets (2 refits, 2 held-out budgets): no interval can be had, the default answers
    # and the reason says why
    a3 = many(lambda k, b: 0.06, 0.01, n_budgets=4)
    kaplan = many(lambda k, b: 0.0, 0.03, n_budgets=4)
    rec = recommend(fit_with({"approach3": a3, "kaplan": kaplan}), ["approach3", "kaplan"], 0.95)
    assert rec["method"] == DEFAULT and "the gate needs 3" in rec["reason"]
    assert rec["weights"]["kaplan"] > 0.5  # the weights are still reported, for the table


def test_weights_do_not_follow_a_law_best_where_a_sparse_method_predicted_and_worst_elsewhere():
    """A valley-only law predicts a fifth of the held-out groups. kaplan is best on that fifth and worst on the rest;
    weights fitted on the groups every method predicted would put nearly all on kaplan. Scored on every group, each
    method where it predicts and a missing prediction as the worst there, kaplan gets little weight."""
    groups = {s: 5 for s in SPLITS}
    a3, kaplan, valley = [], [], []
    for s in SPLITS:
        a3 += rows([0.01] * 5, 0.03, budgets=tuple(range(2, 7)), split=(s,) * 5)
        kaplan += rows([0.0] + [0.08] * 4, 0.01, budgets=tuple(range(2, 7)), split=(s,) * 5)
        valley += rows([0.02], 0.03, budgets=(2,), split=(s,))
    assert sum(groups.values()) == 25 and len(valley) == 5  # the valley law predicted a fifth of the groups
    rec = recommend(fit_with({"approach3": a3, "kaplan": kaplan, "approach3_valley": valley}),
                    ["approach3", "kaplan", "approach3_valley"], 0.95)
    assert rec["weights"]["kaplan"] < 0.05 and rec["weights"]["approach3"] > 0.85
    assert rec["method"] == DEFAULT
    # the old rule, on the intersection alone: kaplan would win there
    only = [r for r in a3 if r["budget"] == 2], [r for r in kaplan if r["budget"] == 2]
    old = recommend(fit_with({"approach3": only[0], "kaplan": only[1]}), ["approach3", "kaplan"], 0.95)
    assert old["weights"]["kaplan"] > 0.5


def test_a_missing_prediction_scores_as_the_worst_forecast_at_that_group():
    # approach 3 missed group (s1, 3) by 8%, kaplan did not predict it: kaplan takes approach 3's density there
    dens = {"approach3": {("s1", 2, "r", 2): -1.0, ("s1", 3, "r", 3): -9.0, ("s2", 2, "r", 2): -1.0},
            "kaplan": {("s1", 2, "r", 2): -1.0, ("s2", 2, "r", 2): -1.0}}
    from sweep.fit.recommend import _matrix

    keys, logp = _matrix(dens, ["approach3", "kaplan"])
    assert logp[keys.index(("s1", 3, "r", 3))].tolist() == [-9.0, -9.0]
    # so abstaining gains kaplan nothing: equal weights up to the pull toward the default
    w = stacking(lambda left_out: dens, ["approach3", "kaplan"], "approach3", "budget")["weights"]
    assert w["approach3"] > w["kaplan"]


def test_the_weights_shrink_toward_the_default():
    """Two laws equally good everywhere: without a pull the optimum is flat; the default's pseudo-group moves the
    weights to (1 + SHRINK + PRIOR) / (2 + SHRINK + 2 PRIOR) ... here exactly: for equal densities the objective is
    const + (PRIOR + SHRINK) log w + PRIOR log(1 - w), maximised at w = (PRIOR + SHRINK) / (SHRINK + 2 PRIOR)."""
    logp = np.zeros((6, 2))
    w = fit_weights(logp, np.ones(6), default=0)
    assert w[0] == pytest.approx((PRIOR + SHRINK) / (SHRINK + 2 * PRIOR), abs=1e-4)
    # and a law that misses every group by 5 sd keeps only the prior's floor
    logp = np.array([[0.0, -12.5]] * 6)
    assert fit_weights(logp, np.ones(6), default=0)[1] < PRIOR


def test_the_scored_pi_carries_the_lack_of_fit_term_measured_on_the_other_refits():
    """approach 3 misses by 6% at every refit with a +-1% PI: scored with its raw PI it would be ~-75 per group; with
    the lack-of-fit term estimated on the other refits its PI widens and its score rises, though it stays below a
    law that was right."""
    a3 = many(lambda k, b: 0.06, 0.01)
    kaplan = many(lambda k, b: 0.0, 0.03)
    rec = recommend(fit_with({"approach3": a3, "kaplan": kaplan}), ["approach3", "kaplan"], 0.95)
    raw = float(np.mean([-0.5 * (np.log(1.06) / (np.log(1.01 / 0.99) / (2 * 1.96))) ** 2]))
    assert rec["scores"]["approach3"]["log_score"] > raw + 50
    assert rec["scores"]["approach3"]["log_score"] < rec["scores"]["kaplan"]["log_score"]


def test_too_few_held_out_budgets_fall_back_to_the_default_and_say_so():
    result = fit_with({"approach3": rows([0.01], 0.02, budgets=(2,), split=("s1",)),
                       "kaplan": rows([0.0], 0.02, budgets=(2,), split=("s1",))})
    rec = recommend(result, ["approach3", "kaplan"], 0.95)
    assert rec["method"] == DEFAULT and not rec["stacked"] and "default (approach3) is the answer" in rec["reason"]
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


def test_a_fit_of_frontier_methods_only_answers_with_that_method(isoflop_runs, small_grid):
    """approach2 alone (no law of N and D): it is the default of that fit; the per-run stacking has no method."""
    from sweep.fit import FitConfig, fit

    out = fit(isoflop_runs(), FitConfig(methods=["approach2"], n_bootstrap=20, compare_conventions=False, budgets=[],
                                        **small_grid))
    rec = out["recommended"]
    assert rec["method"] == "approach2" and rec["weights_per_run"] == {} and not rec["stacked"]
    assert out["answer"]["source"] == "approach2"


def test_the_verification_run_goes_where_the_answer_is(isoflop_runs, small_grid):
    """The default law's optimum, unless the stacking is the answer: then its heaviest law that predicts there."""
    from sweep.fit import FitConfig, fit

    out = fit(isoflop_runs(), FitConfig(methods=["approach1", "approach3", "kaplan"], n_bootstrap=20, backtest=False,
                                        compare_conventions=False, budgets=[], **small_grid))
    c = 1e21
    out["recommended"] = {"default": "approach3", "method": "stacked", "stacked": True,
                          "weights": {"approach1": 0.0, "approach3": 0.3, "kaplan": 0.7}}
    assert verification_method(out, c) == ("kaplan", "the heaviest law of the stacking that is the answer, "
                                                      "weight 0.70")
    out["recommended"]["weights"] = {"approach1": 0.8, "approach3": 0.2}
    assert verification_method(out, c)[0] == "approach1"
    out["approach1"]["params"] = {**out["approach1"]["params"], "loss_e": float("nan")}  # its L*(C) n/a
    assert verification_method(out, c)[0] == "approach3"
    out["recommended"] = {"default": "approach3", "method": "approach3", "stacked": False,
                          "weights": {"kaplan": 0.9, "approach3": 0.1}}  # weights that did not pass the gate
    assert verification_method(out, c) == ("approach3", "the default law, the answer")
    out["recommended"] = {}
    assert verification_method(out, c) == (DEFAULT, "the default law")


def test_a_budget_scores_with_the_misfit_term_measured_without_its_runs():
    """A law right at every held-out budget but the last, which every refit missed by 10%: estimated with that
    budget's runs (as leaving one refit out would: the refits are nested and all predicted it) the term would widen
    the PI to cover the miss; left out, the term is the other budgets' (none), and the miss scores as the miss it is."""
    from sweep.fit.recommend import _budget, densities, lof_sd, lof_without

    a3 = many(lambda k, b: 0.10 if b == 7 else 0.0, 0.01)
    lofs = lof_without({"approach3": a3}, 0.95)
    assert lofs["approach3"][7] is None or lofs["approach3"][7].sd(2.0, 10.0) < 0.01
    assert lofs["approach3"][3].sd(2.0, 10.0) > 0.02  # estimated with budget 7's misses in it
    dens = densities(a3, lambda r: lof_sd(lofs, "approach3", _budget(r)), 0.95, best_only=False)
    at7 = [v for k, v in dens.items() if k[3] == 7]
    assert len(at7) == 5 and max(at7) < -50  # one per refit
