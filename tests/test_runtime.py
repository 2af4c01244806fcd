"""The compute dtype: bf16 on a CUDA GPU with bf16 units, on a CPU only where it is measured faster; resume keeps it."""

import json

import pytest
import torch

from sweep.run import runtime
from sweep.cli import load_run_config
from sweep.config import TrainConfig
from sweep.store.results import run_dir
from sweep.run.shape import run_shape
from sweep.run.train import train

from conftest import SHAKESPEARE  # the checked-in 310 kB of tinyshakespeare
from gpu_standin import standin_gpu  # noqa: F401  (a fixture)

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize("speedup, expected", [(0.0, torch.float32), (0.9, torch.float32), (1.15, torch.float32),
                                               (1.2, torch.bfloat16), (4.0, torch.bfloat16)])
def test_auto_on_cpu_takes_bf16_only_where_it_is_measured_faster(monkeypatch, speedup, expected):
    asked = []
    monkeypatch.setattr(runtime, "cpu_bf16_speedup", lambda *shape: asked.append(shape) or speedup)
    assert runtime.compute_dtype(TrainConfig(dtype="auto"), CPU, 768, 128, 64, 4) == expected
    assert asked == [(768, 128, 64, 4)]  # measured at the run's own block shape


def test_explicit_dtype_and_cuda_never_measure(monkeypatch):
    def fail(*_):
        raise AssertionError("measured a CPU matmul where the dtype was already decided")

    monkeypatch.setattr(runtime, "cpu_bf16_speedup", fail)
    assert runtime.compute_dtype(TrainConfig(dtype="fp32"), CPU) == torch.float32
    assert runtime.compute_dtype(TrainConfig(dtype="bf16"), CPU) == torch.bfloat16
    assert runtime.compute_dtype(TrainConfig(dtype="fp32"), CUDA) == torch.float32
    assert runtime.compute_dtype(TrainConfig(dtype="bf16"), CUDA) == torch.bfloat16


@pytest.mark.parametrize("name, major, expected", [("NVIDIA H100 80GB HBM3", 9, torch.bfloat16),
                                                   ("NVIDIA A100-SXM4-80GB", 8, torch.bfloat16),
                                                   ("Tesla V100-SXM2-32GB", 7, torch.float32),
                                                   ("Tesla T4", 7, torch.float32)])
def test_auto_on_cuda_takes_bf16_only_where_the_gpu_has_bf16_units(standin_gpu, monkeypatch, name, major, expected):
    """On the stand-in GPU (tests/gpu_standin.py): torch's own capability check for the run's device, without
    emulation. Before, 'auto' picked bf16 on any CUDA GPU, and a V100 or T4 trained in emulated bf16 (the
    stand-in's tensors are on the host, where an emulated bf16 tensor would be accepted: the check with
    emulation says True there too)."""
    monkeypatch.setattr(runtime, "cpu_bf16_speedup", lambda *_: pytest.fail("timed a CPU block for a GPU run"))
    gpu = standin_gpu(2, name=name, major=major)
    assert runtime.compute_dtype(TrainConfig(dtype="auto"), torch.device("cuda", 1)) == expected
    assert gpu.called("get_device_properties") == [(1,)]  # the run's own GPU was asked
    assert torch.cuda.current_device() == 0  # and the current device is left as it was


def test_speedup_is_not_measured_on_a_cpu_without_bf16_units(monkeypatch):
    runtime.cpu_bf16_speedup.cache_clear()
    monkeypatch.setattr(runtime, "cpu_has_bf16_units", lambda: False)
    monkeypatch.setattr(torch.nn.functional, "linear", lambda *_: pytest.fail("timed a matmul"))
    try:
        assert runtime.cpu_bf16_speedup(64, 32) == 0.0
    finally:
        runtime.cpu_bf16_speedup.cache_clear()


def test_speedup_is_fp32_time_over_bf16_time_of_a_block_measured_once(monkeypatch):
    runtime.cpu_bf16_speedup.cache_clear()
    monkeypatch.setattr(runtime, "cpu_has_bf16_units", lambda: True)
    timed = []

    def fastest(fn, device, repeats):
        out = fn()  # the timed call runs a real block forward and backward
        assert out.shape[1:] == (64, 32)  # (rows / seq_len, seq_len, width)
        timed.append(fn.dtype)
        return {torch.float32: 3.0, torch.bfloat16: 1.2}[fn.dtype]

    monkeypatch.setattr(runtime, "fastest_seconds", fastest)
    try:
        assert runtime.cpu_bf16_speedup(256, 32, 64, 2) == pytest.approx(2.5)
        assert runtime.cpu_bf16_speedup(256, 32, 64, 2) == pytest.approx(2.5) and len(timed) == 2  # cached
        assert timed == [torch.float32, torch.bfloat16]
        runtime.cpu_bf16_speedup(512, 32, 64, 2)
        assert len(timed) == 4  # per shape
    finally:
        runtime.cpu_bf16_speedup.cache_clear()


