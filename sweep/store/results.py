"""The results store: one folder per run, written so that a crash at any moment leaves it readable.

    <results_dir>/<sweep_name>/runs/<run_id>/result.json    final record (atomic replace)
    <results_dir>/<sweep_name>/runs/<run_id>/metrics.jsonl  the curve, one JSON object per line
    <results_dir>/<sweep_name>/runs/<run_id>/progress.json  step / steps while running (atomic)
    <results_dir>/<sweep_name>/runs/<run_id>/checkpoint.pt  latest checkpoint (atomic), removed when done
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterable

from sweep.config import RunConfig, to_dict
from sweep.store.locks import blocking_lock

# Fields that change how fast or how visibly a run goes, never its numbers: they stay out of run_id
# so that resuming on another device, or with logging changed, finds the same run.
NOT_IN_RUN_ID = {
    "train": {"device", "compile", "compile_mode", "threads", "memory_fraction", "log_interval", "eval_interval",
              "eval_tokens", "checkpoint_interval",
              # A WSD branch computes exactly what an independent WSD run of its length computes
              # (same init, data order and schedule); where it starts from is provenance, not identity.
              "save_at_steps", "init_from"},
    "data": {"cache_dir"},
}


# Fields added after runs were recorded: at their default (None) they compute what the older config did, so they
# enter run_id only when set, and results recorded before they existed keep their ids.
ID_ONLY_WHEN_SET = {"data": {"packages"}}


def run_id(cfg: RunConfig, n_tokens: int) -> str:
    """Stable 12-hex-digit hash of everything that changes a run's result.

    The budget enters as the resolved token count, so `n_tokens=...` and an equivalent
    `tokens_per_param=...` name the same run.
    """
    d = to_dict(cfg)
    key = {"n_tokens": int(n_tokens)}
    for section in ("model", "data", "tokenizer", "train"):
        key[section] = {k: v for k, v in d[section].items() if k not in NOT_IN_RUN_ID.get(section, ())
                        and not (k in ID_ONLY_WHEN_SET.get(section, ()) and v is None)}
    blob = json.dumps(key, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def human(x: float) -> str:
    """1234567 -> '1.2M' (for readable run names)."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def run_name(cfg: RunConfig, n_tokens: int) -> str:
    m = cfg.model
    seed = f"-s{cfg.meta['seed']}" if "seed" in cfg.meta else ""  # a seed replicate of a grid point
    lr = f"-lr{cfg.train.lr:.3g}" if "lr_multiplier" in cfg.meta else ""  # a point of an LR tuning sweep
    return f"L{m.n_layer}-d{m.d_model}-h{m.n_head}-D{human(n_tokens)}{seed}{lr}"


def sweep_dir(results_dir: str | Path, sweep_name: str) -> Path:
    """results_dir/sweep_name; ValueError if the name is not a plain folder name or leads outside."""
    return inside(results_dir, check_name(sweep_name, "sweep_name"))


