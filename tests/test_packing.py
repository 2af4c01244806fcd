"""Packing runs onto GPUs: the memory estimate, the runs-per-GPU rule, MPS detection, `auto` in a
sweep config, the plan's packing line and the GPU benchmark's CPU smoke mode."""

import dataclasses
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sweep.config import ConfigError, ModelConfig, RunConfig, TokenizerConfig, TrainConfig
from sweep.ladder.grid import shape_for_params
from sweep.run.model import GPT, count_params
from sweep.launch.mps import MpsStatus, mps_status
from sweep.run.cores import usable_cores
from sweep.launch.packing import (CUDA_CONTEXT_BYTES, GiB, MAX_RUNS_PER_GPU, MEMORY_SAFETY, GpuInfo,
                           activation_bytes_per_token, decide_packing, estimate_gpu_memory,
                           gpu_units, run_gpu_memory, runs_per_gpu)

REPO = Path(__file__).resolve().parents[1]
H100 = GpuInfo(1, 80 * GiB, "NVIDIA H100 80GB HBM3")


def gpu_run(target_params_non_embedding: float) -> RunConfig:
    """A run shaped as the *_h100 experiments shape it: seq_len 1024, vocab 16384, 32 x 1024 micro-batches."""
    m = shape_for_params(target_params_non_embedding, 64, 64, ModelConfig(seq_len=1024), 16384)
    return RunConfig(model=m, tokenizer=TokenizerConfig(vocab_size=16384),
                     train=TrainConfig(batch_size=32, tokens_per_step=262144))


# ----------------------------------------------------------------------------- memory


def test_memory_estimate_matches_a_hand_count():
    m = ModelConfig(n_layer=2, d_model=64, n_head=4, seq_len=128)
    est = estimate_gpu_memory(m, vocab_size=1024, micro_batch_size=8)
    # parameters: embedding 1024*64 + position 128*64 + attention 2*4*64^2 + mlp 2*2*64*256 + norms 5*64
    n_params = 65536 + 8192 + 32768 + 65536 + 320
    assert count_params(m, 1024)["n_params"] == n_params
    assert est.states == 18 * n_params  # fp32 weights, grads, two AdamW moments, bf16 weight copies
    # per token: 2 layers x (20*64 + 4*256 + 4*4 + 16) + 6*64 + 16, for 8 x 128 tokens
    assert est.activations == 1024 * (2 * (1280 + 1024 + 16 + 16) + 384 + 16) == 1024 * 5072
    assert est.logits == 1024 * 1024 * 16
    assert est.context == CUDA_CONTEXT_BYTES
    assert est.total == 18 * n_params + 1024 * 5072 + 1024 * 1024 * 16 + CUDA_CONTEXT_BYTES
    # the trainer's micro-batch: batch_size 8 of a 16-sequence step
    cfg = RunConfig(model=m, tokenizer=TokenizerConfig(vocab_size=1024),
                    train=TrainConfig(batch_size=8, tokens_per_step=16 * 128))
    assert run_gpu_memory(cfg) == est


@pytest.mark.parametrize("arch, L, d, heads, T, V, B", [("gpt2", 2, 64, 4, 128, 384, 4), ("gpt2", 3, 96, 6, 64, 1000, 8),
                                                          ("llama", 2, 64, 4, 128, 384, 4),
                                                          ("llama", 3, 96, 6, 64, 1000, 8)])
def test_activation_count_is_what_autograd_saves(arch, L, d, heads, T, V, B):
    """The count per token against the bytes autograd really keeps under bf16 autocast with the
    fused SDPA kernel (CPU's flash kernel saves the same tensors as CUDA's); llama's SwiGLU keeps twice GELU's."""
    torch.manual_seed(0)
    m = ModelConfig(arch=arch, n_layer=L, d_model=d, n_head=heads, seq_len=T)
    model = GPT(m, V)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved = {}

    def pack(t):
        storage = t.untyped_storage()  # views (q, k, v of one qkv output) share a storage: count it once
        saved[storage.data_ptr()] = storage.nbytes()
        return t

    x = torch.randint(0, V, (B, T))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.autocast("cpu", dtype=torch.bfloat16):
        model(x, x)
    measured = sum(n for ptr, n in saved.items() if ptr not in params)
    groups = count_params(m, V)["n_params_by_group"]
    weight_copies = 2 * (groups["attention"] + groups["mlp"] + groups["embedding"])  # bf16, the head's is tied
    predicted = B * T * (activation_bytes_per_token(m) + 4 * V) + weight_copies  # + the fp32 log-softmax
    assert predicted == pytest.approx(measured, rel=0.01)


