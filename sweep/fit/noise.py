"""Run-to-run noise, and prediction intervals for a new run built from it.

A bootstrap over runs gives the uncertainty of the fitted law: where the law's curve is. A new run
lands off that curve by the same run-to-run noise the fitted runs have (seed, data order, evaluation
tokens), so a prediction interval for a run adds that noise to the law's spread. The noise is
estimated from seed replicates when the sweep has them (runs at the same N and D), otherwise from
the fit's residual scale with a degrees-of-freedom correction, or from its residuals differenced along the sweep
when the law's misfit inflates that scale (`from_fit`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import f as f_dist


@dataclass(frozen=True)
class Noise:
    """Run-to-run noise as a standard deviation of log loss (about the relative sd of the loss)."""

    sigma: float
    """Standard deviation of log loss between runs at one (N, D); NaN when it could not be estimated."""
    dof: int
    """Degrees of freedom of the estimate (replicates: runs minus groups; residuals: runs minus parameters)."""
    source: str
    """'seed replicates', '<method> residuals', or why there is none."""

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.sigma) and self.dof >= 1)


def from_replicates(data) -> Noise | None:
    """Pooled within-group sd of log loss over groups of runs at the same (N, D); None without replicates."""
    groups = data.replicate
    counts = np.bincount(groups)
    if counts.max(initial=0) < 2:
        return None
    ll = np.log(data.loss)
    means = np.bincount(groups, weights=ll) / np.maximum(counts, 1)
    ss = float(np.sum((ll - means[groups]) ** 2))
    dof = int(groups.size - np.count_nonzero(counts))
    return Noise(sigma=float(np.sqrt(ss / dof)), dof=dof, source=f"seed replicates ({int(np.sum(counts >= 2))} points)")


def from_residuals(residuals: np.ndarray, n_params: int, method: str) -> Noise:
    """sqrt(sum r^2 / (P - k)) of a fit's log-loss residuals."""
    r = np.asarray(residuals, float)
    r = r[np.isfinite(r)]
    dof = r.size - n_params
    if dof < 1:
        return Noise(sigma=float("nan"), dof=0, source=f"none: {method} has {r.size} runs for {n_params} parameters")
    return Noise(sigma=float(np.sqrt(np.sum(r ** 2) / dof)), dof=int(dof), source=f"{method} residuals")


MIN_PSEUDO = 8
"""Pseudo-residuals a difference-based noise estimate needs; with fewer the residual scale is used."""
MISFIT_TEST = 0.99
"""The residual scale is the noise unless it exceeds the differenced estimate beyond this quantile of the F
distribution (a misfit of the law inflates it)."""


def from_fit(residuals: np.ndarray, data, n_params: int, method: str) -> Noise:
    """Run-to-run noise from a fit's log-loss residuals: their scale, unless the law misfits the sweep.

    Residuals are noise plus the law's misfit. The misfit is smooth along a line of the design (one IsoFLOP budget
    over log N, else one size over log D) and the noise is not, so each residual minus the straight line through
    its two neighbours' (Gasser, Sroka & Jennen-Steinmetz 1986: pseudo-residuals, unequally spaced) keeps the noise
    and cancels the misfit's level and slope. When the residual scale is larger than that beyond an F test (a law
    that misses a region: a grid's starved corner, warm-up-dominated short runs, a curvature), the misfit is not
    run-to-run noise; the differenced estimate is used, and the misfit is left to the lack-of-fit term that the
    backtest measures (sweep/fit/lack_of_fit.py). Otherwise the residual scale is kept: where the law is right both
    estimate the same sigma, and the residuals with more degrees of freedom (neighbouring pseudo-residuals share
    runs, which halves theirs)."""
    res = from_residuals(residuals, n_params, method)
    diff = _differenced(np.asarray(residuals, float), data)
    if diff is None or not res.ok:
        return res
    sigma, count = diff
    dof = max(1, count // 2)
    if sigma <= 0 or (res.sigma / sigma) ** 2 <= f_dist.ppf(MISFIT_TEST, res.dof, dof):
        return res
    return Noise(sigma=float(sigma), dof=int(dof),
                 source=f"{method} residuals differenced along the sweep, {count} pseudo-residuals (residual scale "
                        f"{res.sigma:.3g})")


def _differenced(r: np.ndarray, data) -> tuple[float, int] | None:
    """(sigma, count) from the pseudo-residuals along IsoFLOP budgets, else along sizes; None with too few."""
    for key, coord in ((data.budget, np.log(data.n)), (data.n, np.log(data.d))):
        pseudo = []
        for g in np.unique(key):
            idx = np.flatnonzero((key == g) & np.isfinite(r))
            idx = idx[np.argsort(coord[idx], kind="stable")]
            x, y = coord[idx], r[idx]
            for i in range(1, idx.size - 1):
                h = x[i + 1] - x[i - 1]
                if h <= 0:
                    continue
                a, b = (x[i + 1] - x[i]) / h, (x[i] - x[i - 1]) / h
                pseudo.append((a * y[i - 1] + b * y[i + 1] - y[i]) / np.sqrt(a * a + b * b + 1.0))
        if len(pseudo) >= MIN_PSEUDO:
            # no leverage correction: a fit's smooth curve cancels in the pseudo-residuals as its misfit does
            return float(np.sqrt(np.mean(np.square(pseudo)))), len(pseudo)
    return None


def prediction_interval(point: float, law_samples: np.ndarray | None, noise: Noise, level: float,
                        seed: int = 0, draws: int = 4000, lack_of_fit_sd: float = 0.0) -> dict | None:
    """Interval for one new run's loss: the law's bootstrap spread plus run-to-run noise, in log space.

    Each finite law sample gets noise draws from a t distribution with the estimate's degrees of freedom
    (a scale estimated from few residuals is itself uncertain); the interval is their percentiles. With no
    law samples the noise alone is used, and `law_spread` says so. None when there is no noise estimate
    or no finite law value. `lack_of_fit_sd` (log loss) adds a normal term for the law's own misfit at this
    extrapolation (sweep/fit/lack_of_fit.py), beside the noise, not instead of it.
    """
    if not noise.ok or not np.isfinite(point) or point <= 0:
        return None
    rng = np.random.default_rng(seed)
    tail = 50 * (1 - level)
    if law_samples is not None:
        s = np.asarray(law_samples, float)
        s = s[np.isfinite(s) & (s > 0)]
    else:
        s = np.empty(0)
    if s.size >= 2:
        base = np.log(np.repeat(s, int(np.ceil(draws / s.size))))
    else:
        base = np.full(draws, np.log(point))
    eps = noise.sigma * rng.standard_t(noise.dof, size=base.size)
    if lack_of_fit_sd > 0:
        eps = eps + rng.normal(0.0, lack_of_fit_sd, size=base.size)
    lo, hi = np.exp(np.percentile(base + eps, [tail, 100 - tail]))
    return {"interval": [float(lo), float(hi)], "law_spread": bool(s.size >= 2), "noise_sigma": noise.sigma,
            "law_sd": float(np.std(base)) if s.size >= 2 else 0.0, "lack_of_fit_sd": float(lack_of_fit_sd)}
