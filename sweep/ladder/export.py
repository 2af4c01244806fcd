"""`sweep export`: a sweep as a table, one row per run, for pandas, a spreadsheet or another fitter.

Rows are the experiment's planned runs, finished or not, followed by any other run found in the sweep's
folder (a verification run, a run of an earlier plan), so nothing measured is left out and nothing
planned is hidden. Finished runs carry their measured numbers; the others their planned N, D and C.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import List, Optional

from sweep.config import to_dict
from sweep.store.results import TABLE_COLUMNS, sweep_dir, table_row, write_bytes_atomic
from sweep.store.runs import RunFolder, run_folders

FORMATS = ("csv", "parquet")

COLUMNS = TABLE_COLUMNS + ("planned", "run_index")
"""runs.csv's columns, plus whether the current plan holds the run and its index there. Both conventions:
n_params (Chinchilla, every parameter) and n_params_non_embedding (Kaplan); flops (exact, attention
included) and flops_6nd. Grid coordinates: experiment, budget_index, budget_flops, n_layer, d_model, seed."""


def planned_row(run) -> dict:
    """A planned run's row before (or without) a result: its planned numbers and grid coordinates, as the row
    its result will have (table_row of the same fields)."""
    cfg = run.cfg
    planned = {k: getattr(run, k) for k in ("run_id", "run_name", "n_params", "n_params_non_embedding", "n_tokens",
                                            "tokens_per_param", "flops", "flops_6nd", "steps")}
    meta = dict(cfg.meta or {})
    return table_row({**planned, **{k: meta.get(k) for k in ("role", "branch", "parent")},
                      "seed": cfg.train.seed, "vocab_size": cfg.tokenizer.vocab_size, "config": to_dict(cfg),
                      "meta": meta})


def export_rows(runs: list, sweep_path: Path) -> List[dict]:
    """The table: every planned run (with its measured numbers once it has a result), then every other run in
    the sweep's folder that has a result."""
    rows, seen = [], set()
    for run in runs:
        folder = RunFolder(sweep_path / "runs" / run.run_id)
        result = folder.result()
        row = planned_row(run)
        if result is not None:
            row.update({k: v for k, v in table_row(result).items() if v is not None})
        row.update(status=str(folder.state().status), planned=True, run_index=run.index)
        rows.append(row)
        seen.add(run.run_id)
    for folder in run_folders(sweep_path):
        result = folder.result()
        if folder.path.name in seen or result is None:
            continue
        rows.append({**table_row(result), "planned": False, "run_index": None})
    return [{k: row.get(k) for k in COLUMNS} for row in rows]


def write_table(rows: List[dict], out: Path, fmt: str) -> Path:
    """Write the rows atomically as csv or parquet (a crash leaves the old file or none, never half of one)."""
    import io

    import pandas as pd

    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    buffer = io.BytesIO()
    if fmt == "csv":
        frame.to_csv(buffer, index=False)
    else:
        frame.to_parquet(buffer, index=False)
    write_bytes_atomic(out, buffer.getvalue())
    return out


def split_export_args(argv: List[str]) -> tuple[List[str], str, Optional[Path]]:
    """(Hydra overrides, format, output path) from `sweep export` arguments; an unknown format is refused
    before anything is read."""
    from sweep.config import ConfigError

    fmt, out, rest = "csv", None, []
    for a in argv:
        if a.startswith("format="):
            fmt = a.split("=", 1)[1]
        elif a.startswith("out="):
            out = Path(a.split("=", 1)[1])
        else:
            rest.append(a)
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt!r} is not a format `sweep export` writes: use format=csv or format=parquet")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401  (pandas writes parquet through it; `datasets` depends on it)
        except ImportError as exc:
            raise ConfigError("format=parquet needs pyarrow (pip install pyarrow), or use format=csv") from exc
    return rest, fmt, out


def export_command(argv: List[str]) -> int:
    from sweep.ladder.sweep_config import load_sweep, planned_grid

    overrides, fmt, out = split_export_args(argv)
    sc = load_sweep(overrides)
    path = sweep_dir(sc.results_dir, sc.sweep_name)
    grid, _ = planned_grid(sc)
    rows = export_rows(grid.runs, path)
    out = write_table(rows, out or path / f"export.{fmt}", fmt)
    counts = Counter(r["status"] for r in rows)
    print(f"{len(rows)} runs ({', '.join(f'{v} {k}' for k, v in sorted(counts.items()))}) -> {out}")
    return 0