# ----------------------------------------------------------------------------- packing rule


SIZES = [1e6, 5e6, 20e6, 100e6, 300e6]


def test_runs_per_gpu_falls_with_model_size_and_respects_memory():
    decisions = [decide_packing([gpu_run(n)], 80 * GiB) for n in SIZES]
    ks = [p.runs_per_gpu for p in decisions]
    assert ks == sorted(ks, reverse=True)
    assert ks[0] > 1  # a 1M model cannot fill an H100 alone
    assert ks[3] == ks[4] == 1  # 100M and 300M non-embedding: a GPU each
    for p in decisions:
        assert p.runs_per_gpu <= MAX_RUNS_PER_GPU
        assert p.runs_per_gpu == 1 or p.runs_per_gpu * p.memory.total <= MEMORY_SAFETY * 80 * GiB
    # the 1M model's estimate is dominated by its logits: 32 x 1024 tokens x 16384 entries x 16 bytes
    assert decisions[0].memory.logits == 8 * GiB


def test_each_limit_of_runs_per_gpu():
    tiny = dict(step_flops=1e11, n_params_non_embedding=1_000_000)
    assert runs_per_gpu(10 * GiB, gpu_memory=80 * GiB, **tiny) == 6  # memory: 0.85 * 80 // 10
    assert runs_per_gpu(1 * GiB, gpu_memory=80 * GiB, **tiny) == MAX_RUNS_PER_GPU  # compute asks 100: capped
    assert runs_per_gpu(1 * GiB, gpu_memory=80 * GiB, cpus_per_gpu=3, **tiny) == 3  # a host core per run
    assert runs_per_gpu(1 * GiB, 4e12, 1_000_000, 80 * GiB) == 3  # compute: ceil(1e13 / 4e12)
    assert runs_per_gpu(1 * GiB, 1e11, 100_000_000, 80 * GiB) == 1  # large model
    assert runs_per_gpu(1 * GiB, 2e13, 1_000_000, 80 * GiB) == 1  # a step that fills the GPU
    assert runs_per_gpu(100 * GiB, gpu_memory=80 * GiB, **tiny) == 1  # too big even alone: the plan refuses it
    with pytest.raises(ValueError, match="gpu_memory=0"):
        runs_per_gpu(1 * GiB, gpu_memory=0, **tiny)


def test_a_sweep_is_packed_by_its_most_demanding_run_and_shares_by_run():
    small, big = gpu_run(1e6), gpu_run(20e6)
    mixed = decide_packing([small, big], 80 * GiB)
    assert dataclasses.replace(mixed, per_run=()) == dataclasses.replace(decide_packing([big], 80 * GiB), per_run=())
    k_small, k_big = (decide_packing([r], 80 * GiB).runs_per_gpu for r in (small, big))
    assert mixed.per_run == (k_small, k_big) and mixed.runs_per_gpu == k_big < k_small == mixed.capacity
    # Shares of a GPU divided into k_small units: a big run takes ceil(k_small / k_big) of them, so at
    # most k_big big runs share a GPU, and every mix whose units add up fits its memory.
    assert gpu_units(small, mixed.capacity, 80 * GiB) == 1
    assert gpu_units(big, mixed.capacity, 80 * GiB) == math.ceil(k_small / k_big)
    assert k_small // gpu_units(big, k_small, 80 * GiB) <= k_big
    assert gpu_units(gpu_run(300e6), 7, 80 * GiB) == 7  # a GPU each
    # a smaller GPU packs fewer of the same runs
    assert decide_packing([small], 24 * GiB).runs_per_gpu < decide_packing([small], 80 * GiB).runs_per_gpu


