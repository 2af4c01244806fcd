"""How many runs share one GPU: a memory estimate per run, a packing rule, and GPU/MPS detection.

A 1-20M parameter model cannot keep an H100 busy: its steps are short, so per-step fixed costs
(Python, hundreds of kernel launches, the host-to-device batch copy, syncs for logging) leave the
GPU idle much of the time, and its small matmuls fill few of the SMs. Several such runs, each its
own process on the same GPU, fill those gaps, so the sweep's aggregate useful FLOP/s rises; each
run is still an ordinary run (its own result.json and W&B run). With a CUDA MPS daemon the
processes' kernels run side by side; without one the GPU time-slices between them, which still
fills the idle gaps.

Everything here is a pure function of run shapes and numbers passed in, except `detect_gpus`,
which only looks (through sweep/run/cuda.py). CUDA MPS is sweep/launch/mps.py's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

from sweep.config import ModelConfig, RunConfig, micro_batch
from sweep.run.counts import count_params, flops_per_token

GiB = 2**30

STATE_BYTES_PER_PARAM = 4 + 4 + 8 + 2
"""fp32 weights, fp32 gradients, AdamW's two fp32 moments, and the bf16 copy of every weight that
autocast casts once per forward and keeps for the backward pass."""
LOGIT_BYTES_PER_ENTRY = 16
"""Per token and vocabulary entry at the start of the backward pass: bf16 logits (2), the fp32
log-softmax output cross-entropy keeps (4), its gradient and the gradient of its input (4 + 4),
and the bf16 gradient of the logits (2)."""
CUDA_CONTEXT_BYTES = 1 * GiB
"""Per process, outside torch's allocator: the CUDA context (~0.5 GiB on an H100 with lazy module
loading), cuBLAS workspaces and the kernels torch.compile/Triton load."""
MEMORY_SAFETY = 0.85
"""Fraction of a GPU's memory the packed runs may plan to use; the rest absorbs the caching
allocator's rounding and fragmentation, which grows with what each run allocates."""
SATURATING_STEP_FLOPS = 1e13
"""A micro-batch step (forward + backward) of at least this many FLOPs keeps an H100 busy: ~25 ms
at a realistic 400 TFLOP/s, against ~1-3 ms of fixed per-step costs, with matmuls large enough to
fill the SMs. A smaller step leaves the GPU partly idle, and SATURATING_STEP_FLOPS / step FLOPs
runs give it about one saturating step's work at a time. A rule of thumb, not a measurement:
scripts/bench_gpu.py measures packed against one-at-a-time throughput to check it."""
LARGE_MODEL_PARAMS = 100_000_000
"""Non-embedding parameters from which a model always gets a GPU of its own."""
MAX_RUNS_PER_GPU = 8
"""Beyond this, packed processes mostly compete for the same SMs, memory bandwidth and host cores."""


# ----------------------------------------------------------------------------- memory


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak GPU memory of one training process, in bytes, by part."""

    states: int
    """Weights, gradients, AdamW moments and autocast's bf16 weight copies."""
    activations: int
    """What the transformer blocks (and embeddings) keep for backward, for one micro-batch."""
    logits: int
    """Logits, their fp32 log-softmax and gradients, for one micro-batch."""
    context: int
    """CUDA context and workspaces, outside torch's allocator."""

    @property
    def allocated(self) -> int:
        """What torch's allocator holds at the peak (compare with result.json's gpu_peak_allocated_bytes)."""
        return self.states + self.activations + self.logits

    @property
    def total(self) -> int:
        return self.allocated + self.context


