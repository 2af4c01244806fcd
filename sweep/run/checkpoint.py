"""A run's checkpoint: what it holds, how it is written (atomically) and read back.

A checkpoint holds everything the next step depends on, so a resumed CPU run is bit-exact: model and
optimizer states, every RNG state, the step, the thread count and compute dtype the run started with
(a different reduction order would change the numbers), the divergence detector's state and the train
loss summed since the last log row. It also names the corpus and tokenizer it was trained on.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from sweep.config import ConfigError
from sweep.run.schedule import cooldown_start


@dataclass
class Counters:
    """The loop's state besides model and optimizer, restored from a checkpoint."""

    step: int = 0
    """Optimizer steps done."""
    wall_before: float = 0.0
    """Wall seconds spent before this process started (earlier segments of a resumed run)."""
    running_min: float = math.inf
    """Lowest train loss seen (divergence detector)."""
    above: int = 0
    """Consecutive checks above diverge_factor * running_min."""
    logged_sum: float = 0.0
    """Train loss summed over the steps since the last log row."""
    logged_steps: int = 0
    """How many steps that sum holds."""


def save(path: Path, state: dict) -> None:
    """Write `state` to `path` atomically (temporary file, fsync, rename): a kill leaves the old one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load(path: Path) -> Optional[dict]:
    return torch.load(path, map_location="cpu", weights_only=True) if path.exists() else None


def load_branch_point(path: Path, steps: int, train) -> dict:
    """A trunk's kept checkpoint to start a WSD branch from; it must sit before this run's cooldown starts."""
    if not path.exists():
        raise FileNotFoundError(f"train.init_from={str(path)!r} does not exist: run the trunk first")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    start = cooldown_start(steps, train)
    if ckpt["step"] > start:
        raise ConfigError(f"train.init_from={str(path)!r} is at step {ckpt['step']}, after this run's cooldown "
                          f"starts (step {start}): branch from an earlier point")
    return ckpt


def check_same_data(ckpt: dict, data, path: Path, run_folder: Path) -> None:
    """Refuse to resume on another corpus or tokenizer than the checkpoint was trained on."""
    for key in ("corpus_hash", "tokenizer_hash"):
        if ckpt.get(key, getattr(data, key)) != getattr(data, key):
            raise ConfigError(f"the corpus changed since this run's checkpoint {path} was written "
                              f"({key} {ckpt[key][:12]} -> {getattr(data, key)[:12]}): restore the original "
                              f"corpus, or delete {run_folder} to train the run from scratch")


def counters(ckpt: dict) -> Counters:
    # train_loss_sum/steps are absent from older checkpoints: the next log row then averages fewer steps
    return Counters(step=ckpt["step"], wall_before=ckpt["wall_seconds"], running_min=ckpt["running_min"],
                    above=ckpt["above"], logged_sum=ckpt.get("train_loss_sum", 0.0),
                    logged_steps=ckpt.get("train_loss_steps", 0))
