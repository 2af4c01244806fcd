"""WSD cooldown branches: the plan branch() makes, its cost, and a real trunk + branches run."""

import dataclasses
import json
import warnings
from pathlib import Path

import pytest

from sweep.ladder.branching import (BranchingWarning, branch, branch_cost, clear_branch_points, describe_cost,
                                   resolve_init)
from sweep.run.schedule import cooldown_start
from sweep.config import ConfigError, DataConfig, LoggerConfig, ModelConfig, RunConfig, TokenizerConfig, TrainConfig
from sweep.ladder.experiment import ExperimentConfig, ShapeConfig
from sweep.ladder.grid import expand
from sweep.store.results import run_dir, run_id

from conftest import SHAKESPEARE  # the checked-in 310 kB of tinyshakespeare


def base(tmp_path: Path, results: str = "results", **train) -> RunConfig:
    """WSD, 1024 tokens per step, byte vocabulary: budgets of 32/64/128k tokens are 32/64/128 steps."""
    settings = {"schedule": "wsd", "warmup_steps": 2, "cooldown_fraction": 0.25, "tokens_per_step": 1024,
                "batch_size": 16, "lr": 3e-3, "threads": 1, "device": "cpu", **train}
    return RunConfig(
        model=ModelConfig(n_layer=2, d_model=64, n_head=4, seq_len=64),
        data=DataConfig(source="files", path=str(SHAKESPEARE), max_bytes=300000, val_tokens=8192,
                        cache_dir=str(tmp_path / "cache")),
        tokenizer=TokenizerConfig(kind="byte", vocab_size=256), train=TrainConfig(**settings),
        logger=LoggerConfig(mode="disabled"), sweep_name="t", results_dir=str(tmp_path / results))


def plan(cfg: RunConfig, n_tokens=(32768, 65536, 131072), shapes=((2, 64, 4),)):
    exp = ExperimentConfig(name="wsd", shapes=[ShapeConfig(*s) for s in shapes], n_tokens=list(n_tokens))
    return expand(exp, cfg, 256)


def test_longest_run_is_the_trunk_and_keeps_each_cooldown_start(tmp_path):
    runs = plan(base(tmp_path))
    out = branch(runs)
    assert [r.steps for r in out] == [128, 32, 64]  # trunk first, then its branches
    assert [r.index for r in out] == [0, 1, 2]
    trunk, short, mid = out
    # cooldowns of 25%: the 32-step run decays from step 24, the 64-step run from step 48
    assert trunk.cfg.train.save_at_steps == [24, 48]
    assert trunk.cfg.train.init_from is None and trunk.cfg.meta["trunk"] is True
    assert "branch" not in trunk.cfg.meta
    trunk_dir = run_dir(trunk.cfg, trunk.n_tokens)
    for r, start in ((short, 24), (mid, 48)):
        assert r.cfg.train.init_from == str(trunk_dir / f"branch-{start}.pt")
        assert r.cfg.meta["parent"] == trunk.run_id and r.cfg.meta["branch"] is True
        assert r.cfg.meta["branch_step"] == start == cooldown_start(r.steps, r.cfg.train)
        assert r.cfg.meta["shared_prefix_flops"] == start * 1024 * r.flops_per_token
        assert r.cfg.meta["own_flops"] == pytest.approx((r.steps - start) * 1024 * r.flops_per_token)
    # a branch is the same run as the independent WSD run of its length: same id, same folder
    assert [r.run_id for r in out] == [runs[2].run_id, runs[0].run_id, runs[1].run_id]
    assert [r.run_id for r in runs] == [run_id(r.cfg, r.n_tokens) for r in runs]
    assert runs[0].cfg.train.init_from is None and runs[2].cfg.train.save_at_steps == []  # input untouched


