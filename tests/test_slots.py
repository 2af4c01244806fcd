"""Slots: jobs take shares of a GPU (or of the machine) in the launch's queue order; a job ahead
that fits nowhere yet holds nothing back.

Slots are fcntl (flock) locks, which conflict between open files even within one process, so
threads of this process stand for the parallel launcher's job processes here."""

import threading
import time
from types import SimpleNamespace

import pytest

from sweep.launch.slots import acquire_share, pick_group, queue_order, take_share, write_queue
from sweep.store.locks import release, try_lock


def test_queue_order_is_most_flops_first():
    runs = [SimpleNamespace(index=i, flops=f) for i, f in enumerate([1e9, 8e9, 2e9, 8e9])]
    assert queue_order(runs) == [1, 3, 2, 0]


@pytest.mark.parametrize("free, ahead, units, group", [
    ([4, 4], [], 3, 0),       # nobody ahead: the least busy GPU, the first of equals
    ([1, 3], [], 1, 1),       # least busy, not the first that fits
    ([3, 1], [], 2, 0),
    ([1, 1], [], 2, None),    # no GPU has two free slots
    ([4, 7], [7], 1, 0),      # the big run ahead fits GPU 1 and takes it; GPU 0 is free for this one
    ([4, 7], [7], 5, None),   # ... which leaves only the 4 slots of GPU 0 for this one
    ([4], [7], 1, 0),         # a big run ahead that fits nowhere yet holds no slot back from a small one
    ([7, 7], [7, 7], 1, None),
    ([2, 7], [1, 1, 1], 2, 1),  # the three small ones ahead go to the least busy GPU, one after another
    ([2, 3], [1, 1, 1], 2, None),
])
def test_pick_group(free, ahead, units, group):
    assert pick_group(free, ahead, units) == group


def test_a_job_takes_its_share_of_the_least_busy_gpu(tmp_path):
    """Slots are fcntl locks; flock conflicts between open files even within one process, so one
    process can stand for several jobs here."""
    from sweep.launch.slots import take_share
    from sweep.store.locks import release

    a = take_share(tmp_path, groups=2, capacity=4, units=3)
    assert a is not None and a[1] == 0 and len(a[0]) == 3
    b = take_share(tmp_path, groups=2, capacity=4, units=1)
    assert b[1] == 1  # the idle GPU, not the one with a single free slot
    c = take_share(tmp_path, groups=2, capacity=4, units=3)
    assert c[1] == 1 and len(c[0]) == 3
    assert take_share(tmp_path, groups=2, capacity=4, units=2) is None  # one slot free on each GPU
    d = take_share(tmp_path, groups=2, capacity=4, units=1)
    assert d is not None and len(d[0]) == 1
    for lock in a[0]:
        release(lock)  # a finished (or killed) run frees its slots
    e = take_share(tmp_path, groups=2, capacity=4, units=3)
    assert e is not None and e[1] == 0
    for lock in b[0] + c[0] + d[0] + e[0]:
        release(lock)


def _job(taken, slots, queue, index, units=1, hold_s=0.2, **kw):
    locks, group = acquire_share(slots, 1, 1, units, index, queue=queue, poll_s=0.02, **kw)
    taken.append((index, time.monotonic()))
    time.sleep(hold_s)
    for lock in locks:
        release(lock)


