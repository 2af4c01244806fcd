"""Train one run: from a RunConfig to a result.json.

Why ~550 lines: the loop's steps share one `Loop` state and must keep their order exactly (bit-exact
resume); checkpoints (checkpoint.py), the schedule (schedule.py) and devices (runtime.py) live apart.

Order of work, chosen so bad input costs nothing: validate the config and resolve the budget
(pure), skip a finished run, check the logger, then read data, then train. The run checkpoints
atomically and resumes bit-exactly on CPU: data order is a pure function of (seed, step) and the
checkpoint carries model, optimizer, RNG states and the step.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from sweep.store import results as store
from sweep.store.runs import RunFolder, Status, clear_done_checkpoint, run_folders
from sweep.run import checkpoint, runtime
from sweep.run.batches import Batches
from sweep.config import ConfigError, RunConfig, micro_batch, to_dict, validate
from sweep.run.model import GPT, count_params, executed_flops_per_token, flops_per_token
from sweep.run.preempt import Preempted, StopRequest
from sweep.run.schedule import lr_factor
from sweep.run.speed import SpeedMeter


# ----------------------------------------------------------------------------- budget and schedule


@dataclass(frozen=True)
class RunShape:
    """Counts of a run, known before any data is read."""

    vocab_size: int
    n_params: int
    n_params_non_embedding: int
    n_params_embedding: int
    n_params_by_group: dict
    flops_per_token: float
    n_tokens: int
    steps: int

    @property
    def flops(self) -> float:
        return self.flops_per_token * self.n_tokens

    @property
    def flops_6nd(self) -> float:
        return 6.0 * self.n_params * self.n_tokens


def run_shape(cfg: RunConfig) -> RunShape:
    """Resolve the budget into whole optimizer steps; raises ConfigError if below one step."""
    validate(cfg)
    vocab = cfg.tokenizer.vocab_size
    counts = count_params(cfg.model, vocab)
    fpt = flops_per_token(cfg.model, vocab)["flops_per_token"]
    b = cfg.budget
    if b.n_tokens is not None:
        requested, source = float(b.n_tokens), f"budget.n_tokens={b.n_tokens}"
    elif b.tokens_per_param is not None:
        n = counts["n_params" if b.param_convention == "total" else "n_params_non_embedding"]
        requested, source = b.tokens_per_param * n, f"budget.tokens_per_param={b.tokens_per_param} (N={n})"
    else:
        requested, source = b.flops / fpt, f"budget.flops={b.flops:g}"
    per_step = cfg.train.tokens_per_step
    steps = int(round(requested / per_step))
    if requested < per_step:
        raise ConfigError(
            f"{source} gives {requested:.0f} tokens, less than one optimizer step of "
            f"train.tokens_per_step={per_step}: raise the budget or lower train.tokens_per_step"
        )
    return RunShape(vocab, counts["n_params"], counts["n_params_non_embedding"], counts["n_params_embedding"],
                    counts["n_params_by_group"], fpt, steps * per_step, steps)


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(model, val: np.ndarray, seq_len: int, batch_size: int, device, ctx, max_tokens=None) -> float:
    """Mean next-token loss (nats) over non-overlapping windows of the fixed validation tokens.

    With `max_tokens` (intermediate evaluations) the windows are every k-th one across the whole set,
    not a prefix: the validation tokens are a few whole documents one after another, and a prefix
    would measure only the first of them, so the curve would not lead to the final loss."""
    model.eval()
    n_all = (len(val) - 1) // seq_len
    stride = 1 if max_tokens is None else max(1, n_all // max(1, (max_tokens - 1) // seq_len))
    starts = list(range(0, n_all, stride))[: n_all if max_tokens is None else max(1, (max_tokens - 1) // seq_len)]
    data = torch.from_numpy(np.asarray(val[: n_all * seq_len + 1]).astype(np.int64))
    n = len(starts)
    total, count = torch.zeros((), device=device, dtype=torch.float64), 0
    for i in range(0, n, batch_size):
        j = min(i + batch_size, n)
        rows = torch.stack([data[k * seq_len: (k + 1) * seq_len + 1] for k in (starts[w] for w in range(i, j))]).to(device)
        with ctx:
            _, loss = model(rows[:, :-1], rows[:, 1:])
        total += loss.double() * (j - i)
        count += j - i
    model.train()
    return float(total / count)


# ----------------------------------------------------------------------------- training


def _write_progress(rdir: Path, step: int, steps: int, train_loss: float) -> None:
    """progress.json: where a running or interrupted run stands, for `sweep status` and the sweep's bar."""
    RunFolder(rdir).write_progress({"step": step, "steps": steps, "pid": os.getpid(), "train_loss": train_loss,
                                    "time": time.time()})


