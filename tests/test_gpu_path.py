"""The CUDA path's findings (issues 23 and 43), each tested on a CPU through the real code path. Where a test
must pretend to be a GPU it uses tests/gpu_standin.py, which replaces only the hardware layer under torch.cuda
(so torch's own argument checks run); an out-of-memory error is pretended by the model raising torch's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gpu_standin import GiB, StandInGpu, standin_gpu  # noqa: F401  (standin_gpu is a fixture)
from sweep.cli import load_run_config
from sweep.config import ConfigError, ModelConfig
from sweep.run.counts import executed_flops_per_token, flops_per_token
from sweep.run.speed import SpeedMeter
from sweep.store.results import read_jsonl, run_dir

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- a GPU-sized run without a GPU


def test_a_cuda_run_on_a_node_without_cuda_is_refused_before_anything_is_written(tmp_path, tiny, monkeypatch):
    """A SLURM job given no GPU (pretended: SLURM_JOB_ID set on this CPU machine): the run is refused with the
    fix, before its folder, the data cache or W&B files exist, through `sweep train` and the launcher's job."""
    from sweep.launch.job import train_once
    from sweep.run.shape import run_shape
    from sweep.run.train import train

    assert not torch.cuda.is_available()
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    cfg = load_run_config(tiny(tmp_path, "train.device=cuda"))
    with pytest.raises(ConfigError, match=r"SLURM job 4242 .* no GPU.*train.device=cpu"):
        train(cfg, progress=False)
    with pytest.raises(ConfigError, match="gpus_per_task=1"):
        train_once(cfg, run_shape(cfg).n_tokens)
    assert not (tmp_path / "results").exists() and not (tmp_path / "cache").exists()
    # asked for explicitly, the CPU trains it
    cpu = load_run_config(tiny(tmp_path, "train.device=cpu", "budget.n_tokens=4096"))
    assert train(cpu, progress=False)["status"] == "done"


def test_gpu_experiments_ask_for_cuda_and_the_slurm_gpu_launcher_gives_one():
    from hydra import compose, initialize_config_dir

    from sweep.ladder.sweep_config import register_sweep_configs

    register_sweep_configs()
    with initialize_config_dir(str(REPO / "conf"), version_base=None):
        h100 = compose("sweep", ["experiment=kaplan_model_size_h100"])
        slurm = compose("sweep", ["experiment=kaplan_model_size_h100", "hydra/launcher=slurm_gpu"],
                        return_hydra_config=True)
    assert h100.train.device == "cuda"
    assert slurm.hydra.launcher.gpus_per_task == 1 and slurm.hydra.launcher.cpus_per_task >= 4
    assert "SlurmLauncher" in slurm.hydra.launcher._target_ and slurm.hydra.launcher.max_num_timeout == 3


# ----------------------------------------------------------------------------- a packed run's memory cap


@pytest.mark.parametrize("fraction", ["0.5", None])
def test_the_issues_packed_gpu_reproduction_trains_past_the_memory_fraction_call(tmp_path, standin_gpu, fraction):
    """`sweep train data=tinyshakespeare tokenizer=byte train.device=cuda train.memory_fraction=0.5 logger=disabled`
    (a smaller model and budget) on one stand-in GPU: torch is asked to cap cuda:0, and the run trains to the
    end. Before, setup gave torch a bare 'cuda', which its own check refuses, and every packed run failed there."""
    from sweep.cli import main

    gpu = standin_gpu(1)
    args = ["train", "data=tinyshakespeare", "tokenizer=byte", "train.device=cuda", "logger=disabled",
            f"results_dir={tmp_path / 'results'}", f"data.cache_dir={tmp_path / 'cache'}", "model.n_layer=1",
            "model.d_model=32", "model.n_head=2", "model.seq_len=32", "train.tokens_per_step=512",
            "train.batch_size=16", "budget.n_tokens=5120"]
    assert main(args + ([f"train.memory_fraction={fraction}"] if fraction else [])) == 0
    assert gpu.called("set_memory_fraction") == ([(0.5, 0)] if fraction else [])
    (result,) = [json.loads(p.read_text()) for p in (tmp_path / "results").rglob("result.json")]
    assert result["status"] == "done" and result["steps_done"] == 10 and result["device"] == gpu.name


# ----------------------------------------------------------------------------- speed and MFU


