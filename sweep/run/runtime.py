"""Where and how a run executes: device, precision, threads, determinism, provenance."""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import random
import subprocess
import time
from pathlib import Path

from typing import Optional

import numpy as np
import torch

from sweep.config import ConfigError, TrainConfig
from sweep.run import cuda
from sweep.run.cores import usable_cores


def pick_device(train: TrainConfig) -> torch.device:
    """The device a run trains on: CUDA when asked for (or when 'auto' finds it), as an indexed `cuda:N`
    (cuda.resolve), else the CPU. Resolved once per run; every CUDA call after it is given this device.

    A run that asks for CUDA where there is none is refused, never moved to the CPU in silence: an
    experiment sized for a GPU (train=gpu sets train.device=cuda) would train for days on a CPU
    thread, and the device is not in the run id, so its result would join the sweep."""
    if train.device == "auto":
        return cuda.resolve("cuda") if cuda.available() else torch.device("cpu")
    if train.device.startswith("cuda"):
        if not cuda.available():
            raise ConfigError(f"train.device={train.device!r}: {no_cuda_here()}. This run is sized for a GPU and is "
                              f"not trained on a CPU unless asked: run it on a GPU node (under SLURM, "
                              f"hydra/launcher=slurm_gpu or hydra.launcher.gpus_per_task=1), or pass train.device=cpu")
        try:
            return cuda.resolve(train.device)
        except ValueError as exc:
            raise ConfigError(f"train.device={train.device!r}: {exc}") from None
    return torch.device(train.device)


def no_cuda_here() -> str:
    """Why this process sees no CUDA device, in words: the host, and the variables that hide GPUs."""
    where = f"this machine ({platform.node() or 'unknown host'}) has no CUDA device"
    if os.environ.get("SLURM_JOB_ID"):
        where = f"SLURM job {os.environ['SLURM_JOB_ID']} on {platform.node() or 'its node'} was given no GPU"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        where += f" (CUDA_VISIBLE_DEVICES={visible!r} hides every GPU)"
    return where


DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
"""train.dtype names (and the names result.json and checkpoints record) of the compute dtypes."""


def compute_dtype(train: TrainConfig, device: torch.device, rows: int = 1024, width: int = 512,
                  seq_len: int = 64, n_head: int = 0) -> torch.dtype:
    """The dtype matmuls run in: `train.dtype` when set; for 'auto', bf16 autocast on a CUDA GPU that runs bf16
    natively (Ampere and later, cuda.bf16_native) and fp32 on an older one, and on a CPU only where bf16 is
    measured at least 1.2x faster on one transformer block of the run's shape, forward and backward
    (`cpu_bf16_speedup`). The result's `dtype` field records the choice.

    CPUs with AMX or AVX512-BF16 run bf16 matmuls several times faster than fp32; elsewhere bf16 is
    emulated and several times slower, so it is never tried there (and nothing is timed). A GPU without
    bf16 units (V100, T4) would emulate it too; this code has no fp16-with-loss-scaling path, so such a GPU
    trains in fp32."""
    if train.dtype != "auto":
        return DTYPES[train.dtype]
    if device.type == "cuda":
        return torch.bfloat16 if cuda.bf16_native(device) else torch.float32
    return torch.bfloat16 if cpu_bf16_speedup(rows, width, seq_len, n_head) >= 1.2 else torch.float32


def cpu_has_bf16_units() -> bool:
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


