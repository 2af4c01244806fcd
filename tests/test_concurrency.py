"""Many processes writing one sweep at once: a consistent store, never a torn file, one trainer per run."""

import json
import multiprocessing as mp
import subprocess
import sys
from pathlib import Path

import pytest

from sweep.store.results import INDEX_FILE, load_result, read_index, rebuild_index, write_json_atomic

from conftest import SHAKESPEARE  # the checked-in 310 kB of tinyshakespeare

N_WRITERS, RUNS_EACH = 8, 12


def _writer(sweep: str, w: int) -> None:
    # What the end of train() does: write the run's result.json, then rebuild the index.
    for i in range(RUNS_EACH):
        rid = f"w{w}r{i:02d}"
        write_json_atomic(Path(sweep) / "runs" / rid / "result.json",
                          {"run_id": rid, "run_name": rid, "status": "done", "final_val_loss": 3.0 + w + i / 100,
                           "n_params": 1000 * (w + 1), "n_tokens": 100 * (i + 1), "config": {"pad": "x" * 4000}})
        rebuild_index(sweep)


def test_eight_concurrent_writers_leave_a_consistent_index(tmp_path):
    sweep = tmp_path / "results" / "s"
    ctx = mp.get_context("spawn")  # no fork of a process that holds torch's thread pools
    procs = [ctx.Process(target=_writer, args=(str(sweep), w)) for w in range(N_WRITERS)]
    for p in procs:
        p.start()
    # Meanwhile read the index as a user would: every read is a whole, parseable file.
    reads, seen_rows = 0, 0
    while any(p.is_alive() for p in procs):
        try:
            text = (sweep / INDEX_FILE).read_text()
        except FileNotFoundError:
            continue
        lines = text.splitlines()
        assert text == "" or text.endswith("\n")
        rows = [json.loads(line) for line in lines]  # raises on a torn line
        assert len({r["run_id"] for r in rows}) == len(rows)
        reads += 1
        seen_rows = max(seen_rows, len(rows))
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert reads > 0
    rows = read_index(sweep)
    ids = [r["run_id"] for r in rows]
    expected = {f"w{w}r{i:02d}" for w in range(N_WRITERS) for i in range(RUNS_EACH)}
    assert len(ids) == len(expected) and set(ids) == expected  # every run exactly once
    for rid in expected:
        assert load_result(sweep / "runs" / rid, expect_run_id=rid)["status"] == "done"
    assert not list(sweep.rglob("*.tmp"))  # no temporary file left behind


def tiny_args(results: Path, cache: Path, *extra: str) -> list:
    return [f"results_dir={results}", f"data.cache_dir={cache}", "sweep_name=t", "data.source=files",
            f"data.path={SHAKESPEARE}", "data.max_bytes=300000", "data.val_tokens=8192", "tokenizer=byte",
            "model.n_layer=2", "model.d_model=64", "model.n_head=4", "model.seq_len=64", "train.batch_size=16",
            "train.tokens_per_step=1024", "train.threads=1", "logger.mode=disabled", *extra]


def _spawn(args: list) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sweep", "train", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])


def test_two_launches_of_one_run_never_train_it_twice(tmp_path):
    # Warm the token cache so both processes reach the lock at about the same moment.
    from sweep.cli import load_run_config
    from sweep.run.data import prepare_data

    args = tiny_args(tmp_path / "results", tmp_path / "cache", "budget.n_tokens=61440")
    cfg = load_run_config(args)
    prepare_data(cfg.data, cfg.tokenizer, progress=False)
    procs = [_spawn(args) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    trained = [err for _, err in outs if "being trained by pid" not in err and "already done" not in err]
    assert len(trained) == 1, [err[-500:] for _, err in outs]
    loser = next(err for _, err in outs if err is not trained[0])
    if "being trained by pid" in loser:  # refused while the other one ran: says who, exits non-zero
        assert any(p.returncode != 0 for p in procs)
    (rdir,) = (tmp_path / "results" / "t" / "runs").iterdir()
    assert load_result(rdir)["status"] == "done"
    steps = [json.loads(line)["step"] for line in (rdir / "metrics.jsonl").read_text().splitlines()
             if "train_loss" in line]
    assert steps == sorted(set(steps)) and steps[-1] == 60  # one trainer's curve, no step twice
    assert [r["run_id"] for r in read_index(tmp_path / "results" / "t")] == [rdir.name]


@pytest.mark.slow
def test_eight_real_trainers_of_one_sweep_at_once(tmp_path):
    from sweep.cli import load_run_config
    from sweep.run.data import prepare_data

    base = tiny_args(tmp_path / "results", tmp_path / "cache")
    cfg = load_run_config([*base, "budget.n_tokens=10240"])
    prepare_data(cfg.data, cfg.tokenizer, progress=False)
    procs = [_spawn([*base, f"budget.n_tokens={10240 + 1024 * i}"]) for i in range(8)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
    sweep = tmp_path / "results" / "t"
    rows = read_index(sweep)
    assert len(rows) == 8 and len({r["run_id"] for r in rows}) == 8
    assert sorted(r["n_tokens"] for r in rows) == [10240 + 1024 * i for i in range(8)]
    for r in rows:
        assert load_result(sweep / "runs" / r["run_id"], expect_run_id=r["run_id"])["status"] == "done"
