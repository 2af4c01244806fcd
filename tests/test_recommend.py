"""The recommended prediction: methods ranked by the log score of their PIs on the leave-future-out backtest, and
stacked by pseudo-BMA weights."""

import numpy as np
import pytest

from sweep.fit.recommend import DEFAULT, recommend, stack


def rows(errors, half_width, budgets=(2, 3, 3), split=("s1", "s1", "s2")):
    """Backtest rows: one held-out run per (split, budget), predicted `error` off with a PI of +-half_width."""
    out = []
    for e, b, sp in zip(errors, budgets, split):
        pred = 2.0 * (1 + e)
        out.append({"kind": "future", "split": sp, "budget": b, "extrapolation": 1.5 + b, "measured": 2.0,
                    "predicted": pred, "interval": [pred * (1 - half_width), pred * (1 + half_width)],
                    "rel_error": e})
    return out


def fit_with(methods: dict, status="ok"):
    result = {"backtest": {"status": status, "reason": "too few budgets", "methods": {}}}
    for m, r in methods.items():
        result[m] = {"status": "ok"}
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


def test_stacking_mixes_the_predictive_distributions():
    preds = {"a": {"predicted": 1.0, "interval": [0.9, 1.1]}, "b": {"predicted": 1.2, "interval": [1.08, 1.32]}}
    s = stack(preds, {"a": 0.5, "b": 0.5}, 0.95)
    assert s["predicted"] == pytest.approx(np.sqrt(1.0 * 1.2), rel=1e-9)  # the mean in log loss
    assert s["interval"][0] < 0.95 and s["interval"][1] > 1.25  # covers both methods' bulk
    assert stack(preds, {"a": 1.0}, 0.95) is None  # one method: nothing to stack
    one = stack(preds, {"a": 1.0, "b": 1e-9}, 0.95)
    assert one["interval"] == pytest.approx([0.9, 1.1], rel=0.01)
