"""Our trainer against a nanoGPT-style training loop: same recipe, same machine, interleaved.

    python scripts/bench_vs_nanogpt.py [--rounds 3] [--iters 2000]

The training issue asks that `sweep` be at least as fast as nanoGPT on the same machine. nanoGPT's
source cannot be fetched here (no network), so the reference is a loop written for this benchmark
from nanoGPT's published design and its CPU "baby GPT" recipe: a module per layer (fused QKV
projection split into heads, SDPA, exact GELU, bias-free LayerNorm, tied head), AdamW on foreach
kernels (nanoGPT fuses AdamW only on CUDA), random windows stacked per step, clip 1.0, linear warmup
then cosine to 1e-4. Both sides train on the bytes of sweep/corpora/tinyshakespeare.txt (vocab 256,
first 90% train), batch 12, block 64, 4 layers x 128, and neither evaluates inside the loop, so
tokens/s is training alone. The final validation loss of both comes from the same `evaluate`.

Rounds alternate which side goes first, so a drift in machine speed falls on both.
Ends with one machine-readable line:
    ours_tokens_per_second=<x> reference_tokens_per_second=<y> ratio=<x/y> ours_val_loss=<a> reference_val_loss=<b>
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import ROOT, SHAKESPEARE, nanogpt_cpu_overrides  # noqa: E402

BATCH, BLOCK, N_LAYER, N_HEAD, D_MODEL, VOCAB = 12, 64, 4, 4, 128, 256
LR, MIN_LR, WARMUP = 1e-3, 1e-4, 100


class _Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_attn = nn.Linear(D_MODEL, 3 * D_MODEL, bias=False)
        self.c_proj = nn.Linear(D_MODEL, D_MODEL, bias=False)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, N_HEAD, C // N_HEAD).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(D_MODEL, bias=False), nn.LayerNorm(D_MODEL, bias=False)
        self.attn = _Attention()
        self.mlp = nn.Sequential(nn.Linear(D_MODEL, 4 * D_MODEL, bias=False), nn.GELU(),
                                 nn.Linear(4 * D_MODEL, D_MODEL, bias=False))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class ReferenceGPT(nn.Module):
    """nanoGPT's architecture at the baby-GPT shape; forward returns (logits, mean loss)."""

    def __init__(self):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(VOCAB, D_MODEL), nn.Embedding(BLOCK, D_MODEL)
        self.h = nn.ModuleList(_Block() for _ in range(N_LAYER))
        self.ln_f = nn.LayerNorm(D_MODEL, bias=False)
        self.lm_head = nn.Linear(D_MODEL, VOCAB, bias=False)
        self.wte.weight = self.lm_head.weight
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * N_LAYER))

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return logits, F.cross_entropy(logits.view(-1, VOCAB), targets.reshape(-1))


def reference_run(tokens: np.ndarray, iters: int, threads: int, seed: int = 1337) -> dict:
    """The reference loop; returns tokens/s over the training loop and the model."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    train = tokens[: int(0.9 * len(tokens))]
    model = ReferenceGPT()
    params = list(model.parameters())
    optimizer = torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
                                   {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
                                  lr=LR, betas=(0.9, 0.99), foreach=True)

    def batch():
        ix = torch.randint(len(train) - BLOCK, (BATCH,))
        x = torch.stack([torch.from_numpy(train[i: i + BLOCK].astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy(train[i + 1: i + 1 + BLOCK].astype(np.int64)) for i in ix])
        return x, y

    def lr_at(it):
        if it < WARMUP:
            return LR * (it + 1) / (WARMUP + 1)
        ratio = (it - WARMUP) / max(1, iters - WARMUP)
        return MIN_LR + 0.5 * (1.0 + math.cos(math.pi * min(ratio, 1.0))) * (LR - MIN_LR)

    x, y = batch()
    start = time.perf_counter()
    for it in range(iters):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(it)
        _, loss = model(x, y)
        x, y = batch()  # as nanoGPT: the next batch is built while nothing waits on it
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()  # nanoGPT's CPU recipe logs every iteration
    wall = time.perf_counter() - start
    return {"tokens_per_second": iters * BATCH * BLOCK / wall, "model": model}


def ours_run(iters: int) -> dict:
    from sweep.cli import load_run_config
    from sweep.run.train import train

    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f"results_dir={tmp}", "sweep_name=bench", f"data.cache_dir={ROOT / 'results' / 'cache'}"]
        overrides += [o for o in nanogpt_cpu_overrides("auto") if not o.startswith(("budget.n_tokens", "train.eval_interval"))]
        overrides += [f"budget.n_tokens={BATCH * BLOCK * iters}", f"train.eval_interval={iters + 1}"]
        return train(load_run_config(overrides))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="pairs of runs, alternating which goes first")
    parser.add_argument("--iters", type=int, default=2000, help="optimizer steps per run (the recipe's 2000)")
    args = parser.parse_args()
    if not SHAKESPEARE.exists():
        print(f"missing {SHAKESPEARE}", file=sys.stderr)
        return 2

    from sweep.run.evaluate import evaluate

    tokens = np.frombuffer(SHAKESPEARE.read_bytes(), dtype=np.uint8).astype(np.uint16)
    val = tokens[int(0.9 * len(tokens)):]
    ours_tps, ref_tps, ours_val, ref_val = [], [], None, None
    for r in range(args.rounds):
        for side in (("ours", "reference") if r % 2 == 0 else ("reference", "ours")):
            if side == "ours":
                result = ours_run(args.iters)
                ours_tps.append(result["tokens_per_second"])
                ours_val, threads = result["final_val_loss"], result["threads"]
            else:
                ref = reference_run(tokens, args.iters, threads=torch.get_num_threads())
                ref_tps.append(ref["tokens_per_second"])
                ref_val = evaluate(ref["model"], val, BLOCK, BATCH, torch.device("cpu"), torch.no_grad(), 111_000)
            print(f"round {r + 1} {side:9s}: {(ours_tps if side == 'ours' else ref_tps)[-1]:,.0f} tokens/s",
                  flush=True)
    ours, ref = statistics.median(ours_tps), statistics.median(ref_tps)
    print(f"median of {args.rounds} rounds, {args.iters} steps each, {threads} threads: "
          f"ours {ours:,.0f} tokens/s, reference {ref:,.0f} tokens/s ({ours / ref:.3f}x)")
    print(f"ours_tokens_per_second={ours:.0f} reference_tokens_per_second={ref:.0f} ratio={ours / ref:.3f} "
          f"ours_val_loss={ours_val:.4f} reference_val_loss={ref_val:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
