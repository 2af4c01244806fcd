"""The GPU contract: what a run's real code asks of torch's CUDA layer, on a CPU, through one seam.

No GPU here, so tests/gpu_standin.py stands in for the hardware layer only (`torch._C`'s CUDA functions, the
CUDA runtime handle, device memory kept on the host); everything above it is the real code: the launcher's
placement and slots, the job, the run's setup, torch.cuda's own argument checks, checkpoints and the result.
Each test asserts what torch would have been called with on a GPU box: the memory fraction and its device
index, the current device, the generator read and restored, where a checkpoint is loaded, and the speed and
MFU fields.
"""

from __future__ import annotations

import json
import os

import pytest
import torch

from gpu_standin import GiB, StandInGpu, standin_gpu  # noqa: F401  (standin_gpu is a fixture)
from sweep.cli import load_run_config
from sweep.run.model import executed_flops_per_token
from sweep.store.results import read_jsonl, run_dir

H100_PEAK = 989.5e12


def assert_speed_and_mfu(result: dict, gpu: StandInGpu, fpt: float) -> None:
    """The result's speed fields from a meter that waited for the device, and MFU on the datasheet peak of the
    device the stand-in named. `dtype` is the compute dtype the run chose and records (bf16 on a GPU with bf16
    units), not the one its matmuls ran in: the stand-in keeps tensors on the host, where autocast('cuda')
    never casts."""
    assert result["device"] == gpu.name and result["dtype"] == "bf16"
    assert result["peak_flops"] == H100_PEAK and result["peak_flops_source"] == "datasheet (dense bf16)"
    tps = result["tokens_per_second"]
    assert tps > 0 and result["tokens_per_second_wall"] > 0 and result["warmup_seconds"] > 0
    assert "after the first 2" in result["tokens_per_second_counts"]
    assert result["mfu"] == pytest.approx(tps * result["executed_flops_per_token"] / H100_PEAK)
    assert result["mfu_chinchilla_flops"] == pytest.approx(tps * fpt / H100_PEAK)
    assert result["gpu_peak_allocated_bytes"] == gpu.peak_allocated


def test_only_the_seam_calls_torch_cuda():
    """sweep/run/cuda.py is the one module of the package that reaches torch.cuda (an attribute of it, or an
    import of it), so the stand-in has one seam to stand behind."""
    import ast
    from pathlib import Path

    package = Path(__file__).resolve().parents[1] / "sweep"
    seam = package / "run" / "cuda.py"
    callers = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "cuda" and isinstance(node.value, ast.Name) \
                    and node.value.id == "torch":
                callers.add(path)
            elif isinstance(node, ast.Import) and any(a.name.startswith("torch.cuda") for a in node.names):
                callers.add(path)
            elif isinstance(node, ast.ImportFrom) and node.module and (
                    node.module.startswith("torch.cuda") or node.module == "torch"
                    and any(a.name == "cuda" for a in node.names)):
                callers.add(path)
    assert callers == {seam}, sorted(str(p.relative_to(package)) for p in callers - {seam})


