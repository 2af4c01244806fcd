"""`sweep status`'s table: what each run of a sweep is doing, read through sweep.store.runs.

A run is `done`, `diverged` or `failed` when its result says so, `running` while some process holds
its lock (an fcntl lock dies with its process, so a killed run never looks running), and `pending`
otherwise (with the step of its checkpoint when an interrupted run will resume).
"""

from __future__ import annotations

from pathlib import Path
from typing import List

from sweep.store.results import human
from sweep.store.runs import RunFolder, RunState, Status


def run_state(run_dir: Path) -> RunState:
    """The state of the run whose folder is `run_dir` (which may not exist yet)."""
    return RunFolder(Path(run_dir)).state()


def status_table(rows: List[dict]) -> str:
    """rows: {'index', 'run_name', 'run_id', 'n_params', 'n_tokens', 'flops', 'state'}; a table and totals."""
    head = f"{'#':>3} {'run':<22} {'id':<12} {'N':>7} {'D':>7} {'C':>9}  {'status':<9} detail"
    lines = [head, "-" * len(head)]
    counts, flops_done, flops_total = {}, 0.0, 0.0
    for r in rows:
        s: RunState = r["state"]
        counts[str(s.status)] = counts.get(str(s.status), 0) + 1
        flops_total += r["flops"]
        detail = ""
        if s.status == Status.DONE:
            flops_done += r["flops"]
            detail = f"val_loss={s.final_val_loss:.4f}" if s.final_val_loss is not None else ""
            if s.wall_seconds:
                detail += f" in {s.wall_seconds:.0f}s"
        elif s.status in (Status.RUNNING, Status.PENDING) and s.step is not None and s.steps:
            flops_done += r["flops"] * s.step / s.steps
            where = f" on {s.holder.get('host')} pid {s.holder.get('pid')}" if s.holder else ""
            verb = "step" if s.status == Status.RUNNING else "checkpointed run at step"
            detail = f"{verb} {s.step}/{s.steps} ({100 * s.step / s.steps:.0f}%){where}"
        elif s.status == Status.DIVERGED:
            flops_done += r["flops"]
        lines.append(f"{r['index']:>3} {r['run_name']:<22} {r['run_id']:<12} {human(r['n_params']):>7} "
                     f"{human(r['n_tokens']):>7} {r['flops']:>9.3g}  {s.status:<9} {detail}".rstrip())
        if s.status == Status.FAILED and s.error:
            lines.extend("      | " + line for line in s.error.splitlines())
    lines.append("-" * len(head))
    order = [str(x) for x in (Status.DONE, Status.RUNNING, Status.PENDING, Status.DIVERGED, Status.FAILED)]
    summary = ", ".join(f"{counts[k]} {k}" for k in order if counts.get(k))
    pct = 100 * flops_done / flops_total if flops_total else 0.0
    lines.append(f"total: {len(rows)} runs ({summary or 'none'}); FLOPs {flops_done:.3g} / {flops_total:.3g} "
                 f"({pct:.0f}%)")
    return "\n".join(lines)
