"""The results store: strict reading, path safety, the per-run lock, the sweep index, no secrets on disk."""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sweep.store import results as store
from sweep.config import RunConfig
from sweep.store.locks import RunLocked, run_lock
from sweep.store.results import (ResultError, check_name, inside, load_result, read_index, rebuild_index, run_dir,
                                 sweep_dir, write_json_atomic)


def fake_result(run_id: str, status: str = "done", loss: float = 3.0, **extra) -> dict:
    return {"run_id": run_id, "run_name": f"run-{run_id}", "status": status, "final_val_loss": loss,
            "n_params": 1000, "n_tokens": 20000, "flops": 1.2e8, **extra}


def put(sweep: Path, result: dict) -> Path:
    path = sweep / "runs" / result["run_id"] / "result.json"
    write_json_atomic(path, result)
    return path


# ----------------------------------------------------------------------------- strict reading


def test_load_result_accepts_a_good_result_and_none_when_missing(tmp_path):
    assert load_result(tmp_path / "runs" / "abc") is None
    put(tmp_path, fake_result("abc"))
    assert load_result(tmp_path / "runs" / "abc", expect_run_id="abc")["final_val_loss"] == 3.0
    assert os.stat(tmp_path / "runs" / "abc" / "result.json").st_mode & 0o044  # readable by the team


@pytest.mark.parametrize("text, words", [
    ('{"run_id": "abc", "status": "do', "unreadable or truncated"),
    ('[1, 2]', "not a JSON object"),
    ('{"run_id": "abc", "status": "finished"}', "status='finished'"),
    ('{"run_id": "xyz", "status": "done", "final_val_loss": 3.0}', "run_id='xyz'"),
    ('{"run_id": "abc", "status": "done", "final_val_loss": "NaN"}', "final_val_loss='NaN'"),
])
def test_load_result_refuses_broken_or_foreign_results_naming_the_file_and_fix(tmp_path, text, words):
    path = tmp_path / "runs" / "abc" / "result.json"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(ResultError) as err:
        load_result(path.parent, expect_run_id="abc")
    assert words in str(err.value) and str(path) in str(err.value) and "delete" in str(err.value)


# ----------------------------------------------------------------------------- path safety


@pytest.mark.parametrize("name", ["../escape", "..", ".", "", "a/b", ".hidden", "a\0b", "x" * 201, "/abs"])
def test_unsafe_sweep_names_are_refused(tmp_path, name):
    with pytest.raises(ValueError, match="sweep_name"):
        sweep_dir(tmp_path, name)
    cfg = RunConfig(sweep_name=name, results_dir=str(tmp_path))  # even when validate() was bypassed
    with pytest.raises(ValueError):
        run_dir(cfg, 1000)


def test_a_symlink_leading_out_of_the_results_folder_is_refused(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "evil").symlink_to(outside)
    with pytest.raises(ValueError, match="outside the results folder"):
        sweep_dir(tmp_path / "results", "evil")
    assert sweep_dir(tmp_path / "results", "fine") == tmp_path / "results" / "fine"
    with pytest.raises(ValueError):
        inside(tmp_path / "results", "runs", "..", "..", "x")
    assert check_name("kaplan_model_size_h100", "sweep_name") == "kaplan_model_size_h100"


def test_run_dir_is_a_hex_hash_inside_the_results_folder(tmp_path):
    cfg = RunConfig(sweep_name="s", results_dir=str(tmp_path / "r"))
    path = run_dir(cfg, 4096)
    assert path.parent == tmp_path / "r" / "s" / "runs"
    assert len(path.name) == 12 and int(path.name, 16) >= 0


# ----------------------------------------------------------------------------- the per-run lock


