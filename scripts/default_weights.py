"""Does each default method earn stacking weight on simulated sweeps whose true law is its own?

A default method is kept only if, where its law is the truth, the backtest's stacking gives it weight: otherwise it
adds a law to the report that the data can never favour. Simulates IsoFLOP sweeps (5 budgets from 1e18 to 1e20
FLOPs x 7 sizes, 1% noise) from three laws: Chinchilla's (approaches 1-3 model its frontier and L(N, D)), the
one-exponent law (alpha = beta, the shared_exponent method's) and Kaplan et al.'s joint law (the kaplan method's).
Each sweep is fitted with the default methods and its backtest; the script prints, per law, the mean at-optimum and
per-run stacking weights of each method and how often the gate passed.

    python scripts/default_weights.py [--seeds 3] [--n-bootstrap 50]

docs/decisions/default-methods.md has the figures and the command that printed them.
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np

from sweep.fit import FitConfig, fit, registry
from sweep.fit.simulate import KaplanLaw, Law, isoflop_sweep


LAWS = {"chinchilla": Law(), "one_exponent": Law(alpha=0.31, beta=0.31), "kaplan": KaplanLaw()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=2000)
    ap.add_argument("--n-bootstrap", type=int, default=50)
    ap.add_argument("--laws", default=",".join(LAWS))
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    methods = registry.defaults()
    for name in args.laws.split(","):
        at_opt, per_run, gates = [], [], []
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            t0 = time.perf_counter()
            runs = isoflop_sweep(LAWS[name], np.logspace(18, 20, 5), sizes_per_budget=7, noise=0.01, seed=seed)
            rec = fit(runs, FitConfig(n_bootstrap=args.n_bootstrap, seed=seed, compare_conventions=False,
                                      budgets=[]))["recommended"]
            at_opt.append([rec["weights"].get(m, 0.0) for m in methods])
            per_run.append([rec["weights_per_run"].get(m, 0.0) for m in methods])
            gates.append(bool(rec["stacked"]))
            print(f"  {name} seed {seed}: {time.perf_counter() - t0:.0f}s, answer {rec['method']}", flush=True)
        print(f"{name}: gate passed {sum(gates)}/{len(gates)}")
        print(f"  {'method':16s} {'at optimum':>10s} {'per run':>8s}")
        for j, m in enumerate(methods):
            print(f"  {m:16s} {np.mean([w[j] for w in at_opt]):10.3f} {np.mean([w[j] for w in per_run]):8.3f}")


if __name__ == "__main__":
    main()
