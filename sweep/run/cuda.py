"""The one place in `sweep` that calls `torch.cuda`: every question asked of a GPU and every setting given to one.

Why one module: torch checks its CUDA arguments in Python (`set_per_process_memory_fraction` refuses a device
without an index), and a test on a machine without a GPU can only run those checks where the hardware below
them is stood in for. With every call here, a test stands in for `torch._C`'s CUDA functions (tests/gpu_standin.py)
and this module runs torch's own code above them. The rule it keeps: a run's device is resolved once
(`resolve`) to an indexed `cuda:N`, and that device, never a bare `cuda`, is what every later call is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch

OutOfMemoryError = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
"""What a CUDA allocation that does not fit raises."""


def available() -> bool:
    """This process sees at least one CUDA device (initialises nothing)."""
    return torch.cuda.is_available()


def resolve(name: str) -> torch.device:
    """`name` ('cuda' or 'cuda:i') as the indexed device a run trains on: 'cuda' is torch's current device (0
    unless something chose another), and 'cuda:i' must be a visible one. It does not make the device current
    (`use` does, and so creates the device's context)."""
    device = torch.device(name)
    if device.type != "cuda":
        raise ValueError(f"resolve({name!r}): not a CUDA device")
    index = torch.cuda.current_device() if device.index is None else device.index
    n = torch.cuda.device_count()
    if not 0 <= index < n:
        raise ValueError(f"device {name!r}: this process sees {n} CUDA device{'s' if n != 1 else ''} "
                         f"(indices 0..{n - 1}); CUDA_VISIBLE_DEVICES renumbers them from 0")
    return torch.device("cuda", index)


def use(device: torch.device) -> None:
    """Make the run's resolved device this process's current one: kernels and allocations that name no index
    (SDPA's workspaces, torch.compile's CUDA graphs) then land on the run's GPU, not on GPU 0."""
    torch.cuda.set_device(_index(device))


def _index(device: torch.device) -> int:
    """The index of a resolved device; a bare 'cuda' is a bug in the caller, not something to guess."""
    if device.type != "cuda" or device.index is None:
        raise ValueError(f"{device}: a run's CUDA device is resolved to 'cuda:N' before it is used (cuda.resolve)")
    return device.index


def set_memory_fraction(fraction: float, device: torch.device) -> None:
    """Cap torch's allocator on `device` at `fraction` of its memory (a packed run's share): an allocation past
    it raises OutOfMemoryError in this process instead of starving its neighbours."""
    torch.cuda.set_per_process_memory_fraction(float(fraction), _index(device))


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on `device`."""
    torch.cuda.synchronize(_index(device))


def device_name(device: torch.device) -> str:
    """The device's name, e.g. 'NVIDIA H100 80GB HBM3'. A label, so a bare 'cuda' (a benchmark's) names the
    device it resolves to rather than being refused."""
    return torch.cuda.get_device_name(_index(device if device.index is not None else resolve(str(device))))


def rng_state(device: torch.device) -> torch.Tensor:
    """The RNG state of `device`'s default generator."""
    return torch.cuda.get_rng_state(_index(device))


def set_rng_state(state: torch.Tensor, device: torch.device) -> None:
    torch.cuda.set_rng_state(state, _index(device))


def bf16_native(device: torch.device) -> bool:
    """`device` runs bf16 in hardware (compute capability 8.0 and later, or a ROCm GPU). torch's own check asks
    the current device, so the run's device is made current for the question. Without emulation: a V100 or T4
    accepts bf16 tensors and autocast, but emulates the arithmetic, several times slower than its fp32."""
    with torch.cuda.device(_index(device)):
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))


def allow_tf32() -> None:
    """TF32 matmuls and convolutions where a dtype is fp32 (bf16 autocast covers most matmuls anyway)."""
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def empty_cache() -> None:
    """Give the allocator's cached, unused blocks back to the device (after an out-of-memory error)."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def reset_peak(device: torch.device) -> None:
    """Start `device`'s allocator peak afresh, so `peak_allocated` is this run's: torch's peak is since the
    process began, and the basic launcher trains several runs (and a run retried after running out of
    memory trains again) in one process. The allocator exists once CUDA is initialised (`use` does that)."""
    torch.cuda.reset_peak_memory_stats(_index(device))


def peak_allocated(device: torch.device) -> int:
    """The most bytes torch's allocator has held on `device` since `reset_peak` (tensors, not its cache)."""
    return int(torch.cuda.max_memory_allocated(_index(device)))


def memory_info(device: torch.device) -> Tuple[int, int]:
    """(free, total) bytes of `device` as the driver reports them: free counts every process's use."""
    free, total = torch.cuda.mem_get_info(_index(device))
    return int(free), int(total)


def total_memory(index: int) -> int:
    """Total memory of visible device `index`, bytes."""
    return int(torch.cuda.get_device_properties(index).total_memory)


@dataclass(frozen=True)
class Visible:
    """The CUDA devices this process sees."""

    count: int
    memory: Optional[int]
    """Total memory of the smallest, bytes (None without CUDA)."""
    name: str = ""
    """The first one's name."""


def visible() -> Visible:
    """The visible devices (initialises CUDA in this process when there are any)."""
    if not torch.cuda.is_available():
        return Visible(0, None)
    props = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())]
    if not props:
        return Visible(0, None)
    return Visible(len(props), min(int(p.total_memory) for p in props), props[0].name)
