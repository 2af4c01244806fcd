"""The training loop of one run: set-up, optimizer steps, logging, evaluation and checkpoints, to the final loss.

Why one module of ~300 lines: the steps share one `Loop` state and must keep their order exactly (bit-exact
resume); what to train and where the result goes is train.py's, checkpoints checkpoint.py's, the schedule
schedule.py's and devices runtime.py's.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from tqdm.auto import tqdm

from sweep.config import RunConfig, micro_batch
from sweep.run import checkpoint, cuda, runtime
from sweep.run.batches import Batches
from sweep.run.evaluate import evaluate
from sweep.run.model import GPT, executed_flops_per_token
from sweep.run.preempt import Preempted, StopRequest
from sweep.run.schedule import lr_factor
from sweep.run.shape import RunShape
from sweep.run.speed import SpeedMeter
from sweep.store import results as store
from sweep.store.runs import RunFolder, Status


def _write_progress(rdir: Path, step: int, steps: int, train_loss: float) -> None:
    """progress.json: where a running or interrupted run stands, for `sweep status` and the sweep's bar."""
    RunFolder(rdir).write_progress({"step": step, "steps": steps, "pid": os.getpid(), "train_loss": train_loss,
                                    "time": time.time()})


OUT_OF_MEMORY = cuda.OutOfMemoryError


class MicroBatchTooLarge(Exception):
    """A step ran out of device memory at this micro-batch size (the out-of-memory error is its cause)."""

    def __init__(self, micro_size: int):
        super().__init__(f"out of memory at a micro-batch of {micro_size} sequences")
        self.micro_size = micro_size


@dataclass
class Loop:
    """What one training run's steps share: built once by `_setup`, read by the step functions."""

    model: GPT
    step_model: torch.nn.Module
    """The model the steps call: compiled when train.compile is set."""
    optimizer: torch.optim.Optimizer
    counters: checkpoint.Counters
    device: torch.device
    threads: int
    dtype: torch.dtype
    ctx: object
    """The autocast context of the run's compute dtype."""
    micro_size: int
    accum: int
    graphs: bool
    """CUDA graphs (compile modes reduce-overhead / max-autotune): each optimizer step is marked."""


def _inductor_compile_threads(threads: int) -> None:
    """How many workers torch.compile's inductor compiles with: the run's own threads (it defaults to every core
    of the machine, in each packed job), and inside a SLURM job one, in the run's own process.

    SLURM signals every process of a job step (SIGTERM, and the USR2 warning before the time limit that stops a
    run as Preempted), and inductor's worker pool ignores only SIGINT: a signal during the first step's compile
    would kill the workers and fail the run instead of stopping it. Inductor reads the variable when its config
    is first imported, which a run's compile does after this; where an earlier run of this process imported it,
    the SLURM setting is given to the config as well. Inside SLURM it overrides a value exported by the shell
    that submitted the job (sbatch passes the environment on)."""
    if os.environ.get("SLURM_JOB_ID"):
        os.environ["TORCHINDUCTOR_COMPILE_THREADS"] = "1"
        config = sys.modules.get("torch._inductor.config")
        if config is not None:
            config.compile_threads = 1
    else:
        os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", str(threads))


