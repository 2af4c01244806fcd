"""Where a fit's runs come from: a sweep's results folder, a CSV/Parquet table or a W&B project, read into one
DataFrame of canonical columns (one row per run, each with its val-loss curve where the source has one).

Nothing here checks the values a fit needs: `sweep.fit.inputs.prepare` does, the same way for every source.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
import pandas as pd

from sweep.fit.config import FitInputError
from sweep.store.runs import Status, result_folders

log = logging.getLogger("sweep.fit")

# Canonical column -> result.json key (results folders) or default table column.
RESULT_KEYS = {
    "run_id": "run_id", "run_name": "run_name", "status": "status", "loss": "final_val_loss",
    "n_params": "n_params", "n_params_non_embedding": "n_params_non_embedding", "n_tokens": "n_tokens",
    "flops": "flops", "flops_6nd": "flops_6nd", "corpus_hash": "corpus_hash",
    "tokenizer_hash": "tokenizer_hash", "branch": "branch", "parent": "parent", "seed": "seed", "role": "role",
}
DEFAULT_COLUMNS = {k: k for k in ("run_id", "run_name", "status", "loss", "n_params", "n_params_non_embedding",
                                  "n_tokens", "flops", "corpus_hash", "tokenizer_hash", "branch", "budget_index",
                                  "seed")}


@dataclass
class Curve:
    """One run's validation-loss curve from its metrics.jsonl (the intermediate evaluations and the final one)."""

    tokens: np.ndarray
    """Tokens trained when each evaluation was taken (cumulative, increasing)."""
    loss: np.ndarray
    """Validation loss at those points (nats/token)."""


def read_curve(path: Path) -> tuple[Optional[Curve], int]:
    """(curve, unreadable lines) from a metrics.jsonl; curve is None when the file is missing or has no val_loss row.

    Rows without val_loss (the train-loss rows) are ignored; a line that is not JSON (a run killed mid-write
    leaves a truncated last line) is counted and skipped rather than sinking the fit.
    """
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return None, 0
    tokens, loss, bad = [], [], 0
    for line in text.splitlines():
        if '"val_loss"' not in line:  # cheap filter: most rows are train-loss rows
            bad += bool(line.strip()) and not line.rstrip().endswith("}")  # a truncated row of either kind
            continue
        try:
            row = json.loads(line)
            t, v = float(row["tokens"]), float(row["val_loss"])
        except (ValueError, TypeError, KeyError):
            bad += 1
            continue
        tokens.append(t)
        loss.append(v)
    curve = clean_curve(np.asarray(tokens), np.asarray(loss))
    return (curve if curve.tokens.size else None), bad


def clean_curve(tokens: np.ndarray, loss: np.ndarray) -> Curve:
    """Positive finite points sorted by tokens; of points at the same tokens (a resumed step), the later one."""
    tokens, loss = np.asarray(tokens, float), np.asarray(loss, float)
    ok = np.isfinite(tokens) & np.isfinite(loss) & (tokens > 0) & (loss > 0)
    tokens, loss = tokens[ok], loss[ok]
    order = np.argsort(tokens, kind="stable")
    tokens, loss = tokens[order], loss[order]
    last = np.append(tokens[1:] != tokens[:-1], True)[:tokens.size]
    return Curve(tokens[last], loss[last])


