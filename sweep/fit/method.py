"""The interface every scaling-law method implements; sweep.fit.registry lists them.

A method is one module that builds a `Method`: how it fits runs, and what its parameters say about
the compute-optimal allocation and the loss. Everything else (intervals, allocation tables, backtests,
reports, comparisons) works from these functions, so adding a method is one file plus one line in the
registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional


@dataclass(frozen=True)
class Method:
    """One scaling-law method."""

    name: str
    """Key in fit.json and in `fit.methods`."""
    title: str
    """Heading of its report section."""
    color: str
    """Its colour in every plot."""
    fit: Callable
    """fit(data: FitData, cfg: FitConfig) -> its fit.json section: params, intervals, se, samples, diagnostics...;
    raises MethodSkipped with the reason when it does not apply."""
    exponents: Callable
    """exponents(params) -> (a, b) with N* ∝ C^a and D* ∝ C^b; params may hold arrays of bootstrap samples."""
    optimum: Callable
    """optimum(params, flops, flops_per_nd) -> (N*, D*, L*) at compute flops under C = k N D (arrays broadcast)."""
    loss_at: Optional[Callable] = None
    """loss_at(params, n, d) -> L(N, D); None for methods that only know the frontier L*(C)."""
    report: Callable = lambda result, fit: []
    """report(its section, the whole fit) -> extra markdown lines for its report section."""
    noise_priority: Optional[int] = None
    """Where its residual scale ranks as the sweep's run-to-run noise (lower first; None: it has none)."""
    default: bool = True
    """Run when `fit.methods` is null (every default method); False: only when named there, for a method whose
    intervals are not yet calibrated (its module says why)."""
    fixed: dict = field(default_factory=dict)
    """{parameter or exponent: why} for what the law's form fixes rather than the runs (no interval is reported:
    a zero-width one would read as precision)."""


def fmt(x, digits: int = 4) -> str:
    """A number for a report cell; n/a for None and NaN (a law that was not fitted)."""
    return "n/a" if x is None or x != x else f"{x:.{digits}g}"
