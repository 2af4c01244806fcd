"""A stand-in for CUDA GPUs on a machine without one, for tests of the GPU path.

It replaces only what touches hardware, and torch's own Python above it runs as on a GPU box: `torch.cuda`'s
argument checks (`_get_device_index`), lazy initialisation, queued seeding, device-count caching and the RNG
and memory calls. What it replaces:
  - `torch._C._cuda_*` functions (device count, current device, set/exchange device, memory fraction,
    synchronize, allocator statistics and the reset of their peak, empty cache, init) and the aliases
    torch.cuda binds to two of them at import (`_exchange_device`, `_maybe_exchange_device`);
  - what `_cuda_init` would install: `torch.cuda.default_generators` (a CPU generator per device) and
    `torch.cuda._get_device_properties`;
  - the CUDA runtime handle `torch.cuda._cudart` (only `cudaMemGetInfo` is asked of it) and the NVML device
    count (NVML reads the driver);
  - device memory itself: a torch function mode keeps tensors placed on `cuda:N` in host memory and makes
    pinning a no-op, so a run's real code trains on the CPU while it believes it is on `cuda:N`.
`is_available` and `device_count` are torch's: they see the stand-in's `_cuda_getDeviceCount`. The visible
devices follow CUDA_VISIBLE_DEVICES as the driver does (renumbered from 0), read once, at the first call that
reaches the stand-in, as cuInit reads it once per process: a variable set after the first question is not seen.

What it does not exercise, because the work runs on the host: autocast('cuda') never casts (the tensors are CPU
tensors), so a bf16 run computes in fp32 and a test can check the dtype the run chose and records, not the one
its matmuls ran in; fused AdamW, SDPA and every other kernel take their CPU paths; copies marked non_blocking
are synchronous; torch.compile generates CPU code and no CUDA graphs; the memory cap is recorded, never
enforced (a test that wants an out-of-memory error raises torch's), and the allocator's peak is whatever the
test sets (`peak_allocated`, `earlier_peak`).

Every call that reaches the hardware layer is recorded in `calls` as (name, *arguments), so a test asserts
what torch would have asked of a real GPU: the memory fraction and the device index it was given, which
device was made current, which generator was read and restored.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import types
from typing import Iterator, List, Optional

import pytest
import torch
from torch.overrides import TorchFunctionMode

GiB = 2**30


def _host(device):
    """A CUDA device named in a tensor call, as the host device the stand-in keeps its memory on."""
    if isinstance(device, torch.device) and device.type == "cuda":
        return torch.device("cpu")
    if isinstance(device, str) and device.startswith("cuda"):
        return torch.device("cpu")
    return device


class HostMemory(TorchFunctionMode):
    """Tensors placed on a CUDA device live in host memory; pinning host memory is a no-op."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if "device" in kwargs:
            kwargs["device"] = _host(kwargs["device"])
        name = getattr(func, "__name__", "")
        if name == "pin_memory":
            return args[0]
        if name == "is_pinned":
            return True
        if name == "cuda":
            return args[0]
        if name == "to":
            args = tuple(_host(a) if isinstance(a, (torch.device, str)) else a for a in args)
        return func(*args, **kwargs)


class _Generator:
    """One device's default generator: a CPU generator whose reads and writes are recorded."""

    def __init__(self, gpu: "StandInGpu", index: int):
        self.gpu, self.index, self.real = gpu, index, torch.Generator()
        self.real.manual_seed(1000 + index)

    def get_state(self) -> torch.Tensor:
        state = self.real.get_state()
        self.gpu.calls.append(("get_rng_state", self.index, state.clone()))
        return state

    def set_state(self, state: torch.Tensor) -> None:
        self.gpu.calls.append(("set_rng_state", self.index, state.clone()))
        self.real.set_state(state)

    def manual_seed(self, seed: int):
        self.gpu.calls.append(("manual_seed", self.index, int(seed)))
        self.real.manual_seed(seed)
        return self

    def initial_seed(self) -> int:
        return self.real.initial_seed()

    def seed(self) -> int:
        return self.real.seed()


