"""One estimator for every law of N and D fitted in log-sum-exp form: a law's FORM on a SELECTION of the runs.

The form says what is fitted: its residuals in log loss and their Jacobian (sweep/fit/lse.py's numerics), its
bounds, how its point fit is found (a grid of starts, or starts from another form's fit), how its parameters map to
the natural ones stored in fit.json, and its loss L(N, D). The selection (sweep/fit/selection.py) says on which runs
and with which weights. Everything else is the same for every form, so it is written once here:
- the point fit: Huber loss on log-loss residuals, summed over the selected runs (each weighted);
- the law's interval: refits on the selected runs resampled with replacement, warm-started at the point fit;
- the run-to-run noise: seed replicates, else the residuals (`noise.from_fit`);
- the prediction interval's law spread: refits on sweeps simulated from the fitted law with that noise, which is the
  law's spread if its form is right (resampling runs would also resample the design, which a new run at a given
  (N, D) does not have).
The methods approach3, approach3_valley, approach3_upper, drift and shared_exponent are a form and a selection each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from sweep.fit import lse
from sweep.fit.bootstrap import PI_REFITS
from sweep.fit.config import FitConfig, MethodSkipped
from sweep.fit.method import MethodFit
from sweep.fit.noise import Noise, from_fit, from_replicates
from sweep.fit.selection import Selection


@dataclass
class Point:
    """A form's point fit on the selected runs."""

    theta: np.ndarray
    """The best parameters in the form's own coordinates (one row of what its residuals take)."""
    objective: float
    """Summed (weighted) Huber loss at theta."""
    starts: np.ndarray
    """Warm starts (rows) of the bootstraps' refits: theta, and other optima a resample may move to."""
    details: dict = field(default_factory=dict)
    """What the form's diagnostics need from the search (e.g. the grid's optima and its time)."""


@dataclass(frozen=True)
class Form:
    """A law of N and D as the estimator fits it."""

    names: tuple
    """Natural parameter names, in fit.json's order."""
    width: int
    """Free parameters: the columns of theta (the noise estimate's degrees of freedom use it)."""
    label: str
    """Its name in messages and in the noise source ("approach 3")."""
    point: Callable
    """point(log_n, log_d, log_l, cfg, weights) -> Point; raises MethodSkipped when no start converges."""
    natural: Callable
    """natural(rows of theta (S, width)) -> (S, len(names)) natural parameters."""
    loss_at: Callable
    """loss_at(natural params dict, n, d) -> L(N, D)."""
    diagnostics: Callable
    """diagnostics(the LseFit, cfg) -> fit.json's "diagnostics" for this form."""
    applies: Callable = lambda data: None
    """applies(selected runs' FitData) raises MethodSkipped when the form cannot be fitted to them."""
    residuals: Callable = lse._residuals
    """residuals(theta (S, width), log_n, log_d, log_l, with_jacobian) -> (r (S, P), jacobian (S, P, width) or
    None): the form's log L - log loss."""
    lower: np.ndarray = field(default_factory=lambda: lse.LOWER)
    """Lower bounds of theta."""
    options: dict = field(default_factory=dict)
    """Further options of the batched solver (upper bounds, stall_tol)."""

    def solver(self) -> dict:
        """What lse's solver and bootstraps take to fit this form."""
        return dict(residuals=self.residuals, lower=self.lower, **self.options)


@dataclass
class LseFit:
    """A form fitted to a selection: the point fit, the law's bootstrap, the PI's refits and the noise."""

    form: Form
    selection: Selection
    point: Point
    params: dict
    """Natural parameters at the point fit."""
    residuals: np.ndarray
    """Log-loss residuals (log loss - log L) of the selected runs."""
    noise: Noise
    samples: Optional[np.ndarray]
    """(n_bootstrap, names) natural parameters refitted on resampled runs; None when not drawn."""
    pi_samples: Optional[np.ndarray]
    """(refits, names) natural parameters refitted on sweeps simulated from the fit; None without a noise scale."""

    def result(self, data, cfg: FitConfig, bootstrap: str = "runs resampled with replacement") -> MethodFit:
        """The method's MethodFit; data: the whole sweep (a valley fit reports every run's residual, so that plots
        line them up with the sweep: off-valley ones show what the fit left out)."""
        out = MethodFit.summarized(self.params, self.samples, list(self.form.names), cfg.interval, bootstrap=bootstrap,
                                   pi_samples=self.pi_samples, noise=self.noise)
        if self.selection.valleys:
            out.residuals = np.log(data.loss) - np.log(self.form.loss_at(out.params, data.n, data.d))
        else:
            out.residuals = self.residuals
        out.diagnostics = self.form.diagnostics(self, cfg)
        return out

    def section(self, data, cfg: FitConfig, bootstrap: str = "runs resampled with replacement") -> dict:
        """The method's section of fit.json (`result(...).section()`)."""
        return self.result(data, cfg, bootstrap).section()

def fit(form: Form, selection: Selection, cfg: FitConfig, noise_label: Optional[str] = None) -> LseFit:
    """`form` fitted to `selection`: the point fit, the law's bootstrap (`cfg.law_intervals`), the noise and the PI's
    refits. noise_label names the fit in the noise source (default: the form's label, "on the valley runs'" for a
    valley selection). Raises MethodSkipped when the form does not apply to the selected runs."""
    sub, weights = selection.data, selection.weights
    try:
        form.applies(sub)
    except MethodSkipped as e:
        if not selection.valleys:
            raise
        raise MethodSkipped(f"on the {selection.runs.size} valley runs: {e}") from None
    if sub.loss.size <= form.width:
        raise MethodSkipped(f"{form.width} parameters but only {sub.loss.size} {'valley ' if selection.valleys else ''}"
                            "runs: add runs")
    log_n, log_d, log_l = np.log(sub.n), np.log(sub.d), np.log(sub.loss)
    pt = form.point(log_n, log_d, log_l, cfg, weights)
    params = dict(zip(form.names, form.natural(pt.theta[None, :])[0].tolist()))
    residuals = -form.residuals(pt.theta[None, :], log_n, log_d, log_l, False)[0][0]
    if noise_label is None:
        noise_label = f"{form.label} on the valley runs'" if selection.valleys else form.label
    nz = from_replicates(sub) or from_fit(residuals, sub, form.width, noise_label)
    drawn = cfg.n_bootstrap > 0 and cfg.law_intervals
    # without the law's bootstrap, the PI's refits start from the best optimum alone
    starts = pt.starts if drawn else pt.theta[None, :]
    samples = pis = None
    if drawn:
        samples = form.natural(lse.bootstrap(log_n, log_d, log_l, cfg.huber_delta, starts, cfg.n_bootstrap, cfg.seed,
                                             weights=weights, **form.solver()))
    if cfg.n_bootstrap > 0 and nz.ok:
        pis = form.natural(lse.parametric_bootstrap(log_n, log_d, pt.theta, nz.sigma, cfg.huber_delta, starts,
                                                    min(cfg.n_bootstrap, PI_REFITS), cfg.seed + 1, weights=weights,
                                                    **form.solver()))
    return LseFit(form, selection, pt, params, residuals, nz, samples, pis)
