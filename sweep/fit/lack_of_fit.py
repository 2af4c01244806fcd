"""The law's lack of fit, measured by how far it missed when it extrapolated inside the data.

A prediction interval built from the bootstrap and run-to-run noise assumes the law is right. When it is not,
its errors grow with the extrapolation, with one sign, and no amount of noise modelling covers them. The
within-data leave-future-out backtest shows how large those errors are for this family of laws on this data:
each held-out run was predicted `x` times past the compute its refit saw, with a PI of its own.

Model: a held-out run's log error e = log(predicted / measured) is normal with variance s^2 + lof(x, S)^2, where
s is the sd its own PI implies (law spread + noise of the refit; for a budget's mean error, the law spread + noise
/ sqrt of its runs) and lof(x, S) = kappa * ((1 + t)(1 + t + ln S))^(gamma / 2), t = ln x, is the lack of fit of a
law fitted over a compute span S (largest over smallest compute) and extrapolated x beyond it (see `growth`): some
misfit at the edge of the data, growing with the log of the extrapolation, about linearly (gamma = 1) or as a
curvature the law cannot absorb (gamma = 2), and growing with the span too. The span matters because the backtest's
refits see less of the sweep than the final fit: a law with the wrong curvature, fitted over two decades, misses a
10x extrapolation by more than it missed fitted over one, so a term read off the refits at their x alone
under-covers the final fit's prediction. kappa >= 0 and gamma in [GAMMA_MIN, GAMMA_MAX] are read off the backtest's
held-out budgets past the largest fitted compute (a size split's held-out sizes only when there are fewer than
MIN_ROWS of those): the runs of one budget predicted by one refit share that refit's error, so each (split, budget) is
one point, with its runs' mean log error, and the budgets one refit predicted share its error too, so each split
weighs one point in all. So few independent points determine
kappa poorly (its best value is 0 for most misfits that show only further out), and a backtest that reaches 2x says
little about 5x. The term therefore carries kappa's uncertainty: its square is kappa^2's posterior mean under the
backtest's likelihood and a half-normal prior of scale PRIOR_SCALE, so the PI's variance is the misfit's predictive
variance; with few refits it leans on the prior, with many on what they measured. Nor do refits that reach a few x say
how fast a misfit they saw grows: when one is detected (DETECT_LR) the posterior runs over the growths gamma too
(uniform), and far out the term grows as the growths the backtest cannot tell apart do, on average. With no misfit
detected gamma is not identified (kappa ~ 0 fits every gamma alike) and the growth stays linear.
The upper end of kappa's likelihood interval ("upper", KAPPA_LR; with a misfit detected, the largest lof(x) over kappa
and gamma jointly) and its best value ("best") are the alternatives scripts/lack_of_fit_rules.py scores.
A good backtest leaves the PI close to what the prior allows; a misspecified law widens it, more the further it
reaches.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.stats import chi2, norm

MIN_ROWS = 3
"""Held-out predictions needed to estimate kappa; with fewer the term is 0 and the report says why."""
KAPPA_MAX = 0.5
"""Upper end of the search (a 50% sd misfit at the edge of the data is a law that does not apply)."""
GAMMA_MIN, GAMMA_MAX = 1.0, 2.0
"""How fast the misfit may grow with ln x: between linearly and quadratically."""
PRIOR_SCALE = 0.01
"""The half-normal prior's scale on kappa: a misfit of about 1% of the loss at the edge of the data, before the
backtest says more (docs/decisions/lack-of-fit-level.md)."""
KAPPA_LR = float(chi2.ppf(0.5, 1))
"""end="upper": kappa's end where twice the log likelihood has fallen by this much from its best (chi-square, 1 dof:
the nominal 50% interval's upper end)."""
DETECT_LR = 1.0
"""A misfit counts as detected when twice the log likelihood at kappa = 0 is this much below its best (kappa = 0
outside the nominal 68% interval). Detection switches on the growths gamma > 1 far out, and a lower threshold would
switch them on for more correct laws."""