def test_the_speed_meter_leaves_out_warm_up_and_pauses():
    """A fake clock: a 10 s first step (compilation), 1 s steps, a 5 s evaluation and a 3 s checkpoint."""
    now = [0.0]
    meter = SpeedMeter(clock=lambda: now[0])
    for step in range(1, 7):
        now[0] += 10.0 if step == 1 else 1.0
        meter.step_done(100)
        if step == 3:
            with meter.pause("eval"):
                now[0] += 5.0
        if step == 5:
            with meter.pause("checkpoint"):
                now[0] += 3.0
    fields = meter.fields()
    assert fields["warmup_seconds"] == 11.0  # the first two steps
    assert fields["tokens_per_second"] == pytest.approx(400 / 4.0)  # steps 3-6, 1 s each
    assert fields["tokens_per_second_wall"] == pytest.approx(600 / 23.0)  # 10 + 5 x 1 s of steps, 5 + 3 s of pauses
    assert fields["eval_seconds"] == 5.0 and fields["checkpoint_seconds"] == 3.0
    assert "without evaluations and checkpoint writes" in fields["tokens_per_second_counts"]


def test_a_runs_speed_fields_exclude_warm_up_and_evaluation_time(tmp_path, tiny, monkeypatch):
    """A real run whose first step and evaluations are made slow (pretending to be torch.compile's first step and
    a long evaluation): the steady tokens/s is well above the whole-wall figure, and the pauses are reported."""
    import sweep.run.loop as loop_module
    import sweep.run.train as train_module

    calls = {"steps": 0}
    real_step, real_eval = loop_module._optimizer_step, loop_module.evaluate

    def slow_first_step(*args, **kwargs):
        calls["steps"] += 1
        if calls["steps"] == 1:
            time.sleep(1.5)
        return real_step(*args, **kwargs)

    def slow_eval(*args, **kwargs):
        time.sleep(0.3)
        return real_eval(*args, **kwargs)

    monkeypatch.setattr(loop_module, "_optimizer_step", slow_first_step)
    monkeypatch.setattr(loop_module, "evaluate", slow_eval)
    cfg = load_run_config(tiny(tmp_path, "budget.n_tokens=40960", "train.eval_interval=10"))
    result = train_module.train(cfg, progress=False)
    assert result["warmup_seconds"] >= 1.5
    assert result["eval_seconds"] >= 0.3 * 3  # intermediate evaluations at steps 10, 20, 30
    steady_wall = result["n_tokens"] * (38 / 40) / result["tokens_per_second"]
    assert steady_wall < result["wall_seconds"] - 1.5 - 0.9
    assert result["tokens_per_second"] > 1.5 * result["tokens_per_second_wall"]
    rows = [r for r in read_jsonl(run_dir(cfg, result["n_tokens"]) / "metrics.jsonl") if "tokens_per_second" in r]
    assert rows[-1]["tokens_per_second"] == pytest.approx(result["tokens_per_second"], rel=0.3)


def test_mfu_is_based_on_the_flops_a_step_executes():
    """A d=192, 4-layer llama at seq 1024 (vocab 32768): the exact count holds a 2VdT embedding matmul that is a
    lookup, and full T^2 attention where a causal kernel does about half. By hand, per token:
    exact = 3 (2Vd + L(8d^2 + 4Td + 3hT + 6 d ff) + 2dV), executed = 3 (L(8d^2 + 2(T+1)d + 1.5h(T+1) + 6 d ff) + 2dV)."""
    m = ModelConfig(arch="llama", n_layer=4, d_model=192, n_head=3, seq_len=1024)
    V, d, L, T, h, ff = 32768, 192, 4, 1024, 3, m.mlp_width
    exact = 3 * (2 * V * d + L * (8 * d * d + 4 * T * d + 3 * h * T + 6 * d * ff) + 2 * d * V)
    executed = 3 * (L * (8 * d * d + 2 * (T + 1) * d + 1.5 * h * (T + 1) + 6 * d * ff) + 2 * d * V)
    assert flops_per_token(m, V)["flops_per_token"] == pytest.approx(exact)
    assert executed_flops_per_token(m, V) == pytest.approx(executed)
    assert exact / executed == pytest.approx(1.8, abs=0.1)  # the review's 1.8x at d=192
    big = ModelConfig(arch="llama", n_layer=24, d_model=1024, n_head=16, seq_len=1024)  # ~300M
    assert 1.05 < flops_per_token(big, V)["flops_per_token"] / executed_flops_per_token(big, V) < 1.2  # review: 1.1x