def run_dir(cfg: RunConfig, n_tokens: int) -> Path:
    """The run's folder, always inside cfg.results_dir (the run id is a hex hash, never user text)."""
    return inside(cfg.results_dir, check_name(cfg.sweep_name, "sweep_name"), "runs", run_id(cfg, n_tokens))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide results from the rest of a team
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def clear_stale_temps(folder: Path, pattern: str = "*.tmp") -> list[Path]:
    """Delete the temporary files a killed writer left in `folder` and return them.

    Call it only while holding the lock that every writer of `folder` takes: then no live writer
    owns a temporary file there, and whatever is left belongs to a process that died mid-write.
    """
    stale = [p for p in Path(folder).glob(pattern) if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def _jsonable(obj: Any) -> Any:
    # JSON has no NaN/inf; a diverged run's loss must still be written and read back.
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def write_json_atomic(path: Path, obj: Any) -> None:
    write_bytes_atomic(Path(path), (json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n").encode())


def read_result(path: Path) -> dict | None:
    """The result at `path` (a result.json or its run folder); None if missing or unreadable."""
    path = Path(path)
    if path.is_dir():
        path = path / "result.json"
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) and "status" in obj and "run_id" in obj else None


def iter_results(sweep_path: Path) -> Iterable[tuple[Path, dict | None]]:
    """(run folder, result or None) for every run folder of a sweep, in name order."""
    runs = Path(sweep_path) / "runs"
    if not runs.is_dir():
        return
    for d in sorted(p for p in runs.iterdir() if p.is_dir()):
        yield d, read_result(d)


def append_jsonl(path: Path, rows: Iterable[dict]) -> None:
    with open(path, "a") as f:
        for row in rows:
            f.write(json.dumps(_jsonable(row)) + "\n")
        f.flush()


def read_jsonl(path: Path) -> list[dict]:
    """Every complete line of a JSONL file; a torn last line (crash mid-write) is dropped."""
    rows = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    continue
    except OSError:
        return []
    return rows


def truncate_metrics(path: Path, max_step: int) -> None:
    """Keep only rows up to `max_step`: a resumed run re-logs the steps after its checkpoint."""
    rows = [r for r in read_jsonl(path) if r.get("step", 0) <= max_step]
    write_bytes_atomic(path, "".join(json.dumps(r) + "\n" for r in rows).encode())


# ----------------------------------------------------------------------------- strict reading

RUN_STATUSES = ("done", "diverged", "failed", "running")


class ResultError(ValueError):
    """A result.json exists but cannot be trusted (truncated, hand-edited, another run's)."""


def load_result(path: Path, expect_run_id: str | None = None) -> dict | None:
    """The result at `path` (a result.json or its run folder): None when there is none, ResultError
    when the file is there but truncated, not a result, or names another run.

    `read_result` is the lenient reader for listings; this one is for a run about to be trained,
    where overwriting a file someone edited, or trusting a broken one, would lose information.
    """
    path = Path(path)
    if path.is_dir() or path.name != "result.json":
        path = path / "result.json"
    if not path.exists():
        return None
    fix = f"delete {path} (or its run folder) to train the run again"
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ResultError(f"{path} is unreadable or truncated ({type(exc).__name__}: {exc}): {fix}") from None
    if not isinstance(obj, dict):
        raise ResultError(f"{path} is not a JSON object: {fix}")
    if obj.get("status") not in RUN_STATUSES:
        raise ResultError(f"{path} has status={obj.get('status')!r}, not one of {list(RUN_STATUSES)}: {fix}")
    if expect_run_id is not None and obj.get("run_id") != expect_run_id:
        raise ResultError(f"{path} has run_id={obj.get('run_id')!r} but its folder is run {expect_run_id!r} "
                          f"(copied or hand-edited?): {fix}")
    if obj["status"] == "done":
        loss = obj.get("final_val_loss")
        if not isinstance(loss, (int, float)) or isinstance(loss, bool) or not math.isfinite(loss):
            raise ResultError(f"{path} says done but final_val_loss={loss!r} is not a finite number: {fix}")
    return obj


# ----------------------------------------------------------------------------- path safety

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=+,@-]*$")


def check_name(name: str, what: str) -> str:
    """`name` if it is a plain folder name (letters, digits, _.=+,@-, not starting with '.'), else ValueError."""
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or len(name) > 200:
        raise ValueError(f"{what}={name!r}: must be a plain folder name (letters, digits and _.=+,@-, "
                         f"not starting with '.', at most 200 characters); rename it")
    return name


def inside(root: str | Path, *parts: str) -> Path:
    """root/parts..., refused (ValueError) if it resolves outside root, e.g. through '..' or a symlink."""
    root_path = Path(root)
    path = root_path.joinpath(*parts)
    base, target = os.path.realpath(root_path), os.path.realpath(path)
    if os.path.commonpath([base, target]) != base or target == base:
        raise ValueError(f"{path} resolves to {target}, outside the results folder {base}: "
                         f"use plain names (no '..', no symlinks leading out)")
    return path


# ----------------------------------------------------------------------------- the sweep index

INDEX_FILE = "index.jsonl"
"""`<results_dir>/<sweep_name>/index.jsonl`: one JSON object per run, rebuilt from the result.json files."""
INDEX_KEYS = ("run_id", "run_name", "status", "n_params", "n_params_non_embedding", "n_tokens", "tokens_per_param",
              "flops", "flops_6nd", "steps", "final_val_loss", "final_val_bpb", "final_train_loss",
              "diverged_step", "diverged_value", "corpus_hash", "tokenizer_hash", "wall_seconds", "meta")


TABLE_FILE = "runs.csv"
"""`<results_dir>/<sweep_name>/runs.csv`: the sweep's runs as a table, one row per run, rebuilt with the index;
`sweep fit input=.../runs.csv` (or pandas) reads it."""
TABLE_COLUMNS = ("run_id", "run_name", "status", "loss", "final_val_bpb", "final_train_loss", "n_params",
                 "n_params_non_embedding", "n_tokens", "tokens_per_param", "flops", "flops_6nd", "steps",
                 "experiment", "budget_index", "budget_flops", "seed", "role", "branch", "parent", "arch", "n_layer",
                 "d_model", "n_head", "seq_len", "vocab_size", "lr", "tokens_per_step", "corpus_hash",
                 "tokenizer_hash", "wall_seconds", "tokens_per_second", "device", "dtype")


def table_row(result: dict) -> dict:
    """The table's row of one result: flat columns a spreadsheet or `sweep fit` reads (loss is final_val_loss)."""
    config, meta = result.get("config") or {}, result.get("meta") or {}
    model, train = config.get("model") or {}, config.get("train") or {}
    flat = {**{k: result.get(k) for k in TABLE_COLUMNS}, "loss": result.get("final_val_loss")}
    flat.update({k: meta.get(k) for k in ("experiment", "budget_index", "budget_flops")})
    flat.update({k: model.get(k) for k in ("arch", "n_layer", "d_model", "n_head", "seq_len")})
    flat.update(lr=train.get("lr"), tokens_per_step=train.get("tokens_per_step"))
    return flat


def _csv(rows: list[dict]) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=TABLE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in TABLE_COLUMNS})
    return out.getvalue()