@dataclass(frozen=True)
class LackOfFit:
    """kappa, gamma and the fitted span of lof(x) = kappa * growth(x, gamma, span), in log loss, and where they came
    from."""

    kappa: float
    """0 when not estimated (see `source`)."""
    gamma: float
    """Growth with the log extrapolation (1: linear)."""
    n_rows: int
    """Backtest predictions it was estimated from."""
    source: str
    """How it was estimated, or why it is 0."""
    span: float = 1.0
    """The fitted data's compute span (largest over smallest compute) that `sd` extrapolates from."""
    upper: tuple = ()
    """(gamma, kappa) pairs: for each growth the data do not rule out, the largest kappa inside the joint likelihood
    region (with no misfit detected, only gamma = 1 and kappa's end on that growth's own likelihood); `sd` takes the
    largest of them at the extrapolation asked for. Empty (a fit.json written before): kappa at gamma."""
    best: float | None = None
    """kappa's maximum-likelihood value, set to 0 when no misfit was detected (see DETECT_LR): then
    `kappa` is only what the backtest cannot rule out. None when not estimated or written before."""
    refits: int = 0
    """Backtest refits whose held-out errors it was estimated from (they, not the held-out runs, are its
    independent points)."""
    mix: tuple = ()
    """(gamma, weight x E[kappa^2 | gamma]) pairs of a posterior term (estimate(end="posterior"), the fitter's): `sd`
    is the root of their sum of growth-weighted parts, the misfit's predictive variance. Empty: the term is
    `upper`'s (end="upper" or "best", or a fit.json written before)."""
    parts: tuple = ()
    """A pooled term's members (their as_dict()s, see `pooled`): `sd` is the largest of theirs at each reach."""

    def sd(self, extrapolation: float | None, span: float | None = None) -> float:
        """The lack-of-fit sd of log loss at `extrapolation` times the largest fitted compute (>= 1 counts as 1), for a
        fit over `span` (default: the span it was estimated for)."""
        if self.parts:
            return max(from_dict(p).sd(extrapolation, span) for p in self.parts)
        x = 1.0 if extrapolation is None or not np.isfinite(extrapolation) else max(float(extrapolation), 1.0)
        if self.mix:
            return float(np.sqrt(sum(m * growth(x, g, self.span if span is None else span) ** 2
                                     for g, m in self.mix)))
        pairs = self.upper or ((self.gamma, self.kappa),)
        return float(max(k * growth(x, g, self.span if span is None else span) for g, k in pairs))

    @property
    def measured(self) -> bool:
        """Whether the backtest estimated it (False: 0 because nothing could say what it is)."""
        return self.n_rows >= MIN_ROWS

    def as_dict(self) -> dict:
        return asdict(self)


NONE = LackOfFit(kappa=0.0, gamma=1.0, n_rows=0, source="not estimated")


def growth(x, gamma: float, span=1.0) -> np.ndarray:
    """((1 + t)(1 + t + S))^(gamma / 2), t = ln x, S = ln span: a misfit the law cannot absorb, fitted over a span
    S of log compute and extrapolated t beyond it. Its leading part is a curvature c in log compute: the law
    absorbs its level and slope over the span, and what is left extrapolates to c (t^2 + S t + S^2 / 6), growing
    with the span as well as with t (the same law fitted over two decades misses a 10x extrapolation by more than
    fitted over one). gamma = 2 is that; gamma = 1 grows about linearly; S = 0 gives (1 + t)^gamma."""
    t = np.log(np.maximum(np.asarray(x, float), 1.0))
    s = np.log(np.maximum(np.asarray(span, float), 1.0))
    return ((1.0 + t) * (1.0 + t + s)) ** (gamma / 2)


def held_out_groups(rows: list[dict]) -> dict:
    """The leave-future-out backtest's scored rows by (split, held-out budget): the runs of one budget predicted by
    one refit share its error, so each group is one independent point (here and in recommend.py)."""
    groups: dict = {}
    for r in rows:
        if r.get("kind", "future") == "future" and r.get("predicted") and r.get("measured"):
            key = r.get("group", r.get("budget", round(float(r["extrapolation"]), 6)))
            groups.setdefault((r.get("split"), key), []).append(r)
    return groups


def per_split(keys: list) -> np.ndarray:
    """Weights of held-out (split, group) keys such that each split weighs one point in all: the groups one refit
    predicted share its error (here and in recommend.py)."""
    splits = [k[0] for k in keys]
    return np.array([1.0 / splits.count(k[0]) for k in keys])


