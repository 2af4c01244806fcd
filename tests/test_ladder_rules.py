"""The ladder's rules: one model family (depth and width never shrink as N grows), LR and batch per size,
and the tuning sweep's choice of LR."""

import json
import math

import pytest

from sweep.config import ConfigError, ModelConfig, RunConfig, TrainConfig
from sweep.ladder.experiment import ExperimentConfig, ShapeConfig
from sweep.ladder.grid import expand, family_line, shape_for_n
from sweep.ladder.hparams import rule_lr, rule_tokens_per_step
from sweep.run.model import count_params
from sweep.ladder.shapes import depth_shape, mixed_shapes
from sweep.ladder.tune import EdgeMinimum, best_lr, fit_rule

VOCAB = 256


def base(**train):
    return RunConfig(model=ModelConfig(seq_len=64), train=TrainConfig(**{"tokens_per_step": 1024, **train}))


@pytest.mark.parametrize("aspect,head_dim", [(16, 16), (32, 8), (64, 64)])
def test_depth_family_is_monotone_in_depth_and_width_over_four_decades(aspect, head_dim):
    exp = ExperimentConfig(aspect_ratio=aspect, head_dim=head_dim, param_convention="total")
    shapes = [shape_for_n(n, exp, ModelConfig(seq_len=64), VOCAB) for n in (10 ** (4 + k / 8) for k in range(33))]
    layers = [m.n_layer for m in shapes]
    widths = [m.d_model for m in shapes]
    assert layers == sorted(layers) and widths == sorted(widths)
    assert min(layers) >= 2 and len(set(layers)) >= 4
    assert all(m.d_model % head_dim == 0 and m.d_model == m.n_head * head_dim for m in shapes)
    assert mixed_shapes(shapes, VOCAB) is None


def test_depth_family_picks_the_closest_depth():
    m = ModelConfig(seq_len=64)
    counts = {L: count_params(depth_shape(L, 16, 16, m), VOCAB)["n_params"] for L in range(2, 9)}
    exp = ExperimentConfig(aspect_ratio=16, head_dim=16)
    for L in range(3, 8):
        between = math.sqrt(counts[L] * counts[L + 1])  # the log midpoint to the next depth
        assert shape_for_n(between * 0.99, exp, m, VOCAB).n_layer == L
        assert shape_for_n(between * 1.01, exp, m, VOCAB).n_layer == L + 1
    assert shape_for_n(10, exp, m, VOCAB).n_layer == 2  # never below min_layers


def test_isoflop_sizes_of_a_budget_are_distinct_depths_of_one_family():
    exp = ExperimentConfig(flops_budgets=[1e11, 1e12], sizes_per_budget=3, size_span=4, min_steps=1,
                           aspect_ratio=16, head_dim=16, center_tokens_per_param=30)
    runs = expand(exp, base(), VOCAB)
    for b in (1e11, 1e12):
        layers = [r.cfg.model.n_layer for r in runs if r.cfg.meta["budget_flops"] == b]
        assert len(layers) == 3 and layers == sorted(layers) and len(set(layers)) == 3
    assert "depth knob" in family_line(exp) and "16 x n_layer" in family_line(exp)


def test_mixed_shapes_are_refused_unless_allowed():
    shapes = [ShapeConfig(2, 64, 4), ShapeConfig(1, 128, 8)]  # the wider one is shallower
    exp = ExperimentConfig(shapes=shapes, n_tokens=[100_000])
    with pytest.raises(ConfigError, match=r"not one family: L2-d64 .* followed by L1-d128.*allow_mixed_shapes=true"):
        expand(exp, base(), VOCAB)
    exp.allow_mixed_shapes = True
    assert len(expand(exp, base(), VOCAB)) == 2
    with pytest.raises(ConfigError, match="experiment.family='wide'"):
        expand(ExperimentConfig(shapes=shapes, n_tokens=[1000], family="wide"), base(), VOCAB)


def test_lr_rule_is_a_power_of_n_and_the_plan_carries_it():
    assert rule_lr(1e-2, 8e5, 1e5, -1 / 3) == pytest.approx(5e-3)
    assert rule_lr(1e-2, 8e5, 1e5, 0.0) == 1e-2
    exp = ExperimentConfig(target_params_non_embedding=[30_000, 250_000], n_tokens=[200_000],
                           aspect_ratio=16, head_dim=16, lr_exponent=-0.5, lr_ref_params=1e5)
    runs = expand(exp, base(lr=4e-3), VOCAB)
    for r in runs:
        assert r.cfg.train.lr == pytest.approx(4e-3 * (r.n_params / 1e5) ** -0.5)
    assert runs[0].cfg.train.lr > runs[1].cfg.train.lr
    fixed = expand(ExperimentConfig(target_params_non_embedding=[30_000], n_tokens=[200_000]), base(lr=4e-3), VOCAB)
    assert fixed[0].cfg.train.lr == 4e-3


def test_batch_rule_is_a_power_of_d_in_whole_power_of_two_sequences():
    assert rule_tokens_per_step(1024, 1e6, 1e6, 0.38, 64) == 1024
    assert rule_tokens_per_step(1024, 1e6 * 2 ** (1 / 0.38), 1e6, 0.38, 64) == 2048  # D x 6.2: batch x 2
    assert rule_tokens_per_step(1024, 1e3, 1e6, 0.38, 64) == 64  # never below one sequence
    exp = ExperimentConfig(target_params_non_embedding=[30_000], n_tokens=[1_000_000, 20_000_000],
                           batch_exponent=0.38, batch_ref_tokens=1e6)
    small, big = expand(exp, base(), VOCAB)
    assert (small.cfg.train.tokens_per_step, big.cfg.train.tokens_per_step) == (1024, 2048 * 2)
    assert big.n_tokens == big.steps * 4096 and abs(big.n_tokens / 20e6 - 1) < 0.001


