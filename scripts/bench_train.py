"""Training throughput benchmark: tokens/s, peak memory and final validation loss of one run.

    python scripts/bench_train.py [hydra overrides]          # any run config
    python scripts/bench_train.py --preset nanogpt-cpu        # nanoGPT's CPU "baby GPT" recipe

The nanogpt-cpu preset is nanoGPT's shakespeare_char CPU recipe on sweep/corpora/tinyshakespeare.txt
with the byte tokenizer: n_layer 4, n_head 4, n_embd 128, block 64, batch 12, dropout 0,
2000 iterations, AdamW lr 1e-3 (beta2 0.99, weight decay 0.1, clip 1.0), 100 warmup iterations,
cosine to 1e-4 at iteration 2000, first 90% train / last 10% validation. nanoGPT on an idle
2-core machine: about 34 ms per iteration (~22,500 tokens/s), val loss 1.886.

Ends with one machine-readable line: tokens_per_second=<x> val_loss=<y> peak_rss_mb=<z> mfu=<m>
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAKESPEARE = ROOT / "sweep" / "corpora" / "tinyshakespeare.txt"  # shipped in the package (data=tinyshakespeare)


def nanogpt_cpu_overrides(dtype: str) -> list[str]:
    batch, block, iters = 12, 64, 2000
    return [
        "data.source=files", f"data.path={SHAKESPEARE}", "data.split=tail", "data.val_fraction=0.1",
        "data.val_tokens=111000", "data.allow_repeat=true", "tokenizer=byte",
        "model.n_layer=4", "model.n_head=4", "model.d_model=128", f"model.seq_len={block}", "model.dropout=0.0",
        f"train.batch_size={batch}", f"train.tokens_per_step={batch * block}",
        f"budget.n_tokens={batch * block * iters}",
        "train.lr=1e-3", "train.min_lr_ratio=0.1", "train.beta2=0.99", "train.weight_decay=0.1",
        "train.grad_clip=1.0", "train.warmup_steps=100", "train.schedule=cosine",
        "train.eval_interval=500", "train.eval_tokens=16384", f"train.dtype={dtype}",
        "logger.mode=disabled",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=["nanogpt-cpu"], help="a named recipe")
    parser.add_argument("--dtype", default="auto", help="train.dtype for the preset: auto (fp32 on CPU), fp32 or bf16")
    args, overrides = parser.parse_known_args()

    from sweep.cli import load_run_config
    from sweep.run.train import train

    with tempfile.TemporaryDirectory() as tmp:
        base = [f"results_dir={tmp}", "sweep_name=bench", f"data.cache_dir={ROOT / 'results' / 'cache'}"]
        if args.preset == "nanogpt-cpu":
            if not SHAKESPEARE.exists():
                print(f"missing {SHAKESPEARE}", file=sys.stderr)
                return 2
            base += nanogpt_cpu_overrides(args.dtype)
        else:
            base += ["logger.mode=disabled"]
        result = train(load_run_config(base + overrides))

    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    steps = result["steps"]
    print(f"run {result['run_name']}: {steps} steps, {result['n_tokens']:,} tokens, threads={result['threads']}, "
          f"{1000 * result['wall_seconds'] / steps:.1f} ms/step, device={result['device']}")
    print(f"final val loss {result['final_val_loss']:.4f} nats/token ({result['final_val_bpb']:.4f} bits/byte), "
          f"train loss {result['final_train_loss']:.4f}")
    print(f"MFU {100 * result['mfu']:.1f}% of {result['peak_flops']:.3g} FLOP/s ({result['peak_flops_source']})")
    print(f"tokens_per_second={result['tokens_per_second']:.0f} val_loss={result['final_val_loss']:.4f} "
          f"peak_rss_mb={peak_rss_mb:.0f} mfu={result['mfu']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