def test_packed_memory_caps_leave_room_for_each_processs_cuda_context():
    """torch caps a process's allocator at a fraction of the card's total; each packed process also holds a CUDA
    context outside it. The caps and contexts of any mix of runs on a full GPU fit in it (before, the caps alone
    added up to the whole card), and a run gets its slots' part of the card less its own context."""
    import itertools

    from sweep.launch.packing import memory_fraction

    for total in (80 * GiB, 141 * GiB, 24 * GiB):
        for k in range(1, MAX_RUNS_PER_GPU + 1):
            cap = memory_fraction(1, k, total)
            assert k * (cap * total + CUDA_CONTEXT_BYTES) <= total + 1
            assert cap == pytest.approx((total - k * CUDA_CONTEXT_BYTES) / (k * total))
            assert memory_fraction(k, k, total) == pytest.approx(1 - CUDA_CONTEXT_BYTES / total)  # alone on it
            # every way to fill the GPU's k slots with runs of 1..k slots each
            for n in range(1, k + 1):
                for units in itertools.combinations_with_replacement(range(1, k + 1), n):
                    if sum(units) <= k:
                        held = sum(memory_fraction(u, k, total) * total + CUDA_CONTEXT_BYTES for u in units)
                        assert held <= total + 1, (total, k, units)
    assert memory_fraction(1, 8, 80 * GiB) == pytest.approx(72 / 80 / 8)  # 9 GiB, not 10
    assert memory_fraction(3, 8, 80 * GiB) == pytest.approx((30 - 1) / 80)
    # a card too small for its contexts (the packing rule never packs one so): a tenth of the slots' part
    assert memory_fraction(1, 8, 4 * GiB) == pytest.approx(0.1 / 8)
    for bad in ((0, 4, GiB), (5, 4, GiB), (1, 0, GiB), (1, 4, 0)):
        with pytest.raises(ValueError):
            memory_fraction(*bad)


@pytest.mark.parametrize("total_gib", [16, 24, 40, 48, 80, 94, 141, 192])
def test_a_runs_memory_cap_never_falls_below_what_the_packing_rule_lets_it_allocate(total_gib):
    """The rule packs k runs like one to a GPU when each needs at most MEMORY_SAFETY of a k-th of the card with its
    CUDA context, and gives it ceil(capacity / k) slots; torch's cap on its allocator (cached blocks included) is
    at least that for every capacity and k. Before, a capacity-8 GPU of 40 GiB capped a run alone on it at 32 GiB
    where the rule let it allocate 33, and one of 24 GiB at 16 where it let it allocate 19.4 (k = 1), and at 8
    where it let it allocate 9.2 (k = 2): the run ran out of memory in its own allocator and retried at half the
    micro-batch for nothing."""
    from sweep.launch.packing import memory_fraction

    total = total_gib * GiB
    for capacity in range(1, MAX_RUNS_PER_GPU + 1):
        for k in range(1, capacity + 1):
            allowed = MEMORY_SAFETY * total / k - CUDA_CONTEXT_BYTES
            if allowed <= 0:
                continue  # the rule fits no run here
            cap = memory_fraction(math.ceil(capacity / k), capacity, total) * total
            assert cap >= allowed, (total_gib, capacity, k, cap / GiB, allowed / GiB)


def test_a_mixed_sweep_on_a_24_gib_card_caps_its_big_run_above_its_estimate():
    """Through the rule itself: 1M-parameter runs at 4 sequences a micro-batch pack 8 to a 24 GiB card, and one at
    64 sequences fills it alone (its estimate: 17 GiB allocated, 18 with its context, within 85% of 24). It takes
    all 8 slots; its cap was 16 GiB (8 contexts taken off a card it has to itself), and is now 23."""
    from sweep.launch.packing import memory_fraction

    def run(batch: int) -> RunConfig:
        r = gpu_run(1e6)
        return dataclasses.replace(r, train=dataclasses.replace(r.train, batch_size=batch,
                                                                tokens_per_step=2 * batch * 1024))

    small, big = run(4), run(64)
    total = 24 * GiB
    capacity = decide_packing([small, big], total, cpus_per_gpu=16).capacity
    assert capacity == 8
    for r, slots in ((small, 1), (big, capacity)):
        assert gpu_units(r, capacity, total, 16) == slots
        cap = memory_fraction(slots, capacity, total) * total
        assert cap >= run_gpu_memory(r).allocated
    assert run_gpu_memory(big).allocated > 16 * GiB
    assert memory_fraction(capacity, capacity, total) * total == 23 * GiB