def activation_bytes_per_token(model: ModelConfig) -> int:
    """Bytes kept for backward per token, summed over layers, under bf16 autocast with a fused
    SDPA kernel (flash or memory-efficient: no seq_len x seq_len attention matrix is stored).

    Per layer (d = d_model, h = MLP width), what autograd saves:
      4d  LayerNorm-1 input: the residual stream is fp32 (fp32 embeddings; fp32 + bf16 is fp32)
      2d  qkv projection input (autocast's bf16 copy of the LayerNorm output)
      6d  q, k, v (views of the qkv output), kept by SDPA with its fp32 log-sum-exp (4 per head)
      2d  attention output, which is also the output projection's input (flash kernels write it
          in (B, T, heads, head_dim) order, so re-assembling the heads is a view, not a copy)
      4d  LayerNorm-2 input (fp32), 2d MLP up-projection input (bf16)
      2h  GELU input and 2h down-projection input (the GELU output)
      16  the two LayerNorms' fp32 mean and 1/std
    = 20d + 4h + 4 n_head + 16; Korthikanti et al. 2022 count 34d for all-16-bit activations
    with dropout masks and h = 4d (36d here). Outside the blocks: the final LayerNorm's fp32 input
    and statistics, the head's bf16 input (6d + 8) and the int64 token ids (8).

    llama, counted the same way (tests/test_packing.py holds both to what autograd saves):
      16d two RMSNorms, each keeping its fp32 input and fp32 normalised output (x * rstd, for the
          weight's gradient; eager torch has no fused RMSNorm kernel), and 8 for their rstd
      20d attention: the qkv input (2d) and output (6d, kept whole through v, a view of it), the
          rotated q and k (2d + 2d, new tensors), the output (2d) and the projection's input (2d);
          RoPE itself keeps only its cos/sin tables, per sequence position, not per token
      8h  SwiGLU: the gate's output (SiLU's input), SiLU's output, the up projection's output and
          their product (the down projection's input)
    = 36d + 8h + 4 n_head + 8; outside the blocks, the final RMSNorm (8d + 4), the head's input (2d)
    and the token ids (8). torch.compile fuses norms and activations and keeps less: an upper bound.
    """
    d, h = model.d_model, model.mlp_width
    if model.arch == "llama":
        per_layer = 36 * d + 8 * h + 4 * model.n_head + 8
        return model.n_layer * per_layer + 10 * d + 12
    per_layer = 20 * d + 4 * h + 4 * model.n_head + 16
    return model.n_layer * per_layer + 6 * d + 16


def estimate_gpu_memory(model: ModelConfig, vocab_size: int, micro_batch_size: int) -> MemoryEstimate:
    """Peak memory of one run training `model` on micro-batches of `micro_batch_size` sequences.

    The peak is at the start of a backward pass: every activation is still held, and from the
    second micro-batch of a step on (gradient accumulation) so are the gradients."""
    tokens = micro_batch_size * model.seq_len
    n_params = count_params(model, vocab_size)["n_params"]
    return MemoryEstimate(
        states=STATE_BYTES_PER_PARAM * n_params,
        activations=tokens * activation_bytes_per_token(model),
        logits=tokens * vocab_size * LOGIT_BYTES_PER_ENTRY,
        context=CUDA_CONTEXT_BYTES,
    )


def run_gpu_memory(cfg: RunConfig) -> MemoryEstimate:
    """`estimate_gpu_memory` for a run config (its micro-batch as the trainer picks it)."""
    size, _ = micro_batch(cfg)
    return estimate_gpu_memory(cfg.model, cfg.tokenizer.vocab_size, size)


def micro_step_flops(cfg: RunConfig) -> float:
    """Training FLOPs (exact count) of one micro-batch forward + backward."""
    size, _ = micro_batch(cfg)
    return flops_per_token(cfg.model, cfg.tokenizer.vocab_size)["flops_per_token"] * size * cfg.model.seq_len


# ----------------------------------------------------------------------------- packing rule


