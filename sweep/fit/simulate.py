"""Simulated IsoFLOP sweeps from a known law: ground truth for checking the fitter.

The fitter is judged by whether its estimates and intervals hold on data whose true law is known.
These helpers make such data the way a researcher's sweep would: per budget, a log-spaced set of
sizes around a planner's guess of the optimum (which does not know the truth, so the grid sits at a
random offset from the true optimum), and each run's loss drawn with multiplicative noise.
The laws are Hoffmann et al.'s, two outside Chinchilla's family that defaults were developed on, and
CALIBRATION_LAWS, kept apart for calibrating intervals; `narrowest_halfwidth` is the oracle they are
scored against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sweep.fit.laws import chinchilla_loss, chinchilla_optimum


@dataclass(frozen=True)
class Law:
    """L(N, D) = E + A/N^alpha + B/D^beta; Hoffmann et al. 2022's published values by default."""

    E: float = 1.69
    A: float = 406.4
    B: float = 410.7
    alpha: float = 0.34
    beta: float = 0.28

    @property
    def a(self) -> float:
        """N* ∝ C^a."""
        return self.beta / (self.alpha + self.beta)

    def loss(self, n, d):
        return chinchilla_loss(np.asarray(n, float), np.asarray(d, float), self.E, self.A, self.B, self.alpha, self.beta)

    def optimum(self, flops, flops_per_nd: float = 6.0):
        """(N*, D*, L*) at compute flops under C = k N D."""
        return chinchilla_optimum(np.asarray(flops, float), self.E, self.A, self.B, self.alpha, self.beta, flops_per_nd)


def numeric_optimum(loss, flops, flops_per_nd: float = 6.0):
    """(N*, D*, L*) of `loss(n, d)` at compute flops under C = k N D, by a fine search in log N: 4001 sizes over
    8 decades about sqrt(C) (a step of 0.2% in log10 N), for laws whose optimum has no closed form."""
    flops = np.atleast_1d(np.asarray(flops, float))
    out = []
    for c in flops:
        grid = np.logspace(np.log10(c) / 2 - 4, np.log10(c) / 2 + 4, 4001)
        losses = loss(grid, c / (flops_per_nd * grid))
        n = grid[int(np.argmin(losses))]
        out.append((n, c / (flops_per_nd * n), float(losses.min())))
    n, d, best = (np.array(v) for v in zip(*out))
    return (n[0], d[0], best[0]) if n.size == 1 else (n, d, best)


@dataclass(frozen=True)
class NumericLaw(Law):
    """A law outside Chinchilla's family: its optimum is found numerically and its N* is no power law in C."""

    def optimum(self, flops, flops_per_nd: float = 6.0):
        """(N*, D*, L*) at compute flops under C = k N D, by a fine search in log N (no closed form)."""
        return numeric_optimum(self.loss, flops, flops_per_nd)

    @property
    def a(self) -> float:
        """The local exponent of N*(C) between 1e18 and 1e20 FLOPs (N* is no power law here)."""
        n1, n2 = self.optimum(1e18)[0], self.optimum(1e20)[0]
        return float(np.log(n2 / n1) / np.log(100.0))


@dataclass(frozen=True)
class DataTermLaw(NumericLaw):
    """A law outside every method's family: L(N, D) = E + A/N^alpha + B/D^beta(N), whose data exponent grows with
    the model, beta(N) = beta (N / n_ref)^drift (Farseer-style, Li et al. 2025: larger models use data better).
    Fitted with Chinchilla's form, its misfit grows with the extrapolation: the case a lack-of-fit term is for.
    E, A, B, alpha and beta are Law's (Hoffmann et al.'s); drift = 0 is Law itself."""

    drift: float = 0.02
    n_ref: float = 1e8

    def loss(self, n, d):
        n, d = np.asarray(n, float), np.asarray(d, float)
        return self.E + self.A / n ** self.alpha + self.B / d ** (self.beta * (n / self.n_ref) ** self.drift)


