"""Launching: per-run locks, skipping finished runs, Hydra multiruns as subprocesses, status, SIGKILL resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sweep.config import ConfigError, ModelConfig, RunConfig, TrainConfig
from sweep.ladder.status import run_state, status_table
from sweep.store.locks import LOCK_FILE as LOCK_NAME, lock_holder, release, try_lock

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- locks


def test_lock_is_exclusive_and_names_its_holder(tmp_path):
    path = tmp_path / "run" / LOCK_NAME
    lock = try_lock(path)
    assert lock is not None
    assert try_lock(path, attempts=1) is None
    holder = lock_holder(path)
    assert holder["pid"] == os.getpid()
    release(lock)
    assert lock_holder(path) is None
    again = try_lock(path, attempts=1)
    assert again is not None
    release(again)


def test_a_killed_holder_does_not_hold_the_lock(tmp_path):
    path = tmp_path / LOCK_NAME
    code = ("import sys, time; from sweep.store.locks import try_lock; "
            f"l = try_lock({str(path)!r}); print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        assert lock_holder(path)["pid"] == proc.pid
        assert try_lock(path, attempts=1) is None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert lock_holder(path) is None
    finally:
        proc.kill()


# ----------------------------------------------------------------------------- skipping


def tiny_run(tmp_path) -> RunConfig:
    return RunConfig(model=ModelConfig(n_layer=1, d_model=16, n_head=1, seq_len=32),
                     train=TrainConfig(batch_size=4, tokens_per_step=128), results_dir=str(tmp_path / "results"),
                     sweep_name="s")


def write_result(tmp_path, cfg, status, **extra):
    from sweep.store.results import run_dir, write_json_atomic

    rdir = run_dir(cfg, 1280)
    write_json_atomic(rdir / "result.json", {"run_id": rdir.name, "run_name": "x", "status": status, **extra})
    return rdir


@pytest.fixture
def fake_train(monkeypatch):
    calls = []

    def train(cfg, progress=True):
        calls.append(cfg)
        return {"status": "done", "final_val_loss": 1.0}

    monkeypatch.setattr("sweep.run.train.train", train)
    return calls


@pytest.mark.parametrize("status, retry, trains", [
    ("done", False, False), ("done", True, False), ("diverged", True, False),
    ("failed", False, False), ("failed", True, True)])
def test_finished_runs_are_skipped(tmp_path, fake_train, status, retry, trains):
    from sweep.launch.job import train_once

    cfg = tiny_run(tmp_path)
    write_result(tmp_path, cfg, status)
    out = train_once(cfg, 1280, retry_failed=retry, progress=False)
    assert bool(fake_train) == trains
    assert out["status"] == ("done" if trains else status)


def test_a_run_held_by_another_process_is_skipped(tmp_path, fake_train):
    from sweep.launch.job import train_once
    from sweep.store.results import run_dir

    cfg = tiny_run(tmp_path)
    code = ("import sys, time; from sweep.store.locks import run_lock\n"
            "with run_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(run_dir(cfg, 1280))], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert train_once(cfg, 1280, progress=False)["status"] == "running"
        assert not fake_train
    finally:
        holder.kill()
        holder.wait()
    assert train_once(cfg, 1280, progress=False)["status"] == "done" and len(fake_train) == 1


def test_a_failing_run_does_not_stop_the_sweep(tmp_path, monkeypatch):
    from sweep.launch.job import train_once

    def boom(cfg, progress=True):
        raise RuntimeError("out of cheese")

    monkeypatch.setattr("sweep.run.train.train", boom)
    out = train_once(tiny_run(tmp_path), 1280, progress=False)
    assert out["status"] == "failed" and "out of cheese" in out["error"]


def test_packed_jobs_in_a_slurm_allocation_share_its_cpus(monkeypatch):
    """A SLURM job given 16 CPUs (SLURM_CPUS_PER_TASK) on a 64-core node (pretended) that packs 4 runs on its
    GPU: each run takes 16/4 threads per slot it holds, not all 16 (before, every packed run took all 16); a run
    alone takes the allocation's 16; an affinity mask narrower than the allocation is kept to."""
    import dataclasses

    from sweep.ladder.sweep_config import LaunchConfig
    from sweep.launch import placement

    cores = {"n": 64}
    monkeypatch.setattr(placement, "usable_cores", lambda: cores["n"])
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "16")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # placed() pins the job's GPU in the environment
    packed = LaunchConfig(gpus=1, runs_per_gpu=4, gpu_memory=80 * 2**30)
    assert placement.placed(RunConfig(), packed, slot=0, units=1).train.threads == 4
    assert placement.placed(RunConfig(), packed, slot=0, units=2).train.threads == 8
    assert placement.placed(RunConfig(), packed, slot=None).train.threads == 16  # a run alone in its allocation
    cpu_slots = LaunchConfig(gpus=0, slots=8)
    assert placement.placed(RunConfig(), cpu_slots, slot=0).train.threads == 2
    asked = RunConfig(train=dataclasses.replace(RunConfig().train, threads=3))
    assert placement.placed(asked, packed, slot=0).train.threads == 3  # train.threads as set
    cores["n"] = 8  # the job's affinity mask holds fewer cores than SLURM_CPUS_PER_TASK says
    assert placement.placed(RunConfig(), packed, slot=0).train.threads == 2
    assert placement.placed(RunConfig(), packed, slot=None).train.threads == 8
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")
    assert placement.placed(RunConfig(), packed, slot=None).train.threads is None  # chosen by the run itself