def test_each_model_size_is_its_own_group(tmp_path):
    out = branch(plan(base(tmp_path), n_tokens=(32768, 65536), shapes=((2, 64, 4), (2, 32, 2))))
    assert [(r.cfg.model.d_model, r.steps) for r in out] == [(64, 64), (64, 32), (32, 64), (32, 32)]
    assert out[1].cfg.meta["parent"] == out[0].run_id and out[3].cfg.meta["parent"] == out[2].run_id
    assert out[0].cfg.train.save_at_steps == [24] and out[2].cfg.train.save_at_steps == [24]


def test_unset_warmup_becomes_the_shortest_runs_warmup_with_a_warning(tmp_path):
    cfg = base(tmp_path, warmup_steps=None, warmup_fraction=0.1)
    with pytest.warns(BranchingWarning, match=r"train.warmup_steps=3 .*shortest run's 32 steps"):
        out = branch(plan(cfg))
    assert [r.cfg.train.warmup_steps for r in out] == [3, 3, 3]  # round(0.1 * 32), not 6 and 13
    # warmup_steps is part of what a run computes, so the ids are those of runs with warmup_steps=3
    assert {r.run_id for r in out} == {r.run_id for r in plan(base(tmp_path, warmup_steps=3, warmup_fraction=0.1))}


def test_set_warmup_is_kept_without_a_warning(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", BranchingWarning)
        out = branch(plan(base(tmp_path, warmup_steps=5)))
    assert [r.cfg.train.warmup_steps for r in out] == [5, 5, 5]


def test_warmup_longer_than_a_short_run_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"learning rates differ at step 0.*warmup_steps=40"):
        branch(plan(base(tmp_path, warmup_steps=40)))


def test_non_wsd_runs_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"train.schedule=wsd"):
        branch(plan(base(tmp_path, schedule="cosine")))


def test_lone_runs_and_whole_run_cooldowns_stay_independent(tmp_path):
    lone = plan(base(tmp_path, warmup_steps=None), n_tokens=(65536,))
    with warnings.catch_warnings():
        warnings.simplefilter("error", BranchingWarning)
        assert branch(lone) == lone
    out = branch(plan(base(tmp_path, cooldown_fraction=1.0)))  # nothing before the decay to share
    assert all(r.cfg.train.init_from is None and not r.cfg.meta.get("branch") for r in out)
    assert out[0].cfg.train.save_at_steps == []


def test_branch_cost_counts_the_shared_prefix_once(tmp_path):
    out = branch(plan(base(tmp_path)))
    fpt = out[0].flops_per_token
    cost = branch_cost(out)
    g, = cost["groups"]
    step = 1024 * fpt
    assert g["n_runs"] == 3 and g["trunk"] == out[0].run_id
    assert g["branched_flops"] == pytest.approx((128 + 8 + 16) * step)  # trunk + two cooldowns
    assert g["independent_flops"] == pytest.approx((32 + 64 + 128) * step)
    assert g["longest_flops"] == pytest.approx(128 * step)
    assert g["ratio_to_longest"] == pytest.approx(152 / 128)
    assert g["saving"] == pytest.approx(1 - 152 / 224)
    assert cost["branches"][out[1].run_id]["shared_prefix_flops"] == pytest.approx(24 * step)
    assert cost["branches"][out[2].run_id]["own_flops"] == pytest.approx(16 * step)
    assert cost["total"]["ratio_to_longest"] == pytest.approx(152 / 128)
    assert "1.19x the longest" in describe_cost(cost) and "32% saved" in describe_cost(cost)
    with pytest.raises(ConfigError, match="not in this plan"):
        branch_cost(out[1:])


def test_resolve_init_trains_from_scratch_only_when_the_trunk_is_finished(tmp_path):
    trunk, short, _ = branch(plan(base(tmp_path)))
    assert resolve_init(short.cfg) is short.cfg  # trunk not started: left to fail with "run the trunk first"
    tdir = run_dir(trunk.cfg, trunk.n_tokens)
    tdir.mkdir(parents=True)
    (tdir / "result.json").write_text(json.dumps({"run_id": tdir.name, "status": "running"}))
    assert resolve_init(short.cfg) is short.cfg
    (tdir / "result.json").write_text(json.dumps({"run_id": tdir.name, "status": "done"}))
    assert resolve_init(short.cfg).train.init_from is None  # the point will never come
    Path(short.cfg.train.init_from).write_bytes(b"")
    assert resolve_init(short.cfg) is short.cfg