def test_datasheet_peaks_take_the_longest_name_and_never_a_mig_slice():
    from sweep.run.runtime import peak_flops

    assert peak_flops("NVIDIA H100 80GB HBM3") == 989.5e12
    assert peak_flops("NVIDIA H100 NVL") == 835e12
    assert peak_flops("NVIDIA H100 PCIe") == 756e12
    assert peak_flops("NVIDIA H200") == 989.5e12 and peak_flops("NVIDIA H20") == 148e12
    assert peak_flops("NVIDIA L4") == 121e12 and peak_flops("NVIDIA L40S") == 362e12
    assert peak_flops("NVIDIA B200") == 2250e12 and peak_flops("NVIDIA H800") == 989.5e12
    # variants named by a longer family name: a substring match alone gave H200's and B200's peaks
    assert peak_flops("NVIDIA H200 NVL") == 835e12 and peak_flops("NVIDIA GB200") == 2500e12
    assert peak_flops("NVIDIA A100-SXM4-80GB MIG 1g.10gb") is None  # a seventh of the GPU: measured instead
    assert peak_flops("Intel Xeon") is None


def test_the_measured_peak_times_several_large_matmuls_between_syncs_on_a_gpu(monkeypatch, standin_gpu):
    """On the stand-in GPU, with a clock that reads 1 s per timed call (8 matmuls of 8192^3 take minutes on a
    CPU): the peak is 8 such matmuls a second, timed between syncs of the run's device."""
    import time as time_module

    from sweep.run import runtime

    gpu = standin_gpu(2)
    now = [0.0]

    def matmul(*args, **kwargs):  # what the timed function runs; shapes as a GPU would get them
        assert args[0].shape == (8192, 8192) and kwargs["out"].dtype == torch.bfloat16
        now[0] += 1 / 8

    monkeypatch.setattr(torch, "matmul", matmul)
    monkeypatch.setattr(torch, "randn", lambda *shape, device=None: torch.zeros(()).expand(*shape))  # no RNG work
    monkeypatch.setattr(time_module, "perf_counter", lambda: now[0])
    runtime._measured_peak.cache_clear()
    try:
        flops = runtime.measured_peak_flops(torch.device("cuda", 1), torch.bfloat16, repeats=2)
    finally:
        runtime._measured_peak.cache_clear()
    assert flops == 8 * 2 * 8192**3
    assert gpu.called("synchronize") == [(1,)] * 6  # before and after each of 1 untimed and 2 timed calls


def test_a_runs_gpu_peak_is_its_own_and_read_before_the_peak_matmul(tmp_path, tiny, standin_gpu, monkeypatch):
    """An fp32 run on the stand-in GPU, in a process whose allocator already peaked at 50 GiB (an earlier run of
    the basic launcher): the run resets the peak on its own device once CUDA is up, and reads it before the
    peak-FLOP/s matmul, whose operands (pretended: it raises the stand-in's peak by 0.75 GiB) are not the run's.
    Before, result.json reported the 50 GiB, or the run's peak plus the matmul's."""
    from sweep.run import runtime
    from sweep.run.train import train

    gpu = standin_gpu(2, earlier_peak=50 * GiB)
    run_peak = gpu.peak_allocated

    def measured(device, dtype, repeats=3):
        assert device == torch.device("cuda", 1) and dtype == torch.float32
        gpu.peak_allocated += 3 * 8192**2 * 4  # a, b and out of the timed matmuls
        return 20e12

    monkeypatch.setattr(runtime, "measured_peak_flops", measured)
    cfg = load_run_config(tiny(tmp_path, "train.device=cuda:1", "train.dtype=fp32", "budget.n_tokens=4096"))
    result = train(cfg, progress=False)
    assert result["status"] == "done" and result["peak_flops"] == 20e12
    assert result["peak_flops_source"] == "measured fp32 matmul"
    assert result["gpu_peak_allocated_bytes"] == run_peak
    assert gpu.called("reset_peak_memory_stats") == [(1,)]
    names = [c[0] for c in gpu.calls]
    assert names.index("init") < names.index("reset_peak_memory_stats")  # the allocator exists by then


