"""Grid expansion: explicit, tokens-per-param, IsoFLOP and target-size grids give the right numbers."""

import dataclasses
import math
import warnings

import pytest

from sweep.config import ConfigError, ModelConfig, RunConfig, TrainConfig, validate
from sweep.ladder.experiment import ExperimentConfig, ShapeConfig
from sweep.ladder.grid import DroppedRunsWarning, expand, grid, shape_for_params
from sweep.run.model import count_params, flops_per_token

VOCAB = 512


def base_config(tokens_per_step=2048, seq_len=64) -> RunConfig:
    return RunConfig(model=ModelConfig(seq_len=seq_len),
                     train=TrainConfig(batch_size=32, tokens_per_step=tokens_per_step))


def test_explicit_shapes_times_tokens():
    exp = ExperimentConfig(name="ex", shapes=[ShapeConfig(2, 64, 4), ShapeConfig(4, 128, 8)],
                           n_tokens=[100_000, 1_000_000])
    runs = expand(exp, base_config(), VOCAB)
    assert [(r.cfg.model.n_layer, r.cfg.model.d_model) for r in runs] == [(2, 64), (2, 64), (4, 128), (4, 128)]
    assert [r.index for r in runs] == [0, 1, 2, 3]
    # D is a whole number of steps: 100000 / 2048 = 48.8 -> 49 steps
    assert runs[0].steps == 49 and runs[0].n_tokens == 49 * 2048
    assert runs[1].steps == 488 and runs[1].n_tokens == 488 * 2048
    for r in runs:
        counts = count_params(r.cfg.model, VOCAB)
        fpt = flops_per_token(r.cfg.model, VOCAB)["flops_per_token"]
        assert r.n_params == counts["n_params"]
        assert r.n_params_non_embedding == counts["n_params_non_embedding"]
        assert r.flops == pytest.approx(fpt * r.n_tokens)
        assert r.flops_6nd == pytest.approx(6 * r.n_params * r.n_tokens)
        assert r.cfg.budget.n_tokens == r.n_tokens
        assert r.cfg.budget.tokens_per_param is None and r.cfg.budget.flops is None
        assert r.cfg.meta["experiment"] == "ex"
        validate(r.cfg)
    assert runs[1].cfg.meta["n_tokens_target"] == 1_000_000
    assert len({r.run_id for r in runs}) == 4


def test_tokens_per_param_conventions():
    shape = [ShapeConfig(2, 64, 4)]
    tps = 2048
    total = expand(ExperimentConfig(shapes=shape, tokens_per_param=[20.0]), base_config(tps), VOCAB)[0]
    non_emb = expand(ExperimentConfig(shapes=shape, tokens_per_param=[20.0], param_convention="non_embedding"),
                     base_config(tps), VOCAB)[0]
    assert abs(total.n_tokens - 20 * total.n_params) <= tps / 2
    assert abs(non_emb.n_tokens - 20 * non_emb.n_params_non_embedding) <= tps / 2
    assert non_emb.n_tokens < total.n_tokens
    assert total.cfg.meta["tokens_per_param_target"] == 20.0
    assert total.tokens_per_param == pytest.approx(total.n_tokens / total.n_params)


def test_isoflop_exact_compute_within_a_step():
    budgets = [1e12, 3e12]
    exp = ExperimentConfig(name="iso", flops_budgets=budgets, shapes=[ShapeConfig(2, 64, 4), ShapeConfig(4, 128, 8)],
                           min_steps=1)
    runs = expand(exp, base_config(), VOCAB)
    assert len(runs) == 4
    for r in runs:
        c = r.cfg.meta["budget_flops"]
        assert c in budgets
        # steps = round(C / (fpt * tokens_per_step)): off by at most half a step's FLOPs
        assert abs(r.flops - c) <= 0.5 * r.flops_per_token * 2048 + 1e-6 * c
        assert r.steps == round(c / (r.flops_per_token * 2048))
    # bigger model, same budget: fewer tokens
    assert runs[0].n_tokens > runs[1].n_tokens