@dataclass(frozen=True)
class ModelTermLaw(DataTermLaw):
    """Another law outside every method's family: L(N, D) = E + A/N^alpha(D) + B/D^beta, whose model exponent grows
    with the data, alpha(D) = alpha (D / d_ref)^drift (a model trained on more tokens puts its parameters to better
    use). `drift` (the data term's drift in DataTermLaw) is this law's model-term drift; drift = 0 is Law itself."""

    drift: float = 0.02
    d_ref: float = 2e9

    def loss(self, n, d):
        n, d = np.asarray(n, float), np.asarray(d, float)
        return self.E + self.A / n ** (self.alpha * (d / self.d_ref) ** self.drift) + self.B / d ** self.beta



@dataclass(frozen=True)
class KaplanLaw(NumericLaw):
    """L = E + [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D with Kaplan et al. 2020's exponents and scales: a
    development law (scripts/default_weights.py, the lack-of-fit study in scripts/check_coverage.py), not a
    calibration law."""

    E: float = 1.0
    n_c: float = 8.8e13
    d_c: float = 5.4e13
    alpha_n: float = 0.076
    alpha_d: float = 0.095

    def loss(self, n, d):
        n, d = np.asarray(n, float), np.asarray(d, float)
        return self.E + ((self.n_c / n) ** (self.alpha_n / self.alpha_d) + self.d_c / d) ** self.alpha_d

    def optimum(self, flops, flops_per_nd: float = 6.0):
        grid = np.logspace(np.log10(flops) / 2 - 5, np.log10(flops) / 2 + 5, 4001)
        losses = self.loss(grid, flops / (flops_per_nd * grid))
        i = int(np.argmin(losses))
        return grid[i], flops / (flops_per_nd * grid[i]), float(losses[i])


@dataclass(frozen=True)
class CurvedModelLaw(NumericLaw):
    """Calibration law, a curvature in log N: L(N, D) = E + A/N^alpha exp(-curvature ln^2(N / n_ref)) + B/D^beta.
    The model term's log is a parabola in log N, tangent to Hoffmann et al.'s at n_ref, so its local exponent
    alpha + 2 curvature ln(N / n_ref) grows with the model: small models put a larger share of their parameters into
    embeddings and fixed overheads, so per counted parameter they gain less. Chinchilla's form fitted to a sweep
    takes the sweep's mean exponent and a lower E, and its misfit grows with the extrapolation. A calibration law:
    no default of the fitter was chosen on it. curvature = 0 is Law."""

    curvature: float = 0.02
    n_ref: float = 3e8

    def loss(self, n, d):
        n, d = np.asarray(n, float), np.asarray(d, float)
        bend = np.exp(-self.curvature * np.log(n / self.n_ref) ** 2)
        return self.E + self.A / n ** self.alpha * bend + self.B / d ** self.beta


@dataclass(frozen=True)
class DataFloorLaw(NumericLaw):
    """Calibration law, a D-dependent irreducible term: L(N, D) = E(D) + A/N^alpha + B/D^beta with
    E(D) = E (1 + e_d (D / d_ref)^-g). A short run's floor sits above the long run's (what warmup and a schedule
    cut short leave unlearned), fading faster than the data term (g > beta). Chinchilla's form absorbs most of it into
    B, beta and E, so its misfit stays small: the law checks that intervals do not widen where the form nearly
    holds. A calibration law: no default of the fitter was chosen on it. e_d = 0 is Law."""

    e_d: float = 0.05
    g: float = 0.6
    d_ref: float = 1e10

    def loss(self, n, d):
        n, d = np.asarray(n, float), np.asarray(d, float)
        floor = self.E * (1 + self.e_d * (d / self.d_ref) ** -self.g)
        return floor + self.A / n ** self.alpha + self.B / d ** self.beta


