"""Adaptive IsoFLOP ladders: each budget's sizes centred on the optimum the finished budgets predict.

The wave loop (sweep/ladder/waves.py) is the one `sweep run` uses; here a synthetic Chinchilla law stands in for
training, so where the sizes land can be checked against the law's true optimum."""

import math

import pytest

from sweep.config import ConfigError, ModelConfig, RunConfig, TrainConfig
from sweep.ladder.adaptive import BudgetPlan, locate_minimum, next_centre
from sweep.ladder.experiment import ExperimentConfig
from sweep.ladder.grid import grid
from sweep.ladder.shapes import depth_shape
from sweep.ladder.waves import run_waves
from sweep.run.model import count_params, flops_per_token

VOCAB = 256
BASE = RunConfig(model=ModelConfig(seq_len=64), train=TrainConfig(batch_size=64, tokens_per_step=512))
LAW = dict(E=0.8, A=60.0, B=900.0, alpha=0.38, beta=0.42)  # optimum a = beta / (alpha + beta) = 0.525


def law(n, d):
    return LAW["E"] + LAW["A"] / n ** LAW["alpha"] + LAW["B"] / d ** LAW["beta"]


def experiment(**kw) -> ExperimentConfig:
    args = dict(name="adaptive", flops_budgets=[2e13, 6e13, 2e14, 6e14], sizes_per_budget=5, centre="adaptive",
                family="depth", aspect_ratio=8, head_dim=8, min_layers=2, min_steps=10)
    return ExperimentConfig(**{**args, **kw})


def family_best_depth(flops: float) -> int:
    """The family member with the lowest law loss at this budget (D from its exact FLOPs per token)."""
    def loss(L):
        m = depth_shape(L, 8, 8, BASE.model)
        return law(count_params(m, VOCAB)["n_params"], flops / flops_per_token(m, VOCAB)["flops_per_token"])
    return min(range(2, 40), key=loss)


def synthetic_training(g, wave):
    return [(float(r.n_params), law(r.n_params, r.n_tokens)) for r in (g.runs[i] for i in sorted(wave))]


@pytest.mark.parametrize("prior", [40.0, 2000.0, 2.0])
def test_adaptive_waves_centre_every_later_budget_on_the_true_optimum(prior):
    """Whatever the prior (right, 50x too many tokens per parameter, 20x too few), the sizes of every budget
    after the first bracket the family's true optimum with a size on each side, and from the third budget on
    the centre is within one depth of it. The first budget gets an edge extension where the prior missed."""
    exp = experiment(center_tokens_per_param=prior)
    said = []
    g, plans = run_waves(exp, BASE, VOCAB, None, {}, synthetic_training, say=said.append)
    for b, c in enumerate(exp.flops_budgets):
        depths = sorted({r.cfg.model.n_layer for r in g.runs if r.cfg.meta["budget_index"] == b})
        best = family_best_depth(c)
        assert depths == list(range(depths[0], depths[-1] + 1)) and len(depths) >= 5
        if b >= 1:
            assert depths[0] < best < depths[-1], (b, best, depths, plans[b])
            assert plans[b].note == "valley inside the sampled sizes"
        if b >= 2:
            centre = [r for r in g.runs if r.cfg.meta["budget_index"] == b and r.cfg.meta.get("depth_offset") == 0]
            assert abs(centre[0].cfg.model.n_layer - best) <= 1, (b, best, plans[b])
            assert "minim" in plans[b].reason
    assert plans[0].reason == f"prior: D/N = {prior:g}"
    assert any(s.startswith("wave 4/4") for s in said)


def test_a_minimum_at_the_edge_gets_one_more_size_there_and_the_plan_says_why():
    exp = experiment(center_tokens_per_param=0.05, edge_extensions=1)  # budget 1's sizes 4x too deep
    g, plans = run_waves(exp, BASE, VOCAB, None, {}, synthetic_training, say=lambda s: None)
    first = plans[0]
    assert first.extend_below == 1 and first.extend_above == 0
    assert first.note == "minimum still at the smallest size after 1 extension(s) (experiment.edge_extensions=1)"
    depths = sorted(r.cfg.model.n_layer for r in g.runs if r.cfg.meta["budget_index"] == 0)
    extended = [r for r in g.runs if r.cfg.meta["budget_index"] == 0 and r.cfg.meta.get("size_role")]
    assert len(depths) == 6 and [r.cfg.model.n_layer for r in extended] == [depths[0]]
    assert plans[1].reason.startswith("no valley yet")


