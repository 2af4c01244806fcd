"""Fit small, predict large, on sweeps others trained: the published tables in ../shared/data/published.

    python scripts/check_public.py [--n-bootstrap 200] [--tables epoch,porian,gadre] [--porian-configs 15]
        [--methods approach1,...,approach3_valley,approach3_upper]

Each table is cut at a size or a compute, the fitter (every method, its within-data backtest and its recommended
prediction) sees only what is below the cut, and every run above it is predicted at its own N and D:
- epoch: Epoch's replication of Chinchilla's runs with Epoch's filter (the 5 highest losses dropped): fit
  N <= 1B, predict the larger runs;
- porian: each of Porian et al.'s 15 configurations on its own: fit budgets <= 1e18 FLOPs, predict beyond
  (up to 26x), from their per-run losses;
- gadre: Gadre et al.'s models per training set (C4 validation loss): fit N < 1B, predict the 1.4B and 6.9B runs.
Each table's runs weigh the same in its figures (porian's configurations are pooled; each has its own fit).

Per table, per method and for the recommended prediction: median, 90th-percentile and max |relative error|,
the 95% PI's coverage and its median half-width (relative). Then, per table, what choosing one law per fit could
reach at best: each fit's best single method in hindsight (the one with the lowest 90th-percentile error
on that fit's held-out runs, chosen after seeing them; one fit per table on Epoch's, one per configuration or training
set on the others), its runs pooled; and the narrowest median half-width the recommended points allow at 90%
coverage (`narrowest_halfwidth`, also after seeing them). It closes with one line for the recommended prediction
over all tables, each table weighted equally (the mean of the tables' figures), in fractions:
    public_median_err=<f> public_p90_err=<f> public_max_err=<f> public_pi95_coverage=<f> public_pi95_halfwidth=<f>
Nothing here is tuned to these tables: the fitter's settings are its defaults.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sweep.fit import registry
from sweep.fit.simulate import narrowest_halfwidth  # noqa: F401  (shared with check_coverage; tests import it here)

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT.parent / "shared" / "data" / "published"
METHODS = registry.defaults()
LEAD = "recommended"


def rows_of(frame: pd.DataFrame, n: str, d: str, loss: str, flops: str | None = None) -> list[dict]:
    """Fit input rows: N, D, C = 6ND (every table here counts compute that way) and the loss."""
    out = []
    for i, r in enumerate(frame.to_dict("records")):
        nn, dd = float(r[n]), float(r[d])
        c = float(r[flops]) if flops else 6.0 * nn * dd
        out.append({"run_id": f"r{i}", "n_params": nn, "n_tokens": dd, "flops": c, "loss": float(r[loss]),
                    "status": "done"})
    return out


def epoch_splits() -> list[tuple[str, list, list]]:
    t = pd.read_csv(PUBLISHED / "epoch-chinchilla" / "svg_extracted_data.csv")
    t = t[t["loss"] < sorted(t["loss"])[-5]].copy()  # Epoch's filter: the 5 highest losses out
    t["tokens"] = t["Training FLOP"] / (6 * t["Model Size"])
    rows = rows_of(t, "Model Size", "tokens", "loss", "Training FLOP")
    return [("epoch", [r for r in rows if r["n_params"] <= 1e9], [r for r in rows if r["n_params"] > 1e9])]


def porian_splits(limit: int) -> list[tuple[str, list, list]]:
    t = pd.read_csv(PUBLISHED / "porian" / "porian_isoflop_points.csv")
    out = []
    for config in sorted(t["config_id"].unique())[:limit]:
        rows = rows_of(t[t["config_id"] == config], "n", "t", "loss", "flops")
        fit_rows = [r for r in rows if r["flops"] <= 1e18]
        held = [r for r in rows if r["flops"] > 1e18]
        if fit_rows and held:
            out.append((f"porian {config}", fit_rows, held))
    return out


def gadre_splits() -> list[tuple[str, list, list]]:
    t = pd.read_csv(PUBLISHED / "gadre" / "gadre_loss_table.csv")
    out = []
    for dataset in sorted(t["dataset"].unique()):
        rows = rows_of(t[t["dataset"] == dataset], "N", "D", "loss_c4_val")
        fit_rows, held = [r for r in rows if r["n_params"] < 1e9], [r for r in rows if r["n_params"] >= 1.4e9]
        if fit_rows and held:
            out.append((f"gadre {dataset}", fit_rows, held))
    return out


def score_split(name: str, fit_rows: list, held: list, n_bootstrap: int) -> list[dict]:
    """One row per (held-out run, method): its relative error, coverage and PI half-width."""
    from sweep.fit import FitConfig, fit
    from sweep.fit.holdout import predict_run

    cfg = FitConfig(n_bootstrap=n_bootstrap, methods=METHODS, compare_conventions=False, budgets=[],
                    flop_convention="exact")
    t0 = time.perf_counter()
    result = fit(fit_rows, cfg)
    rec = (result.get("recommended") or {}).get("method")
    print(f"  {name}: fitted {len(fit_rows)} runs in {time.perf_counter() - t0:.1f}s, recommended {rec}; "
          f"predicting {len(held)} (up to {max(r['flops'] for r in held) / result['data']['flops_range'][1]:.0f}x)",
          file=sys.stderr, flush=True)
    scored = []
    for r in held:
        p = predict_run(result, r["n_params"], r["n_tokens"], r["flops"], r["loss"], at_optimum=False)
        for m, v in {**p["methods"], LEAD: p["methods"].get(p["recommended"] or "", {})}.items():
            pi = v.get("interval")
            scored.append({"split": name, "method": m, "error": None if v.get("rel_error") is None else
                           abs(v["rel_error"]), "covered": v.get("covered"),
                           "halfwidth": None if not pi else (pi[1] - pi[0]) / 2 / v["predicted"],
                           # the PI's ends and the measured loss over the prediction, for `narrowest_halfwidth`
                           "ratios": None if not pi or v.get("rel_error") is None else
                           (pi[0] / v["predicted"], pi[1] / v["predicted"], 1.0 / (1.0 + v["rel_error"])),
                           "extrapolation": p["extrapolation"]})
    return scored


def summary(rows: list[dict]) -> dict:
    err = np.array([r["error"] for r in rows if r["error"] is not None])
    cov = [r["covered"] for r in rows if r["covered"] is not None]
    hw = [r["halfwidth"] for r in rows if r["halfwidth"] is not None]
    if not err.size:
        return {"n": 0}
    return {"n": int(err.size), "median": float(np.median(err)), "p90": float(np.percentile(err, 90)),
            "max": float(err.max()), "coverage": float(np.mean(cov)) if cov else float("nan"),
            "halfwidth": float(np.median(hw)) if hw else float("nan")}


def hindsight(scored: list[dict]) -> list[dict]:
    """The rows of each fit's single method with the lowest 90th-percentile error on that fit's held-out runs (among
    the methods that predicted all of them): what choosing the law per fit with hindsight would score."""
    out = []
    for split in dict.fromkeys(r["split"] for r in scored):
        rows = [r for r in scored if r["split"] == split]
        n = sum(r["method"] == LEAD for r in rows)
        by = {m: [r for r in rows if r["method"] == m and r["error"] is not None] for m in METHODS}
        full = {m: v for m, v in by.items() if v and len(v) == n}
        if full:
            out += min(full.values(), key=lambda v: np.percentile([r["error"] for r in v], 90))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-bootstrap", type=int, default=200)
    parser.add_argument("--tables", default="epoch,porian,gadre")
    parser.add_argument("--porian-configs", type=int, default=15, help="how many of Porian's configurations")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma-separated methods to fit (default: the default ones), e.g. adding approach3_upper")
    args = parser.parse_args(argv)
    METHODS[:] = args.methods.split(",")
    logging.getLogger("sweep").setLevel(logging.ERROR)
    if not PUBLISHED.is_dir():
        print(f"missing {PUBLISHED}: the published tables ship with ../shared/data", file=sys.stderr)
        return 2
    makers = {"epoch": epoch_splits, "porian": lambda: porian_splits(args.porian_configs), "gadre": gadre_splits}
    tables = {}
    for table in args.tables.split(","):
        scored = []
        for name, fit_rows, held in makers[table]():
            scored += score_split(name, fit_rows, held, args.n_bootstrap)
        tables[table] = scored
    print(f"{'table':8} {'method':18} {'runs':>5} {'median':>7} {'p90':>7} {'max':>7} {'PI95 cov':>9} {'PI halfw':>9}")
    overall = []
    for table, scored in tables.items():
        for m in [*METHODS, "stacked", LEAD]:
            s = summary([r for r in scored if r["method"] == m])
            if not s["n"]:
                continue
            print(f"{table:8} {m:18} {s['n']:>5} {100 * s['median']:>6.2f}% {100 * s['p90']:>6.2f}% "
                  f"{100 * s['max']:>6.2f}% {100 * s['coverage']:>8.0f}% {100 * s['halfwidth']:>8.2f}%")
            if m == LEAD:
                overall.append(s)
    keys = ("median", "p90", "max", "coverage", "halfwidth")
    print("hindsight: each fit's single method with the lowest p90 error on its own held-out runs (not a prediction: "
          "chosen after seeing them)")
    bounds = {table: summary(hindsight(scored)) for table, scored in tables.items()}
    for table, s in bounds.items():
        print(f"hindsight {table:8} {s['n']:>5} {100 * s['median']:>6.2f}% {100 * s['p90']:>6.2f}% "
              f"{100 * s['max']:>6.2f}% {100 * s['coverage']:>8.0f}% {100 * s['halfwidth']:>8.2f}%")
    print("hindsight_" + " hindsight_".join(f"{k}={float(np.mean([s[k] for s in bounds.values()])):.4f}"
                                            for k in ("median", "p90", "halfwidth")))
    narrowest = {table: narrowest_halfwidth([r for r in scored if r["method"] == LEAD])
                 for table, scored in tables.items()}
    print("narrowest: the recommended PIs rescaled per table, after seeing its held-out runs, to cover exactly 90% "
          "(the least the issue's coverage allows): " + ", ".join(f"{t} {100 * v:.2f}%" for t, v in narrowest.items())
          + f"; narrowest_halfwidth_at_90={float(np.mean(list(narrowest.values()))):.4f}")
    mean = {k: float(np.mean([s[k] for s in overall])) for k in keys}
    print(f"public_median_err={mean['median']:.4f} public_p90_err={mean['p90']:.4f} public_max_err={mean['max']:.4f} "
          f"public_pi95_coverage={mean['coverage']:.3f} public_pi95_halfwidth={mean['halfwidth']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