def test_a_peak_matmul_that_runs_out_of_memory_leaves_the_finished_run_done(tmp_path, tiny, standin_gpu,
                                                                           monkeypatch):
    """A run on a small, capped GPU (a MIG slice: no datasheet peak) where the 8192^2 peak matmul does not fit
    (pretended: it raises torch's OutOfMemoryError): the run is done, with no peak and no MFU, and trained once.
    Before, the error reached train_loop's out-of-memory handler and the finished run was trained again at half
    the micro-batch, down to a failure at one sequence."""
    from sweep.run import runtime
    from sweep.run.train import train

    gpu = standin_gpu(1, name="NVIDIA A100-SXM4-80GB MIG 1g.10gb", total_memory=10 * GiB)
    measured = []

    def no_room(device, dtype, repeats=3):
        measured.append(dtype)
        raise torch.OutOfMemoryError("CUDA out of memory (pretended)")

    monkeypatch.setattr(runtime, "measured_peak_flops", no_room)
    cfg = load_run_config(tiny(tmp_path, "train.device=cuda", "budget.n_tokens=4096"))
    result = train(cfg, progress=False)
    assert result["status"] == "done" and result["oom_retries"] == 0 and result["steps_done"] == 4
    assert measured == [torch.bfloat16]  # asked once, for the run's dtype
    assert result["peak_flops"] is None and result["mfu"] is None and result["mfu_chinchilla_flops"] is None
    assert "out of device memory" in result["peak_flops_source"]
    assert gpu.called("empty_cache")  # the matmul's blocks go back to the slice


@pytest.mark.parametrize("slurm", [True, False])
def test_inductor_compiles_in_the_runs_own_process_inside_a_slurm_job(tmp_path, tiny, monkeypatch, slurm):
    """A compiled run's setup (torch.compile is lazy: nothing compiles here). Inside a SLURM job (pretended:
    SLURM_JOB_ID set), inductor gets one compile thread, so no worker pool exists for SLURM's SIGTERM or USR2 to
    kill mid-compile, even where the submitting shell exported another count and an earlier run of this process
    imported inductor's config; outside SLURM the run's own thread count, and a count already set is kept.
    Before, a SLURM job compiled with a pool of as many workers as the run had threads."""
    from torch._inductor import config as inductor_config

    from sweep.run import loop
    from sweep.run.shape import run_shape
    from sweep.store.runs import RunFolder

    monkeypatch.setenv("TORCHINDUCTOR_COMPILE_THREADS", "16")  # restored (or removed) after the test
    if slurm:
        monkeypatch.setenv("SLURM_JOB_ID", "4242")
    else:
        monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    cfg = load_run_config(tiny(tmp_path, "train.compile=true", "train.threads=2"))
    # inductor's own patch, which restores it (monkeypatch would delete a config entry on undo)
    with inductor_config.patch(compile_threads=16):  # as an earlier import of it decided
        loop._setup(cfg, run_shape(cfg), None, RunFolder(tmp_path / "run"))
        assert inductor_config.compile_threads == (1 if slurm else 16)
        assert os.environ["TORCHINDUCTOR_COMPILE_THREADS"] == ("1" if slurm else "16")
        monkeypatch.delenv("TORCHINDUCTOR_COMPILE_THREADS")
        loop._setup(cfg, run_shape(cfg), None, RunFolder(tmp_path / "run"))
        assert os.environ["TORCHINDUCTOR_COMPILE_THREADS"] == ("1" if slurm else "2")  # the run's threads


# ----------------------------------------------------------------------------- out of memory