def test_lr_multipliers_repeat_each_point_at_multiples_of_its_rule_lr():
    exp = ExperimentConfig(target_params_non_embedding=[30_000, 250_000], n_tokens=[100_000],
                           lr_multipliers=[0.5, 1, 2], lr_exponent=-0.5)
    runs = expand(exp, base(lr=1e-2), VOCAB)
    assert len(runs) == 6 and len({r.run_id for r in runs}) == 6
    for r in runs:
        rule = 1e-2 * (r.n_params / 1e5) ** -0.5
        assert r.cfg.train.lr == pytest.approx(rule * r.cfg.meta["lr_multiplier"])
    with pytest.raises(ConfigError, match="lr_multipliers"):
        expand(ExperimentConfig(target_params_non_embedding=[30_000], n_tokens=[1000], lr_multipliers=[1, -2]),
               base(), VOCAB)


def test_best_lr_is_the_parabola_vertex_and_refuses_an_edge_minimum():
    lrs = [1e-3 * 2**k for k in range(6)]
    true = 4.3e-3
    losses = [2.0 + 0.05 * math.log(a / true) ** 2 for a in lrs]
    lr_star, loss_star = best_lr(lrs, losses)
    assert lr_star == pytest.approx(true, rel=1e-6) and loss_star == pytest.approx(2.0, abs=1e-9)
    with pytest.raises(EdgeMinimum, match="highest learning rate .* add multipliers above"):
        best_lr(lrs, [2.0 - 0.01 * k for k in range(6)], "size L2")
    with pytest.raises(EdgeMinimum, match="lowest learning rate"):
        best_lr(lrs, [2.0 + 0.01 * k for k in range(6)], "size L2")


def test_lr_rule_fit_recovers_the_exponent_with_an_interval():
    ns = [3e4, 1e5, 3e5, 1e6]
    noise = [0.03, -0.05, 0.04, -0.02]
    lrs = [1e-2 * (n / 1e5) ** -0.35 * math.exp(e) for n, e in zip(ns, noise)]
    rule = fit_rule(ns, lrs, 1e5)
    lo, hi = rule["exponent_interval"]
    assert lo < -0.35 < hi and abs(rule["exponent"] + 0.35) < 0.05
    assert rule["lr"] == pytest.approx(1e-2, rel=0.05)
    assert fit_rule(ns[:2], lrs[:2], 1e5)["exponent_interval"] is None


def _tuning_results(folder, exponent=-0.3, edge_shape=None):
    """A tuning sweep's result.json files: three sizes, five LRs, loss a parabola in log LR around LR*(N)."""
    from sweep.store.results import write_json_atomic

    for L, d, n in ((2, 16, 20_000), (3, 24, 60_000), (4, 32, 180_000)):
        best = 1e-2 * (n / 1e5) ** exponent
        for k in (0.25, 0.5, 1, 2, 4):
            lr = 1e-2 * k
            loss = 4.0 - 0.3 * math.log(n / 1e4) + 0.08 * math.log(lr / best) ** 2
            if edge_shape == L:
                loss = 4.0 - 0.01 * k  # still falling at the grid's highest LR
            rid = f"L{L}-{k}"
            write_json_atomic(folder / "runs" / rid / "result.json", {
                "run_id": rid, "status": "done", "n_params": n, "final_val_loss": loss, "meta": {"lr_multiplier": k},
                "config": {"model": {"n_layer": L, "d_model": d}, "train": {"lr": lr}}})


def test_sweep_tune_fits_the_rule_writes_it_and_logs_it_to_wandb(tmp_path, capsys):
    from sweep.cli import main
    from sweep.store.wandb_offline import find_offline_runs, read_offline_run

    _tuning_results(tmp_path / "lr_tune")
    assert main(["tune", f"input={tmp_path / 'lr_tune'}"]) == 0
    out = json.loads((tmp_path / "lr_tune" / "tune" / "lr_rule.json").read_text())
    assert out["rule"]["exponent"] == pytest.approx(-0.3, abs=0.02)
    assert out["rule"]["lr"] == pytest.approx(1e-2, rel=0.05)
    assert "experiment.lr_exponent=-0.3" in out["overrides"] and "train.lr=0.01" in out["overrides"]
    assert (tmp_path / "lr_tune" / "tune" / "tune.png").stat().st_size > 0
    assert "![loss vs learning rate](tune.png)" in (tmp_path / "lr_tune" / "tune" / "tune.md").read_text()
    run = read_offline_run(find_offline_runs(tmp_path / "lr_tune" / "tune")[0])
    assert run["job_type"] == "tune" and run["summary"]["lr_exponent"] == pytest.approx(out["rule"]["exponent"])
    assert "Use it: `train.lr=" in capsys.readouterr().out


def test_sweep_tune_leaves_out_an_edge_size_and_refuses_with_fewer_than_two(tmp_path, capsys):
    from sweep.cli import main

    _tuning_results(tmp_path / "a", edge_shape=4)
    assert main(["tune", f"input={tmp_path / 'a'}", "wandb.mode=disabled"]) == 0
    out = json.loads((tmp_path / "a" / "tune" / "lr_rule.json").read_text())
    assert len(out["sizes"]) == 2 and "size L4-d32" in out["refused"][0] and "highest learning rate" in out["refused"][0]
    assert out["rule"]["exponent_interval"] is None  # 2 sizes leave no degrees of freedom
    capsys.readouterr()
    assert main(["tune", f"input={tmp_path / 'nothing'}"]) == 2
    assert "no such results folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["tune", f"input={tmp_path / 'empty'}"]) == 2
    assert "run `sweep run experiment=lr_tune` first" in capsys.readouterr().err
