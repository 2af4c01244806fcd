"""A small sweep through hydra/launcher=slurm against a real one-node SLURM cluster.

Start the cluster first (as root, Debian/Ubuntu; ~15 s including the apt install):
    scripts/slurm_cluster.sh start
The test runs when `sinfo` answers, or when SWEEP_TEST_SLURM=1 (then it starts the cluster itself).
"""

import contextlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from sweep.run.preempt import REQUEUE_ENV, requeue_slurm_job



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


@pytest.mark.slurm
@pytest.mark.slow
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


@pytest.mark.slurm
@pytest.mark.slow
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


@pytest.mark.slurm
@pytest.mark.slow
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
        (job,) = sweep_jobs(tmp_path)
        subprocess.run(["scancel", "--signal=USR2", job], check=True)
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


@pytest.mark.slurm
@pytest.mark.slow
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


# --- SIGTERM: the job requeues itself ---------------------------------------------------------------------------
# A run of a few thousand steps (~20-30 s on one core) with a checkpoint every 100 steps: long enough to be
# signalled mid-training after a checkpoint, short enough for CI.
SHORT_RUN = ("experiment.flops_budgets=[1.5e11]", "experiment.target_params_non_embedding=[12000]",
             "data.allow_repeat=true", "train.dtype=fp32", "train.checkpoint_interval=100")