@functools.lru_cache(maxsize=None)
def cpu_bf16_speedup(rows: int, width: int, seq_len: int = 64, n_head: int = 0, repeats: int = 3) -> float:
    """fp32 time over bf16-autocast time of one transformer block (attention and MLP, with their norms) on
    `rows` tokens of width `width` in sequences of `seq_len`, forward and backward, on this CPU; 0 where the
    CPU has no bf16 units.

    A whole block, not one matmul: autocast's casts, the fp32 norms and softmax, attention at a small head
    dimension and the backward pass can eat all of a faster matmul. On nanoGPT's CPU baby GPT (4 x 128,
    768 tokens a micro-batch) a matmul alone ran 1.7x faster in bf16 on AMX while a block ran at 0.7x,
    and whole training steps at 0.74-0.78x; a GPT-2-small block runs about 2x faster."""
    if not cpu_has_bf16_units():
        return 0.0
    from sweep.config import ModelConfig
    from sweep.run.model import Block

    seq_len = max(1, min(seq_len, rows))
    heads = n_head or max(1, width // 64)
    torch.manual_seed(0)
    block = Block(ModelConfig(n_layer=1, d_model=width, n_head=heads, seq_len=seq_len))
    x = torch.randn(max(1, rows // seq_len), seq_len, width, requires_grad=True)
    cpu = torch.device("cpu")

    def step(dtype):
        def run():
            with autocast(dtype, cpu):
                out = block(x)
            out.float().sum().backward()
            return out
        run.dtype = dtype  # which side a timing is, for a test that replaces the timer
        return run

    fp32 = fastest_seconds(step(torch.float32), cpu, repeats)
    bf16 = fastest_seconds(step(torch.bfloat16), cpu, repeats)
    return fp32 / max(bf16, 1e-12)


def fastest_seconds(fn, device: torch.device, repeats: int) -> float:
    """Wall seconds of the fastest of `repeats` calls of fn, after one untimed call that pays for
    kernel selection and warm caches (CUDA work is waited for)."""
    best = float("inf")
    for i in range(repeats + 1):
        if device.type == "cuda":
            cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            cuda.synchronize(device)
        if i > 0:
            best = min(best, time.perf_counter() - t0)
    return best


def dtype_name(dtype: torch.dtype) -> str:
    return next(name for name, value in DTYPES.items() if value == dtype)


def autocast(dtype: torch.dtype, device: torch.device):
    """Autocast to bf16 when that is the compute dtype; fp32 runs as is."""
    if dtype == torch.bfloat16:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def free_cores(sample_seconds: float = 0.2) -> int:
    """Cores idle right now among those this process may use.

    Two runs that each take every core of a small machine slow each other down many times over,
    so the thread count follows what is actually idle, measured from /proc/stat.
    """
    allowed = usable_cores()  # affinity and cgroup quota, not the whole machine

    def snapshot():
        with open("/proc/stat") as f:
            fields = [float(x) for x in f.readline().split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, total

    try:
        idle0, total0 = snapshot()
        time.sleep(sample_seconds)
        idle1, total1 = snapshot()
    except (OSError, ValueError, IndexError):
        return allowed
    n_cpu = os.cpu_count() or allowed
    idle_cores = n_cpu * (idle1 - idle0) / max(total1 - total0, 1e-9)
    return max(1, min(allowed, int(idle_cores + 0.5)))


def set_threads(train: TrainConfig, device: torch.device, previous: int | None = None) -> int:
    """Thread count: explicit, else the checkpoint's (bit-exact resume), else the idle cores."""
    n = train.threads or previous or (free_cores() if device.type == "cpu" else 4)
    torch.set_num_threads(n)
    return n


def set_determinism(seed: int, device: Optional[torch.device] = None) -> None:
    """Every seed and switch that makes a run repeatable on one device (TF32 on a CUDA one: ~8x the fp32
    matmul rate on Ampere and later)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    if device is not None and device.type == "cuda":
        cuda.allow_tf32()


def rng_state(device: Optional[torch.device] = None) -> dict:
    """The RNG states a checkpoint keeps: CPU ones, and the run's own CUDA device's only (a run trains on one
    device, and the GPUs visible when it resumes may be fewer or numbered otherwise)."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    np_state = np.random.get_state()
    state["numpy"] = [np_state[0], np_state[1].tolist(), *np_state[2:]]
    if device is not None and device.type == "cuda":
        state["cuda"] = cuda.rng_state(device)
    return state


def set_rng_state(state: dict, device: Optional[torch.device] = None) -> None:
    """Restore what rng_state saved; the CUDA state goes to the run's device, whichever GPU that is now. A
    checkpoint from before this rule holds every visible GPU's state: the first is the run's (a run trained on
    its first visible device)."""
    torch.set_rng_state(state["torch"])
    random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in state["python"]))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), *rest))
    saved = state.get("cuda")
    if saved is not None and device is not None and device.type == "cuda":
        if isinstance(saved, (list, tuple)):
            if not saved:
                return
            saved = saved[0]
        cuda.set_rng_state(saved, device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return cuda.device_name(device)
    return platform.processor() or platform.machine() or "cpu"


def code_version() -> str:
    """The git commit of the code (with '-dirty' when modified), or 'unknown' outside a checkout."""
    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha + ("-dirty" if dirty else "")) if sha else "unknown"


