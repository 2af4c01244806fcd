"""Chaos benchmark: SIGKILL a sweep's worker at random moments, relaunch it, and check nothing was lost.

    python scripts/chaos.py                  # 20 kills of a 4-run CPU sweep on tinyshakespeare
    python scripts/chaos.py --kills 3 --runs 3 --seed 1

A worker process trains the sweep's runs one after another (`train()` on each; a done run is
skipped, an interrupted one resumes from its checkpoint). The script first trains the same runs
once without faults, then launches the worker, kills it with SIGKILL at a random moment of its
training (uniform in [0, --max-delay] s after it has read its data), relaunches it, K times, and
lets the last launch finish. It then checks that every run is done exactly once (one index row,
one result, no stray run folder, no step logged twice), that every final loss equals the clean
sweep's bit for bit, and that every file in the results folder is readable.

The worker is this script's own loop over `train()` (`--runner train`): the same call the sweep
runner's jobs make, without Hydra's multirun in between.

Ends with one machine-readable line: faults=<k> runs=<n> runs_lost=<m> mismatches=<j>
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAKESPEARE = ROOT / "sweep" / "corpora" / "tinyshakespeare.txt"  # shipped in the package (data=tinyshakespeare)


def run_args(results: Path, cache: Path, n_tokens: int) -> list[str]:
    """One run of the chaos sweep: a ~100k-parameter byte model, checkpoints every 4 steps."""
    return [f"results_dir={results}", f"data.cache_dir={cache}", "sweep_name=chaos", "data.source=files",
            f"data.path={SHAKESPEARE}", "data.max_bytes=300000", "data.val_tokens=8192", "tokenizer=byte",
            "model.n_layer=2", "model.d_model=64", "model.n_head=4", "model.seq_len=64", "train.batch_size=16",
            "train.tokens_per_step=1024", "train.threads=1", "train.checkpoint_interval=4", "train.log_interval=5",
            f"budget.n_tokens={n_tokens}", "logger.mode=disabled"]


def budgets(n_runs: int) -> list[int]:
    return [1024 * (24 + 8 * i) for i in range(n_runs)]  # 24, 32, 40, ... steps


def worker(results: Path, cache: Path, n_runs: int) -> int:
    """Train every run of the sweep in order; prints 'ready' once its data is read."""
    from sweep.cli import load_run_config
    from sweep.run.data import prepare_data
    from sweep.run.train import train

    configs = [load_run_config(run_args(results, cache, n)) for n in budgets(n_runs)]
    prepare_data(configs[0].data, configs[0].tokenizer, progress=False)
    print("ready", flush=True)
    for cfg in configs:
        train(cfg, progress=False)
    return 0


def _launch(results: Path, cache: Path, n_runs: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--worker", str(results), str(cache), str(n_runs)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)


def _readable(path: Path) -> bool:
    try:
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".jsonl":
            for line in path.read_text().splitlines():
                json.loads(line)
        elif path.suffix == ".pt":
            import torch

            torch.load(path, map_location="cpu", weights_only=True)
        else:
            path.read_bytes()
    except Exception:
        return False
    return True


def check(results: Path, clean: dict[str, float], n_runs: int) -> dict:
    """runs_lost (missing, not done, duplicated or unreadable) and mismatches against the clean losses."""
    from sweep.store.results import load_result, read_index

    sweep = results / "chaos"
    rows = read_index(sweep)
    ids = [r["run_id"] for r in rows]
    lost, mismatches, problems = 0, 0, []
    for rid, loss in clean.items():
        try:
            res = load_result(sweep / "runs" / rid, expect_run_id=rid)
        except ValueError as exc:
            res, _ = None, problems.append(str(exc))
        steps = [json.loads(line)["step"] for line in (sweep / "runs" / rid / "metrics.jsonl").read_text().splitlines()
                 if "train_loss" in line] if (sweep / "runs" / rid / "metrics.jsonl").exists() else []
        if res is None or res["status"] != "done" or ids.count(rid) != 1 or steps != sorted(set(steps)):
            lost += 1
            problems.append(f"run {rid}: result {res and res['status']}, {ids.count(rid)} index rows, "
                            f"steps unique={steps == sorted(set(steps))}")
            continue
        if res["final_val_loss"] != loss:
            mismatches += 1
            problems.append(f"run {rid}: final_val_loss {res['final_val_loss']!r} != clean {loss!r}")
    stray = set(p.name for p in (sweep / "runs").iterdir()) - set(clean) if (sweep / "runs").is_dir() else set()
    lost += len(stray)
    problems += [f"stray run folder {s}" for s in stray]
    unreadable = [p for p in results.rglob("*") if p.is_file() and not _readable(p)]
    problems += [f"unreadable {p}" for p in unreadable]
    leftovers = [p for p in results.rglob("*") if p.name.endswith(".tmp") or p.name == "checkpoint.pt"]
    problems += [f"left behind {p}" for p in leftovers]
    return {"runs": n_runs, "runs_lost": lost + len(unreadable), "mismatches": mismatches, "problems": problems,
            "index_rows": len(rows)}


def chaos(kills: int, n_runs: int, seed: int, workdir: Path, max_delay: float = 3.0, log=print) -> dict:
    """Clean sweep, then the killed-and-relaunched one; the figures of `check` plus faults and time."""
    from sweep.cli import load_run_config
    from sweep.store.results import run_dir
    from sweep.run.train import train

    rng = random.Random(seed)
    cache = workdir / "cache"
    clean = {}
    for n in budgets(n_runs):
        cfg = load_run_config(run_args(workdir / "clean", cache, n))
        res = train(cfg, progress=False)
        clean[res["run_id"]] = res["final_val_loss"]
        assert run_dir(cfg, n).name == res["run_id"]
    results = workdir / "chaos"
    start, faults, launches = time.perf_counter(), 0, 0
    while True:
        proc = _launch(results, cache, n_runs)
        launches += 1
        if faults >= kills:
            rc = proc.wait()
            if rc != 0:
                raise RuntimeError(f"the final, unkilled worker exited with {rc}")
            break
        ready = proc.stdout.readline().strip() == "ready"
        delay = rng.uniform(0.0, max_delay)
        try:
            proc.wait(timeout=delay)
            finished = True  # the whole sweep ended before the kill: the next launch finds it done
        except subprocess.TimeoutExpired:
            finished = False
        if not finished:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            faults += 1
            log(f"kill {faults}/{kills} after {delay:.2f} s (ready={ready})")
        else:
            faults += 1  # counted: the relaunch of a finished sweep must also change nothing
            log(f"fault {faults}/{kills}: worker finished before its kill at {delay:.2f} s; relaunching")
    out = check(results, clean, n_runs)
    out.update(faults=faults, launches=launches, seconds=time.perf_counter() - start)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        return worker(Path(argv[1]), Path(argv[2]), int(argv[3]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs to send (default 20)")
    parser.add_argument("--runs", type=int, default=4, help="runs in the sweep (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--max-delay", type=float, default=3.0, help="latest kill, seconds after the worker is ready")
    parser.add_argument("--runner", choices=["train"], default="train",
                        help="worker: a loop over train() (the sweep runner's per-run call)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep files here (default: a temporary folder)")
    args = parser.parse_args(argv)
    if not SHAKESPEARE.exists():
        print(f"needs {SHAKESPEARE}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="sweep-chaos-") as tmp:
        workdir = args.workdir or Path(tmp)
        out = chaos(args.kills, args.runs, args.seed, workdir, args.max_delay)
    for p in out["problems"]:
        print("problem:", p)
    print(f"launches={out['launches']} seconds={out['seconds']:.0f} index_rows={out['index_rows']}")
    print(f"faults={out['faults']} runs={out['runs']} runs_lost={out['runs_lost']} mismatches={out['mismatches']} "
          f"problems={len(out['problems'])}")
    return 0 if not out["problems"] else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