@pytest.fixture(scope="module")
def short_reference(tmp_path_factory, sweep_args, results):
    """SHORT_RUN uninterrupted and launched locally, on the second core while the SLURM job trains."""
    folder = tmp_path_factory.mktemp("short_reference")
    proc = subprocess.Popen(sweep_args(folder, "run", *SHORT_RUN), cwd=folder, stdout=subprocess.PIPE,
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


def signal_once_checkpointed(folder: Path, proc: subprocess.Popen, *scancel: str, min_step: int = 300) -> str:
    """Wait until the only run of the sweep in `folder` has a checkpoint and is at `min_step` or later, then
    `scancel *scancel JOB` its SLURM job; the job id."""
    run = folder / "results" / "t" / "runs"
    deadline = time.time() + 300
    while time.time() < deadline:
        assert proc.poll() is None, "the sweep ended before its job was signalled"
        progress = [p for p in run.glob("*/progress.json") if (p.parent / "checkpoint.pt").exists()]
        try:
            if progress and json.loads(progress[0].read_text()).get("step", 0) >= min_step:
                break
        except ValueError:  # read while being replaced
            pass
        time.sleep(0.5)
    else:
        raise AssertionError("the run never reached a checkpoint")
    (job,) = sweep_jobs(folder)
    subprocess.run(["scancel", *scancel, job], check=True)
    return job


def sweep_jobs(folder: Path) -> list:
    """The SLURM job ids of the sweep in `folder` (submitit keeps a folder per job), not other users' jobs."""
    return sorted(p.name for p in (folder / "results" / "t" / "multirun" / ".submitit").iterdir()
                  if p.is_dir() and p.name.isdigit())


@pytest.mark.slurm
@pytest.mark.slow
def test_a_job_sent_sigterm_checkpoints_requeues_itself_and_ends_with_the_uninterrupted_loss(
        cluster, tmp_path, sweep_args, results, short_reference):
    # `scancel --signal=TERM`, as a preemption with a grace time signals a job: submitit's own SIGTERM handler
    # only logs, so without the job's own requeue it would end here, its run stopped half-way.
    proc = subprocess.Popen(sweep_args(tmp_path, "run", *SHORT_RUN, *SLURM, "hydra.launcher.timeout_min=30"),
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        job = signal_once_checkpointed(tmp_path, proc, "--signal=TERM")
        out, _ = proc.communicate(timeout=400)
    finally:
        proc.kill()
    logs = job_logs(tmp_path)
    assert f"requeued SLURM job {job} after SIGTERM" in logs, logs[-3000:]
    resumed = [line for line in logs.splitlines() if "resuming" in line]
    assert len(resumed) == 1 and int(resumed[0].split(" at step ")[1].split("/")[0]) >= 300, logs[-3000:]
    (result,) = results(tmp_path).values()
    assert proc.returncode == 0 and result["status"] == "done", out[-3000:]
    expected = short_reference()
    assert result["final_val_loss"] == expected["final_val_loss"]  # bit-exact: the requeue lost no step
    assert result["final_train_loss"] == expected["final_train_loss"]


@pytest.mark.slurm
@pytest.mark.slow
def test_a_cancelled_job_is_not_requeued(cluster, tmp_path, sweep_args, results):
    # A plain `scancel` also sends SIGTERM, but SLURM has marked the job cancelled by then: it must stay
    # cancelled (`scontrol requeue` would bring it back), its run stopped at a checkpoint. Without accounting
    # (this cluster) submitit cannot tell that the job ended, so the driver is not waited for.
    proc = subprocess.Popen(sweep_args(tmp_path, "run", *SHORT_RUN, *SLURM, "hydra.launcher.timeout_min=30"),
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        job = signal_once_checkpointed(tmp_path, proc, min_step=100)
        deadline = time.time() + 120
        while "not requeued" not in job_logs(tmp_path) and time.time() < deadline:
            time.sleep(1)
        # a requeued job is listed again at once, pending; wait past the cluster's credential expiry and a
        # scheduling pass (cred_expire=10, bf_interval=5) in case it is not
        time.sleep(20)
        queued = subprocess.run(["squeue", "-h", "-o", "%A"], capture_output=True, text=True, check=True).stdout.split()
    finally:
        proc.kill()
    logs = job_logs(tmp_path)
    assert f"SLURM job {job} is COMPLETING: not requeued" in logs, logs[-3000:]
    assert job not in queued
    assert not results(tmp_path)  # no result: the run stopped and was not recorded as failed
    assert (next((tmp_path / "results" / "t" / "runs").iterdir()) / "checkpoint.pt").exists()


# --- when a job requeues itself: squeue and scontrol stand in here for a cluster (the cluster tests above use
# the real ones) ------------------------------------------------------------------------------------------------
JOB = {"SLURM_JOB_ID": "42", "SUBMITIT_EXECUTOR": "slurm"}


def requeue_calls(environ: dict, state: str | None, returncode: int = 0) -> tuple:
    asked, ran = [], []

    def state_of(job):
        asked.append(job)
        return state

    def run(cmd, **kwargs):
        ran.append(cmd)
        return subprocess.CompletedProcess(cmd, returncode, "", "" if returncode == 0 else "Invalid job id")

    said = requeue_slurm_job(environ, state_of, run)
    return said, asked, ran


def test_a_running_job_of_the_slurm_launcher_is_requeued():
    said, asked, ran = requeue_calls(JOB, "RUNNING")
    assert asked == ["42"] and ran == [["scontrol", "requeue", "42"]]
    assert said == "requeued SLURM job 42 after SIGTERM; it resumes from its checkpoint"


@pytest.mark.parametrize("environ", [{}, {"SLURM_JOB_ID": "42"}, {**JOB, "SUBMITIT_EXECUTOR": "local"},
                                     {**JOB, REQUEUE_ENV: "0"}])
def test_outside_a_slurm_launcher_job_nothing_is_requeued(environ):
    # by hand in some other job, under the local executor, or a run whose parent requeues for it
    assert requeue_calls(environ, "RUNNING") == (None, [], [])


@pytest.mark.parametrize("state", ["COMPLETING", "PENDING", None])
def test_a_job_slurm_is_already_ending_is_not_requeued(state):
    said, asked, ran = requeue_calls(JOB, state)
    assert asked == ["42"] and ran == [] and "not requeued" in said


def test_a_failed_requeue_is_reported_not_raised():
    said, _, ran = requeue_calls(JOB, "RUNNING", returncode=1)
    assert ran and said == "could not requeue SLURM job 42 after SIGTERM: Invalid job id"


# --- tiny runs sharing one SLURM job ----------------------------------------------------------------------------


def h100_runs(*targets: float) -> list:
    """Planned CUDA runs shaped as the *_h100 experiments shape them, one per target size, 100 steps each."""
    from sweep.config import ModelConfig, RunConfig, TokenizerConfig, TrainConfig
    from sweep.ladder.grid import planned_run, shape_for_params

    base = RunConfig(tokenizer=TokenizerConfig(vocab_size=16384),
                     train=TrainConfig(batch_size=32, tokens_per_step=262144, device="cuda"))
    return [planned_run(i, base, shape_for_params(t, 64, 64, ModelConfig(seq_len=1024), 16384), 100, 16384, {})
            for i, t in enumerate(targets)]


def test_runs_are_grouped_most_flops_first_up_to_one_gpus_shares():
    from types import SimpleNamespace

    from sweep.launch.slurm_pack import pack_groups

    runs = [SimpleNamespace(index=i, flops=f) for i, f in enumerate([5.0, 1.0, 4.0, 2.0, 3.0])]
    assert pack_groups(runs, 4, {0: 2, 1: 1, 2: 2, 3: 1, 4: 1}) == [[0, 2], [4, 3, 1]]
    assert pack_groups(runs, 4, {0: 4, 1: 1, 2: 3, 3: 1, 4: 1}) == [[0], [2, 4], [3, 1]]
    assert pack_groups(runs, 1, {}) == [[0], [2], [4], [3], [1]]


def test_tiny_cuda_runs_share_a_slurm_job_where_the_rule_packs_them():
    from sweep.ladder.sweep_config import LaunchConfig
    from sweep.launch.packing import GiB, decide_packing
    from sweep.launch.slurm_pack import job_groups

    runs = h100_runs(1e6, 1e6, 2e6, 2e6, 1e6)
    k = decide_packing([r.cfg for r in runs], 80 * GiB).capacity
    assert k > 1
    stated = LaunchConfig(gpu_memory=80 * GiB)
    grouping = job_groups(["hydra/launcher=slurm_gpu"], stated, runs)
    assert grouping["capacity"] == k
    assert sorted(i for g in grouping["groups"] for i in g) == [0, 1, 2, 3, 4]
    assert all(sum(grouping["units"][str(i)] for i in g) <= k for g in grouping["groups"])
    assert len(grouping["groups"]) < len(runs)
    # one run per job: no GPU memory stated on the login node, another launcher, or runs that fill a GPU
    assert job_groups(["hydra/launcher=slurm_gpu"], LaunchConfig(), runs) is None
    assert job_groups(["hydra/launcher=parallel"], stated, runs) is None
    assert job_groups(["hydra/launcher=slurm_gpu"], stated, h100_runs(300e6, 300e6)) is None
    # a count given outright
    given = job_groups(["hydra/launcher=slurm"], LaunchConfig(runs_per_gpu=2), runs)
    assert [len(g) for g in given["groups"]] == [2, 2, 1] and given["capacity"] == 2


@pytest.mark.slurm
@pytest.mark.slow
def test_a_shared_job_sent_sigterm_requeues_once_and_both_runs_end_as_trained_apart(
        cluster, tmp_path, sweep_args, results):
    # two runs in one job (a CPU-only cluster: the "GPU" they share is the job's two cores), signalled once
    # both have checkpointed; the same two runs trained locally, one after the other, give the losses
    pair = (*SHORT_RUN, "experiment.flops_budgets=[1e11]", "experiment.target_params_non_embedding=[12000,6000]")
    for name in ("alone", "shared"):
        (tmp_path / name).mkdir()
    alone = subprocess.Popen(sweep_args(tmp_path / "alone", "run", *pair), cwd=tmp_path / "alone",
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    shared = subprocess.Popen(sweep_args(tmp_path / "shared", "run", *pair, *SLURM[:2], "hydra.launcher.cpus_per_task=2",
                                         "hydra.launcher.timeout_min=30", "launch.runs_per_gpu=2"),
                              cwd=tmp_path / "shared", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        runs = tmp_path / "shared" / "results" / "t" / "runs"
        deadline = time.time() + 300
        while time.time() < deadline:
            assert shared.poll() is None
            ready = [p for p in runs.glob("*/progress.json") if (p.parent / "checkpoint.pt").exists()]
            try:
                if len(ready) == 2 and all(json.loads(p.read_text()).get("step", 0) >= 300 for p in ready):
                    break
            except ValueError:
                pass
            time.sleep(0.5)
        (job,) = sweep_jobs(tmp_path / "shared")
        subprocess.run(["scancel", "--signal=TERM", job], check=True)
        out, _ = shared.communicate(timeout=400)
        ref, _ = alone.communicate(timeout=400)
    finally:
        shared.kill()
        alone.kill()
    assert "launch: 2 runs in 1 SLURM job," in out, out[-3000:]
    logs = job_logs(tmp_path / "shared")
    assert logs.count(f"requeued SLURM job {job}") == 1, logs[-3000:]  # by the job's process, after both stopped
    assert logs.count("resuming") == 2, logs[-3000:]
    got, expected = results(tmp_path / "shared"), results(tmp_path / "alone")
    assert shared.returncode == 0 and {r["status"] for r in got.values()} == {"done"}, out[-3000:]
    assert sorted((r["run_name"], r["final_val_loss"], r["final_train_loss"]) for r in got.values()) == \
        sorted((r["run_name"], r["final_val_loss"], r["final_train_loss"]) for r in expected.values()), ref[-2000:]


@pytest.mark.parametrize("stops", [True, False], ids=["stopped", "finished first"])
def test_the_previous_handler_gets_the_signal_only_when_the_run_stopped_for_it(stops):
    # submitit's SIGUSR2 handler requeues and exits: a run that finished its last step before leaving the
    # block has a result to write, not a checkpoint to resume from
    import signal as signals

    from sweep.run.preempt import Preempted, StopRequest

    calls = []
    before = signals.signal(signals.SIGUSR2, lambda signum, frame: calls.append(signum))
    try:
        with pytest.raises(Preempted) if stops else contextlib.nullcontext():
            with StopRequest() as stop:
                os.kill(os.getpid(), signals.SIGUSR2)
                assert stop.signum == signals.SIGUSR2 and calls == []
                if stops:
                    raise Preempted(stop.signum, 3, 10)
    finally:
        signals.signal(signals.SIGUSR2, before)
    assert calls == ([signals.SIGUSR2] if stops else [])