def test_isoflop_drops_named_runs_with_warning():
    exp = ExperimentConfig(flops_budgets=[1e12], shapes=[ShapeConfig(1, 16, 1), ShapeConfig(2, 64, 4),
                                                          ShapeConfig(8, 512, 8)], min_steps=50)
    g = grid(exp, base_config(), VOCAB, n_train_tokens=2_000_000)
    reasons = {r.run_name: why for r, why in g.dropped}
    assert len(g.runs) == 1 and g.runs[0].cfg.model.d_model == 64
    small = next(name for name in reasons if name.startswith("L1-d16"))
    big = next(name for name in reasons if name.startswith("L8-d512"))
    assert "corpus" in reasons[small] and "min_steps" in reasons[big]
    with pytest.warns(DroppedRunsWarning, match=small) as record:
        runs = expand(exp, base_config(), VOCAB, n_train_tokens=2_000_000)
    assert big in str(record[0].message)
    assert [r.index for r in runs] == [0]


def test_explicit_runs_are_kept_for_the_plan_to_refuse():
    # an explicit grid is what the user asked for: the plan refuses it rather than silently shrinking it
    exp = ExperimentConfig(shapes=[ShapeConfig(2, 64, 4)], n_tokens=[100, 10**9])
    g = grid(exp, base_config(), VOCAB, n_train_tokens=1_000_000)
    assert [r.steps for r in g.runs] == [0, 488281] and not g.dropped


def test_duplicates_dropped():
    exp = ExperimentConfig(shapes=[ShapeConfig(2, 64, 4), ShapeConfig(2, 64, 4)], n_tokens=[100_000])
    with pytest.warns(DroppedRunsWarning, match="duplicate"):
        runs = expand(exp, base_config(), VOCAB)
    assert len(runs) == 1


@pytest.mark.parametrize("target", [1e5, 1e6, 3e6, 1e7, 1e8])
def test_shape_rule_hits_targets(target):
    m = shape_for_params(target, aspect_ratio=32, head_dim=16, base=ModelConfig(seq_len=64))
    n = count_params(m, VOCAB)["n_params_non_embedding"]
    assert abs(n / target - 1) < 0.03
    assert m.d_model == 16 * m.n_head
    assert 16 <= m.d_model / m.n_layer <= 64


def test_shape_rule_grows_with_target():
    base = ModelConfig(seq_len=64)
    sizes = [count_params(shape_for_params(t, 64, 64, base), VOCAB)["n_params_non_embedding"]
             for t in (1e6, 1e7, 1e8, 1e9)]
    assert sizes == sorted(sizes)
    big = shape_for_params(1e9, 64, 64, base)
    assert big.d_model % 64 == 0 and abs(count_params(big, VOCAB)["n_params_non_embedding"] / 1e9 - 1) < 0.03


def test_target_sizes_record_achieved_and_target():
    exp = ExperimentConfig(target_params_non_embedding=[1_000_000], n_tokens=[1_000_000], family="free")
    r = expand(exp, base_config(), VOCAB)[0]
    assert r.cfg.meta["target_params_non_embedding"] == 1_000_000
    assert r.cfg.meta["n_params_non_embedding"] == r.n_params_non_embedding
    assert abs(r.n_params_non_embedding / 1e6 - 1) < 0.03


def test_isoflop_auto_sizes_around_optimum():
    exp = ExperimentConfig(flops_budgets=[1e15, 1e16], sizes_per_budget=5, size_span=16, min_steps=1,
                           param_convention="total", head_dim=32)
    runs = expand(exp, base_config(tokens_per_step=8192, seq_len=256), VOCAB)
    assert len(runs) == 10
    for b in (1e15, 1e16):
        mine = [r for r in runs if r.cfg.meta["budget_flops"] == b]
        n = [r.n_params for r in mine]
        assert n == sorted(n) and n[-1] / n[0] > 4
        centre = math.sqrt(b / 120)  # D = 20 N and C = 6 N D
        assert n[0] < centre < n[-1]


