"""Bootstrap over runs: resampling, refitting any method, and percentile summaries."""

from __future__ import annotations

import warnings
from typing import Callable, Optional

import numpy as np

from sweep.fit.config import FitInputError, MethodSkipped


def resample_indices(n_points: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_points) indices drawn with replacement; the same seed gives the same resamples."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_points, size=(n_boot, n_points))


def refit(data, fit_one: Callable, n_boot: int, seed: int, names: list) -> Optional[np.ndarray]:
    """Run fit_one(subset) -> {name: value} on each resample; (k, len(names)) array of the fits that succeeded."""
    if n_boot <= 0:
        return None
    rows = []
    for idx in resample_indices(len(data.loss), n_boot, seed):
        try:
            params = fit_one(data.subset(np.sort(idx)))
        except (MethodSkipped, FitInputError, ValueError, np.linalg.LinAlgError, FloatingPointError):
            continue
        rows.append([params[k] for k in names])
    return np.array(rows, dtype=float) if rows else None


def percentile_interval(samples: np.ndarray, level: float) -> list:
    """[lo, hi] percentile interval of samples along axis 0 (NaNs ignored)."""
    tail = 50 * (1 - level)
    with warnings.catch_warnings():  # a parameter no resample could fit is all NaN: its interval is NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanpercentile(samples, [tail, 100 - tail], axis=0)
    return [lo.tolist() if np.ndim(lo) else float(lo), hi.tolist() if np.ndim(hi) else float(hi)]


def summarize(point: dict, samples: Optional[np.ndarray], names: list, level: float) -> dict:
    """{params, intervals, se, samples} for a method: point estimates plus bootstrap spread."""
    out = {"params": {k: float(point[k]) for k in names}, "intervals": {}, "se": {}, "n_bootstrap_ok": 0}
    if samples is None or len(samples) < 2:
        return out
    for j, k in enumerate(names):
        out["intervals"][k] = percentile_interval(samples[:, j], level)
        finite = samples[:, j][np.isfinite(samples[:, j])]
        with np.errstate(over="ignore"):  # a parameter at 1e300 in some resamples has an infinite spread
            out["se"][k] = float(np.std(finite, ddof=1)) if len(finite) >= 2 else float("nan")
    out["n_bootstrap_ok"] = int(len(samples))
    out["samples"] = {"names": list(names), "values": np.round(samples, 10).tolist()}
    return out
