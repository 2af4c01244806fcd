"""Recovery of known laws from noisy synthetic sweeps, and method skipping."""

import json

import numpy as np
import pytest

from sweep.fit import FitConfig, FitInputError, fit
from sweep.fit.inputs import wandb_runs_to_rows, load_results_folder, prepare
from sweep.fit.laws import chinchilla_loss

from conftest import TRUE_LAW as TRUE  # the law the synthetic sweeps are drawn from
@pytest.fixture(scope="module")
def synthetic_fit(isoflop_runs, small_grid):
    cfg = FitConfig(n_bootstrap=30, compare_conventions=False, backtest=True, **small_grid)
    return fit(isoflop_runs(), cfg)


def test_approach3_recovers_parameters_within_intervals(synthetic_fit):
    r = synthetic_fit["approach3"]
    assert r["status"] == "ok"
    for k in ("E", "alpha", "beta"):
        lo, hi = r["intervals"][k]
        assert lo <= TRUE[k] <= hi, (k, lo, TRUE[k], hi)
    assert abs(r["params"]["alpha"] - TRUE["alpha"]) < 0.05


def test_every_method_recovers_the_allocation_exponent(synthetic_fit):
    a_true = TRUE["beta"] / (TRUE["alpha"] + TRUE["beta"])
    for m in ("approach1", "approach2", "approach3", "kaplan"):
        r = synthetic_fit[m]
        assert r["status"] == "ok", (m, r.get("reason"))
        lo, hi = r["exponent_intervals"]["a"]
        assert lo - 0.03 <= a_true <= hi + 0.03, (m, lo, a_true, hi)
    assert synthetic_fit["approach2"]["diagnostics"]["kept"] >= 4


def test_fit_json_is_serialisable_and_has_top_level_keys(synthetic_fit):
    out = json.loads(json.dumps(synthetic_fit))
    assert {"approach1", "approach2", "approach3", "kaplan", "comparison", "backtest"} <= set(out)
    assert out["backtest"]["status"] == "ok" and "approach3" in out["backtest"]["methods"]
    assert out["approach3"]["allocation"][0]["tokens_per_param"]["value"] > 0


def test_approach2_skipped_without_repeated_budgets(caplog, small_grid):
    rng = np.random.default_rng(1)
    n = np.exp(rng.uniform(np.log(1e7), np.log(1e9), 30))
    d = np.exp(rng.uniform(np.log(1e8), np.log(1e10), 30))
    runs = [{"n_params": a, "n_tokens": b, "loss": chinchilla_loss(a, b, *TRUE.values())} for a, b in zip(n, d)]
    cfg = FitConfig(n_bootstrap=0, compare_conventions=False, backtest=False, budget_tolerance=0.0,
                    methods=["approach2", "approach3"], **small_grid)
    with caplog.at_level("WARNING", logger="sweep.fit"):
        out = fit(runs, cfg)
    assert out["approach2"]["status"] == "skipped" and "budget" in out["approach2"]["reason"]
    assert out["approach3"]["status"] == "ok"
    assert [r.getMessage()[:18] for r in caplog.records] == ["approach2 skipped "]  # said once, by the main fit

    # The sub-fits (backtest, FLOP-convention comparison) go through fit_methods: they skip quietly
    # and keep the reason in their own results, so the user never reads "skipped" about the main fit.
    from sweep.fit.pipeline import fit_methods

    caplog.clear()
    notes = []
    with caplog.at_level("WARNING", logger="sweep.fit"):
        sub = fit_methods(prepare(runs, cfg), cfg, notes)
    assert sub["approach2"]["status"] == "skipped" and not caplog.records and notes[0].startswith("approach2 skipped")


