"""`sweep fit`, `sweep predict`, `sweep report` through the Hydra-composed entry points."""

import json
import re

import pandas as pd
import pytest

from sweep.fit.cli import fit_command, predict_command, report_command


def test_fit_predict_report_round_trip(tmp_path, capsys, isoflop_runs, small_grid):
    table = tmp_path / "runs.csv"
    pd.DataFrame(isoflop_runs()).rename(columns={"loss": "val_loss"}).to_csv(table, index=False)
    out = tmp_path / "fit"
    grid = [f"fit.{k}=[{','.join(map(str, v))}]" for k, v in small_grid.items()]
    rc = fit_command([f"input={table}", f"output={out}", "columns.loss=val_loss", "fit.n_bootstrap=10",
                      "fit.compare_conventions=false", "fit.backtest=false", "wandb.mode=disabled",
                      "fit.methods=[approach2,approach3]", *grid])
    assert rc == 0
    result = json.loads((out / "fit.json").read_text())
    assert result["approach3"]["status"] == "ok" and result["data"]["n_runs"] == 54
    assert (out / "report.md").read_text().startswith("# Scaling-law fit")
    assert (out / "scaling.png").stat().st_size > 1000
    fitted = capsys.readouterr().out  # the console shows the table's extrapolations, 10x and 100x
    assert "C = 1e+21 FLOPs, 10x the largest" in fitted and "C = 1e+22 FLOPs, 100x the largest" in fitted
    assert predict_command([f"input={out}", "flops=1e21"]) == 0
    printed = capsys.readouterr().out
    assert "C = 1e+21" in printed and "approach3" in printed and "tokens/param" in printed
    # without a backtest nothing measured the law's misfit: the answer gives the loss and no PI, and says why
    from sweep.fit.answer import NO_PI

    assert printed.splitlines()[0].endswith(f"({NO_PI})")
    # a run at N and D: the laws of N and D, with its reach past the fitted data
    assert predict_command([f"input={out}", "n_params=1e9", "n_tokens=2e10"]) == 0
    point = capsys.readouterr().out
    assert "past the fitted data in N, D or C" in point and "  approach3        loss = " in point
    assert not [line for line in point.splitlines() if line.split()[:1] == ["approach2"]]  # L*(C) is not the loss of a run at any N and D
    (out / "report.md").unlink()
    assert report_command([f"input={out}"]) == 0
    assert (out / "report.md").exists()
    from sweep.fit.config import FitInputError

    for bad in ("flops=-1", "flops=0", "n_params=-5"):  # refused before any number is printed
        with pytest.raises(FitInputError, match="must be a positive number"):
            predict_command([f"input={out}", bad, *(["n_tokens=1e9"] if bad.startswith("n_params") else [])])


@pytest.mark.parametrize("content", ["", "n_params,n_tokens,flops,loss\n"])
def test_an_empty_table_is_refused_naming_the_file(tmp_path, content):
    from sweep.fit.config import FitInputError

    table = tmp_path / "runs.csv"
    table.write_text(content)
    with pytest.raises(FitInputError, match=f"{table}"):
        fit_command([f"input={table}", "wandb.mode=disabled"])


def test_plots_of_one_method_alone_need_no_other_method(tmp_path, isoflop_runs, small_grid):
    table = tmp_path / "runs.csv"
    pd.DataFrame(isoflop_runs()).to_csv(table, index=False)
    out = tmp_path / "fit"
    grid = [f"fit.{k}=[{','.join(map(str, v))}]" for k, v in small_grid.items()]
    rc = fit_command([f"input={table}", f"output={out}", "fit.n_bootstrap=0", "fit.compare_conventions=false",
                      "fit.backtest=false", "wandb.mode=disabled", "fit.methods=[approach3]", *grid])
    assert rc == 0
    assert json.loads((out / "fit.json").read_text())["approach3"]["status"] == "ok"
    assert (out / "loss_vs_params.png").stat().st_size > 1000
    assert (out / "scaling.png").stat().st_size > 1000  # its first panel without approach 2's parabolas


