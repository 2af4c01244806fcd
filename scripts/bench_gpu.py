"""GPU speed: tokens/s, MFU and peak memory per model size; packed vs one-at-a-time tiny runs.

    python scripts/bench_gpu.py                            # CUDA box: sizes 1M..300M, then the sweep
    python scripts/bench_gpu.py --sections prepare         # only build the corpus and tokenizer cache
    python scripts/bench_gpu.py --sections sizes --sizes 1M,20M
    python scripts/bench_gpu.py --sections sweep --sweep-runs 4 --sweep-tokens 50M
    python scripts/bench_gpu.py --sections sizes --sizes 1M,5M --compile-mode reduce-overhead   # CUDA graphs
    python scripts/bench_gpu.py --cpu-smoke                # the same code on CPU in under a minute

Prepare: the corpus's token files and the BPE tokenizer, built once into the cache so that no timed
section pays for them (scripts/gpu_check.sh runs it as its own section).

Sizes: one real `train()` per size (non-embedding 1M, 5M, 20M, 100M, 300M by the *_h100
experiments' shape rule; seq_len 1024, vocab 16384, conf/train/gpu.yaml: bf16 autocast, TF32,
torch.compile, fused AdamW) on the offline stdlib corpus. tokens/s and MFU are the run's steady
state (result.json: after its warm-up steps, which include compilation, without evaluations); MFU is
on the FLOPs a step executes, with the exact count's MFU beside it; peak memory is
torch.cuda.max_memory_allocated, next to packing.py's estimate of it (est_mem: what the allocator holds;
packing adds ~1 GiB of CUDA context per run). Each size's row is printed as soon as it finishes, so a
run cut short by a time limit keeps the rows it had; a size that fails prints why and the others still run.

Sweep: --sweep-runs runs of the smallest size (seeds 0, 1, ...; default: as many as packing.py puts on this
GPU, and never more than that), each its own `python -m sweep train` process as hydra/launcher=parallel
starts them: all of them at once on this GPU, then the same runs one at a time. The figure compared is the
steady per-run tokens/s: each run's steps after its warm-up (`2 x log interval` steps: compilation and
start-up excluded), timed from the step and clock each process writes to its progress.json, and for the
packed batch only over the window in which every run is past its warm-up and none has finished (so a run
is never credited with the GPU to itself while the others compile or after they end). The whole-wall
aggregate useful FLOP/s (start-up, data loading and compilation included) is printed beside it, labelled:
short runs make packing look better by that measure than in a long sweep. Each batch's lines are printed as
it finishes.

On CPU (--cpu-smoke) the sizes are ~20k and ~100k parameters on a byte-level slice of the corpus,
MFU is against a measured CPU peak and peak memory is the process's peak RSS.

Ends with key=value lines: `size=<name> ...` per size, and `sweep_runs=<n> ...`.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import resource
import signal
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


def bench_sizes(s: Setup, tmp: Path, cache: Path) -> tuple:
    """(rows, failed sizes): one training run per size, each row printed as soon as its size finishes."""
    from sweep.cli import load_run_config
    from sweep.launch.packing import run_gpu_memory
    from sweep.run.train import train

    rows, failed = [], []
    print(sizes_header(), flush=True)
    for size in s.sizes:
        try:
            cfg = load_run_config(run_overrides(size, s, s.steps * s.tokens_per_step, tmp / "results", cache,
                                                "sizes"))
            reset_device(s.device)
            result = train(cfg, progress=False)
            if result.get("status") != "done":
                raise RuntimeError(f"run ended {result.get('status')}: {str(result.get('error', ''))[-500:]}")
        except Exception as e:  # one size out of memory or failing must not cost the others' figures
            failed.append(size)
            print(f"{size:>5} failed: {type(e).__name__}: {str(e).splitlines()[-1] if str(e) else ''}", flush=True)
            continue
        tps = result["tokens_per_second"]  # steady: after the warm-up steps, without evaluations (sweep/run/speed.py)
        m = cfg.model
        row = {
            "size": size, "n_layer": m.n_layer, "d_model": m.d_model,
            "n_params_non_embedding": result["n_params_non_embedding"], "n_params": result["n_params"],
            "tokens_per_second": tps, "mfu": result["mfu"], "mfu_chinchilla_flops": result["mfu_chinchilla_flops"],
            "step_ms": 1000 * s.tokens_per_step / tps, "peak_memory": peak_memory(s.device),
            "estimated_memory": run_gpu_memory(cfg).allocated, "device": result["device"],
        }
        rows.append(row)
        print(size_row(row), flush=True)
    print(sizes_note(s), flush=True)
    return rows, failed


def sizes_header() -> str:
    head = (f"{'size':>5} {'L':>3} {'d':>5} {'N_ne':>7} {'N':>7} {'tokens/s':>10} {'MFU':>6} {'MFU_ex':>6} "
            f"{'step_ms':>8} {'peak_mem':>9} {'est_mem':>8}")
    return head + "\n" + "-" * len(head)


def size_row(r: dict) -> str:
    from sweep.store.results import human

    mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "-"
    exact = f"{100 * r['mfu_chinchilla_flops']:.1f}%" if r["mfu_chinchilla_flops"] is not None else "-"
    return (f"{r['size']:>5} {r['n_layer']:>3} {r['d_model']:>5} {human(r['n_params_non_embedding']):>7} "
            f"{human(r['n_params']):>7} {r['tokens_per_second']:>10,.0f} {mfu:>6} {exact:>6} {r['step_ms']:>8.1f} "
            f"{r['peak_memory'] / GiB:>8.2f}G {r['estimated_memory'] / GiB:>7.2f}G")


def sizes_note(s: Setup) -> str:
    note = ("peak_mem: torch.cuda.max_memory_allocated" if s.device == "cuda"
            else "peak_mem: this process's peak RSS (CPU: cumulative over sizes)")
    return (f"MFU: on the FLOPs a step executes; MFU_ex: on the exact (Chinchilla) count\n{note}; est_mem: "
            f"sweep/launch/packing.py's estimate of the same; {s.tokens_per_step} tokens per step "
            f"in micro-batches of {s.batch_size} x {s.seq_len}")


def sizes_table(rows: list, s: Setup) -> str:
    return "\n".join([sizes_header(), *(size_row(r) for r in rows), sizes_note(s)])


# ----------------------------------------------------------------------------- packed sweep


def poll_progress(runs_dir: Path, samples: dict) -> None:
    """Add each run's latest (step, clock) from its progress.json to samples[run folder name][step]. The clock
    is the training process's own time.time() when it wrote the step, so how often this polls does not
    matter as long as some samples past the warm-up are seen."""
    from sweep.store.runs import RunFolder

    for folder in runs_dir.glob("*"):  # a stray file reads as no progress
        got = RunFolder(folder).progress()
        if isinstance(got.get("step"), int) and isinstance(got.get("time"), (int, float)):
            samples.setdefault(folder.name, {})[got["step"]] = float(got["time"])


def run_batch(commands: list, at_once: int, env: dict, log: Path, runs_dir: Path, samples: dict,
              on_finish=None) -> float:
    """Run every command, at most `at_once` at a time, sampling the runs' progress meanwhile; wall seconds of
    the whole batch. `on_finish(i)` is called as the i-th command exits successfully."""
    pending, running = list(enumerate(commands)), []
    start = time.perf_counter()
    with open(log, "a") as out:
        try:
            while pending or running:
                while pending and len(running) < at_once:
                    i, command = pending.pop(0)
                    running.append((i, subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=out)))
                time.sleep(0.05)
                poll_progress(runs_dir, samples)
                for i, p in [(i, p) for i, p in running if p.poll() is not None]:
                    running.remove((i, p))
                    if p.returncode != 0:
                        raise RuntimeError(f"a benchmark run failed (exit {p.returncode}); see {log}")
                    poll_progress(runs_dir, samples)
                    if on_finish is not None:
                        on_finish(i)
        finally:
            for _, p in running:  # only on failure: the batch's other runs are no longer worth waiting for
                p.kill()
                p.wait()
    return time.perf_counter() - start


def steps_at(points: list, t: float) -> float:
    """Optimizer steps done at clock t, linear between a run's (clock, step) samples (sorted by clock)."""
    for (t0, s0), (t1, s1) in zip(points, points[1:]):
        if t0 <= t <= t1:
            return s0 + (s1 - s0) * (t - t0) / max(t1 - t0, 1e-12)
    return float(points[0][1] if t < points[0][0] else points[-1][1])


