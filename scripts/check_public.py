"""Fit small, predict large, on sweeps others trained: a development set, not a test set.

    python scripts/check_public.py [--n-bootstrap 200] [--tables epoch,porian,gadre] [--porian-configs 15]
        [--methods approach1,...] [--n-resamples 2000] [--seed 0]

The fitter's defaults (the backtest's split unit and size minimum, which methods run, the stacking's prior, the
lack-of-fit rule) were chosen with these tables in view, so what this script prints is a validation score, not a
test score: it says how the fitter does on data that shaped it. Never choose a default from its line; choose on
simulated data first. The tables stay as a regression check: a change that makes these figures worse needs a reason.

Each table in ../shared/data/published is cut at a size or a compute, the fitter (every method, its within-data
backtest and its recommended prediction) sees only what is below the cut, and every run above it is predicted at
its own N and D:
- epoch: Epoch's replication of Chinchilla's runs with Epoch's filter (the 5 highest losses dropped): fit
  N <= 1B, predict the larger runs (one fit);
- porian: each of Porian et al.'s 15 configurations on its own: fit budgets <= 1e18 FLOPs, predict beyond
  (up to 26x), from their per-run losses (one fit per configuration);
- gadre: Gadre et al.'s models per training set (C4 validation loss): fit N < 1B, predict the 1.4B and 6.9B runs
  (one fit per training set).

It prints, in this order:
- per table, per method and for the recommended prediction: median, 90th-percentile and max |relative error|,
  the 95% PI's coverage and its median half-width (relative), each table's runs weighing the same;
- pooled over every held-out run of every table (each run once), for the recommended prediction and for
  approach 3 alone: the same five figures, each with a cluster-bootstrap interval, beside the mean of the
  per-table figures;
- per table, the difference recommended minus approach 3 in median and in mean |relative error| over the runs
  both predicted, with its cluster-bootstrap interval, and a verdict: "worse than approach 3 beyond the interval"
  when the whole interval of the median difference lies above 0, else "no worse than approach 3";
- what choosing one law per fit could reach at best (hindsight: each fit's single method with the lowest
  90th-percentile error on its own held-out runs) and the narrowest median half-width the recommended points allow
  at 90% coverage (`narrowest_halfwidth`), both chosen after seeing the held-out runs;
- one closing line of key=value figures, fractions: public_* are the recommended prediction's per-table means
  (each table weighted equally), pooled_* its pooled figures with their interval ends (_lo, _hi),
  approach3_pooled_* approach 3's pooled figures, tables_worse_than_approach3 how many tables carry that verdict.

Cluster bootstrap: the runs one fit predicted share that fit's error (a law that bends wrong misses all of them
together), so they are not independent draws and resampling runs would understate the spread. Each fit is one
cluster: a resample draws, within each table, as many fits as the table has, with replacement, keeps each drawn
fit's runs whole, and recomputes the pooled figure; the interval is the 2.5th to 97.5th percentile of the
resampled figures. A table with a single fit (Epoch's) has no fit-to-fit spread to resample, so its runs are
resampled instead, and its lines say so: that interval understates the spread a different fit would show.
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
BASELINE = "approach3"  # the Epoch recipe the recommended prediction must not lose to
FIGURES = ("median", "p90", "max", "coverage", "halfwidth")
NOTICE = ("development set: the fitter's defaults were chosen with these tables in view, so these figures are a "
          "validation score, not a test score; never choose a default from them (choose on simulated data first); "
          "they stay for regression checks")


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
            scored.append({"split": name, "run": r["run_id"], "method": m,
                           "error": None if v.get("rel_error") is None else abs(v["rel_error"]),
                           "covered": v.get("covered"),
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


def figures(a: np.ndarray) -> np.ndarray:
    """The five figures of runs given as rows (|relative error|, covered 1/0, PI half-width; NaN where a run has
    none): median, 90th-percentile and max error, coverage, median half-width; NaN where no run has the value."""
    a = np.asarray(a, float).reshape(-1, 3)
    out = []
    for col, f in ((0, np.median), (0, lambda v: np.percentile(v, 90)), (0, np.max), (1, np.mean), (2, np.median)):
        v = a[:, col][np.isfinite(a[:, col])]
        out.append(float(f(v)) if v.size else float("nan"))
    return np.array(out)


def differences(a: np.ndarray) -> np.ndarray:
    """Median and mean |relative error| of the first method minus the second's, over the runs both predicted; rows
    are (first's error, second's error)."""
    a = np.asarray(a, float).reshape(-1, 2)
    a = a[np.isfinite(a).all(axis=1)]
    if not a.size:
        return np.array([np.nan, np.nan])
    return np.array([np.median(a[:, 0]) - np.median(a[:, 1]), np.mean(a[:, 0]) - np.mean(a[:, 1])])


def cluster_bootstrap(clusters: list, statistic, n_resamples: int = 2000, seed: int = 0, level: float = 0.95,
                      strata: list | None = None) -> tuple:
    """(point, lo, hi): the statistic of every cluster's rows pooled, and its percentile interval at `level` over
    resamples that redraw whole clusters with replacement, as many per stratum as the stratum has.

    Rows of one cluster (the runs one fit predicted) share that cluster's error, so redrawing rows would count them
    as independent and understate the spread; redrawing clusters keeps it. Strata (a table each) keep the mix of
    tables fixed. A stratum of one cluster has no spread between clusters to redraw, so its rows are redrawn
    instead: that part of the interval understates what another cluster would show. `statistic` maps the pooled
    rows (clusters concatenated along axis 0) to a number or a vector of numbers; resamples where it is NaN are
    dropped. Deterministic for a seed."""
    clusters = [np.asarray(c, float) for c in clusters]
    strata = [0] * len(clusters) if strata is None else list(strata)
    if len(strata) != len(clusters):
        raise ValueError(f"{len(strata)} strata for {len(clusters)} clusters")
    groups: dict = {}
    for i, s in enumerate(strata):
        groups.setdefault(s, []).append(i)
    raw = statistic(np.concatenate(clusters))
    point = np.atleast_1d(np.asarray(raw, float))
    rng = np.random.default_rng(seed)
    draws = np.empty((n_resamples, point.size))
    for b in range(n_resamples):
        parts = []
        for idx in groups.values():
            if len(idx) == 1:
                c = clusters[idx[0]]
                parts.append(c[rng.integers(0, len(c), len(c))])
            else:
                parts += [clusters[i] for i in rng.choice(idx, len(idx))]
        draws[b] = statistic(np.concatenate(parts))
    tail = 100 * (1 - level) / 2
    lo, hi = np.full(point.size, np.nan), np.full(point.size, np.nan)
    for k in range(point.size):
        v = draws[:, k][np.isfinite(draws[:, k])]
        if v.size:
            lo[k], hi[k] = np.percentile(v, [tail, 100 - tail])
    if np.ndim(raw) == 0:
        return float(point[0]), float(lo[0]), float(hi[0])
    return point, lo, hi


def worse_beyond_interval(lo: float) -> bool:
    """The verdict on a difference (recommended minus approach 3, in |error|): worse beyond the interval when the
    whole interval lies above 0, i.e. its lower end is; NaN (no interval) is no verdict of worse."""
    return bool(lo > 0)


def per_fit(scored: list[dict], methods: tuple) -> dict:
    """{fit: rows, one per held-out run, of (error, covered, half-width) for each of `methods` side by side (NaN
    where that method gave none)}: the clusters of the bootstrap."""
    runs: dict = {}
    for r in scored:
        if r["method"] in methods:
            runs.setdefault(r["split"], {}).setdefault(r["run"], {})[r["method"]] = r

    def value(row: dict, key: str) -> float:
        return np.nan if row.get(key) is None else float(row[key])

    return {split: np.array([[value(by.get(m, {}), k) for m in methods for k in ("error", "covered", "halfwidth")]
                             for by in fits.values()], float).reshape(-1, 3 * len(methods))
            for split, fits in runs.items()}


def _pct(v: float, sign: bool = False) -> str:
    return "nan" if v != v else f"{100 * v:+.2f}" if sign else f"{100 * v:.2f}"


def _with_interval(point: float, lo: float, hi: float, sign: bool = False) -> str:
    """One figure with its interval as one whitespace-free token, in percent: 1.23%[0.90,1.60]."""
    return f"{_pct(point, sign)}%[{_pct(lo, sign)},{_pct(hi, sign)}]"



def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-bootstrap", type=int, default=200, help="the fitter's bootstrap resamples over runs")
    parser.add_argument("--tables", default="epoch,porian,gadre")
    parser.add_argument("--porian-configs", type=int, default=15, help="how many of Porian's configurations")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma-separated methods to fit (default: the default ones), e.g. adding approach3_upper")
    parser.add_argument("--n-resamples", type=int, default=2000, help="cluster-bootstrap resamples over fits")
    parser.add_argument("--seed", type=int, default=0, help="the cluster bootstrap's seed")
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
    print(NOTICE)
    print(f"{'table':8} {'method':18} {'runs':>5} {'median':>7} {'p90':>7} {'max':>7} {'PI95 cov':>9} {'PI halfw':>9}")
    means = {}
    for table, scored in tables.items():
        for m in [*METHODS, "stacked", LEAD]:
            s = summary([r for r in scored if r["method"] == m])
            if not s["n"]:
                continue
            print(f"{table:8} {m:18} {s['n']:>5} {100 * s['median']:>6.2f}% {100 * s['p90']:>6.2f}% "
                  f"{100 * s['max']:>6.2f}% {100 * s['coverage']:>8.0f}% {100 * s['halfwidth']:>8.2f}%")
            if m in (LEAD, BASELINE):
                means.setdefault(m, []).append(s)

    # pooled: every held-out run once, each fit one cluster, fits redrawn within their table
    pair = (LEAD, BASELINE)
    fits = {table: per_fit(scored, pair) for table, scored in tables.items()}
    clusters = [a for by in fits.values() for a in by.values()]
    strata = [table for table, by in fits.items() for _ in by]
    single = [table for table, by in fits.items() if len(by) == 1]
    both = cluster_bootstrap(clusters, lambda a: np.concatenate([figures(a[:, :3]), figures(a[:, 3:])]),
                             args.n_resamples, args.seed, strata=strata)
    pooled = {m: {k: (both[0][5 * j + i], both[1][5 * j + i], both[2][5 * j + i]) for i, k in enumerate(FIGURES)}
              for j, m in enumerate(pair)}
    print(f"pooled: every held-out run of every table once ({sum(map(len, clusters))} runs, {len(clusters)} fits), "
          f"each figure with its 95% cluster-bootstrap interval ({args.n_resamples} resamples, seed {args.seed}: "
          "each fit's runs kept whole, fits redrawn within their table"
          + (f"; {', '.join(single)}: one fit, its runs redrawn, so its part of the interval understates" if single
             else "") + "); mean: the per-table figures above, averaged")
    print(f"{'':8} {'method':18} {'runs':>5} {'median':>20} {'p90':>20} {'max':>20} {'PI95 cov':>20} "
          f"{'PI halfw':>20}")
    for j, m in enumerate(pair):
        runs = sum(int(np.isfinite(a[:, 3 * j]).sum()) for a in clusters)
        print(f"{'pooled':8} {m:18} {runs:>5} " + " ".join(f"{_with_interval(*pooled[m][k]):>20}" for k in FIGURES))
        if m in means:
            avg = {k: float(np.mean([s[k] for s in means[m]])) for k in FIGURES}
            print(f"{'mean':8} {m:18} {sum(s['n'] for s in means[m]):>5} "
                  + " ".join(f"{_pct(avg[k]) + '%':>20}" for k in FIGURES))

    # per table: recommended minus approach 3, its interval, and the verdict on the median's
    worse, lows = 0, []
    for table, by in fits.items():
        cl = [a[:, [0, 3]] for a in by.values()]
        paired = sum(int(np.isfinite(a).all(axis=1).sum()) for a in cl)
        if not paired:
            print(f"difference {table}: no run predicted by both the recommended prediction and {BASELINE}")
            continue
        point, lo, hi = cluster_bootstrap(cl, differences, args.n_resamples, args.seed)
        verdict = worse_beyond_interval(lo[0])
        worse += verdict
        lows.append(lo[0])
        print(f"difference {table}: recommended - {BASELINE} runs={paired} fits={len(cl)} "
              f"median_err={_with_interval(point[0], lo[0], hi[0], True)} "
              f"mean_err={_with_interval(point[1], lo[1], hi[1], True)}: "
              + ("worse than approach 3 beyond the interval" if verdict else "no worse than approach 3")
              + ("; in mean |error| worse beyond its interval" if worse_beyond_interval(lo[1]) else "")
              + (" (one fit: its runs redrawn, the interval understates)" if len(cl) == 1 else ""))

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
    print(NOTICE)
    names = {"median": "median_err", "p90": "p90_err", "max": "max_err", "coverage": "pi95_coverage",
             "halfwidth": "pi95_halfwidth"}
    digits = {k: 3 if k == "coverage" else 4 for k in FIGURES}
    mean = {k: float(np.mean([s[k] for s in means.get(LEAD, [])])) for k in FIGURES}
    line = [f"public_{names[k]}={mean[k]:.{digits[k]}f}" for k in FIGURES]
    for k in FIGURES:
        point, lo, hi = pooled[LEAD][k]
        line += [f"pooled_{names[k]}={point:.{digits[k]}f}", f"pooled_{names[k]}_lo={lo:.{digits[k]}f}",
                 f"pooled_{names[k]}_hi={hi:.{digits[k]}f}"]
    line += [f"{BASELINE}_pooled_{names[k]}={pooled[BASELINE][k][0]:.{digits[k]}f}" for k in FIGURES]
    line += [f"tables_worse_than_{BASELINE}={worse}",
             f"median_diff_lo_max={max(lows) if lows else float('nan'):.4f}"]
    print(" ".join(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