def index_row(result: dict) -> dict:
    """The index's row of one result: identity, status, N, D, C and final losses."""
    return {k: result.get(k) for k in INDEX_KEYS}


def rebuild_index(sweep_path: str | Path) -> list[dict]:
    """Rewrite the sweep's index.jsonl and runs.csv from its result.json files (atomically, under a sweep-level
    lock) and return the index's rows; run folders without a readable result are left out.

    Rebuilding rather than appending makes the index self-healing: it never holds a run twice, and
    the last writer, who scans after every earlier result.json is on disk, leaves it complete.
    """
    sweep_path = Path(sweep_path)
    with blocking_lock(sweep_path / ".index.lock"):
        clear_stale_temps(sweep_path, f".{INDEX_FILE}.*.tmp")
        clear_stale_temps(sweep_path, f".{TABLE_FILE}.*.tmp")
        results = [r for _, r in iter_results(sweep_path) if r is not None]
        rows = [index_row(r) for r in results]
        body = "".join(json.dumps(_jsonable(row), sort_keys=True) + "\n" for row in rows)
        write_bytes_atomic(sweep_path / INDEX_FILE, body.encode())
        write_bytes_atomic(sweep_path / TABLE_FILE, _csv([table_row(r) for r in results]).encode())
    return rows


def read_index(sweep_path: str | Path) -> list[dict]:
    """The rows of a sweep's index.jsonl ([] when there is none yet); one per run with a result."""
    return read_jsonl(Path(sweep_path) / INDEX_FILE)
