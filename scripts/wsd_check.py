"""CPU check of WSD cooldown branches (issue 7): do branches give the losses and the scaling law
of independent cosine runs, for how much compute?

    python scripts/wsd_check.py                                   # 20% linear cooldown
    python scripts/wsd_check.py --cooldown-shape 1-sqrt --cooldown-fraction 0.3

Trains, on ../shared/data/tinyshakespeare.txt with the byte tokenizer, a grid of model sizes x
token budgets twice: as WSD trunks with cooldown branches (`sweep.branching.branch`, in order,
through `train()`), and as independent cosine runs of the same (N, D). Prints per (N, D) the WSD
loss (the branch's, or the trunk's for the longest budget), the cosine loss and their relative
difference; the approach-3 exponents (alpha, beta, a = beta / (alpha + beta)) fitted to each grid
with bootstrap intervals; and the compute of the branched grid against independent runs and the
longest run of each size alone. Runs are kept under --out and skipped when done, so a second call
with another cooldown setting only trains the new WSD runs.

Ends with one machine-readable line:
    max_rel_diff=<x> exponents_within_ci=<bool> cost_ratio=<branched / longest runs alone>
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"


def base_config(args):
    from sweep.config import DataConfig, LoggerConfig, ModelConfig, RunConfig, TokenizerConfig, TrainConfig

    return RunConfig(
        model=ModelConfig(seq_len=64),
        data=DataConfig(source="files", path=str(SHAKESPEARE), val_tokens=16384, cache_dir=str(Path(args.out) / "cache")),
        tokenizer=TokenizerConfig(kind="byte", vocab_size=256),
        train=TrainConfig(lr=args.lr, schedule="cosine", warmup_steps=args.warmup_steps, batch_size=16,
                          tokens_per_step=args.tokens_per_step, threads=args.threads, eval_tokens=4096, device="cpu"),
        logger=LoggerConfig(mode="disabled"),
        sweep_name="wsd_check", results_dir=args.out,
    )


def parse_shapes(text: str):
    from sweep.grid import ShapeConfig

    shapes = []
    for item in text.split(","):
        n_layer, d_model = (int(x) for x in item.lower().split("x"))
        shapes.append(ShapeConfig(n_layer=n_layer, d_model=d_model, n_head=max(1, d_model // 16)))
    return shapes


def train_all(runs, label: str) -> tuple[dict, float]:
    """Train runs in order (trunks before branches); {run position: result}, wall seconds."""
    from sweep.train import train

    out, t0 = {}, time.perf_counter()
    for r in runs:
        t1 = time.perf_counter()
        res = train(r.cfg, progress=False)
        out[r.index] = res
        kind = "branch" if r.cfg.meta.get("branch") else ("trunk" if r.cfg.meta.get("trunk") else "run")
        print(f"  {label} {kind:6s} {r.run_name:18s} {r.steps:5d} steps  loss {res.get('final_val_loss'):.4f}  "
              f"{time.perf_counter() - t1:5.1f}s", file=sys.stderr, flush=True)
    return out, time.perf_counter() - t0


def fit_rows(runs, results) -> list[dict]:
    return [{"run_name": r.run_name, "status": results[r.index]["status"], "loss": results[r.index]["final_val_loss"],
             "n_params": r.n_params, "n_params_non_embedding": r.n_params_non_embedding, "n_tokens": r.n_tokens,
             "flops": r.flops, "branch": bool(r.cfg.meta.get("branch"))} for r in runs]


def exponents(rows, n_bootstrap: int, seed: int) -> dict:
    """alpha, beta and a with bootstrap intervals from an approach-3 fit."""
    from sweep.fit import FitConfig, fit

    res = fit(rows, FitConfig(methods=["approach3"], n_bootstrap=n_bootstrap, seed=seed,
                              compare_conventions=False, backtest=False, budgets=[]))["approach3"]
    if res.get("status") != "ok":
        raise RuntimeError(f"approach 3 did not fit: {res.get('reason')}")
    nan = [float("nan"), float("nan")]
    return {
        "alpha": (res["params"]["alpha"], res.get("intervals", {}).get("alpha", nan)),
        "beta": (res["params"]["beta"], res.get("intervals", {}).get("beta", nan)),
        "a": (res["exponents"]["a"], res.get("exponent_intervals", {}).get("a", nan)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results/wsd_check", help="results folder (runs are reused)")
    parser.add_argument("--shapes", default="2x32,2x48,2x64", help="model sizes as n_layer x d_model (n_head = d/16)")
    parser.add_argument("--n-tokens", default="125000,250000,500000,1000000", help="token budgets D")
    parser.add_argument("--cooldown-fraction", type=float, default=0.2)
    parser.add_argument("--cooldown-shape", default="linear", choices=["linear", "1-sqrt"])
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--tokens-per-step", type=int, default=512, help="a multiple of seq_len 64")
    parser.add_argument("--warmup-steps", type=int, default=20, help="the same warmup for every run, WSD and cosine")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n-bootstrap", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not SHAKESPEARE.exists():
        print(f"needs {SHAKESPEARE}", file=sys.stderr)
        return 2

    from sweep.branching import branch, branch_cost
    from sweep.grid import ExperimentConfig, expand
    from sweep.results import human

    base = base_config(args)
    exp = ExperimentConfig(name="wsd_check", shapes=parse_shapes(args.shapes),
                           n_tokens=[int(float(x)) for x in args.n_tokens.split(",")])
    wsd_base = dataclasses.replace(base, train=dataclasses.replace(
        base.train, schedule="wsd", cooldown_fraction=args.cooldown_fraction, cooldown_shape=args.cooldown_shape))
    branched = branch(expand(exp, wsd_base, 256))
    cosine = expand(exp, base, 256)

    print(f"WSD ({100 * args.cooldown_fraction:.0f}% {args.cooldown_shape} cooldown, branched) vs cosine, "
          f"lr {args.lr}, {args.tokens_per_step} tokens/step, warmup {args.warmup_steps} steps, {len(cosine)} (N, D) points", file=sys.stderr)
    wsd_res, wsd_wall = train_all(branched, "wsd")
    cos_res, cos_wall = train_all(cosine, "cosine")

    cos_by_point = {(r.n_params, r.n_tokens): cos_res[r.index] for r in cosine}
    print(f"\n{'run':18s} {'N':>7s} {'D':>7s} {'kind':6s} {'wsd loss':>9s} {'cosine':>9s} {'rel diff':>9s}")
    max_rel = 0.0
    for r in sorted(branched, key=lambda r: (r.n_params, r.n_tokens)):
        w = wsd_res[r.index]["final_val_loss"]
        c = cos_by_point[(r.n_params, r.n_tokens)]["final_val_loss"]
        rel = (w - c) / c
        max_rel = max(max_rel, abs(rel))
        kind = "branch" if r.cfg.meta.get("branch") else "trunk"
        print(f"{r.run_name:18s} {human(r.n_params):>7s} {human(r.n_tokens):>7s} {kind:6s} {w:9.4f} {c:9.4f} {100 * rel:+8.2f}%")

    t0 = time.perf_counter()
    ex_wsd = exponents(fit_rows(branched, wsd_res), args.n_bootstrap, args.seed)
    ex_cos = exponents(fit_rows(cosine, cos_res), args.n_bootstrap, args.seed)
    fit_seconds = time.perf_counter() - t0
    print(f"\napproach 3 ({args.n_bootstrap} bootstrap resamples, 95% intervals, {fit_seconds:.0f}s)")
    print(f"{'':6s} {'WSD branches':>28s} {'independent cosine':>28s}  each inside the other's interval")
    within = True
    for k in ("alpha", "beta", "a"):
        (pw, iw), (pc, ic) = ex_wsd[k], ex_cos[k]
        ok = iw[0] <= pc <= iw[1] and ic[0] <= pw <= ic[1]
        within &= ok
        print(f"{k:6s} {pw:8.3f} [{iw[0]:7.3f}, {iw[1]:7.3f}]   {pc:8.3f} [{ic[0]:7.3f}, {ic[1]:7.3f}]  {ok}")

    cost = branch_cost(branched)["total"]
    cos_flops = sum(r.flops for r in cosine)
    print(f"\ncompute: branched {human(cost['branched_flops'])} FLOPs, independent {human(cost['independent_flops'])} "
          f"(cosine grid {human(cos_flops)}), longest run per size alone {human(cost['longest_flops'])}: "
          f"branched = {cost['ratio_to_longest']:.3f}x the longest runs, {100 * cost['saving']:.0f}% saved")
    print(f"wall (this machine, incl. runs already done): WSD branched {wsd_wall:.0f}s, cosine grid {cos_wall:.0f}s")
    print(f"max_rel_diff={max_rel:.4f} exponents_within_ci={within} cost_ratio={cost['ratio_to_longest']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