def test_out_of_memory_retries_at_half_the_micro_batch_with_the_same_run_id_and_tokens_per_step(tmp_path, tiny,
                                                                                                 monkeypatch):
    """Pretend a GPU that holds 4 sequences: the model raises torch's OutOfMemoryError on larger micro-batches."""
    from sweep.run import model as model_module
    from sweep.run.shape import run_shape
    from sweep.run.train import train

    real_forward = model_module.GPT.forward

    def small_gpu(self, idx, targets=None):
        if idx.shape[0] > 4:
            raise torch.OutOfMemoryError("CUDA out of memory (pretended)")
        return real_forward(self, idx, targets)

    monkeypatch.setattr(model_module.GPT, "forward", small_gpu)
    cfg = load_run_config(tiny(tmp_path, "train.batch_size=16", "budget.n_tokens=20480"))
    result = train(cfg, progress=False)
    assert result["status"] == "done" and result["oom_retries"] == 2  # 16 -> 8 -> 4
    assert result["micro_batch_size"] == 4 and result["grad_accum_steps"] == 4
    assert result["config"]["train"]["tokens_per_step"] == 1024 and result["n_tokens"] == 20480
    assert result["run_id"] == run_dir(cfg, run_shape(cfg).n_tokens).name
    assert json.loads((run_dir(cfg, 20480) / "result.json").read_text())["status"] == "done"
    # the same steps as a run asked for micro-batches of 4: the micro-batch changes how, not what
    monkeypatch.setattr(model_module.GPT, "forward", real_forward)
    other = load_run_config(tiny(tmp_path / "b", "train.batch_size=4", "budget.n_tokens=20480"))
    assert train(other, progress=False)["final_val_loss"] == pytest.approx(result["final_val_loss"], abs=2e-3)


def test_out_of_memory_at_a_micro_batch_of_one_fails_the_run(tmp_path, tiny, monkeypatch):
    from sweep.run import model as model_module
    from sweep.run.train import smaller_micro_batch, train

    assert smaller_micro_batch(16, 16) == 8 and smaller_micro_batch(12, 12) == 6 and smaller_micro_batch(12, 6) == 3
    assert smaller_micro_batch(16, 1) is None

    def no_memory(self, idx, targets=None):
        raise torch.OutOfMemoryError("CUDA out of memory (pretended)")

    monkeypatch.setattr(model_module.GPT, "forward", no_memory)
    cfg = load_run_config(tiny(tmp_path, "train.batch_size=2", "budget.n_tokens=4096"))
    with pytest.raises(torch.OutOfMemoryError):
        train(cfg, progress=False)
    assert json.loads((run_dir(cfg, 4096) / "result.json").read_text())["status"] == "failed"


# ----------------------------------------------------------------------------- placement


def test_an_mps_client_names_its_gpu_by_the_daemons_numbering(tmp_path, monkeypatch):
    """A private daemon started under CUDA_VISIBLE_DEVICES=4,5,6,7 (its pipe pretended by a file): a client for
    GPU 6 is given "2"; before, it was given "6" and saw no GPU."""
    import dataclasses

    from sweep.config import RunConfig
    from sweep.ladder.sweep_config import LaunchConfig
    from sweep.launch.mps import DAEMON_DEVICES, client_device
    from sweep.launch.placement import placed

    pipe = tmp_path / "pipe"
    pipe.mkdir()
    (pipe / "control").write_text("")
    env = {"CUDA_MPS_PIPE_DIRECTORY": str(pipe), DAEMON_DEVICES: "4,5,6,7"}
    assert client_device("6", env) == "2" and client_device("4", env) == "0"
    assert client_device("6", {DAEMON_DEVICES: "4,5,6,7"}) == "6"  # no daemon running: physical numbering
    assert client_device("6", {"CUDA_MPS_PIPE_DIRECTORY": str(pipe), DAEMON_DEVICES: ""}) == "6"
    with pytest.raises(ConfigError, match="MPS daemon"):
        client_device("1", env)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    launch = LaunchConfig(gpus=4, runs_per_gpu=4, devices="4,5,6,7", gpu_memory=80 * 2**30)
    cfg = placed(RunConfig(), launch, slot=2, units=1)
    import os

    assert os.environ["CUDA_VISIBLE_DEVICES"] == "2"
    # a packed run is capped at its share of the GPU's memory after the 4 processes' CUDA contexts (1 GiB each)
    assert cfg.train.memory_fraction == pytest.approx((80 - 4) / 80 / 4)
    assert placed(RunConfig(), dataclasses.replace(launch, runs_per_gpu=1), 2).train.memory_fraction is None


def test_batches_are_contiguous_for_pinned_non_blocking_copies():
    import numpy as np

    from sweep.run.batches import Batches

    x, y = Batches(np.arange(10_000, dtype=np.uint16), 64, 8, 2, seed=0).get(3, 1)
    assert x.is_contiguous() and y.is_contiguous() and x.shape == y.shape == (8, 64)
    assert torch.equal(x[:, 1:], y[:, :-1])


