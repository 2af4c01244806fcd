"""Chinchilla approach 1 on the envelope of training curves: recovery of a known law, curve loading, fallbacks."""

import json

import numpy as np
import pandas as pd
import pytest

from sweep.fit import FitConfig, FitInputError, MethodSkipped, fit
from sweep.fit.approach1 import curve_envelope, fit_point
from sweep.fit.inputs import Curve, load_results_folder, load_runs, prepare, read_curve
from sweep.fit.laws import chinchilla_loss
from sweep.fit.plots import write_plots
from sweep.fit.report import render

# Hoffmann et al.'s fitted law: N_opt ∝ C^a with a = β / (α + β) under C = 6 N D.
LAW = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
A_TRUE = LAW["beta"] / (LAW["alpha"] + LAW["beta"])
B_TRUE = LAW["alpha"] / (LAW["alpha"] + LAW["beta"])
SIZES = np.logspace(7, 9, 17)
ONLY_A1 = dict(methods=["approach1"], compare_conventions=False, backtest=False)


def optimal_tokens_per_param(n):
    """D/N of the compute-optimal run of size n under LAW (C = 6 N D)."""
    g = (LAW["alpha"] * LAW["A"] / (LAW["beta"] * LAW["B"])) ** (1 / (LAW["alpha"] + LAW["beta"]))
    c = 6 * (n / g) ** (1 / A_TRUE)
    return c / 6 / n ** 2


def write_sweep(folder, n_points=30):
    """A results folder: one run per size, its val-loss curve L(N, D_t) at log-spaced D_t, no schedule effect.

    Every curve spans the same tokens-per-parameter range, 1.5x beyond the optimal D/N of the smallest and
    largest size, so the envelope is the compute-optimal frontier except for short clipped ends.
    """
    r0, r1 = optimal_tokens_per_param(SIZES[0]) / 1.5, optimal_tokens_per_param(SIZES[-1]) * 1.5
    for i, n in enumerate(SIZES):
        run = folder / "runs" / f"r{i:02d}"
        run.mkdir(parents=True)
        tokens = n * np.geomspace(r0, r1, n_points)
        with open(run / "metrics.jsonl", "w") as f:
            for step, t in enumerate(tokens):
                row = {"step": step, "tokens": float(t), "flops": 6 * n * t}
                f.write(json.dumps({**row, "train_loss": 9.0}) + "\n")  # rows without val_loss are ignored
                f.write(json.dumps({**row, "val_loss": float(chinchilla_loss(n, t, *LAW.values()))}) + "\n")
        d = float(tokens[-1])
        result = {"run_id": f"r{i:02d}", "run_name": f"N{n:.3g}", "status": "done", "n_params": float(n),
                  "n_tokens": d, "flops": 6 * n * d, "final_val_loss": float(chinchilla_loss(n, d, *LAW.values()))}
        (run / "result.json").write_text(json.dumps(result))
    return folder


@pytest.fixture(scope="module")
def sweep_folder(tmp_path_factory):
    return write_sweep(tmp_path_factory.mktemp("sweep"))


@pytest.fixture(scope="module")
def runs(sweep_folder):
    notes = []
    df = load_results_folder(sweep_folder, notes)
    assert notes == []
    return df


def test_envelope_of_curves_recovers_the_allocation_exponents(runs):
    cfg = FitConfig(n_bootstrap=0, **ONLY_A1)
    data = prepare(runs, cfg)
    point = fit_point(data, cfg)
    assert point["source"] == "curves"
    assert abs(point["a"] - A_TRUE) < 0.01, (point["a"], A_TRUE)
    assert abs(point["b"] - B_TRUE) < 0.01, (point["b"], B_TRUE)
    assert point["loss_e"] == pytest.approx(LAW["E"], abs=0.02)
    env = point["envelope"]
    assert env["c"].size >= 1500 and np.all(np.diff(env["c"]) > 0)
    assert sorted(point["frontier"]) == list(range(SIZES.size))  # every size is optimal somewhere
    # The envelope's loss is the law's minimum over the sizes at each compute, to interpolation accuracy.
    mid = env["c"].size // 2
    best = min(chinchilla_loss(n, env["c"][mid] / (6 * n), *LAW.values()) for n in SIZES)
    assert env["loss"][mid] == pytest.approx(best, rel=1e-3)
    assert env["d"][mid] == pytest.approx(env["c"][mid] / (6 * env["n"][mid]))
    # Final losses alone: one run per compute, all at the same D/N, so the "frontier" would be every run and give
    # a = 0.5 whatever the law (C ∝ N^2): approach 1 says so instead of printing that number.
    with pytest.raises(MethodSkipped, match="every compute budget has one model size"):
        fit_point(data, FitConfig(n_bootstrap=0, approach1_curves=False, **ONLY_A1))


