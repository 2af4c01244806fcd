"""Benchmark of the approach-3 fitter on Epoch's Chinchilla data (Besiroglu et al. 2024).

Times the full 4500-start initialisation grid and a 1000-resample bootstrap, and checks the grid
optimum against Epoch's published grid fit. With --scipy-loop it also runs the plain recipe (scipy
L-BFGS-B from each of the 4500 starts, one after another; minutes) and compares the optima.
Ends with one line: grid_seconds=<x> bootstrap_seconds=<y>.

With --methods it instead times `sweep fit` itself, one method at a time with 1000 resamples, as a user runs
it (a fresh process: backtest, conventions, report and plots included, W&B off), on Porian et al.'s
RefinedWeb "Reproducing Kaplan et al." table (107 runs) and on a simulated 1000-run IsoFLOP sweep. Ends
with one line per table: `runs=<n> approach1=<s> ... drift=<s>` (seconds), one per default method.

    python scripts/bench_fit.py [--n-boot 1000] [--scipy-loop]
    python scripts/bench_fit.py --methods
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from sweep.fit import approach3, registry

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "published" / "epoch-chinchilla" / "svg_extracted_data.csv"
EPOCH_GRID_FIT = {"E": 1.817236, "A": 477.8417, "B": 2143.8638, "alpha": 0.347313, "beta": 0.367183}
EPOCH_BOOT_SE = {"E": 0.02566, "A": 124.52, "B": 1293.28, "alpha": 0.01540, "beta": 0.02060}
DELTA = 1e-3


def load_epoch(path: Path = DATA):
    """Epoch's 240 points (5 highest losses dropped) as log N, log D, log L."""
    df = pd.read_csv(path)
    df = df[df["loss"] < sorted(df["loss"])[-5]]
    n, c, loss = df["Model Size"].to_numpy(), df["Training FLOP"].to_numpy(), df["loss"].to_numpy()
    return np.log(n), np.log(c / (6 * n)), np.log(loss)


def scipy_loop(log_n, log_d, log_l, grid):
    """The straightforward recipe: scipy L-BFGS-B (numerical gradient) from every start."""
    best_x, best_f = None, np.inf
    for x0 in grid:
        res = minimize(lambda th: float(approach3.objective(th, log_n, log_d, log_l, DELTA)[0]), x0, method="L-BFGS-B")
        if res.fun < best_f:
            best_x, best_f = res.x, float(res.fun)
    return best_x, best_f


PORIAN = DATA.parents[1] / "porian" / "porian_isoflop_points.csv"
METHODS = tuple(registry.defaults())


def time_methods(n_boot: int) -> None:
    """Wall time of `sweep fit fit.methods=[m]` per method on a 107-run published table and a 1000-run simulated one."""
    from sweep.fit.simulate import Law, isoflop_sweep

    with tempfile.TemporaryDirectory() as tmp:
        tables = []
        if PORIAN.is_file():
            p = pd.read_csv(PORIAN)
            p = p[p.config_id == "rw|base|long|kaplan|kaplan|train"]
            path = Path(tmp) / "porian_rw_kaplan.csv"
            pd.DataFrame({"n_params": p.n, "n_tokens": p.t, "flops": p.flops, "loss": p.loss}).to_csv(path, index=False)
            tables.append(path)
        path = Path(tmp) / "simulated_1000.csv"
        pd.DataFrame(isoflop_sweep(Law(), np.logspace(18, 21, 20), sizes_per_budget=50, spacing=1.06,
                                   seed=3)).to_csv(path, index=False)
        tables.append(path)
        for table in tables:
            runs = len(pd.read_csv(table))
            seconds = {}
            for m in METHODS:
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-m", "sweep.cli", "fit", f"input={table}", f"output={tmp}/fit-{m}",
                                "wandb.mode=disabled", f"fit.methods=[{m}]", f"fit.n_bootstrap={n_boot}"],
                               check=True, capture_output=True)
                seconds[m] = time.perf_counter() - t0
                print(f"{table.name}: sweep fit fit.methods=[{m}] fit.n_bootstrap={n_boot}: {seconds[m]:.1f} s", flush=True)
            print(f"runs={runs} " + " ".join(f"{m}={v:.1f}" for m, v in seconds.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scipy-loop", action="store_true", help="also run the slow plain scipy loop")
    parser.add_argument("--methods", action="store_true", help="time `sweep fit` per method instead")
    args = parser.parse_args()
    if args.methods:
        time_methods(args.n_boot)
        return
    log_n, log_d, log_l = load_epoch()
    grid = approach3.epoch_grid()

    t0 = time.perf_counter()
    fit = approach3.fit_grid(log_n, log_d, log_l, DELTA, grid)
    grid_seconds = time.perf_counter() - t0
    best = approach3.natural(fit.theta)
    print(f"points={log_n.size} starts={len(grid)} objective={fit.objective:.12g}")
    for k, v in best.items():
        print(f"  {k:6s} fitted={v:.6g} epoch_grid_fit={EPOCH_GRID_FIT[k]:.6g} rel_diff={v / EPOCH_GRID_FIT[k] - 1:+.2e}")
    print("distinct optima (objective, starts):", [(round(o[1], 9), o[2]) for o in fit.optima[:5]])

    starts = np.vstack([fit.theta] + [o[0] for o in fit.optima[1:3]])
    t0 = time.perf_counter()
    boot = approach3.bootstrap(log_n, log_d, log_l, DELTA, starts, args.n_boot, args.seed)
    bootstrap_seconds = time.perf_counter() - t0
    se = {k: float(np.std(v, ddof=1)) for k, v in approach3.lse_to_natural(boot).items()}
    for k, v in se.items():
        print(f"  bootstrap SE {k:6s} ours={v:.4g} epoch={EPOCH_BOOT_SE[k]:.4g} ratio={v / EPOCH_BOOT_SE[k]:.2f}")

    if args.scipy_loop:
        t0 = time.perf_counter()
        x, f = scipy_loop(log_n, log_d, log_l, grid)
        loop_seconds = time.perf_counter() - t0
        print(f"scipy loop: {loop_seconds:.1f} s objective={f:.12g} (batched: {fit.objective:.12g})")
        for k, v in approach3.natural(x).items():
            print(f"  {k:6s} scipy_loop={v:.6g} batched={best[k]:.6g} rel_diff={best[k] / v - 1:+.2e}")
    print(f"grid_seconds={grid_seconds:.2f} bootstrap_seconds={bootstrap_seconds:.2f}")


if __name__ == "__main__":
    main()
