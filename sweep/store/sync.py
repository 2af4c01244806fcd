"""`sweep sync input=<results folder>`: upload a sweep's offline W&B runs, each resumed run as one run.

Offline, wandb cannot extend a run's earlier file: every resume of a run writes a new
`offline-run-<time>-<id>` folder with the same id. `wandb sync` of each folder on its own replaces what
earlier segments uploaded (wandb issue #3841); the segments must go oldest first, the first one plain and
every later one with `--append`. A segment already uploaded (wandb leaves `run-<id>.wandb.synced` beside
its log) is skipped, and the next one is appended to it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

from sweep.config import ConfigError
from sweep.store.wandb_offline import find_offline_runs, run_log_path


def run_id_of(segment: Path) -> str:
    """The W&B run id of an offline segment (its log is run-<id>.wandb)."""
    return run_log_path(segment).name[len("run-"):-len(".wandb")]


def synced(segment: Path) -> bool:
    return run_log_path(segment).with_name(run_log_path(segment).name + ".synced").exists()


def sync_commands(folder: Path) -> List[List[str]]:
    """The `wandb sync` commands that upload every offline run under `folder`, in order: per run id, its
    segments oldest first, the first not yet uploaded plain unless an earlier one was, every later one
    with --append."""
    by_id: Dict[str, List[Path]] = {}
    for segment in find_offline_runs(folder):  # oldest first
        by_id.setdefault(run_id_of(segment), []).append(segment)
    commands = []
    for run_id, segments in by_id.items():
        started = False
        for segment in segments:
            if synced(segment):
                started = True
                continue
            commands.append(["wandb", "sync", *(["--append"] if started else []), str(segment)])
            started = True
    return commands


def sync_command(argv: List[str]) -> int:
    """sweep sync input=<results folder> [dry_run=true]."""
    opts = dict(a.split("=", 1) for a in argv if "=" in a)
    if set(opts) - {"input", "dry_run"} or "input" not in opts or len(opts) != len(argv):
        raise ConfigError("usage: sweep sync input=<results folder> [dry_run=true]")
    folder = Path(opts["input"])
    if not folder.is_dir():
        raise ConfigError(f"input={folder}: no such results folder")
    commands = sync_commands(folder)
    if not commands:
        print(f"nothing to upload under {folder}: every offline run is synced (or there are none)")
        return 0
    dry = opts.get("dry_run", "false").lower() in ("1", "true", "yes")
    if not dry and shutil.which("wandb") is None:
        raise ConfigError("the `wandb` command is not on PATH: install wandb, or print the commands with dry_run=true")
    for cmd in commands:
        print(" ".join(cmd))
        if not dry:
            rc = subprocess.run(cmd).returncode
            if rc != 0:
                print(f"sweep sync: `{' '.join(cmd)}` failed (exit {rc}); later segments of that run were not "
                      f"uploaded, so they cannot land out of order: fix it and run `sweep sync` again", file=sys.stderr)
                return rc
    return 0
