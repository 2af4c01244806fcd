"""How fast a run trains: steady-state tokens/s and MFU, apart from start-up and pauses.

A run's wall clock holds more than training steps: torch.compile (30-60 s on a GPU, against seconds of
work for a 1e15-FLOP run), CUDA-graph capture, intermediate evaluations and checkpoint writes. Divided
into all of it, tokens/s and MFU come out several times too low. So the meter keeps three clocks:
warm-up (the first optimizer steps of this process), pauses (evaluations, checkpoints) and the steady
steps between them. result.json reports the steady speed and the whole-wall speed, each labelled.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

WARMUP_STEPS = 2
"""Optimizer steps of each process left out of the steady speed: the first compiles (and selects
kernels), the second may recompile (dynamic shapes) or capture CUDA graphs."""


@dataclass
class SpeedMeter:
    """Clocks of one training process (a resumed run starts a new meter)."""

    sync: Callable[[], None] = lambda: None
    """Waits for queued device work (cuda.synchronize on a GPU), so a clock reads finished work."""
    warmup_steps: int = WARMUP_STEPS
    clock: Callable[[], float] = time.perf_counter
    start: float = field(default=0.0)
    steps: int = 0
    tokens: int = 0
    warmup_seconds: Optional[float] = None
    steady_start: Optional[float] = None
    steady_tokens: int = 0
    pauses: dict = field(default_factory=lambda: {"eval": 0.0, "checkpoint": 0.0})
    paused_in_steady: float = 0.0

    def __post_init__(self):
        self.start = self.clock()

    def step_done(self, tokens: int) -> None:
        """After each optimizer step: the warm-up ends (after a sync) once `warmup_steps` are done."""
        self.steps += 1
        self.tokens += tokens
        if self.steps == self.warmup_steps:
            self.sync()
            self.steady_start = self.clock()
            self.warmup_seconds = self.steady_start - self.start - sum(self.pauses.values())
        elif self.steps > self.warmup_steps:
            self.steady_tokens += tokens

    @contextlib.contextmanager
    def pause(self, kind: str):
        """Time an evaluation or a checkpoint write apart from the steps (synced on both sides)."""
        self.sync()
        t0 = self.clock()
        try:
            yield
        finally:
            self.sync()
            dt = self.clock() - t0
            self.pauses[kind] = self.pauses.get(kind, 0.0) + dt
            if self.steady_start is not None:
                self.paused_in_steady += dt

    def wall(self) -> float:
        return self.clock() - self.start

    def steady_tokens_per_second(self) -> Optional[float]:
        """Tokens/s of the steps after warm-up, pauses excluded; None before any such step."""
        if self.steady_start is None or self.steady_tokens == 0:
            return None
        return self.steady_tokens / max(self.clock() - self.steady_start - self.paused_in_steady, 1e-9)

    def tokens_per_second(self) -> float:
        """The steady speed, or the whole wall's while there is none yet (a run of a step or two)."""
        steady = self.steady_tokens_per_second()
        return steady if steady is not None else self.tokens / max(self.wall(), 1e-9)

    def fields(self) -> dict:
        """result.json's speed fields, each saying what it counts (call after a final sync)."""
        self.sync()
        wall = self.wall()
        steady = self.steady_tokens_per_second()
        return {
            "tokens_per_second": steady if steady is not None else self.tokens / max(wall, 1e-9),
            "tokens_per_second_counts": (
                f"optimizer steps after the first {self.warmup_steps} of this process, without evaluations and "
                f"checkpoint writes" if steady is not None else
                "every step of this process over its whole wall time (no step after warm-up)"),
            "tokens_per_second_wall": self.tokens / max(wall, 1e-9),
            "warmup_seconds": self.warmup_seconds,
            "eval_seconds": self.pauses.get("eval", 0.0),
            "checkpoint_seconds": self.pauses.get("checkpoint", 0.0),
        }