# ----------------------------------------------------------------------------- MPS


def test_mps_is_detected_from_its_control_pipe(tmp_path):
    pipe_dir, bin_dir = tmp_path / "mps", tmp_path / "bin"
    pipe_dir.mkdir()
    bin_dir.mkdir()
    env = {"CUDA_MPS_PIPE_DIRECTORY": str(pipe_dir), "PATH": str(bin_dir)}
    assert mps_status(env) == MpsStatus(running=False, installed=False, pipe_dir=str(pipe_dir))
    os.mkfifo(pipe_dir / "control")
    tool = bin_dir / "nvidia-cuda-mps-control"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    status = mps_status(env)
    assert status.running and status.installed
    assert "MPS: yes" in status.describe()
    assert mps_status({"PATH": str(bin_dir)}).pipe_dir == "/tmp/nvidia-mps"


# ----------------------------------------------------------------------------- launch


def small_h100_sweep(*extra):
    from sweep.ladder.sweep_config import expand_sweep, load_sweep

    sc = load_sweep(["experiment=kaplan_model_size_h100", "experiment.family=free", *extra])  # the figures below are for these shapes
    return sc, expand_sweep(sc, n_train_tokens=10**10).runs


def test_auto_resolves_from_the_grid_and_the_gpus():
    from sweep.launch.placement import resolve_launch
    from sweep.ladder.sweep_config import n_slots

    sc, runs = small_h100_sweep()
    assert sc.launch.gpus is None and sc.launch.runs_per_gpu is None  # auto by default
    launch, packing = resolve_launch(sc.launch, runs, GpuInfo(8, 80 * GiB, "H100"), cpu_cores=96)
    # The 100M run fills a GPU alone; the 1M runs pack 7 to a GPU, so a GPU is 7 units and each run
    # takes its share (sizes 1M..100M: 1, 2, 4, 7 and 7 units), where one count for the whole sweep
    # gave every 1M run a whole H100.
    assert packing.runs_per_gpu == 1 and "fills a GPU" in packing.reason
    assert packing.per_run == (7, 4, 2, 1, 1)
    assert (launch.gpus, launch.runs_per_gpu, launch.gpu_memory, n_slots(launch)) == (8, 7, 80 * GiB, 56)
    assert [gpu_units(r.cfg, 7, 80 * GiB, 12) for r in runs] == [1, 2, 4, 7, 7]
    big = resolve_launch(sc.launch, runs[-1:], H100, cpu_cores=16)[1]
    assert big.n_params_non_embedding < 100e6 and big.runs_per_gpu == 1  # 99.7M: its step alone fills a GPU

    sc, runs = small_h100_sweep("experiment.target_params_non_embedding=[1000000,3000000]")
    launch, packing = resolve_launch(sc.launch, runs, H100, cpu_cores=16)
    assert launch.runs_per_gpu == packing.capacity == max(packing.per_run) >= packing.runs_per_gpu
    assert packing == decide_packing([r.cfg for r in runs], 80 * GiB, 16)
    assert 1 < launch.runs_per_gpu <= decide_packing([runs[0].cfg], 80 * GiB, 16).by_memory  # the 1M run's
    assert n_slots(launch) == launch.runs_per_gpu
    # two host cores per GPU cap it at 2
    assert resolve_launch(sc.launch, runs, GpuInfo(8, 80 * GiB), cpu_cores=16)[0].runs_per_gpu == 2

    sc, runs = small_h100_sweep("experiment.target_params_non_embedding=[1000000]", "launch.runs_per_gpu=3",
                                "launch.gpus=2")
    launch, packing = resolve_launch(sc.launch, runs, H100, cpu_cores=16)
    assert (launch.gpus, launch.runs_per_gpu, n_slots(launch)) == (2, 3, 6)  # as set
    assert launch.gpu_memory is None  # then every run takes one slot

    launch, packing = resolve_launch(sc.launch, runs, GpuInfo(0, None), cpu_cores=16)
    assert packing is None and launch.runs_per_gpu == 3  # no GPU memory known: nothing checked

    sc, runs = small_h100_sweep("launch.slots=3")
    launch, packing = resolve_launch(sc.launch, runs, GpuInfo(0, None), cpu_cores=2)
    assert (launch.gpus, launch.runs_per_gpu, packing, n_slots(launch)) == (0, 1, None, 3)  # CPU: slots