def test_trunk_and_branches_equal_independent_wsd_runs(tmp_path):
    from sweep.run.train import train

    planned = branch(plan(base(tmp_path, "b"), n_tokens=(8192, 16384, 32768)))
    results = [train(r.cfg, progress=False) for r in planned]  # in the returned order: trunk first
    trunk = planned[0]
    assert sorted(p.name for p in run_dir(trunk.cfg, trunk.n_tokens).glob("branch-*.pt")) == \
        ["branch-12.pt", "branch-6.pt"]
    for r, res in zip(planned[1:], results[1:]):
        independent = train(dataclasses.replace(base(tmp_path, "a"), budget=r.cfg.budget), progress=False)
        assert res["run_id"] == independent["run_id"] == r.run_id
        assert res["final_val_loss"] == independent["final_val_loss"]  # bit-exact on CPU
        assert res["final_train_loss"] == independent["final_train_loss"]
        on_disk = json.loads((run_dir(r.cfg, r.n_tokens) / "result.json").read_text())
        assert on_disk["branch"] is True and on_disk["parent"] == trunk.run_id and on_disk["status"] == "done"
    assert results[0]["branch"] is False and results[0]["parent"] is None
    assert sorted(p.name for p in clear_branch_points(planned)) == ["branch-12.pt", "branch-6.pt"]
    assert not list(run_dir(trunk.cfg, trunk.n_tokens).glob("branch-*.pt"))


def test_a_branch_point_is_kept_until_every_branch_from_it_has_finished(tmp_path):
    planned = branch(plan(base(tmp_path), n_tokens=(32768, 65536, 131072, 131072 - 1024)))
    trunk, branches = planned[0], [r for r in planned if r.cfg.train.init_from]
    points = {r.cfg.train.init_from for r in branches}
    assert len(branches) == len(points) == 3  # cooldowns start at steps 24, 48 and 96 of the trunk
    for path in points:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(b"state")

    def finish(run, status):
        folder = run_dir(run.cfg, run.n_tokens)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "result.json").write_text(json.dumps({"status": status, "run_id": run.run_id}))

    finish(branches[0], "done")
    finish(branches[1], "failed")  # may be retried from its branch point
    assert clear_branch_points(planned) == [Path(branches[0].cfg.train.init_from)]
    assert all(Path(r.cfg.train.init_from).exists() for r in branches[1:])
    finish(branches[1], "diverged")
    finish(branches[2], "done")
    assert {str(p) for p in clear_branch_points(planned)} == points - {branches[0].cfg.train.init_from}
    assert not list(run_dir(trunk.cfg, trunk.n_tokens).glob("branch-*.pt"))


def test_sweep_progress_counts_a_branch_from_its_branch_point(tmp_path):
    from sweep.launch.progress import SweepProgress
    from sweep.store.results import write_json_atomic

    out = branch(plan(base(tmp_path)))  # trunk 128 steps; branches start at steps 24 and 48
    step = 1024 * out[0].flops_per_token
    progress = SweepProgress(out, enabled=False)
    assert sum(progress.own_flops(r)[0] for r in out) == pytest.approx(branch_cost(out)["total"]["branched_flops"])
    assert progress.poll() == (0, 0.0)
    trunk, short = out[0], next(r for r in out[1:] if r.n_tokens == 32768)
    write_json_atomic(run_dir(trunk.cfg, trunk.n_tokens) / "progress.json", {"step": 64, "steps": 128})
    write_json_atomic(run_dir(short.cfg, short.n_tokens) / "progress.json", {"step": 28, "steps": 32})
    finished, flops = progress.poll()
    assert finished == 0 and flops == pytest.approx((64 + 4) * step)  # the branch's 24 shared steps are the trunk's