def test_the_fit_s_wandb_run_holds_the_runs_table_and_interactive_charts(tmp_path, isoflop_runs, small_grid):
    from sweep.store.wandb_offline import find_offline_runs, read_offline_run

    rows = isoflop_runs()
    table = tmp_path / "runs.csv"
    pd.DataFrame([{**r, "budget_index": i // 9} for i, r in enumerate(rows)]).to_csv(table, index=False)
    out = tmp_path / "fit"
    grid = [f"fit.{k}=[{','.join(map(str, v))}]" for k, v in small_grid.items()]
    assert fit_command([f"input={table}", f"output={out}", "fit.n_bootstrap=0", "fit.compare_conventions=false",
                        "fit.backtest=false", "wandb.mode=offline", "fit.methods=[approach3]", *grid]) == 0
    run = read_offline_run(find_offline_runs(out)[0])
    logged = {k for row in run["history"] for k in row}
    assert {"runs/table", "runs/loss_vs_compute_table", "runs/isoflop_curves_table"} <= logged
    assert run["job_type"] == "fit" and run["summary"]["approach3/a"] == pytest.approx(
        json.loads((out / "fit.json").read_text())["approach3"]["exponents"]["a"])


def test_a_skipped_method_is_explained_once_and_expected_nans_stay_quiet(tmp_path, capsys, isoflop_runs):
    """Every budget's minimum at its smallest size: approach 2 cannot apply. Its reason appears once in the report
    and once on the console, and the n/a numbers behind it raise no numpy RuntimeWarning."""
    import warnings

    by_budget = {}
    for r in isoflop_runs():
        by_budget.setdefault(round(6 * r["n_params"] * r["n_tokens"], -10), []).append(r)
    rows = [r for runs in by_budget.values() for r in sorted(runs, key=lambda q: q["n_params"])[5:]]  # above N*
    table = tmp_path / "edge.csv"
    pd.DataFrame(rows).rename(columns={"loss": "val_loss"}).to_csv(table, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert fit_command([f"input={table}", f"output={tmp_path / 'fit'}", "columns.loss=val_loss",
                            "fit.n_bootstrap=10", "wandb.mode=disabled"]) == 0
    report = (tmp_path / "fit" / "report.md").read_text()
    reason = "minimum at the edge of the sampled sizes"
    assert report.count("approach 2 needs 2") == 1 and reason in report
    assert capsys.readouterr().out.count("approach 2 needs 2") == 1


def test_a_fit_of_frontier_methods_only_fits_and_says_why_it_predicts_no_run(tmp_path, capsys, isoflop_runs):
    table = tmp_path / "runs.csv"
    pd.DataFrame(isoflop_runs()).to_csv(table, index=False)
    out = tmp_path / "fit"
    assert fit_command([f"input={table}", f"output={out}", "fit.n_bootstrap=10", "fit.compare_conventions=false",
                        "wandb.mode=disabled", "fit.methods=[approach2]"]) == 0  # the backtest ran: no crash
    printed = capsys.readouterr().out.splitlines()
    assert printed[1].startswith("answer: C = ") and printed[3].startswith("why: the default (approach2)")
    assert "## Recommended prediction\n\n**approach2**" in (out / "report.md").read_text()
    assert predict_command([f"input={out}", "n_params=1e9", "n_tokens=2e10"]) == 0
    assert "no fitted method has a law of N and D" in capsys.readouterr().out


ANSWER = re.compile(r"answer: C = (?P<c>\S+) FLOPs \((?P<x>\S+)x the largest fitted\): "
                    r"N\* = (?P<n>\S+) \[(?P<n_lo>\S+), (?P<n_hi>\S+)\], D\* = (?P<d>\S+) \[(?P<d_lo>\S+), (?P<d_hi>\S+)\], "
                    r"tokens/param = (?P<t>\S+) \[(?P<t_lo>\S+), (?P<t_hi>\S+)\], "
                    r"loss = (?P<l>\S+) \[(?P<l_lo>\S+), (?P<l_hi>\S+)\] \(95% PI for a new run\)$")


def test_predict_leads_with_one_answer_that_parses(tmp_path, capsys, isoflop_runs, small_grid):
    """The first line of `sweep predict flops=C` is the answer: N*, D*, tokens/param and a new run's loss, each with
    its interval, from the recommended prediction; the next says why. With n_params and n_tokens, the loss alone."""
    table = tmp_path / "runs.csv"
    pd.DataFrame(isoflop_runs()).to_csv(table, index=False)
    out = tmp_path / "fit"
    grid = [f"fit.{k}=[{','.join(map(str, v))}]" for k, v in small_grid.items()]
    assert fit_command([f"input={table}", f"output={out}", "fit.n_bootstrap=20", "fit.compare_conventions=false",
                        "wandb.mode=disabled", "fit.methods=[approach3,kaplan]", *grid]) == 0
    capsys.readouterr()
    assert predict_command([f"input={out}", "flops=1e21"]) == 0
    lines = capsys.readouterr().out.splitlines()
    m = ANSWER.match(lines[0])
    assert m, lines[0]
    v = {k: float(x) for k, x in m.groupdict().items()}
    assert v["c"] == 1e21 and v["n_lo"] < v["n"] < v["n_hi"] and v["l_lo"] < v["l"] < v["l_hi"]
    assert v["d"] == pytest.approx(1e21 / (6 * v["n"]), rel=2e-3) and v["t"] == pytest.approx(v["d"] / v["n"], rel=2e-3)
    fit = json.loads((out / "fit.json").read_text())
    rec = fit["recommended"]
    assert lines[1] == f"why: {rec['reason']}"
    if not rec["stacked"]:  # the default law's own optimum and PI
        from sweep.fit import allocation

        a3 = allocation.allocation_row("approach3", fit["approach3"], 1e21, fit["data"]["flops_per_nd"], 0.95,
                                       allocation.noise_of(fit), extrapolation=1e21 / fit["data"]["flops_range"][1])
        assert v["n"] == pytest.approx(a3["n_star"]["value"], rel=2e-3)
        assert [v["l_lo"], v["l_hi"]] == pytest.approx(a3["loss"]["prediction_interval"], rel=2e-3)
    assert predict_command([f"input={out}", "n_params=1e9", "n_tokens=2e10"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert re.match(r"answer: N = 1e\+09, D = 2e\+10: loss = \S+ \[\S+, \S+\] \(95% PI for a new run\), from "
                    r"(approach3|stacked)$", first), first
