"""A small sweep through hydra/launcher=slurm against a real one-node SLURM cluster.

Start the cluster first (as root, Debian/Ubuntu; ~15 s including the apt install):
    scripts/slurm_cluster.sh start
The test runs when `sinfo` answers, or when SWEEP_TEST_SLURM=1 (then it starts the cluster itself).
"""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest


pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def slurm_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    proc = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30)
    return proc.returncode == 0 and any(s.strip() in ("idle", "mix", "alloc") for s in proc.stdout.split())


@pytest.fixture(scope="module")
def cluster():
    if not slurm_up():
        if os.environ.get("SWEEP_TEST_SLURM") != "1":
            pytest.skip("no SLURM cluster (start one with scripts/slurm_cluster.sh start, or set SWEEP_TEST_SLURM=1)")
        subprocess.run([str(Path(__file__).resolve().parents[1] / "scripts" / "slurm_cluster.sh"), "start"], check=True, timeout=600)
    assert slurm_up()


def test_sweep_through_slurm(cluster, tmp_path, results, run_sweep):
    slurm = ("hydra/launcher=slurm", "hydra.launcher.partition=debug", "hydra.launcher.timeout_min=10",
             "hydra.launcher.cpus_per_task=1")
    proc = run_sweep(tmp_path, "run", *slurm, timeout=600)
    done = results(tmp_path)
    assert len(done) == 2 and {r["status"] for r in done.values()} == {"done"}, proc.stdout[-3000:]
    # each run was a SLURM job: submitit keeps one folder per job id with its logs
    logs = list((tmp_path / "results" / "t" / "multirun" / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 2

    again = run_sweep(tmp_path, "run", *slurm, timeout=600)
    assert "2 of 2 runs are finished" in again.stdout


# --- preemption and time limits on the real cluster -----------------------------------------------------------
# One run of ~150 s of training on a 2-core machine (a 17k-parameter model, 30k steps on 15M tokens, the 400 kB
# corpus repeated) with a checkpoint every 200 steps, fp32 and one thread so that the SLURM job and the reference
# run compute alike. It must outlast the first warning signal (below) on any machine.
LONG_RUN = ("experiment.flops_budgets=[2.3e12]", "experiment.target_params_non_embedding=[12000]",
            "data.allow_repeat=true", "train.dtype=fp32", "train.checkpoint_interval=200")
SLURM = ("hydra/launcher=slurm", "hydra.launcher.partition=debug", "hydra.launcher.cpus_per_task=1")


def job_logs(folder: Path) -> str:
    return "".join(p.read_text() for p in sorted((folder / "results" / "t" / "multirun" / ".submitit").glob("*/*_log.*")))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, sweep_args, results):
    """The same run, uninterrupted, launched locally: the loss a preempted or timed-out run must end with. It
    trains on the second core while the first SLURM test runs; `reference()` waits for it."""
    folder = tmp_path_factory.mktemp("reference")
    proc = subprocess.Popen(sweep_args(folder, "run", *LONG_RUN), cwd=folder, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)

    done: dict = {}

    def wait() -> dict:
        if not done:
            out, _ = proc.communicate(timeout=900)
            assert proc.returncode == 0, out[-3000:]
            (done["result"],) = results(folder).values()
        return done["result"]

    yield wait
    proc.kill()


def test_a_job_that_hits_its_time_limit_is_requeued_and_ends_with_the_uninterrupted_loss(
        cluster, tmp_path, run_sweep, results, reference):
    # A 2-minute limit with SIGUSR2 45 s before it. slurmctld checks limits every 30 s and sends the warning at the
    # first check less than 30 s before it is due, so it comes 45-75 s into each attempt: the run checkpoints at a
    # step boundary and submitit requeues. Here the run needs about 3 attempts; up to 12 leave room for a slower
    # machine, and the run outlasts the first warning on one twice as fast.
    limits = ("hydra.launcher.timeout_min=2", "hydra.launcher.signal_delay_s=45", "hydra.launcher.max_num_timeout=12")
    run_sweep(tmp_path, "run", *LONG_RUN, *SLURM, *limits, timeout=1200)
    (result,) = results(tmp_path).values()
    logs = job_logs(tmp_path)
    assert "this job is timed-out" in logs and "Requeued job" in logs and "resuming" in logs, logs[-3000:]
    assert result["status"] == "done"
    expected = reference()
    assert result["final_val_loss"] == expected["final_val_loss"]  # bit-exact: the requeues lost no step
    assert result["final_train_loss"] == expected["final_train_loss"]


def test_a_job_sent_usr2_checkpoints_is_requeued_and_ends_with_the_uninterrupted_loss(
        cluster, tmp_path, sweep_args, results, reference):
    # `scancel --signal=USR2` as a preemption would: within submitit's guaranteed time, so not counted as a timeout
    proc = subprocess.Popen(sweep_args(tmp_path, "run", *LONG_RUN, *SLURM, "hydra.launcher.timeout_min=30"),
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        progress = tmp_path / "results" / "t" / "runs"
        deadline = time.time() + 300
        while time.time() < deadline:
            steps = [json.loads(p.read_text()).get("step", 0) for p in progress.glob("*/progress.json")]
            if steps and steps[0] >= 1000:
                break
            time.sleep(1)
        jobs = subprocess.run(["squeue", "-h", "-o", "%A"], capture_output=True, text=True, check=True).stdout.split()
        assert len(jobs) == 1, jobs
        subprocess.run(["scancel", "--signal=USR2", jobs[0]], check=True)
        out, _ = proc.communicate(timeout=900)
    finally:
        proc.kill()
    (result,) = results(tmp_path).values()
    logs = job_logs(tmp_path)
    assert "this job is preempted" in logs and "Requeued job" in logs and "resuming" in logs, logs[-3000:]
    assert result["status"] == "done", out[-3000:]
    expected = reference()
    assert result["final_val_loss"] == expected["final_val_loss"]
    assert result["final_train_loss"] == expected["final_train_loss"]


def test_a_gpu_sized_run_in_a_slurm_job_without_a_gpu_is_refused(cluster, tmp_path, run_sweep):
    """train.device=cuda submitted to this CPU-only cluster with the CPU launcher: each job refuses before its run
    folder exists, says why and how to get a GPU, and spends no training time."""
    proc = run_sweep(tmp_path, "run", *SLURM, "hydra.launcher.timeout_min=10", "train.device=cuda", check=False,
                     timeout=600)
    assert proc.returncode != 0
    # the job's error comes back to `sweep run` through submitit
    err = proc.stderr
    assert "ConfigError" in err and "was given no GPU" in err, err[-3000:]
    assert "hydra/launcher=slurm_gpu" in err and "train.device=cpu" in err
    runs = tmp_path / "results" / "t" / "runs"
    assert not runs.exists() or not any(runs.iterdir())