def test_jobs_take_the_slot_in_queue_order_whatever_order_they_start_in(tmp_path):
    slots = tmp_path / "slots"
    queue = slots / "queue-1"
    order = [4, 2, 0, 3, 1]  # a first-come order would be right by chance 1 time in 120
    write_queue(queue, order, {i: 1 for i in order})
    busy, _ = take_share(slots, 1, 1, 1)  # a run of another launch holds the only slot
    taken = []
    threads = [threading.Thread(target=_job, args=(taken, slots, queue, i), kwargs={"hold_s": 0.1})
               for i in (1, 3, 0, 2, 4)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    release(busy[0])
    for t in threads:
        t.join(10)
    assert [i for i, _ in taken] == order
    assert all(b - a >= 0.1 for (_, a), (_, b) in zip(taken, taken[1:]))  # one at a time


def test_a_waiting_job_ahead_is_served_first_and_one_that_never_starts_is_passed_over(tmp_path):
    slots = tmp_path / "slots"
    queue = slots / "queue-1"
    write_queue(queue, [7, 5, 0], {0: 1, 5: 1, 7: 1})  # run 7 never starts (it failed before waiting)
    waiting = try_lock(queue / "wait-5.lock")  # run 5 waits (not yet served)
    taken = []
    start = time.monotonic()
    job = threading.Thread(target=_job, args=(taken, slots, queue, 0), kwargs={"grace_s": 0.3})
    job.start()
    time.sleep(0.8)
    assert taken == []  # the slot is free, but owed to run 5, which waits ahead of run 0
    release(waiting)  # run 5 went away without taking its share (killed)
    job.join(10)
    assert [i for i, _ in taken] == [0]
    assert taken[0][1] - start >= 0.8


def test_bench_slots_queue_order_beats_first_come_on_the_kaplan_h100_sweep(capsys):
    """scripts/bench_slots.py simulates the shipped sweep with sweep/launch/slots.py's own pick_group."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    try:
        import bench_slots
    finally:
        sys.path.pop(0)
    assert bench_slots.main(["--gpus", "1,4,8", "--trials", "20"]) == 0
    rows = {}
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("gpus="):
            kv = dict(part.split("=") for part in line.split())
            rows[int(kv["gpus"])] = {k: float(v) for k, v in kv.items() if k != "gpus"}
    assert set(rows) == {1, 4, 8}
    for r in rows.values():
        assert 1.0 <= r["queue"] <= r["first_come_mean"] <= r["first_come_worst"]
    assert rows[8]["queue"] == pytest.approx(1.0) and rows[8]["first_come_mean"] > 1.2


@pytest.mark.slow
def test_packed_jobs_take_their_shares_of_a_stand_in_gpu(tmp_path, monkeypatch):
    """`sweep run hydra/launcher=parallel` on a stand-in GPU box (this process is told it has one
    GPU; there is none here): the jobs are real processes training on the CPU. With the GPU's memory
    set so two small runs fit but only one big one, a GPU is two slots, a big run takes both and a
    small one takes one; at no moment do the running jobs hold more than two, and the runs that compete
    for the whole GPU start in the queue's order, most FLOPs first."""
    import json

    import sweep.launch.launch as launch
    from sweep.ladder.sweep_config import corpus_tokens, expand_sweep, load_sweep
    from sweep.launch.mps import MpsStatus
    from sweep.launch.packing import MEMORY_SAFETY, GpuInfo, run_gpu_memory

    args = ["experiment=default", "sweep_name=t", f"results_dir={tmp_path / 'results'}", "data=stdlib",
            "data.max_bytes=600000", "data.split=tail", "data.val_tokens=4096", f"data.cache_dir={tmp_path / 'cache'}", "tokenizer=byte",
            "tokenizer.vocab_size=256", "model.seq_len=32", "train.batch_size=16", "train.tokens_per_step=512",
            "train.threads=1", "experiment.flops_budgets=[3e9,9e9]", "experiment.target_params_non_embedding=[3000,12000]", "experiment.family=free",
            "experiment.sizes_per_budget=0", "experiment.centre=tokens_per_param", "experiment.seeds=[]", "experiment.batch_exponent=0", "experiment.min_steps=5", "logger=disabled",
            "launch.progress=false"]
    sc = load_sweep(args)
    runs = expand_sweep(sc, corpus_tokens(sc)).runs
    memory = sorted({run_gpu_memory(r.cfg).total for r in runs})
    assert len(memory) == 2
    gpu_memory = int(sum(memory) / MEMORY_SAFETY)  # two small runs fit, one big one
    monkeypatch.setattr(launch, "_device_name", lambda sc: "cuda")
    monkeypatch.setattr(launch, "available_memory", lambda device: gpu_memory)
    monkeypatch.setattr(launch, "detect_gpus", lambda: GpuInfo(1, gpu_memory, "stand-in GPU"))
    monkeypatch.setattr(launch, "mps_status", lambda: MpsStatus(False, False, None))
    monkeypatch.setattr(launch.os, "cpu_count", lambda: 2)  # a host core per packed run, as on CI

    assert launch.run_command(args + ["hydra/launcher=parallel"]) == 0

    units = {r.run_id: 2 if run_gpu_memory(r.cfg).total == memory[1] else 1 for r in runs}
    spans = []
    for f in (tmp_path / "results" / "t" / "runs").glob("*/result.json"):
        r = json.loads(f.read_text())
        end = f.stat().st_mtime
        spans.append((end - r["wall_seconds"], end, r["flops"], units[r["run_id"]]))
    assert len(spans) == 4 and sorted(units.values()) == [1, 1, 2, 2]
    for start, *_ in spans:  # slots held by the runs training at each start (0.5 s for timing noise)
        held = sum(u for s, e, _, u in spans if s <= start + 0.5 and e > start + 0.5)
        assert held <= 2
    # queue order, most FLOPs first: of the two runs that need the whole GPU, the bigger one starts first.
    # (A one-slot run may start before a bigger one-slot run that has not reached the queue yet: it takes
    # the slot the queue leaves free, delaying nobody.)
    whole = sorted(s for s in spans if s[3] == 2)
    assert whole[0][2] > whole[1][2]
    assert not list((tmp_path / "results" / "t" / "multirun" / "slots").glob("queue-*"))