@pytest.mark.parametrize("bad, message", [
    ([{"n_params": 1e6, "n_tokens": 1e8, "loss": 3.0}] * 6, "duplicate row"),
    ([{"n_params": 1e6 * (i + 1), "n_tokens": 1e8, "loss": 3.0 + i, "run_id": "r" + str(min(i, 4))} for i in range(6)],
     r"duplicate row\(s\) \(same run_id\): r4 = r4"),
    ([{"n_params": float("nan") if i == 2 else 1e6 * (i + 1), "n_tokens": 1e8, "loss": 3.0, "run_name": f"L{i}"}
      for i in range(6)], r"non-positive n_params in 1 run\(s\): L2 \(n_params=nan\)"),
    ([{"n_params": 1e6 * (i + 1), "n_tokens": -1e8 if i == 3 else 1e8, "loss": 3.0, "run_name": f"L{i}"}
      for i in range(6)], r"n_tokens in 1 run\(s\): L3"),
    ([{"n_params": 1e6 * (i + 1), "n_tokens": 1e8, "loss": -1.0 if i == 0 else 3.0} for i in range(6)], "non-positive loss"),
    ([{"n_params": 1e6 * (i + 1), "n_tokens": 1e8, "loss": 3.0, "corpus_hash": str(i % 2)} for i in range(6)], "different corpora"),
    ([{"n_params": 1e6 * (i + 1), "n_tokens": 1e8, "loss": 3.0, "tokenizer_hash": str(i % 2)} for i in range(6)], "different tokenizers"),
    ([{"n_params": 1e6 * (i + 1), "loss": 3.0} for i in range(6)], "n_tokens or flops"),
])
def test_bad_inputs_fail_with_a_clear_message(bad, message):
    with pytest.raises(FitInputError, match=message):
        prepare(bad, FitConfig())


def test_too_few_points_for_every_method_is_an_error():
    runs = [{"n_params": 1e6 * (i + 1), "n_tokens": 1e8 * (i + 1), "loss": 3.0 - 0.1 * i} for i in range(3)]
    with pytest.raises(FitInputError, match="no method applies"):
        fit(runs, FitConfig(n_bootstrap=0, methods=["approach3", "kaplan"], compare_conventions=False, backtest=False))


def test_non_embedding_convention_needs_its_column():
    runs = [{"n_params": 1e6 * (i + 1), "n_tokens": 1e8, "loss": 3.0} for i in range(6)]
    with pytest.raises(FitInputError, match="n_params_non_embedding"):
        prepare(runs, FitConfig(param_convention="non_embedding"))


def test_results_folder_skips_truncated_and_diverged_runs_and_counts_branches(tmp_path, isoflop_runs):
    runs = isoflop_runs()[:12]
    for i, r in enumerate(runs):
        folder = tmp_path / "runs" / f"r{i}"
        folder.mkdir(parents=True)
        res = {"run_id": f"r{i}", "run_name": f"run{i}", "status": "diverged" if i == 0 else "done",
               "final_val_loss": r["loss"], "n_params": r["n_params"], "n_tokens": r["n_tokens"],
               "corpus_hash": "c", "tokenizer_hash": "t", "branch": i == 5}
        (folder / "result.json").write_text(json.dumps(res))
    (tmp_path / "runs" / "broken").mkdir()
    (tmp_path / "runs" / "broken" / "result.json").write_text('{"run_id": "x", "final_val')
    notes = []
    df = load_results_folder(tmp_path, notes)
    assert len(df) == 12 and any("broken" in n for n in notes)
    data = prepare(df, FitConfig(), notes)
    assert data.loss.size == 11 and data.n_branches == 1
    assert any("diverged" in n and "run0" in n for n in notes)


