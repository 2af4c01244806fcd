"""A sweep's plan: the table of runs with N, D and C, totals, an estimated wall time from a short
throughput probe on this device, and the checks that refuse a plan before anything starts.

`plan_table`, `plan_totals`, `check_plan` and `estimate_memory` are pure; `probe_throughput`
times a few optimizer steps of real models on random tokens.
"""

from __future__ import annotations

import dataclasses

import math
import os
import time
from dataclasses import dataclass
from typing import Dict, List, Optional

from sweep.config import micro_batch
from sweep.ladder.planned import PlannedRun
from sweep.store.results import human


@dataclass
class Totals:
    """Sums over a plan."""

    n_runs: int
    """Number of runs."""
    n_tokens: int
    """Training tokens summed over runs."""
    flops: float
    """Exact training FLOPs summed over runs."""
    flops_6nd: float
    """6ND summed over runs."""
    seconds: Optional[float]
    """Estimated wall time of the runs one after another (None without a probe)."""


def duration(seconds: Optional[float]) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


# ----------------------------------------------------------------------------- checks


def estimate_memory(run: PlannedRun, attention_scores: bool = True) -> int:
    """Peak training memory in bytes, a deliberate over-estimate.

    fp32 weights, gradients and AdamW's two moments (16 bytes per parameter), plus activations of
    one micro-batch: about 34 * d_model values per token per layer (Korthikanti et al. 2022's count
    in 16-bit, doubled here for fp32), the attention scores (n_head * seq_len per token per layer)
    unless a fused kernel never stores them (flash attention on CUDA), and the logits with their
    fp32 copy and gradient (3 * vocab values per token).
    """
    m = run.cfg.model
    vocab = run.cfg.tokenizer.vocab_size
    size, _ = micro_batch(run.cfg)
    tokens = size * m.seq_len
    per_layer = tokens * (34 * m.d_model * 2 + (4 * m.n_head * m.seq_len if attention_scores else 0))
    logits = tokens * vocab * 3 * 4
    return int(16 * run.n_params + m.n_layer * per_layer + logits)


def available_memory(device: str) -> int:
    """Bytes one run may use on `device` ('cpu' or 'cuda[:i]')."""
    if device.startswith("cuda"):
        from sweep.run import cuda

        index = int(device.split(":")[1]) if ":" in device else 0
        return cuda.total_memory(index)
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def check_plan(runs: List[PlannedRun], n_train_tokens: Optional[int], memory_bytes: Optional[int],
               device: str = "cpu") -> List[str]:
    """Reasons the plan cannot run (empty when it can): each names the run and the fix.

    `n_train_tokens` or `memory_bytes` None skips that check; `device` ('cpu', 'cuda') decides
    whether attention scores count towards memory."""
    problems = []
    if not runs:
        problems.append("the grid has no runs left: widen the budgets or sizes, lower experiment.min_steps, "
                        "or use a bigger corpus")
    for r in runs:
        tps = r.cfg.train.tokens_per_step
        if r.steps < 1:
            problems.append(f"run {r.index} {r.run_name}: budget too small for one optimizer step of "
                            f"train.tokens_per_step={tps} tokens: raise the budget or lower train.tokens_per_step")
        if n_train_tokens is not None and r.n_tokens > n_train_tokens and not r.cfg.data.allow_repeat:
            problems.append(f"run {r.index} {r.run_name}: needs D={human(r.n_tokens)} tokens but the corpus has "
                            f"{human(n_train_tokens)} train tokens: lower the budget or use a bigger corpus")
        if memory_bytes is not None:
            need = estimate_memory(r, attention_scores=not device.startswith("cuda"))
            if need > memory_bytes:
                problems.append(f"run {r.index} {r.run_name}: needs about {need / 2**30:.1f} GiB, the device has "
                                f"{memory_bytes / 2**30:.1f} GiB: lower train.batch_size (gradient accumulation "
                                f"keeps tokens per step) or the model size")
    return problems


# ----------------------------------------------------------------------------- throughput probe


def _shape_key(run: PlannedRun) -> tuple:
    m = run.cfg.model
    return (m.n_layer, m.d_model, m.n_head, m.seq_len)


def probe_throughput(runs: List[PlannedRun], steps: int = 10, max_shapes: int = 3,
                     threads: Optional[int] = None) -> Dict[tuple, float]:
    """FLOP/s measured on this device for up to `max_shapes` shapes (smallest, middle, largest).

    Each probe builds the model as the trainer does (compiled when train.compile, fused AdamW over the same
    parameter groups), runs two warm-up micro-batch steps (compilation), then times `steps` micro-batch
    forward/backward/AdamW steps on random tokens. Other shapes are interpolated in log FLOPs per token.
    """
    import torch

    from sweep.run import runtime
    from sweep.run.model import GPT

    by_shape = {}
    for r in sorted(runs, key=lambda r: r.flops_per_token):
        by_shape.setdefault(_shape_key(r), r)
    chosen = list(by_shape.values())
    if len(chosen) > max_shapes:
        idx = sorted({round(i * (len(chosen) - 1) / (max_shapes - 1)) for i in range(max_shapes)})
        chosen = [chosen[i] for i in idx]
    measured = {}
    for r in chosen:
        cfg = r.cfg
        if threads is not None:  # as a job of the parallel launcher will run: its share of the cores
            cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, threads=threads))
        device = runtime.pick_device(cfg.train)
        # the trainer's thread choice: a busy core in the pool slows every step many times over
        runtime.set_threads(cfg.train, device)
        vocab = cfg.tokenizer.vocab_size
        model = GPT(cfg.model, vocab).to(device)
        opt = torch.optim.AdamW(model.param_groups(cfg.train.weight_decay), lr=1e-4, fused=True)
        if cfg.train.compile:
            torch._dynamo.reset()
        forward = torch.compile(model, mode=cfg.train.compile_mode) if cfg.train.compile else model
        size, _ = micro_batch(cfg)
        x = torch.randint(0, vocab, (size, cfg.model.seq_len), device=device)
        dtype = runtime.compute_dtype(cfg.train, device, size * cfg.model.seq_len, cfg.model.d_model,
                                      cfg.model.seq_len, cfg.model.n_head)
        with runtime.autocast(dtype, device):
            def step():
                _, loss = forward(x, x)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)

            sync = runtime.synchronizer(device)
            step()
            step()
            sync()
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            sync()
            dt = time.perf_counter() - t0
        measured[_shape_key(r)] = r.flops_per_token * size * cfg.model.seq_len * steps / max(dt, 1e-9)
        del model, opt, forward
    return measured