def test_the_standin_runs_torchs_own_argument_checks(standin_gpu):
    """torch refuses a memory fraction for a device without an index (the crash every packed run hit); the
    seam refuses it before torch does, and passes the index of a resolved device."""
    from sweep.run import cuda

    gpu = standin_gpu(2)
    with pytest.raises(ValueError, match="Expected a torch.device with a specified index or an integer"):
        torch.cuda.set_per_process_memory_fraction(0.5, torch.device("cuda"))
    with pytest.raises(TypeError, match="must be `float`"):
        torch.cuda.set_per_process_memory_fraction(1, 0)
    with pytest.raises(ValueError, match="resolved to 'cuda:N'"):
        cuda.set_memory_fraction(0.5, torch.device("cuda"))
    assert cuda.resolve("cuda") == torch.device("cuda", 0) and cuda.resolve("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match="sees 2 CUDA devices"):
        cuda.resolve("cuda:2")
    cuda.set_memory_fraction(1, cuda.resolve("cuda:1"))  # an int share of a whole card is a float to torch
    assert gpu.called("set_memory_fraction") == [(1.0, 1)]
    assert cuda.memory_info(torch.device("cuda", 1)) == (gpu.free, gpu.total_memory)


def test_the_standin_reads_cuda_visible_devices_once_as_the_driver_does(standin_gpu, monkeypatch):
    """cuInit reads CUDA_VISIBLE_DEVICES once per process: once anything has asked (is_available, device_count),
    setting the variable changes nothing. A stand-in that re-read it on every call would let the code ask before
    placement pins the run's GPU and still pass, where a real job would see every GPU and train on GPU 0."""
    from sweep.run import cuda

    gpu = standin_gpu(4)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert cuda.available() and torch.cuda.device_count() == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")  # too late: the driver has read it
    assert torch._C._cuda_getDeviceCount() == 2 and torch.cuda.device_count() == 2
    assert cuda.visible().count == 2 and cuda.resolve("cuda:1") == torch.device("cuda", 1)
    assert gpu.called("init") == [(2,)]


# ----------------------------------------------------------------------------- a packed run


def test_a_packed_job_trains_with_its_share_of_its_gpu(tmp_path, tiny, standin_gpu, monkeypatch):
    """The parallel launcher's job on a box of 4 H100s, given GPU 3: placement picks the packing and the GPU,
    the job takes its slot, and the run caps its allocator at its share of GPU 3, which it sees as cuda:0. The
    caps of a full GPU leave every packed process's CUDA context room. Before, the run's setup gave torch a
    bare 'cuda' and every packed run failed there."""
    from sweep.launch.job import run_job, write_job_plan
    from sweep.launch.packing import CUDA_CONTEXT_BYTES, GpuInfo
    from sweep.launch import placement
    from sweep.launch.placement import resolve_launch, share_units
    from sweep.ladder.grid import planned_run
    from sweep.ladder.sweep_config import LaunchConfig, load_sweep
    from sweep.run.counts import flops_per_token

    gpu = standin_gpu(4)
    monkeypatch.setattr(placement, "usable_cores", lambda: 16)  # a GPU box's host cores, which this one lacks
    cfg = load_run_config(tiny(tmp_path, "train.device=cuda", "budget.n_tokens=16384"))
    run = planned_run(0, cfg, cfg.model, 16, cfg.tokenizer.vocab_size, {})
    launch, packing = resolve_launch(LaunchConfig(devices="3"), [run], GpuInfo(4, gpu.total_memory, gpu.name), 16)
    capacity = launch.runs_per_gpu
    assert launch.gpus == 1 and capacity == packing.capacity > 1 and launch.gpu_memory == gpu.total_memory
    units = share_units(run.cfg, launch)
    assert units == 1  # the sweep's smallest run: one slot
    plan = tmp_path / "wave-0.json"
    write_job_plan(plan, [run], launch)

    monkeypatch.setenv("SUBMITIT_LOCAL_JOB_ID", "1")  # as submitit's local executor starts a job
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    out = run_job(load_sweep([f"results_dir={tmp_path / 'results'}", "run_index=0", f"launch.plan={plan}"]))
    assert out["status"] == "done", out
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"

    # its slots' part of what the card holds besides every packed process's CUDA context
    share = units * (gpu.total_memory - capacity * CUDA_CONTEXT_BYTES) / (capacity * gpu.total_memory)
    assert gpu.called("set_memory_fraction") == [(pytest.approx(share), 0)]  # the fraction, for the one device it sees
    assert ("set_device", 0) in gpu.calls
    # the caps of a full GPU leave each of its processes' CUDA contexts outside them
    assert capacity * (share * gpu.total_memory + CUDA_CONTEXT_BYTES) <= gpu.total_memory
    assert {index for (index,) in gpu.called("synchronize")} == {0} and len(gpu.called("synchronize")) >= 2
    result = json.loads((run_dir(run.cfg, run.n_tokens) / "result.json").read_text())
    assert result["cuda_visible_devices"] == "3"
    assert result["config"]["train"]["memory_fraction"] == pytest.approx(share)
    assert result["threads"] == 1  # as the run asked
    assert_speed_and_mfu(result, gpu, flops_per_token(run.cfg.model, run.cfg.tokenizer.vocab_size)["flops_per_token"])
    rows = [r for r in read_jsonl(run_dir(run.cfg, run.n_tokens) / "metrics.jsonl") if "train_loss" in r]
    assert rows and all(0 < r["mfu"] < 1 for r in rows)  # a bf16 run on a known GPU: MFU on every log row


# ----------------------------------------------------------------------------- a resumed run


def _as_written_on(path, location: str, monkeypatch) -> None:
    """Rewrite a checkpoint as a run on another box's `location` would have written it: its tensors tagged
    with that device, as torch.save tags a GPU tensor."""
    import torch.serialization as serialization

    state = torch.load(path, map_location="cpu", weights_only=True)
    with monkeypatch.context() as m:
        m.setattr(serialization, "location_tag", lambda storage: location)
        torch.save(state, path)


def test_a_resumed_run_restores_its_own_gpus_rng_and_loads_a_checkpoint_from_any_gpu(tmp_path, tiny, standin_gpu,
                                                                                      monkeypatch):
    """train.device=cuda:1 on a box showing 2 GPUs: the run makes cuda:1 current, saves cuda:1's generator state,
    and, killed after its second checkpoint, resumes from a checkpoint whose tensors say they were on another
    box's GPU 3 (map_location='cpu'), restoring cuda:1's generator, never cuda:0's, and ending exactly where an
    uninterrupted run ends."""
    from conftest import Interrupt, dies_after_checkpoints
    from sweep.run.shape import run_shape
    from sweep.run.train import train

    gpu = standin_gpu(2)
    args = ("train.device=cuda:1", "budget.n_tokens=20480")
    clean = train(load_run_config(tiny(tmp_path / "a", *args)), progress=False)
    cfg = load_run_config(tiny(tmp_path / "b", *args, "train.checkpoint_interval=5"))
    rdir = run_dir(cfg, run_shape(cfg).n_tokens)
    gpu.calls.clear()
    with dies_after_checkpoints(2), pytest.raises(Interrupt):
        train(cfg, progress=False)
    ckpt = torch.load(rdir / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert ckpt["step"] == 10
    saved = [state for index, state in gpu.called("get_rng_state")]
    assert {index for index, _ in gpu.called("get_rng_state")} == {1}
    assert torch.equal(ckpt["rng"]["cuda"], saved[-1])  # the state at the checkpoint, of the run's own GPU

    _as_written_on(rdir / "checkpoint.pt", "cuda:3", monkeypatch)
    with pytest.raises(RuntimeError, match="CUDA device 3"):  # what loading it where it was written would do
        torch.load(rdir / "checkpoint.pt", weights_only=True)
    gpu.calls.clear()
    resumed = train(cfg, progress=False)
    assert resumed["status"] == "done" and resumed["steps_done"] == 20
    restored = gpu.called("set_rng_state")
    assert [index for index, _ in restored] == [1] and torch.equal(restored[0][1], ckpt["rng"]["cuda"])
    assert ("set_device", 1) in gpu.calls and ("set_device", 0) not in gpu.calls
    assert {index for (index,) in gpu.called("synchronize")} == {1}
    assert gpu.called("set_memory_fraction") == []  # a run alone on its GPU is not capped
    assert resumed["final_val_loss"] == clean["final_val_loss"]
    assert resumed["device"] == clean["device"] == gpu.name


# ----------------------------------------------------------------------------- a compiled run


@pytest.mark.slow  # inductor compiles the step for the CPU: a minute or two on a small machine
def test_a_compiled_packed_run_caps_its_memory_and_reports_steady_speed(tmp_path, tiny, standin_gpu, monkeypatch):
    """train.compile=true, packed two to a GPU by placement: the compiled model trains on the resolved device,
    its compile time is warm-up (outside the steady tokens/s), and its memory cap is set before the model is
    built."""
    import dataclasses

    from sweep.ladder.sweep_config import LaunchConfig
    from sweep.launch.packing import CUDA_CONTEXT_BYTES
    from sweep.launch.placement import placed
    from sweep.run.train import train

    gpu = standin_gpu(1)
    monkeypatch.delenv("TORCHINDUCTOR_COMPILE_THREADS", raising=False)
    cfg = load_run_config(tiny(tmp_path, "train.device=cuda", "train.compile=true", "budget.n_tokens=12288"))
    launch = LaunchConfig(gpus=1, runs_per_gpu=2, gpu_memory=gpu.total_memory)
    cfg = placed(cfg, launch, slot=0, units=1)
    assert cfg.train.memory_fraction == pytest.approx((gpu.total_memory - 2 * CUDA_CONTEXT_BYTES) / (2 * gpu.total_memory))
    result = train(cfg, progress=False)
    assert result["status"] == "done"
    first = [c[0] for c in gpu.calls]
    assert first.index("set_memory_fraction") < first.index("manual_seed")  # capped before anything is allocated
    assert gpu.called("set_memory_fraction") == [(cfg.train.memory_fraction, 0)]
    assert os.environ["TORCHINDUCTOR_COMPILE_THREADS"] == str(result["threads"])
    # compilation is in warm-up: the steady speed is well above the whole wall's
    assert result["tokens_per_second"] > 2 * result["tokens_per_second_wall"]
    assert_speed_and_mfu(result, gpu, run_fpt(cfg))
    assert result["executed_flops_per_token"] == executed_flops_per_token(cfg.model, cfg.tokenizer.vocab_size)


def run_fpt(cfg) -> float:
    from sweep.run.counts import flops_per_token

    return flops_per_token(cfg.model, cfg.tokenizer.vocab_size)["flops_per_token"]
