"""CPU check of WSD cooldown branches (issue 7): do branches give the losses and the scaling law
of independent cosine runs, for how much compute?

    python scripts/wsd_check.py                                   # 20% linear cooldown
    python scripts/wsd_check.py --cooldown-shape 1-sqrt --cooldown-fraction 0.3
    python scripts/wsd_check.py --lrs 2.5e-3,5e-3,1e-2 --min-lr-ratio 0.0   # each schedule at its best LR
    python scripts/wsd_check.py --data stdlib --n-tokens 2e6,4e6,8e6      # long runs that never repeat data

Trains, with the byte tokenizer on --data (sweep/corpora/tinyshakespeare.txt by default, 1 MB;
`stdlib`: this Python's standard library sources, ~12 MB, for budgets past the 1 MB of
Shakespeare; or any text file or folder of them), a grid of model sizes x
token budgets twice: as WSD trunks with cooldown branches (`sweep.ladder.branching.branch`, in order,
through `train()`), and as independent cosine runs of the same (N, D). Prints per (N, D) the WSD
loss (the branch's, or the trunk's for the longest budget), the cosine loss and their relative
difference; the approach-3 exponents (alpha, beta, a = beta / (alpha + beta)) fitted to each grid
with bootstrap intervals; and the compute of the branched grid against independent runs and the
longest run of each size alone. Runs are kept under --out and skipped when done, so a second call
with another cooldown setting only trains the new WSD runs.

With --lrs both grids are trained at every peak learning rate and compared best against best per
(N, D), as Hägele et al. (2024) compare schedules: at one shared, untuned LR the schedule that stays
longer at the peak wins whenever that LR is below the optimum. The loss of every (N, D, LR) is
printed, then each schedule's best LR per point (flagged `<` or `>` when it is the smallest or
largest LR tried, i.e. the optimum may lie outside --lrs), and the exponents are fitted to the
best-per-point losses. --min-lr-ratio sets the final LR of both schedules.

Ends with one machine-readable line:
    max_rel_diff=<x> exponents_within_ci=<bool> cost_ratio=<branched / longest runs alone>
(cost_ratio is per LR: every LR's grid costs the same.)
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAKESPEARE = ROOT / "sweep" / "corpora" / "tinyshakespeare.txt"  # shipped in the package (data=tinyshakespeare)


def data_config(spec: str, cache_dir: str):
    """--data -> DataConfig: 'tinyshakespeare' (the 1 MB file in sweep/corpora), 'stdlib' (sweep's embedded
    corpus) or a path to a text file or folder. A missing file fails here, before any training."""
    from sweep.config import DataConfig

    common = dict(val_tokens=16384, cache_dir=cache_dir)
    if spec == "stdlib":
        return DataConfig(source="stdlib", **common)
    path = SHAKESPEARE if spec == "tinyshakespeare" else Path(spec).expanduser()
    if not path.exists():
        hint = ("; it ships in sweep/corpora/" if spec == "tinyshakespeare"
                else "; give 'tinyshakespeare', 'stdlib' or an existing text file or folder")
        raise SystemExit(f"--data {spec}: {path} does not exist{hint}")
    # Absolute, so the run ids (which hash data.path) do not depend on the working directory; the
    # default stays the path it always was, so earlier Shakespeare runs under --out are reused.
    return DataConfig(source="files", path=str(path if spec == "tinyshakespeare" else path.resolve()), **common)


def base_config(args):
    from sweep.config import LoggerConfig, ModelConfig, RunConfig, TokenizerConfig, TrainConfig

    return RunConfig(
        model=ModelConfig(seq_len=64),
        data=data_config(args.data, str(Path(args.out) / "cache")),
        tokenizer=TokenizerConfig(kind="byte", vocab_size=256),
        train=TrainConfig(lr=args.lr, schedule="cosine", warmup_steps=args.warmup_steps, batch_size=16,
                          min_lr_ratio=args.min_lr_ratio, seed=args.seed, tokens_per_step=args.tokens_per_step,
                          threads=args.threads, eval_tokens=4096, device="cpu"),
        logger=LoggerConfig(mode="disabled"),
        sweep_name="wsd_check", results_dir=args.out,
    )


def parse_shapes(text: str):
    from sweep.ladder.experiment import ShapeConfig

    shapes = []
    for item in text.split(","):
        n_layer, d_model = (int(x) for x in item.lower().split("x"))
        shapes.append(ShapeConfig(n_layer=n_layer, d_model=d_model, n_head=max(1, d_model // 16)))
    return shapes


def parse_lrs(text: str | None, lr: float) -> list[float]:
    """Peak learning rates to train both schedules at, ascending: --lrs, or the single --lr."""
    if not text:
        return [lr]
    try:
        lrs = sorted({float(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise SystemExit(f"--lrs {text!r}: give comma-separated numbers, e.g. --lrs 2.5e-3,5e-3,1e-2") from None
    bad = [x for x in lrs if not (math.isfinite(x) and x > 0)]
    if not lrs or bad:
        raise SystemExit(f"--lrs {text!r}: every learning rate must be a positive number (got {bad or 'none'})")
    return lrs


def loss_of(result: dict) -> float:
    """Final validation loss of a result; inf for a run that did not finish (diverged), so it never wins."""
    loss = result.get("final_val_loss") if result.get("status") == "done" else None
    return float(loss) if loss is not None and math.isfinite(loss) else math.inf


def losses_by_point(runs, results) -> tuple[dict, dict]:
    """{(N, D): {lr: loss}} and {(N, D, lr): planned run} from runs and their results (keyed by run index)."""
    losses, run_at = {}, {}
    for r in runs:
        losses.setdefault((r.n_params, r.n_tokens), {})[r.cfg.train.lr] = loss_of(results[r.index])
        run_at[(r.n_params, r.n_tokens, r.cfg.train.lr)] = r
    return losses, run_at


def best_per_point(losses: dict) -> dict:
    """{point: {lr: loss}} -> {point: (best lr, its loss)}; ties go to the smaller LR.

    A point where every LR diverged has no best: (None, inf).
    """
    out = {}
    for point, by_lr in losses.items():
        lr, loss = min(by_lr.items(), key=lambda kv: (kv[1], kv[0]))
        out[point] = (lr if math.isfinite(loss) else None, loss)
    return out


def edge_mark(lr: float | None, lrs: list[float]) -> str:
    """'<' / '>' when the best LR is the smallest / largest tried (the optimum may lie beyond), else ''."""
    if lr is None or len(lrs) < 2:
        return ""
    return "<" if lr == lrs[0] else (">" if lr == lrs[-1] else "")


def train_all(runs, label: str) -> tuple[dict, float]:
    """Train runs in order (trunks before branches); {run position: result}, wall seconds."""
    from sweep.run.train import train

    out, t0 = {}, time.perf_counter()
    for r in runs:
        t1 = time.perf_counter()
        res = train(r.cfg, progress=False)
        out[r.index] = res
        kind = "branch" if r.cfg.meta.get("branch") else ("trunk" if r.cfg.meta.get("trunk") else "run")
        print(f"  {label} {kind:6s} {r.run_name:18s} lr {r.cfg.train.lr:<8g} {r.steps:5d} steps  "
              f"loss {loss_of(res):.4f}  {time.perf_counter() - t1:5.1f}s", file=sys.stderr, flush=True)
    return out, time.perf_counter() - t0


def fit_rows(runs, results) -> list[dict]:
    """Rows for sweep.fit from planned runs and their results (keyed by run index)."""
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
    parser.add_argument("--data", default="tinyshakespeare",
                        help="corpus: 'tinyshakespeare' (1 MB), 'stdlib' (Python's standard library, ~12 MB) "
                             "or a path to a text file or folder")
    parser.add_argument("--shapes", default="2x32,2x48,2x64", help="model sizes as n_layer x d_model (n_head = d/16)")
    parser.add_argument("--n-tokens", default="125000,250000,500000,1000000", help="token budgets D")
    parser.add_argument("--cooldown-fraction", type=float, default=0.2)
    parser.add_argument("--cooldown-shape", default="linear", choices=["linear", "1-sqrt"])
    parser.add_argument("--lr", type=float, default=5e-3, help="peak learning rate of both schedules")
    parser.add_argument("--lrs", default=None,
                        help="comma-separated peak LRs: train both grids at each and compare best against best per (N, D)")
    parser.add_argument("--min-lr-ratio", type=float, default=0.1,
                        help="final LR / peak LR of both schedules (cosine's floor, WSD's cooldown end)")
    parser.add_argument("--tokens-per-step", type=int, default=512, help="a multiple of seq_len 64")
    parser.add_argument("--warmup-steps", type=int, default=20, help="the same warmup for every run, WSD and cosine")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n-bootstrap", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="train.seed (init and data order) and the bootstrap's seed")
    args = parser.parse_args()
    lrs = parse_lrs(args.lrs, args.lr)
    if not 0.0 <= args.min_lr_ratio <= 1.0:
        parser.error(f"--min-lr-ratio {args.min_lr_ratio}: give a fraction of the peak LR in [0, 1]")
    from sweep.ladder.branching import branch, branch_cost
    from sweep.ladder.experiment import ExperimentConfig
    from sweep.ladder.grid import expand
    from sweep.store.results import human

    base = base_config(args)
    exp = ExperimentConfig(name="wsd_check", shapes=parse_shapes(args.shapes),
                           n_tokens=[int(float(x)) for x in args.n_tokens.split(",")])
    wsd_plain, cosine = [], []
    for lr in lrs:
        at_lr = dataclasses.replace(base, train=dataclasses.replace(base.train, lr=lr))
        cosine += expand(exp, at_lr, 256)
        wsd_plain += expand(exp, dataclasses.replace(at_lr, train=dataclasses.replace(
            at_lr.train, schedule="wsd", cooldown_fraction=args.cooldown_fraction, cooldown_shape=args.cooldown_shape)), 256)
    branched = branch(wsd_plain)  # one trunk per (size, LR): the LR is part of a group's key
    cosine = [dataclasses.replace(r, index=i) for i, r in enumerate(cosine)]

    lr_text = f"lr {lrs[0]}" if len(lrs) == 1 else f"peak LRs {', '.join(f'{x:g}' for x in lrs)} (best per point)"
    print(f"WSD ({100 * args.cooldown_fraction:.0f}% {args.cooldown_shape} cooldown, branched) vs cosine, "
          f"data {args.data}, {lr_text}, min_lr_ratio {args.min_lr_ratio}, seed {args.seed}, {args.tokens_per_step} tokens/step, "
          f"warmup {args.warmup_steps} steps, {len(cosine) // len(lrs)} (N, D) points", file=sys.stderr)
    wsd_res, wsd_wall = train_all(branched, "wsd")
    cos_res, cos_wall = train_all(cosine, "cosine")

    wsd_losses, wsd_run_at = losses_by_point(branched, wsd_res)
    cos_losses, cos_run_at = losses_by_point(cosine, cos_res)
    wsd_best, cos_best = best_per_point(wsd_losses), best_per_point(cos_losses)
    points = sorted(wsd_best)

    if len(lrs) > 1:
        print("\nfinal loss at each peak LR, WSD / cosine (* the best of each schedule at that point)")
        print(f"{'run':18s} " + " ".join(f"{f'lr {x:g}':>17s}" for x in lrs))
        for p in points:
            cells = []
            for x in lrs:
                w, c = wsd_losses[p][x], cos_losses[p][x]
                cells.append(f"{w:7.4f}{'*' if wsd_best[p][0] == x else ' '}/{c:7.4f}{'*' if cos_best[p][0] == x else ' '}")
            print(f"{wsd_run_at[(*p, lrs[0])].run_name:18s} " + " ".join(f"{cell:>17s}" for cell in cells))

    lr_cols = f" {'wsd lr':>8s} {'cos lr':>8s}" if len(lrs) > 1 else ""
    print(f"\n{'run':18s} {'N':>7s} {'D':>7s} {'kind':6s} {'wsd loss':>9s} {'cosine':>9s} {'rel diff':>9s}{lr_cols}")
    max_rel, rels, chosen_wsd, chosen_cos, at_edge = 0.0, [], [], [], 0
    for p in points:
        (lw, w), (lc, c) = wsd_best[p], cos_best[p]
        r = wsd_run_at[(*p, lw if lw is not None else lrs[0])]
        rel = (w - c) / c if math.isfinite(w) and math.isfinite(c) else math.nan
        max_rel = max(max_rel, abs(rel)) if not math.isnan(rel) else math.inf
        rels.append(rel)
        chosen_wsd.append(r)
        chosen_cos.append(cos_run_at[(*p, lc if lc is not None else lrs[0])])
        kind = "branch" if r.cfg.meta.get("branch") else "trunk"
        marks = (edge_mark(lw, lrs), edge_mark(lc, lrs))
        at_edge += sum(bool(m) for m in marks)
        cols = (f" {marks[0] + (f'{lw:g}' if lw else '-'):>8s} {marks[1] + (f'{lc:g}' if lc else '-'):>8s}"
                if len(lrs) > 1 else "")
        print(f"{r.run_name:18s} {human(r.n_params):>7s} {human(r.n_tokens):>7s} {kind:6s} {w:9.4f} {c:9.4f} "
              f"{100 * rel:+8.2f}%{cols}")
    finite = [x for x in rels if not math.isnan(x)]
    print(f"mean rel diff {100 * sum(finite) / max(len(finite), 1):+.2f}% (negative: WSD lower), "
          f"{sum(abs(x) <= 0.01 for x in finite)} of {len(rels)} points within 1%")
    if at_edge:
        print(f"{at_edge} best LR(s) at the edge of --lrs (< smallest, > largest): the optimum may lie outside; "
              f"extend --lrs to be sure")

    t0 = time.perf_counter()
    ex_wsd = exponents(fit_rows(chosen_wsd, wsd_res), args.n_bootstrap, args.seed)
    ex_cos = exponents(fit_rows(chosen_cos, cos_res), args.n_bootstrap, args.seed)
    fit_seconds = time.perf_counter() - t0
    print(f"\napproach 3 ({args.n_bootstrap} bootstrap resamples, 95% intervals, {fit_seconds:.0f}s"
          + (", each schedule's best-LR loss per point)" if len(lrs) > 1 else ")"))
    print(f"{'':6s} {'WSD branches':>28s} {'independent cosine':>28s}  each inside the other's interval")
    within = True
    for k in ("alpha", "beta", "a"):
        (pw, iw), (pc, ic) = ex_wsd[k], ex_cos[k]
        ok = iw[0] <= pc <= iw[1] and ic[0] <= pw <= ic[1]
        within &= ok
        print(f"{k:6s} {pw:8.3f} [{iw[0]:7.3f}, {iw[1]:7.3f}]   {pc:8.3f} [{ic[0]:7.3f}, {ic[1]:7.3f}]  {ok}")

    cost = branch_cost(branched)["total"]  # ratio_to_longest is the same per LR and over all of them
    cos_flops = sum(r.flops for r in cosine)
    print(f"\ncompute: branched {human(cost['branched_flops'])} FLOPs, independent {human(cost['independent_flops'])} "
          f"(cosine grid {human(cos_flops)}), longest run per size alone {human(cost['longest_flops'])}: "
          f"branched = {cost['ratio_to_longest']:.3f}x the longest runs, {100 * cost['saving']:.0f}% saved"
          + (f" (all {len(lrs)} LRs)" if len(lrs) > 1 else ""))
    print(f"wall (this machine, incl. runs already done): WSD branched {wsd_wall:.0f}s, cosine grid {cos_wall:.0f}s")
    print(f"max_rel_diff={max_rel:.4f} exponents_within_ci={within} cost_ratio={cost['ratio_to_longest']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
