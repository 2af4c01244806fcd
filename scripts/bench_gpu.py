"""GPU speed: tokens/s, MFU and peak memory per model size; packed vs one-at-a-time tiny runs.

    python scripts/bench_gpu.py                            # CUDA box: sizes 1M..300M, then the sweep
    python scripts/bench_gpu.py --sections sizes --sizes 1M,20M
    python scripts/bench_gpu.py --sections sweep --sweep-runs 8 --sweep-tokens 50M --pack 4
    python scripts/bench_gpu.py --sections sizes --sizes 1M,5M --compile-mode reduce-overhead   # CUDA graphs
    python scripts/bench_gpu.py --cpu-smoke                # the same code on CPU in under a minute

Sizes: one real `train()` per size (non-embedding 1M, 5M, 20M, 100M, 300M by the *_h100
experiments' shape rule; seq_len 1024, vocab 16384, conf/train/gpu.yaml: bf16 autocast, TF32,
torch.compile, fused AdamW) on the offline stdlib corpus. tokens/s and MFU are the run's steady
state (result.json: after its warm-up steps, which include compilation, without evaluations); MFU is
on the FLOPs a step executes, with the exact count's MFU beside it; peak memory is
torch.cuda.max_memory_allocated, next to packing.py's estimate of it (est_mem: what the allocator holds; packing adds ~1 GiB of CUDA
context per run).

Sweep: --sweep-runs runs of the smallest size (seeds 0, 1, ...; default one packed wave), each its
own `python -m sweep train` process as hydra/launcher=parallel starts them, first one at a time,
then --pack at a time on this GPU (default: packing.py's choice). Aggregate useful FLOP/s = the
runs' exact training FLOPs summed / wall time of the whole batch (process start-up, data loading
and compilation included, as in a real sweep: short runs make packing look better than long ones).

On CPU (--cpu-smoke) the sizes are ~20k and ~100k parameters on a byte-level slice of the corpus,
MFU is not defined (no known peak) and peak memory is the process's peak RSS.

Ends with key=value lines: `size=<name> ...` per size, and `sweep_runs=<n> ...`.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GiB = 2**30


@dataclass
class Setup:
    """What the benchmark trains: shapes, data and step sizes for one device."""

    device: str
    sizes: list
    seq_len: int
    vocab: int
    aspect_ratio: float
    head_dim: int
    batch_size: int
    tokens_per_step: int
    steps: int
    warmup_steps: int
    data: list
    train: list


def gpu_setup(args) -> Setup:
    return Setup(device="cuda", sizes=args.sizes or ["1M", "5M", "20M", "100M", "300M"], seq_len=1024, vocab=16384,
                 aspect_ratio=64, head_dim=64, batch_size=args.batch_size or 32, tokens_per_step=131072,
                 steps=args.steps or 20, warmup_steps=5,
                 data=["data=stdlib", "data.allow_repeat=true", "tokenizer=bpe", "tokenizer.vocab_size=16384"],
                 train=["train=gpu", "train.device=cuda"])


def cpu_setup(args) -> Setup:
    return Setup(device="cpu", sizes=args.sizes or ["20k", "100k"], seq_len=64, vocab=256, aspect_ratio=32,
                 head_dim=16, batch_size=args.batch_size or 8, tokens_per_step=1024, steps=args.steps or 8,
                 warmup_steps=2,
                 data=["data=stdlib", "data.max_bytes=300000", "data.split=tail", "data.val_tokens=4096",
                       "data.allow_repeat=true", "tokenizer=byte", "tokenizer.vocab_size=256"],
                 train=["train=cpu", "train.device=cpu", "train.dtype=fp32", "train.compile=false", "train.threads=1"])


def parse_count(text: str) -> int:
    """'20k' -> 20000, '1M' -> 1000000, '300M' -> 300000000."""
    scale = {"k": 1e3, "M": 1e6, "G": 1e9}.get(text[-1:], 1)
    return int(float(text[:-1] if scale != 1 else text) * scale)


def shape_overrides(size: str, s: Setup) -> list:
    from sweep.config import ModelConfig
    from sweep.ladder.grid import shape_for_params

    m = shape_for_params(parse_count(size), s.aspect_ratio, s.head_dim, ModelConfig(seq_len=s.seq_len), s.vocab)
    return [f"model.n_layer={m.n_layer}", f"model.d_model={m.d_model}", f"model.n_head={m.n_head}",
            f"model.seq_len={s.seq_len}"]


def run_overrides(size: str, s: Setup, n_tokens: int, results: Path, cache: Path, name: str) -> list:
    """A complete `sweep train` command line for one benchmark run."""
    return [*s.data, *s.train, *shape_overrides(size, s), f"train.batch_size={s.batch_size}",
            f"train.tokens_per_step={s.tokens_per_step}", f"budget.n_tokens={n_tokens}",
            "train.checkpoint_interval=0", f"train.log_interval={s.warmup_steps}",
            f"train.eval_interval={10**9}", "logger=disabled", f"results_dir={results}", f"sweep_name={name}",
            f"data.cache_dir={cache}"]


def run_folder(result: dict) -> Path:
    return Path(result["config"]["results_dir"]) / result["sweep_name"] / "runs" / result["run_id"]


def peak_memory(device: str) -> float:
    import torch

    if device == "cuda":
        return float(torch.cuda.max_memory_allocated())
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0  # Linux reports KiB


def reset_device(device: str) -> None:
    import torch

    if device == "cuda":
        torch._dynamo.reset()  # a fresh compile per size, never the cache limit's eager fallback
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


# ----------------------------------------------------------------------------- sizes


def bench_sizes(s: Setup, tmp: Path, cache: Path) -> list:
    from sweep.run import runtime
    from sweep.cli import load_run_config
    from sweep.launch.packing import run_gpu_memory
    from sweep.run.train import train

    rows = []
    for size in s.sizes:
        cfg = load_run_config(run_overrides(size, s, s.steps * s.tokens_per_step, tmp / "results", cache, "sizes"))
        reset_device(s.device)
        result = train(cfg, progress=False)
        if result.get("status") != "done":
            raise RuntimeError(f"size {size}: run ended {result.get('status')}: {result.get('error', '')[-500:]}")
        tps = result["tokens_per_second"]  # steady: after the warm-up steps, without evaluations (sweep/run/speed.py)
        m = cfg.model
        rows.append({
            "size": size, "n_layer": m.n_layer, "d_model": m.d_model,
            "n_params_non_embedding": result["n_params_non_embedding"], "n_params": result["n_params"],
            "tokens_per_second": tps, "mfu": result["mfu"], "mfu_chinchilla_flops": result["mfu_chinchilla_flops"],
            "step_ms": 1000 * s.tokens_per_step / tps, "peak_memory": peak_memory(s.device),
            "estimated_memory": run_gpu_memory(cfg).allocated, "device": result["device"],
        })
        print(f"  {size}: {tps:,.0f} tokens/s", file=sys.stderr, flush=True)
    return rows


def sizes_table(rows: list, s: Setup) -> str:
    from sweep.store.results import human

    head = (f"{'size':>5} {'L':>3} {'d':>5} {'N_ne':>7} {'N':>7} {'tokens/s':>10} {'MFU':>6} {'MFU_ex':>6} "
            f"{'step_ms':>8} {'peak_mem':>9} {'est_mem':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "-"
        exact = f"{100 * r['mfu_chinchilla_flops']:.1f}%" if r["mfu_chinchilla_flops"] is not None else "-"
        lines.append(f"{r['size']:>5} {r['n_layer']:>3} {r['d_model']:>5} {human(r['n_params_non_embedding']):>7} "
                     f"{human(r['n_params']):>7} {r['tokens_per_second']:>10,.0f} {mfu:>6} {exact:>6} "
                     f"{r['step_ms']:>8.1f} "
                     f"{r['peak_memory'] / GiB:>8.2f}G {r['estimated_memory'] / GiB:>7.2f}G")
    note = ("peak_mem: torch.cuda.max_memory_allocated" if s.device == "cuda"
            else "peak_mem: this process's peak RSS (CPU: cumulative over sizes)")
    lines.append(f"MFU: on the FLOPs a step executes; MFU_ex: on the exact (Chinchilla) count\n{note}; est_mem: "
                 f"sweep/launch/packing.py's estimate of the same; {s.tokens_per_step} tokens per step "
                 f"in micro-batches of {s.batch_size} x {s.seq_len}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- packed sweep


def run_batch(commands: list, at_once: int, env: dict, log: Path) -> float:
    """Run every command, at most `at_once` at a time; wall seconds of the whole batch."""
    pending, running = list(commands), []
    start = time.perf_counter()
    with open(log, "a") as out:
        try:
            while pending or running:
                while pending and len(running) < at_once:
                    running.append(subprocess.Popen(pending.pop(0), env=env, cwd=ROOT, stdout=out, stderr=out))
                time.sleep(0.1)
                for p in [p for p in running if p.poll() is not None]:
                    running.remove(p)
                    if p.returncode != 0:
                        raise RuntimeError(f"a benchmark run failed (exit {p.returncode}); see {log}")
        finally:
            for p in running:  # only on failure: the batch's other runs are no longer worth waiting for
                p.kill()
                p.wait()
    return time.perf_counter() - start


def batch_flops(results: Path, name: str) -> tuple:
    """(runs, exact training FLOPs summed, mean training-loop tokens/s per run) of one batch."""
    found = [json.loads(f.read_text()) for f in sorted((results / name / "runs").glob("*/result.json"))]
    done = [r for r in found if r.get("status") == "done"]
    mean_tps = sum(r["tokens_per_second"] for r in done) / max(len(done), 1)
    return len(done), sum(r["flops"] for r in done), mean_tps


def runs_per_gpu_now(cfg) -> int:
    """Runs of `cfg` to pack on this GPU, by the memory free now, not its total: this process holds a CUDA
    context, and the sizes section's cached blocks are given back first (the largest size's alone fills most of
    an 80 GB GPU, and packing by the total would start runs into memory that is not there)."""
    import torch

    from sweep.launch.packing import decide_packing
    from sweep.run.cores import usable_cores

    gc.collect()
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info()
    return decide_packing([cfg], free, usable_cores()).runs_per_gpu


def bench_sweep(s: Setup, tmp: Path, cache: Path, n_runs: int, n_tokens: int, pack: int) -> dict:
    from sweep.run.cores import usable_cores

    size = s.sizes[0]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    out = {"size": size, "runs": n_runs, "n_tokens": n_tokens, "runs_per_gpu": pack}
    for mode, at_once in (("sequential", 1), ("packed", pack)):
        # host cores shared out as the parallel launcher does (the CPU smoke keeps its 1 thread per run)
        extra = [] if s.device == "cpu" else [f"train.threads={max(1, usable_cores() // at_once)}"]
        commands = [[sys.executable, "-m", "sweep", "train",
                     *run_overrides(size, s, n_tokens, tmp / "results", cache, f"sweep-{mode}"),
                     f"train.seed={i}", *extra] for i in range(n_runs)]
        wall = run_batch(commands, at_once, env, tmp / f"sweep-{mode}.log")
        done, flops, mean_tps = batch_flops(tmp / "results", f"sweep-{mode}")
        if done != n_runs:
            raise RuntimeError(f"{mode}: {done} of {n_runs} runs finished; see {tmp / f'sweep-{mode}.log'}")
        out[mode] = {"wall": wall, "flops": flops, "flops_per_second": flops / wall, "run_tokens_per_second": mean_tps}
        print(f"  {mode}: {wall:.1f}s", file=sys.stderr, flush=True)
    out["speedup"] = out["packed"]["flops_per_second"] / out["sequential"]["flops_per_second"]
    return out


def sweep_lines(r: dict, peak: float | None, mps_line: str) -> str:
    from sweep.store.results import human

    def pct(x):
        return f" ({100 * x / peak:.1f}% of peak)" if peak else ""

    seq, packed = r["sequential"], r["packed"]
    return "\n".join([
        f"tiny-model sweep: {r['runs']} runs of size {r['size']}, {human(r['n_tokens'])} tokens each, "
        f"{seq['flops'] / r['runs']:.3g} exact training FLOPs per run",
        f"  one at a time : wall {seq['wall']:7.1f}s, aggregate {seq['flops_per_second']:.3g} useful FLOP/s"
        f"{pct(seq['flops_per_second'])}, {seq['run_tokens_per_second']:,.0f} tokens/s per run",
        f"  {r['runs_per_gpu']} per GPU     : wall {packed['wall']:7.1f}s, aggregate "
        f"{packed['flops_per_second']:.3g} useful FLOP/s{pct(packed['flops_per_second'])}, "
        f"{packed['run_tokens_per_second']:,.0f} tokens/s per run",
        f"  packed / one at a time: {r['speedup']:.2f}x; {mps_line}",
    ])


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on CPU, under a minute (for tests)")
    parser.add_argument("--sections", default="sizes,sweep", help="comma-separated: sizes, sweep")
    parser.add_argument("--sizes", type=lambda t: t.split(","), help="non-embedding sizes, e.g. 1M,5M,20M")
    parser.add_argument("--steps", type=int, help="optimizer steps per size (default 20; 8 on CPU)")
    parser.add_argument("--batch-size", type=int, help="sequences per micro-batch (default 32; 8 on CPU)")
    parser.add_argument("--sweep-runs", type=int, help="runs in the sweep section (default: one packed wave, --pack)")
    parser.add_argument("--sweep-tokens", type=parse_count, help="tokens per sweep run (default 20M; 4k on CPU)")
    parser.add_argument("--pack", type=int, help="runs per GPU when packed (default: sweep/launch/packing.py's choice)")
    parser.add_argument("--mps", action="store_true", help="run the sweep section under a private CUDA MPS daemon")
    parser.add_argument("--compile-mode", help="train.compile_mode, e.g. reduce-overhead (CUDA graphs) for tiny sizes")
    parser.add_argument("--cache-dir", default=None, help="data cache (default results/cache; a temp one on CPU)")
    args = parser.parse_args(argv)

    import torch

    from sweep.run import runtime
    from sweep.cli import load_run_config
    from sweep.launch.mps import mps_status, private_mps

    if not args.cpu_smoke and not torch.cuda.is_available():
        print("no CUDA device: run on a GPU box, or pass --cpu-smoke", file=sys.stderr)
        return 2
    s = cpu_setup(args) if args.cpu_smoke else gpu_setup(args)
    if args.compile_mode:
        s.train.append(f"train.compile_mode={args.compile_mode}")
    sections = set(args.sections.split(","))
    with tempfile.TemporaryDirectory(prefix="bench_gpu-") as tmp_name:
        tmp = Path(tmp_name)
        default_cache = tmp / "cache" if args.cpu_smoke else ROOT / "results" / "cache"
        cache = Path(args.cache_dir) if args.cache_dir else default_cache
        label = runtime.device_name(torch.device(s.device))
        peak = runtime.peak_flops(label)
        print(f"device {label} (dense bf16 peak {f'{peak / 1e12:.0f} TFLOP/s' if peak else 'unknown'}), "
              f"torch {torch.__version__}, train overrides: {' '.join(s.train)}")
        mps = mps_status()
        if s.device == "cuda":
            print(mps.describe())

        rows = []
        if "sizes" in sections:
            rows = bench_sizes(s, tmp, cache)
            print(sizes_table(rows, s))

        sweep = None
        if "sweep" in sections:
            n_tokens = args.sweep_tokens or (4 * s.tokens_per_step if args.cpu_smoke else 20_000_000)
            n_tokens = max(s.tokens_per_step, n_tokens // s.tokens_per_step * s.tokens_per_step)
            tiny = load_run_config(run_overrides(s.sizes[0], s, n_tokens, tmp / "results", cache, "x"))
            pack = args.pack
            if pack is None and s.device == "cuda":
                pack = runs_per_gpu_now(tiny)
            pack = pack or 2  # CPU: no GPU to fill; two processes at once exercise the same path
            n_runs = args.sweep_runs or pack  # one packed wave against the same runs one at a time
            # the corpus is prepared once, before either batch is timed
            from sweep.run.data import prepare_data

            prepare_data(tiny.data, tiny.tokenizer, progress=False)
            with private_mps() if args.mps else contextlib.nullcontext():
                mps = mps_status()
                sweep = bench_sweep(s, tmp, cache, n_runs, n_tokens, pack)
            print(sweep_lines(sweep, peak, mps.describe() if s.device == "cuda" else "CPU: no MPS"))

    for r in rows:
        mfu = f"{r['mfu']:.4f}" if r["mfu"] is not None else "nan"
        mfu_exact = f"{r['mfu_chinchilla_flops']:.4f}" if r["mfu_chinchilla_flops"] is not None else "nan"
        print(f"size={r['size']} n_layer={r['n_layer']} d_model={r['d_model']} mfu_chinchilla_flops={mfu_exact} "
              f"n_params_non_embedding={r['n_params_non_embedding']} n_params={r['n_params']} "
              f"tokens_per_second={r['tokens_per_second']:.1f} mfu={mfu} step_ms={r['step_ms']:.2f} "
              f"peak_memory_gib={r['peak_memory'] / GiB:.3f} estimated_memory_gib={r['estimated_memory'] / GiB:.3f}")
    if sweep:
        print(f"sweep_runs={sweep['runs']} sweep_size={sweep['size']} runs_per_gpu={sweep['runs_per_gpu']} "
              f"sequential_flops_per_second={sweep['sequential']['flops_per_second']:.4g} "
              f"packed_flops_per_second={sweep['packed']['flops_per_second']:.4g} speedup={sweep['speedup']:.3f} "
              f"sequential_wall_s={sweep['sequential']['wall']:.2f} packed_wall_s={sweep['packed']['wall']:.2f} "
              f"mps={int(mps.running)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