def test_expansion_is_deterministic():
    exp = ExperimentConfig(flops_budgets=[1e12, 3e12], target_params_non_embedding=[50_000, 200_000], min_steps=1)
    a = [r.run_id for r in expand(exp, base_config(), VOCAB)]
    b = [r.run_id for r in expand(exp, base_config(), VOCAB)]
    assert a == b and len(set(a)) == len(a)


def test_meta_from_base_is_kept():
    base = dataclasses.replace(base_config(), meta={"owner": "me"})
    r = expand(ExperimentConfig(name="e", shapes=[ShapeConfig()], n_tokens=[10**5]), base, VOCAB)[0]
    assert r.cfg.meta["owner"] == "me" and r.cfg.meta["experiment"] == "e"


@pytest.mark.parametrize("kwargs, message", [
    (dict(shapes=[ShapeConfig()]), "exactly one"),
    (dict(shapes=[ShapeConfig()], n_tokens=[1], tokens_per_param=[1.0]), "exactly one"),
    (dict(n_tokens=[10**6]), "model sizes"),
    (dict(shapes=[ShapeConfig(2, 65, 4)], n_tokens=[10**6]), "n_head dividing"),
    (dict(shapes=[ShapeConfig()], n_tokens=[-5]), "positive"),
    (dict(shapes=[ShapeConfig()], n_tokens=[10**6], sizes_per_budget=3), "only for IsoFLOP"),
    (dict(shapes=[ShapeConfig()], flops_budgets=[1e12], sizes_per_budget=3), "picks sizes itself"),
    (dict(shapes=[ShapeConfig()], n_tokens=[10**6], param_convention="kaplan"), "param_convention"),
])
def test_bad_experiments_fail_early(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        grid(ExperimentConfig(**kwargs), base_config(), VOCAB)


def test_no_warning_when_nothing_dropped():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        expand(ExperimentConfig(shapes=[ShapeConfig()], n_tokens=[10**5]), base_config(), VOCAB)


def test_seeds_repeat_the_largest_budgets_points_as_their_own_runs():
    exp = ExperimentConfig(name="s", shapes=[ShapeConfig(2, 64, 4), ShapeConfig(4, 128, 8)],
                           flops_budgets=[1e12, 4e12], seeds=[0, 1, 2], min_steps=1)
    runs = expand(exp, base_config(), VOCAB)
    top = [r for r in runs if r.cfg.meta["budget_flops"] == 4e12]
    assert len(runs) == 2 + 2 * 3 and len(top) == 6
    assert sorted((r.cfg.model.n_layer, r.cfg.train.seed) for r in top) == [(2, 0), (2, 1), (2, 2), (4, 0), (4, 1), (4, 2)]
    assert all(r.cfg.meta["seed"] == r.cfg.train.seed for r in top)
    assert len({r.run_id for r in runs}) == len(runs)  # each seed is its own run
    assert {r.run_name[-3:] for r in top} == {"-s0", "-s1", "-s2"}
    assert all("seed" not in r.cfg.meta for r in runs if r not in top)
    every = expand(dataclasses.replace(exp, seeds_at="all"), base_config(), VOCAB)
    assert len(every) == 4 * 3


@pytest.mark.parametrize("seeds, at, message", [([0, 0], "largest", "distinct"), ([1], "some", "seeds_at")])
def test_bad_seeds_are_refused(seeds, at, message):
    exp = ExperimentConfig(shapes=[ShapeConfig(2, 64, 4)], n_tokens=[100_000], seeds=seeds, seeds_at=at)
    with pytest.raises(ConfigError, match=message):
        expand(exp, base_config(), VOCAB)
