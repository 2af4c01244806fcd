"""Real SIGKILLs: a killed `sweep train` resumes bit-exactly; a small chaos sweep loses nothing."""

import importlib.util
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sweep.cli import load_run_config
from sweep.store.results import load_result, read_index, read_jsonl, run_dir
from sweep.run.shape import run_shape
from sweep.run.train import train

ROOT = Path(__file__).resolve().parents[1]


def test_sigkill_after_the_first_checkpoint_then_relaunch_is_bit_exact(tmp_path, tiny):
    args = ["budget.n_tokens=61440", "train.checkpoint_interval=5"]
    clean = train(load_run_config(tiny(tmp_path / "clean", *args)), progress=False)

    killed = tiny(tmp_path / "killed", *args)
    cfg = load_run_config(killed)
    rdir = run_dir(cfg, run_shape(cfg).n_tokens)
    cmd = [sys.executable, "-m", "sweep", "train", *killed]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (rdir / "checkpoint.pt").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (rdir / "result.json").exists()  # killed mid-run: no result, a checkpoint to resume from
    assert (rdir / "checkpoint.pt").exists()

    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resuming" in done.stderr
    resumed = load_result(rdir, expect_run_id=rdir.name)
    assert resumed["status"] == "done"
    assert resumed["final_val_loss"] == clean["final_val_loss"]  # bit-exact across a real SIGKILL
    assert resumed["final_train_loss"] == clean["final_train_loss"]
    steps = [r["step"] for r in read_jsonl(rdir / "metrics.jsonl") if "train_loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == 60
    assert not (rdir / "checkpoint.pt").exists()
    assert [r["run_id"] for r in read_index(rdir.parent.parent)] == [rdir.name]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGUSR2], ids=["SIGTERM", "SIGINT", "SIGUSR2"])
def test_sigterm_checkpoints_at_the_step_and_exits_so_nothing_is_retrained(tmp_path, sig, tiny):
    # No periodic checkpoints: only the signal's own checkpoint can make the relaunch resume.
    args = ["budget.n_tokens=122880", "train.checkpoint_interval=0", "train.log_interval=1"]
    clean = train(load_run_config(tiny(tmp_path / "clean", *args)), progress=False)

    stopped = tiny(tmp_path / "stopped", *args)
    cfg = load_run_config(stopped)
    rdir = run_dir(cfg, run_shape(cfg).n_tokens)
    cmd = [sys.executable, "-m", "sweep", "train", *stopped]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while _progress_step(rdir) < 10:
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before step 10"
        time.sleep(0.01)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err[-2000:]  # the shell's convention for death by a signal
    step = _progress_step(rdir)
    assert 10 <= step < 120 and f"stopped by {sig.name} at step {step}/120" in err
    assert not (rdir / "result.json").exists()  # not a failure: nothing for a retry policy to skip
    assert torch.load(rdir / "checkpoint.pt", weights_only=True)["step"] == step

    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming {rdir.name} at step {step}/120" in done.stderr
    resumed = load_result(rdir, expect_run_id=rdir.name)
    assert resumed["final_val_loss"] == clean["final_val_loss"]  # bit-exact: the stop lost no step
    steps = [r["step"] for r in read_jsonl(rdir / "metrics.jsonl") if "train_loss" in r]
    assert steps == list(range(1, 121))


REQUEUER = """
import signal, sys
from pathlib import Path
from sweep.cli import main

def requeue(signum, frame):  # what submitit's handler does: requeue the job, then leave
    Path(sys.argv[1]).write_text(f"requeued on {signal.Signals(signum).name}")
    sys.exit(0)

signal.signal(signal.SIGUSR2, requeue)
sys.exit(main(["train", *sys.argv[2:]]))
"""


def test_sigusr2_under_a_requeueing_handler_checkpoints_first_then_hands_over(tmp_path, tiny):
    """submitit installs its SIGUSR2 handler before the job starts; the run takes the signal, writes its
    checkpoint at the step boundary, then calls that handler (which requeues); the requeued job resumes."""
    args = ["budget.n_tokens=122880", "train.checkpoint_interval=0", "train.log_interval=1"]
    clean = train(load_run_config(tiny(tmp_path / "clean", *args)), progress=False)
    stopped = tiny(tmp_path / "stopped", *args)
    cfg = load_run_config(stopped)
    rdir = run_dir(cfg, run_shape(cfg).n_tokens)
    marker = tmp_path / "requeued"
    proc = subprocess.Popen([sys.executable, "-c", REQUEUER, str(marker), *stopped], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while _progress_step(rdir) < 10:
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before step 10"
        time.sleep(0.01)
    proc.send_signal(signal.SIGUSR2)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and marker.read_text() == "requeued on SIGUSR2", err[-2000:]
    step = torch.load(rdir / "checkpoint.pt", weights_only=True)["step"]
    assert 10 <= step < 120 and _progress_step(rdir) == step and not (rdir / "result.json").exists()
    done = subprocess.run([sys.executable, "-m", "sweep", "train", *stopped], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and f"resuming {rdir.name} at step {step}/120" in done.stderr
    assert load_result(rdir, expect_run_id=rdir.name)["final_val_loss"] == clean["final_val_loss"]


def _progress_step(rdir: Path) -> int:
    try:
        return json.loads((rdir / "progress.json").read_text())["step"]
    except (OSError, ValueError, KeyError):
        return -1


def test_a_diverged_run_is_not_retried_unless_asked(tmp_path, capsys, tiny):
    cfg = load_run_config(tiny(tmp_path, "train.lr=1e6", "train.grad_clip=0", "budget.n_tokens=20480"))
    first = train(cfg, progress=False)
    assert first["status"] == "diverged" and first["diverged_step"] >= 1
    rdir = run_dir(cfg, run_shape(cfg).n_tokens)
    mtime = (rdir / "result.json").stat().st_mtime_ns
    capsys.readouterr()
    again = train(cfg, progress=False)
    err = capsys.readouterr().err
    assert "diverged at step" in err and "not retried" in err and "retry_diverged=True" in err
    assert again["status"] == "diverged" and (rdir / "result.json").stat().st_mtime_ns == mtime
    assert read_index(rdir.parent.parent)[0]["status"] == "diverged"
    retried = train(cfg, progress=False, retry_diverged=True)
    assert retried["status"] == "diverged"
    assert (rdir / "result.json").stat().st_mtime_ns != mtime  # it really ran again


def _load_chaos():
    spec = importlib.util.spec_from_file_location("chaos", ROOT / "scripts" / "chaos.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_chaos_three_kills_lose_nothing(tmp_path):
    chaos = _load_chaos()
    out = chaos.chaos(kills=3, n_runs=3, seed=1, workdir=tmp_path, log=lambda *a: None)
    assert out["problems"] == []
    assert out["faults"] == 3 and out["runs"] == 3 and out["index_rows"] == 3
    assert out["runs_lost"] == 0 and out["mismatches"] == 0
