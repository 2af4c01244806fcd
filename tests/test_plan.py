"""Plans: table and totals, refusals before anything starts, wall-time estimates, shipped experiments."""

from pathlib import Path

import pytest

from sweep.config import ModelConfig, RunConfig, TrainConfig
from sweep.ladder.experiment import ExperimentConfig, ShapeConfig
from sweep.ladder.grid import expand
from sweep.ladder.plan import (RUN_OVERHEAD_S, check_plan, schedule_seconds, estimate_memory, estimate_seconds, plan_table, plan_totals,
                        probe_throughput)

VOCAB = 512
EXPERIMENTS = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "conf" / "experiment").glob("*.yaml"))


def runs_for(n_tokens, shapes=((2, 64, 4), (4, 128, 8))):
    base = RunConfig(model=ModelConfig(seq_len=64), train=TrainConfig(batch_size=32, tokens_per_step=2048))
    exp = ExperimentConfig(shapes=[ShapeConfig(*s) for s in shapes], n_tokens=list(n_tokens))
    return expand(exp, base, VOCAB)


def test_totals_sum_the_runs():
    runs = runs_for([100_000, 1_000_000])
    t = plan_totals(runs, [1.0, 2.0, 3.0, 4.0])
    assert t.n_runs == 4
    assert t.n_tokens == sum(r.n_tokens for r in runs)
    assert t.flops == pytest.approx(sum(r.flops for r in runs))
    assert t.flops_6nd == pytest.approx(sum(6 * r.n_params * r.n_tokens for r in runs))
    assert t.seconds == 10.0
    assert plan_totals(runs).seconds is None


def test_table_lists_every_run_and_totals():
    runs = runs_for([100_000])
    text = plan_table(runs, [30.0, 600.0])
    lines = text.splitlines()
    assert "N_ne" in lines[0] and "C_6ND" in lines[0] and "steps" in lines[0]
    assert runs[0].run_name in text and runs[1].run_name in text
    assert " 49 " in lines[2]  # steps of 100k tokens at 2048 per step
    assert "30s" in lines[2] and "10.0m" in lines[3]
    assert lines[-1].startswith("total: 2 runs") and "10.5m" in lines[-1]


def test_plan_refuses_a_budget_below_one_step():
    runs = runs_for([500])
    problems = check_plan(runs, None, None)
    assert len(problems) == 2 and "one optimizer step" in problems[0] and runs[0].run_name in problems[0]


def test_plan_refuses_a_corpus_too_small():
    runs = runs_for([100_000, 5_000_000])
    problems = check_plan(runs, 1_000_000, None)
    assert len(problems) == 2
    assert all("corpus has 1M" in p for p in problems)
    assert all(r.run_name in " ".join(problems) for r in runs if r.n_tokens > 1_000_000)
    assert check_plan(runs, 10**9, None) == []


