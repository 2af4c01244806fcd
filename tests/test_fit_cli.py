"""`sweep fit`, `sweep predict`, `sweep report` through the Hydra-composed entry points."""

import json

import pandas as pd

from sweep.fit.cli import fit_command, predict_command, report_command
from test_fit_synthetic import SMALL_GRID, isoflop_runs


def test_fit_predict_report_round_trip(tmp_path, capsys):
    table = tmp_path / "runs.csv"
    pd.DataFrame(isoflop_runs()).rename(columns={"loss": "val_loss"}).to_csv(table, index=False)
    out = tmp_path / "fit"
    grid = [f"fit.{k}=[{','.join(map(str, v))}]" for k, v in SMALL_GRID.items()]
    rc = fit_command([f"input={table}", f"output={out}", "columns.loss=val_loss", "fit.n_bootstrap=10",
                      "fit.compare_conventions=false", "fit.backtest=false", "wandb.mode=disabled",
                      "fit.methods=[approach2,approach3]", *grid])
    assert rc == 0
    result = json.loads((out / "fit.json").read_text())
    assert result["approach3"]["status"] == "ok" and result["data"]["n_runs"] == 54
    assert (out / "report.md").read_text().startswith("# Scaling-law fit")
    assert (out / "isoflop.png").stat().st_size > 1000
    capsys.readouterr()
    assert predict_command([f"input={out}", "flops=1e21"]) == 0
    printed = capsys.readouterr().out
    assert "C = 1e+21" in printed and "approach3" in printed and "tokens/param" in printed
    (out / "report.md").unlink()
    assert report_command([f"input={out}"]) == 0
    assert (out / "report.md").exists()


def test_plots_of_one_method_alone_need_no_other_method(tmp_path):
    table = tmp_path / "runs.csv"
    pd.DataFrame(isoflop_runs()).to_csv(table, index=False)
    out = tmp_path / "fit"
    grid = [f"fit.{k}=[{','.join(map(str, v))}]" for k, v in SMALL_GRID.items()]
    rc = fit_command([f"input={table}", f"output={out}", "fit.n_bootstrap=0", "fit.compare_conventions=false",
                      "fit.backtest=false", "wandb.mode=disabled", "fit.methods=[approach3]", *grid])
    assert rc == 0
    assert json.loads((out / "fit.json").read_text())["approach3"]["status"] == "ok"
    assert (out / "loss_vs_params.png").stat().st_size > 1000
    assert not (out / "isoflop.png").exists()  # approach 2 did not run
