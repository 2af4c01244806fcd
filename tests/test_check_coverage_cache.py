"""scripts/check_coverage.py --cache: a study of the fit's conclusion (lack-of-fit terms, recommended prediction,
answer) re-runs only pipeline.conclude on stored fits, and must score exactly what a fresh fit scores."""

import json
import pickle
import sys
from pathlib import Path

import numpy as np

from sweep.fit import FitConfig, fit, registry
from sweep.fit.simulate import Law, isoflop_sweep

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import check_coverage  # noqa: E402
from check_coverage import fitted  # noqa: E402


def _conclusion(result: dict) -> str:
    """The parts conclude writes, as text (NaN == NaN there: a method with no loss law has NaN losses)."""
    methods = result["config"]["methods"]
    return json.dumps({"recommended": result["recommended"], "answer": result["answer"],
            "lack_of_fit": {m: result[m].get("lack_of_fit") for m in methods},
            "allocation": {m: result[m].get("allocation") for m in methods}}, sort_keys=True, default=str)


def test_a_stored_fit_concluded_again_equals_a_fresh_fit_and_a_stale_conclusion_is_recomputed(tmp_path, monkeypatch):
    runs = isoflop_sweep(Law(), np.logspace(18, 20, 5), sizes_per_budget=7, noise=0.01, seed=3)
    cfg = FitConfig(n_bootstrap=20, seed=3, methods=registry.defaults(), compare_conventions=False, budgets=[])
    fresh = fit(runs, cfg)
    assert fresh["approach3"]["lack_of_fit"]["n_rows"] >= 3  # the backtest measured a term: there is one to check
    stored = fitted(runs, cfg, str(tmp_path))
    files = list(tmp_path.glob("*.pkl"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp"))
    # a conclusion written by another rule: what the cache returns must not be it
    stale = pickle.loads(files[0].read_bytes())
    stale["approach3"]["lack_of_fit"] = {**stale["approach3"]["lack_of_fit"], "kappa": 0.4, "upper": [[1.0, 0.4]]}
    stale["recommended"] = {"default": "kaplan", "method": "kaplan"}
    files[0].write_bytes(pickle.dumps(stale))
    again = fitted(runs, cfg, str(tmp_path))
    assert _conclusion(stored) == _conclusion(fresh)
    assert _conclusion(again) == _conclusion(fresh)
    other = fitted(isoflop_sweep(Law(), np.logspace(18, 20, 5), sizes_per_budget=7, noise=0.01, seed=4), cfg,
                   str(tmp_path))
    assert len(list(tmp_path.glob("*.pkl"))) == 2 and other["data"]["points"] != fresh["data"]["points"]
    # a fit stored by other code before the conclusion is not reused: a third file, not a hit
    monkeypatch.setattr(check_coverage, "fit_code", lambda: "a fitter changed before conclude")
    fitted(runs, cfg, str(tmp_path))
    assert len(list(tmp_path.glob("*.pkl"))) == 3
    modules = check_coverage.CONCLUSION_MODULES
    assert "lack_of_fit.py" in modules and "pipeline.py" not in modules  # pipeline.fit runs before conclude
