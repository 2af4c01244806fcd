"""The learning-rate schedule as a pure function of the step: the trainer and the branch planner share it."""

from __future__ import annotations

import math


def cooldown_start(steps: int, train) -> int:
    """First optimizer step (0-based) of a WSD run's cooldown: the last cooldown_fraction of the steps, at least one."""
    return steps - max(1, int(round(train.cooldown_fraction * steps)))


def lr_factor(step: int, steps: int, train) -> float:
    """Learning-rate multiple of the peak before optimizer step `step` (0-based) of `steps`.

    cosine: linear warmup, then cosine from the peak to min_lr_ratio ending exactly at the run's
    last step (a schedule longer than the run overstates the loss, Hoffmann et al. 2022).
    wsd: warmup, constant, then a cooldown over the last cooldown_fraction of the steps.
    """
    warmup = train.warmup_steps if train.warmup_steps is not None else int(round(train.warmup_fraction * steps))
    warmup = min(warmup, steps - 1)
    if step < warmup:
        return (step + 1) / (warmup + 1)
    lo = train.min_lr_ratio
    if train.schedule == "constant":
        return 1.0
    if train.schedule == "cosine":
        progress = (step - warmup) / max(steps - 1 - warmup, 1)
        return lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    start = cooldown_start(steps, train)
    cooldown = steps - start
    if step < start:
        return 1.0
    progress = (step - start + 1) / cooldown
    decay = progress if train.cooldown_shape == "linear" else math.sqrt(progress)
    return lo + (1 - lo) * (1 - decay)
