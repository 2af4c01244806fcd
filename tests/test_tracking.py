"""W&B tracking with real wandb in offline mode, read back with our own .wandb reader."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

wandb = pytest.importorskip("wandb")

from sweep.store import tracking  # noqa: E402
from sweep.config import LoggerConfig  # noqa: E402
from sweep.store.tracking import (  # noqa: E402
    REDACTED, Tracker, TrackingFallbackWarning, check_logger, looks_secret, scrub,
)
from sweep.store.wandb_offline import (  # noqa: E402
    OfflineRunError, find_offline_runs, iter_records, read_offline_run, run_log_path,
)

FAKE_KEY = "fakewandbkey" + "0123456789abcdef" * 2  # 44 characters; real keys have 40+


@pytest.fixture
def wb_home(tmp_path, monkeypatch):
    """Isolate wandb from the real home, credentials and settings; fresh wandb singleton each test."""
    home = tmp_path / "home"
    home.mkdir()
    for name, value in {
        "HOME": home, "XDG_CACHE_HOME": home / ".cache", "XDG_CONFIG_HOME": home / ".config",
        "WANDB_CONFIG_DIR": home / ".config" / "wandb", "WANDB_CACHE_DIR": home / ".cache" / "wandb",
        "WANDB_DATA_DIR": home / "data", "WANDB_ARTIFACT_DIR": home / "artifacts",
        "NETRC": home / ".netrc",
    }.items():
        monkeypatch.setenv(name, str(value))
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR", "WANDB_BASE_URL",
                 "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_RUN_ID", "WANDB_RESUME"):
        monkeypatch.delenv(name, raising=False)
    # Not restored afterwards: the service it names is torn down below, and a later test that
    # inherited it would connect to a dead socket.
    os.environ.pop("WANDB_SERVICE", None)
    repo_wandb = Path.cwd() / "wandb"
    had_repo_wandb = repo_wandb.exists()
    # The wandb singleton snapshots the environment when created: start each test from scratch.
    wandb.teardown()
    yield home
    wandb.teardown()
    os.environ.pop("WANDB_SERVICE", None)
    assert not (home / ".netrc").exists(), "wandb wrote a .netrc"
    assert not (home / ".config").exists(), "wandb wrote to ~/.config"
    assert had_repo_wandb or not repo_wandb.exists(), "wandb wrote into ./wandb"


def _tracker(dir: Path, mode: str = "offline", run_id: str = "run0abc", **kw) -> Tracker:
    args = dict(run_id=run_id, name="d64-l2-1e6tok", group="sweepA", job_type="train",
                config={"model": {"d_model": 64, "n_layer": 2}, "budget": {"n_tokens": 1_000_000},
                        "lr": 3e-3},
                dir=dir, tags=["smoke"])
    args.update(kw)
    return Tracker(LoggerConfig(mode=mode, tags=["base"]), **args)


@pytest.fixture
def silent_server():
    """URL of a loopback TCP server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held = []

    def accept():
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()
    for conn in held:
        conn.close()


# --- round trip ----------------------------------------------------------------------------

def test_offline_run_round_trip(tmp_path, wb_home):
    out = tmp_path / "results" / "sweepA"
    with _tracker(out) as tracker:
        for step in range(3):
            tracker.log({"train/loss": 4.0 - step, "tokens": 4096 * (step + 1),
                         "flops": 1e9 * (step + 1)}, step=step)
        tracker.log({"val/loss": 3.25, "tokens": 3 * 4096}, step=3)
        tracker.set_summary({"final/val_loss": 3.25, "n_params": 123456, "status": "finished"})
        run_dir = tracker.run_dir
    tracker.finish()  # idempotent

    assert tracker.mode == "offline"
    assert find_offline_runs(out) == [run_dir]
    assert run_dir.parent == out / "wandb" and run_dir.name.startswith("offline-run-")
    run = read_offline_run(run_dir)
    assert (run["id"], run["name"], run["group"], run["job_type"]) == ("run0abc", "d64-l2-1e6tok", "sweepA", "train")
    assert run["project"] == "sweep"
    assert run["tags"] == ["base", "smoke"]
    assert run["exit_code"] == 0
    assert run["config"] == {"model": {"d_model": 64, "n_layer": 2}, "budget": {"n_tokens": 1_000_000}, "lr": 3e-3}
    assert [row["_step"] for row in run["history"]] == [0, 1, 2, 3]
    assert [row.get("train/loss") for row in run["history"]] == [4.0, 3.0, 2.0, None]
    assert [row["tokens"] for row in run["history"]] == [4096, 8192, 12288, 12288]
    assert run["history"][3]["val/loss"] == 3.25
    assert run["summary"]["final/val_loss"] == 3.25
    assert run["summary"]["n_params"] == 123456
    assert run["summary"]["status"] == "finished"
    assert run["summary"]["train/loss"] == 2.0  # last logged value

    metrics = {m.metric.glob_name or m.metric.name: m.metric.step_metric
               for m in iter_records(run_log_path(run_dir)) if m.WhichOneof("record_type") == "metric"}
    assert metrics == {"tokens": "", "flops": "", "*": "tokens"}


