"""Real training runs on a slice of tinyshakespeare: learning, results, skip, resume, branches, W&B files."""

import json
import math

import numpy as np
import pytest

from conftest import Interrupt, dies_after_checkpoints
from sweep.cli import load_run_config, main
from sweep.store.results import read_jsonl, run_dir
from sweep.store.tracking import wandb_id
from sweep.run.shape import run_shape
from sweep.run.train import train
from sweep.store.wandb_offline import find_offline_runs, read_offline_run


def unigram_loss(tokens: np.ndarray, val: np.ndarray) -> float:
    """Cross-entropy (nats) of the validation tokens under the train split's token frequencies."""
    counts = np.bincount(tokens, minlength=256).astype(np.float64) + 1.0
    p = counts / counts.sum()
    return float(-np.log(p[val]).mean())


def test_short_run_learns_well_below_unigram(tmp_path, tiny):
    from sweep.run.data import prepare_data

    cfg = load_run_config(tiny(tmp_path))
    result = train(cfg, progress=False)
    data = prepare_data(cfg.data, cfg.tokenizer, progress=False)
    unigram = unigram_loss(np.asarray(data.train_tokens()), np.asarray(data.val_tokens()))
    assert 2.9 < unigram < 3.5  # ~3.3 nats for English characters
    assert result["status"] == "done"
    assert result["final_val_loss"] < unigram - 0.6, (result["final_val_loss"], unigram)
    assert result["final_val_bpb"] == pytest.approx(result["final_val_loss"] * data.n_val_tokens
                                                    / (data.val_bytes * math.log(2)))
    # result.json: the counts and provenance a fit needs
    shape = run_shape(cfg)
    on_disk = json.loads((run_dir(cfg, shape.n_tokens) / "result.json").read_text())
    assert on_disk == json.loads(json.dumps(result))
    for key in ("run_id", "final_val_loss", "final_val_bpb", "final_train_loss", "n_params", "n_params_non_embedding",
                "n_params_by_group", "n_tokens", "flops_6nd", "flops", "tokens_per_second", "wall_seconds", "device",
                "seed", "corpus_hash", "tokenizer_hash", "code_version", "torch_version", "python_version", "config"):
        assert key in on_disk, key
    assert on_disk["n_tokens"] == 163840 and on_disk["steps"] == 160
    assert on_disk["flops_6nd"] == 6 * on_disk["n_params"] * 163840
    assert on_disk["flops"] == on_disk["flops_per_token"] * 163840
    assert sum(on_disk["n_params_by_group"].values()) == on_disk["n_params"]
    assert on_disk["config"]["model"]["d_model"] == 64
    # a CPU is in no datasheet table: MFU is against this machine's own matmul peak in the run's dtype, on the
    # FLOPs a step executes; the exact count's MFU is beside it, labelled
    assert on_disk["peak_flops_source"] == f"measured {on_disk['dtype']} matmul" and on_disk["peak_flops"] > 1e9
    assert on_disk["mfu"] == pytest.approx(on_disk["tokens_per_second"] * on_disk["executed_flops_per_token"]
                                           / on_disk["peak_flops"]) and 0 < on_disk["mfu"] < 1
    assert on_disk["mfu_chinchilla_flops"] == pytest.approx(on_disk["tokens_per_second"] * on_disk["flops_per_token"]
                                                            / on_disk["peak_flops"])
    assert on_disk["executed_flops_per_token"] < on_disk["flops_per_token"]
    assert "executed" in on_disk["mfu_counts"] and "after the first 2" in on_disk["tokens_per_second_counts"]
    assert on_disk["tokens_per_second_wall"] <= on_disk["tokens_per_second"]
    assert on_disk["micro_batch_size"] * on_disk["grad_accum_steps"] * 64 == cfg.train.tokens_per_step
    assert on_disk["oom_retries"] == 0
    # the curve: falling train loss, evaluations, tokens and FLOPs on every row
    rows = read_jsonl(run_dir(cfg, shape.n_tokens) / "metrics.jsonl")
    train_losses = [r["train_loss"] for r in rows if "train_loss" in r]
    assert train_losses[-1] < train_losses[0] - 1.0
    assert sum("val_loss" in r for r in rows) >= 5
    assert rows[-1]["val_loss"] == pytest.approx(result["final_val_loss"])
    assert all(r["flops"] == pytest.approx(r["tokens"] * on_disk["flops_per_token"]) for r in rows)


def test_done_run_is_skipped_and_says_so(tmp_path, capsys, tiny):
    args = tiny(tmp_path, "budget.n_tokens=20480")
    assert main(["train", *args]) == 0
    path = next((tmp_path / "results" / "t" / "runs").glob("*/result.json"))
    before = path.stat().st_mtime_ns
    capsys.readouterr()
    path.with_name("checkpoint.pt").write_bytes(b"left by a kill just after result.json was written")
    assert main(["train", *args]) == 0
    assert "already done" in capsys.readouterr().err
    assert path.stat().st_mtime_ns == before
    assert not path.with_name("checkpoint.pt").exists()
    # An equivalent budget given another way is the same run.
    cfg = load_run_config(args)
    n = run_shape(cfg).n_params
    same = load_run_config(tiny(tmp_path, "budget.n_tokens=null", f"budget.tokens_per_param={20480 / n}"))
    assert run_dir(same, run_shape(same).n_tokens) == path.parent


