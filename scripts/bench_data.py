"""The data pipeline at scale: tokenization speed, start-up on a cache hit, and peak memory, for a corpus
built from local text (this Python's standard library sources, repeated with a per-copy header so no two
documents are alike) up to `--gb` gigabytes.

    python scripts/bench_data.py [--gb 1.0] [--tokenizer byte|bpe]

Each measurement runs in a fresh process, so its peak RSS is its own:
  build   prepare_data on a cold cache: reads, hashes, splits, trains the tokenizer (BPE) and encodes;
  hit     prepare_data again: found by the files' names, sizes and mtimes, nothing read;
  train   a 500-step run on the cached token files (windows read with pread, in a Feistel order above 1M windows).
Ends with one line:
    corpus_mb=<x> build_seconds=<s> tokenize_mb_per_s=<r> build_peak_rss_mb=<m> hit_seconds=<h> hit_peak_rss_mb=<m>
    train_peak_rss_mb=<m>
Targets: hit_seconds <= 2, and hit/train peak RSS independent of the corpus size (compare two --gb values).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from sweep.compose import load_run_config
mode, args = sys.argv[1], sys.argv[2:]
cfg = load_run_config(args)
t0 = time.perf_counter()
if mode == "train":
    from sweep.run.train import train
    train(cfg, progress=False)
else:
    from sweep.run.data import prepare_data
    prepare_data(cfg.data, cfg.tokenizer, progress=False)
print(json.dumps({"seconds": time.perf_counter() - t0,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def build_corpus(folder: Path, gigabytes: float) -> int:
    """Copies of the stdlib's .py files, each prefixed with its copy number, up to `gigabytes`; total bytes."""
    sources = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("**/*.py"))
    texts = [p.read_text(errors="replace") for p in sources if "test" not in p.parts]
    target, total, copy = gigabytes * 1e9, 0, 0
    while total < target:
        out = folder / f"copy{copy:04d}"
        out.mkdir(parents=True)
        for i, text in enumerate(texts):
            body = f"# copy {copy}\n{text}"
            (out / f"f{i:05d}.py").write_text(body)
            total += len(body.encode())
            if total >= target:
                break
        copy += 1
    return total


def child(mode: str, args: list) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=1.0, help="corpus size in GB")
    parser.add_argument("--tokenizer", choices=["byte", "bpe"], default="byte")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        size = build_corpus(tmp / "corpus", args.gb)
        tok = ["tokenizer=byte"] if args.tokenizer == "byte" else ["tokenizer=bpe", "tokenizer.vocab_size=1024"]
        common = ["data=files", f"data.path={tmp / 'corpus'}", f"data.cache_dir={tmp / 'cache'}", *tok,
                  "data.val_tokens=65536", f"results_dir={tmp / 'results'}", "logger=disabled"]
        build = child("build", common)
        hit = child("hit", common)
        train = child("train", [*common, "model.n_layer=2", "model.d_model=64", "model.n_head=4", "model.seq_len=64",
                                "train.tokens_per_step=1024", "budget.n_tokens=512000"])
    mb = size / 1e6
    print(f"corpus_mb={mb:.0f} build_seconds={build['seconds']:.1f} tokenize_mb_per_s={mb / build['seconds']:.1f} "
          f"build_peak_rss_mb={build['peak_rss_mb']:.0f} hit_seconds={hit['seconds']:.3f} "
          f"hit_peak_rss_mb={hit['peak_rss_mb']:.0f} train_peak_rss_mb={train['peak_rss_mb']:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
