"""Train one run: from a RunConfig to a result.json.

Order of work, chosen so bad input costs nothing: validate the config and resolve the budget
(pure, shape.py), skip a finished run, check the logger, then read data, then train (loop.py). The
run checkpoints atomically and resumes bit-exactly on CPU: data order is a pure function of
(seed, step) and the checkpoint carries model, optimizer, RNG states and the step.
"""

from __future__ import annotations

import contextlib
import gc
import sys
import traceback
from pathlib import Path
from typing import Optional

import torch

from sweep.config import ConfigError, RunConfig, to_dict
from sweep.run import cuda, runtime
from sweep.run.corpus import package_versions
from sweep.run.loop import MicroBatchTooLarge, train_loop
from sweep.run.preempt import StopRequest
from sweep.run.shape import RunShape, run_shape
from sweep.store import results as store
from sweep.store.runs import RunFolder, Status, clear_done_checkpoint, run_folders


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
        "corpus_versions": (package_versions(cfg.data.path, cfg.data.packages) if cfg.data.source == "python"
                            else None),
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
                    f"and tokenizer settings on {key}={was[:12]}, but they now give {now[:12]}. "
                    + _restore(config["data"], other) + ", or start a new sweep_name (losses on different corpora cannot "
                    "be fitted together)")


def _restore(data: dict, was: dict) -> str:
    """How to get a sweep's corpus back, from its earlier run's result `was`: a corpus read from the install changes
    with the install (its Python version, and for data.source=python the versions of the packages it reads)."""
    now_python = sys.version.split()[0]
    python = (f"; that run had Python {was['python_version']}, this one {now_python}"
              if was.get("python_version") not in (None, now_python) else "")
    if data.get("source") == "stdlib":
        return (f"data.source=stdlib reads this Python's standard library, which changes with the Python "
                f"version{python}: run with the Python the sweep was trained with")
    if data.get("source") == "python":
        where = f"the sources under data.path={data['path']!r}" if data.get("path") else "the installed sources"
        what = (f"of data.packages={data['packages']}" if data.get("packages") is not None else
                "of every installed package")
        now = package_versions(data.get("path"), data.get("packages"))
        changed = [f"{k} {v} -> {now.get(k, 'not installed')}" for k, v in (was.get("corpus_versions") or {}).items()
                   if now.get(k) != v] + [f"{k} {v} (new)" for k, v in now.items()
                                          if was.get("corpus_versions") is not None and k not in was["corpus_versions"]]
        told = (f"; since that run: {', '.join(changed)}" if changed else
                "; that run recorded no package versions to compare" if was.get("corpus_versions") is None else "")
        return (f"data.source=python reads this Python's standard library and {where} {what}: a fresh install "
                f"resolves the newest versions, and a newer one is another corpus{python}{told}. Reinstall the "
                f"versions the sweep was trained with")
    return f"Restore the original corpus (data.path={data.get('path')!r})"


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
    # Resolved once, to cuda:N on a GPU, and handed to the loop; a device this machine lacks is refused here,
    # before anything is written.
    device = runtime.pick_device(cfg.train)

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
        record = _train_locked(cfg, shape, data, rdir, record, progress, Tracker, wandb_dir, scrub, wandb_id, device)
    store.rebuild_index(sweep_path)
    return record


def _train_locked(cfg: RunConfig, shape: RunShape, data, rdir: Path, record: dict, progress: bool,
                  Tracker, wandb_dir: Path, scrub, wandb_id, device: Optional[torch.device] = None) -> dict:
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
                final = train_retrying_oom(cfg, shape, data, rdir, tracker, progress, stop, device)
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


def smaller_micro_batch(seqs_per_step: int, failed: int) -> Optional[int]:
    """The largest micro-batch of at most half `failed` sequences that divides the step; None below one."""
    fits = [b for b in range(1, failed // 2 + 1) if seqs_per_step % b == 0]
    return max(fits) if fits else None


def train_retrying_oom(cfg: RunConfig, shape: RunShape, data, rdir: Path, tracker, progress: bool,
                        stop: StopRequest | None, device: Optional[torch.device] = None) -> dict:
    """_train_loop; after an out-of-memory error, again from the last checkpoint at half the micro-batch.

    Tokens per step stay the same (twice the micro-batches are accumulated), and so does the run id: the
    micro-batch is how a step is computed, not what it computes. batch_size stays the configured cap;
    the size that fitted is in the checkpoint and result.json (micro_batch_size)."""
    cap, retries = None, 0
    while True:
        try:
            out = train_loop(cfg, shape, data, rdir, tracker, progress, stop, micro_cap=cap, device=device)
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
            cuda.empty_cache()