@dataclass(frozen=True)
class BrokenModelLaw(NumericLaw):
    """Calibration law, a smoothly broken power law in N (the form of Caballero et al.'s broken neural scaling laws):
    L(N, D) = E + A/N^alpha ((1 + (N / n_break)^(1/smooth)) / 2)^(-delta smooth) + B/D^beta. The model exponent is
    alpha well below n_break and alpha + delta well above it, the change spread over about 2 smooth decades; at
    n_break the term is Hoffmann et al.'s. With delta < 0 returns diminish past the break: a sweep that reaches
    only its start fits a mean exponent and under-predicts the loss of larger models. A calibration law: no
    default of the fitter was chosen on it. delta = 0 is Law."""

    delta: float = -0.2
    n_break: float = 1e9
    smooth: float = 0.3

    def loss(self, n, d):
        n, d = np.asarray(n, float), np.asarray(d, float)
        brk = ((1 + (n / self.n_break) ** (1 / self.smooth)) / 2) ** (-self.delta * self.smooth)
        return self.E + self.A / n ** self.alpha * brk + self.B / d ** self.beta


CALIBRATION_LAWS = {"curved_model": CurvedModelLaw, "data_floor": DataFloorLaw, "broken_model": BrokenModelLaw}
"""Laws no default of the fitter was chosen on, for calibrating its intervals (scripts/check_coverage.py --oracle)."""

def isoflop_sweep(law: Law, budgets, sizes_per_budget: int = 7, spacing: float = 2.0, noise: float = 0.01,
                  seed: int = 0, jitter: bool = True) -> list[dict]:
    """Runs of an IsoFLOP sweep (C = 6 N D) as rows {n_params, n_tokens, flops, loss, budget_index, status}.

    Each budget's sizes are `spacing`-spaced around the true optimum, shifted by a random fraction of a
    step when `jitter` (a planner's guess is never exact); loss = L(N, D) * exp(noise * z), z ~ N(0, 1).
    """
    rng = np.random.default_rng(seed)
    rows = []
    half = (sizes_per_budget - 1) / 2
    for b, c in enumerate(budgets):
        n_opt, _, _ = law.optimum(c)
        shift = rng.uniform(-0.5, 0.5) if jitter else 0.0
        for k in range(sizes_per_budget):
            n = float(n_opt * spacing ** (k - half + shift))
            d = float(c / (6 * n))
            loss = float(law.loss(n, d) * np.exp(noise * rng.standard_normal()))
            rows.append({"run_id": f"b{b}-s{k}", "n_params": n, "n_tokens": d, "flops": float(c), "loss": loss,
                         "budget_index": b, "status": "done"})
    return rows


def new_run_loss(law: Law, n: float, d: float, noise: float, rng: np.random.Generator) -> float:
    """The measured loss of one more run at (N, D): the true law with the same run-to-run noise."""
    return float(law.loss(n, d) * np.exp(noise * rng.standard_normal()))


def narrowest_halfwidth(rows: list[dict], coverage: float = 0.9) -> float:
    """The median half-width of the rows' PIs, each widened or narrowed in log space about its prediction by one
    factor k chosen after seeing the measured losses so that they cover exactly `coverage`: the narrowest these
    point predictions and these relative widths allow at that coverage (not a prediction: an oracle's).
    Each row's "ratios" is (PI low, PI high, measured loss), each over the prediction, or None (no interval)."""
    r = np.array([x["ratios"] for x in rows if x.get("ratios")], float)
    if not r.size:
        return float("nan")
    lo, hi, m = np.log(r.T)
    need = np.where(m >= 0, m / np.maximum(hi, 1e-12), m / np.minimum(lo, -1e-12))  # the k that just covers each
    k = np.sort(need)[int(np.ceil(coverage * len(need))) - 1]
    return float(np.median((np.exp(k * hi) - np.exp(k * lo)) / 2))