def test_a_job_reads_its_run_from_the_written_plan_and_refuses_one_not_in_it(tmp_path):
    from sweep.launch.job import read_job_plan, run_job, write_job_plan
    from sweep.ladder.sweep_config import expand_sweep, load_sweep

    sc = load_sweep(["experiment=kaplan_data_size", "launch.corpus_tokens=100000000", f"results_dir={tmp_path}"])
    runs = expand_sweep(sc, 100_000_000).runs
    plan = tmp_path / "wave-0.json"
    write_job_plan(plan, runs[2:4], sc.launch)
    cfg, n_tokens, units, launch = read_job_plan(str(plan), 3)
    assert (cfg, n_tokens, units) == (runs[3].cfg, runs[3].n_tokens, 1) and launch == sc.launch
    job = load_sweep(["experiment=kaplan_data_size", "run_index=5", f"launch.plan={plan}"])
    with pytest.raises(ConfigError, match=r"run_index=5: not in this wave's plan .* \(runs \[2, 3\]\)"):
        run_job(job)
    with pytest.raises(ConfigError, match=r"a job needs the plan `sweep run` writes"):
        run_job(load_sweep(["experiment=kaplan_data_size", "run_index=2"]))


# ----------------------------------------------------------------------------- status


def test_status_shows_each_state(tmp_path):
    cfg = tiny_run(tmp_path)
    from sweep.store.results import write_json_atomic

    done = write_result(tmp_path, cfg, "done", final_val_loss=2.5, steps=10, wall_seconds=3.0)
    failed = tmp_path / "failed"
    write_json_atomic(failed / "result.json", {"run_id": "f", "status": "failed",
                                                "error": "Traceback\n  line\nValueError: bad thing\n"})
    running = tmp_path / "running"
    write_json_atomic(running / "progress.json", {"step": 5, "steps": 20})
    lock = try_lock(running / LOCK_NAME)
    interrupted = tmp_path / "interrupted"
    write_json_atomic(interrupted / "progress.json", {"step": 7, "steps": 20})
    try:
        states = {name: run_state(path) for name, path in [("done", done), ("failed", failed), ("running", running),
                                                           ("interrupted", interrupted),
                                                           ("pending", tmp_path / "nothing")]}
        rows = [{"index": i, "run_name": name, "run_id": name[:12], "n_params": 1000, "n_tokens": 20_000,
                 "flops": 1e9, "state": s} for i, (name, s) in enumerate(states.items())]
        text = status_table(rows)
    finally:
        release(lock)
    assert states["done"].status == "done" and states["done"].final_val_loss == 2.5
    assert states["failed"].status == "failed" and states["failed"].error.endswith("ValueError: bad thing")
    assert states["running"].status == "running" and states["running"].step == 5
    assert states["interrupted"].status == "pending" and states["interrupted"].step == 7
    assert states["pending"].status == "pending" and states["pending"].step is None
    assert "val_loss=2.5000" in text and "step 5/20 (25%)" in text and "| ValueError: bad thing" in text
    # FLOPs done: the done run + 5/20 of the running one + 7/20 of the interrupted one (a failed run's don't count)
    assert "total: 5 runs (1 done, 1 running, 2 pending, 1 failed); FLOPs 1.6e+09 / 5e+09 (32%)" in text