def test_divergence_patience_counts_steps_on_every_device():
    """A GPU reads the loss every log_interval (10) steps: 2 checks above the line are 20 steps, not 2 x 20."""
    from sweep.config import TrainConfig
    from sweep.run.checkpoint import Counters
    from sweep.run.loop import _diverged

    t = TrainConfig(diverge_factor=2.0, diverge_patience=20)
    gpu, cpu = Counters(), Counters()
    assert not _diverged(1.0, gpu, t, 10) and not _diverged(5.0, gpu, t, 10) and _diverged(5.0, gpu, t, 10)
    _diverged(1.0, cpu, t)
    assert not any(_diverged(5.0, cpu, t) for _ in range(19)) and _diverged(5.0, cpu, t)


def test_a_job_waiting_for_its_slot_has_not_imported_torch(tmp_path):
    """100 runs on 8 GPUs start 100 jobs at once under the parallel launcher; those waiting for a slot hold a
    light Python process, not torch (about 200 MB each)."""
    code = ("import sys; from sweep.launch.job import hydra_task, run_job; "
            "from sweep.launch.placement import acquire_run_share; "
            "from sweep.ladder.sweep_config import from_omegaconf; assert 'torch' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]


def test_a_box_with_several_gpus_defaults_to_the_parallel_launcher(standin_gpu):
    """An 8-GPU box (the stand-in): the launcher sees 8 H100s through the seam and picks parallel."""
    import sweep.launch.launch as launch
    from sweep.ladder.sweep_config import load_sweep

    standin_gpu(8)
    sc = load_sweep(["experiment=kaplan_model_size_h100"])
    assert launch._device_name(sc) == "cuda:0" and not launch.remote_device(sc)
    launcher, why = launch.choose_launcher(sc, [])
    assert launcher == "parallel" and "8 GPUs" in why and "hydra/launcher=basic" in why
    assert launch.choose_launcher(sc, ["hydra/launcher=basic"]) == ("basic", "")
    assert launch.choose_launcher(sc, ["hydra/launcher=slurm_gpu"]) == ("slurm_gpu", "")


def test_one_gpu_packs_tiny_runs_when_the_rule_says_so(tmp_path, sweep_args, standin_gpu, monkeypatch):
    """A box with one H100 (the stand-in) and 16 host cores: `sweep run` of two tiny runs picks the parallel
    launcher and packs them on the GPU, as the multi-GPU path would, instead of training them one at a time
    under basic. A run that fills the GPU alone keeps basic. Before, one GPU always meant basic."""
    import sweep.launch.launch as launch
    from sweep.ladder.sweep_config import load_sweep

    standin_gpu(1)
    monkeypatch.setattr(launch, "usable_cores", lambda: 16)  # a GPU box's host cores, which this machine lacks
    monkeypatch.chdir(tmp_path)
    args = sweep_args(tmp_path, "run", "train.device=cuda")[4:]  # the overrides, after python -m sweep run
    started = []
    # the multirun is not started: its jobs would be processes without the stand-in
    monkeypatch.setattr(launch, "hydra_multirun", lambda overrides: started.append(overrides) or 0)
    assert launch.run_command(args) == 1  # nothing trained
    (overrides,) = started
    assert "hydra/launcher=parallel" in overrides
    plan = json.loads(Path(next(a for a in overrides if a.startswith("launch.plan="))
                           .split("=", 1)[1].strip("'")).read_text())
    assert plan["launch"]["gpus"] == 1 and plan["launch"]["runs_per_gpu"] > 1
    assert all(r["config"]["train"]["device"] == "cuda" for r in plan["runs"].values())

    sc = load_sweep(["experiment=kaplan_model_size_h100"])
    from sweep.ladder.sweep_config import expand_sweep

    big = [r for r in expand_sweep(sc, 10**10).runs if r.n_params_non_embedding >= 100e6]
    assert big and launch.choose_launcher(sc, [], runs=big[-1:]) == ("basic", "")  # the rule gives it a GPU alone
    assert launch.choose_launcher(sc, []) == ("basic", "")  # no runs to judge by


# ----------------------------------------------------------------------------- on a real GPU (scripts/gpu_check.sh)


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@needs_cuda
def test_a_cuda_run_resumes_from_its_checkpoint(tmp_path, tiny):
    """Killed after its third checkpoint (step 15 of 40) and trained again: it resumes there, on its own GPU's RNG
    state, and ends where an uninterrupted run ends (within bf16 and atomic-add nondeterminism)."""
    from conftest import Interrupt, dies_after_checkpoints
    from sweep.run.shape import run_shape
    from sweep.run.train import train

    gpu = ("train.device=cuda", "train.dtype=bf16", "budget.n_tokens=40960")
    clean = train(load_run_config(tiny(tmp_path / "a", *gpu)), progress=False)
    cfg = load_run_config(tiny(tmp_path / "b", *gpu, "train.checkpoint_interval=5"))
    rdir = run_dir(cfg, run_shape(cfg).n_tokens)
    with dies_after_checkpoints(3), pytest.raises(Interrupt):
        train(cfg, progress=False)
    assert "cuda" in torch.load(rdir / "checkpoint.pt", weights_only=False)["rng"]
    resumed = train(cfg, progress=False)
    assert resumed["status"] == "done" and resumed["device"] == clean["device"]
    assert resumed["final_val_loss"] == pytest.approx(clean["final_val_loss"], rel=1e-2)
    steps = [r["step"] for r in read_jsonl(rdir / "metrics.jsonl") if "train_loss" in r]
    assert steps == sorted(set(steps))


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_two_gpus_each_train_their_own_runs(tmp_path, run_sweep, results):
    """The parallel launcher on 2 GPUs: every run records the GPU it was placed on, and both GPUs are used."""
    proc = run_sweep(tmp_path, "run", "hydra/launcher=parallel", "launch.gpus=2", "launch.runs_per_gpu=1",
                     "train.device=cuda")
    rows = results(tmp_path)
    assert proc.returncode == 0 and rows
    assert {r["cuda_visible_devices"] for r in rows.values()} == {"0", "1"}


def test_gpu_check_script_parses_and_says_why_it_cannot_run_without_cuda():
    script = REPO / "scripts" / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    for path in ("scripts/bench_gpu.py", "tests/test_loss_curve.py", "tests/test_packing.py", "tests/test_gpu_path.py"):
        assert path in script.read_text() and (REPO / path).exists()
    if torch.cuda.is_available():
        pytest.skip("CUDA is here: the script would run for minutes")
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "PYTHON": sys.executable})
    assert out.returncode == 2 and "no CUDA device here" in out.stderr