def _provenance(cfg: RunConfig, shape: RunShape, rid: str) -> dict:
    return {
        "run_id": rid,
        "run_name": store.run_name(cfg, shape.n_tokens),
        "sweep_name": cfg.sweep_name,
        "n_params": shape.n_params,
        "n_params_non_embedding": shape.n_params_non_embedding,
        "n_params_embedding": shape.n_params_embedding,
        "n_params_by_group": shape.n_params_by_group,
        "n_tokens": shape.n_tokens,
        "tokens_per_param": shape.n_tokens / shape.n_params,
        "flops_per_token": shape.flops_per_token,
        "flops_6nd": shape.flops_6nd,
        "flops": shape.flops,
        "steps": shape.steps,
        "n_layer": cfg.model.n_layer,
        "d_model": cfg.model.d_model,
        "n_head": cfg.model.n_head,
        "seq_len": cfg.model.seq_len,
        "vocab_size": shape.vocab_size,
        "seed": cfg.train.seed,
        "meta": dict(cfg.meta),
        "role": cfg.meta.get("role", "sweep"),
        "parent": cfg.meta.get("parent"),
        "branch": bool(cfg.meta.get("branch", False)),
        "config": to_dict(cfg),
        "code_version": runtime.code_version(),
        "torch_version": torch.__version__,
        "python_version": sys.version.split()[0],
    }


def _finished(existing: dict | None, retry_diverged: bool) -> bool:
    """Whether a relaunch leaves the run as it is: done always; diverged unless asked to retry.

    A failed run is retried (resuming from its checkpoint): crashes are mostly transient (a killed
    node, a full disk). A diverged run would usually diverge again the same way, so it stays
    diverged unless `retry_diverged` is set.
    """
    if existing is None:
        return False
    return existing.get("status") == Status.DONE or (existing.get("status") == Status.DIVERGED and not retry_diverged)


def _say_finished(existing: dict, rdir: Path) -> None:
    rid, name, status = existing.get("run_id"), existing.get("run_name"), existing.get("status")
    if status == Status.DONE:
        print(f"[sweep] run {rid} ({name}) is already done: {RunFolder(rdir).result_path}", file=sys.stderr)
    else:
        print(f"[sweep] run {rid} ({name}) diverged at step {existing.get('diverged_step')} "
              f"(loss {existing.get('diverged_value')}); not retried: pass retry_diverged=True to train it again",
              file=sys.stderr)


@contextlib.contextmanager
def _undo_new_folders(*folders: Path):
    """On an error inside the block, remove those of `folders` (and their parents) that the block
    created and left empty: input rejected before training leaves the results folder as it was."""
    created = []
    for folder in folders:
        p = Path(folder).absolute()
        while not p.exists() and p != p.parent:
            created.append(p)
            p = p.parent
    try:
        yield
    except BaseException:
        for p in sorted(set(created), key=lambda q: len(q.parts), reverse=True):
            try:
                p.rmdir()
            except OSError:
                pass  # not empty (e.g. a data cache that is still valid): keep it
        raise


def _same_data(a: dict, b: dict) -> bool:
    """Whether two stored configs read the same corpus with the same tokenizer settings."""
    def key(c):
        data = {k: v for k, v in (c.get("data") or {}).items() if k != "cache_dir"}
        return data, c.get("tokenizer")

    return key(a) == key(b)


def _check_same_corpus(sweep_path: Path, config: dict, data, rid: str) -> None:
    """Refuse to train when runs of this sweep with the same data settings saw another corpus or
    tokenizer: the text behind data.path changed since, and a fit cannot mix the two."""
    for run in run_folders(sweep_path):
        other = run.result()
        if other is None or not isinstance(other.get("config"), dict) or not _same_data(other["config"], config):
            continue
        for key, now in (("corpus_hash", data.corpus_hash), ("tokenizer_hash", data.tokenizer_hash)):
            was = other.get(key)
            if was is not None and was != now:
                who = "this run" if other.get("run_id") == rid else f"run {other.get('run_id')} ({other.get('run_name')})"
                raise ConfigError(
                    f"the corpus changed: {who} of sweep {config['sweep_name']!r} was trained with the same data "
                    f"and tokenizer settings on {key}={was[:12]}, but they now give {now[:12]}. Restore the "
                    f"original corpus (data.path={config['data'].get('path')!r}), or start a new sweep_name "
                    f"(losses on different corpora cannot be fitted together)")