# ----------------------------------------------------------------------------- multiruns


def test_multirun_trains_every_run_then_skips_them(tmp_path, results, run_sweep):
    first = run_sweep(tmp_path, "run")
    done = results(tmp_path)
    assert len(done) == 2 and {r["status"] for r in done.values()} == {"done"}
    for r in done.values():
        assert r["meta"]["experiment"] == "default" and r["meta"]["budget_flops"] == 3e9
        assert abs(r["flops"] - 3e9) <= 0.5 * r["flops_per_token"] * 512
    assert "Launching 2 jobs" in first.stdout + first.stderr
    assert (tmp_path / "results" / "t" / "plan.json").exists()
    assert (tmp_path / "results" / "t" / "multirun").is_dir() and not (tmp_path / "outputs").exists()
    stamps = {f: f.stat().st_mtime_ns for f in (tmp_path / "results" / "t" / "runs").glob("*/result.json")}
    # what a kill between writing result.json and deleting the checkpoint leaves behind
    leftover = next(iter(stamps)).with_name("checkpoint.pt")
    leftover.write_bytes(b"stale")

    second = run_sweep(tmp_path, "run")
    assert "2 of 2 runs are finished" in second.stdout
    assert "Launching" not in second.stdout + second.stderr
    assert stamps == {f: f.stat().st_mtime_ns for f in stamps}
    assert not leftover.exists()

    status = run_sweep(tmp_path, "status")
    assert status.stdout.count(" done ") == 2 and "total: 2 runs (2 done)" in status.stdout


def test_status_before_any_run_lists_pending_runs(tmp_path, run_sweep):
    out = run_sweep(tmp_path, "status").stdout
    assert "total: 2 runs (2 pending)" in out


@pytest.mark.slow
def test_parallel_launcher_runs_each_run_in_its_own_process(tmp_path, results, run_sweep):
    run_sweep(tmp_path, "run", "hydra/launcher=parallel", "launch.slots=2")
    done = results(tmp_path)
    assert len(done) == 2 and {r["status"] for r in done.values()} == {"done"}
    slots = sorted(p.name for p in (tmp_path / "results" / "t" / "multirun" / "slots").glob("*.lock"))
    assert slots and set(slots) <= {"slot-0.lock", "slot-1.lock"}