def test_bad_launch_values_fail_early():
    from sweep.ladder.sweep_config import load_sweep

    with pytest.raises(ConfigError, match=r"launch.runs_per_gpu=0: must be >= 1, or null"):
        load_sweep(["launch.runs_per_gpu=0"])
    with pytest.raises(ConfigError, match=r"launch.gpus=-1"):
        load_sweep(["launch.gpus=-1"])


def test_each_slot_gets_one_gpu(monkeypatch):
    """Each job is its own process: submitit's local executor gives it CUDA_VISIBLE_DEVICES of all
    launch.gpus GPUs (or the variable is unset), and the job's slot picks one of them."""
    from sweep.launch.placement import placed as _placed
    from sweep.ladder.sweep_config import load_sweep, to_run_config

    sc = load_sweep(["launch.gpus=2", "launch.runs_per_gpu=3"])
    for given, expected in ((None, ["0", "1"] * 3), ("4,5", ["4", "5"] * 3)):
        seen = []
        for slot in range(6):
            if given is None:
                monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
            else:
                monkeypatch.setenv("CUDA_VISIBLE_DEVICES", given)
            cfg = _placed(to_run_config(sc), sc.launch, slot)
            seen.append(os.environ["CUDA_VISIBLE_DEVICES"])
            assert cfg.train.threads == max(1, usable_cores() // 6)
        assert seen == expected  # the first runs spread over the GPUs

    # `CUDA_VISIBLE_DEVICES=2,3 sweep run ...`: submitit hands each job 0,1, sweep run passes 2,3 on.
    sc = load_sweep(["launch.gpus=2", "launch.runs_per_gpu=1", "launch.devices='2,3'"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert [(_placed(to_run_config(sc), sc.launch, slot), os.environ["CUDA_VISIBLE_DEVICES"])[1] for slot in range(2)] == ["2", "3"]


def fake_gpu_box(monkeypatch, mps_running: bool):
    import sweep.launch.launch as launch

    monkeypatch.setattr(launch, "_device_name", lambda sc: "cuda")
    monkeypatch.setattr(launch, "remote_device", lambda sc: False)  # CUDA is here (pretended), not on other nodes
    monkeypatch.setattr(launch, "available_memory", lambda device: 80 * GiB)
    monkeypatch.setattr(launch, "detect_gpus", lambda: H100)
    monkeypatch.setattr(launch, "mps_status", lambda: MpsStatus(mps_running, True, "/tmp/nvidia-mps"))


def test_plan_prints_the_packing_decision(monkeypatch, capsys):
    from sweep.launch.launch import plan_command

    assert plan_command(["experiment=kaplan_data_size", "launch.probe=false", "launch.corpus_tokens=100000000",
                         "launch.slots=2"]) == 0
    assert "launch: no GPU for these runs; hydra/launcher=parallel runs 2 at a time" in capsys.readouterr().out

    args = ["experiment=kaplan_model_size_h100", "launch.probe=false", "launch.corpus_tokens=10000000000"]

    fake_gpu_box(monkeypatch, mps_running=True)
    tiny = "experiment.target_params_non_embedding=[1000000,3000000]"
    assert plan_command(args + [tiny]) == 0
    out = capsys.readouterr().out
    k = decide_packing([gpu_run(1e6), gpu_run(3e6)], 80 * GiB, usable_cores()).capacity
    assert f"launch: {k} runs per GPU x 1 GPU (NVIDIA H100 80GB HBM3) = {k} at a time" in out
    assert "packing: largest run's micro-batch step" in out and "MPS: yes" in out

    assert plan_command(args + [tiny, "launch.runs_per_gpu=8"]) == 0
    out = capsys.readouterr().out
    assert "launch.runs_per_gpu=8 as set; the rule would pick" in out
    assert "expect CUDA out-of-memory" in out  # 8 runs of ~10 GiB do not fit in 68 GiB


# ----------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_estimate_bounds_real_gpu_memory():
    """One bf16 training step on the GPU: the allocator's peak is at most the estimate, and not far below."""
    m = ModelConfig(n_layer=4, d_model=256, n_head=4, seq_len=512)
    vocab, batch = 4096, 8
    model = GPT(m, vocab).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    torch.cuda.reset_peak_memory_stats()
    x = torch.randint(0, vocab, (batch, m.seq_len), device="cuda")
    for _ in range(2):  # the second step holds the AdamW moments too
        with torch.autocast("cuda", dtype=torch.bfloat16):
            _, loss = model(x, x)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    peak = torch.cuda.max_memory_allocated()
    est = estimate_gpu_memory(m, vocab, batch).allocated
    assert 0.5 * est <= peak <= 1.15 * est


# ----------------------------------------------------------------------------- benchmark


@pytest.mark.slow
def test_bench_gpu_cpu_smoke():
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_gpu.py"), "--cpu-smoke"], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    for column in ("size", "N_ne", "tokens/s", "MFU", "step_ms", "peak_mem", "est_mem"):
        assert column in out.splitlines()[1]
    assert "tiny-model sweep: 2 runs" in out and "one at a time" in out and "2 per GPU" in out
    pairs = [dict(kv.split("=", 1) for kv in line.split()) for line in out.splitlines()
             if line.startswith(("size=", "sweep_runs="))]
    sizes = [p for p in pairs if "size" in p]
    assert [p["size"] for p in sizes] == ["20k", "100k"]
    for p in sizes:
        assert float(p["tokens_per_second"]) > 0 and float(p["peak_memory_gib"]) > 0
        assert float(p["estimated_memory_gib"]) > 0 and 0 < float(p["mfu"]) < 1  # against a measured CPU peak
    assert int(sizes[0]["n_params_non_embedding"]) < int(sizes[1]["n_params_non_embedding"])
    (sweep,) = [p for p in pairs if "sweep_runs" in p]
    assert sweep["runs_per_gpu"] == "2" and sweep["sweep_runs"] == "2"
    assert float(sweep["sequential_flops_per_second"]) > 0 and float(sweep["packed_flops_per_second"]) > 0
    assert float(sweep["speedup"]) == pytest.approx(
        float(sweep["packed_flops_per_second"]) / float(sweep["sequential_flops_per_second"]), rel=1e-2)


def test_bench_gpu_h100_runs_are_valid_configs_that_fit(tmp_path):
    """What bench_gpu.py will train on the next H100 lease, checked here so a config error never
    costs GPU time: every size composes and validates, is near its non-embedding target, keeps
    train=gpu's compile and bf16, and fits in one 80 GiB GPU by the memory estimate."""
    import argparse

    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import bench_gpu
    finally:
        sys.path.pop(0)
    from sweep.cli import load_run_config
    from sweep.config import micro_batch

    s = bench_gpu.gpu_setup(argparse.Namespace(sizes=None, batch_size=None, steps=None))
    assert s.sizes == ["1M", "5M", "20M", "100M", "300M"]
    for size in s.sizes:
        cfg = load_run_config(bench_gpu.run_overrides(size, s, s.steps * s.tokens_per_step, tmp_path / "r",
                                                      tmp_path / "c", "sizes"))
        n_ne = count_params(cfg.model, cfg.tokenizer.vocab_size)["n_params_non_embedding"]
        assert abs(n_ne / bench_gpu.parse_count(size) - 1) < 0.15, (size, n_ne)
        assert cfg.model.seq_len == 1024 and cfg.train.compile and cfg.train.dtype == "auto"
        size_, accum = micro_batch(cfg)
        assert size_ * accum * cfg.model.seq_len == cfg.train.tokens_per_step == 131072
        assert run_gpu_memory(cfg).total < MEMORY_SAFETY * 80 * GiB, size
