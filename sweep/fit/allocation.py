"""Compute-optimal allocation and loss predictions from any method's parameters (point or bootstrap samples)."""

from __future__ import annotations

import numpy as np

from sweep.fit.bootstrap import percentile_interval
from sweep.fit import lack_of_fit, registry
from sweep.fit.noise import Noise, prediction_interval


def exponents(method: str, params: dict):
    """(a, b) with N* ∝ C^a and D* ∝ C^b."""
    return registry.get(method).exponents(params)


def optimum(method: str, params: dict, flops, flops_per_nd: float):
    """(N*, D*, L*) at compute `flops`; arrays broadcast over parameter samples."""
    return registry.get(method).optimum(params, flops, flops_per_nd)


def loss_at(method: str, params: dict, n, d):
    """Predicted loss at (N, D) for the methods with a full L(N, D); None for the others (approaches 1 and 2)."""
    f = registry.get(method).loss_at
    return None if f is None else f(params, n, d)


def sample_params(result: dict, key: str = "samples") -> dict | None:
    """Bootstrap samples of a method's parameters as {name: (k,) array}, or None.

    key "pi_samples": the refits on sweeps simulated from the fitted law, which prediction intervals use
    where a method has them (approach 3); "samples": the refits behind the law's confidence intervals."""
    s = result.get(key)
    if not s:
        return None
    vals = np.asarray(s["values"], float)
    return {k: vals[:, j] for j, k in enumerate(s["names"])}


def _with_interval(point, samples, level):
    """{value, interval, finite, resamples}: the percentile interval over the finite samples, and how many there were.

    Every quantity here (N*, D*, tokens per parameter, a loss) is positive: a value of 0 or below comes from a
    degenerate law (an exponent at its bound 0 puts N* at 0 and tokens per parameter at infinity) and is not an
    estimate, so it reads n/a (NaN), and such samples are not counted as finite."""
    point = float(point)
    out = {"value": point if np.isfinite(point) and point > 0 else float("nan")}
    if samples is not None:
        samples = np.asarray(samples, float)
        ok = np.isfinite(samples) & (samples > 0)
        out["finite"], out["resamples"] = int(ok.sum()), int(samples.size)
        if ok.sum() >= 2 and np.isfinite(out["value"]):  # no interval around a value the fit itself could not give
            out["interval"] = percentile_interval(samples[ok], level)
    return out


def _with_prediction(row: dict, point, run_samples, level: float, noise: Noise | None, lof_sd: float | None = None,
                     seed: int = 0) -> dict:
    """row plus `prediction_interval` for a new run (law spread + run-to-run noise + the law's lack of fit at this
    extrapolation) when noise is known, and each term's sd of log loss (`pi_terms`; the lack of fit None when it
    was not measured, which is not a measured 0)."""
    pi = prediction_interval(float(point), run_samples, noise, level, seed, lack_of_fit_sd=lof_sd or 0.0) \
        if noise is not None else None
    if pi is not None:
        row["prediction_interval"] = pi["interval"]
        row["prediction_basis"] = ("law bootstrap + run noise" if pi["law_spread"] else "run noise only (no bootstrap)") \
            + (" + lack of fit" if lof_sd else "")
        row["pi_terms"] = {"law": pi["law_sd"], "noise": float(noise.sigma),
                           "lack_of_fit": None if lof_sd is None else pi["lack_of_fit_sd"]}
    return row


def lack_of_fit_sd(result: dict, extrapolation: float | None) -> float | None:
    """The method's lack-of-fit sd at this multiple of the largest fitted compute; None when it was not measured
    (before the backtest, or too few held-out budgets for this method)."""
    lof = lack_of_fit.from_dict(result.get("lack_of_fit"))
    return lof.sd(extrapolation) if lof.measured else None


def allocation_row(method: str, result: dict, flops: float, flops_per_nd: float, level: float,
                   noise: Noise | None = None, extrapolation: float | None = None) -> dict:
    """N*, D*, tokens/param and L* at one budget, each with its percentile interval (the law's uncertainty);
    the loss also with a prediction interval for a new run trained at this (N*, D*), when noise is known."""
    n, d, loss = optimum(method, result["params"], flops, flops_per_nd)
    if not (np.isfinite(n) and n > 0 and np.isfinite(d) and d > 0):
        loss = float("nan")  # no optimum (a degenerate law): its infimum is not the loss of any run
    samples = sample_params(result)
    run_samples = None
    if samples is not None:
        with np.errstate(all="ignore"):
            ns, ds, ls = optimum(method, samples, flops, flops_per_nd)
            # The run a user trains is the point fit's (N*, D*); its loss under each resampled law.
            pis = sample_params(result, "pi_samples")
            run_samples = loss_at(method, pis if pis is not None else samples, n, d)
            ts = ds / ns
    else:
        ns = ds = ls = ts = None
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # an optimum at 0 or inf reads n/a below
        tokens = d / n
    row = {"flops": float(flops), "n_star": _with_interval(n, ns, level), "d_star": _with_interval(d, ds, level),
           "tokens_per_param": _with_interval(tokens, ts, level), "loss": _with_interval(loss, ls, level)}
    if extrapolation is not None:
        row["extrapolation"] = float(extrapolation)
    _with_prediction(row["loss"], loss, ls if run_samples is None else run_samples, level, noise,
                     lack_of_fit_sd(result, extrapolation))
    return row


def predict_at(method: str, result: dict, n: float, d: float, level: float, noise: Noise | None = None,
               extrapolation: float | None = None) -> dict | None:
    """Predicted loss at (N, D) with the law's interval and, when noise is known, a new run's prediction
    interval (its lack-of-fit term at `extrapolation` x the largest fitted compute); None when the method has
    no L(N, D)."""
    point = loss_at(method, result["params"], n, d)
    if point is None:
        return None
    samples = sample_params(result)
    pis = sample_params(result, "pi_samples")
    with np.errstate(all="ignore"):
        ls = loss_at(method, samples, n, d) if samples is not None else None
        run = loss_at(method, pis, n, d) if pis is not None else ls
    return _with_prediction(_with_interval(point, ls, level), point, run, level, noise,
                            lack_of_fit_sd(result, extrapolation))


def noise_of(result: dict) -> Noise | None:
    """The sweep's noise recorded in fit.json (None for fits written before it was)."""
    nz = result.get("noise")
    return Noise(**nz) if nz else None