def estimate_seconds(runs: List[PlannedRun], flops_per_second: Dict[tuple, float]) -> List[Optional[float]]:
    """Each run's wall time from probed FLOP/s, interpolated in log FLOPs per token."""
    if not flops_per_second:
        return [None] * len(runs)
    known = {}
    for r in runs:
        if _shape_key(r) in flops_per_second:
            known[math.log(r.flops_per_token)] = flops_per_second[_shape_key(r)]
    xs = sorted(known)
    out = []
    for r in runs:
        x = math.log(r.flops_per_token)
        if _shape_key(r) in flops_per_second:
            speed = flops_per_second[_shape_key(r)]
        elif x <= xs[0]:
            speed = known[xs[0]]
        elif x >= xs[-1]:
            speed = known[xs[-1]]
        else:
            hi = next(i for i, v in enumerate(xs) if v >= x)
            x0, x1 = xs[hi - 1], xs[hi]
            w = (x - x0) / (x1 - x0)
            speed = math.exp((1 - w) * math.log(known[x0]) + w * math.log(known[x1]))
        out.append(r.flops / speed + RUN_OVERHEAD_S)
    return out


MAIN_VERIFY_MULTIPLE = 5.0
"""`sweep main` verifies at this multiple of the sweep's largest compute: what a CPU main job can afford
(the verification run then costs about a third of the whole job); `sweep verify` defaults to 10x."""

RUN_OVERHEAD_S = 4.0
"""Seconds a CPU run spends outside its training steps (start-up, opening the token files, evaluations, the
final checkpoint), measured on the default ladder's runs; added to every run's estimate."""


def schedule_seconds(runs: List[PlannedRun], seconds: List[float], slots: int) -> float:
    """Wall time of the runs on `slots` slots, longest first (the parallel launcher's queue order), one wave per
    budget of an adaptive ladder (a wave starts when the previous one is done)."""
    waves: Dict[object, List[float]] = {}
    adaptive = any("centred_by" in r.cfg.meta for r in runs)
    for r, sec in zip(runs, seconds):
        waves.setdefault(r.cfg.meta.get("budget_index") if adaptive else 0, []).append(sec)
    total = 0.0
    for secs in waves.values():
        free = [0.0] * max(1, slots)
        for sec in sorted(secs, reverse=True):
            i = free.index(min(free))
            free[i] += sec
        total += max(free)
    return total


# ----------------------------------------------------------------------------- table


def plan_totals(runs: List[PlannedRun], seconds: Optional[List[Optional[float]]] = None) -> Totals:
    secs = None
    if seconds and all(s is not None for s in seconds):
        secs = float(sum(seconds))
    return Totals(n_runs=len(runs), n_tokens=sum(r.n_tokens for r in runs), flops=sum(r.flops for r in runs),
                  flops_6nd=sum(r.flops_6nd for r in runs), seconds=secs)


def plan_table(runs: List[PlannedRun], seconds: Optional[List[Optional[float]]] = None) -> str:
    """One line per run: shape, N (total and non-embedding), D, C (6ND and exact), D/N, peak LR, tokens per
    step (batch), steps, time."""
    seconds = seconds or [None] * len(runs)
    head = (f"{'#':>3} {'run':<22} {'L':>3} {'d':>5} {'h':>3} {'N':>7} {'N_ne':>7} {'D':>7} "
            f"{'C_6ND':>9} {'C':>9} {'D/N':>7} {'lr':>8} {'batch':>6} {'steps':>6} {'time':>6}  grid")
    lines = [head, "-" * len(head)]
    for r, s in zip(runs, seconds):
        m = r.cfg.model
        coords = {k: v for k, v in r.cfg.meta.items() if k in ("budget_flops", "target_params_non_embedding",
                                                                 "target_params", "tokens_per_param_target",
                                                                 "n_tokens_target", "seed", "lr_multiplier", "depth_offset",
                                                                 "size_role")}
        grid = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in coords.items())
        lines.append(f"{r.index:>3} {r.run_name:<22} {m.n_layer:>3} {m.d_model:>5} {m.n_head:>3} "
                     f"{human(r.n_params):>7} {human(r.n_params_non_embedding):>7} {human(r.n_tokens):>7} "
                     f"{r.flops_6nd:>9.3g} {r.flops:>9.3g} {r.tokens_per_param:>7.1f} {r.cfg.train.lr:>8.3g} "
                     f"{r.cfg.train.tokens_per_step:>6} {r.steps:>6} "
                     f"{duration(s):>6}  {grid}")
    t = plan_totals(runs, seconds)
    lines.append("-" * len(head))
    lines.append(f"total: {t.n_runs} runs, D={human(t.n_tokens)} tokens, C={t.flops:.3g} FLOPs exact "
                 f"({t.flops_6nd:.3g} as 6ND), estimated wall time {duration(t.seconds)} one run at a time")
    return "\n".join(lines)