def train(cfg: RunConfig, *, progress: bool = True, retry_diverged: bool = False) -> dict:
    """Train one run to its token budget and return its result (also written to result.json).

    A done run is returned as is, and so is a diverged one unless `retry_diverged`; a failed or
    interrupted run resumes from its checkpoint. Every check that can reject the input runs before
    anything is written; the run then holds `<run_dir>/.lock` (RunLocked if another process trains
    it) and, when it ends, rebuilds the sweep's index.jsonl.
    """
    from sweep.run.data import prepare_data  # heavy imports (datasets) only when a run really starts
    from sweep.store.tracking import Tracker, check_logger, scrub, wandb_id

    shape = run_shape(cfg)
    rid = store.run_id(cfg, shape.n_tokens)
    folder = RunFolder.of(cfg, shape.n_tokens)
    rdir = folder.path
    sweep_path = store.sweep_dir(cfg.results_dir, cfg.sweep_name)
    existing = folder.load(expect_run_id=rid)
    if _finished(existing, retry_diverged):
        clear_done_checkpoint(rdir)
        _say_finished(existing, rdir)
        return existing
    runtime.pick_device(cfg.train)  # a device this machine lacks is refused before anything is written

    wandb_dir = Path(cfg.logger.dir) if cfg.logger.dir else sweep_path
    record = _provenance(cfg, shape, rid)
    record.update(config=scrub(record["config"]), meta=scrub(record["meta"]))
    with _undo_new_folders(Path(cfg.results_dir), wandb_dir / "wandb", Path(cfg.data.cache_dir)):
        check_logger(cfg.logger, wandb_dir)
        data = prepare_data(cfg.data, cfg.tokenizer, progress=progress)
        if data.vocab_size != shape.vocab_size:
            raise ConfigError(f"tokenizer.vocab_size={shape.vocab_size} but the tokenizer built from this corpus has "
                              f"{data.vocab_size} tokens: set tokenizer.vocab_size={data.vocab_size}")
        if shape.n_tokens > data.n_train_tokens and not cfg.data.allow_repeat:
            raise ConfigError(
                f"the budget needs n_tokens={shape.n_tokens} but the corpus has {data.n_train_tokens} train tokens: "
                f"lower the budget, use a bigger corpus (data.max_bytes / data.source), or set "
                f"data.allow_repeat=true to see tokens more than once"
            )
        _check_same_corpus(sweep_path, record["config"], data, rid)
    record.update(corpus_hash=data.corpus_hash, tokenizer_hash=data.tokenizer_hash)

    with folder.lock():
        store.clear_stale_temps(rdir)  # left by a writer killed mid-write; the lock says it is dead
        # Another process may have finished the run while this one read the data.
        existing = folder.load(expect_run_id=rid)
        if _finished(existing, retry_diverged):
            _say_finished(existing, rdir)
            return existing
        record = _train_locked(cfg, shape, data, rdir, record, progress, Tracker, wandb_dir, scrub, wandb_id)
    store.rebuild_index(sweep_path)
    return record


def _train_locked(cfg: RunConfig, shape: RunShape, data, rdir: Path, record: dict, progress: bool,
                  Tracker, wandb_dir: Path, scrub, wandb_id) -> dict:
    folder = RunFolder(rdir)
    wandb_config = {**record["config"], **{k: record[k] for k in (
        "n_params", "n_params_non_embedding", "n_tokens", "flops", "flops_6nd", "tokens_per_param", "run_id")}}
    tracker = Tracker(cfg.logger, run_id=wandb_id(cfg.sweep_name, record["run_id"]), name=record["run_name"],
                      group=cfg.sweep_name,
                      job_type="verify" if cfg.meta.get("role") == "verification" else "train",
                      config=wandb_config, dir=wandb_dir, tags=list(cfg.logger.tags))
    with tracker:
        try:
            with StopRequest() as stop:
                final = _train_retrying_oom(cfg, shape, data, rdir, tracker, progress, stop)
        except Exception as exc:  # not Preempted (a BaseException): a stopped run has not failed
            tail = "".join(traceback.format_exception(exc))[-4000:]
            folder.write_result({**record, "status": Status.FAILED.value, "error": scrub({"e": tail})["e"]})
            try:
                store.rebuild_index(rdir.parent.parent)
            except OSError as index_error:  # never hide the training error behind an index one
                print(f"[sweep] could not update the index: {index_error}", file=sys.stderr)
            raise
        record.update(final)
        tracker.set_summary({k: record[k] for k in (
            "status", "final_val_loss", "final_val_bpb", "final_train_loss", "n_params", "n_params_non_embedding",
            "n_tokens", "flops", "flops_6nd", "tokens_per_second", "tokens_per_second_wall", "mfu",
            "mfu_chinchilla_flops", "wall_seconds")})
        folder.write_result(record)
        if record["status"] == Status.DONE:
            # At once, not after W&B's (slow) finish: a kill in between would strand the checkpoint.
            folder.checkpoint_path.unlink(missing_ok=True)
        else:
            tracker.finish(exit_code=1)
    return record


OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


class MicroBatchTooLarge(Exception):
    """A step ran out of device memory at this micro-batch size (the out-of-memory error is its cause)."""

    def __init__(self, micro_size: int):
        super().__init__(f"out of memory at a micro-batch of {micro_size} sequences")
        self.micro_size = micro_size


def smaller_micro_batch(seqs_per_step: int, failed: int) -> Optional[int]:
    """The largest micro-batch of at most half `failed` sequences that divides the step; None below one."""
    fits = [b for b in range(1, failed // 2 + 1) if seqs_per_step % b == 0]
    return max(fits) if fits else None


def _train_retrying_oom(cfg: RunConfig, shape: RunShape, data, rdir: Path, tracker, progress: bool,
                        stop: StopRequest | None) -> dict:
    """_train_loop; after an out-of-memory error, again from the last checkpoint at half the micro-batch.

    Tokens per step stay the same (twice the micro-batches are accumulated), and so does the run id: the
    micro-batch is how a step is computed, not what it computes. batch_size stays the configured cap;
    the size that fitted is in the checkpoint and result.json (micro_batch_size)."""
    cap, retries = None, 0
    while True:
        try:
            out = _train_loop(cfg, shape, data, rdir, tracker, progress, stop, micro_cap=cap)
            return {**out, "oom_retries": retries}
        except MicroBatchTooLarge as exc:
            cap = smaller_micro_batch(cfg.train.tokens_per_step // cfg.model.seq_len, exc.micro_size)
            if cap is None:
                raise exc.__cause__ from None
            retries += 1
            print(f"[sweep] run {rdir.name}: out of memory at a micro-batch of {exc.micro_size} sequences; "
                  f"retrying from its last checkpoint at {cap} (the same {cfg.train.tokens_per_step} tokens per step)",
                  file=sys.stderr)
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


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


def _setup(cfg: RunConfig, shape: RunShape, data, folder: RunFolder, micro_cap: Optional[int] = None) -> Loop:
    """Device, threads, model, optimizer; the checkpoint's (or a WSD branch point's) state when there is one.
    `micro_cap`: at most this many sequences per micro-batch (after an out-of-memory error)."""
    t = cfg.train
    device = runtime.pick_device(t)
    if device.type == "cuda" and t.memory_fraction:
        torch.cuda.set_per_process_memory_fraction(t.memory_fraction, device)
    ckpt = checkpoint.load(folder.checkpoint_path)
    if ckpt is None and t.init_from:
        ckpt = checkpoint.load_branch_point(Path(t.init_from), shape.steps, t)
    threads = runtime.set_threads(t, device, previous=ckpt["threads"] if ckpt else None)
    if t.compile:  # inductor's compile workers default to every core of the machine, per packed job
        os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", str(threads))
    runtime.set_determinism(t.seed)

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


def _train_loop(cfg: RunConfig, shape: RunShape, data, rdir: Path, tracker, progress: bool,
                stop: StopRequest | None = None, micro_cap: Optional[int] = None) -> dict:
    """Train from the checkpoint (or step 0) to the last step, logging, evaluating and checkpointing on the way;
    then the final evaluation. Returns the result's training fields. Raises Preempted on a stop request, and
    MicroBatchTooLarge when a step runs out of device memory."""
    folder = RunFolder(rdir)
    loop = _setup(cfg, shape, data, folder, micro_cap)
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
        "wall_seconds": loop.counters.wall_before + meter.wall(),
        "final_train_loss": last_loss,
        "steps_done": loop.counters.step,
    }