def steady_rates(samples: dict, warm_steps: int, tokens_per_step: int, together: bool) -> dict:
    """Steady tokens/s per run from its (step -> clock) samples, over its steps after `warm_steps`.

    together=False: each run over its own steady steps (runs trained one at a time). together=True: every run
    over the one window in which all were past warm-up and none had finished, so a packed run is measured
    only while it shares the GPU with all the others. {"runs": {name: tokens/s}, "window": (t0, t1) or None,
    "note": why a figure is missing}; a run with under two samples after warm-up has no figure."""
    points = {name: sorted((t, step) for step, t in by_step.items()) for name, by_step in samples.items()}
    steady = {name: [(t, st) for t, st in pts if st >= warm_steps] for name, pts in points.items()}
    short = sorted(name for name, pts in steady.items() if len(pts) < 2)
    if short:
        return {"runs": {}, "window": None,
                "note": f"{len(short)} run(s) logged under two steps after the {warm_steps} warm-up steps: "
                        f"train more tokens per run"}
    if not together:
        return {"runs": {name: (pts[-1][1] - pts[0][1]) * tokens_per_step / max(pts[-1][0] - pts[0][0], 1e-9)
                         for name, pts in steady.items()}, "window": None, "note": ""}
    t0 = max(pts[0][0] for pts in steady.values())
    t1 = min(pts[-1][0] for pts in steady.values())
    if t1 <= t0:
        return {"runs": {}, "window": None,
                "note": "no moment with every run past warm-up and none finished: train more tokens per run"}
    return {"runs": {name: (steps_at(points[name], t1) - steps_at(points[name], t0)) * tokens_per_step / (t1 - t0)
                     for name in points}, "window": (t0, t1), "note": ""}


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


