"""Loss-curve regression on tiny checked-in data, and the compiled training path against eager.

The golden curve pins the numbers a change to the model, initialisation, data order, schedule or
optimizer would move: a change meant to be numerically neutral must leave it alone, and a change
meant to move it regenerates it on purpose, and the diff of tests/data/loss_curve.json shows by how much:

    python scripts/update_golden.py
"""

import json
from pathlib import Path

import pytest
import torch

from sweep.cli import load_run_config
from sweep.store.results import read_jsonl, run_dir
from sweep.run.shape import run_shape
from sweep.run.train import train

DATA = Path(__file__).resolve().parent / "data"
TEXT = DATA / "shakespeare_20k.txt"  # the first 20,000 bytes of tinyshakespeare (public domain)
GOLDEN = DATA / "loss_curve.json"
# Kernels differ in summation order across CPUs and torch builds; 30 steps keep that below this.
REL_TOL = 2e-3


def overrides(root: Path, *extra: str) -> list:
    return [f"results_dir={root / 'results'}", f"data.cache_dir={root / 'cache'}", "sweep_name=golden",
            "data.source=files", f"data.path={TEXT}", "data.split=tail", "data.val_fraction=0.1",
            "data.val_tokens=1024", "tokenizer=byte", "model.n_layer=2", "model.d_model=32", "model.n_head=2",
            "model.seq_len=32", "train.batch_size=8", "train.tokens_per_step=256", "train.lr=3e-3",
            "train.warmup_steps=5", "train.log_interval=5", "train.eval_interval=10", "train.threads=1",
            "train.dtype=fp32", "train.device=cpu", "budget.n_tokens=7680", "logger.mode=disabled", *extra]


def curve(root: Path, *extra: str) -> dict:
    cfg = load_run_config(overrides(root, *extra))
    result = train(cfg, progress=False)
    assert result["status"] == "done"
    rows = read_jsonl(run_dir(cfg, run_shape(cfg).n_tokens) / "metrics.jsonl")
    return {
        "train_loss": {str(r["step"]): r["train_loss"] for r in rows if "train_loss" in r},
        "val_loss": {str(r["step"]): r["val_loss"] for r in rows if "val_loss" in r},
        "final_val_loss": result["final_val_loss"],
    }


def test_golden_loss_curve(tmp_path):
    got = curve(tmp_path)
    want = json.loads(GOLDEN.read_text())
    assert set(got["train_loss"]) == set(want["train_loss"]) == {str(s) for s in range(5, 31, 5)}
    assert set(got["val_loss"]) == set(want["val_loss"])
    for kind in ("train_loss", "val_loss"):
        for step, value in want[kind].items():
            assert got[kind][step] == pytest.approx(value, rel=REL_TOL), f"{kind} at step {step}"
    assert got["final_val_loss"] == pytest.approx(want["final_val_loss"], rel=REL_TOL)
    assert want["train_loss"]["30"] < want["train_loss"]["5"] - 0.5  # the pinned curve is one that learns


@pytest.mark.slow
def test_compiled_run_follows_the_eager_curve(tmp_path):
    """torch.compile (what train=gpu turns on) runs here on the CPU through inductor: the same run,
    the same results folder layout, and a curve equal to eager up to kernel rounding."""
    eager = curve(tmp_path / "eager")
    compiled = curve(tmp_path / "compiled", "train.compile=true")
    assert compiled["train_loss"].keys() == eager["train_loss"].keys()
    for step, value in eager["train_loss"].items():
        assert compiled["train_loss"][step] == pytest.approx(value, rel=1e-3), step
    assert compiled["final_val_loss"] == pytest.approx(eager["final_val_loss"], rel=1e-3)


@pytest.mark.slow
def test_each_compiled_run_is_compiled_however_many_shapes_one_process_trains(tmp_path, monkeypatch):
    """The basic launcher trains a sweep's runs in one process. Past dynamo's recompile limit (1
    here, 8 by default) a new shape would run eagerly, with only a log warning; each run starts
    from a fresh cache, so every one of them gets its own compiled graph. The second run uses the
    CUDA-graph mode, which has no graphs to replay on a CPU: its step marks must leave training be."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 1)
    before = counters["stats"]["unique_graphs"]
    losses = []
    for width, mode in ((16, "default"), (32, "reduce-overhead")):
        got = curve(tmp_path / f"d{width}", "train.compile=true", f"train.compile_mode={mode}",
                    f"model.d_model={width}", "model.n_layer=1", "budget.n_tokens=1280")
        losses.append(got["final_val_loss"])
    assert counters["stats"]["unique_graphs"] - before == 2
    assert all(3.0 < loss < 5.5 for loss in losses)  # below ln(256) = 5.55, the uniform guess: it learned


# train=gpu's settings, with two micro-batches a step: accumulated gradients are outputs of the
# earlier micro-batch's CUDA graph, which must not be overwritten before the optimizer step.
GPU = ("train.device=cuda", "train.dtype=bf16", "train.compile=true", "train.batch_size=4")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_run_follows_the_cpu_curve_and_cuda_graphs_change_nothing(tmp_path):
    """bf16 autocast, compile and fused AdamW on CUDA stay within bf16 rounding of the fp32 CPU
    curve, and CUDA graphs (train.compile_mode=reduce-overhead) replay the same steps."""
    cpu = curve(tmp_path / "cpu")
    compiled = curve(tmp_path / "gpu", *GPU)
    graphs = curve(tmp_path / "graphs", *GPU, "train.compile_mode=reduce-overhead")
    for step, value in cpu["train_loss"].items():
        assert compiled["train_loss"][step] == pytest.approx(value, rel=5e-2), step
        assert graphs["train_loss"][step] == pytest.approx(compiled["train_loss"][step], rel=1e-3), step
    assert graphs["final_val_loss"] == pytest.approx(compiled["final_val_loss"], rel=1e-3)