def pi_sd(row: dict, z: float) -> float:
    """The sd of log loss a row's PI implies (its half-width in log space over z); 0 without an interval."""
    return (np.log(row["interval"][1]) - np.log(row["interval"][0])) / (2 * z) if row.get("interval") else 0.0


def mean_error_sd(group: list[dict], z: float) -> float:
    """The sd of a held-out group's mean log error if the law were right: its refit's law spread, shared by the
    group's runs, plus run-to-run noise averaged over its m runs (noise^2 / m). Comparing the mean error with a
    single run's PI sd instead would credit the noise m times over and hide a misfit as large as the noise.
    Rows without their PI's terms fall back to that PI's sd."""
    terms = [r.get("pi_terms") for r in group]
    if not all(terms):
        return float(np.mean([pi_sd(r, z) for r in group]))
    law = np.mean([t["law"] for t in terms])
    noise2 = np.mean([t["noise"] ** 2 for t in terms])
    return float(np.sqrt(law ** 2 + noise2 / len(group)))


def estimate(rows: list[dict], level: float, span: float = 1.0,
             end: Literal["posterior", "upper", "best"] = "posterior", kappa_lr: float = KAPPA_LR,
             prior_scale: float = PRIOR_SCALE, undetected: Literal["linear", "any"] = "linear") -> LackOfFit:
    """kappa from backtest rows ({extrapolation, span, predicted, measured, interval}); leave-future-out rows only.
    span: the compute span of the fit the term is for (its growth extrapolates from that span).
    end: "posterior" (the fitter's: kappa^2's posterior mean under the likelihood and a half-normal prior of scale
    prior_scale, over the growths), "upper" (kappa's upper end where twice the log likelihood falls by kappa_lr) or
    "best" (its maximum-likelihood value, 0 when no misfit is detected).
    undetected: the growths kept when no misfit is detected: "linear" (gamma = 1 alone, the fitter's) or "any"
    (every gamma, as when one is detected). The alternatives are what scripts/lack_of_fit_rules.py compares."""
    groups = held_out_groups(rows)
    # A size split's held-out sizes sit at compute its refit saw, and a sweep has many sizes: they would outnumber
    # the budgets past the largest fitted compute, where a user's next run is, and speak for them.
    beyond = {k: g for k, g in groups.items() if (g[0].get("axis") or "compute") == "compute"}
    if len(beyond) >= MIN_ROWS:
        groups = beyond
    if len(groups) < MIN_ROWS:
        return LackOfFit(0.0, 1.0, len(groups), span=span,
                         source=f"not estimated: {len(groups)} held-out budget(s) in the leave-future-out backtest, "
                                f"needs {MIN_ROWS}; the interval has no lack-of-fit term")
    z = norm.ppf(0.5 + level / 2)
    e = np.array([np.mean([np.log(r["predicted"] / r["measured"]) for r in g]) for g in groups.values()])
    s = np.array([mean_error_sd(g, z) for g in groups.values()])
    x = np.array([np.exp(np.mean([np.log(r.get("reach", r["extrapolation"])) for r in g])) for g in groups.values()])
    fitted_span = np.array([g[0].get("span", 1.0) for g in groups.values()])
    # the groups of one split share its refit, and so its error: each split weighs one point in the likelihood
    refits = [k[0] for k in groups]
    w = per_split(list(groups))

    def nll(kappa, gamma: float):
        """Negative log likelihood at kappa (a float, or an array of them: one value each)."""
        k = np.asarray(kappa, float)[..., None]
        var = np.maximum(s ** 2 + (k * growth(x, gamma, fitted_span)) ** 2, 1e-12)
        out = 0.5 * np.sum(w * (np.log(var) + e ** 2 / var), axis=-1)
        return float(out) if out.ndim == 0 else out

    fits = []
    for gamma in np.linspace(GAMMA_MIN, GAMMA_MAX, 11):
        best = minimize_scalar(lambda k: nll(k, gamma), bounds=(0.0, KAPPA_MAX), method="bounded",
                               options={"xatol": 1e-6})
        fits.append((nll(float(best.x), gamma), float(best.x), float(gamma)))
    value, best, gamma = min(fits)
    detected = nll(0.0, gamma) - value >= DETECT_LR / 2
    every_growth = detected or undetected == "any"
    if every_growth:
        upper = tuple((g, _upper_end(lambda k, g=g: nll(k, g), b, value, kappa_lr)) for v, b, g in fits
                      if v - value < kappa_lr / 2)
    else:
        # no misfit detected: the best gamma is a rounding error's choice, so kappa's interval is the linear
        # growth's alone
        gamma = GAMMA_MIN
        v1, b1, _ = fits[0]
        upper = ((GAMMA_MIN, _upper_end(lambda k: nll(k, GAMMA_MIN), b1, v1, kappa_lr)),)
    if not detected:
        best = 0.0
    if end == "best":
        upper = ((gamma, best),)
    mix: tuple = ()
    if end == "posterior":
        mix = _posterior_mix(nll, [g for _, _, g in fits] if every_growth else [GAMMA_MIN], prior_scale)
        upper = ((gamma, float(np.sqrt(sum(m for _, m in mix)))),)
    kappa = dict(upper)[gamma]
    kind = "budget" if groups is beyond else "group"
    used = {"best": ", used", "posterior": f", its posterior rms (prior scale {100 * prior_scale:.2g}%) used"}.get(
        end, f", its {100 * chi2.cdf(kappa_lr, 1):.0f}% upper end used")
    spread = (f", over γ {min(g for g, _ in upper):.2g}-{max(g for g, _ in upper):.2g} (the fastest growth not "
              f"ruled out, far out)" if len(upper) > 1 else "")
    n_refits = len(set(refits))
    return LackOfFit(kappa, gamma, len(groups), span=span, upper=upper, best=float(best), refits=n_refits, mix=mix,
                     source=f"leave-future-out backtest: {len(groups)} held-out {kind}(s) of {n_refits} "
                            f"refit(s), {min(x):.2g}-{max(x):.2g}x past their fits, rms error "
                            f"{100 * float(np.sqrt(np.mean(e ** 2))):.2g}%; best κ {100 * best:.2g}%" + used + spread)