def test_plan_refuses_what_does_not_fit_in_memory():
    runs = runs_for([100_000])
    need = [estimate_memory(r) for r in runs]
    problems = check_plan(runs, None, (need[0] + need[1]) // 2)
    assert len(problems) == 1 and runs[1].run_name in problems[0] and "batch_size" in problems[0]


def test_plan_refuses_an_empty_grid():
    assert "no runs" in check_plan([], None, None)[0]


def test_memory_estimate_grows_with_model_and_batch():
    small, big = runs_for([100_000])
    assert 16 * big.n_params < estimate_memory(big)
    assert estimate_memory(small) < estimate_memory(big)
    assert estimate_memory(big, attention_scores=False) < estimate_memory(big)


def test_wall_time_from_probe_interpolates_in_log_flops_per_token():
    runs = runs_for([100_000], shapes=((2, 64, 4), (2, 96, 6), (4, 128, 8)))
    key = lambda r: (r.cfg.model.n_layer, r.cfg.model.d_model, r.cfg.model.n_head, r.cfg.model.seq_len)
    speeds = {key(runs[0]): 1e9, key(runs[2]): 4e9}
    s = [x - RUN_OVERHEAD_S for x in estimate_seconds(runs, speeds)]  # every run also pays its start-up
    assert s[0] == pytest.approx(runs[0].flops / 1e9)
    assert s[2] == pytest.approx(runs[2].flops / 4e9)
    assert runs[1].flops / 4e9 < s[1] < runs[1].flops / 1e9
    assert estimate_seconds(runs, {}) == [None, None, None]


def test_schedule_packs_runs_on_slots_longest_first_and_waves_one_after_another():
    runs = runs_for([100_000], shapes=((2, 64, 4), (2, 96, 6), (4, 128, 8)))
    assert schedule_seconds(runs, [30.0, 20.0, 10.0], 2) == 30.0  # 30 | 20 + 10
    assert schedule_seconds(runs, [30.0, 20.0, 10.0], 1) == 60.0
    for i, r in enumerate(runs):  # an adaptive ladder: a wave per budget
        r.cfg.meta.update(centred_by="prior", budget_index=i)
    assert schedule_seconds(runs, [30.0, 20.0, 10.0], 2) == 60.0


def test_probe_measures_positive_throughput():
    runs = runs_for([100_000], shapes=((1, 32, 2), (2, 64, 4)))
    speeds = probe_throughput(runs, steps=1)
    assert len(speeds) == 2 and all(v > 0 for v in speeds.values())


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_shipped_experiment_composes_and_plans(name):
    from sweep.ladder.sweep_config import expand_sweep, load_sweep

    sc = load_sweep([f"experiment={name}"])
    assert sc.experiment.name == name and sc.sweep_name == name
    g = expand_sweep(sc, n_train_tokens=10**12)
    assert len(g.runs) >= 3
    gpu = name.endswith("_h100")
    memory = 80 * 2**30 if gpu else 8 * 2**30
    assert check_plan(g.runs, 10**12, memory, "cuda" if gpu else "cpu") == []
    assert {r.cfg.meta["experiment"] for r in g.runs} == {name}


def test_default_experiment_fits_the_embedded_corpus():
    from sweep.ladder.sweep_config import expand_sweep, load_sweep

    sc = load_sweep(["experiment=default"])
    assert sc.data.source == "python" and sc.tokenizer.kind == "byte"
    # the python corpus after the README's install holds ~138M byte tokens; the whole ladder reads 45M of them
    # (each run < 9M), so even a Python with a tenth of those packages keeps every run
    g = expand_sweep(sc, n_train_tokens=13_800_000)
    assert not g.dropped
    e = sc.experiment
    assert e.centre == "adaptive" and e.sizes_per_budget >= 5
    budgets = sorted({r.cfg.meta["budget_flops"] for r in g.runs})
    assert len(budgets) >= 4
    for b in budgets:  # 5 consecutive depths per budget: a span of at least 8x in N
        ns = sorted({r.n_params for r in g.runs if r.cfg.meta["budget_flops"] == b})
        assert len(ns) >= 5 and ns[-1] / ns[0] >= 8
    # seed replicates at the largest budget's middle sizes measure the run-to-run noise
    top = [r for r in g.runs if r.cfg.meta["budget_flops"] == budgets[-1]]
    assert sorted(r.cfg.meta.get("seed") for r in top if "seed" in r.cfg.meta) == [0, 0, 0, 1, 1, 1]
    # one family: at least 2 layers, and depth and width grow together with N
    shapes = sorted({(r.n_params, r.cfg.model.n_layer, r.cfg.model.d_model) for r in g.runs})
    assert min(L for _, L, _ in shapes) >= 2
    assert [L for _, L, _ in shapes] == sorted(L for _, L, _ in shapes)
    assert [d for _, _, d in shapes] == sorted(d for _, _, d in shapes)
    # hyperparameters per size: LR from the rule in N, batch from the rule in D, hundreds of steps each
    for r in g.runs:
        assert r.cfg.train.lr == pytest.approx(sc.train.lr * (r.n_params / e.lr_ref_params) ** e.lr_exponent)
        assert r.steps >= 400
    assert len({r.cfg.train.tokens_per_step for r in g.runs}) >= 2


def test_plan_command_prints_and_refuses(capsys):
    from sweep.launch.launch import plan_command

    ok = plan_command(["experiment=kaplan_data_size", "launch.probe=false", "launch.corpus_tokens=100000000"])
    out = capsys.readouterr().out
    assert ok == 0 and "total: 6 runs" in out and "kaplan_data_size" in out
    refused = plan_command(["experiment=kaplan_data_size", "launch.probe=false", "launch.corpus_tokens=1000000"])
    captured = capsys.readouterr()
    assert refused == 2 and "refusing this plan" in captured.err and "corpus has 1M" in captured.err


def test_plan_is_a_dry_run_when_asked_to_estimate_the_corpus(tmp_path, capsys, monkeypatch):
    """The H100 ladder's 4 GB FineWeb-Edu corpus is not here: the plan says what building it would download, and
    with launch.estimate_corpus=true it plans from data.max_bytes without a byte of network or cache."""
    import socket

    from sweep.launch.launch import plan_command

    def no_network(*args, **kwargs):
        raise OSError("network access in an offline test")

    monkeypatch.setattr(socket, "create_connection", no_network)
    cache = tmp_path / "cache"
    args = ["experiment=chinchilla_isoflop_h100", f"data.cache_dir={cache}", f"results_dir={tmp_path / 'results'}",
            "launch.estimate_corpus=true"]
    assert plan_command(args) == 0
    captured = capsys.readouterr()
    assert "corpus not read: 900M train tokens estimated from 4000 MB" in captured.err
    assert "hub data set 'HuggingFaceFW/fineweb-edu' (not downloaded)" in captured.err
    assert "900M train tokens" in captured.out and not cache.exists()


def test_plan_says_what_building_the_corpus_does_before_it_does_it(tmp_path, capsys):
    from sweep.launch.launch import plan_command
    from sweep.run.data import describe_build
    from sweep.config import DataConfig, TokenizerConfig

    from conftest import SHAKESPEARE  # 310 kB

    args = ["experiment=kaplan_data_size", "data=files", f"data.path={SHAKESPEARE}", f"data.cache_dir={tmp_path / 'c'}",
            "data.val_tokens=4096", f"results_dir={tmp_path / 'results'}", "launch.probe=false",
            "data.allow_repeat=true"]
    assert plan_command(args) == 0
    err = capsys.readouterr().err
    assert "the corpus is not cached yet: this reads all of 0.31 MB of text in 1 files" in err
    assert "launch.estimate_corpus=true" in err
    assert plan_command(args) == 0  # cached now: nothing to say
    assert "not cached" not in capsys.readouterr().err
    hub = DataConfig(source="hub", path="org/set", hub_config="sample", max_bytes=2_000_000_000,
                     cache_dir=str(tmp_path / "h"))
    assert describe_build(hub, TokenizerConfig(kind="bpe", vocab_size=16384)).startswith(
        "downloads up to 2 GB of hub data set 'org/set' (sample), trains a 16384-entry BPE")


def test_the_main_job_s_verification_run_is_probed_with_its_own_batch(monkeypatch):
    """`sweep plan` estimates the run `sweep main` verifies at 5x: its D is 5x the top budget's middle run's, so
    the batch rule gives it larger steps than that run, and the probe must time those, not the ladder's."""
    from sweep.launch import launch
    from sweep.ladder.sweep_config import expand_sweep, load_sweep

    sc = load_sweep(["experiment=default"])
    from sweep.ladder.plan import _shape_key

    g = expand_sweep(sc, n_train_tokens=13_800_000)
    probed = []
    monkeypatch.setattr(launch, "usable_cores", lambda: 2)
    monkeypatch.setattr(launch, "probe_throughput",  # no timing here: only which runs are probed
                        lambda runs, **kw: probed.append(runs) or {_shape_key(r): 1e10 for r in runs})
    line = launch.parallel_estimate(sc, g)
    assert "adds its verification run at 5x" in line
    verify = probed[-1][0]
    top = max(sc.experiment.flops_budgets)
    ladder = sorted((r for r in g.runs if r.cfg.meta.get("budget_flops") == top), key=lambda r: r.n_params)
    middle = ladder[len(ladder) // 2]
    assert verify.flops == pytest.approx(5 * top, rel=0.01) and verify.cfg.model == middle.cfg.model
    assert verify.cfg.train.tokens_per_step > middle.cfg.train.tokens_per_step
