"""Which end of kappa's likelihood should the lack-of-fit term use? Scores the recommended prediction under each rule on
the same fits (docs/decisions/lack-of-fit-level.md).

Rules (sweep/fit/lack_of_fit.py's `estimate`): "post1" is the fitter's (kappa^2's posterior mean under a half-normal
prior of scale 1%); "post0.5" and "post2" move the prior's scale to 0.5% and 2%; "upper50", "upper68" and "upper90"
take the upper end of kappa's 50%, 68% or 90% likelihood interval instead (upper50 was the fitter's before), "best" its
maximum-likelihood value (0 when no misfit is detected); "upper50g" and "post1g" are upper50 and post1 with every
growth kept when no misfit is detected (not gamma = 1 alone). Each rule re-runs only the fit's conclusion
(pipeline.conclude) on fits stored by check_coverage.py's --cache, so the rules differ in nothing else. --budgets
LO:HI:N sets the simulated sweep's design (check_coverage.py's, default 1e18:1e20:5).

    python scripts/lack_of_fit_rules.py --law chinchilla --seeds 40 --cache .cache/fits        # simulated sweeps
    python scripts/lack_of_fit_rules.py --law chinchilla --seeds 40 --budgets 1e18:1e20:9 --cache .cache/fits
    python scripts/lack_of_fit_rules.py --main results/default results/seed1 --cache .cache/fits  # finished jobs

--law scores the run `sweep verify` would train at 10x and 100x (check_coverage.py --oracle's table, one per rule)
and ends with a line per rule: rule=<name> law=<law> pi95_10x=... ratio_10x=... pi95_100x=... ratio_100x=....
--main takes finished main jobs (a results folder with its fit/fit.json and that fit's verification run), and prints
per rule the recommended prediction of the verification run, its 95% PI and whether the PI covered the run.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import tempfile
import types
from pathlib import Path

from scipy.stats import chi2

import check_coverage
from sweep.fit import FitConfig, lack_of_fit, recommend
from sweep.fit.holdout import predict_run
from sweep.fit.sources import load_runs

RULES = {"upper50": {"end": "upper"}, "upper68": {"end": "upper", "kappa_lr": 1.0},
         "upper90": {"end": "upper", "kappa_lr": float(chi2.ppf(0.9, 1))}, "best": {"end": "best"},
         **{f"post{tau:g}": {"end": "posterior", "prior_scale": tau / 100} for tau in (0.5, 1, 2)},
         "upper50g": {"end": "upper", "undetected": "any"},
         "post1g": {"end": "posterior", "prior_scale": 0.01, "undetected": "any"}}
"""Keyword arguments of lack_of_fit.estimate per rule ("post1": the fitter's own, lack_of_fit.PRIOR_SCALE)."""
ESTIMATE = lack_of_fit.estimate


def budgets_spec(spec: str) -> str:
    """--budgets: the spec itself, once check_coverage can read it (a bad one fails before any fit)."""
    check_coverage.design_budgets(spec)
    return spec


def use(rule: str) -> None:
    """Make every caller of lack_of_fit.estimate (the pipeline's terms, the stacking's cross-fitted ones) use `rule`."""
    f = functools.partial(ESTIMATE, **RULES[rule])
    lack_of_fit.estimate = f
    recommend.estimate = f


def score_law(law_name: str, seeds: range, rules: list[str], cache: str, design: str = check_coverage.DESIGN) -> None:
    args = types.SimpleNamespace(noise=0.01, n_bootstrap=100, backtest=True, cache=cache,
                                 interval_key="prediction_interval",
                                 budgets=check_coverage.design_budgets(design))
    law = check_coverage.LAWS[law_name]()
    lines = []
    for rule in rules:
        use(rule)
        per_seed = [check_coverage.score_seed(law, s, args) for s in seeds]
        print(f"rule {rule}:")
        o = check_coverage.oracle_summary(per_seed, law_name)
        lines.append(f"rule={rule} law={law_name} budgets={design} seeds={len(seeds)} first_seed={seeds[0]} "
                     + " ".join(f"{k}={o[k]:.4f}" for k in ("pi95_10x", "ratio_10x", "hw95_10x", "pi95_100x",
                                                            "ratio_100x", "hw95_100x")))
    print("\n".join(lines))


def score_main(folders: list[str], rules: list[str], cache: str) -> None:
    for folder in map(Path, folders):
        stored = json.loads((folder / "fit" / "fit.json").read_text())
        v = stored.get("verification")
        if not v:
            raise SystemExit(f"{folder}: its fit.json has no verification run (run `sweep verify` first)")
        cfg = FitConfig(**stored["config"]).validate()
        runs = load_runs(str(folder)).to_dict("records")
        for rule in rules:
            use(rule)
            result = check_coverage.fitted(runs, cfg, cache)  # stored once, concluded again under `rule`
            n, d = v["n_params"], v["n_tokens"]
            p = predict_run(result, n, d, v["flops"], v["measured_loss"])  # as `sweep verify` scored it
            r = p["methods"][p["recommended"]]
            lo, hi = r["interval"]
            print(f"{folder.name}: rule={rule} lead={p['recommended']} at {p['extrapolation']:.2g}x: predicted "
                  f"{r['predicted']:.4f} [{lo:.4f}, {hi:.4f}] (half-width {50 * (hi - lo) / r['predicted']:.1f}%), "
                  f"measured {v['measured_loss']:.4f}, error {100 * r['rel_error']:+.2f}%, covered {r['covered']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--law", choices=list(check_coverage.LAWS))
    ap.add_argument("--seeds", type=int, default=40)
    ap.add_argument("--first-seed", type=int, default=None,
                    help=f"default 0; {check_coverage.CALIBRATION_FIRST_SEED} for the calibration laws")
    ap.add_argument("--main", nargs="+", default=None, help="finished main jobs' results folders")
    ap.add_argument("--budgets", default=check_coverage.DESIGN, type=budgets_spec,
                    help=f"--law: the simulated sweep's budgets, LO:HI:N (default {check_coverage.DESIGN})")
    ap.add_argument("--rules", nargs="+", default=list(RULES), choices=list(RULES))
    ap.add_argument("--cache", default=None,
                    help="check_coverage.py's folder of stored fits (default: a temporary one, so that each sweep is "
                         "fitted once and only concluded again per rule)")
    args = ap.parse_args()
    if bool(args.law) == bool(args.main):
        ap.error("give --law or --main")
    logging.getLogger("sweep.fit").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as scratch:
        cache = args.cache or scratch
        if args.main:
            score_main(args.main, args.rules, cache)
            return
        first = args.first_seed if args.first_seed is not None else (
            check_coverage.CALIBRATION_FIRST_SEED if args.law in check_coverage.CALIBRATION_LAWS else 0)
        score_law(args.law, range(first, first + args.seeds), args.rules, cache, args.budgets)


if __name__ == "__main__":
    main()