HOLD = """
import sys, time
from sweep.store.locks import run_lock
with run_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def hold_lock_in_subprocess(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_run_lock_names_the_holder_and_dies_with_it(tmp_path):
    folder = tmp_path / "runs" / "abc"
    proc = hold_lock_in_subprocess(folder)
    try:
        with pytest.raises(RunLocked) as err:
            with run_lock(folder, attempts=2, wait=0.05):
                pass
        assert f"pid {proc.pid}" in str(err.value) and socket.gethostname() in str(err.value)
        assert err.value.holder["pid"] == proc.pid
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # A killed holder frees the lock at once: no stale lock to clean up.
    with run_lock(folder, attempts=1):
        holder = json.loads((folder / ".lock").read_text())
        assert holder["pid"] == os.getpid()
    assert (folder / ".lock").read_text() == ""  # released: the file names nobody


def test_a_done_runs_leftover_checkpoint_is_deleted_only_when_done_and_unheld(tmp_path):
    """A kill between writing result.json and deleting checkpoint.pt leaves the checkpoint behind;
    a relaunch deletes it, but never one of a run that is not done or that a live process holds."""
    from sweep.store.results import write_json_atomic
    from sweep.store.runs import clear_done_checkpoint

    folder = tmp_path / "runs" / "abc"
    folder.mkdir(parents=True)
    assert not clear_done_checkpoint(folder)  # nothing to delete
    (folder / "checkpoint.pt").write_bytes(b"x")
    write_json_atomic(folder / "result.json", {"run_id": "abc", "status": "failed"})
    assert not clear_done_checkpoint(folder) and (folder / "checkpoint.pt").exists()  # resumes from it
    write_json_atomic(folder / "result.json", {"run_id": "abc", "status": "done"})
    proc = hold_lock_in_subprocess(folder)
    try:
        assert not clear_done_checkpoint(folder) and (folder / "checkpoint.pt").exists()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert clear_done_checkpoint(folder) and not (folder / "checkpoint.pt").exists()


def test_run_lock_is_reentrant_in_one_process_also_under_the_runners_lock(tmp_path):
    from sweep.store.locks import lock_holder, release, try_lock

    folder = tmp_path / "runs" / "abc"
    with run_lock(folder):
        with run_lock(folder):
            assert lock_holder(folder / ".lock")["pid"] == os.getpid()
        assert lock_holder(folder / ".lock")["pid"] == os.getpid()  # the outer one still holds it
    assert lock_holder(folder / ".lock") is None
    outer = try_lock(folder / ".lock")
    try:
        with run_lock(folder, attempts=1):  # the sweep runner's lock, taken by this same process
            pass
    finally:
        release(outer)


# ----------------------------------------------------------------------------- the index


def test_index_holds_one_row_per_readable_result(tmp_path):
    put(tmp_path, fake_result("a1", loss=3.5))
    put(tmp_path, fake_result("b2", status="diverged", loss=None, diverged_step=7, diverged_value=float("nan")))
    (tmp_path / "runs" / "c3").mkdir()  # started, no result yet
    (tmp_path / "runs" / "d4").mkdir()
    (tmp_path / "runs" / "d4" / "result.json").write_text('{"trunc')
    assert read_index(tmp_path) == []
    rows = rebuild_index(tmp_path)
    assert [r["run_id"] for r in rows] == ["a1", "b2"]
    on_disk = read_index(tmp_path)
    assert [r["run_id"] for r in on_disk] == ["a1", "b2"]
    assert on_disk[0]["final_val_loss"] == 3.5 and on_disk[0]["n_params"] == 1000 and on_disk[0]["flops"] == 1.2e8
    assert on_disk[1]["status"] == "diverged" and on_disk[1]["diverged_step"] == 7
    assert on_disk[1]["diverged_value"] == "nan"
    put(tmp_path, fake_result("a1", loss=3.25))  # rebuilt, never appended: still one row per run
    assert [r["final_val_loss"] for r in rebuild_index(tmp_path)] == [3.25, None]


# ----------------------------------------------------------------------------- secrets


def test_secrets_from_the_environment_never_reach_results_or_logs(tmp_path, monkeypatch, capfd, tiny):
    from sweep.cli import load_run_config
    from sweep.run.train import train

    secret = "sk-live-3f9a8b7c6d5e4f30"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    monkeypatch.setenv("WANDB_API_KEY", "0123456789abcdef0123456789abcdef01234567")
    cfg = load_run_config(tiny(tmp_path, "budget.n_tokens=20480", f"+meta.note=key-{secret}",
                               "+meta.api_key=hunter2-hunter2", "logger.mode=offline"))
    result = train(cfg, progress=False)
    assert result["status"] == "done"
    assert result["meta"]["api_key"] == "<redacted>" and result["meta"]["note"] == "key-<redacted>"
    assert result["config"]["meta"]["api_key"] == "<redacted>"
    out = capfd.readouterr()
    texts = [out.out, out.err]
    for path in (tmp_path / "results").rglob("*"):
        if path.is_file():
            texts.append(path.read_bytes().decode("utf-8", "replace"))
    assert len(texts) > 6
    for text in texts:
        for s in (secret, "hunter2-hunter2", "0123456789abcdef0123456789abcdef01234567"):
            assert s not in text


# ----------------------------------------------------------------------------- writers killed mid-write


def test_index_rebuild_clears_the_temporary_file_of_a_killed_index_writer(tmp_path):
    put(tmp_path, fake_result("a1"))
    stale = tmp_path / ".index.jsonl.k1ll3d.tmp"
    stale.write_text('{"half a row')
    other = tmp_path / ".plan.json.x.tmp"  # not the index writer's: not its to remove
    other.write_text("{")
    assert [r["run_id"] for r in rebuild_index(tmp_path)] == ["a1"]
    assert not stale.exists() and other.exists()


def test_taking_a_run_clears_temporary_files_a_killed_writer_left_in_it(tmp_path, tiny):
    from sweep.cli import load_run_config
    from sweep.run.train import train

    from sweep.run.shape import run_shape

    cfg = load_run_config(tiny(tmp_path, "budget.n_tokens=20480", "logger.mode=disabled"))
    rdir = store.run_dir(cfg, run_shape(cfg).n_tokens)
    rdir.mkdir(parents=True)
    stale = [rdir / ".progress.json.gs9ffhk6.tmp", rdir / "checkpoint.pt.tmp", rdir / ".result.json.q.tmp"]
    for p in stale:
        p.write_bytes(b"half")  # as a process killed mid-write leaves them
    result = train(cfg, progress=False)  # the relaunch takes the run's lock, so no live writer owns them
    assert result["status"] == "done" and load_result(rdir)["final_val_loss"] == result["final_val_loss"]
    assert [p.name for p in rdir.iterdir() if p.name.endswith(".tmp")] == []


def test_the_sweep_table_has_a_row_per_run_and_the_fitter_reads_it(tmp_path):
    from sweep.fit.inputs import load_runs
    from sweep.store.results import TABLE_FILE

    config = {"model": {"arch": "gpt2", "n_layer": 2, "d_model": 32, "n_head": 2, "seq_len": 64},
              "train": {"lr": 0.01, "tokens_per_step": 512}}
    for i, loss in enumerate((3.5, 3.2, 3.0)):
        put(tmp_path, fake_result(f"r{i}", loss=loss, n_params=1000 * (i + 1), n_tokens=20000 * (i + 1),
                                  flops=1.2e8 * (i + 1) ** 2, config=config, meta={"budget_index": i}))
    put(tmp_path, fake_result("bad", status="failed", loss=None))
    rebuild_index(tmp_path)
    import pandas as pd

    table = pd.read_csv(tmp_path / TABLE_FILE)
    assert list(table["run_id"]) == ["bad", "r0", "r1", "r2"]
    assert list(table.loc[table.status == "done", "loss"]) == [3.5, 3.2, 3.0]
    assert table.loc[1, ["n_layer", "lr", "tokens_per_step", "budget_index"]].tolist() == [2, 0.01, 512, 0]
    runs = load_runs(str(tmp_path / TABLE_FILE))
    assert sorted(runs.loc[runs.status == "done", "loss"]) == [3.0, 3.2, 3.5]
    assert runs.loc[runs.run_id == "bad", "status"].tolist() == ["failed"]  # the fit's checks see it and leave it out
