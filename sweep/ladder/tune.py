"""`sweep tune input=<results folder>`: find the learning-rate rule a ladder should use, from a tuning sweep.

A tuning sweep is a grid with `experiment.lr_multipliers` (`conf/experiment/lr_tune.yaml`): each size
trained at a log grid of learning rates. Per size the best LR is the vertex of a parabola in log LR
through the grid's lowest points, refused when the lowest measured loss sits at the grid's edge (the
optimum may lie outside it). Across sizes, log LR* = log lr + exponent * log(N / ref) by least squares,
with a t interval on the exponent. The result is the `experiment.lr_exponent` / `train.lr` pair a ladder
takes, written with the table and a loss-vs-LR plot to `<folder>/tune/`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from sweep.config import ConfigError
from sweep.store.results import iter_results, write_bytes_atomic, write_json_atomic


@dataclass
class SizeOptimum:
    """The best learning rate of one model size."""

    n_params: int
    """N of this size, counted as the tuning sweep's param_convention."""
    shape: str
    """n_layer and d_model, e.g. 'L3-d48'."""
    lrs: List[float]
    """Learning rates tried, ascending."""
    losses: List[float]
    """Final validation loss at each."""
    lr_star: float
    """Vertex of the parabola in log LR."""
    loss_star: float
    """The parabola's loss at lr_star."""


class EdgeMinimum(ConfigError):
    """The lowest loss of a size is at the first or last LR of its grid."""