def test_exception_inside_with_finishes_failed(tmp_path, wb_home):
    with pytest.raises(ZeroDivisionError):
        with _tracker(tmp_path) as tracker:
            tracker.log({"train/loss": 5.0, "tokens": 4096}, step=0)
            1 / 0
    with pytest.raises(RuntimeError, match="after finish"):
        tracker.log({"train/loss": 1.0})
    run = read_offline_run(tracker.run_dir)
    assert run["exit_code"] == 1
    assert run["history"][0]["train/loss"] == 5.0


def test_disabled_mode_writes_nothing(tmp_path, wb_home):
    out = tmp_path / "out"
    with Tracker(LoggerConfig(mode="disabled"), run_id="r1", name="n", group="g", job_type="train",
                 config={"a": 1}, dir=out) as tracker:
        tracker.log({"train/loss": 1.0}, step=0)
        tracker.set_summary({"x": 1})
    assert tracker.run_dir is None and tracker.mode == "disabled"
    assert not out.exists()
    check_logger(LoggerConfig(mode="disabled", dir="/proc/forbidden"), out)  # nothing to write


# --- online fallbacks ----------------------------------------------------------------------

def test_online_unreachable_falls_back_to_offline(tmp_path, wb_home, monkeypatch):
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # closed port: refused at once
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    start = time.monotonic()
    with pytest.warns(TrackingFallbackWarning, match="127.0.0.1:9"):
        tracker = _tracker(tmp_path, mode="online")
    with tracker:
        tracker.log({"train/loss": 2.0, "tokens": 1}, step=0)
    assert time.monotonic() - start < 60, "fallback must not wait on the network"
    assert tracker.mode == "offline"
    assert find_offline_runs(tmp_path) == [tracker.run_dir]
    assert read_offline_run(tracker.run_dir)["history"][0]["train/loss"] == 2.0


def test_online_without_credentials_falls_back_without_prompting(tmp_path, wb_home, monkeypatch, silent_server):
    monkeypatch.setenv("WANDB_BASE_URL", silent_server)
    with pytest.warns(TrackingFallbackWarning, match="credentials"):
        tracker = _tracker(tmp_path, mode="online")
    tracker.finish()
    assert tracker.mode == "offline"
    assert read_offline_run(tracker.run_dir)["exit_code"] == 0


def test_online_init_timeout_falls_back(tmp_path, wb_home, monkeypatch, silent_server):
    monkeypatch.setattr(tracking, "INIT_TIMEOUT_S", 2.0)
    monkeypatch.setenv("WANDB_BASE_URL", silent_server)
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    with pytest.warns(TrackingFallbackWarning, match="CommError|Timeout"):
        tracker = _tracker(tmp_path, mode="online")
    tracker.finish()
    assert tracker.mode == "offline"
    assert tracker.run_dir.name.startswith("offline-run-")
    assert read_offline_run(tracker.run_dir)["config"]["lr"] == 3e-3


# --- checks and secrets --------------------------------------------------------------------

def test_check_logger_rejects_unwritable_dir(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    with pytest.raises(ValueError, match=r"logger\.dir=.*afile.*logger\.mode=disabled"):
        check_logger(LoggerConfig(dir=str(afile / "wandb")), tmp_path / "unused")
    with pytest.raises(ValueError, match=r"logger\.dir=None.*afile"):
        check_logger(LoggerConfig(), afile / "sweepA")
    with pytest.raises(ValueError, match="logger.mode"):
        check_logger(LoggerConfig(mode="cloud"), tmp_path)

    ok = tmp_path / "ok"
    check_logger(LoggerConfig(), ok)
    assert [p.name for p in ok.iterdir()] == ["wandb"] and not any((ok / "wandb").iterdir())

    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o500)
    try:
        if os.geteuid() == 0:  # root writes anyway; the check must agree with reality
            check_logger(LoggerConfig(), read_only)
        else:
            with pytest.raises(ValueError, match="not writable|Permission denied"):
                check_logger(LoggerConfig(), read_only)
    finally:
        read_only.chmod(0o700)