class StandInGpu:
    """`physical` GPUs of `total_memory` bytes named `name` (CUDA capability `major`.0), `free` bytes free each."""

    def __init__(self, physical: int = 1, total_memory: int = 80 * GiB, name: str = "NVIDIA H100 80GB HBM3",
                 free: Optional[int] = None, peak_allocated: int = 3 * GiB, major: int = 9, earlier_peak: int = 0):
        self.physical, self.total_memory, self.name, self.major = physical, total_memory, name, major
        self.free = total_memory - GiB // 2 if free is None else free
        self.peak_allocated = peak_allocated
        """The allocator's peak for what the process allocates (tensors stay on the host: a test sets it)."""
        self.earlier_peak = earlier_peak
        """A peak reached before (an earlier run in the same process), reported until the peak is reset."""
        self.calls: List[tuple] = []
        self.current = 0
        self._visible: Optional[int] = None
        self.generators: List[_Generator] = []

    # -- what a test reads back

    def called(self, name: str) -> List[tuple]:
        """The recorded calls named `name`, without their name."""
        return [c[1:] for c in self.calls if c[0] == name]

    # -- the hardware layer

    def visible(self) -> int:
        """Devices the driver shows this process: CUDA_VISIBLE_DEVICES's valid leading entries, or all, as the
        variable was at the first call (the driver reads it once, when it initialises)."""
        if self._visible is None:
            self._visible = self._visible_in_env()
        return self._visible

    def _visible_in_env(self) -> int:
        env = os.environ.get("CUDA_VISIBLE_DEVICES")
        if env is None:
            return self.physical
        n = 0
        for entry in env.split(","):
            entry = entry.strip()
            if not entry.isdigit() or int(entry) >= self.physical:
                break  # the driver stops at the first entry it cannot use
            n += 1
        return n

    def _check(self, index: int) -> None:
        if not 0 <= index < self.visible():
            raise RuntimeError(f"CUDA error: invalid device ordinal (device {index}, {self.visible()} visible)")

    def _cuda_getDeviceCount(self) -> int:
        return self.visible()

    def _cuda_init(self) -> None:
        n = self.visible()
        if n == 0:
            raise RuntimeError("No CUDA GPUs are available")
        self.calls.append(("init", n))
        self.generators = [_Generator(self, i) for i in range(n)]
        torch.cuda.default_generators = tuple(self.generators)
        torch.cuda._get_device_properties = self._properties

    def _properties(self, index: int):
        self._check(index)
        self.calls.append(("get_device_properties", index))
        return types.SimpleNamespace(name=self.name, total_memory=self.total_memory, major=self.major, minor=0,
                                     multi_processor_count=132, L2_cache_size=50 * 2**20, is_integrated=False,
                                     warp_size=32, gcnArchName="NVIDIA CUDA")

    # torch's C functions for the current device initialise CUDA first (torch::utils::device_lazy_init)

    def _cuda_getDevice(self) -> int:
        torch.cuda._lazy_init()
        return self.current

    def _cuda_setDevice(self, index: int) -> None:
        torch.cuda._lazy_init()
        self._check(index)
        self.calls.append(("set_device", index))
        self.current = index

    def _exchange(self, index: int) -> int:
        previous = self.current
        if index >= 0:
            torch.cuda._lazy_init()
            self._check(index)
            self.current = index
        return previous

    def _cuda_exchangeDevice(self, index: int) -> int:
        return self._exchange(index)

    def _cuda_maybeExchangeDevice(self, index: int) -> int:
        return self._exchange(index)

    def _cuda_setMemoryFraction(self, fraction: float, index: int) -> None:
        self._check(index)
        self.calls.append(("set_memory_fraction", fraction, index))

    def _cuda_getMemoryFraction(self, index: int) -> float:
        fractions = [f for f, i in self.called("set_memory_fraction") if i == index]
        return fractions[-1] if fractions else 1.0

    def _cuda_synchronize(self) -> None:
        self.calls.append(("synchronize", self.current))

    def _cuda_emptyCache(self) -> None:
        self.calls.append(("empty_cache",))

    def _cuda_memoryStats(self, index: int) -> dict:
        self._check(index)
        self.calls.append(("memory_stats", index))
        return {"allocated_bytes": {"all": {"peak": max(self.peak_allocated, self.earlier_peak), "current": 0}}}

    def _cuda_resetPeakMemoryStats(self, index: int) -> None:
        # the caching allocator's per-device state exists only once CUDA is initialised
        if not torch.cuda.is_initialized():
            raise RuntimeError(f"Invalid device argument {index}: did you call init?")
        self._check(index)
        self.calls.append(("reset_peak_memory_stats", index))
        self.earlier_peak = 0

    def _mem_get_info(self, index: int):
        self._check(index)
        self.calls.append(("mem_get_info", index))
        return self.free, self.total_memory

    # -- putting it in place

    @contextlib.contextmanager
    def installed(self) -> Iterator["StandInGpu"]:
        """The stand-in in place for the block; torch's CUDA state as it was afterwards."""
        if torch.cuda.is_initialized():
            raise RuntimeError("real CUDA is initialised in this process: the stand-in would replace a live GPU")
        # Modules that decide at import whether this torch was built with CUDA (dynamo's device interfaces
        # import CUDA stream functions) are imported first, against the real build.
        for module in ("torch._dynamo", "torch._inductor.utils"):
            importlib.import_module(module)

        cuda = torch.cuda
        undo = []

        def put(owner, name, value):
            undo.append((owner, name, getattr(owner, name, _MISSING)))
            setattr(owner, name, value)

        for name in ("_cuda_getDeviceCount", "_cuda_init", "_cuda_getDevice", "_cuda_setDevice",
                     "_cuda_setMemoryFraction", "_cuda_getMemoryFraction", "_cuda_synchronize",
                     "_cuda_emptyCache", "_cuda_memoryStats", "_cuda_resetPeakMemoryStats"):
            put(torch._C, name, getattr(self, name))
        # two functions, not one: dynamo keys a handler on each
        put(torch._C, "_cuda_exchangeDevice", self._cuda_exchangeDevice)
        put(torch._C, "_cuda_maybeExchangeDevice", self._cuda_maybeExchangeDevice)
        put(cuda, "_exchange_device", self._cuda_exchangeDevice)
        put(cuda, "_maybe_exchange_device", self._cuda_maybeExchangeDevice)
        put(cuda, "_cudart", types.SimpleNamespace(cudaMemGetInfo=self._mem_get_info))
        put(cuda, "_device_count_nvml", lambda: -1)
        # torch's lazy-initialisation state, fresh, so the stand-in is initialised as a GPU would be
        put(cuda, "_initialized", False)
        put(cuda, "_queued_calls", [])
        put(cuda, "_lazy_seed_tracker", type(cuda._lazy_seed_tracker)())
        put(cuda, "_cached_device_count", None)
        put(cuda, "default_generators", ())
        put(cuda, "_get_device_properties", None)
        mode = HostMemory()
        mode.__enter__()
        try:
            yield self
        finally:
            mode.__exit__(None, None, None)
            for owner, name, value in reversed(undo):
                if value is _MISSING:
                    delattr(owner, name)
                else:
                    setattr(owner, name, value)


_MISSING = object()


@pytest.fixture
def standin_gpu(monkeypatch):
    """standin_gpu(physical=1, ...): a StandInGpu in place until the test ends (CUDA_VISIBLE_DEVICES restored)."""
    if torch.cuda.is_initialized():
        pytest.skip("real CUDA is in use in this process")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    stack = contextlib.ExitStack()

    def make(physical: int = 1, **kwargs) -> StandInGpu:
        return stack.enter_context(StandInGpu(physical, **kwargs).installed())

    with stack:
        yield make