def test_resume_after_interruption_is_bit_exact(tmp_path, tiny):
    clean = train(load_run_config(tiny(tmp_path / "a", "budget.n_tokens=40960")), progress=False)

    cfg = load_run_config(tiny(tmp_path / "b", "budget.n_tokens=40960", "train.checkpoint_interval=5"))
    rdir = run_dir(cfg, run_shape(cfg).n_tokens)

    # step 15 of 40 is on disk, mid log interval: die like a killed process would
    with dies_after_checkpoints(3), pytest.raises(Interrupt):
        train(cfg, progress=False)
    assert json.loads((rdir / "result.json").read_text())["status"] == "failed"
    assert (rdir / "checkpoint.pt").exists()

    resumed = train(cfg, progress=False)
    assert resumed["status"] == "done"
    assert resumed["final_val_loss"] == clean["final_val_loss"]  # bit-exact, not approximately
    assert resumed["final_train_loss"] == clean["final_train_loss"]
    assert not (rdir / "checkpoint.pt").exists()
    steps = [r["step"] for r in read_jsonl(rdir / "metrics.jsonl") if "train_loss" in r]
    assert steps == sorted(set(steps))  # no step logged twice after the resume
    clean_cfg = load_run_config(tiny(tmp_path / "a", "budget.n_tokens=40960"))
    clean_dir = run_dir(clean_cfg, run_shape(clean_cfg).n_tokens)
    curve = {r["step"]: r["train_loss"] for r in read_jsonl(rdir / "metrics.jsonl") if "train_loss" in r}
    clean_curve = {r["step"]: r["train_loss"] for r in read_jsonl(clean_dir / "metrics.jsonl") if "train_loss" in r}
    assert curve == clean_curve and 20 in curve  # the row spanning the resume averages the same 10 steps


def test_wsd_branch_equals_independent_wsd_run(tmp_path, tiny):
    wsd = ["train.schedule=wsd", "train.warmup_steps=2", "train.cooldown_fraction=0.25"]
    independent = train(load_run_config(tiny(tmp_path / "a", *wsd, "budget.n_tokens=32768")), progress=False)
    # The trunk runs 64 steps; the 32-step budget's 8-step cooldown starts at step 24.
    trunk_cfg = load_run_config(tiny(tmp_path / "b", *wsd, "budget.n_tokens=65536", "train.save_at_steps=[24]"))
    train(trunk_cfg, progress=False)
    point = run_dir(trunk_cfg, 65536) / "branch-24.pt"
    assert point.exists()
    branch = train(load_run_config(tiny(tmp_path / "b", *wsd, "budget.n_tokens=32768", f"train.init_from={point}")),
                   progress=False)
    assert branch["final_val_loss"] == independent["final_val_loss"]


def test_non_finite_loss_stops_the_run_as_diverged(tmp_path, tiny):
    result = train(load_run_config(tiny(tmp_path, "train.lr=1e6", "train.grad_clip=0", "budget.n_tokens=40960")),
                   progress=False)
    assert result["status"] == "diverged"
    assert result["diverged_step"] <= 20 and result["final_val_loss"] is None


def test_wandb_offline_run_holds_config_and_summary(tmp_path, tiny):
    result = train(load_run_config(tiny(tmp_path, "logger.mode=offline", "budget.n_tokens=20480")), progress=False)
    runs = find_offline_runs(tmp_path / "results" / "t")
    assert len(runs) == 1
    run = read_offline_run(runs[0])
    assert run["id"] == wandb_id("t", result["run_id"]) and run["group"] == "t" and run["job_type"] == "train"
    # one W&B run per (sweep, run): the same run config in another sweep gets another id
    assert wandb_id("t", result["run_id"]) != wandb_id("u", result["run_id"])
    assert wandb_id("t", result["run_id"]).startswith(result["run_id"])
    assert run["config"]["n_params"] == result["n_params"] and run["config"]["model"]["d_model"] == 64
    assert run["summary"]["final_val_loss"] == pytest.approx(result["final_val_loss"])
    assert run["summary"]["n_tokens"] == 20480
    assert run["summary"]["mfu"] == pytest.approx(result["mfu"]) and 0 < result["mfu"] < 1
    assert any("train_loss" in row for row in run["history"])
    assert run["exit_code"] == 0


def test_a_device_with_a_known_peak_logs_mfu_on_every_row(tmp_path, monkeypatch, tiny):
    """Known GPUs have a datasheet peak before training starts: each log row carries the MFU of the
    run so far (here the CPU is given a made-up peak, as if it were in the table)."""
    from sweep.run import runtime

    monkeypatch.setattr(runtime, "peak_flops", lambda label: 1e11)
    cfg = load_run_config(tiny(tmp_path, "budget.n_tokens=20480", "train.dtype=bf16"))
    result = train(cfg, progress=False)
    assert result["peak_flops_source"] == "datasheet (dense bf16)" and result["peak_flops"] == 1e11
    rows = [r for r in read_jsonl(run_dir(cfg, result["n_tokens"]) / "metrics.jsonl") if "train_loss" in r]
    assert rows
    for r in rows:
        assert r["mfu"] == pytest.approx(r["tokens_per_second"] * result["executed_flops_per_token"] / 1e11)


def test_an_fp32_run_is_not_held_against_the_bf16_datasheet_peak(tmp_path, monkeypatch, tiny):
    """A known GPU's datasheet peak is its bf16 tensor-core rate: an fp32 run's MFU is against a matmul measured in
    fp32 (here the CPU pretends to be in the table)."""
    from sweep.run import runtime

    monkeypatch.setattr(runtime, "peak_flops", lambda label: 1e15)
    result = train(load_run_config(tiny(tmp_path, "budget.n_tokens=8192", "train.dtype=fp32")), progress=False)
    assert result["peak_flops_source"] == "measured fp32 matmul" and result["peak_flops"] < 1e15