def test_wandb_rows_from_fake_api_runs():
    # The one mock allowed: wandb.Api needs the network, so fake run objects feed the pure conversion.
    class FakeRun:
        def __init__(self, i):
            self.id, self.name, self.state, self.tags, self.group = f"id{i}", f"run{i}", "finished", [], "g"
            self.summary = {"final_val_loss": 3.0 - 0.1 * i, "n_tokens": 1e8}
            self.config = {"n_params": 1e6 * (i + 1)}

    rows = wandb_runs_to_rows([FakeRun(i) for i in range(3)], {"loss": "final_val_loss", "n_params": "n_params",
                                                              "n_tokens": "n_tokens"})
    assert rows[2] == {"run_id": "id2", "run_name": "run2", "loss": pytest.approx(2.8), "n_params": 3e6,
                       "n_tokens": 1e8, "status": "done"}

    # with curves: each run's history rows (what the trainer logs at each evaluation) become its curve
    class HistoryRun(FakeRun):
        def scan_history(self, keys):
            assert keys == ["tokens", "val_loss"]
            rows = [{"tokens": t, "val_loss": 5.0 - t / 1e8} for t in (2.5e7, 5e7, 7.5e7)]
            return rows + [{"tokens": 1e8, "val_loss": None}, {"tokens": 5e7, "val_loss": 4.4}]  # a resumed step

    curve = wandb_runs_to_rows([HistoryRun(0)], {"loss": "final_val_loss"}, curves=True)[0]["curve"]
    assert curve.tokens.tolist() == [2.5e7, 5e7, 7.5e7] and curve.loss.tolist() == pytest.approx([4.75, 4.4, 4.25])
    assert wandb_runs_to_rows([FakeRun(0)], {}, curves=True)[0]["curve"] is None


def test_loss_law_needs_a_floor_to_extrapolate():
    import dataclasses

    from sweep.fit.powerlaw import loss_law

    cfg = FitConfig()
    c = np.logspace(18, 21, 6)
    floored = loss_law(c, 1.7 + (1e17 / c) ** 0.3, cfg)
    assert floored["e"] == pytest.approx(1.7, abs=0.02) and floored["alpha"] == pytest.approx(0.3, abs=0.03)
    assert np.isnan(loss_law(c, (1e25 / c) ** 0.05, cfg)["e"])  # no floor in the data: E at its bound 0
    assert np.isnan(loss_law(c[:3], 1.7 + (1e17 / c[:3]) ** 0.3, cfg)["alpha"])  # the final fit waits for 4 points
    # the backtest's refits take 3: the law passes through them (here, exactly the truth)
    three = loss_law(c[:3], 1.7 + (1e17 / c[:3]) ** 0.3, dataclasses.replace(cfg, loss_law_min_points=3))
    assert three["e"] == pytest.approx(1.7, abs=0.02) and three["alpha"] == pytest.approx(0.3, abs=0.03)


def test_report_says_when_e_is_at_its_bound(synthetic_fit, isoflop_runs, small_grid):
    from sweep.fit import approach3
    from sweep.fit.laws import AT_BOUND

    # the law without a floor: the fitted E sits on the bound of E = exp(e), and the report says so
    rows = [{**r, "loss": r["loss"] - TRUE["E"]} for r in isoflop_runs(noise=0.0)]
    no_floor = fit(rows, FitConfig(methods=["approach3"], n_bootstrap=0, compare_conventions=False, **small_grid))
    assert no_floor["approach3"]["params"]["E"] < AT_BOUND
    assert "E is at its lower bound" in "\n".join(approach3.report(no_floor["approach3"], no_floor))
    # a law with its floor (E = 1.8) gets no such line
    assert synthetic_fit["approach3"]["params"]["E"] > 1.0
    assert "lower bound" not in "\n".join(approach3.report(synthetic_fit["approach3"], synthetic_fit))


def test_approach3_exponents_stay_non_negative():
    """Runs where a bigger model is worse at every D (starved small-budget sweeps do this) must not give a negative
    alpha, which would send the law's extrapolation in N the wrong way."""
    from sweep.fit.approach3 import run as approach3_run

    rng = np.random.default_rng(0)
    runs = [{"n_params": n, "n_tokens": d, "status": "done",
             "loss": (2.0 + 0.3 * (n / 1e6) ** 0.1 + 400 / d ** 0.3) * np.exp(0.002 * rng.standard_normal())}
            for n in np.logspace(6, 8, 5) for d in np.logspace(8, 10, 5)]
    cfg = FitConfig(n_bootstrap=20, compare_conventions=False, backtest=False, methods=["approach3"])
    out = approach3_run(prepare(runs, cfg, []), cfg)
    assert out.params["alpha"] >= 0 and out.params["beta"] > 0
    assert min(out.intervals["alpha"]) >= 0
