"""How long a packed sweep keeps its GPUs busy: the launch queue's order against first come, first served.

    python scripts/bench_slots.py                 # kaplan_model_size_h100 x 4 seeds on 1-8 H100s
    python scripts/bench_slots.py --experiment chinchilla_isoflop_h100 --seeds 1 --gpus 1,8

A simulation, not a GPU run: each run of the experiment's grid (its seeds as copies) takes the
slots of a GPU that sweep/launch/packing.py gives it on an 80 GiB H100, and trains for its exact training
FLOPs at a rate proportional to its share of the GPU (a run with u of a GPU's c slots gets u/c of
it). Jobs are placed by sweep/launch/slots.py's own pick_group: in the queue's order (most FLOPs first, a
waiting job owed its GPU), or, as before the queue, first come, first served (waiting jobs poll in
a random order and take any GPU their share fits; --trials random orders).

Prints, per GPU count, the makespan over the best possible one (the larger of the total GPU work
over the GPUs and the longest run) and the share of GPU time spent training until the last run ends.
Ends with `gpus=<n> queue=<x> first_come_mean=<y> first_come_worst=<z>` lines.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GiB = 2**30


def jobs_of(experiment: str, seeds: int, cpus_per_gpu: int) -> tuple:
    """(capacity, [(flops, units)]) of the experiment's runs on H100s with `cpus_per_gpu` host cores each."""
    from sweep.launch.placement import resolve_launch
    from sweep.ladder.sweep_config import expand_sweep, load_sweep
    from sweep.launch.packing import GpuInfo, gpu_units

    sc = load_sweep([f"experiment={experiment}", "launch.probe=false"])
    runs = expand_sweep(sc, n_train_tokens=10**12).runs
    launch, _ = resolve_launch(sc.launch, runs, GpuInfo(1, 80 * GiB, "NVIDIA H100 80GB HBM3"), cpu_cores=cpus_per_gpu)
    capacity = launch.runs_per_gpu
    return capacity, [(r.flops, gpu_units(r.cfg, capacity, 80 * GiB, cpus_per_gpu)) for r in runs for _ in range(seeds)]


def simulate(jobs: list, gpus: int, capacity: int, queue: bool, rng: random.Random) -> float:
    """Makespan, in units of one GPU's FLOPs."""
    from sweep.launch.slots import pick_group

    order = sorted(range(len(jobs)), key=lambda j: (-jobs[j][0], j))
    waiting = order if queue else list(range(len(jobs)))
    running, free, now = [], [capacity] * gpus, 0.0
    while waiting or running:
        if not queue:
            rng.shuffle(waiting)
        ahead, still = [], []
        for j in waiting:
            flops, units = jobs[j]
            g = pick_group(free, ahead if queue else [], units)
            if g is None:
                still.append(j)
                ahead.append(units)
                continue
            free[g] -= units
            running.append((now + flops * capacity / units, g, units))
        waiting = still
        end, g, units = min(running)
        running.remove((end, g, units))
        free[g] += units
        now = end
    return now


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="kaplan_model_size_h100")
    parser.add_argument("--seeds", type=int, default=4, help="copies of each grid run")
    parser.add_argument("--gpus", default="1,2,4,8", help="comma-separated GPU counts")
    parser.add_argument("--cpus-per-gpu", type=int, default=12, help="host cores per GPU (caps runs per GPU)")
    parser.add_argument("--trials", type=int, default=200, help="random orders for first come, first served")
    args = parser.parse_args(argv)

    capacity, jobs = jobs_of(args.experiment, args.seeds, args.cpus_per_gpu)
    units = sorted({u for _, u in jobs})
    print(f"{args.experiment}: {len(jobs)} runs, a GPU is {capacity} slots, runs take {units} of them")
    print(f"{'gpus':>4} {'best':>10} {'queue':>7} {'first-come mean':>16} {'worst':>7} {'busy queue':>11} "
          f"{'busy first-come':>16}")
    lines = []
    for gpus in map(int, args.gpus.split(",")):
        work = sum(f for f, _ in jobs)
        best = max(work / gpus, max(f * capacity / u for f, u in jobs))
        q = simulate(jobs, gpus, capacity, True, random.Random(0)) / best
        rng = random.Random(1)
        trials = [simulate(jobs, gpus, capacity, False, rng) / best for _ in range(args.trials)]
        mean, worst = sum(trials) / len(trials), max(trials)
        print(f"{gpus:>4} {best:>10.3g} {q:>7.3f} {mean:>16.3f} {worst:>7.3f} {work / (q * best * gpus):>11.1%} "
              f"{work / (mean * best * gpus):>16.1%}")
        lines.append(f"gpus={gpus} queue={q:.4f} first_come_mean={mean:.4f} first_come_worst={worst:.4f}")
    print("makespan over the best possible; busy: the share of GPU time spent training until the last run ends")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