def _setup(cfg: RunConfig, shape: RunShape, data, folder: RunFolder, micro_cap: Optional[int] = None,
           device: Optional[torch.device] = None) -> Loop:
    """Device, threads, model, optimizer; the checkpoint's (or a WSD branch point's) state when there is one.
    `micro_cap`: at most this many sequences per micro-batch (after an out-of-memory error). `device`: the run's,
    as runtime.pick_device resolved it (cuda:N, never a bare cuda: torch's memory-fraction call needs the
    index); resolved here when not given."""
    t = cfg.train
    device = device if device is not None else runtime.pick_device(t)
    if device.type == "cuda":
        cuda.use(device)
        cuda.reset_peak(device)  # result.json's gpu_peak_allocated_bytes is this run's, not the process's
        if t.memory_fraction:
            cuda.set_memory_fraction(t.memory_fraction, device)
    ckpt = checkpoint.load(folder.checkpoint_path)
    if ckpt is None and t.init_from:
        ckpt = checkpoint.load_branch_point(Path(t.init_from), shape.steps, t)
    threads = runtime.set_threads(t, device, previous=ckpt["threads"] if ckpt else None)
    if t.compile:
        _inductor_compile_threads(threads)
    runtime.set_determinism(t.seed, device)

    model = GPT(cfg.model, shape.vocab_size).to(device)
    fused = device.type in ("cuda", "cpu")  # one fused kernel per step instead of a loop over tensors
    optimizer = torch.optim.AdamW(model.param_groups(t.weight_decay), lr=t.lr, betas=(t.beta1, t.beta2),
                                  fused=fused)
    counters = checkpoint.Counters()
    if ckpt is not None:
        checkpoint.check_same_data(ckpt, data, folder.checkpoint_path, folder.path)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        runtime.set_rng_state(ckpt["rng"], device)
        counters = checkpoint.counters(ckpt)
        store.truncate_metrics(folder.metrics_path, counters.step)
        print(f"[sweep] resuming {folder.path.name} at step {counters.step}/{shape.steps}", file=sys.stderr)
    elif folder.metrics_path.exists():
        folder.metrics_path.unlink()  # a crash before the first checkpoint: start the curve again
    if t.compile:
        # A fresh cache for each run: in one process (the basic launcher) dynamo would otherwise run
        # every shape after its recompile_limit (8) eagerly, saying so only in a log warning.
        torch._dynamo.reset()
    step_model = torch.compile(model, mode=t.compile_mode) if t.compile else model
    micro_size = micro_batch(cfg)[0]
    if ckpt is not None and ckpt.get("micro_batch_size"):  # the size that fitted (after an out-of-memory retry)
        micro_size = int(ckpt["micro_batch_size"])
    if micro_cap is not None and micro_cap < micro_size:
        micro_size = micro_cap
    accum = cfg.train.tokens_per_step // cfg.model.seq_len // micro_size
    # A resumed run keeps the dtype it started with, as it keeps its thread count: bit-exact resume.
    dtype = (runtime.DTYPES[ckpt["dtype"]] if ckpt and "dtype" in ckpt
             else runtime.compute_dtype(t, device, micro_size * cfg.model.seq_len, cfg.model.d_model,
                                           cfg.model.seq_len, cfg.model.n_head))
    # CUDA graphs replay into the same memory: a new step tells them the last step's outputs are dead.
    # Once per optimizer step, not per micro-batch: accumulated gradients are such outputs.
    graphs = t.compile and t.compile_mode in ("reduce-overhead", "max-autotune")
    return Loop(model, step_model, optimizer, counters, device, threads, dtype, runtime.autocast(dtype, device),
                micro_size, accum, graphs)


def _optimizer_step(loop: Loop, batches, step: int, lr: float, grad_clip: float) -> torch.Tensor:
    """One optimizer step over `accum` micro-batches; the mean train loss (a tensor: no device sync)."""
    for group in loop.optimizer.param_groups:
        group["lr"] = lr
    loss_sum = torch.zeros((), device=loop.device)
    if loop.graphs:
        torch.compiler.cudagraph_mark_step_begin()
    # From pinned host memory the copy is asynchronous: with no sync in the loop, the host builds
    # the next batches while the GPU still computes the previous step.
    pin = loop.device.type == "cuda"
    for micro in range(loop.accum):
        x, y = batches.get(step, micro)
        if pin:
            x, y = x.pin_memory(), y.pin_memory()
        x, y = x.to(loop.device, non_blocking=True), y.to(loop.device, non_blocking=True)
        with loop.ctx:
            _, loss = loop.step_model(x, y)
        (loss / loop.accum).backward()
        loss_sum += loss.detach()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(loop.model.parameters(), grad_clip)
    loop.optimizer.step()
    loop.optimizer.zero_grad(set_to_none=True)
    return loss_sum / loop.accum


def _diverged(value: float, c: checkpoint.Counters, t, steps_since_check: int = 1) -> bool:
    """Non-finite loss, or diverge_patience steps in a row above diverge_factor x the running minimum. A check
    above counts for the steps since the last check: patience means the same on a CPU (a check every step)
    and a GPU (every log_interval steps, since reading the loss waits for the device)."""
    if not math.isfinite(value):
        return True
    if t.diverge_factor > 0:
        c.running_min = min(c.running_min, value)
        c.above = c.above + steps_since_check if value > t.diverge_factor * c.running_min else 0
        return c.above >= t.diverge_patience
    return False


