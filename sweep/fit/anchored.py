"""The valleys' shape on a frontier of its own: approach 3's terms for how the loss changes away from the optimum
at a given compute, a free L*(C) = E_C + (C_c / C)^α_C for the optimum's loss itself.

Approach 3 ties the two together: its frontier L*(C) = E + G C^(-αβ/(α+β)) takes its exponent and floor from the
same α, β and E that shape each IsoFLOP valley. Real sweeps do not keep that tie over a wide range: a valley's shape
(how much a model twice too small loses) is set within each budget, the frontier's descent by how the budgets'
optima fall, and a law that fits both at once trades one against the other. This method fits them apart:
1. the shape: A/N^α + B/D^β shared by every budget, each budget's level free, by least squares on log loss over
   the valley runs (each budget's best size and `fit.parabola_window` sizes each side; sweep/fit/valley.py). Only
   the variation within budgets informs it. A run's penalty is the shape at its (N, D) less its minimum along the
   run's IsoFLOP curve, C = k N D;
2. the frontier: each budget's level (its valley runs' mean loss less their penalty: every valley run informs it,
   not only the best one) fitted by L*(C) = E_C + (C_c / C)^α_C, the loss law of approaches 1 and 2
   (sweep/fit/powerlaw.py). It needs `fit.loss_law_min_points` budgets with a valley.
A run's loss is L*(C) + its penalty. Its allocation (N*, D*) is the shape's (a term in C alone does not move the
optimum along an IsoFLOP curve). On a sweep that follows approach 3's law the levels lie on that law's L*(C), which
has this form: the method is then a noisier approach 3 (three more parameters, fitted on one level per budget).

Intervals: the law's from refits on the valley runs resampled within each budget (every budget keeps a level), the
PI's from refits on sweeps simulated from the fitted model with the sweep's noise; each refit fits the shape, its
levels and their L*(C). Which of this and the other laws extrapolates better on a sweep is the within-data
backtest's question (sweep/fit/recommend.py).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares

from sweep.fit import approach3
from sweep.fit.bootstrap import PI_REFITS
from sweep.fit.config import FitConfig, MethodSkipped
from sweep.fit.laws import chinchilla_optimum
from sweep.fit.method import Method, MethodFit
from sweep.fit.noise import from_fit, from_replicates
from sweep.fit.powerlaw import loss_law, loss_laws, power_law_value
from sweep.fit.selection import valley_runs

SHAPE = ["A", "B", "alpha", "beta"]
"""The valleys' shape (approach 3's terms without its floor): they set the penalty for being off the optimum."""
FRONTIER = ["E_C", "alpha_C", "log_C_c"]
"""L*(C) = E_C + (C_c / C)^alpha_C, C_c in FLOPs (its log)."""
NAMES = SHAPE + FRONTIER + ["flops_per_nd"]
BOUNDS = ([-60.0, -60.0, 0.01, 0.01], [60.0, 60.0, 3.0, 3.0])
"""log A, log B, alpha, beta."""


def penalty(params: dict, n, d):
    """Lv(N, D) - Lv*(C) at C = k N D: what a run loses to the optimum of its compute under the valleys' shape
    (>= 0)."""
    a, b, alpha, beta, k = (np.asarray(params[x], float) for x in SHAPE + ["flops_per_nd"])
    n, d = np.asarray(n, float), np.asarray(d, float)
    with np.errstate(all="ignore"):  # a resample's shape at a bound gives nan, read as n/a
        n_star, d_star, _ = chinchilla_optimum(k * n * d, 0.0, a, b, alpha, beta, k)
        return a / n ** alpha + b / d ** beta - (a / n_star ** alpha + b / d_star ** beta)


def frontier_loss(params: dict, flops):
    return power_law_value(np.asarray(flops, float), np.asarray(params["log_C_c"], float),
                           np.asarray(params["alpha_C"], float), np.asarray(params["E_C"], float))


def loss_at(params: dict, n, d):
    k = np.asarray(params["flops_per_nd"], float)
    return frontier_loss(params, k * np.asarray(n, float) * np.asarray(d, float)) + penalty(params, n, d)


def optimum(params: dict, flops, flops_per_nd: float):
    a, b, alpha, beta = (np.asarray(params[x], float) for x in SHAPE)
    n, d, _ = chinchilla_optimum(np.asarray(flops, float), 0.0, a, b, alpha, beta, flops_per_nd)
    return n, d, frontier_loss(params, flops)


def _shape(theta) -> dict:
    return {"A": float(np.exp(theta[0])), "B": float(np.exp(theta[1])), "alpha": float(theta[2]),
            "beta": float(theta[3])}


def levels(shape: dict, k: float, n, d, loss, budget) -> tuple[np.ndarray, np.ndarray]:
    """(C, level) per budget: its runs' mean of loss minus the shape's penalty, at the geometric mean of their
    compute k N D."""
    corrected = loss - penalty({**shape, "flops_per_nd": k}, n, d)
    inv = np.unique(budget, return_inverse=True)[1].ravel()
    counts = np.bincount(inv)
    c = np.exp(np.bincount(inv, np.log(k * n * d)) / counts)
    return c, np.bincount(inv, corrected) / counts


def fit_shape(n, d, loss, budget, k: float, starts) -> tuple[np.ndarray, np.ndarray]:
    """(log A, log B, alpha, beta) of the valleys' shape shared by every budget, each budget's level free (profiled:
    its runs' mean of loss minus the penalty), by least squares on log loss from each start; and its residuals."""
    inv = np.unique(budget, return_inverse=True)[1].ravel()
    counts = np.bincount(inv)
    ll = np.log(loss)

    def resid(theta):
        p = penalty({**_shape(theta), "flops_per_nd": k}, n, d)
        with np.errstate(all="ignore"):
            level = np.bincount(inv, loss - p) / counts
            r = np.log(np.maximum(level[inv] + p, 1e-12)) - ll
        # a trial step whose optimum overflows (an exponent at its bound) is a bad step, not an error
        return np.nan_to_num(r, nan=10.0, posinf=10.0, neginf=-10.0)

    best = None
    for s in starts:
        try:
            r = least_squares(resid, np.clip(s, np.add(BOUNDS[0], 1e-6), np.subtract(BOUNDS[1], 1e-6)), bounds=BOUNDS)
        except ValueError:  # a start least_squares refuses (e.g. overflow in its first Jacobian)
            continue
        if np.all(np.isfinite(r.fun)) and (best is None or r.cost < best.cost):
            best = r
    if best is None:
        return np.full(4, np.nan), np.full(loss.size, np.nan)
    return best.x, best.fun


def generic_starts(n, d, loss) -> list:
    """Exponents 0.3 and 0.6 (both, and one each), amplitudes that make each term a tenth of the mean loss at the
    median size and token count."""
    out = []
    for alpha, beta in ((0.3, 0.3), (0.6, 0.6), (0.3, 0.6), (0.6, 0.3)):
        out.append([np.log(0.1 * loss.mean()) + alpha * np.median(np.log(n)),
                    np.log(0.1 * loss.mean()) + beta * np.median(np.log(d)), alpha, beta])
    return out


def _within_budgets(budget: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One resample of the runs with replacement inside each budget (every budget keeps its run count, so every
    budget keeps a level)."""
    return np.concatenate([rng.choice(idx, idx.size) for idx in (np.flatnonzero(budget == b) for b in np.unique(budget))])


def refits(v, k: float, theta: np.ndarray, cfg: FitConfig, draws: list) -> np.ndarray:
    """(len(draws), NAMES) parameters refitted on each draw: (rows of the valley runs, their losses); each refit's
    shape from the point fit's start, its levels' L*(C) in one batched fit (NaN where none has a floor)."""
    shapes, xs, ys = [], [], []
    for rows, loss in draws:
        th, _ = fit_shape(v.n[rows], v.d[rows], loss, v.budget[rows], k, [theta])
        sh = _shape(th)
        x, y = levels(sh, k, v.n[rows], v.d[rows], loss, v.budget[rows])
        ok = np.isfinite(y) & (y > 0)
        shapes.append([sh[p] for p in SHAPE])
        xs.append(x[ok])
        ys.append(y[ok])
    law = loss_laws(xs, ys, cfg)  # (draws, 3): log C_c, alpha_C, E_C
    return np.column_stack([np.array(shapes), law[:, [2, 1, 0]], np.full(len(draws), k)])


def run(data, cfg: FitConfig) -> MethodFit:
    """This method's fit: the shape, the levels and their L*(C), both bootstraps, residuals (extra "anchor")."""
    idx = valley_runs(data, cfg.min_sizes_per_budget, cfg.parabola_window)
    v = data.subset(idx)
    n_budgets = np.unique(v.budget).size if idx.size else 0
    if n_budgets < cfg.loss_law_min_points:
        raise MethodSkipped(f"{n_budgets} IsoFLOP budget(s) with {cfg.min_sizes_per_budget} or more sizes: L*(C) "
                            f"needs the levels of {cfg.loss_law_min_points} or more")
    k = float(data.flops_per_nd)
    theta, resid = fit_shape(v.n, v.d, v.loss, v.budget, k, generic_starts(v.n, v.d, v.loss))
    if not np.all(np.isfinite(theta)):
        raise MethodSkipped("the valleys' shape could not be fitted from any start")
    shape = _shape(theta)
    x, y = levels(shape, k, v.n, v.d, v.loss, v.budget)
    law = loss_law(x, y, cfg)
    if not np.isfinite(law["e"]):
        raise MethodSkipped(f"the levels of {x.size} budgets with a valley give no L*(C) with a floor E_C > 0")
    point = {**shape, "E_C": law["e"], "alpha_C": law["alpha"], "log_C_c": law["log_xc"], "flops_per_nd": k}
    rng = np.random.default_rng(cfg.seed)
    samples = None
    if cfg.n_bootstrap > 0 and cfg.law_intervals:
        draws = [(rows, v.loss[rows]) for rows in (_within_budgets(v.budget, rng) for _ in range(cfg.n_bootstrap))]
        samples = refits(v, k, theta, cfg, draws)
    nz = from_replicates(v) or from_fit(resid, v, len(SHAPE) + x.size, "the anchored fit")
    pis = None
    if cfg.n_bootstrap > 0 and nz.ok:
        fitted = y[np.unique(v.budget, return_inverse=True)[1].ravel()] + penalty(point, v.n, v.d)
        rows = np.arange(idx.size)
        draws = [(rows, fitted * np.exp(nz.sigma * rng.standard_normal(idx.size)))
                 for _ in range(min(cfg.n_bootstrap, PI_REFITS))]
        pis = refits(v, k, theta, cfg, draws)
    return MethodFit.summarized(
        point, samples, NAMES, cfg.interval, bootstrap="valley runs resampled with replacement within each budget",
        noise=nz, pi_samples=pis, residuals=np.log(data.loss) - np.log(loss_at(point, data.n, data.d)),
        diagnostics={"residual_rms": float(np.sqrt(np.mean(resid ** 2))),
                     "residual_max": float(np.max(np.abs(resid)))},
        extra={"anchor": {"runs": int(idx.size), "of": int(data.loss.size), "budgets": int(n_budgets),
                          "window": cfg.parabola_window, "levels": [[float(c), float(l)] for c, l in zip(x, y)],
                          "level_rms": float(np.sqrt(np.mean((np.log(y) - np.log(frontier_loss(point, x))) ** 2)))}})


def report(r: dict, fit: dict) -> list:
    a = r["anchor"]
    low = [k for k in ("alpha", "beta") if r["params"][k] <= BOUNDS[0][SHAPE.index(k)] * 1.01]
    bound = [f"{' and '.join(low)} at the lower bound {BOUNDS[0][2]:g}: the valleys do not determine the shape's "
             "exponents (near the bound the two terms bend like a parabola in log N, and their amplitudes trade off "
             "against the exponents), so the allocation a is loose and the penalty far outside the fitted valleys is "
             "not to be trusted; the levels, and L*(C), only use the penalty where the runs are.", ""] if low else []
    return bound + [
        f"Stage 1: the valleys' shape A/N^α + B/D^β, shared by {a['budgets']} IsoFLOP budgets, each with a level of "
        f"its own, fitted to {a['runs']} of {a['of']} runs (each budget's best size and {a['window']} sizes each "
        f"side): the loss a run gives up away from its budget's optimum. Residuals (log loss): rms "
        f"{r['diagnostics']['residual_rms']:.4g}. Stage 2: each budget's level (its valley runs' mean loss less "
        f"that penalty) fitted by L*(C) = E_C + (C_c / C)^α_C, rms {a['level_rms']:.3g} in log loss over the "
        f"{len(a['levels'])} levels; log_C_c is ln C_c (FLOPs)." + approach3.pi_noise(r.get("noise")), ""]


METHOD = Method(name="approach3_anchored", title="Approach 3's valley shape on a fitted frontier L*(C)",
                color="tab:pink", fit=run, exponents=approach3.exponents, optimum=optimum, loss_at=loss_at,
                report=report, default=False,
                fixed={"flops_per_nd": "the sweep's FLOPs per N·D (C = k N D): converts a run's N and D to the compute "
                                       "of its L*(C)"})