def load_results_folder(folder: Path, notes: list, curves: bool = True) -> pd.DataFrame:
    """Rows from every runs/<id>/result.json under a sweep folder; unreadable files are skipped with a warning.

    With curves, each row's "curve" holds the run's val-loss Curve from metrics.jsonl (None when missing),
    which approach 1 uses; a missing or partly unreadable metrics.jsonl is noted, never fatal.
    """
    folder = Path(folder)
    runs = result_folders(folder)
    if not runs:
        raise FitInputError(f"no runs/*/result.json under {folder}: point input= at a sweep's results folder "
                            "(results/<sweep_name>), a CSV/Parquet table, or wandb:<entity>/<project>")
    rows, no_curve, partial = [], [], []
    for run in runs:
        p = run.result_path
        try:
            res = json.loads(p.read_text())
            if not isinstance(res, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            warn(notes, f"skipped {p}: unreadable or truncated result.json ({exc}); rerun or delete that run")
            continue
        row = {k: res.get(src) for k, src in RESULT_KEYS.items()}
        row["budget_index"] = (res.get("meta") or {}).get("budget_index")  # the planner's IsoFLOP budget
        row["path"] = str(p.parent)
        if curves:
            row["curve"], bad = read_curve(run.metrics_path)
            if row["curve"] is None and res.get("status") == Status.DONE:
                no_curve.append(str(p.parent))
            if bad:
                partial.append(f"{run.metrics_path} ({bad} line(s))")
        rows.append(row)
    if no_curve:
        warn(notes, f"{len(no_curve)} finished run(s) without a readable val_loss curve in metrics.jsonl "
                     f"({', '.join(no_curve[:3])}{', ...' if len(no_curve) > 3 else ''}): approach 1 uses their final loss only")
    if partial:
        warn(notes, f"skipped unreadable lines (e.g. a truncated last line) in {len(partial)} metrics.jsonl: "
                     f"{', '.join(partial[:3])}{', ...' if len(partial) > 3 else ''}")
    return pd.DataFrame(rows)


def load_table(path: Path, columns: dict) -> pd.DataFrame:
    """A CSV or Parquet table of runs, its columns renamed to the canonical names through `columns`."""
    path = Path(path)
    if path.suffix.lower() not in (".parquet", ".pq", ".csv", ".tsv"):
        raise FitInputError(f"{path}: expected a .csv, .tsv or .parquet table")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    except pd.errors.EmptyDataError:
        raise FitInputError(f"{path} is empty: a table of runs needs a header row (n_params, n_tokens, flops, loss, "
                            f"...) and a row per run") from None
    if df.empty:
        raise FitInputError(f"{path} has columns {list(df.columns)} but no rows: a table of runs needs a row per run")
    mapping = {src: canon for canon, src in columns.items() if src and src in df.columns and src != canon}
    return df.rename(columns=mapping)


def wandb_curve(run: Any) -> Optional[Curve]:
    """A W&B run's val-loss curve from its history (`scan_history` over tokens and val_loss: the rows the trainer
    logs at each evaluation), as approach 1 reads it from metrics.jsonl; None when the run has no such rows."""
    scan = getattr(run, "scan_history", None)
    if scan is None:
        return None
    tokens, loss = [], []
    for row in scan(keys=["tokens", "val_loss"]):
        try:
            t, v = float(row["tokens"]), float(row["val_loss"])
        except (KeyError, TypeError, ValueError):
            continue
        tokens.append(t)
        loss.append(v)
    curve = clean_curve(np.asarray(tokens), np.asarray(loss))
    return curve if curve.tokens.size else None


def wandb_runs_to_rows(runs: Iterable[Any], columns: dict, curves: bool = False) -> list[dict]:
    """Rows from W&B API run objects (anything with .id, .name, .state, .summary, .config, .tags, .group;
    with `curves`, also .scan_history for each run's val-loss curve).

    Pure, so tests can feed fake run objects (the one mock allowed: wandb.Api needs the network).
    A value is looked up in the summary, then the config, under the mapped name.
    """
    rows = []
    for run in runs:
        summary = dict(getattr(run, "summary", {}) or {})
        config = dict(getattr(run, "config", {}) or {})
        row = {"run_id": getattr(run, "id", None), "run_name": getattr(run, "name", None)}
        for canon, src in columns.items():
            if canon in ("run_id", "run_name"):
                continue
            key = src or canon
            alt = RESULT_KEYS.get(canon, key)
            for where in (summary, config):
                if key in where or alt in where:
                    row[canon] = where.get(key, where.get(alt))
                    break
        state = getattr(run, "state", None)
        row.setdefault("status", "done" if state == "finished" else state)
        if curves:
            row["curve"] = wandb_curve(run)
        rows.append(row)
    return rows


def load_wandb(path: str, group: Optional[str], tags: list, columns: dict) -> pd.DataFrame:
    """Runs of a W&B project ('entity/project'), filtered by group and tags, via wandb.Api (needs network)."""
    import wandb

    filters: dict = {}
    if group:
        filters["group"] = group
    if tags:
        filters["tags"] = {"$in": list(tags)}
    runs = wandb.Api().runs(path, filters=filters or None)
    # each run's history too (one request per run), so approach 1 gets its curves as from a results folder
    return pd.DataFrame(wandb_runs_to_rows(runs, columns, curves=True))


def load_results(source: str) -> pd.DataFrame:
    """Every run of a sweep as a DataFrame, one row per run (loss = final validation loss, N, D, C, status, ...):
    from a results folder, a runs.csv/Parquet table (e.g. from `sweep export`) or 'wandb:<entity>/<project>'."""
    return load_runs(source)


read_runs = load_results  # the name before `from sweep import load_results`


def load_runs(source: str, columns: Optional[dict] = None, group: Optional[str] = None,
              tags: Optional[list] = None, notes: Optional[list] = None) -> pd.DataFrame:
    """Dispatch on the source: 'wandb:<entity>/<project>', a table file, or a results folder."""
    columns = {**DEFAULT_COLUMNS, **(columns or {})}
    notes = [] if notes is None else notes
    if str(source).startswith("wandb:"):
        return load_wandb(str(source)[len("wandb:"):], group, tags or [], columns)
    path = Path(source)
    if not path.exists():
        raise FitInputError(f"input {source} does not exist: give a results folder, a .csv/.parquet table or wandb:<entity>/<project>")
    if path.is_dir():
        return load_results_folder(path, notes)
    return load_table(path, columns)


def warn(notes: list, msg: str) -> None:
    """Note a problem with the input for the fit's report and log it."""
    notes.append(msg)
    log.warning(msg)