def _checkpoint_state(loop: Loop, data, train_loss_acc: torch.Tensor, wall: float) -> dict:
    c = loop.counters
    return {
        "model": loop.model.state_dict(), "optimizer": loop.optimizer.state_dict(),
        "rng": runtime.rng_state(loop.device),
        "step": c.step, "threads": loop.threads, "dtype": runtime.dtype_name(loop.dtype),
        "micro_batch_size": loop.micro_size,
        "running_min": c.running_min, "above": c.above,
        "corpus_hash": data.corpus_hash, "tokenizer_hash": data.tokenizer_hash,
        "wall_seconds": wall, "train_loss_sum": float(train_loss_acc), "train_loss_steps": c.logged_steps,
    }


def train_loop(cfg: RunConfig, shape: RunShape, data, rdir: Path, tracker, progress: bool,
                stop: StopRequest | None = None, micro_cap: Optional[int] = None,
                device: Optional[torch.device] = None) -> dict:
    """Train from the checkpoint (or step 0) to the last step, logging, evaluating and checkpointing on the way;
    then the final evaluation. Returns the result's training fields. Raises Preempted on a stop request, and
    MicroBatchTooLarge when a step runs out of device memory."""
    folder = RunFolder(rdir)
    loop = _setup(cfg, shape, data, folder, micro_cap, device)
    try:
        return _steps(cfg, shape, data, rdir, tracker, progress, stop, loop)
    except OUT_OF_MEMORY as exc:
        raise MicroBatchTooLarge(loop.micro_size) from exc


