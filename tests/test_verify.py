"""`sweep verify` end to end on CPU: a tiny IsoFLOP sweep, its fit, then the run the fit predicts."""

import json
import shutil
import subprocess
import sys

import pytest


GRID = ("experiment.flops_budgets=[1e9,2e9,4e9]", "experiment.target_params_non_embedding=[2000,8000,32000]",
        "experiment.family=free")
KEYS = {"flops", "run_id", "n_params", "n_tokens", "measured_loss", "extrapolation", "methods"}


@pytest.fixture(scope="session")
def sweep(sweep_args):
    """sweep(folder, command, *overrides, check=True): the conftest's tiny sweep on a 3-budget IsoFLOP grid."""
    def run(tmp, *args, check=True):
        cmd = sweep_args(tmp, *args[:1], *GRID, *args[1:])
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=600)
        if check:
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc
    return run


def fit(tmp, *extra):
    cmd = [sys.executable, "-m", "sweep", "fit", f"input={tmp / 'results' / 't'}", "fit.n_bootstrap=40",
           "wandb.mode=offline", *extra]
    proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def verified(tmp_path_factory, sweep):
    tmp = tmp_path_factory.mktemp("verify")
    sweep(tmp, "run")
    fit(tmp)
    first = sweep(tmp, "verify", "flops=8e9", "train.threads=null")  # as a user's: the verification picks them
    again = sweep(tmp, "verify", "flops=8e9", "train.threads=null")
    return tmp, first, again


@pytest.mark.slow
def test_verify_trains_the_predicted_run_and_scores_every_method(verified, results):
    tmp, first, again = verified
    folder = tmp / "results" / "t"
    v = json.loads((folder / "fit" / "verification.json").read_text())
    assert KEYS <= set(v)
    assert v["extrapolation"] == pytest.approx(2.0, rel=0.05)  # 8e9 over the largest budget 4e9
    runs = results(tmp)
    role = {r["run_id"]: r.get("role") for r in runs.values()}
    assert role[v["run_id"]] == "verification" and list(role.values()).count("verification") == 1
    measured = runs[v["run_id"]]["final_val_loss"]
    assert v["measured_loss"] == measured
    a3 = v["methods"]["approach3"]
    assert a3["rel_error"] == pytest.approx(a3["predicted"] / measured - 1)
    assert a3["covered"] == (a3["interval"][0] <= measured <= a3["interval"][1])
    report = (folder / "fit" / "report.md").read_text()
    assert report.splitlines()[2] == "## Verification" and "x the largest fitted compute" in report
    fitted = json.loads((folder / "fit" / "fit.json").read_text())
    assert fitted["verification"]["run_id"] == v["run_id"]
    # the figures are drawn again with the verification run on them, and the report links them
    for png in ["scaling.png", "loss_vs_compute.png", "residuals.png", "optimal_allocation.png"]:
        assert (folder / "fit" / png).stat().st_mtime >= (folder / "fit" / "verification.json").stat().st_mtime - 1
        assert f"]({png})" in report
    assert "PI terms" in report
    # the run sits at the optimum of the method the leading prediction weighs most, and the report says which and why
    from sweep.fit.recommend import verification_method

    assert [v["method"], v["method_reason"]] == list(verification_method(fitted, 8e9))
    assert f"at {v['method']}'s compute-optimal N* and D* ({v['method_reason']})" in report
    # Like any run: launched again it is done, and nothing is retrained.
    assert f"run {v['run_id']}" in again.stderr and "is already done" in again.stderr
    assert len(results(tmp)) == len(runs)


def test_the_verification_run_says_when_a_busy_machine_gives_it_fewer_threads(tmp_path, monkeypatch, capsys):
    """On a CPU the thread count changes the rounding: the verification measures the idle cores once, trains on
    them, and says when they are fewer than the job's; a user's count and a checkpoint's stand."""
    import dataclasses

    from sweep.cli import load_run_config
    from sweep.jobs import verify
    from sweep.store.runs import RunFolder

    cfg = load_run_config([f"results_dir={tmp_path}", "train.threads=null"])
    assert cfg.train.threads is None
    monkeypatch.setattr(verify, "job_cores", lambda: 4)
    monkeypatch.setattr(verify, "free_cores", lambda *a, **k: 1)  # a busy machine: one core idle
    assert verify.idle_threads(cfg, "cpu", 10240).train.threads == 1
    assert "1 of 4 cores idle" in capsys.readouterr().out
    monkeypatch.setattr(verify, "free_cores", lambda *a, **k: 4)
    assert verify.idle_threads(cfg, "cpu", 10240).train.threads == 4 and capsys.readouterr().out == ""
    assert verify.idle_threads(cfg, "cuda:0", 10240).train.threads is None  # a GPU run's arithmetic is not on these
    three = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, threads=3))
    assert verify.idle_threads(three, "cpu", 10240).train.threads == 3  # the user's choice stands
    folder = RunFolder.of(cfg, 10240)
    folder.path.mkdir(parents=True)
    folder.checkpoint_path.write_bytes(b"")
    assert verify.idle_threads(cfg, "cpu", 10240).train.threads is None  # the loop then takes the checkpoint's
    folder.checkpoint_path.unlink()
    folder.result_path.write_text('{"status": "done"}')
    assert verify.idle_threads(cfg, "cpu", 10240).train.threads is None and capsys.readouterr().out == ""  # trained
    folder.result_path.write_text('{"status": "failed"}')  # before its first checkpoint: trained again from step 0
    assert verify.idle_threads(cfg, "cpu", 10240).train.threads == 4
    monkeypatch.setattr(verify, "free_cores", lambda *a, **k: 8)  # idle cores of the machine, beyond the job's
    folder.result_path.unlink()
    assert verify.idle_threads(cfg, "cpu", 10240).train.threads == 4
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "4")
    monkeypatch.setattr(verify, "free_cores", lambda *a, **k: 1)  # in an allocation its cores are the run's
    assert verify.idle_threads(cfg, "cpu", 10240).train.threads == 4 and capsys.readouterr().out == ""


