"""Load runs for a fit (results folder, CSV/Parquet table, W&B) and check them into fit-ready points.

Why ~450 lines: three sources share one column map and one set of checks (duplicates, NaNs, budgets,
replicates, curves), which every method relies on; splitting them would let the sources drift apart.
"""

from __future__ import annotations

import json
import logging
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
import pandas as pd

from sweep.fit.config import FitConfig, FitInputError
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
    curve = _clean(np.asarray(tokens), np.asarray(loss))
    return (curve if curve.tokens.size else None), bad


def _clean(tokens: np.ndarray, loss: np.ndarray) -> Curve:
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
            _warn(notes, f"skipped {p}: unreadable or truncated result.json ({exc}); rerun or delete that run")
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
        _warn(notes, f"{len(no_curve)} finished run(s) without a readable val_loss curve in metrics.jsonl "
                     f"({', '.join(no_curve[:3])}{', ...' if len(no_curve) > 3 else ''}): approach 1 uses their final loss only")
    if partial:
        _warn(notes, f"skipped unreadable lines (e.g. a truncated last line) in {len(partial)} metrics.jsonl: "
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
    curve = _clean(np.asarray(tokens), np.asarray(loss))
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


@dataclass
class FitData:
    """Checked runs in the chosen conventions, as arrays (one entry per run)."""

    n: np.ndarray
    """Parameters under the chosen convention."""
    d: np.ndarray
    """Training tokens."""
    c: np.ndarray
    """Training compute under the chosen FLOP convention."""
    loss: np.ndarray
    """Final validation loss (nats/token)."""
    names: list
    """Run names or ids, for messages and residual tables."""
    flops_per_nd: float
    """k in C = k N D: 6 for '6nd', the median of C / (N D) for 'exact'."""
    n_branches: int = 0
    """How many runs are WSD cooldown branches."""
    available_conventions: list = field(default_factory=list)
    """(param_convention, flop_convention) pairs these runs support."""
    curves: Optional[list] = None
    """Per run, its val-loss Curve ending at (d, loss), or None; None as a whole for tables and W&B (no curves)."""
    budget: Optional[np.ndarray] = None
    """IsoFLOP budget id per run (0 = the smallest compute): the planner's budget_index when every run has one,
    else runs whose compute agrees within budget_tolerance."""
    budget_source: str = "compute"
    """'planner' (budget_index from the results) or 'compute' (grouped by C within budget_tolerance)."""
    replicate: Optional[np.ndarray] = None
    """Replicate-group id per run: runs at the same (N, D), e.g. seeds, share one."""

    def __post_init__(self):
        if self.budget is None:
            self.budget = group_budgets(self.c, 0.05)
        if self.replicate is None:
            self.replicate = replicate_groups(self.n, self.d)

    def subset(self, idx) -> "FitData":
        idx = np.asarray(idx)
        curves = None if self.curves is None else [self.curves[i] for i in idx]
        return FitData(self.n[idx], self.d[idx], self.c[idx], self.loss[idx], [self.names[i] for i in idx],
                       self.flops_per_nd, self.n_branches, self.available_conventions, curves,
                       self.budget[idx], self.budget_source, self.replicate[idx])

    def with_loss(self, loss: np.ndarray) -> "FitData":
        """The same runs with other losses (a parametric resample); curves are dropped."""
        return dataclasses.replace(self, loss=np.asarray(loss, float), curves=None)


def _warn(notes: list, msg: str) -> None:
    notes.append(msg)
    log.warning(msg)


def _numeric(df: pd.DataFrame, col: str) -> Optional[np.ndarray]:
    if col not in df.columns:
        return None
    vals = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
    return None if np.all(np.isnan(vals)) else vals


def to_frame(runs) -> pd.DataFrame:
    """A DataFrame from a DataFrame or a list of dicts."""
    if isinstance(runs, pd.DataFrame):
        return runs.copy()
    if isinstance(runs, (list, tuple)):
        return pd.DataFrame(list(runs))
    raise FitInputError(f"runs must be a pandas DataFrame or a list of dicts, got {type(runs).__name__}")


def prepare(runs, cfg: FitConfig, notes: Optional[list] = None) -> FitData:
    """Filter by status, refuse mixed corpora, pick the conventions and check every value a fit needs."""
    notes = [] if notes is None else notes
    df = to_frame(runs).reset_index(drop=True)
    if "status" in df.columns:
        status = df["status"].fillna("done").astype(str)
        diverged = df.loc[status == Status.DIVERGED.value]
        if len(diverged):
            _warn(notes, f"excluded {len(diverged)} diverged run(s): {', '.join(map(str, _labels(diverged)))}")
        other = df.loc[~status.isin(["done", "diverged"])]
        if len(other):
            _warn(notes, f"excluded {len(other)} run(s) not done (status {sorted(set(status[other.index]))})")
        df = df.loc[status == Status.DONE.value].reset_index(drop=True)
    for col, what in (("corpus_hash", "corpora"), ("tokenizer_hash", "tokenizers")):
        if col in df.columns:
            values = set(df[col].dropna().astype(str))
            if len(values) > 1:
                raise FitInputError(f"runs from different {what} in one fit ({col} takes {len(values)} values: "
                                    f"{sorted(values)[:4]}); losses are not comparable: fit each {col} separately")
    if "role" in df.columns:
        verify = df["role"].astype(str) == "verification"
        if verify.any():
            notes.append(f"left out {int(verify.sum())} verification run(s) (`sweep verify`): they test the fit, "
                         "they are not part of it")
            df = df.loc[~verify].reset_index(drop=True)
    if len(df) == 0:
        raise FitInputError("no finished runs to fit (status 'done'); train some runs first")
    loss = _numeric(df, "loss")
    n_total = _numeric(df, "n_params")
    n_nonemb = _numeric(df, "n_params_non_embedding")
    n_tokens = _numeric(df, "n_tokens")
    flops = _numeric(df, "flops")
    if loss is None:
        raise FitInputError("no loss column: map yours with columns.loss=<name> (e.g. columns.loss=val_loss)")
    if n_total is None:
        raise FitInputError("no n_params column: map yours with columns.n_params=<name>")
    if n_tokens is None and flops is None:
        raise FitInputError("need n_tokens or flops: map one with columns.n_tokens=<name> or columns.flops=<name>")
    labels = [str(x) for x in _labels(df)]
    _refuse_bad_values(labels, {"loss": loss, "n_params": n_total, "n_tokens": n_tokens, "flops": flops,
                                "n_params_non_embedding": n_nonemb if cfg.param_convention == "non_embedding" else None})
    _refuse_duplicates(df, labels, loss, n_total, n_tokens if n_tokens is not None else flops)
    if n_tokens is None:
        n_tokens = flops / (6.0 * n_total)  # C = 6 N D with the table's own N
    if cfg.param_convention == "non_embedding":
        if n_nonemb is None:
            raise FitInputError("param_convention=non_embedding needs an n_params_non_embedding column "
                                "(map it with columns.n_params_non_embedding=<name>) or use param_convention=total")
        n = n_nonemb
    else:
        n = n_total
    exact = cfg.flop_convention == "exact" and flops is not None
    if cfg.flop_convention == "exact" and flops is None:
        # The default convention on a table that only has N and D: 6ND is all there is.
        notes.append("no flops column: compute is C = 6 N D (map one with columns.flops=<name> for exact FLOPs)")
    c = flops if exact else 6.0 * n * n_tokens
    _refuse_bad_values(labels, {"parameter count": n, "token count": n_tokens, "compute": c})
    branch = df["branch"].fillna(False).astype(bool).to_numpy() if "branch" in df.columns else np.zeros(len(df), bool)
    conventions = [(p, f) for p in ("total", "non_embedding") for f in ("6nd", "exact")
                   if (p == "total" or n_nonemb is not None) and (f == "6nd" or flops is not None)]
    budget_index = _numeric(df, "budget_index")
    if budget_index is not None and np.all(np.isfinite(budget_index)):
        # The planner's budgets: under a convention other than the one it planned in (6ND against exact
        # FLOPs), one budget's runs spread over 10-20% of compute and grouping by C would split it.
        budget, source = np.unique(budget_index, return_inverse=True)[1].ravel(), "planner"
        budget = _order_by_compute(budget, c)
    else:
        if budget_index is not None and np.any(np.isfinite(budget_index)):
            notes.append("some runs have a planner budget_index and some do not: budgets are grouped by compute "
                         f"within budget_tolerance={cfg.budget_tolerance}")
        budget, source = group_budgets(c, cfg.budget_tolerance), "compute"
    return FitData(n=n, d=n_tokens, c=c, loss=loss, names=labels,
                   flops_per_nd=float(np.median(c / (n * n_tokens))) if exact else 6.0,
                   n_branches=int(branch.sum()), available_conventions=conventions,
                   curves=_aligned_curves(df, n_tokens, loss), budget=budget, budget_source=source)


def _order_by_compute(ids: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Renumber budget ids 0.. in order of each budget's median compute."""
    uniq = np.unique(ids)
    order = np.argsort([np.median(c[ids == u]) for u in uniq])
    rank = np.empty(uniq.size, dtype=int)
    rank[order] = np.arange(uniq.size)
    return rank[np.searchsorted(uniq, ids)]


def _refuse_bad_values(labels: list, columns: dict) -> None:
    """A fit cannot use a NaN, infinite, zero or negative N, D, C or loss: refuse, naming the rows."""
    for name, arr in columns.items():
        if arr is None:
            continue
        bad = np.flatnonzero(~np.isfinite(arr) | (arr <= 0))
        if bad.size:
            shown = ", ".join(f"{labels[i]} ({name}={arr[i]:.4g})" for i in bad[:5])
            raise FitInputError(f"non-finite or non-positive {name} in {bad.size} run(s): {shown}"
                                f"{', ...' if bad.size > 5 else ''}: drop or fix those rows")


def _refuse_duplicates(df: pd.DataFrame, labels: list, loss, n, d) -> None:
    """The same run twice (one run_id twice, or equal N, D and loss) would count its point twice: refuse, naming it.

    Runs at the same (N, D) with different losses are replicates (e.g. seeds) and are kept.
    """
    keys = []
    if "run_id" in df.columns and df["run_id"].notna().all():
        keys.append(("run_id", [str(x) for x in df["run_id"]]))
    keys.append(("N, D and loss", [(float(a), float(b), float(c)) for a, b, c in zip(n, d, loss)]))
    for what, key in keys:
        seen: dict = {}
        dups = []
        for i, k in enumerate(key):
            if k in seen:
                dups.append(f"{labels[i]} = {labels[seen[k]]}")
            else:
                seen[k] = i
        if dups:
            raise FitInputError(f"{len(dups)} duplicate row(s) (same {what}): {'; '.join(dups[:5])}"
                                f"{'; ...' if len(dups) > 5 else ''}: each run must appear once; drop the copies")


def replicate_groups(n: np.ndarray, d: np.ndarray, rel_tol: float = 1e-6) -> np.ndarray:
    """Group id per run: runs whose N and D agree to rel_tol are replicates of one point (seeds)."""
    key = np.column_stack([np.round(np.log(n) / rel_tol), np.round(np.log(d) / rel_tol)])
    return np.unique(key, axis=0, return_inverse=True)[1].ravel()


def _aligned_curves(df: pd.DataFrame, d: np.ndarray, loss: np.ndarray) -> Optional[list]:
    """Each run's curve cut at its own D and ended by its final point (d, loss), or None without a curve column.

    The final point comes from result.json so that the curves agree with the loss every other method fits
    (intermediate evaluations may use fewer validation tokens than the final one).
    """
    if "curve" not in df.columns or not any(isinstance(x, Curve) for x in df["curve"]):
        return None
    out = []
    for cv, d_i, l_i in zip(df["curve"], d, loss):
        if isinstance(cv, Curve):
            cv = _clean(cv.tokens, cv.loss)
            before = cv.tokens < d_i * (1 - 1e-9)
            out.append(Curve(np.append(cv.tokens[before], d_i), np.append(cv.loss[before], l_i)))
        else:
            out.append(Curve(np.array([d_i]), np.array([l_i])))
    return out


def _labels(df: pd.DataFrame) -> list:
    for col in ("run_name", "run_id", "name"):
        if col in df.columns and df[col].notna().all():
            return list(df[col])
    return [f"row {i}" for i in df.index]


def group_budgets(c: np.ndarray, tolerance: float) -> np.ndarray:
    """Budget id per run: sorted by compute, a new budget starts when C exceeds the budget's first C by more than tolerance."""
    order = np.argsort(c)
    ids = np.empty(c.size, dtype=int)
    current, start = -1, None
    for i in order:
        if start is None or c[i] > start * (1 + tolerance):
            current += 1
            start = c[i]
        ids[i] = current
    return ids