# Dense (not sparse) bf16 tensor-core peaks in FLOP/s from the vendors' data sheets, by device-name substring; the
# longest matching name wins ("H100 NVL" over "H100", "L40S" over "L4", "H200" over "H20"), so a variant whose peak
# differs from its family's needs its own entry ("H200 NVL", "GB200").
PEAK_BF16_FLOPS = {
    "GB200": 2500e12,
    "B200": 2250e12,
    "B100": 1750e12,
    "H200 NVL": 835e12,
    "H200": 989.5e12,
    "H100 NVL": 835e12,
    "H100 PCIe": 756e12,
    "H100": 989.5e12,
    "H800 PCIe": 756e12,
    "H800": 989.5e12,
    "H20": 148e12,
    "A100": 312e12,
    "A800": 312e12,
    "L40S": 362e12,
    "L40": 181e12,
    "L4": 121e12,
    "A10G": 125e12,
    "RTX 4090": 165e12,
}


def peak_flops(device_label: str) -> float | None:
    """The device's dense bf16 datasheet peak, when it is a known whole GPU; None otherwise. A MIG slice
    ("... MIG 1g.10gb") has a fraction of its GPU's units, so its peak is measured, not looked up."""
    if "MIG" in device_label:
        return None
    known = [key for key in PEAK_BF16_FLOPS if key in device_label]
    return PEAK_BF16_FLOPS[max(known, key=len)] if known else None


def synchronizer(device: torch.device):
    """A function that waits for the device's queued work (a no-op on a CPU, where work is synchronous)."""
    if device.type == "cuda":
        return lambda: cuda.synchronize(device)
    return lambda: None


@functools.lru_cache(maxsize=None)
def _measured_peak(device: str, dtype: torch.dtype, threads: int, size: int, inner: int, repeats: int) -> float:
    device = torch.device(device)
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)

    def matmuls():
        for _ in range(inner):
            torch.matmul(a, b, out=out)

    return inner * 2 * size**3 / fastest_seconds(matmuls, device, repeats)


def measured_peak_flops(device: torch.device, dtype: torch.dtype, repeats: int = 3) -> float:
    """FLOP/s of the fastest of a few timed batches of square matmuls in `dtype`: the peak of a device missing
    from PEAK_BF16_FLOPS (a CPU, a new GPU, a MIG slice), or of an fp32 run (TF32 on a GPU). It is an achieved
    peak, below the datasheet's, so MFU against it reads higher; results record which peak was used.

    On a GPU: 8192^3 matmuls, 8 between two syncs, so kernel launches and the sync are a small part of the
    time (one 1024^3 matmul is mostly launch time on an H100). On a CPU, 1024^3 at the run's thread count.
    Measured once per process."""
    gpu = device.type == "cuda"
    return _measured_peak(str(device), dtype, torch.get_num_threads(), 8192 if gpu else 1024, 8 if gpu else 1,
                          repeats)


def peak_for(device: torch.device, dtype: torch.dtype, label: str) -> tuple:
    """(peak FLOP/s, where it came from) for a run's MFU: the datasheet for a bf16 run on a known GPU, else a
    matmul measured in the run's own dtype (an fp32 run is never held against the bf16 peak).

    The measurement's operands (three 8192^2 matrices on a GPU) may not fit under a packed run's memory cap,
    on a small MIG slice in particular: then no peak (MFU None), since the run itself has finished and an
    out-of-memory error here must not send it back to train again at a smaller micro-batch."""
    if dtype == torch.bfloat16:
        datasheet = peak_flops(label)
        if datasheet is not None:
            return datasheet, "datasheet (dense bf16)"
    try:
        return measured_peak_flops(device, dtype), f"measured {dtype_name(dtype)} matmul"
    except cuda.OutOfMemoryError:
        cuda.empty_cache()
        return None, f"not measured: the {dtype_name(dtype)} matmul ran out of device memory"


def mfu(tokens_per_second: float, flops_per_token: float, peak: float | None) -> float | None:
    """FLOPs utilisation: tokens_per_second x flops_per_token over `peak` (None when no peak is known)."""
    return None if not peak else tokens_per_second * flops_per_token / peak