@pytest.mark.parametrize("name,secret", [
    ("api_key", True), ("WANDB_API_KEY", True), ("apiKey", True), ("hf_token", True),
    ("HF_TOKEN", True), ("token", True), ("client_secret", True), ("password", True),
    ("auth", True), ("aws_secret_access_key", True),
    ("n_tokens", False), ("val_tokens", False), ("tokens_per_step", False),
    ("tokens_per_param", False), ("tokenizer", False), ("eval_tokens", False),
    ("author", False), ("keys", False), ("d_model", False),
])
def test_looks_secret(name, secret):
    assert looks_secret(name) is secret


def test_scrub_masks_secret_keys_and_env_values(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-abcdefgh-123")
    monkeypatch.setenv("SHORT_KEY", "1")  # flags are not secrets
    config = {"budget": {"n_tokens": 1000, "tokens_per_param": 20.0},
              "train": {"tokens_per_step": 4096}, "data": {"val_tokens": 65536},
              "api_key": "abc", "nested": {"hf_token": "hf_xyz", "use_auth": True, "password": None},
              "note": f"url https://x:{FAKE_KEY}@host", "argv": ["run", "tok-abcdefgh-123"],
              "lr": 1}
    clean = scrub(config)
    assert clean == {"budget": {"n_tokens": 1000, "tokens_per_param": 20.0},
                     "train": {"tokens_per_step": 4096}, "data": {"val_tokens": 65536},
                     "api_key": REDACTED, "nested": {"hf_token": REDACTED, "use_auth": True, "password": None},
                     "note": f"url https://x:{REDACTED}@host", "argv": ["run", REDACTED], "lr": 1}
    assert config["api_key"] == "abc"  # the input is not modified


def test_secrets_never_reach_wandb_files(tmp_path, wb_home, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    # wandb records the command line in the run metadata: a secret there must not leak either
    monkeypatch.setattr(sys, "argv", ["sweep", "train", "+logger.hf_token=hf_abcdefghijklmnop"])
    config = {"budget": {"n_tokens": 5000}, "wandb_api_key": FAKE_KEY, "extra": {"header": f"Bearer {FAKE_KEY}"}}
    with _tracker(tmp_path, config=config) as tracker:
        tracker.log({"train/loss": 1.0, "tokens": 5000}, step=0)
        tracker.set_summary({"note": f"key={FAKE_KEY}"})
    run = read_offline_run(tracker.run_dir)
    assert run["config"]["budget"]["n_tokens"] == 5000
    assert run["config"]["wandb_api_key"] == REDACTED
    assert run["summary"]["note"] == f"key={REDACTED}"
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".wandb") for p in files)
    leaks = [p for p in files if FAKE_KEY.encode() in p.read_bytes() or b"hf_abcdefghijklmnop" in p.read_bytes()]
    assert leaks == []


# --- resume and the reader -----------------------------------------------------------------

def test_resume_same_run_id_adds_a_segment(tmp_path, wb_home):
    with _tracker(tmp_path, run_id="resumeme") as first:
        for step in range(3):
            first.log({"train/loss": 10.0 - step, "tokens": step}, step=step)
    with _tracker(tmp_path, run_id="resumeme") as second:
        for step in range(3, 5):
            second.log({"train/loss": 10.0 - step, "tokens": step}, step=step)
        second.set_summary({"final/val_loss": 6.0})
    with _tracker(tmp_path, run_id="other") as other:
        other.log({"train/loss": 1.0}, step=0)

    # Offline, wandb cannot extend the earlier file: each resume is a new folder with the same id.
    segments = find_offline_runs(tmp_path, run_id="resumeme")
    assert segments == [first.run_dir, second.run_dir] and first.run_dir != second.run_dir
    assert len(find_offline_runs(tmp_path)) == 3
    runs = [read_offline_run(s) for s in segments]
    assert [r["id"] for r in runs] == ["resumeme", "resumeme"]
    assert [[row["_step"] for row in r["history"]] for r in runs] == [[0, 1, 2], [3, 4]]
    assert [r["exit_code"] for r in runs] == [0, 0]
    assert "final/val_loss" not in runs[0]["summary"] and runs[1]["summary"]["final/val_loss"] == 6.0