def test_recorded_plans_are_kept_on_resume():
    """A resumed sweep expands the grid its first waves trained: recorded centres are not recomputed."""
    exp = experiment()
    recorded = {0: BudgetPlan(centre_params=30000.0, reason="recorded"),
                1: BudgetPlan(centre_params=50000.0, reason="recorded too", extend_above=1)}
    first = grid(exp, BASE, VOCAB, None, recorded)
    _, plans = run_waves(exp, BASE, VOCAB, None, dict(recorded), synthetic_training, say=lambda s: None)
    assert plans[0].reason == "recorded" and plans[1].centre_params == 50000.0
    again = grid(exp, BASE, VOCAB, None, {k: plans[k] for k in (0, 1)})
    ids = lambda g, b: {r.run_id for r in g.runs if r.cfg.meta["budget_index"] == b}  # noqa: E731
    assert ids(first, 0) <= ids(again, 0) and ids(first, 1) <= ids(again, 1)


def test_locating_a_minimum():
    ns = [1e4, 2e4, 4e4, 8e4]
    n_star, where = locate_minimum(ns, [(math.log(n) - math.log(3e4)) ** 2 + 1 for n in ns])
    assert where == "interior" and n_star == pytest.approx(3e4, rel=1e-9)  # a parabola in log N is exact
    assert locate_minimum(ns, [1, 2, 3, 4])[1] == "below" and locate_minimum(ns, [4, 3, 2, 1])[1] == "above"
    centre, why = next_centre([(1e11, 1e4), (1e12, 3.2e4)], 1e13, 0.5)
    assert centre == pytest.approx(1.024e5, rel=1e-3) and "2 minima" in why
    assert next_centre([(1e11, 1e4)], 1e13, 0.5)[0] == pytest.approx(1e5)


@pytest.mark.parametrize("bad, match", [
    (dict(sizes_per_budget=2), "first wave cannot be fitted"),
    (dict(flops_budgets=[1e12]), "at least 2"),
    (dict(flops_budgets=[1e12, 1e11]), "ascending"),
    (dict(sizes_per_budget=1, centre="tokens_per_param", seeds=[0, 1]), "budget with one size"),
])
def test_bad_adaptive_ladders_are_refused_before_any_run(bad, match):
    with pytest.raises(ConfigError, match=match):
        grid(experiment(**bad), BASE, VOCAB)


@pytest.mark.slow
def test_sweep_run_trains_an_adaptive_ladder_in_waves_and_records_its_plans(tmp_path, run_sweep):
    """The real path: `sweep run` launches one Hydra multirun per wave, writes ladder.json after each, and `sweep
    status` (and a relaunch) expand the same grid from it."""
    import json

    adaptive = ("experiment.target_params_non_embedding=[]", "experiment.family=depth", "experiment.aspect_ratio=8",
                "experiment.head_dim=8", "experiment.sizes_per_budget=3", "experiment.centre=adaptive",
                "experiment.center_tokens_per_param=20", "experiment.flops_budgets=[3e9,9e9]")
    proc = run_sweep(tmp_path, "run", *adaptive, timeout=600)
    assert "wave 1/2: C = 3e+09" in proc.stdout and "wave 2/2: C = 9e+09" in proc.stdout
    ladder = json.loads((tmp_path / "results" / "t" / "ladder.json").read_text())
    assert set(ladder["budgets"]) == {"0", "1"} and ladder["budgets"]["0"]["reason"] == "prior: D/N = 20"
    assert ladder["budgets"]["1"]["note"] and ladder["budgets"]["0"]["note"]
    status = run_sweep(tmp_path, "status", *adaptive)
    rows = [line for line in status.stdout.splitlines() if " done " in line]
    n_runs = 6 + sum(b["extend_below"] + b["extend_above"] for b in ladder["budgets"].values())
    assert len(rows) == n_runs and "pending" not in status.stdout
    again = run_sweep(tmp_path, "run", *adaptive)
    assert f"{n_runs} of {n_runs} runs are finished" not in again.stdout  # waves: counted per wave
    assert "launching the other 0" in again.stdout and "training" not in again.stderr.lower()
