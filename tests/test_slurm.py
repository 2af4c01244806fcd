"""A small sweep through hydra/launcher=slurm against a real one-node SLURM cluster.

Start the cluster first (as root, Debian/Ubuntu; ~15 s including the apt install):
    scripts/slurm_cluster.sh start
The test runs when `sinfo` answers, or when SWEEP_TEST_SLURM=1 (then it starts the cluster itself).
"""

import os
import shutil
import subprocess
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
