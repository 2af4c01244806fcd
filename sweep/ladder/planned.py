"""A planned run and an expanded grid: what the planner hands to the launcher and the branch planner."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

from sweep.config import RunConfig


@dataclass
class PlannedRun:
    """One run of a grid with the numbers a plan shows."""

    index: int
    """Position in the grid (the multirun's run_index)."""
    cfg: RunConfig
    """The complete run config (budget.n_tokens set, meta holding the grid coordinates)."""
    run_id: str
    """Results folder name (stable hash of what changes the result)."""
    run_name: str
    """Readable name, e.g. L2-d64-h4-D1.2M."""
    n_params: int
    """Total unique parameters (Chinchilla's N)."""
    n_params_non_embedding: int
    """Kaplan's N: without token/position embeddings and an untied output layer."""
    n_tokens: int
    """Training tokens D = steps * tokens_per_step."""
    steps: int
    """Optimizer steps."""
    flops_per_token: float
    """Exact training FLOPs per token."""
    flops: float
    """Exact training FLOPs of the run (flops_per_token * n_tokens)."""
    flops_6nd: float
    """6 * n_params * n_tokens."""
    tokens_per_param: float
    """n_tokens / n_params."""


@dataclass
class Grid:
    """The expanded grid: the runs kept and the points dropped with the reason."""

    runs: List[PlannedRun]
    dropped: List[tuple]  # (PlannedRun, reason)