def runs_by_memory(run_memory: int, gpu_memory: int, safety: float = MEMORY_SAFETY) -> int:
    """How many runs of `run_memory` bytes fit together in `safety` of `gpu_memory` (may be 0)."""
    if run_memory <= 0 or gpu_memory <= 0:
        raise ValueError(f"run_memory={run_memory}, gpu_memory={gpu_memory}: both must be positive")
    return int(safety * gpu_memory // run_memory)


def runs_by_compute(step_flops: float, n_params_non_embedding: int) -> int:
    """How many runs of this size it takes to keep one GPU busy (uncapped)."""
    if n_params_non_embedding >= LARGE_MODEL_PARAMS or step_flops >= SATURATING_STEP_FLOPS:
        return 1
    return math.ceil(SATURATING_STEP_FLOPS / max(step_flops, 1.0))


def runs_per_gpu(run_memory: int, step_flops: float, n_params_non_embedding: int, gpu_memory: int,
                 cpus_per_gpu: Optional[int] = None, max_runs: int = MAX_RUNS_PER_GPU) -> int:
    """Runs to pack on one GPU: as many as the compute rule asks for, at most what fits in memory,
    one host core each (a process drives its GPU from one Python thread) and `max_runs`; at least 1
    (a run too big for the GPU is the plan's check to refuse, not the packer's)."""
    limits = [runs_by_compute(step_flops, n_params_non_embedding), runs_by_memory(run_memory, gpu_memory), max_runs]
    if cpus_per_gpu is not None:
        limits.append(cpus_per_gpu)
    return max(1, min(limits))


@dataclass(frozen=True)
class Packing:
    """A packing decision and the numbers behind it."""

    runs_per_gpu: int
    """Runs sharing each GPU."""
    by_memory: int
    """Runs of the largest memory estimate that fit in MEMORY_SAFETY of the GPU."""
    by_compute: int
    """Runs the compute rule asks for (uncapped)."""
    cpus_per_gpu: Optional[int]
    """Host cores per GPU, when known."""
    memory: MemoryEstimate
    """The largest run's memory estimate."""
    step_flops: float
    """The largest run's FLOPs per micro-batch step."""
    n_params_non_embedding: int
    """The largest run's non-embedding parameters."""
    gpu_memory: int
    """Total memory of one GPU, bytes."""
    per_run: tuple = ()
    """Runs per GPU the rule gives each run on its own (in the order given); the smallest runs' is the
    sweep's runs per GPU, and a larger run takes a bigger share of one (gpu_units)."""

    @property
    def capacity(self) -> int:
        """Runs per GPU of the sweep's smallest runs: the units each GPU is divided into."""
        return max(self.per_run or (self.runs_per_gpu,))

    @property
    def reason(self) -> str:
        """Which limit set runs_per_gpu, in words."""
        if self.n_params_non_embedding >= LARGE_MODEL_PARAMS:
            why = (f"largest run: {self.n_params_non_embedding / 1e6:.0f}M >= {LARGE_MODEL_PARAMS / 1e6:.0f}M "
                   f"non-embedding parameters, a GPU each")
        elif self.by_compute == 1:
            why = (f"largest run's micro-batch step {self.step_flops:.2g} FLOPs >= {SATURATING_STEP_FLOPS:.0e}: "
                   f"fills a GPU")
        else:
            why = (f"largest run's micro-batch step {self.step_flops:.2g} FLOPs < {SATURATING_STEP_FLOPS:.0e}: "
                   f"{self.by_compute} runs fill a GPU")
        mem = (f"{self.by_memory} fit in {MEMORY_SAFETY:.0%} of {self.gpu_memory / GiB:.0f} GiB at "
               f"{self.memory.total / GiB:.2f} GiB each")
        limits = [why, mem]
        if self.runs_per_gpu == MAX_RUNS_PER_GPU and min(self.by_compute, self.by_memory) > MAX_RUNS_PER_GPU:
            limits.append(f"capped at {MAX_RUNS_PER_GPU}")
        if self.cpus_per_gpu is not None and self.cpus_per_gpu < min(self.by_compute, self.by_memory, MAX_RUNS_PER_GPU):
            limits.append(f"{self.cpus_per_gpu} host core{'s' if self.cpus_per_gpu > 1 else ''} per GPU")
        if self.by_memory == 0:
            limits.append("the largest run does not fit on its own")
        return "; ".join(limits)


def decide_packing(runs: Sequence[RunConfig], gpu_memory: int, cpus_per_gpu: Optional[int] = None) -> Packing:
    """The rule applied to a sweep: `runs_per_gpu` for its most demanding run (any mix of its runs
    fits at that count), and `per_run`, each run's own count, from which the launcher gives larger
    runs a bigger share of a GPU than small ones (gpu_units)."""
    if not runs:
        raise ValueError("decide_packing: no runs to pack")
    memories = [run_gpu_memory(r).total for r in runs]
    flops = [micro_step_flops(r) for r in runs]
    n_nes = [count_params(r.model, r.tokenizer.vocab_size)["n_params_non_embedding"] for r in runs]
    per_run = tuple(runs_per_gpu(m, f, n, gpu_memory, cpus_per_gpu) for m, f, n in zip(memories, flops, n_nes))
    memory = run_gpu_memory(runs[max(range(len(runs)), key=memories.__getitem__)])
    step_flops, n_ne = max(flops), max(n_nes)
    by_memory = runs_by_memory(memory.total, gpu_memory)
    by_compute = runs_by_compute(step_flops, n_ne)
    k = runs_per_gpu(memory.total, step_flops, n_ne, gpu_memory, cpus_per_gpu)
    return Packing(k, by_memory, by_compute, cpus_per_gpu, memory, step_flops, n_ne, gpu_memory, per_run)


def gpu_units(run: RunConfig, capacity: int, gpu_memory: int, cpus_per_gpu: Optional[int] = None) -> int:
    """Units of a GPU (of `capacity`, the sweep's runs per GPU for its smallest runs) that `run` takes.

    The rule would pack k runs like this one to a GPU, so it takes ceil(capacity / k) units: at most
    k of them share a GPU, and a GPU holds any mix of runs whose units add up to `capacity` (each
    takes at least 1/k of its memory budget). A run that fills a GPU alone takes all of it."""
    k = decide_packing([run], gpu_memory, cpus_per_gpu).runs_per_gpu
    return min(capacity, math.ceil(capacity / k))


def memory_fraction(units: int, capacity: int, gpu_memory: int, context: int = CUDA_CONTEXT_BYTES) -> float:
    """The share of a GPU's memory torch's allocator may hold in a run taking `units` of its `capacity` slots.

    Each slot is 1/capacity of the card, and the run's process spends one CUDA context (with cuBLAS and Triton
    workspaces, outside torch's allocator) of its slots' part: the cap is units/capacity of the card less one
    context. torch applies the fraction to the card's total and counts the allocator's cached blocks in it.

    Why this and not the slots' part of the card less `capacity` contexts: both keep the caps and contexts of
    any mix of runs on a full GPU within it (slots add up to at most `capacity`, and every process there holds
    one context), but only this one never caps a run below what the packing rule lets it allocate. The rule
    packs k runs like it to a GPU when each needs at most MEMORY_SAFETY * G / k with its context, and gives it
    ceil(capacity / k) slots, so its cap, at least G / k less a context, is above that for every k and card.
    Taking `capacity` contexts off instead left a run alone on its GPU (every slot) capped as if the card held
    `capacity` processes: 16 GiB of a 24 GiB card for a run the rule had let allocate 17."""
    if capacity < 1 or not 1 <= units <= capacity or gpu_memory <= 0:
        raise ValueError(f"memory_fraction(units={units}, capacity={capacity}, gpu_memory={gpu_memory})")
    # never below a tenth of the slots' part: a GPU too small for its contexts is the packing rule's to refuse
    return min(1.0, max(units / capacity - context / gpu_memory, units / (10 * capacity)))


# ----------------------------------------------------------------------------- detection


@dataclass(frozen=True)
class GpuInfo:
    """The CUDA GPUs this process sees."""

    count: int
    """Number of visible GPUs (0 without CUDA)."""
    memory: Optional[int]
    """Total memory of the smallest of them, bytes (None without CUDA)."""
    name: str = ""
    """Device name of the first, e.g. 'NVIDIA H100 80GB HBM3'."""


def detect_gpus() -> GpuInfo:
    """The visible CUDA GPUs (initialises CUDA in this process when there are any)."""
    from sweep.run import cuda

    seen = cuda.visible()
    return GpuInfo(seen.count, seen.memory, seen.name)