def _steps(cfg: RunConfig, shape: RunShape, data, rdir: Path, tracker, progress: bool, stop: StopRequest | None,
           loop: Loop) -> dict:
    t = cfg.train
    folder = RunFolder(rdir)
    c, device = loop.counters, loop.device
    batches = Batches(data.train_tokens(), cfg.model.seq_len, loop.micro_size, loop.accum, t.seed)
    val = data.val_tokens()
    eval_every = t.eval_interval or max(1, shape.steps // 10)
    check_every = 1 if device.type == "cpu" else max(1, t.log_interval)  # .item() syncs a GPU
    fpt = shape.flops_per_token
    executed = executed_flops_per_token(cfg.model, shape.vocab_size)
    label = runtime.device_name(device)
    # known GPUs training in bf16: MFU on every log row, not only at the end
    datasheet_peak = runtime.peak_flops(label) if loop.dtype == torch.bfloat16 else None

    status, diverged_at, diverged_value = Status.DONE, None, None
    train_loss_acc = torch.full((), c.logged_sum, dtype=torch.float32, device=device)
    meter = SpeedMeter(sync=runtime.synchronizer(device))
    bar = tqdm(total=shape.steps, initial=c.step, disable=not progress, unit="step", desc=rdir.name,
               dynamic_ncols=True, leave=False)
    last_loss = float("nan")
    while c.step < shape.steps:
        lr = t.lr * lr_factor(c.step, shape.steps, t)
        step_loss = _optimizer_step(loop, batches, c.step, lr, t.grad_clip)
        c.step += 1
        step = c.step
        meter.step_done(t.tokens_per_step)
        train_loss_acc += step_loss
        c.logged_steps += 1

        if step % check_every == 0 or step == shape.steps:
            last_loss = float(step_loss)
            if _diverged(last_loss, c, t, step % check_every or check_every):
                status, diverged_at, diverged_value = Status.DIVERGED, step, last_loss

        tokens = step * t.tokens_per_step
        row = None
        if step % t.log_interval == 0 or step == shape.steps or status != Status.DONE:
            mean_loss = float(train_loss_acc) / c.logged_steps
            train_loss_acc.zero_()
            c.logged_steps = 0
            row = {"step": step, "tokens": tokens, "flops": tokens * fpt, "lr": lr, "train_loss": mean_loss,
                   "tokens_per_second": meter.tokens_per_second()}
            if datasheet_peak is not None:
                row["mfu"] = runtime.mfu(row["tokens_per_second"], executed, datasheet_peak)
            bar.set_postfix(loss=f"{mean_loss:.3f}", tok_s=f"{row['tokens_per_second']:.0f}")
        if status == Status.DONE and step % eval_every == 0 and step < shape.steps:
            row = row or {"step": step, "tokens": tokens, "flops": tokens * fpt, "lr": lr}
            with meter.pause("eval"):
                row["val_loss"] = evaluate(loop.model, val, cfg.model.seq_len, loop.micro_size, device, loop.ctx,
                                           t.eval_tokens)
            row["val_bpb"] = data.bits_per_byte(row["val_loss"])
        if row is not None:
            store.append_jsonl(folder.metrics_path, [row])
            tracker.log(row, step=row["step"])
            _write_progress(rdir, step, shape.steps, last_loss)
        bar.update(1)
        if status != Status.DONE:
            break
        keep = step in t.save_at_steps
        stopping = stop is not None and stop.signum is not None and step < shape.steps
        if keep or stopping or (t.checkpoint_interval and step % t.checkpoint_interval == 0 and step < shape.steps):
            with meter.pause("checkpoint"):
                state = _checkpoint_state(loop, data, train_loss_acc, c.wall_before + meter.wall())
                if keep:
                    checkpoint.save(rdir / f"branch-{step}.pt", state)
                if not keep or t.checkpoint_interval or stopping:
                    checkpoint.save(folder.checkpoint_path, state)
        if stopping:
            bar.close()
            if row is None:  # progress.json must name the step the checkpoint holds
                _write_progress(rdir, step, shape.steps, last_loss)
            raise Preempted(stop.signum, step, shape.steps)
    bar.close()
    out = _training_fields(loop, meter, fpt, executed, label, status, last_loss)
    if status == Status.DIVERGED:
        out.update(diverged_step=diverged_at, diverged_value=diverged_value, final_val_loss=None, final_val_bpb=None)
        print(f"[sweep] run {rdir.name} diverged at step {diverged_at} (loss {diverged_value})", file=sys.stderr)
        return out
    val_loss = evaluate(loop.model, val, cfg.model.seq_len, loop.micro_size, device, loop.ctx)
    out.update(final_val_loss=val_loss, final_val_bpb=data.bits_per_byte(val_loss))
    final_row = {"step": c.step, "tokens": c.step * t.tokens_per_step, "flops": c.step * t.tokens_per_step * fpt,
                 "val_loss": val_loss, "val_bpb": out["final_val_bpb"]}
    store.append_jsonl(folder.metrics_path, [final_row])
    tracker.log(final_row, step=final_row["step"])
    return out


def _training_fields(loop: Loop, meter: SpeedMeter, fpt: float, executed: float, label: str, status,
                     last_loss: float) -> dict:
    """The result's fields about how the run trained: speed (what each figure counts), MFU, device, threads,
    dtype and micro-batch. MFU is on the FLOPs a step executes (`executed_flops_per_token`);
    `mfu_chinchilla_flops` is on the exact count the fits use, for comparison with papers that quote it."""
    speed = meter.fields()  # syncs the device first
    # read before peak_for, whose matmul (8192^2 operands on a GPU) would raise the allocator's peak
    peak_allocated = cuda.peak_allocated(loop.device) if loop.device.type == "cuda" else None
    # measured after training, so the matmul never competes with the run for the cores
    peak, peak_source = runtime.peak_for(loop.device, loop.dtype, label)
    tps = speed["tokens_per_second"]
    return {
        "status": str(status),
        "device": label,
        **speed,
        "executed_flops_per_token": executed,
        "mfu": runtime.mfu(tps, executed, peak),
        "mfu_chinchilla_flops": runtime.mfu(tps, fpt, peak),
        "mfu_counts": ("tokens_per_second x executed_flops_per_token (no embedding matmul, causal half of "
                       "attention) / peak_flops; mfu_chinchilla_flops uses flops_per_token"),
        "peak_flops": peak,
        "peak_flops_source": peak_source,
        "threads": loop.threads,
        "dtype": runtime.dtype_name(loop.dtype),
        "micro_batch_size": loop.micro_size,
        "grad_accum_steps": loop.accum,
        # which GPU of the box, as the launcher placed the run (None on a CPU)
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES") if loop.device.type == "cuda" else None,
        # the allocator's peak in this process, against which packing's memory estimate can be checked
        "gpu_peak_allocated_bytes": peak_allocated,
        "wall_seconds": loop.counters.wall_before + meter.wall(),
        "final_train_loss": last_loss,
        "steps_done": loop.counters.step,
    }
