"""Results as data: `sweep export` (csv and parquet, one row per run) and the Python API of the README."""

import json

import pandas as pd
import pytest

from sweep.ladder.export import COLUMNS


def test_export_lists_planned_runs_then_measured_ones_in_both_formats(tmp_path, run_sweep, results):
    before = run_sweep(tmp_path, "export")
    csv = tmp_path / "results" / "t" / "export.csv"
    assert "2 runs (2 pending)" in before.stdout and csv.exists()
    pending = pd.read_csv(csv)
    assert list(pending.columns) == list(COLUMNS)
    assert list(pending.status) == ["pending", "pending"] and pending.loss.isna().all()
    assert pending.n_params.gt(pending.n_params_non_embedding).all()  # both conventions, Chinchilla's the larger

    # run one of the two, then export again, as parquet to a path of our choosing
    run_sweep(tmp_path, "run", "run_index=1", check=False)
    done = results(tmp_path)
    assert len(done) == 1
    out = tmp_path / "table.parquet"
    after = run_sweep(tmp_path, "export", "format=parquet", f"out={out}")
    assert "2 runs (1 done, 1 pending)" in after.stdout
    table = pd.read_parquet(out)
    assert list(table.columns) == list(COLUMNS)
    row = table[table.status == "done"].iloc[0]
    (result,) = done.values()
    assert row.run_id == result["run_id"] and row.run_index == 1 and bool(row.planned)
    assert row.loss == result["final_val_loss"] and row.final_train_loss == result["final_train_loss"]
    for key in ("n_params", "n_params_non_embedding", "n_tokens", "flops", "flops_6nd", "steps"):
        assert row[key] == result[key], key
    assert row.seed == result["config"]["train"]["seed"] and row.experiment == "default"
    assert row.budget_flops == 3e9 and row.n_layer == result["config"]["model"]["n_layer"]
    # the planned numbers of the pending run are those `sweep plan` prints
    other = table[table.status == "pending"].iloc[0]
    assert other.run_index == 0 and other.flops > 0 and pd.isna(other.loss)

    # a run in the sweep's folder that the plan does not hold (a verification run, say) is exported too
    rdir = tmp_path / "results" / "t" / "runs"
    extra = json.loads((rdir / result["run_id"] / "result.json").read_text())
    extra.update(run_id="feedfacecafe", run_name="verify-run")
    (rdir / "feedfacecafe").mkdir()
    (rdir / "feedfacecafe" / "result.json").write_text(json.dumps(extra))
    run_sweep(tmp_path, "export")
    table = pd.read_csv(csv)
    assert len(table) == 3
    unplanned = table[table.run_id == "feedfacecafe"].iloc[0]
    assert not unplanned.planned and pd.isna(unplanned.run_index) and unplanned.loss == result["final_val_loss"]


def test_api_plan_load_results_fit(tmp_path, isoflop_runs, small_grid):
    from sweep import FitConfig, fit, load_results, plan

    g = plan(["experiment=default"], n_train_tokens=4_000_000)
    assert len(g.runs) >= 9 and all(r.flops > r.flops_6nd > 0 for r in g.runs)
    assert len({r.run_id for r in g.runs}) == len(g.runs)
    # load_results reads a table (here one `sweep export` could have written) as well as a results folder
    rows = pd.DataFrame(isoflop_runs(seed=0, noise=0.0))
    rows.to_csv(tmp_path / "runs.csv", index=False)
    table = load_results(str(tmp_path / "runs.csv"))
    assert len(table) == len(rows)
    fitted = fit(table, FitConfig(methods=["approach3"], n_bootstrap=0, **small_grid))
    assert fitted["approach3"]["params"]["alpha"] == pytest.approx(0.34, rel=0.05)
