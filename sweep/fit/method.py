"""The interface every scaling-law method implements; sweep.fit.registry lists them.

A method is one module that builds a `Method`: how it fits runs (a `MethodFit`), and what its parameters say
about the compute-optimal allocation and the loss. Everything else (intervals, allocation tables, backtests,
reports, comparisons) works from these functions, so adding a method is one file plus one line in the
registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from sweep.fit.bootstrap import summarize
from sweep.fit.noise import Noise


@dataclass
class MethodFit:
    """What a method's fit found; `section()` is its section of fit.json (the pipeline adds the exponents, the
    allocation rows, the lack-of-fit term and the status to it)."""

    params: dict
    """{name: point estimate}, in the order fit.json lists them (the columns of samples and pi_samples)."""
    bootstrap: str
    """How the law's interval was drawn (or why not), for the report."""
    intervals: dict = field(default_factory=dict)
    """{name: [lo, hi]} percentile intervals of the finite samples (none around a value the fit could not give)."""
    se: dict = field(default_factory=dict)
    """{name: sd of the finite samples}."""
    finite: dict = field(default_factory=dict)
    """{name: how many samples are finite}."""
    n_bootstrap_ok: int = 0
    """Resamples whose every parameter is finite."""
    n_resamples: int = 0
    """Resamples tried."""
    samples: Optional[np.ndarray] = None
    """(resamples, params) refits behind the law's intervals; None when fewer than 2 were drawn."""
    pi_samples: Optional[np.ndarray] = None
    """(refits, params) refits on sweeps simulated from the fitted law, behind the prediction intervals; None: the
    method has none (its PIs then use samples)."""
    residuals: Optional[np.ndarray] = None
    """Log-loss residuals per run; None for a method that has none."""
    noise: Optional[Noise] = None
    """The run-to-run noise the method measured; None: it measured none."""
    diagnostics: Optional[dict] = None
    """What the method's report section says about the fit itself (grid, optima, envelope...); None: nothing."""
    notes: list = field(default_factory=list)
    """Warnings for the whole fit's log and fit.json's "warnings" (not part of the section)."""
    extra: dict = field(default_factory=dict)
    """Method-specific keys of the section that its report and plots read (approach 2's budgets, approach 1's
    envelope, the valley fit's selection...), already in fit.json's form."""

    @classmethod
    def summarized(cls, point: dict, samples: Optional[np.ndarray], names: list, level: float, **fields) -> "MethodFit":
        """A MethodFit of the point estimates `point` (its `names` kept) with the bootstrap summary of samples
        (rows of `names`, NaN rows for resamples that gave nothing) at interval level `level`; fields: the rest."""
        s = summarize(point, samples, names, level)
        return cls(params=s["params"], intervals=s["intervals"], se=s["se"], finite=s["finite"],
                   n_bootstrap_ok=s["n_bootstrap_ok"], n_resamples=s["n_resamples"],
                   samples=np.asarray(samples, float) if "samples" in s else None, **fields)

    def section(self) -> dict:
        """The method's section of fit.json: the summary, then what the method measured, then its own keys.
        Samples are rounded to 10 decimals (fit.json's size), and the allocation reads them back from there."""
        names = list(self.params)
        out = {"params": self.params, "intervals": self.intervals, "se": self.se, "finite": self.finite,
               "n_bootstrap_ok": self.n_bootstrap_ok, "n_resamples": self.n_resamples}
        if self.samples is not None:
            out["samples"] = {"names": names, "values": np.round(self.samples, 10).tolist()}
        out["bootstrap"] = self.bootstrap
        if self.pi_samples is not None:
            out["pi_samples"] = {"names": names, "values": np.round(self.pi_samples, 10).tolist()}
        if self.residuals is not None:
            out["residuals"] = np.asarray(self.residuals).tolist()
        if self.noise is not None:
            out["noise"] = self.noise.as_dict()
        if self.diagnostics is not None:
            out["diagnostics"] = self.diagnostics
        return {**out, **self.extra}


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
    """fit(data: FitData, cfg: FitConfig) -> MethodFit (its `section()` is the method's fit.json section); raises
    MethodSkipped with the reason when it does not apply."""
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