@pytest.mark.slow
def test_sigkill_mid_sweep_then_relaunch_gives_the_same_losses(tmp_path, results, run_sweep, sweep_args):
    ref_dir, kill_dir = tmp_path / "ref", tmp_path / "kill"
    ref_dir.mkdir()
    kill_dir.mkdir()
    extra = ("train.checkpoint_interval=5", "experiment.flops_budgets=[6e9]")
    run_sweep(ref_dir, "run", *extra)
    # run ids differ between the two folders (the corpus path is part of them): compare by name
    reference = {r["run_name"]: r["final_val_loss"] for r in results(ref_dir).values()}
    assert len(reference) == 2

    proc = subprocess.Popen(sweep_args(kill_dir, "run", *extra), cwd=kill_dir, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # kill once the first run has checkpointed and gone further, before the sweep ends
        deadline = time.time() + 240
        killed_at = None
        while time.time() < deadline and proc.poll() is None:
            for p in (kill_dir / "results" / "t" / "runs").glob("*/progress.json"):
                try:
                    step = json.loads(p.read_text())["step"]
                except (OSError, ValueError, KeyError):
                    continue
                if step >= 7 and not (p.parent / "result.json").exists():
                    killed_at = step
            if killed_at is not None:
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert killed_at is not None, "the sweep finished before it could be killed"
    assert len(results(kill_dir)) < 2

    run_sweep(kill_dir, "run", *extra)
    resumed = results(kill_dir)
    assert {r["status"] for r in resumed.values()} == {"done"}
    assert {r["run_name"]: r["final_val_loss"] for r in resumed.values()} == reference
    # every step logged exactly once, with the same numbers as the uninterrupted sweep
    def curves(folder):
        out = {}
        for rid, r in results(folder).items():
            lines = (folder / "results" / "t" / "runs" / rid / "metrics.jsonl").read_text().splitlines()
            out[r["run_name"]] = [(m["step"], m.get("train_loss"), m.get("val_loss")) for m in map(json.loads, lines)]
        return out

    assert curves(kill_dir) == curves(ref_dir)


def test_run_index_runs_part_of_the_grid(tmp_path, results, run_sweep):
    out = run_sweep(tmp_path, "run", "run_index=1", check=False)
    done = results(tmp_path)
    assert len(done) == 1
    assert "Launching 1 jobs" in out.stdout + out.stderr
    status = run_sweep(tmp_path, "status").stdout
    assert "1 done, 1 pending" in status
    # exit status 1: the sweep as a whole is not finished yet
    assert out.returncode == 1
    # several indices at once, as the README says
    both = run_sweep(tmp_path, "run", "run_index=0,1")
    assert "1 of 2 runs are finished or running elsewhere; launching the other 1" in both.stdout
    assert len(results(tmp_path)) == 2


@pytest.mark.slow
def test_parallel_launcher_never_runs_more_than_its_slots_and_starts_the_biggest_first(tmp_path, run_sweep):
    # all four jobs start at once and wait for the one slot: they take it in the queue's order
    run_sweep(tmp_path, "run", "hydra/launcher=parallel", "launch.slots=1", "experiment.flops_budgets=[3e9,9e9]")
    spans = []
    for f in (tmp_path / "results" / "t" / "runs").glob("*/result.json"):
        r = json.loads(f.read_text())
        end = f.stat().st_mtime
        spans.append((end - r["wall_seconds"], end, r["flops"]))
    assert len(spans) == 4
    spans.sort()
    assert all(e0 <= s1 + 0.5 for (_, e0, _), (s1, _, _) in zip(spans, spans[1:]))  # one after another
    assert [f for *_, f in spans] == sorted((f for *_, f in spans), reverse=True)
    assert not list((tmp_path / "results" / "t" / "multirun" / "slots").glob("queue-*"))  # removed after


def test_a_cuda_sweep_plans_on_a_machine_without_cuda_and_runs_only_through_slurm(tmp_path, run_sweep, monkeypatch):
    """A SLURM login node has no GPU: `sweep plan train.device=cuda` resolves nothing here (no CUDA call, no memory
    or speed measured on the login node's CPU), and a launcher that would train here is refused before any
    compute, with nothing written to the results store. (This machine has no CUDA; where it does, the test
    pretends it has none.)"""
    import torch

    if torch.cuda.is_available():
        pytest.skip("the subprocesses would see this machine's CUDA")
    plan = run_sweep(tmp_path, "plan", "train.device=cuda", "launch.probe=true")
    assert "device cuda (no CUDA on this machine: resolved where each job runs" in plan.stdout
    assert "each job takes one GPU there" in plan.stdout and "no GPU for these runs" not in plan.stdout
    refused = run_sweep(tmp_path, "run", "train.device=cuda", check=False)
    assert refused.returncode == 2 and "hydra/launcher=slurm" in refused.stderr and "no CUDA" in refused.stderr
    assert not (tmp_path / "results" / "t" / "runs").exists()
