"""How much ladder a law needs: refit a finished main job on parts of its ladder and score each refit.

    python scripts/span_study.py [results/default] [--n-bootstrap 100]

The main job (`sweep main`) leaves a 4-budget adaptive ladder and a verification run at 5x its largest compute.
This refits approach 3 (and the other methods, for the recommended prediction) on
- the first k budgets, k = 2, 3, 4: compute spans of 1.4x, 2x and 2.8x;
- every budget with only the 3 sizes nearest each budget's minimum instead of all of them;
and prints, for each: the span, the sizes per budget, the width of a's 95% interval for approaches 2 and 3,
approach 3's E, and the error and 95% PI half-width of approach 3 and of the recommended prediction on the
verification run (whose distance from the fitted compute grows as budgets are left out).

It closes with the width of approach 3's a interval against log10 of the span, fitted as width = k log10(span)^p,
and the span at which that width would reach 0.15, by that fit and by p = -1 through the full ladder (how a slope's
interval shrinks with its lever arm at a fixed number of points and noise):
    a3_width_exponent=<p> span_needed_for_a_width_0.15=<x> span_needed_if_width_falls_as_1_over_log_span=<x>
    a_width_at_full_span=<w> verify_error_full=<e>
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
METHODS = ["approach1", "approach2", "approach3", "kaplan"]


def load(folder: Path):
    from sweep.fit.inputs import load_results_folder

    rows = load_results_folder(folder, [], curves=False)
    rows = rows[rows["status"] == "done"]
    verify = rows[rows["role"].astype(str) == "verification"]
    ladder = rows[rows["role"].astype(str) != "verification"].copy()
    if verify.empty:
        raise SystemExit(f"{folder}: no verification run; run `sweep main` first")
    return ladder, verify.iloc[0]


def nearest_sizes(ladder, k: int):
    """Each budget's k runs nearest its lowest loss in log N (seed replicates count as their size)."""
    keep = []
    for _, group in ladder.groupby("budget_index"):
        best = group.loc[group["loss"].idxmin(), "n_params"]
        sizes = sorted(group["n_params"].unique(), key=lambda n: abs(np.log(n / best)))[:k]
        keep.append(group[group["n_params"].isin(sizes)])
    import pandas as pd

    return pd.concat(keep)


def a_width(result: dict, method: str):
    r = result.get(method, {})
    if r.get("status") != "ok":
        return None
    iv = (r.get("exponent_intervals") or {}).get("a")
    return None if not iv else float(iv[1] - iv[0])


def study(name: str, part, verify, n_bootstrap: int) -> dict:
    from sweep.fit import FitConfig, fit
    from sweep.fit.holdout import predict_run

    cfg = FitConfig(n_bootstrap=n_bootstrap, methods=METHODS, compare_conventions=False, budgets=[])
    result = fit(part, cfg)
    c = float(verify["flops"])
    p = predict_run(result, float(verify["n_params"]), float(verify["n_tokens"]), c, float(verify["loss"]))
    a3, rec = p["methods"].get("approach3", {}), p["methods"].get(p["recommended"] or "", {})

    def half(v):
        pi = v.get("interval")
        return None if not pi else (pi[1] - pi[0]) / 2 / v["predicted"]

    lo, hi = result["data"]["flops_range"]
    return {"name": name, "span": hi / lo, "budgets": int(part["budget_index"].nunique()),
            "sizes": round(len(part) / part["budget_index"].nunique(), 1), "x": c / hi,
            "a2": a_width(result, "approach2"), "a3": a_width(result, "approach3"),
            "E": (result.get("approach3", {}).get("params") or {}).get("E"),
            "err3": a3.get("rel_error"), "pi3": half(a3), "rec": p["recommended"], "err_rec": rec.get("rel_error"),
            "pi_rec": half(rec)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", default=str(ROOT / "results" / "default"))
    parser.add_argument("--n-bootstrap", type=int, default=100)
    args = parser.parse_args(argv)
    logging.getLogger("sweep").setLevel(logging.ERROR)
    ladder, verify = load(Path(args.folder))
    budgets = sorted(ladder["budget_index"].unique())
    parts = [(f"first {k} budgets", ladder[ladder["budget_index"].isin(budgets[:k])]) for k in range(2, len(budgets) + 1)]
    parts.append(("all budgets, 3 sizes each", nearest_sizes(ladder, 3)))
    rows = [study(name, part, verify, args.n_bootstrap) for name, part in parts]

    def pct(v):
        return "n/a" if v is None else f"{100 * v:+.1f}%"

    def num(v, f="{:.2f}"):
        return "n/a" if v is None else f.format(v)

    print(f"verification run: N={verify['n_params']:.3g} D={verify['n_tokens']:.3g} C={verify['flops']:.3g} "
          f"loss={verify['loss']:.4f}")
    print(f"{'refit on':28} {'span':>5} {'sizes':>5} {'x':>5} {'a2 width':>8} {'a3 width':>8} {'E':>5} "
          f"{'a3 err':>7} {'a3 PI':>6} {'recommended':>12} {'err':>7} {'PI':>6}")
    for r in rows:
        print(f"{r['name']:28} {r['span']:5.2f} {r['sizes']:5} {r['x']:5.1f} {num(r['a2']):>8} {num(r['a3']):>8} "
              f"{num(r['E']):>5} {pct(r['err3']):>7} {pct(r['pi3']).lstrip('+'):>6} {str(r['rec']):>12} "
              f"{pct(r['err_rec']):>7} {pct(r['pi_rec']).lstrip('+'):>6}")
    spans = [(r["span"], r["a3"]) for r in rows[:-1] if r["a3"] is not None and r["span"] > 1]
    full = rows[len(budgets) - 2]
    if len(spans) >= 2 and full["a3"] is not None:
        # width = k * log10(span)^p, least squares in logs; p = -1 is a slope's SE at a fixed number of points
        # and noise, but fewer budgets also mean fewer points, so the fitted p is the one this ladder shows
        u = np.log([np.log10(sp) for sp, _ in spans])
        w = np.log([wd for _, wd in spans])
        p, log_k = np.polyfit(u, w, 1)
        free = 10 ** np.exp((np.log(0.15) - log_k) / p) if p < 0 else float("inf")
        anchored = full["span"] ** (full["a3"] / 0.15)  # p = -1 through the full ladder's width
        print(f"a3_width_exponent={p:.2f} span_needed_for_a_width_0.15={free:.3g} "
              f"span_needed_if_width_falls_as_1_over_log_span={anchored:.3g} a_width_at_full_span={full['a3']:.3f} "
              f"verify_error_full={full['err3']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