def sweep_warm_steps(s: Setup) -> int:
    """Steps of each sweep run left out of its steady speed: compilation, CUDA-graph capture and start-up, with
    a margin (two log intervals: the runs log every s.warmup_steps steps)."""
    return 2 * s.warmup_steps


def bench_sweep(s: Setup, tmp: Path, cache: Path, n_runs: int, n_tokens: int) -> dict:
    """The same n_runs runs all at once on this device, then one at a time; each batch's lines printed as it
    finishes (a time limit that cuts the second keeps the first)."""
    from sweep.run.cores import usable_cores

    size = s.sizes[0]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    warm = sweep_warm_steps(s)
    out = {"size": size, "runs": n_runs, "n_tokens": n_tokens, "runs_per_gpu": n_runs, "warm_steps": warm,
           "steps": n_tokens // s.tokens_per_step}
    for mode, at_once in (("packed", n_runs), ("sequential", 1)):
        # host cores shared out as the parallel launcher does (the CPU smoke keeps its 1 thread per run)
        extra = [] if s.device == "cpu" else [f"train.threads={max(1, usable_cores() // at_once)}"]
        commands = [[sys.executable, "-m", "sweep", "train",
                     *run_overrides(size, s, n_tokens, tmp / "results", cache, f"sweep-{mode}"),
                     f"train.seed={i}", *extra] for i in range(n_runs)]
        runs_dir = tmp / "results" / f"sweep-{mode}" / "runs"
        samples, reported = {}, set()

        def finished(i, mode=mode, samples=samples, runs_dir=runs_dir, reported=reported):
            """A run one at a time prints its own figure as it ends, before the next one starts."""
            if mode != "sequential":
                return
            ended = {n: v for n, v in samples.items() if n not in reported and (runs_dir / n / "result.json").exists()}
            reported.update(ended)
            for tps in steady_rates(ended, warm, s.tokens_per_step, together=False)["runs"].values():
                print(f"  one at a time, run {i + 1}/{n_runs}: {tps:,.0f} steady tokens/s", flush=True)

        wall = run_batch(commands, at_once, env, tmp / f"sweep-{mode}.log", runs_dir, samples, finished)
        done, flops, mean_tps = batch_flops(tmp / "results", f"sweep-{mode}")
        if done != n_runs:
            raise RuntimeError(f"{mode}: {done} of {n_runs} runs finished; see {tmp / f'sweep-{mode}.log'}")
        rates = steady_rates(samples, warm, s.tokens_per_step, together=mode == "packed")
        per_run = list(rates["runs"].values())
        out[mode] = {"wall": wall, "flops": flops, "flops_per_second": flops / wall, "run_tokens_per_second": mean_tps,
                     "steady_run_tokens_per_second": sum(per_run) / len(per_run) if per_run else None,
                     "steady_window": (rates["window"][1] - rates["window"][0]) if rates["window"] else None,
                     "steady_note": rates["note"]}
        print(batch_line(mode, out[mode], n_runs, warm), flush=True)
    out["speedup"] = out["packed"]["flops_per_second"] / out["sequential"]["flops_per_second"]
    seq, packed = out["sequential"]["steady_run_tokens_per_second"], out["packed"]["steady_run_tokens_per_second"]
    out["steady_speedup"] = n_runs * packed / seq if seq and packed else None
    return out


def batch_line(mode: str, b: dict, n_runs: int, warm: int) -> str:
    label = "one at a time" if mode == "sequential" else f"{n_runs} per GPU"
    if b["steady_run_tokens_per_second"] is None:
        steady = f"no steady figure ({b['steady_note']})"
    elif mode == "sequential":
        steady = f"{b['steady_run_tokens_per_second']:,.0f} steady tokens/s per run"
    else:
        steady = (f"{b['steady_run_tokens_per_second']:,.0f} steady tokens/s per run, "
                  f"{n_runs * b['steady_run_tokens_per_second']:,.0f} together, over the "
                  f"{b['steady_window']:.1f}s all {n_runs} trained at once past step {warm}")
    return f"  {label:<14}: {steady}; whole wall {b['wall']:.1f}s"


def sweep_lines(r: dict, peak: float | None, mps_line: str) -> str:
    from sweep.store.results import human

    def pct(x):
        return f" ({100 * x / peak:.1f}% of peak)" if peak else ""

    seq, packed = r["sequential"], r["packed"]
    steady = (f"{r['steady_speedup']:.2f}x" if r["steady_speedup"] is not None
              else "not measured (" + (seq["steady_note"] or packed["steady_note"]) + ")")
    return "\n".join([
        f"tiny-model sweep: {r['runs']} runs of size {r['size']}, {human(r['n_tokens'])} tokens ({r['steps']} steps) "
        f"each, {seq['flops'] / r['runs']:.3g} exact training FLOPs per run",
        f"  steady state (each run's steps after step {r['warm_steps']}; packed: while all {r['runs']} train at once):",
        batch_line("sequential", seq, r["runs"], r["warm_steps"]),
        batch_line("packed", packed, r["runs"], r["warm_steps"]),
        f"  packed / one at a time, steady tokens/s of the GPU: {steady}",
        f"  whole wall, start-up and compilation included: one at a time {seq['wall']:.1f}s "
        f"({seq['flops_per_second']:.3g} useful FLOP/s{pct(seq['flops_per_second'])}), {r['runs']} at once "
        f"{packed['wall']:.1f}s ({packed['flops_per_second']:.3g}{pct(packed['flops_per_second'])}): "
        f"{r['speedup']:.2f}x; {mps_line}",
    ])


# ----------------------------------------------------------------------------- main


def sweep_size(args, s: Setup, tiny) -> tuple:
    """(runs, note): the sweep section's run count, trained all at once and then one at a time. Never more than
    packing puts on this GPU, so the packed figure is k runs sharing it, not waves."""
    pack = args.pack
    if pack is None and s.device == "cuda":
        pack = runs_per_gpu_now(tiny)
    pack = pack or 2  # CPU: no GPU to fill; two processes at once exercise the same path
    runs = args.sweep_runs or pack
    if runs > pack:
        return pack, f"{runs} runs asked, {pack} fit on this GPU (packing.py, or --pack): the sweep trains {pack}"
    return runs, ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on CPU, under a minute (for tests)")
    parser.add_argument("--sections", default="sizes,sweep", help="comma-separated: prepare, sizes, sweep")
    parser.add_argument("--sizes", type=lambda t: t.split(","), help="non-embedding sizes, e.g. 1M,5M,20M")
    parser.add_argument("--steps", type=int, help="optimizer steps per size (default 20; 8 on CPU)")
    parser.add_argument("--batch-size", type=int, help="sequences per micro-batch (default 32; 8 on CPU)")
    parser.add_argument("--sweep-runs", type=int,
                        help="runs in the sweep section, trained all at once and then one at a time (default and "
                             "most: as many as fit on the GPU, --pack)")
    parser.add_argument("--sweep-tokens", type=parse_count, help="tokens per sweep run (default 20M; 16k on CPU)")
    parser.add_argument("--pack", type=int, help="runs that fit on the GPU (default: sweep/launch/packing.py's choice)")
    parser.add_argument("--mps", action="store_true", help="run the sweep section under a private CUDA MPS daemon")
    parser.add_argument("--compile-mode", help="train.compile_mode, e.g. reduce-overhead (CUDA graphs) for tiny sizes")
    parser.add_argument("--cache-dir", default=None, help="data cache (default results/cache; a temp one on CPU)")
    args = parser.parse_args(argv)

    import torch

    from sweep.run import runtime
    from sweep.cli import load_run_config
    from sweep.launch.mps import mps_status, private_mps
    from sweep.run.data import prepare_data

    if not args.cpu_smoke and not torch.cuda.is_available():
        print("no CUDA device: run on a GPU box, or pass --cpu-smoke", file=sys.stderr)
        return 2
    # a time limit's SIGTERM unwinds (temp folder removed, sweep runs killed) instead of dying where it stands
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    s = cpu_setup(args) if args.cpu_smoke else gpu_setup(args)
    if args.compile_mode:
        s.train.append(f"train.compile_mode={args.compile_mode}")
    sections = set(args.sections.split(","))
    unknown = sections - {"prepare", "sizes", "sweep"}
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}: prepare, sizes, sweep")
    failed = []
    with tempfile.TemporaryDirectory(prefix="bench_gpu-") as tmp_name:
        tmp = Path(tmp_name)
        default_cache = tmp / "cache" if args.cpu_smoke else ROOT / "results" / "cache"
        cache = Path(args.cache_dir) if args.cache_dir else default_cache
        label = runtime.device_name(torch.device(s.device))
        peak = runtime.peak_flops(label)
        print(f"device {label} (dense bf16 peak {f'{peak / 1e12:.0f} TFLOP/s' if peak else 'unknown'}), "
              f"torch {torch.__version__}, train overrides: {' '.join(s.train)}", flush=True)
        mps = mps_status()
        if s.device == "cuda":
            print(mps.describe(), flush=True)
        n_tokens = args.sweep_tokens or (16 * s.tokens_per_step if args.cpu_smoke else 20_000_000)
        # whole steps, and never fewer tokens than asked (20M must not become 19.9M)
        n_tokens = max(s.tokens_per_step, -(-n_tokens // s.tokens_per_step) * s.tokens_per_step)
        tiny = None  # the sweep's run, whose data and tokenizer every section shares
        if sections & {"prepare", "sweep"}:
            tiny = load_run_config(run_overrides(s.sizes[0], s, n_tokens, tmp / "results", cache, "x"))

        if "prepare" in sections:
            t0 = time.perf_counter()
            prepare_data(tiny.data, tiny.tokenizer, progress=False)
            print(f"corpus and tokenizer ready in {cache} in {time.perf_counter() - t0:.1f}s", flush=True)

        rows = []
        if "sizes" in sections:
            rows, failed = bench_sizes(s, tmp, cache)

        sweep = None
        if "sweep" in sections:
            n_runs, note = sweep_size(args, s, tiny)
            if note:
                print(note, flush=True)
            if s.device == "cuda" and n_tokens < 20_000_000:
                print(f"{n_tokens:,} tokens per run: under 20M the steady window after compilation is short",
                      flush=True)
            prepare_data(tiny.data, tiny.tokenizer, progress=False)  # once, before either batch is timed
            with private_mps() if args.mps else contextlib.nullcontext():
                mps = mps_status()
                sweep = bench_sweep(s, tmp, cache, n_runs, n_tokens)
            print(sweep_lines(sweep, peak, mps.describe() if s.device == "cuda" else "CPU: no MPS"), flush=True)

    for r in rows:
        mfu = f"{r['mfu']:.4f}" if r["mfu"] is not None else "nan"
        mfu_exact = f"{r['mfu_chinchilla_flops']:.4f}" if r["mfu_chinchilla_flops"] is not None else "nan"
        print(f"size={r['size']} n_layer={r['n_layer']} d_model={r['d_model']} mfu_chinchilla_flops={mfu_exact} "
              f"n_params_non_embedding={r['n_params_non_embedding']} n_params={r['n_params']} "
              f"tokens_per_second={r['tokens_per_second']:.1f} mfu={mfu} step_ms={r['step_ms']:.2f} "
              f"peak_memory_gib={r['peak_memory'] / GiB:.3f} estimated_memory_gib={r['estimated_memory'] / GiB:.3f}")
    if sweep:
        def num(x, fmt):
            return format(x, fmt) if x is not None else "nan"

        print(f"sweep_runs={sweep['runs']} sweep_size={sweep['size']} runs_per_gpu={sweep['runs_per_gpu']} "
              f"sweep_tokens={sweep['n_tokens']} warm_steps={sweep['warm_steps']} "
              f"sequential_run_tokens_per_second={num(sweep['sequential']['steady_run_tokens_per_second'], '.1f')} "
              f"packed_run_tokens_per_second={num(sweep['packed']['steady_run_tokens_per_second'], '.1f')} "
              f"steady_speedup={num(sweep['steady_speedup'], '.3f')} "
              f"packed_window_s={num(sweep['packed']['steady_window'], '.2f')} "
              f"sequential_flops_per_second={sweep['sequential']['flops_per_second']:.4g} "
              f"packed_flops_per_second={sweep['packed']['flops_per_second']:.4g} speedup={sweep['speedup']:.3f} "
              f"sequential_wall_s={sweep['sequential']['wall']:.2f} packed_wall_s={sweep['packed']['wall']:.2f} "
              f"mps={int(mps.running)}")
    if failed:
        print(f"failed sizes: {','.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
