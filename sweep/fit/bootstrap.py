"""Bootstrap helpers: resampling runs and percentile summaries of refitted parameters."""

from __future__ import annotations

import warnings
from typing import Optional

import numpy as np

PI_REFITS = 200
"""Refits on sweeps simulated from a fitted law behind a method's prediction intervals: each gets many noise draws,
so the interval's percentiles settle with far fewer refits than the law's confidence intervals need."""


def resample_indices(n_points: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_points) indices drawn with replacement; the same seed gives the same resamples."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_points, size=(n_boot, n_points))


def percentile_interval(samples: np.ndarray, level: float) -> list:
    """[lo, hi] percentile interval of samples along axis 0 (NaNs ignored)."""
    tail = 50 * (1 - level)
    with warnings.catch_warnings():  # a parameter no resample could fit is all NaN: its interval is NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanpercentile(samples, [tail, 100 - tail], axis=0)
    return [lo.tolist() if np.ndim(lo) else float(lo), hi.tolist() if np.ndim(hi) else float(hi)]


def summarize(point: dict, samples: Optional[np.ndarray], names: list, level: float) -> dict:
    """{params, intervals, se, finite, samples} for a method: point estimates plus bootstrap spread.

    samples may hold NaN rows (resamples the method could not fit): every interval is over the finite
    values, `finite` counts them per parameter, and `n_resamples` counts all resamples tried.
    """
    out = {"params": {k: float(point[k]) for k in names}, "intervals": {}, "se": {}, "finite": {},
           "n_bootstrap_ok": 0, "n_resamples": 0}
    if samples is None or len(samples) < 2:
        return out
    samples = np.asarray(samples, float)
    for j, k in enumerate(names):
        finite = samples[:, j][np.isfinite(samples[:, j])]
        out["finite"][k] = int(finite.size)
        if finite.size >= 2 and np.isfinite(point[k]):  # no interval around a value the fit could not give
            out["intervals"][k] = percentile_interval(finite, level)
        with np.errstate(over="ignore"):  # a parameter at 1e300 in some resamples has an infinite spread
            out["se"][k] = float(np.std(finite, ddof=1)) if len(finite) >= 2 else float("nan")
    out["n_resamples"] = int(len(samples))
    out["n_bootstrap_ok"] = int(np.all(np.isfinite(samples), axis=1).sum())
    out["samples"] = {"names": list(names), "values": np.round(samples, 10).tolist()}
    return out