def test_dtype_names():
    assert runtime.dtype_name(torch.bfloat16) == "bf16" and runtime.dtype_name(torch.float32) == "fp32"


def test_resumed_run_keeps_the_dtype_it_started_with(tmp_path, monkeypatch):
    """A run that chose bf16 resumes in bf16 even where the machine now answers fp32 (another host,
    a busy core during the measurement): mixing dtypes would break bit-exact resume."""
    def overrides(root, *extra):
        return [f"results_dir={root}", f"data.cache_dir={tmp_path / 'cache'}", "sweep_name=t", "data.source=files",
                f"data.path={SHAKESPEARE}", "data.max_bytes=100000", "data.val_tokens=2048", "tokenizer=byte",
                "model.n_layer=1", "model.d_model=32", "model.n_head=2", "model.seq_len=32", "train.batch_size=8",
                "train.tokens_per_step=256", "train.threads=1", "budget.n_tokens=5120", "logger.mode=disabled",
                *extra]

    from sweep.run import checkpoint

    monkeypatch.setattr(runtime, "cpu_bf16_speedup", lambda rows, width, *shape: 2.0)
    clean = train(load_run_config(overrides(tmp_path / "a")), progress=False)
    assert clean["dtype"] == "bf16"

    cfg = load_run_config(overrides(tmp_path / "b", "train.checkpoint_interval=8"))
    original = checkpoint.save

    class Crash(Exception):
        pass

    def crash(path, state):
        original(path, state)
        raise Crash  # dies right after the step-8 checkpoint is on disk

    monkeypatch.setattr(checkpoint, "save", crash)
    with pytest.raises(Crash):
        train(cfg, progress=False)
    monkeypatch.setattr(checkpoint, "save", original)
    ckpt = torch.load(run_dir(cfg, run_shape(cfg).n_tokens) / "checkpoint.pt", weights_only=True)
    assert ckpt["dtype"] == "bf16" and ckpt["step"] == 8

    monkeypatch.setattr(runtime, "cpu_bf16_speedup", lambda rows, width, *shape: 0.5)  # the machine now says fp32
    resumed = train(cfg, progress=False)
    assert resumed["dtype"] == "bf16"
    assert resumed["final_val_loss"] == clean["final_val_loss"]  # bit-exact: the same dtype throughout
    result = json.loads((run_dir(cfg, run_shape(cfg).n_tokens) / "result.json").read_text())
    assert result["dtype"] == "bf16"

    fresh = train(load_run_config(overrides(tmp_path / "c")), progress=False)
    assert fresh["dtype"] == "fp32" and fresh["final_val_loss"] != clean["final_val_loss"]


def test_a_checkpoint_keeps_only_its_own_gpus_rng_and_resumes_with_fewer_gpus_visible(monkeypatch):
    """On stand-in GPUs (tests/gpu_standin.py): a run checkpointed on cuda:5 where 8 GPUs were visible resumes
    where the parallel launcher shows it one. Restoring every saved GPU state (the old rule) raised IndexError."""
    import torch

    from gpu_standin import StandInGpu
    from sweep.run import cuda, runtime

    if torch.cuda.is_initialized():
        pytest.skip("real CUDA is in use in this process")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with StandInGpu(8).installed() as box:
        device = runtime.pick_device(TrainConfig(device="cuda:5"))
        cuda.use(device)  # as the run's setup does: CUDA is initialised, cuda:5 current
        box.generators[5].real.manual_seed(55)  # the run's own GPU's state differs from the others'
        saved = runtime.rng_state(device)
        assert [index for index, _ in box.called("get_rng_state")] == [5]  # its own device's state, not all eight
        assert torch.equal(saved["cuda"], box.generators[5].real.get_state())
        old = {**saved, "cuda": [g.real.get_state() for g in box.generators]}  # a checkpoint by the old rule
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")  # resumed where it is the only GPU, numbered 0
    with StandInGpu(8).installed() as box:
        device = runtime.pick_device(TrainConfig(device="cuda"))
        assert device == torch.device("cuda", 0)
        runtime.set_rng_state(saved, device)
        runtime.set_rng_state(old, device)
        restored = box.called("set_rng_state")
        assert [index for index, _ in restored] == [0, 0]
        assert torch.equal(restored[0][1], saved["cuda"]) and torch.equal(restored[1][1], old["cuda"][0])
        with pytest.raises(ValueError, match="resolved to 'cuda:N'"):
            runtime.set_rng_state(saved, torch.device("cuda"))  # a device never resolved is refused, not guessed
        assert "cuda" not in runtime.rng_state(torch.device("cpu"))
        runtime.set_rng_state(old, torch.device("cpu"))  # a CUDA checkpoint resumed on CPU: CPU states only
        assert len(box.called("set_rng_state")) == 2