def test_usable_cores_follow_the_affinity_mask_and_the_cgroup_quota(monkeypatch):
    """Pretend a 64-core machine, an 8-core affinity mask (taskset, SLURM) and a 2-CPU cgroup quota (docker
    --cpus=2): threads and packing use 2, not os.cpu_count()'s 64."""
    from sweep.run import cores

    monkeypatch.setattr(cores.os, "cpu_count", lambda: 64)
    monkeypatch.setattr(cores.os, "sched_getaffinity", lambda pid: set(range(8)))
    real = cores.Path.read_text
    quota = {"value": "200000 100000\n"}
    monkeypatch.setattr(cores.Path, "read_text", lambda self, *a, **k: quota["value"]
                        if str(self) == "/sys/fs/cgroup/cpu.max" else real(self, *a, **k))
    assert cores.usable_cores() == 2
    quota["value"] = "max 100000\n"
    assert cores.usable_cores() == 8


def test_bench_gpu_packs_by_the_memory_free_after_giving_its_cache_back(standin_gpu):
    """An 80 GB GPU (the stand-in) with 12 GB free after the sizes section: the packed sweep is sized for the 12 GB
    free, and the cache is emptied before asking (before, it packed by the 80 GB total and ran out of memory)."""
    sys.path.insert(0, str(REPO / "scripts"))
    import bench_gpu

    from sweep.launch.packing import decide_packing
    from sweep.run import cuda
    from sweep.run.cores import usable_cores

    gpu = standin_gpu(1, free=12 * GiB)
    cuda.resolve("cuda")  # the sizes section has used the GPU: CUDA is initialised, its allocator may cache
    from test_packing import gpu_run

    cfg = gpu_run(5e6)
    assert bench_gpu.runs_per_gpu_now(cfg) == decide_packing([cfg], 12 * GiB, usable_cores()).runs_per_gpu
    assert [c for c in gpu.calls if c[0] in ("empty_cache", "mem_get_info")] == [("empty_cache",), ("mem_get_info", 0)]
    assert decide_packing([cfg], 12 * GiB, usable_cores()).runs_per_gpu < decide_packing(
        [cfg], 80 * GiB, usable_cores()).runs_per_gpu