def best_lr(lrs: Sequence[float], losses: Sequence[float], label: str = "") -> tuple:
    """(LR*, loss at LR*): the vertex of the parabola in log LR through the lowest point and its two neighbours.

    Only the neighbours enter: loss against log LR is lopsided (a steep wall at high LR where training
    turns unstable, a slow rise at low LR), so a parabola through farther points pulls the vertex
    towards the gentler side. Refused with EdgeMinimum when the
    lowest measured loss is at either end of the grid, and with ConfigError when fewer than 3 LRs
    finished or the points bend the wrong way."""
    pts = sorted((float(a), float(b)) for a, b in zip(lrs, losses) if b is not None and math.isfinite(b))
    if len(pts) < 3:
        raise ConfigError(f"{label}: {len(pts)} learning rates finished; the parabola needs at least 3")
    x = np.log([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    i = int(np.argmin(y))
    if i == 0 or i == len(pts) - 1:
        side = "below" if i == 0 else "above"
        raise EdgeMinimum(f"{label}: the lowest loss ({y[i]:.4f}) is at the grid's {'lowest' if i == 0 else 'highest'} "
                          f"learning rate {pts[i][0]:.3g}, so the optimum may lie outside it: add multipliers {side} "
                          f"the grid (experiment.lr_multipliers) and run the sweep again")
    c2, c1, c0 = np.polyfit(x[i - 1:i + 2], y[i - 1:i + 2], 2)
    if c2 <= 0:
        raise ConfigError(f"{label}: the losses around the best LR do not form a basin (curvature {c2:.3g}); "
                          f"use a finer grid or longer runs")
    v = -c1 / (2 * c2)
    # the vertex may not leave the bracket of measured neighbours: beyond it the parabola is a guess
    v = float(np.clip(v, x[i - 1], x[i + 1]))
    return float(math.exp(v)), float(c0 + c1 * v + c2 * v * v)


def fit_rule(n_params: Sequence[float], lr_stars: Sequence[float], ref_params: float) -> dict:
    """Least squares of log LR* on log(N / ref): the LR at ref, the exponent, and the exponent's 95 % t interval
    (None with 2 sizes: no degrees of freedom left to size it)."""
    from scipy import stats

    x = np.log(np.asarray(n_params, float) / ref_params)
    y = np.log(np.asarray(lr_stars, float))
    if len(x) < 2 or np.ptp(x) == 0:
        raise ConfigError("tuning sweep: the LR rule needs at least 2 distinct sizes")
    slope, intercept = np.polyfit(x, y, 1)
    dof = len(x) - 2
    out = {"lr": float(math.exp(intercept)), "exponent": float(slope), "ref_params": float(ref_params),
           "n_sizes": len(x), "exponent_interval": None, "residual_sd_log": None}
    if dof > 0:
        resid = y - (intercept + slope * x)
        s = math.sqrt(float(resid @ resid) / dof)
        se = s / math.sqrt(float(((x - x.mean()) ** 2).sum()))
        t = float(stats.t.ppf(0.975, dof))
        out["exponent_interval"] = [float(slope - t * se), float(slope + t * se)]
        out["residual_sd_log"] = s
    return out


def collect(folder: Path) -> Dict[tuple, Dict[float, float]]:
    """{(n_params, shape): {lr: final loss}} of a tuning sweep's finished runs."""
    sizes: Dict[tuple, Dict[float, float]] = {}
    for _, r in iter_results(folder):
        if not r or r.get("status") != "done" or (r.get("meta") or {}).get("lr_multiplier") is None:
            continue
        model = r["config"]["model"]
        key = (int(r["n_params"]), f"L{model['n_layer']}-d{model['d_model']}")
        sizes.setdefault(key, {})[float(r["config"]["train"]["lr"])] = float(r["final_val_loss"])
    return sizes


def tune(folder: Path, ref_params: float) -> tuple:
    """(per-size optima, rule, refusals) from a tuning sweep's results folder."""
    sizes = collect(folder)
    if not sizes:
        raise ConfigError(f"{folder}: no finished runs of a tuning sweep (runs with experiment.lr_multipliers); "
                          f"run `sweep run experiment=lr_tune` first")
    optima, refused = [], []
    for (n, shape), by_lr in sorted(sizes.items()):
        lrs = sorted(by_lr)
        try:
            lr_star, loss_star = best_lr(lrs, [by_lr[a] for a in lrs], f"size {shape} (N={n:,})")
        except ConfigError as e:
            refused.append(str(e))
            continue
        optima.append(SizeOptimum(n, shape, lrs, [by_lr[a] for a in lrs], lr_star, loss_star))
    if len(optima) < 2:
        raise ConfigError("tuning sweep: fewer than 2 sizes have an interior best LR:\n  " + "\n  ".join(refused))
    rule = fit_rule([o.n_params for o in optima], [o.lr_star for o in optima], ref_params)
    return optima, rule, refused


def _plot(optima: List[SizeOptimum], rule: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for o in optima:
        line, = ax.plot(o.lrs, o.losses, "o-", label=f"{o.shape} (N={o.n_params / 1e3:.0f}k)")
        ax.plot([o.lr_star], [o.loss_star], "*", color=line.get_color(), markersize=12)
    ax.set_xscale("log")
    ax.set_xlabel("peak learning rate")
    ax.set_ylabel("final validation loss (nats/token)")
    ax.set_title(f"LR* = {rule['lr']:.3g} (N / {rule['ref_params']:.3g})^{rule['exponent']:.2f}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    write_bytes_atomic(path, tmp.read_bytes())
    tmp.unlink()


def override_line(rule: dict) -> str:
    """The overrides that make a ladder use the fitted rule."""
    return (f"train.lr={rule['lr']:.4g} experiment.lr_exponent={rule['exponent']:.3f} "
            f"experiment.lr_ref_params={rule['ref_params']:.6g}")


def report_text(optima: List[SizeOptimum], rule: dict, refused: List[str]) -> str:
    lines = ["# Learning-rate tuning", "",
             f"Rule: LR*(N) = {rule['lr']:.4g} x (N / {rule['ref_params']:.3g})^{rule['exponent']:.3f}"]
    ci = rule["exponent_interval"]
    lines.append(f"Exponent 95 % interval: [{ci[0]:.3f}, {ci[1]:.3f}] ({rule['n_sizes']} sizes)" if ci else
                 f"Exponent interval: none ({rule['n_sizes']} sizes leave no degrees of freedom to size it)")
    lines += ["", f"Use it: `{override_line(rule)}`", "", "| size | N | LRs tried | best LR | loss at best |",
              "|---|---:|---|---:|---:|"]
    for o in optima:
        lines.append(f"| {o.shape} | {o.n_params:,} | {', '.join(f'{a:.3g}' for a in o.lrs)} | {o.lr_star:.4g} | "
                     f"{o.loss_star:.4f} |")
    if refused:
        lines += ["", "Sizes left out:"] + [f"- {r}" for r in refused]
    lines += ["", "![loss vs learning rate](tune.png)", ""]
    return "\n".join(lines)


def log_to_wandb(optima: List[SizeOptimum], rule: dict, out: Path, mode: str, project: str, group: str) -> None:
    """One W&B run (job_type=tune): the per-size table, loss vs LR as an interactive line series, the PNG."""
    if mode == "disabled":
        return
    import wandb

    run = wandb.init(project=project, group=group, job_type="tune", mode=mode, dir=str(out), config={"rule": rule},
                     reinit="finish_previous")
    try:
        table = wandb.Table(columns=["shape", "n_params", "lr", "final_val_loss", "best_lr"])
        for o in optima:
            for a, loss in zip(o.lrs, o.losses):
                table.add_data(o.shape, o.n_params, a, loss, o.lr_star)
        run.log({"tune/runs": table,
                 "tune/loss_vs_lr": wandb.plot.line_series(xs=[o.lrs for o in optima], ys=[o.losses for o in optima],
                                                           keys=[o.shape for o in optima], title="loss vs peak LR",
                                                           xname="peak learning rate"),
                 "tune/plot": wandb.Image(str(out / "tune.png"))})
        run.summary.update({"lr": rule["lr"], "lr_exponent": rule["exponent"], "ref_params": rule["ref_params"]})
    finally:
        run.finish()


def _options(argv: List[str]) -> tuple:
    opts = dict(a.split("=", 1) for a in argv if "=" in a)
    unknown = set(opts) - {"input", "ref_params", "wandb.mode", "wandb.project"}
    if unknown or "input" not in opts:
        raise ConfigError("usage: sweep tune input=<results folder of a tuning sweep> [ref_params=1e5] "
                          "[wandb.mode=offline|online|disabled] [wandb.project=sweep]")
    if opts.get("wandb.mode", "offline") not in ("offline", "online", "disabled"):
        raise ConfigError(f"wandb.mode={opts['wandb.mode']}: must be offline, online or disabled")
    return (Path(opts["input"]), float(opts.get("ref_params", 1e5)), opts.get("wandb.mode", "offline"),
            opts.get("wandb.project", "sweep"))


def tune_command(argv: List[str]) -> int:
    folder, ref, mode, project = _options(argv)
    if not folder.is_dir():
        raise ConfigError(f"input={folder}: no such results folder")
    optima, rule, refused = tune(folder, ref)
    out = folder / "tune"
    out.mkdir(exist_ok=True)
    write_json_atomic(out / "lr_rule.json", {"rule": rule, "overrides": override_line(rule), "refused": refused,
                                             "sizes": [o.__dict__ for o in optima]})
    _plot(optima, rule, out / "tune.png")
    text = report_text(optima, rule, refused)
    write_bytes_atomic(out / "tune.md", text.encode())
    log_to_wandb(optima, rule, out, mode, project, folder.name)
    print(text)
    print(f"written: {out / 'lr_rule.json'}, {out / 'tune.md'}, {out / 'tune.png'}")
    return 0