def _posterior_mix(nll_of, gammas: list[float], prior_scale: float) -> tuple:
    """(gamma, P(gamma) E[kappa^2 | gamma]) under the likelihood exp(-nll(kappa, gamma)), a half-normal prior on kappa
    of scale prior_scale and a uniform prior over `gammas`, on a grid of kappa in [0, KAPPA_MAX]."""
    k = np.linspace(0.0, KAPPA_MAX, 2001)
    dk = np.full(k.size, k[1])
    dk[[0, -1]] /= 2  # trapezoid weights: the density at kappa = 0 is the largest, and counts half a step
    logpost = np.array([-nll_of(k, g) for g in gammas]) - k ** 2 / (2 * prior_scale ** 2)
    post = np.exp(logpost - logpost.max()) * dk
    # P(gamma) E[kappa^2 | gamma] = the joint posterior's kappa^2 mass at gamma (no division by a mass that may be 0)
    return tuple((float(g), float(post[i] @ k ** 2 / post.sum())) for i, g in enumerate(gammas))


def _upper_end(nll_of, best: float, value: float, kappa_lr: float = KAPPA_LR) -> float:
    """The largest kappa >= best whose negative log likelihood is within kappa_lr / 2 of `value` (the minimum of
    the likelihood the interval is read on: joint over kappa and gamma, or gamma = 1's alone)."""
    if nll_of(KAPPA_MAX) - value <= kappa_lr / 2:
        return KAPPA_MAX
    lo, hi = best, KAPPA_MAX
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if nll_of(mid) - value < kappa_lr / 2 else (lo, mid)
    return (lo + hi) / 2


def pooled(terms: list[LackOfFit], source: str) -> LackOfFit:
    """The pointwise largest of measured terms, for a method whose backtest could not measure its own: its PI then
    claims no more than the other laws' misses allow, at every reach."""
    first = terms[0]
    return LackOfFit(max(t.kappa for t in terms), first.gamma, first.n_rows, source, span=first.span,
                     best=max(t.best or 0.0 for t in terms), refits=max(t.refits for t in terms),
                     parts=tuple(t.as_dict() for t in terms))


def from_dict(d: dict | None) -> LackOfFit:
    return LackOfFit(**d) if d else NONE