def test_curve_envelope_never_extrapolates_a_run():
    # Run 0 covers C in [1, 10] at loss 3; run 1 covers [100, 1000] at loss 1 (lower, but elsewhere).
    c, d = np.array([10.0, 1000.0]), np.array([10.0, 100.0])
    curves = [Curve(np.array([1.0, 10.0]), np.array([3.0, 3.0])), Curve(np.array([10.0, 100.0]), np.array([1.0, 1.0]))]
    env = curve_envelope(c, d, curves, grid_size=31)
    assert env["c"].min() == pytest.approx(1.0) and env["c"].max() == pytest.approx(1000.0)
    below = env["c"] <= 10.0 * (1 + 1e-12)
    assert np.all(env["run"][below] == 0) and np.all(env["run"][~below] == 1)
    assert not np.any((env["c"] > 10.0 * (1 + 1e-9)) & (env["c"] < 100.0 * (1 - 1e-9)))  # nobody covers the gap
    assert np.allclose(env["loss"][below], 3.0) and np.allclose(env["d"][~below], env["c"][~below] / 10.0)


def test_a_truncated_line_without_val_loss_is_counted(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "tokens": 10, "val_loss": 3.0}\n{"step": 2, "tokens": 20, "train_lo')
    curve, bad = read_curve(path)
    assert bad == 1 and curve.tokens.tolist() == [10.0] and curve.loss.tolist() == [3.0]
    assert read_curve(tmp_path / "missing.jsonl") == (None, 0)
    # A resumed run repeats a step: the later row wins; non-finite losses are dropped.
    path.write_text('{"tokens": 5, "val_loss": NaN}\n{"tokens": 10, "val_loss": 2.5}\n{"tokens": 10, "val_loss": 2.4}\n')
    curve, bad = read_curve(path)
    assert bad == 0 and curve.tokens.tolist() == [10.0] and curve.loss.tolist() == [2.4]
    path.write_text('{"step": 1, "train_loss": 5.0}\n')
    assert read_curve(path) == (None, 0)


def test_truncated_and_missing_metrics_are_tolerated(tmp_path):
    folder = write_sweep(tmp_path)
    truncated = folder / "runs" / "r03" / "metrics.jsonl"
    text = truncated.read_text()
    truncated.write_text(text[:-8])  # a writer killed mid-line, inside the last val_loss value
    (folder / "runs" / "r07" / "metrics.jsonl").unlink()
    curve, bad = read_curve(truncated)
    assert bad == 1 and curve.tokens.size == 29
    notes = []
    df = load_results_folder(folder, notes)
    assert any("r07" in n and "final loss only" in n for n in notes)
    assert any("r03" in n and "1 line(s)" in n for n in notes)
    data = prepare(df, FitConfig())
    assert data.curves[7].tokens.size == 1 and data.curves[3].tokens.size == 30  # final point restored from result.json
    assert data.curves[3].tokens[-1] == data.d[3] and data.curves[3].loss[-1] == data.loss[3]
    point = fit_point(data, FitConfig(n_bootstrap=0, **ONLY_A1))
    assert point["source"] == "curves" and abs(point["a"] - A_TRUE) < 0.03


def test_table_input_falls_back_to_final_losses_with_a_note(runs, tmp_path):
    table = tmp_path / "runs.csv"
    runs.drop(columns=["curve", "path"]).to_csv(table, index=False)
    df = load_runs(str(table))
    assert "curve" not in df.columns
    # one run per compute: without the curves there is no frontier to read, and approach 1 says why
    with pytest.raises(FitInputError, match="every compute budget has one model size"):
        fit(df, FitConfig(n_bootstrap=0, **ONLY_A1))
    # with two sizes at each compute the frontier of final losses is each budget's best run
    bigger = df.assign(n_params=df["n_params"] * 1.5, loss=df["loss"] * 1.01)
    for key in ("run_id", "run_name"):
        if key in bigger.columns:
            bigger[key] = bigger[key].astype(str) + "-x1.5"
    twice = pd.concat([df, bigger], ignore_index=True)
    out = fit(twice, FitConfig(n_bootstrap=0, **ONLY_A1))
    assert out["approach1"]["diagnostics"]["source"] == "final"
    assert any("approach 1: no training curves" in w for w in out["warnings"])
    assert "curves" not in out["data"]
    assert "Frontier of final losses" in render(out)


def test_bootstrap_over_runs_carries_the_curves(runs):
    data = prepare(runs, FitConfig())
    sub = data.subset(np.array([2, 2, 5]))
    assert sub.curves[0] is data.curves[2] and sub.curves[1] is data.curves[2] and sub.curves[2] is data.curves[5]
    out = fit(runs, FitConfig(n_bootstrap=20, seed=3, **ONLY_A1))
    r = out["approach1"]
    assert r["n_bootstrap_ok"] >= 18
    lo, hi = r["exponent_intervals"]["a"]
    assert lo - 0.03 <= A_TRUE <= hi + 0.03 and hi - lo < 0.1, (lo, hi)
    assert out["warnings"] == []


def test_fit_json_plots_and_report_show_the_envelope(runs, tmp_path):
    out = json.loads(json.dumps(fit(runs, FitConfig(n_bootstrap=0, **ONLY_A1))))
    r = out["approach1"]
    assert r["diagnostics"] == {"source": "curves", "envelope_points": len(r["envelope"]["c"]),
                                "runs_on_envelope": SIZES.size, "sizes_on_envelope": SIZES.size}
    assert len(out["data"]["curves"]) == SIZES.size and len(out["data"]["curves"][0]["c"]) == 30
    assert "Envelope of the runs' val-loss curves" in render(out) and "mid-schedule" in render(out)
    written = write_plots(out, tmp_path)
    assert "loss_vs_compute.png" in written and (tmp_path / "loss_vs_compute.png").stat().st_size > 1000


def test_one_size_winning_everywhere_is_skipped():
    # The larger model's curve lies inside the smaller one's compute range, always above it.
    runs = pd.DataFrame({"n_params": [1e6, 2e6], "n_tokens": [1e8, 4e7], "loss": [2.0, 3.0], "status": "done",
                         "curve": [Curve(np.array([1e6, 1e8]), np.array([2.5, 2.0])),
                                   Curve(np.array([1e7, 4e7]), np.array([3.5, 3.0]))]})
    cfg = FitConfig(n_bootstrap=0, **ONLY_A1)
    with pytest.raises(MethodSkipped, match="one model size"):
        fit_point(prepare(runs, cfg), cfg)


def test_fit_yaml_composes_with_the_curves_option_on():
    from sweep.fit.cli import compose, fit_config

    assert fit_config(compose([])["fit"]).approach1_curves is True


def test_loss_law_ignores_the_envelope_before_any_run_has_finished(tmp_path):
    # Before the smallest run's end the envelope is all early-training points; here they sit far
    # above the law (as a real warmup does), which must not set L(C)'s exponent or its floor.
    folder = write_sweep(tmp_path)
    first_end = min(json.loads(p.read_text())["flops"] for p in folder.glob("runs/*/result.json"))
    for path in folder.glob("runs/*/metrics.jsonl"):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        for r in rows:
            if "val_loss" in r and r["flops"] < first_end:
                r["val_loss"] += 3.0 * (1 - r["flops"] / first_end) ** 0.5
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = FitConfig(n_bootstrap=0, **ONLY_A1)
    point = fit_point(prepare(load_results_folder(folder, []), cfg), cfg)
    assert point["loss_e"] == pytest.approx(LAW["E"], abs=0.05)
