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
import tempfile
from pathlib import Path
from typing import Any, Iterable

from sweep.config import RunConfig, to_dict

# Fields that change how fast or how visibly a run goes, never its numbers: they stay out of run_id
# so that resuming on another device, or with logging changed, finds the same run.
_NOT_IN_RUN_ID = {
    "train": {"device", "compile", "threads", "log_interval", "eval_interval", "eval_tokens", "checkpoint_interval",
              # A WSD branch computes exactly what an independent WSD run of its length computes
              # (same init, data order and schedule); where it starts from is provenance, not identity.
              "save_at_steps", "init_from"},
    "data": {"cache_dir"},
}


def run_id(cfg: RunConfig, n_tokens: int) -> str:
    """Stable 12-hex-digit hash of everything that changes a run's result.

    The budget enters as the resolved token count, so `n_tokens=...` and an equivalent
    `tokens_per_param=...` name the same run.
    """
    d = to_dict(cfg)
    key = {"n_tokens": int(n_tokens)}
    for section in ("model", "data", "tokenizer", "train"):
        key[section] = {k: v for k, v in d[section].items() if k not in _NOT_IN_RUN_ID.get(section, ())}
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
    return f"L{m.n_layer}-d{m.d_model}-h{m.n_head}-D{human(n_tokens)}"


def sweep_dir(results_dir: str | Path, sweep_name: str) -> Path:
    return Path(results_dir) / sweep_name


def run_dir(cfg: RunConfig, n_tokens: int) -> Path:
    return sweep_dir(cfg.results_dir, cfg.sweep_name) / "runs" / run_id(cfg, n_tokens)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
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
