"""Check loaded runs into fit-ready points: `prepare` filters by status, refuses mixed corpora, duplicates and bad
values, picks the parameter and FLOP conventions, and groups the runs into IsoFLOP budgets and replicates (`FitData`).

Every source (sweep/fit/sources.py: results folder, table, W&B) passes through the same checks, which every method
relies on. The loaders are importable from here too (`from sweep.fit.inputs import load_runs`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pandas as pd

from sweep.fit.config import FitConfig, FitInputError
from sweep.fit.sources import (DEFAULT_COLUMNS, RESULT_KEYS, Curve, clean_curve, load_results,  # noqa: F401
                               load_results_folder, load_runs, load_table, load_wandb, read_curve, read_runs,
                               wandb_curve, wandb_runs_to_rows, warn)
from sweep.store.runs import Status


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
            warn(notes, f"excluded {len(diverged)} diverged run(s): {', '.join(map(str, _labels(diverged)))}")
        other = df.loc[~status.isin(["done", "diverged"])]
        if len(other):
            warn(notes, f"excluded {len(other)} run(s) not done (status {sorted(set(status[other.index]))})")
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
            cv = clean_curve(cv.tokens, cv.loss)
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