def test_reader_multi_block_records_truncation_and_corruption(tmp_path, wb_home):
    big = "0123456789" * 8000  # an 80 KB config value spans three 32 KiB blocks
    with _tracker(tmp_path, config={"blob": big}) as tracker:
        for step in range(200):
            tracker.log({"train/loss": 1.0 / (step + 1), "tokens": step, "nan": float("nan")}, step=step)
    log = run_log_path(tracker.run_dir)
    assert log.stat().st_size > 3 * 32 * 1024
    run = read_offline_run(tracker.run_dir)
    assert run["config"]["blob"] == big
    assert len(run["history"]) == 200 and run["history"][-1]["train/loss"] == pytest.approx(1 / 200)
    assert run["history"][0]["nan"] != run["history"][0]["nan"]  # NaN survives the round trip
    assert run["exit_code"] == 0

    # A run killed mid-write: the partial tail is skipped, the rest stays readable.
    cut = tmp_path / "cut" / tracker.run_dir.name
    shutil.copytree(tracker.run_dir, cut)
    data = run_log_path(cut).read_bytes()
    run_log_path(cut).write_bytes(data[:-5])
    partial = read_offline_run(cut)
    assert partial["exit_code"] is None and len(partial["history"]) == 200

    # A flipped byte inside a record fails the checksum with a message naming the file.
    corrupt = bytearray(data)
    corrupt[40000] ^= 0xFF
    run_log_path(cut).write_bytes(bytes(corrupt))
    with pytest.raises(OfflineRunError, match="checksum|bad chunk"):
        read_offline_run(cut)
    with pytest.raises(OfflineRunError, match="run-<id>.wandb"):
        read_offline_run(tmp_path)


def test_sync_uploads_each_run_s_segments_oldest_first_then_appends(tmp_path, wb_home, capsys):
    from sweep.cli import main
    from sweep.store.sync import sync_commands

    with _tracker(tmp_path, run_id="resumeme") as first:
        first.log({"train/loss": 10.0}, step=0)
    with _tracker(tmp_path, run_id="other") as other:
        other.log({"train/loss": 1.0}, step=0)
    with _tracker(tmp_path, run_id="resumeme") as second:
        second.log({"train/loss": 9.0}, step=1)
    cmds = sync_commands(tmp_path)
    # runs in any order; within a run, its segments oldest first and every later one appended
    assert sorted(cmds) == sorted([["wandb", "sync", str(first.run_dir)], ["wandb", "sync", "--append", str(second.run_dir)],
                                   ["wandb", "sync", str(other.run_dir)]])
    assert cmds.index(["wandb", "sync", str(first.run_dir)]) < cmds.index(["wandb", "sync", "--append",
                                                                              str(second.run_dir)])
    # a first segment uploaded earlier: the rest of that run is appended to it
    log = next(first.run_dir.glob("run-*.wandb"))
    log.with_name(log.name + ".synced").touch()
    after = sync_commands(tmp_path)
    assert ["wandb", "sync", "--append", str(second.run_dir)] in after
    assert not any(str(first.run_dir) in c for c in after) and len(after) == 2
    assert main(["sync", f"input={tmp_path}", "dry_run=true"]) == 0
    assert f"wandb sync --append {second.run_dir}" in capsys.readouterr().out


def test_a_reader_waits_for_a_log_cut_short_and_reads_a_finished_one_at_once(tmp_path, wb_home):
    """wandb's finish() can return before its service wrote the last records: a log cut short (here, the finished
    run's log with its tail removed while the reader waits) is read once it is whole; a log that ends with its exit
    record is read without waiting, and one that stops growing without it (a crash) after `quiet` seconds."""
    from sweep.store.wandb_offline import settle

    out = tmp_path / "results" / "sweepA"
    with _tracker(out) as tracker:
        tracker.set_summary({"status": "finished"})
        run_dir = tracker.run_dir
    log = run_log_path(run_dir)
    whole = log.read_bytes()
    t0 = time.monotonic()
    settle(log, wait=5.0, quiet=3.0)
    assert time.monotonic() - t0 < 1.0  # it ends with its exit record
    log.write_bytes(whole[:len(whole) // 2])
    threading.Timer(1.0, lambda: log.write_bytes(whole)).start()
    t0 = time.monotonic()
    run = read_offline_run(run_dir, wait=10.0)
    assert 0.9 < time.monotonic() - t0 < 3.0 and run["exit_code"] == 0 and run["job_type"] == "train"
    log.write_bytes(whole[:len(whole) // 2])  # a crash: it never grows again
    t0 = time.monotonic()
    settle(log, wait=10.0, quiet=0.5)
    assert 0.4 < time.monotonic() - t0 < 2.0