@pytest.mark.slow
def test_verify_says_when_a_busy_machine_gives_its_run_fewer_threads(verified, sweep_args, monkeypatch, capsys):
    """`sweep verify` itself (not only idle_threads) trains on the count it measured, and says so."""
    from sweep.cli import main
    from sweep.jobs import verify

    tmp, _, _ = verified
    folder = tmp / "results" / "t"
    run_id = json.loads((folder / "fit" / "verification.json").read_text())["run_id"]
    done = json.loads((folder / "runs" / run_id / "result.json").read_text())
    shutil.rmtree(folder / "runs" / run_id)  # trained again below, on as many threads as before: the same run
    n = done["threads"]
    seen = []
    real = verify.train
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    monkeypatch.setattr(verify, "job_cores", lambda: n + 1)
    monkeypatch.setattr(verify, "free_cores", lambda *a, **k: n)  # one core busy
    monkeypatch.setattr(verify, "train", lambda cfg, **kw: seen.append(cfg.train.threads) or real(cfg, **kw))
    capsys.readouterr()
    assert main(sweep_args(tmp, "verify", *GRID, "flops=8e9", "train.threads=null")[3:]) == 0
    assert seen == [n] and f"{n} of {n + 1} cores idle" in capsys.readouterr().out
    again = json.loads((folder / "runs" / run_id / "result.json").read_text())
    assert again["threads"] == n and again["final_val_loss"] == done["final_val_loss"]  # bit-exact on that count


@pytest.mark.slow
def test_a_refit_leaves_the_verification_run_out(verified):
    tmp, _, _ = verified
    out = fit(tmp, f"output={tmp / 'refit'}")
    refit = json.loads((tmp / "refit" / "fit.json").read_text())
    assert refit["data"]["n_runs"] == 9
    assert any("verification run" in w for w in refit["warnings"]), out.stdout[-2000:]


def test_verify_without_a_fit_is_refused_before_any_compute(tmp_path, sweep):
    proc = sweep(tmp_path, "verify", check=False)
    assert proc.returncode == 2
    assert "no fit at" in proc.stderr and "sweep fit input=" in proc.stderr
    assert not (tmp_path / "results" / "t" / "runs").exists()


@pytest.mark.slow
def test_a_target_beyond_the_corpus_is_refused_before_any_compute(verified, results, sweep):
    tmp, _, _ = verified
    before = len(results(tmp))
    proc = sweep(tmp, "verify", "flops=1e15", check=False)
    assert proc.returncode == 2
    assert "cannot be trained here" in proc.stderr and "allow_repeat" in proc.stderr
    assert len(results(tmp)) == before


@pytest.mark.slow
def test_an_optimum_beyond_max_epochs_moves_up_the_family_and_says_so(verified, sweep_args, sweep):
    from sweep.ladder.sweep_config import corpus_tokens, load_sweep
    from sweep.jobs.verify import load_fit, verification_run

    tmp, _, _ = verified
    sc = load_sweep([*sweep_args(tmp, "verify", *GRID)[4:]])
    fit = load_fit(tmp / "results" / "t")
    n_train = corpus_tokens(sc)
    free = verification_run(sc, fit, "approach3", 8e10)
    assert not free.cfg.meta["corpus_limited"] and free.n_tokens > 0.5 * n_train
    capped = verification_run(sc, fit, "approach3", 8e10, max_tokens=0.5 * n_train)
    assert capped.cfg.meta["corpus_limited"] and capped.n_tokens <= 0.5 * n_train
    assert capped.n_params > free.n_params and capped.cfg.meta["target_params"] == free.cfg.meta["target_params"]
    # no shape of the family gets D under the cap: refused before any compute, naming the fix
    before = len(list((tmp / "results" / "t" / "runs").iterdir()))
    proc = sweep(tmp, "verify", "flops=8e10", "data.allow_repeat=true", "max_epochs=1e-6", check=False)
    assert proc.returncode == 2 and "max_epochs=1e-06" in proc.stderr and "smaller flops=" in proc.stderr
    assert len(list((tmp / "results" / "t" / "runs").iterdir())) == before


@pytest.mark.slow
def test_main_runs_the_ladder_fits_it_and_verifies_at_5x(tmp_path, sweep):
    proc = sweep(tmp_path, "main")
    v = json.loads((tmp_path / "results" / "t" / "fit" / "verification.json").read_text())
    assert v["extrapolation"] == pytest.approx(5.0, rel=0.05)
    assert "hydra/launcher=parallel runs 2 at a time" in proc.stdout or "runs 1 at a time" in proc.stdout
    # one switch for the whole job: logger=disabled reaches the fit too (it was offline whatever the runs were)
    fitted = json.loads((tmp_path / "results" / "t" / "fit" / "fit.json").read_text())
    assert fitted.get("wandb_run", {}).get("mode", "disabled") == "disabled"
    assert not (tmp_path / "results" / "t" / "fit" / "wandb").exists()
    assert (tmp_path / "results" / "t" / "fit" / "report.md").read_text().splitlines()[2] == "## Verification"
    assert "Verification at" in proc.stdout
